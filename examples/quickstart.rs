//! larder in one minute: a miss, a hit, a stale answer refreshed in the background, and
//! an invalidation, each printed with how long it took.
//!
//! Run it with `cargo run --example quickstart`. No set-up: the cache is the embedded
//! in-memory default.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use larder::cached;

/// How many times the slow upstream was really asked.
static UPSTREAM_CALLS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
struct UpstreamError(String);

/// A slow upstream: a star count that takes 300 ms to fetch. Each real fetch sees one
/// more star, so you can tell a fresh value from a cached one.
#[cached(max_age = "1s", swr, group = "github", get_key = |repo: &str| repo.to_owned())]
async fn stars(repo: &str) -> Result<u64, UpstreamError> {
    let n = UPSTREAM_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    if repo.is_empty() {
        return Err(UpstreamError("no such repository".into()));
    }
    Ok(100_000 + n)
}

async fn show(what: &str, note: &str) {
    let started = Instant::now();
    let value = stars("rust-lang/rust").await;
    let took = started.elapsed();
    let value = match value {
        Ok(v) => v.to_string(),
        Err(e) => format!("error: {}", e.0),
    };
    println!("{what:<8} stars(\"rust-lang/rust\") = {value:<7} in {:>10}   {note}", fmt(took));
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
    println!("larder quickstart: a 300 ms upstream behind #[cached(max_age = \"1s\", swr)]");
    println!("key: {}\n", stars_key("rust-lang/rust"));

    show("miss", "(nothing cached: the upstream ran)").await;
    show("hit", "(fresh from memory: the upstream did not run)").await;

    println!("\n… waiting 1.2 s: the entry is now older than max_age …\n");
    tokio::time::sleep(Duration::from_millis(1200)).await;

    show("stale", "(the old value at once; a refresh started in the background)").await;
    tokio::time::sleep(Duration::from_millis(400)).await; // let the background refresh land
    show("hit", "(the refreshed value, stored by the background run)").await;

    stars_invalidate("rust-lang/rust").await;
    println!("\ninvalidated with stars_invalidate(\"rust-lang/rust\")\n");
    show("miss", "(gone from the cache: the upstream ran again)").await;
    show("hit", "").await;

    println!("\nthe upstream ran {} times for 6 calls", UPSTREAM_CALLS.load(Ordering::SeqCst));
}
