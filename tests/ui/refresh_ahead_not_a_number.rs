use larder::cached;

#[cached(max_age = "1m", refresh_ahead = "80%")]
async fn answer() -> u64 {
    42
}

fn main() {}
