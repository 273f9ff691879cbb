use larder::cached;

#[cached(max_age = "1m", result = true)]
async fn answer() -> u64 {
    42
}

fn main() {}
