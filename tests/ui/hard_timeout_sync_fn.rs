use larder::cached;

#[cached(max_age = "1m", hard_timeout = "2s")]
fn fetch(url: &str) -> Result<String, larder::Error> {
    Ok(url.to_owned())
}

fn main() {}
