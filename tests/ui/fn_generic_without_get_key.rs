use larder::cached;

#[cached(max_age = "1m")]
async fn describe<T: std::fmt::Display>(value: T) -> String {
    format!("<{value}>")
}

fn main() {}
