use larder::cached;

#[cached(max_age = "1m", should_invalidate_cache = |id: u64| id == 0)]
async fn title(id: u64) -> String {
    format!("post {id}")
}

fn main() {}
