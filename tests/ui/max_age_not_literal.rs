use larder::cached;

const TEN_MINUTES: u64 = 600;

#[cached(max_age = TEN_MINUTES)]
async fn answer() -> u64 {
    42
}

fn main() {}
