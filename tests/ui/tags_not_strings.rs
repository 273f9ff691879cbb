use larder::cached;

#[cached(max_age = "1m", tags = [users, 7])]
async fn user(id: u64) -> String {
    id.to_string()
}

fn main() {}
