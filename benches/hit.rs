//! Hit latency of a warm key: larder against the `cached` crate, moka, quick_cache and a
//! plain `RwLock<HashMap>` read (the floor).
//!
//! Every contender runs in the same harness: `b.to_async(&rt).iter(..)` on one
//! current-thread tokio runtime, with its input and output passed through `black_box`.
//! Every key is warmed (and checked to be a hit) before it is measured.
//!
//! Anchors:
//! - `cached_ttl`: `#[cached::cached(ttl_secs = …)]` on an `async fn`: a `TtlCache` behind
//!   an `async_lock::RwLock` whose write lock every hit takes (a `TtlCache` read is not
//!   `CachedRead`); a `&str` argument is keyed by an owned `String` (the macro calls
//!   `to_owned()` on every call, hit or not).
//! - `cached_concurrent_ttl`: `#[cached::concurrent_cached(ttl_secs = …)]`: a
//!   `ShardedTtlCache` (one `parking_lot` read lock per hit, `Instant::now()` for the TTL),
//!   same keying.
//! - Every crate has its default features (`cached` hashes with `ahash`), as its users get it;
//!   `cached` adds `async` and `time_stores`, which `ttl_secs` on an `async fn` needs.
//! - `hit_1k`: a 1 KiB `Vec<u8>` value, whose clone (an allocation and a copy) is most of a
//!   hit; `clone_only` is that clone alone, and `larder_arc` the same function returning
//!   `Arc<Vec<u8>>` (serde's `rc` feature): a hit then costs an `Arc` clone.
//! - `moka_future`, `moka_sync`: `Cache::get` on a cache bounded to 10,000 entries with a
//!   one-hour TTL (what larder's memory tier is configured like).
//! - `quick_cache`: `sync::Cache::get` on a cache bounded to 10,000 entries (no TTL: the
//!   crate has none).
//! - `rwlock_hashmap`: `std::sync::RwLock<HashMap>` read: no expiry, no bound.
//! - `larder_get_key` (string key only): the same function keyed by `get_key` (the argument
//!   itself, which has a `/` and a `@`, so it is escaped per part), not by the argument digest.
//! - `harness_empty`: the harness alone (an `async` block returning its input).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

const TTL: Duration = Duration::from_secs(3600);
const CAPACITY: u64 = 10_000;
const U64_KEY: u64 = 42;
/// 24 bytes.
const STR_KEY: &str = "rust-lang/rust@1.95.0-ab";

/// Body runs of each cached function: each must run once (the warm-up), never while measured.
static LARDER_U64_RUNS: AtomicUsize = AtomicUsize::new(0);
static LARDER_SYNC_U64_RUNS: AtomicUsize = AtomicUsize::new(0);
static LARDER_STR_RUNS: AtomicUsize = AtomicUsize::new(0);
static LARDER_GET_KEY_RUNS: AtomicUsize = AtomicUsize::new(0);
static CACHED_TTL_U64_RUNS: AtomicUsize = AtomicUsize::new(0);
static CACHED_TTL_STR_RUNS: AtomicUsize = AtomicUsize::new(0);
static CACHED_CONCURRENT_TTL_U64_RUNS: AtomicUsize = AtomicUsize::new(0);
static CACHED_CONCURRENT_TTL_STR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[larder::cached(max_age = "1h")]
async fn larder_u64(x: u64) -> u64 {
    LARDER_U64_RUNS.fetch_add(1, Ordering::Relaxed);
    x.wrapping_mul(3)
}

/// The same function as a plain `fn`: its hit path is the async one's.
#[larder::cached(max_age = "1h")]
fn larder_sync_u64(x: u64) -> u64 {
    LARDER_SYNC_U64_RUNS.fetch_add(1, Ordering::Relaxed);
    x.wrapping_mul(3)
}

#[larder::cached(max_age = "1h")]
async fn larder_str(s: &str) -> u64 {
    LARDER_STR_RUNS.fetch_add(1, Ordering::Relaxed);
    s.len() as u64
}

/// The `get_key` of `larder_get_key`: the argument itself (escaped into `rust-lang:rust@….json`
/// parts by larder).
fn same_str(s: &str) -> &str {
    s
}

#[larder::cached(max_age = "1h", get_key = same_str)]
async fn larder_get_key(s: &str) -> u64 {
    LARDER_GET_KEY_RUNS.fetch_add(1, Ordering::Relaxed);
    s.len() as u64
}

#[cached::cached(ttl_secs = 3600)]
async fn cached_ttl_u64(x: u64) -> u64 {
    CACHED_TTL_U64_RUNS.fetch_add(1, Ordering::Relaxed);
    x.wrapping_mul(3)
}

#[cached::cached(ttl_secs = 3600)]
async fn cached_ttl_str(s: &str) -> u64 {
    CACHED_TTL_STR_RUNS.fetch_add(1, Ordering::Relaxed);
    s.len() as u64
}

#[cached::concurrent_cached(ttl_secs = 3600)]
async fn cached_concurrent_ttl_u64(x: u64) -> u64 {
    CACHED_CONCURRENT_TTL_U64_RUNS.fetch_add(1, Ordering::Relaxed);
    x.wrapping_mul(3)
}

#[cached::concurrent_cached(ttl_secs = 3600)]
async fn cached_concurrent_ttl_str(s: &str) -> u64 {
    CACHED_CONCURRENT_TTL_STR_RUNS.fetch_add(1, Ordering::Relaxed);
    s.len() as u64
}

/// Panics unless every body ran exactly once: what was measured were hits only.
fn assert_ran_once(runs: &[&AtomicUsize]) {
    for (i, r) in runs.iter().enumerate() {
        let n = r.load(Ordering::Relaxed);
        assert_eq!(n, 1, "body #{i} of this group ran {n} times: the benchmark did not measure hits only");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a current-thread runtime")
}

fn moka_future<K>() -> moka::future::Cache<K, u64>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    moka::future::Cache::builder().max_capacity(CAPACITY).time_to_live(TTL).build()
}

fn moka_sync<K>() -> moka::sync::Cache<K, u64>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    moka::sync::Cache::builder().max_capacity(CAPACITY).time_to_live(TTL).build()
}

fn quick_cache<K: std::hash::Hash + Eq, V: Clone>() -> quick_cache::sync::Cache<K, V> {
    quick_cache::sync::Cache::new(CAPACITY as usize)
}

fn hit_u64(c: &mut Criterion) {
    let rt = runtime();
    let want = U64_KEY.wrapping_mul(3);

    let mf = moka_future::<u64>();
    let ms = moka_sync::<u64>();
    let qc = quick_cache::<u64, u64>();
    let map = RwLock::new(HashMap::<u64, u64>::new());

    // Warm every key, and check that the next call is a hit with the right value.
    rt.block_on(async {
        assert_eq!(larder_u64(U64_KEY).await, want);
        assert_eq!(larder_sync_u64(U64_KEY), want);
        assert_eq!(cached_ttl_u64(U64_KEY).await, want);
        assert_eq!(cached_concurrent_ttl_u64(U64_KEY).await, want);
        mf.insert(U64_KEY, want).await;
        ms.insert(U64_KEY, want);
        qc.insert(U64_KEY, want);
        map.write().unwrap().insert(U64_KEY, want);

        assert_eq!(larder_u64(U64_KEY).await, want);
        assert_eq!(mf.get(&U64_KEY).await, Some(want));
        assert_eq!(ms.get(&U64_KEY), Some(want));
    });
    assert!(larder::Runtime::current().memory_len("cache") >= 1, "larder holds the warm key");
    assert_eq!(larder_sync_u64(U64_KEY), want);
    assert_ran_once(&[&LARDER_U64_RUNS, &LARDER_SYNC_U64_RUNS, &CACHED_TTL_U64_RUNS, &CACHED_CONCURRENT_TTL_U64_RUNS]);

    let mut g = c.benchmark_group("hit_u64");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    g.bench_function("harness_empty", |b| b.to_async(&rt).iter(|| async { black_box(black_box(U64_KEY)) }));
    g.bench_function("larder", |b| b.to_async(&rt).iter(|| async { black_box(larder_u64(black_box(U64_KEY)).await) }));
    g.bench_function("larder_sync_fn", |b| {
        b.to_async(&rt).iter(|| async { black_box(larder_sync_u64(black_box(U64_KEY))) })
    });
    g.bench_function("cached_ttl", |b| {
        b.to_async(&rt).iter(|| async { black_box(cached_ttl_u64(black_box(U64_KEY)).await) })
    });
    g.bench_function("cached_concurrent_ttl", |b| {
        b.to_async(&rt).iter(|| async { black_box(cached_concurrent_ttl_u64(black_box(U64_KEY)).await) })
    });
    g.bench_function("moka_future", |b| {
        b.to_async(&rt).iter(|| async { black_box(mf.get(black_box(&U64_KEY)).await) })
    });
    g.bench_function("moka_sync", |b| b.to_async(&rt).iter(|| async { black_box(ms.get(black_box(&U64_KEY))) }));
    g.bench_function("quick_cache", |b| b.to_async(&rt).iter(|| async { black_box(qc.get(black_box(&U64_KEY))) }));
    g.bench_function("rwlock_hashmap", |b| {
        b.to_async(&rt).iter(|| async { black_box(map.read().unwrap().get(black_box(&U64_KEY)).copied()) })
    });
    g.finish();
    assert_eq!(larder_sync_u64(U64_KEY), want);
    assert_ran_once(&[&LARDER_U64_RUNS, &LARDER_SYNC_U64_RUNS, &CACHED_TTL_U64_RUNS, &CACHED_CONCURRENT_TTL_U64_RUNS]);
}

fn hit_str24(c: &mut Criterion) {
    assert_eq!(STR_KEY.len(), 24);
    let rt = runtime();
    let want = STR_KEY.len() as u64;
    // The argument lives in a `String`, as it would in a real caller.
    let arg = String::from(STR_KEY);

    let mf = moka_future::<String>();
    let ms = moka_sync::<String>();
    let qc = quick_cache::<String, u64>();
    let map = RwLock::new(HashMap::<String, u64>::new());

    rt.block_on(async {
        assert_eq!(larder_str(&arg).await, want);
        assert_eq!(larder_get_key(&arg).await, want);
        assert_eq!(cached_ttl_str(&arg).await, want);
        assert_eq!(cached_concurrent_ttl_str(&arg).await, want);
        mf.insert(arg.clone(), want).await;
        ms.insert(arg.clone(), want);
        qc.insert(arg.clone(), want);
        map.write().unwrap().insert(arg.clone(), want);

        assert_eq!(larder_str(&arg).await, want);
        assert_eq!(larder_get_key(&arg).await, want);
        assert_eq!(mf.get(arg.as_str()).await, Some(want));
        assert_eq!(ms.get(arg.as_str()), Some(want));
    });
    assert_ran_once(&[&LARDER_STR_RUNS, &LARDER_GET_KEY_RUNS, &CACHED_TTL_STR_RUNS, &CACHED_CONCURRENT_TTL_STR_RUNS]);

    let mut g = c.benchmark_group("hit_str24");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    let s: &str = &arg;
    g.bench_function("harness_empty", |b| b.to_async(&rt).iter(|| async { black_box(black_box(s).len()) }));
    g.bench_function("larder", |b| b.to_async(&rt).iter(|| async { black_box(larder_str(black_box(s)).await) }));
    g.bench_function("larder_get_key", |b| {
        b.to_async(&rt).iter(|| async { black_box(larder_get_key(black_box(s)).await) })
    });
    g.bench_function("cached_ttl", |b| {
        b.to_async(&rt).iter(|| async { black_box(cached_ttl_str(black_box(s)).await) })
    });
    g.bench_function("cached_concurrent_ttl", |b| {
        b.to_async(&rt).iter(|| async { black_box(cached_concurrent_ttl_str(black_box(s)).await) })
    });
    g.bench_function("moka_future", |b| b.to_async(&rt).iter(|| async { black_box(mf.get(black_box(s)).await) }));
    g.bench_function("moka_sync", |b| b.to_async(&rt).iter(|| async { black_box(ms.get(black_box(s))) }));
    g.bench_function("quick_cache", |b| b.to_async(&rt).iter(|| async { black_box(qc.get(black_box(s))) }));
    g.bench_function("rwlock_hashmap", |b| {
        b.to_async(&rt).iter(|| async { black_box(map.read().unwrap().get(black_box(s)).copied()) })
    });
    g.finish();
    assert_ran_once(&[&LARDER_STR_RUNS, &LARDER_GET_KEY_RUNS, &CACHED_TTL_STR_RUNS, &CACHED_CONCURRENT_TTL_STR_RUNS]);
}

static LARDER_1K_RUNS: AtomicUsize = AtomicUsize::new(0);
static LARDER_ARC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[larder::cached(max_age = "1h")]
async fn larder_1k(x: u64) -> Vec<u8> {
    LARDER_1K_RUNS.fetch_add(1, Ordering::Relaxed);
    vec![x as u8; 1024]
}

#[larder::cached(max_age = "1h")]
async fn larder_arc(x: u64) -> std::sync::Arc<Vec<u8>> {
    LARDER_ARC_RUNS.fetch_add(1, Ordering::Relaxed);
    std::sync::Arc::new(vec![x as u8; 1024])
}

fn hit_1k(c: &mut Criterion) {
    let rt = runtime();
    let want = vec![U64_KEY as u8; 1024];
    let ms = moka::sync::Cache::<u64, Vec<u8>>::builder().max_capacity(CAPACITY).time_to_live(TTL).build();
    let qc = quick_cache::<u64, Vec<u8>>();
    let map = RwLock::new(HashMap::<u64, Vec<u8>>::new());
    rt.block_on(async {
        assert_eq!(larder_1k(U64_KEY).await, want);
        assert_eq!(*larder_arc(U64_KEY).await, want);
        assert_eq!(larder_1k(U64_KEY).await, want);
        assert_eq!(*larder_arc(U64_KEY).await, want);
    });
    ms.insert(U64_KEY, want.clone());
    qc.insert(U64_KEY, want.clone());
    map.write().unwrap().insert(U64_KEY, want.clone());
    assert_ran_once(&[&LARDER_1K_RUNS, &LARDER_ARC_RUNS]);

    let mut g = c.benchmark_group("hit_1k");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.bench_function("clone_only", |b| b.to_async(&rt).iter(|| async { black_box(black_box(&want).clone()) }));
    g.bench_function("larder", |b| b.to_async(&rt).iter(|| async { black_box(larder_1k(black_box(U64_KEY)).await) }));
    g.bench_function("larder_arc", |b| {
        b.to_async(&rt).iter(|| async { black_box(larder_arc(black_box(U64_KEY)).await) })
    });
    g.bench_function("moka_sync", |b| b.to_async(&rt).iter(|| async { black_box(ms.get(black_box(&U64_KEY))) }));
    g.bench_function("quick_cache", |b| b.to_async(&rt).iter(|| async { black_box(qc.get(black_box(&U64_KEY))) }));
    g.bench_function("rwlock_hashmap", |b| {
        b.to_async(&rt).iter(|| async { black_box(map.read().unwrap().get(black_box(&U64_KEY)).cloned()) })
    });
    g.finish();
    assert_ran_once(&[&LARDER_1K_RUNS, &LARDER_ARC_RUNS]);
}

criterion_group!(benches, hit_u64, hit_str24, hit_1k);
criterion_main!(benches);
