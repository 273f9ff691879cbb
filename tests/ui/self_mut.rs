use larder::cached;

#[derive(Clone)]
struct Client {
    calls: u64,
}

impl Client {
    #[cached(max_age = "1m")]
    async fn fetch(&mut self, id: u64) -> u64 {
        self.calls += 1;
        id
    }
}

fn main() {}
