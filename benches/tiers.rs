//! Tiers, side by side with what they are made of (issue 4, "Speed"):
//!
//! - `redis_l2_hit`: a `#[cached]` call answered from Redis with L1 cold, against a raw
//!   redis-rs `GET` of the same bytes on the same kind of connection (a `ConnectionManager`
//!   to the same server). Target: within 1.2x. `raw_get_decode` (the `GET` plus
//!   `serde_json::from_slice` of the entry) is shown too, to split the difference.
//! - `l1_hit`: a `#[cached]` hit in memory, on a mount with a Redis L2 (and a bus) against
//!   a memory-only mount. Target: within 1.1x.
//! - `fs_hit`: a `#[cached]` call answered from an `FsStore` with L1 cold, against
//!   `std::fs::read` + `serde_json::from_slice` of the same file on the calling thread.
//!   Target: within 1.2x. `raw_read_decode_blocking_pool` does the same inside
//!   `tokio::task::spawn_blocking`, to show what that hop costs (`FsStore` takes it only
//!   for files over 64 KiB, or with `blocking_reads(true)`). The paired run also times `FsStore::get` + decode alone (the
//!   store's hit, without the runtime's cold path) against the same raw read.
//!
//! How L1 is kept cold without touching Redis or the disk: `POOL` entries are stored in L2
//! beforehand, and the larder contender reads them in turn, each from a runtime that has
//! never seen it (a runtime with the same shared L2 store, replaced every `POOL` calls,
//! outside the timing). So every measured call is the real cold path of a long-running
//! process: L1 lookup, L2 read, decode, integrity and tag checks, and the L1 fill. The raw
//! contenders read the same `POOL` keys (files) in the same order. `iter_custom` times each
//! call alone; before each one the bench checks that its key is not in L1, and after each
//! group that the body never ran while measured (every answer came from L2).
//! (A memory tier of capacity 0 or 1 does not work for this: moka stores nothing at
//! capacity 0, and at capacity 1 its admission policy rejects the newcomer instead of
//! evicting the other key.)
//!
//! Every contender runs on one current-thread tokio runtime. The bench starts its own
//! `redis-server` (from `PATH`) on a free loopback port.
//!
//! On a busy machine, contenders measured one after the other (criterion's way) see
//! different loads. So after criterion, `cargo bench` also runs a paired measurement: the
//! two sides of each comparison alternate call by call (L1: batch by batch) in one loop,
//! and the medians of those timings, and their ratio, are printed with the targets.
//!
//! Run: `cargo bench --bench tiers --features redis,fs`.

#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use larder::FsStore;
use larder::RedisStore;
use larder::Store;
use larder::{Entry, Mount, Runtime};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// A typical cached value: about 400 bytes of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    login: String,
    name: String,
    email: String,
    followers: u64,
    roles: Vec<String>,
    bio: String,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[larder::cached(max_age = "1d", group = "bench", get_key = |id: &u64| *id)]
async fn profile(id: u64) -> Profile {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Profile {
        id,
        login: format!("user-{id}"),
        name: "Ada Lovelace".into(),
        email: format!("user-{id}@example.invalid"),
        followers: 1815,
        roles: vec!["admin".into(), "maintainer".into(), "reviewer".into()],
        bio: "Wrote the first program for the Analytical Engine, and notes on it that are \
              longer than the paper they annotate. Likes caching computed results."
            .repeat(2),
    }
}

/// The key of the L1 hit benchmark.
const ID: u64 = 1;
/// How many entries the cold contenders read in turn.
const POOL: u64 = 512;
/// Calls per side in the paired measurements of the cold paths.
const PAIRED_CALLS: usize = 10_000;
/// Batches (of `L1_BATCH` calls) per side in the paired measurement of L1 hits.
const PAIRED_BATCHES: usize = 4_000;
const L1_BATCH: u32 = 100;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

async fn redis_store(url: &str) -> RedisStore {
    RedisStore::connect(url).await.expect("connect to the bench's redis-server")
}

/// A runtime in front of `store` whose memory tier has never seen any of the pool.
fn cold_runtime(store: &Arc<dyn Store>) -> Runtime {
    Runtime::builder().mount("cache", Mount::memory(4 * POOL).l2_shared(Arc::clone(store))).build()
}

/// Stores the pool's entries in `store` (each call a miss that writes through).
async fn fill_pool(store: &Arc<dyn Store>) {
    let rt = cold_runtime(store);
    for id in 0..POOL {
        rt.scope(profile(id)).await;
    }
}

/// The larder side of a cold benchmark: which runtime, and the next id of the pool.
struct Cold {
    store: Arc<dyn Store>,
    rt: Runtime,
    next: u64,
}

impl Cold {
    fn new(store: &Arc<dyn Store>) -> Rc<RefCell<Cold>> {
        Rc::new(RefCell::new(Cold { rt: cold_runtime(store), store: Arc::clone(store), next: 0 }))
    }

    /// The runtime and the id of the next call; a new runtime once the pool went round.
    fn next(&mut self) -> (Runtime, u64) {
        if self.next == POOL {
            self.rt = cold_runtime(&self.store);
            self.next = 0;
        }
        self.next += 1;
        (self.rt.clone(), self.next - 1)
    }
}

/// One larder call for an entry that is in L2 and not in L1; its time alone.
async fn cold_call(cold: &RefCell<Cold>) -> Duration {
    let (rt, id) = cold.borrow_mut().next();
    assert!(rt.keys("cache", &profile_key(id)).is_empty(), "L1 must be cold before each timed call");
    let started = Instant::now();
    let v = rt.scope(profile(black_box(id))).await;
    let took = started.elapsed();
    black_box(v);
    took
}

/// The ids 0..POOL in turn, for the raw contenders.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> usize {
        let id = self.0;
        self.0 = (self.0 + 1) % POOL;
        id as usize
    }
}

/// Everything the Redis comparisons need.
struct RedisSide {
    store: Arc<dyn Store>,
    conn: ConnectionManager,
    /// The full Redis keys of the pool.
    keys: Vec<String>,
}

impl RedisSide {
    async fn new(url: &str) -> RedisSide {
        let store: Arc<dyn Store> = Arc::new(redis_store(url).await);
        fill_pool(&store).await;
        let conn =
            ConnectionManager::new(redis::Client::open(url).expect("a URL")).await.expect("a connection manager");
        let keys =
            (0..POOL).map(|id| format!("{}{}", larder::stores::redis::DEFAULT_PREFIX, profile_key(id))).collect();
        let side = RedisSide { store, conn, keys };
        let entry: Entry<Profile> = serde_json::from_slice(&side.get(7).await).expect("an entry");
        let v = cold_runtime(&side.store).scope(profile(7)).await;
        assert_eq!(v, entry.value, "larder answers what Redis holds");
        side
    }

    /// A raw `GET` of the pool's entry `id`.
    async fn get(&self, id: usize) -> Vec<u8> {
        let mut conn = self.conn.clone();
        redis::cmd("GET").arg(black_box(&self.keys[id])).query_async(&mut conn).await.expect("GET")
    }

    /// One raw `GET` (and decode), timed.
    async fn raw_call(&self, id: usize, decode: bool) -> Duration {
        let started = Instant::now();
        let bytes = self.get(id).await;
        if decode {
            let e: Entry<Profile> = serde_json::from_slice(&bytes).expect("an entry");
            let took = started.elapsed();
            black_box(e);
            took
        } else {
            let took = started.elapsed();
            black_box(bytes);
            took
        }
    }
}

/// Everything the fs comparisons need.
struct FsSide {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    paths: Vec<PathBuf>,
}

impl FsSide {
    async fn new() -> FsSide {
        let dir = tempfile::Builder::new().prefix("larder-bench-fs-").tempdir().expect("a temp dir");
        let fs = FsStore::open(dir.path()).await.expect("an fs store");
        let paths = (0..POOL).map(|id| fs.path_of(&profile_key(id)).expect("a valid key")).collect();
        let store: Arc<dyn Store> = Arc::new(fs);
        fill_pool(&store).await;
        let side = FsSide { _dir: dir, store, paths };
        let v = cold_runtime(&side.store).scope(profile(7)).await;
        assert_eq!(v, read(&side.paths[7]).value, "larder answers what the file holds");
        side
    }
}

/// `std::fs::read` + `serde_json::from_slice`.
fn read(path: &Path) -> Entry<Profile> {
    let bytes = std::fs::read(path).expect("read the entry file");
    serde_json::from_slice(&bytes).expect("an entry")
}

fn read_inline(path: &Path) -> Duration {
    let started = Instant::now();
    let e = read(black_box(path));
    let took = started.elapsed();
    black_box(e);
    took
}

async fn read_blocking_pool(path: &Path) -> Duration {
    let path = path.to_path_buf();
    let started = Instant::now();
    let e = tokio::task::spawn_blocking(move || read(black_box(&path))).await.expect("no panic");
    let took = started.elapsed();
    black_box(e);
    took
}

/// Sums `iters` timings of `call`.
/// A store's `get` of `key` + `serde_json::from_slice` of the entry (no runtime), timed.
async fn store_get_decode(store: &Arc<dyn Store>, key: &str) -> Duration {
    let started = Instant::now();
    let bytes = store.get(black_box(key)).await.expect("get").expect("stored");
    let e: Entry<Profile> = serde_json::from_slice(&bytes).expect("an entry");
    let took = started.elapsed();
    black_box(e);
    took
}

async fn sum<F: Future<Output = Duration>>(iters: u64, mut call: impl FnMut() -> F) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        total += call().await;
    }
    total
}

/// `iters` L1 hits on `rt`.
async fn l1_hits(rt: &Runtime, iters: u64) -> Duration {
    rt.scope(async move {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(profile(black_box(ID)).await);
        }
        started.elapsed()
    })
    .await
}

async fn l1_runtimes(url: &str) -> (Runtime, Runtime) {
    let memory_only = Runtime::builder().mount("cache", Mount::memory(10_000)).build();
    let tiered = Runtime::builder().mount("cache", Mount::memory(10_000).l2(redis_store(url).await)).bus(url).build();
    while !tiered.bus_connected() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    memory_only.scope(profile(ID)).await;
    tiered.scope(profile(ID)).await;
    (memory_only, tiered)
}

fn criterion_benches(c: &mut Criterion, url: &str) {
    let tokio = tokio_rt();

    // (a) Redis L2 hit, L1 cold, against a raw GET.
    let redis = tokio.block_on(RedisSide::new(url));
    let runs = RUNS.load(Ordering::SeqCst);
    let mut g = c.benchmark_group("redis_l2_hit");
    let cold = Cold::new(&redis.store);
    g.bench_function("larder_l1_cold", |b| b.to_async(&tokio).iter_custom(|iters| sum(iters, || cold_call(&cold))));
    for decode in [false, true] {
        let ids = RefCell::new(Ids(0));
        let name = if decode { "raw_get_decode" } else { "raw_get" };
        g.bench_function(name, |b| {
            b.to_async(&tokio).iter_custom(|iters| {
                sum(iters, || {
                    let id = ids.borrow_mut().next();
                    redis.raw_call(id, decode)
                })
            })
        });
    }
    g.finish();
    assert_eq!(RUNS.load(Ordering::SeqCst), runs, "every measured larder call was an L2 hit");

    // (b) L1 hit, tiered against memory-only.
    let (memory_only, tiered) = tokio.block_on(l1_runtimes(url));
    let runs = RUNS.load(Ordering::SeqCst);
    let mut g = c.benchmark_group("l1_hit");
    for (name, rt) in [("memory_only", &memory_only), ("tiered_redis", &tiered)] {
        g.bench_function(name, |b| b.to_async(&tokio).iter_custom(|iters| l1_hits(rt, iters)));
    }
    g.finish();
    assert_eq!(RUNS.load(Ordering::SeqCst), runs, "every measured call was an L1 hit");

    // (c) fs hit, L1 cold, against std::fs::read + serde_json::from_slice.
    let fs = tokio.block_on(FsSide::new());
    let runs = RUNS.load(Ordering::SeqCst);
    let mut g = c.benchmark_group("fs_hit");
    let cold = Cold::new(&fs.store);
    g.bench_function("larder_l1_cold", |b| b.to_async(&tokio).iter_custom(|iters| sum(iters, || cold_call(&cold))));
    let mut ids = Ids(0);
    g.bench_function("raw_read_decode", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| read_inline(&fs.paths[ids.next()])).sum())
    });
    let ids = RefCell::new(Ids(0));
    g.bench_function("raw_read_decode_blocking_pool", |b| {
        b.to_async(&tokio).iter_custom(|iters| {
            sum(iters, || {
                let id = ids.borrow_mut().next();
                read_blocking_pool(&fs.paths[id])
            })
        })
    });
    g.finish();
    assert_eq!(RUNS.load(Ordering::SeqCst), runs, "every measured larder call was an fs hit");
}

/// The median of `samples`, in ns.
fn median(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_nanos() as f64
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e3 { format!("{:.2} µs", ns / 1e3) } else { format!("{ns:.0} ns") }
}

fn report(what: &str, ours: (&str, f64), theirs: (&str, f64), target: f64) {
    let ratio = ours.1 / theirs.1;
    let verdict = if ratio <= target { "within" } else { "OVER" };
    println!(
        "  {what:<13} {} {:>10}  vs  {} {:>10}   {ratio:.2}x  ({verdict} {target}x)",
        ours.0,
        fmt_ns(ours.1),
        theirs.0,
        fmt_ns(theirs.1)
    );
}

/// The paired measurements (see the module documentation).
fn paired(url: &str) {
    let tokio = tokio_rt();
    println!("\npaired medians (the two sides alternate in one loop):");
    tokio.block_on(async {
        let redis = RedisSide::new(url).await;
        let cold = Cold::new(&redis.store);
        let mut ids = Ids(0);
        let (mut ours, mut raw, mut raw_decode, mut store_decode) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let runs = RUNS.load(Ordering::SeqCst);
        for i in 0..PAIRED_CALLS {
            let id = ids.next();
            // Alternate which side goes first.
            if i % 2 == 0 {
                ours.push(cold_call(&cold).await);
                raw.push(redis.raw_call(id, false).await);
            } else {
                raw.push(redis.raw_call(id, false).await);
                ours.push(cold_call(&cold).await);
            }
            raw_decode.push(redis.raw_call(id, true).await);
            store_decode.push(store_get_decode(&redis.store, &profile_key(id as u64)).await);
        }
        assert_eq!(RUNS.load(Ordering::SeqCst), runs, "every larder call was an L2 hit");
        let ours = median(&mut ours);
        report("redis_l2_hit", ("larder_l1_cold", ours), ("raw_get", median(&mut raw)), 1.2);
        report("redis_l2_hit", ("larder_l1_cold", ours), ("raw_get_decode", median(&mut raw_decode)), 1.2);
        println!("  (RedisStore::get + decode, without the runtime: {})", fmt_ns(median(&mut store_decode)));

        let (memory_only, tiered) = l1_runtimes(url).await;
        let (mut mem, mut tier) = (Vec::new(), Vec::new());
        for i in 0..PAIRED_BATCHES {
            let (first, second) = if i % 2 == 0 { (&memory_only, &tiered) } else { (&tiered, &memory_only) };
            let a = l1_hits(first, L1_BATCH.into()).await / L1_BATCH;
            let b = l1_hits(second, L1_BATCH.into()).await / L1_BATCH;
            let (m, t) = if i % 2 == 0 { (a, b) } else { (b, a) };
            mem.push(m);
            tier.push(t);
        }
        report("l1_hit", ("tiered_redis", median(&mut tier)), ("memory_only", median(&mut mem)), 1.1);

        // Where the difference comes from: the same comparison without a network, with
        // larder's in-process `MemoryStore` as L2, shows the CPU cost of larder's cold path
        // (L1 lookup, decode, integrity check, L1 fill) over the store's `get` + decode.
        let mem: Arc<dyn Store> = Arc::new(larder::MemoryStore::new());
        fill_pool(&mem).await;
        let cold = Cold::new(&mem);
        let keys: Vec<String> = (0..POOL).map(profile_key).collect();
        let mut ids = Ids(0);
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        let runs = RUNS.load(Ordering::SeqCst);
        for _ in 0..PAIRED_CALLS {
            ours.push(cold_call(&cold).await);
            raw.push(store_get_decode(&mem, &keys[ids.next()]).await);
        }
        assert_eq!(RUNS.load(Ordering::SeqCst), runs, "every larder call was an L2 hit");
        let (ours, raw) = (median(&mut ours), median(&mut raw));
        println!(
            "  (cpu cost of the cold path, MemoryStore as L2: larder {} vs get + decode {}: {} more per call)",
            fmt_ns(ours),
            fmt_ns(raw),
            fmt_ns(ours - raw)
        );

        let fs = FsSide::new().await;
        let cold = Cold::new(&fs.store);
        let mut ids = Ids(0);
        let (mut ours, mut inline, mut pool, mut store_decode) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let runs = RUNS.load(Ordering::SeqCst);
        for i in 0..PAIRED_CALLS {
            let id = ids.next();
            let path = &fs.paths[id];
            if i % 2 == 0 {
                ours.push(cold_call(&cold).await);
                inline.push(read_inline(path));
            } else {
                inline.push(read_inline(path));
                ours.push(cold_call(&cold).await);
            }
            pool.push(read_blocking_pool(path).await);
            store_decode.push(store_get_decode(&fs.store, &profile_key(id as u64)).await);
        }
        assert_eq!(RUNS.load(Ordering::SeqCst), runs, "every larder call was an fs hit");
        let (ours, inline) = (median(&mut ours), median(&mut inline));
        report("fs_hit", ("larder_l1_cold", ours), ("raw_read_decode", inline), 1.2);
        report("fs_hit", ("larder_l1_cold", ours), ("raw_read_decode_blocking_pool", median(&mut pool)), 1.2);
        report("fs_hit", ("fs_store_get_decode", median(&mut store_decode)), ("raw_read_decode", inline), 1.2);
    });
}

fn main() {
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(2))
        .configure_from_args();
    let server = redis_server::RedisServer::start();
    let url = server.url();
    criterion_benches(&mut c, &url);
    c.final_summary();
    // Only under `cargo bench` (not `cargo test`, which runs each benchmark once).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list") {
        paired(&url);
    }
}
