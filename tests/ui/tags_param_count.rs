use larder::cached;

#[cached(max_age = "1m", tags = |id: &u64, extra: &u64| vec![format!("user:{id}{extra}")])]
async fn user(id: u64) -> String {
    id.to_string()
}

fn main() {}
