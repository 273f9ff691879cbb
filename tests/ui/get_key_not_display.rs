use larder::cached;

#[cached(max_age = "1m", get_key = |id: &u64| vec![*id])]
async fn title(id: u64) -> String {
    format!("post {id}")
}

fn main() {}
