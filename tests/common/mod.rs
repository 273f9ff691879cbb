//! Shared pieces of the integration tests: a runtime with a manual clock, gates, run
//! counters, a timeout; the HTTP harness in `http.rs` (feature `http`). A real
//! `redis-server` is in `redis.rs`, included by path where needed.
#![allow(dead_code)]

#[cfg(feature = "http")]
pub mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
}

/// Awaits `fut`, failing the test (instead of hanging it) if it takes more than 20 s.
pub async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(20), fut).await.expect("the awaited outcome never came (20 s)")
}
