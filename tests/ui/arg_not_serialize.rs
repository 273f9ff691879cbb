use larder::cached;

struct UserId(u64);

#[cached(max_age = "1m")]
async fn profile(id: UserId) -> String {
    format!("user {}", id.0)
}

fn main() {}
