use larder::cached;

#[derive(Debug, Clone)]
struct MyError;

#[cached(max_age = "1m", hard_timeout = "2s")]
async fn price(sku: &str) -> Result<u64, MyError> {
    Ok(sku.len() as u64)
}

fn main() {}
