use larder::cached;

#[cached(max_age = 2.5)]
async fn answer() -> u64 {
    42
}

fn main() {}
