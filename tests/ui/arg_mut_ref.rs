use larder::cached;

#[cached(max_age = "1m")]
async fn count(seen: &mut Vec<u64>) -> usize {
    seen.push(1);
    seen.len()
}

fn main() {}
