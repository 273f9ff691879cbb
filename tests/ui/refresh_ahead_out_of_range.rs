use larder::cached;

#[cached(max_age = "1m", refresh_ahead = 1.5)]
async fn answer() -> u64 {
    42
}

fn main() {}
