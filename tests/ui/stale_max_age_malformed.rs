use larder::cached;

#[cached(max_age = "1m", swr, stale_max_age = "always")]
async fn answer() -> u64 {
    42
}

fn main() {}
