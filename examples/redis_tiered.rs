//! Two instances sharing one Redis: memory (L1) in front of Redis (L2) in each, and the bus
//! between them. Shows, with timings, a miss on A, an L2 hit on B (the body does not run),
//! an L1 hit on B, and an invalidation on A that B hears of (its next call is a miss).
//!
//! Run it against a Redis server (started with `redis-server`, for example):
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example redis_tiered --features redis
//! ```
//!
//! Both instances live in this process for the demo; in production they are separate
//! processes or machines configured the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use larder::RedisStore;
use larder::{Mount, Runtime, cached};

/// How many times the slow upstream really ran.
static UPSTREAM_CALLS: AtomicU64 = AtomicU64::new(0);

/// A slow upstream (200 ms). Each real run returns a new version, so you can tell a fresh
/// value from a cached one.
#[cached(max_age = "10m", group = "demo", get_key = |id: &u64| *id)]
async fn profile(id: u64) -> Result<String, String> {
    let n = UPSTREAM_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(format!("profile {id} v{n}"))
}

/// One instance: memory in front of Redis, and the bus to the other instances.
async fn instance(url: &str) -> Result<Runtime, String> {
    let store = RedisStore::builder(url)
        .connect()
        .await
        .map_err(|e| format!("{e}\nStart a server (`redis-server`) or point REDIS_URL at one."))?;
    let rt = Runtime::builder().mount("cache", Mount::memory(10_000).l2(store)).bus(url).build();
    // The bus connects in the background; wait for it so the demo is deterministic.
    let started = Instant::now();
    while !rt.bus_connected() {
        if started.elapsed() > Duration::from_secs(5) {
            return Err(format!("the bus did not connect to {url} within 5 s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(rt)
}

/// Calls `profile(1)` on `rt` and prints what happened and how long it took.
async fn call(who: &str, rt: &Runtime, note: &str) {
    let before = UPSTREAM_CALLS.load(Ordering::SeqCst);
    let started = Instant::now();
    let value = rt.scope(profile(1)).await.expect("the upstream does not fail");
    let took = started.elapsed();
    let ran = if UPSTREAM_CALLS.load(Ordering::SeqCst) > before { "body ran" } else { "body not run" };
    println!("{who}  profile(1) = {value:<14} in {:>9}   {ran:<12}  {note}", fmt(took));
}

fn fmt(d: Duration) -> String {
    if d >= Duration::from_millis(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

#[tokio::main]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let (a, b) = match (instance(&url).await, instance(&url).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("redis_tiered: cannot use Redis at {url}: {e}");
            std::process::exit(1);
        }
    };
    println!("two instances, A and B: memory (L1) + Redis at {url} (L2) + the bus\n");

    // Start clean: a previous run may have left the entry in Redis.
    a.scope(profile_clear()).await;

    call("A", &a, "miss: nothing in L1 or L2, the upstream ran; stored in A's L1 and in Redis").await;
    call("B", &b, "L2 hit: found in Redis, decoded, put in B's L1").await;
    call("B", &b, "L1 hit: from B's memory, no Redis round trip").await;

    println!("\nA: profile_invalidate(1): deleted from A's L1 and from Redis, and announced on the bus");
    let started = Instant::now();
    a.scope(profile_invalidate(1)).await;
    let key = profile_key(1);
    while !b.keys("cache", &key).is_empty() {
        if started.elapsed() > Duration::from_secs(5) {
            eprintln!("redis_tiered: B did not hear of the invalidation within 5 s");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    println!("B: dropped its L1 copy of {key} {} after the invalidation\n", fmt(started.elapsed()));

    call("B", &b, "miss: B's copy is gone and Redis has none, the upstream ran again").await;
    call("A", &a, "L2 hit: A reads what B just stored").await;

    a.scope(profile_clear()).await;
}
