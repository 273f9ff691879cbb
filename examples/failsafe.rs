//! Fail-safe in one minute: while the "upstream" is failing, `grace` answers with the last
//! good value instead of an error, and `grace_backoff` stops hammering the upstream.
//!
//! Run it with `cargo run --example failsafe`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use larder::cached;

static UPSTREAM_CALLS: AtomicU64 = AtomicU64::new(0);
static UPSTREAM_DOWN: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone)]
struct UpstreamError(&'static str);

/// An exchange rate from a flaky upstream: fresh for 1 s, and if the upstream fails, the
/// last good value may answer for up to 1 h more; after a failure, the upstream is left
/// alone for 2 s.
#[cached(max_age = "1s", grace = "1h", grace_backoff = "2s")]
async fn rate(pair: &str) -> Result<f64, UpstreamError> {
    UPSTREAM_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    if UPSTREAM_DOWN.load(Ordering::SeqCst) {
        return Err(UpstreamError("503 Service Unavailable"));
    }
    Ok(if pair == "EUR/USD" { 1.0842 } else { 1.0 })
}

async fn ask(note: &str) {
    let before = UPSTREAM_CALLS.load(Ordering::SeqCst);
    let started = Instant::now();
    let answer = rate("EUR/USD").await;
    let took = started.elapsed();
    let called = UPSTREAM_CALLS.load(Ordering::SeqCst) - before;
    let answer = match answer {
        Ok(v) => format!("Ok({v})"),
        Err(e) => format!("Err({})", e.0),
    };
    println!("{answer:<34} in {:>7.1} ms, upstream called {called}x   {note}", took.as_secs_f64() * 1e3);
}

#[tokio::main]
async fn main() {
    println!("larder fail-safe: #[cached(max_age = \"1s\", grace = \"1h\", grace_backoff = \"2s\")]\n");
    ask("(miss: the upstream answered)").await;
    ask("(hit)").await;

    UPSTREAM_DOWN.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    println!("\n… the upstream goes down, and the entry is past max_age …\n");
    ask("(grace: the upstream failed, the last good value answered)").await;
    ask("(grace, backed off: the upstream was not called at all)").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    ask("(backoff over: tried again, failed again, grace again)").await;

    UPSTREAM_DOWN.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    println!("\n… the upstream is back …\n");
    ask("(miss: a fresh value again)").await;

    let s = rate_stats();
    println!(
        "\nstats: {} hits, {} misses, {} body runs, {} errors, {} grace answers",
        s.hits, s.misses, s.runs, s.errors, s.grace_answers
    );
}
