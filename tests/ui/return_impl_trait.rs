use larder::cached;

#[cached(max_age = "1m")]
async fn evens(limit: u64) -> impl Iterator<Item = u64> {
    (0..limit).filter(|n| n % 2 == 0)
}

fn main() {}
