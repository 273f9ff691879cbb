use larder::cached;

#[cached(max_age = "1m", should_bypass_cache = |id: &u64| *id)]
async fn title(id: u64) -> String {
    format!("post {id}")
}

fn main() {}
