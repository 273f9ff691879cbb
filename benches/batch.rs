//! Batches: `Cache::get_or_set_many` over 100 keys of which 10 are missing, against 100
//! `get_or_set` calls one after the other (what a loop over the keys does), with the 90
//! present keys in memory (`l1`) and in Redis with memory cold (`redis_l2`). The loader and
//! the factory answer at once, so the numbers are larder's own cost; with a real database,
//! the batch also saves 9 of its 10 round trips.
//!
//! Each measured iteration starts from the same state, prepared outside the timing: the 10
//! missing keys deleted, and for `redis_l2` a runtime whose memory has never seen the keys.
//! The bench starts its own `redis-server` (from `PATH`) on a free loopback port.
//!
//! The same through the attribute: `item_many` (the generated `NAME_many`: one memory
//! pass, one L2 round trip, then the function's own call for each of the 10 missing keys)
//! against 100 calls of `item` in a loop (`l1/item_many`, `l1/100_item`, and `redis_l2/…`).
//!
//! Run: `cargo bench --bench batch --features redis`.

#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use larder::{Cache, Mount, Options, RedisStore, Runtime};

const KEYS: usize = 100;
const MISSING: usize = 10;

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("item:{i}")).collect()
}

fn opts() -> Options {
    Options::new().max_age(Duration::from_secs(3600))
}

/// The batch: one call, one loader call for the missing keys.
async fn batch(cache: &Cache, keys: &[String]) -> usize {
    let got = cache
        .get_or_set_many(keys, &opts(), |missing: Vec<String>| async move {
            Ok::<_, larder::Error>(missing.into_iter().map(|k| (k.clone(), k)).collect::<HashMap<_, _>>())
        })
        .await
        .expect("no error");
    got.iter().flatten().count()
}

/// The loop: one `get_or_set` per key.
async fn singles(cache: &Cache, keys: &[String]) -> usize {
    let mut n = 0;
    for k in keys {
        let owned = k.clone();
        let v: String =
            cache.get_or_set(k, &opts(), move || async move { Ok::<_, larder::Error>(owned) }).await.unwrap();
        n += usize::from(!v.is_empty());
    }
    n
}

/// The attribute's function: the key `i` holds `i * 2`.
#[larder::cached(max_age = "1h", group = "bench", get_key = |i: &u64| *i)]
async fn item(i: u64) -> u64 {
    i * 2
}

/// The ids the attribute's lines ask for, and the storage keys of the last `MISSING`.
fn ids() -> Vec<u64> {
    (0..KEYS as u64).collect()
}

fn missing_item_keys() -> Vec<String> {
    ids()[KEYS - MISSING..].iter().map(|i| i.to_string()).collect()
}

/// The generated batch, or a loop of single calls.
async fn items(many: bool) -> usize {
    if many {
        item_many(ids()).await.len()
    } else {
        let mut n = 0;
        for i in ids() {
            n += usize::from(item(i).await == i * 2);
        }
        n
    }
}

/// `iters` runs of `run`, each timed, each after an untimed `prepare` whose output it is
/// given; every run must answer all `KEYS`.
async fn timed<T>(iters: u64, mut prepare: impl AsyncFnMut() -> T, mut run: impl AsyncFnMut(&T) -> usize) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let ready = prepare().await;
        let start = Instant::now();
        let n = run(&ready).await;
        total += start.elapsed();
        assert_eq!(black_box(n), KEYS);
    }
    total
}

/// Fills every key, then deletes the last `MISSING`.
async fn prepare(cache: &Cache, keys: &[String]) {
    for k in keys {
        cache.set(k, k.clone(), &opts()).await;
    }
    cache.delete_many(&keys[KEYS - MISSING..]).await;
}

fn main() {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let server = redis_server::RedisServer::start();
    let url = server.url();
    let keys = keys();
    let memory_rt = Runtime::builder().build();
    let memory = memory_rt.cache("cache");
    let redis_runtime = |url: &str| {
        let store = RedisStore::builder(url).connect_lazy().expect("a valid URL");
        let rt = Runtime::builder().mount("cache", Mount::memory(10_000).l2(store)).build();
        let cache = rt.cache("cache");
        (rt, cache)
    };
    tokio.block_on(async {
        prepare(&memory, &keys).await;
        let (_, r) = redis_runtime(&url);
        prepare(&r, &keys).await;
    });

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("batch_100_keys_10_missing");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    for (name, many) in [("l1/get_or_set_many", true), ("l1/100_get_or_set", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                tokio.block_on(timed(
                    iters,
                    async || memory.delete_many(&keys[KEYS - MISSING..]).await,
                    async |_| if many { batch(&memory, &keys).await } else { singles(&memory, &keys).await },
                ))
            })
        });
    }
    for (name, many) in [("redis_l2/get_or_set_many", true), ("redis_l2/100_get_or_set", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                tokio.block_on(timed(
                    iters,
                    async || {
                        // A cold memory tier in front of Redis, and the 10 keys gone from it.
                        let (_, cache) = redis_runtime(&url);
                        cache.delete_many(&keys[KEYS - MISSING..]).await;
                        let (_, cache) = redis_runtime(&url);
                        // Connected before the timing (the store connects on first use).
                        let _ = cache.get::<String>("warm-up").await;
                        cache
                    },
                    async |cache| if many { batch(cache, &keys).await } else { singles(cache, &keys).await },
                ))
            })
        });
    }
    // Through the attribute: `item`'s keys are `bench:item:{i}.json`.
    let item_cache = |cache: &Cache| cache.namespace("bench").namespace("item");
    for (name, many) in [("l1/item_many", true), ("l1/100_item", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                tokio.block_on(memory_rt.scope(async {
                    items(false).await;
                    timed(
                        iters,
                        async || item_cache(&memory).delete_many(&missing_item_keys()).await,
                        async |_| items(many).await,
                    )
                    .await
                }))
            })
        });
    }
    for (name, many) in [("redis_l2/item_many", true), ("redis_l2/100_item", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                tokio.block_on(async {
                    // Every key in Redis, once.
                    let (filler, _) = redis_runtime(&url);
                    filler.scope(items(false)).await;
                    timed(
                        iters,
                        async || {
                            // A cold memory tier in front of Redis, and the 10 keys gone from it.
                            let (_, old) = redis_runtime(&url);
                            item_cache(&old).delete_many(&missing_item_keys()).await;
                            let (rt, cache) = redis_runtime(&url);
                            let _ = cache.get::<String>("warm-up").await;
                            rt
                        },
                        async |rt| rt.scope(items(many)).await,
                    )
                    .await
                })
            })
        });
    }
    g.finish();
    c.final_summary();
}
