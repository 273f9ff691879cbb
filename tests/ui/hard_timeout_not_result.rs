use larder::cached;

#[cached(max_age = "1m", hard_timeout = "2s")]
async fn price(sku: &str) -> u64 {
    sku.len() as u64
}

fn main() {}
