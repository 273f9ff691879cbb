use larder::{cached, cached_impl};

#[derive(Clone)]
struct Db;

#[cached_impl]
impl Db {
    #[cached(max_age = "1m")]
    async fn answer(&self) -> u64 {
        42
    }
}

fn main() {}
