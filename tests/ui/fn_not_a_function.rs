use larder::cached;

#[cached(max_age = "1m")]
struct Profile {
    name: String,
}

fn main() {}
