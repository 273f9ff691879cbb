//! A miss: a cold key whose body returns at once, for larder and the caches it is compared
//! with, each with its single-flight way of computing a missing value where it has one.
//!
//! Every iteration asks for a key never asked before; each cache is bounded to 100,000
//! entries, so once warm every miss also evicts (what a long-running cache pays). Same
//! harness for all: `b.to_async(&rt)` on one current-thread tokio runtime.
//!
//! - `larder`: `#[larder::cached(max_age = "1h")]` (single-flight per key).
//! - `moka_sync_get_with`: moka's `sync::Cache::get_with` (single-flight per key).
//! - `moka_future_get_with`: moka's `future::Cache::get_with`.
//! - `cached_concurrent`: `#[cached::concurrent_cached(ttl_secs = 3600)]` (unbounded: the
//!   macro has no size bound with a TTL; no single-flight).
//! - `quick_cache_get_or_insert_async`: quick_cache's placeholder-guarded insert
//!   (single-flight per key).
//! - `rwlock_hashmap`: a read that misses, then a write (no bound, no single-flight).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

const BOUND: u64 = 100_000;

#[larder::cached(max_age = "1h")]
async fn larder_u64(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[cached::concurrent_cached(ttl_secs = 3600)]
async fn cached_u64(x: u64) -> u64 {
    x.wrapping_mul(3)
}

/// A key never asked before (per contender: each has its own counter).
fn next(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed)
}

fn miss(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let larder_rt = larder::Runtime::builder().mount("cache", larder::Mount::memory(BOUND)).build();
    let moka_sync = moka::sync::Cache::<u64, u64>::new(BOUND);
    let moka_future = moka::future::Cache::<u64, u64>::new(BOUND);
    let quick = quick_cache::sync::Cache::<u64, u64>::new(BOUND as usize);
    let map = RwLock::new(HashMap::<u64, u64>::new());
    let keys: [AtomicU64; 6] = Default::default();

    // Each answers with the body's value (a miss is still a correct answer).
    rt.block_on(larder_rt.scope(async { assert_eq!(larder_u64(7).await, 21) }));
    assert_eq!(moka_sync.get_with(7, || 21), 21);

    let mut g = c.benchmark_group("miss_u64");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.bench_function("larder", |b| {
        b.to_async(&rt).iter(|| larder_rt.scope(async { black_box(larder_u64(next(&keys[0])).await) }))
    });
    g.bench_function("moka_sync_get_with", |b| {
        b.to_async(&rt).iter(|| async {
            let k = next(&keys[1]);
            black_box(moka_sync.get_with(k, || k.wrapping_mul(3)))
        })
    });
    g.bench_function("moka_future_get_with", |b| {
        b.to_async(&rt).iter(|| async {
            let k = next(&keys[2]);
            black_box(moka_future.get_with(k, async move { k.wrapping_mul(3) }).await)
        })
    });
    g.bench_function("cached_concurrent", |b| {
        b.to_async(&rt).iter(|| async { black_box(cached_u64(next(&keys[3])).await) })
    });
    g.bench_function("quick_cache_get_or_insert_async", |b| {
        b.to_async(&rt).iter(|| async {
            let k = next(&keys[4]);
            black_box(quick.get_or_insert_async(&k, async { Ok::<u64, ()>(k.wrapping_mul(3)) }).await)
        })
    });
    g.bench_function("rwlock_hashmap", |b| {
        b.to_async(&rt).iter(|| async {
            let k = next(&keys[5]);
            let found = map.read().unwrap().get(&k).copied();
            black_box(match found {
                Some(v) => v,
                None => *map.write().unwrap().entry(k).or_insert(k.wrapping_mul(3)),
            })
        })
    });
    g.finish();
    assert!(larder_rt.memory_len("cache") <= BOUND, "larder stays within its bound");
}

criterion_group!(benches, miss);
criterion_main!(benches);
