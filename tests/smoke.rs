use larder::cached;
use std::sync::atomic::{AtomicU32, Ordering};

static RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, PartialEq)]
struct MyErr(String);

#[cached(max_age = "1h", swr, group = "gh", get_key = |repo: &str| repo.to_owned())]
async fn stars(repo: &str) -> Result<u64, MyErr> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if repo == "bad" {
        return Err(MyErr("bad".into()));
    }
    Ok(repo.len() as u64)
}

#[cached(max_age = 60)]
async fn plain(a: u64, b: String) -> Vec<u64> {
    vec![a, b.len() as u64]
}

#[derive(Clone)]
struct Client {
    base: u64,
}

impl Client {
    #[cached(max_age = "1m", swr)]
    async fn get(&self, id: &u64) -> Result<u64, MyErr> {
        Ok(self.base + id)
    }
}

#[tokio::test]
async fn smoke() {
    assert_eq!(stars("rust-lang/rust").await, Ok(14));
    assert_eq!(stars("rust-lang/rust").await, Ok(14));
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(stars_key("rust-lang/rust"), "gh:stars:rust-lang:rust.json");
    assert!(stars("bad").await.is_err());
    assert_eq!(plain(1, "ab".into()).await, vec![1, 2]);
    let c = Client { base: 10 };
    assert_eq!(c.get(&5).await, Ok(15));
    println!("{}", c.get_key(&5));
    stars_invalidate("rust-lang/rust").await;
    assert_eq!(stars("rust-lang/rust").await, Ok(14));
    assert_eq!(RUNS.load(Ordering::SeqCst), 3);
}

#[test]
fn future_sizes() {
    println!("plain fut size = {}", std::mem::size_of_val(&plain(1, String::new())));
    println!("stars fut size = {}", std::mem::size_of_val(&stars("x")));
}
