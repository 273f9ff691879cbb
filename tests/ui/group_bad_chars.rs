use larder::cached;

#[cached(max_age = "1m", group = "github.com/users")]
async fn profile(id: u64) -> String {
    format!("user {id}")
}

fn main() {}
