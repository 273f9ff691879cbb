use larder::cached;

#[cached(max_age = "1m")]
async fn first_word(text: &str) -> &str {
    text.split(' ').next().unwrap_or("")
}

fn main() {}
