use larder::cached;

#[cached(max_age = "1m", swr, max_age = "1h")]
async fn answer() -> u64 {
    42
}

fn main() {}
