use larder::cached;

#[cached(max_age = "-5s")]
async fn answer() -> u64 {
    42
}

fn main() {}
