use larder::cached;

struct Client {
    base: String,
}

#[cached(max_age = "1m")]
async fn profile(client: &Client, id: u64) -> String {
    format!("{}/users/{id}", client.base)
}

fn main() {}
