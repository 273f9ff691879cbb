use larder::cached;

#[cached(max_age = "1m", name = "user profile")]
async fn profile(id: u64) -> String {
    format!("user {id}")
}

fn main() {}
