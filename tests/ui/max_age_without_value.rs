use larder::cached;

#[cached(max_age)]
async fn answer() -> u64 {
    42
}

fn main() {}
