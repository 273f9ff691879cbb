use larder::cached;

#[derive(Clone)]
struct Client {
    base: u64,
}

impl Client {
    #[cached(max_age = "1m")]
    async fn fetch(self, id: u64) -> u64 {
        self.base + id
    }
}

fn main() {}
