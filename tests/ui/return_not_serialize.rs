use larder::cached;
use serde::Deserialize;

#[derive(Clone, Deserialize)]
struct Profile {
    name: String,
}

#[cached(max_age = "1m")]
async fn profile(id: u64) -> Profile {
    Profile {
        name: format!("user {id}"),
    }
}

fn main() {}
