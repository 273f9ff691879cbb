//! Tiers: L1 memory + an L2 store, with the failure policy. The L2 here is a
//! test store whose outages the test switches on and off; the real fs and Redis stores
//! have their own tests.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use common::Runs;
use larder::{Clock, ManualClock, Mount, Runtime, cached};
use larder::{Store, StoreFuture};

/// A shared in-memory L2 that can be switched off (every call errors).
#[derive(Default)]
struct TestStore {
    data: Mutex<HashMap<String, Vec<u8>>>,
    down: AtomicBool,
    calls: AtomicUsize,
}

impl TestStore {
    fn check(&self) -> Result<(), larder::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) { Err(larder::Error::Store("connection refused".into())) } else { Ok(()) }
    }
    fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.data.lock().unwrap().get(key).cloned()
    }
    fn put_raw(&self, key: &str, bytes: &[u8]) {
        self.data.lock().unwrap().insert(key.to_owned(), bytes.to_vec());
    }
    fn all_keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.data.lock().unwrap().keys().cloned().collect();
        k.sort();
        k
    }
}

struct Shared(Arc<TestStore>);

impl Store for Shared {
    fn name(&self) -> &str {
        "test"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            self.0.check()?;
            Ok(self.0.raw(key))
        })
    }
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, _ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.0.check()?;
            self.0.put_raw(key, &value);
            Ok(())
        })
    }
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.0.check()?;
            Ok(self.0.data.lock().unwrap().remove(key).is_some())
        })
    }
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            self.0.check()?;
            let mut d = self.0.data.lock().unwrap();
            let before = d.len();
            d.retain(|k, _| !k.starts_with(prefix));
            Ok((before - d.len()) as u64)
        })
    }
    fn keys<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.0.check()?;
            Ok(self.0.data.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
        })
    }
}

/// Two instances (runtimes) sharing one L2 store and one clock.
fn two_instances() -> (Runtime, Runtime, Arc<TestStore>, ManualClock) {
    let store = Arc::new(TestStore::default());
    let clock = ManualClock::new();
    let make = || {
        Runtime::builder()
            .clock(Clock::Manual(clock.clone()))
            .mount("cache", Mount::memory(1000).l2(Shared(store.clone())).breaker_cooldown(Duration::from_millis(200)))
            .build()
    };
    (make(), make(), store, clock)
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Repo {
    name: String,
    stars: u64,
}

static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1h", group = "github", get_key = |name: &str| name.to_owned(), tags = ["repos"])]
async fn repo(name: &str) -> Result<Repo, String> {
    let n = RUNS.hit() as u64;
    Ok(Repo { name: name.to_owned(), stars: n })
}

#[tokio::test]
async fn an_l2_hit_on_another_instance_skips_the_body_and_fills_its_memory() {
    let (a, b, store, _clock) = two_instances();
    let first = a.scope(repo("tiers/l2-hit")).await.unwrap();
    let runs = RUNS.get();
    // The key written to the store is exactly the storage key.
    assert!(store.all_keys().contains(&repo_key("tiers/l2-hit")));
    assert_eq!(repo_key("tiers/l2-hit"), "github:repo:tiers:l2-hit.json");
    // Instance B has nothing in memory: it reads L2, not the body.
    assert_eq!(b.scope(repo("tiers/l2-hit")).await.unwrap(), first);
    assert_eq!(RUNS.get(), runs, "no body run on B");
    assert_eq!(b.keys("cache", "github:repo:tiers:l2-hit"), vec![repo_key("tiers/l2-hit")], "B's memory was filled");
}

#[tokio::test]
async fn cache_get_on_another_instance_fills_its_memory_for_as_long_as_the_entry_is_fresh() {
    let (a, b, store, clock) = two_instances();
    let opts = larder::Options::new().max_age(Duration::from_secs(60));
    a.cache("cache").set("tiers-get", 7u64, &opts).await;
    let key = a.cache("cache").storage_key("tiers-get");
    assert!(store.raw(&key).is_some(), "A wrote L2");
    assert!(b.keys("cache", &key).is_empty());

    assert_eq!(b.cache("cache").get::<u64>("tiers-get").await, Some(7), "B reads L2");
    assert_eq!(b.keys("cache", &key), vec![key.clone()], "B's memory was filled");
    // B answers from memory now, even with the L2 copy gone behind its back.
    store.data.lock().unwrap().remove(&key);
    assert_eq!(b.cache("cache").get::<u64>("tiers-get").await, Some(7));
    // Not past the entry's freshness: then it is gone for `get` (it knows no stale window).
    clock.advance(Duration::from_secs(61));
    assert_eq!(b.cache("cache").get::<u64>("tiers-get").await, None);
}

#[tokio::test]
async fn has_reads_every_tier_like_get() {
    let (a, b, store, clock) = two_instances();
    let opts = larder::Options::new().max_age(Duration::from_secs(60));
    let (on_a, on_b) = (a.cache("cache").namespace("has"), b.cache("cache").namespace("has"));
    on_a.set("k", 7u64, &opts).await;
    let key = on_a.storage_key("k");
    assert!(b.keys("cache", &key).is_empty(), "B's memory is cold");
    assert!(on_b.has("k").await, "B finds it in L2");
    assert!(!on_b.has("other").await);

    // Deleted (on A, from every tier): B's L2 read finds nothing either.
    assert!(on_a.delete("k").await);
    assert!(!on_b.has("k").await, "after delete");
    assert!(!on_a.has("k").await);

    // Past its max_age: not fresh in memory (A), nor in L2 (B, cold), though L2 still holds it.
    on_a.set("k", 8u64, &opts).await;
    assert!(on_a.has("k").await && on_b.has("k").await);
    clock.advance(Duration::from_secs(61));
    assert!(store.raw(&key).is_some(), "the test store keeps it past its TTL");
    assert!(!on_a.has("k").await, "past max_age in memory");
    assert!(!on_b.has("k").await, "past max_age in L2");
    assert!(b.keys("cache", &key).is_empty(), "has leaves B's memory as it was");
    assert_eq!(on_b.get::<u64>("k").await, None, "as get says");
}

#[tokio::test]
async fn the_stored_entry_has_the_spec_format() {
    let (a, _b, store, clock) = two_instances();
    a.scope(repo("tiers/format")).await.unwrap();
    let raw = store.raw(&repo_key("tiers/format")).unwrap();
    let entry: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(entry["value"]["name"], "tiers/format");
    assert_eq!(entry["mtime"].as_u64(), Some(clock.now_ms()));
    assert_eq!(entry["expires"].as_u64(), Some(clock.now_ms() + 3_600_000));
    assert_eq!(entry["integrity"].as_str().map(str::len), Some(32));
    assert_eq!(entry["tags"], serde_json::json!(["repos"]));
}

#[tokio::test]
async fn an_unreadable_or_foreign_entry_in_l2_is_a_miss() {
    let (a, _b, store, _clock) = two_instances();
    let key = repo_key("tiers/corrupt");
    store.put_raw(&key, b"{\"value\": {\"name\": tru");
    let runs = RUNS.get();
    assert_eq!(a.scope(repo("tiers/corrupt")).await.unwrap().name, "tiers/corrupt");
    assert_eq!(RUNS.get(), runs + 1, "a truncated entry is a miss, not an error");
    let rewritten: serde_json::Value = serde_json::from_slice(&store.raw(&key).unwrap()).unwrap();
    assert_eq!(rewritten["value"]["name"], "tiers/corrupt", "and it was replaced");

    let foreign = repo_key("tiers/foreign");
    store.put_raw(
        &foreign,
        br#"{"value":{"name":"x","stars":1},"mtime":1,"expires":99999999999999,"integrity":"0000","tags":[]}"#,
    );
    let runs = RUNS.get();
    assert_eq!(a.scope(repo("tiers/foreign")).await.unwrap().name, "tiers/foreign");
    assert_eq!(RUNS.get(), runs + 1, "another integrity is never served");
}

#[tokio::test]
async fn invalidate_and_prime_reach_l2() {
    let (a, b, store, _clock) = two_instances();
    a.scope(repo("tiers/inv")).await.unwrap();
    a.scope(repo_invalidate("tiers/inv")).await;
    assert!(store.raw(&repo_key("tiers/inv")).is_none());
    let primed = Repo { name: "primed".into(), stars: 7 };
    a.scope(repo_prime("tiers/inv", primed.clone())).await;
    assert_eq!(b.scope(repo("tiers/inv")).await.unwrap(), primed, "B reads the primed value from L2");
}

#[tokio::test]
async fn a_tag_invalidated_on_one_instance_is_honoured_by_another_reading_l2() {
    let (a, b, _store, _clock) = two_instances();
    a.scope(repo("tiers/tagged")).await.unwrap();
    a.scope(larder::invalidate_tag("repos")).await;
    let runs = RUNS.get();
    b.scope(repo("tiers/tagged")).await.unwrap();
    assert_eq!(RUNS.get(), runs + 1, "B sees the tag event stored in L2: a miss");
}

#[tokio::test]
async fn a_dead_l2_fails_no_call_and_the_breaker_skips_it_then_probes() {
    static DEAD: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h", group = "dead")]
    async fn answer(n: u32) -> u32 {
        DEAD.hit();
        n * 2
    }
    let (a, _b, store, _clock) = two_instances();
    store.down.store(true, Ordering::SeqCst);
    a.scope(async {
        for n in 0..10 {
            assert_eq!(answer(n).await, n * 2, "every call answers while L2 is down");
        }
        assert_eq!(answer(3).await, 6);
    })
    .await;
    let health = a.tier_health("cache");
    assert!(health.errors >= 3, "{health:?}");
    assert!(health.breaker_open, "{health:?}");
    assert!(health.skipped > 0, "after repeated failures L2 is skipped: {health:?}");
    let calls_while_open = store.calls.load(Ordering::SeqCst);
    a.scope(answer(100)).await;
    assert_eq!(store.calls.load(Ordering::SeqCst), calls_while_open, "an open breaker doesn't touch the store");

    // The server comes back; after the cool-down one call probes and L2 is used again.
    store.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await; // the breaker's cool-down is real time
    a.scope(answer(200)).await;
    assert!(!a.tier_health("cache").breaker_open);
    a.scope(answer(201)).await;
    assert!(store.raw(&answer_key(201)).is_some(), "L2 writes resume after the probe");
}
