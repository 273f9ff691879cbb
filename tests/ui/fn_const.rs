use larder::cached;

#[cached(max_age = "1m")]
const fn answer() -> u64 {
    42
}

fn main() {}
