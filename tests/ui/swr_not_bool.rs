use larder::cached;

#[cached(max_age = "1m", swr = "yes")]
async fn answer() -> u64 {
    42
}

fn main() {}
