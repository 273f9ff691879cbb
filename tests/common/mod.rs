//! Shared pieces of the integration tests, included by every test crate with `mod common;`:
//!
//! - here: a runtime with a manual clock, gates, run counters, and bounded waits (a test that
//!   would hang fails instead, saying what it waited for);
//! - `fs.rs`: what a store wrote under a directory;
//! - `http.rs` (feature `http`): an axum app on a loopback port and a client for it;
//! - `redis.rs`: a real `redis-server` per test (the tiers bench includes it by path);
//! - `store.rs`: what a store that wraps another passes straight through.
//!
//! Not every test crate uses every helper: dead code is allowed here, once for all.
#![allow(dead_code)]

pub mod fs;
#[cfg(feature = "http")]
pub mod http;
pub mod redis;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use larder::{Clock, ManualClock, Runtime};
use tokio::sync::watch;

/// A fresh runtime with a manual clock: every test gets its own cache and time.
pub fn runtime() -> (Runtime, ManualClock) {
    let clock = ManualClock::new();
    let rt = Runtime::builder().clock(Clock::Manual(clock.clone())).build();
    (rt, clock)
}

/// A gate that bodies wait on until the test opens it.
#[derive(Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    pub fn new() -> Gate {
        Gate(Arc::new(watch::channel(false).0))
    }
    pub fn open(&self) {
        self.0.send_replace(true);
    }
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// Counts body (or handler) runs and lets a test wait for the n-th one. Clones share the
/// count. Use it as `static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);`, or clone it
/// into a handler.
#[derive(Clone)]
pub struct Runs(Arc<Counted>);

struct Counted {
    count: AtomicUsize,
    tx: watch::Sender<usize>,
}

impl Default for Runs {
    fn default() -> Runs {
        Runs::new()
    }
}

impl Runs {
    pub fn new() -> Runs {
        Runs(Arc::new(Counted { count: AtomicUsize::new(0), tx: watch::channel(0).0 }))
    }
    /// Called by a body; returns this run's number (1-based).
    pub fn hit(&self) -> usize {
        let n = self.0.count.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.tx.send_replace(n);
        n
    }
    pub fn get(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }
    /// Waits until at least `n` runs have started.
    pub async fn reached(&self, n: usize) {
        let mut rx = self.0.tx.subscribe();
        let _ = rx.wait_for(|v| *v >= n).await;
    }
    /// Like [`hit`](Self::hit), but every run after the first then waits for `gate` to open.
    pub async fn hit_holding_reruns(&self, gate: &Gate) -> usize {
        let n = self.hit();
        if n > 1 {
            gate.wait().await;
        }
        n
    }
}

/// How long a bounded wait waits before it fails the test.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test (instead of hanging it) if it takes more than
/// [`PATIENCE`]; `what` names the awaited outcome in the failure.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(PATIENCE, fut).await.unwrap_or_else(|_| panic!("timed out ({PATIENCE:?}): {what}"))
}

/// Retries `check`, yielding between tries, until it holds; fails the test after [`PATIENCE`], naming `what`.
pub async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    within(what, async {
        while !check().await {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// Runs `fut` in `rt`'s scope on a task of its own.
pub fn spawn_scoped<F>(rt: &Runtime, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = rt.clone();
    tokio::spawn(async move { rt.scope(fut).await })
}

/// One instance of the cluster tests: a memory tier (10,000 entries) in front of the
/// shared Redis (300 ms connect and reply timeouts, the breaker's `cooldown`) as mount
/// `cache`, and the bus, connected.
#[cfg(feature = "redis")]
pub async fn redis_instance(server: &redis::RedisServer, cooldown: Duration) -> Runtime {
    let store = larder::RedisStore::builder(server.url())
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .connect_lazy()
        .expect("a valid URL");
    let rt = Runtime::builder()
        .mount("cache", larder::Mount::memory(10_000).l2(store).breaker_cooldown(cooldown))
        .bus(server.url())
        .build();
    wait_for_bus(&rt).await;
    rt
}

/// Waits until `rt`'s bus has subscribed (a message published before that would never
/// reach it).
pub async fn wait_for_bus(rt: &Runtime) {
    within("the bus connects", async {
        while !rt.bus_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Waits until `rt` holds nothing under `prefix` in the memory of `mount` any more (a bus
/// message has made it drop its copy); `what` names the message in a failure.
pub async fn dropped_from_memory(what: &str, rt: &Runtime, mount: &str, prefix: &str) {
    within(what, async {
        while !rt.keys(mount, prefix).is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}
