use larder::cached;

#[cached(max_age = "soon")]
async fn answer() -> u64 {
    42
}

fn main() {}
