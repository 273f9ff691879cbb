use larder::cached;

#[cached(max_age = "1m", name = profile)]
async fn answer() -> u64 {
    42
}

fn main() {}
