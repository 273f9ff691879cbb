use larder::cached;

#[cached(max_age = "1m")]
async fn area((w, h): (u64, u64)) -> u64 {
    w * h
}

fn main() {}
