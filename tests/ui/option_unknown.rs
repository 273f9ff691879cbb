use larder::cached;

#[cached(max_agee = "1m")]
async fn answer() -> u64 {
    42
}

fn main() {}
