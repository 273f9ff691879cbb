use larder::cached;

#[cached(max_age = "1m", get_key = |id: u64| id.to_string())]
async fn title(id: u64) -> String {
    format!("post {id}")
}

fn main() {}
