//! A mount's L2: a [`Store`] behind the failure policy. An L2 error never fails a call: it
//! is logged and counted here, and after repeated failures a circuit breaker skips L2 for a
//! cool-down, then lets one call probe it. Everything above this file sees an L2 operation
//! as "done" or "not done", never as an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::stores::store::Store;

/// How many failures in a row open the breaker.
pub(crate) const BREAKER_THRESHOLD: u32 = 3;

/// A circuit breaker over a store.
pub(crate) struct Breaker {
    failures: AtomicU32,
    open_until: AtomicU64,
    cooldown_ms: u64,
}

impl Breaker {
    fn new(cooldown: Duration) -> Breaker {
        Breaker { failures: AtomicU32::new(0), open_until: AtomicU64::new(0), cooldown_ms: cooldown.as_millis() as u64 }
    }

    /// Whether a call may use the store now. After the cool-down, one caller gets through
    /// (the probe) and the breaker stays open for the others for another cool-down.
    fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = Clock::System.now_ms();
        now >= until
            && self
                .open_until
                .compare_exchange(until, now + self.cooldown_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn success(&self) {
        self.failures.store(0, Ordering::Release);
        self.open_until.store(0, Ordering::Release);
    }

    fn failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= BREAKER_THRESHOLD {
            self.open_until.store(Clock::System.now_ms() + self.cooldown_ms, Ordering::Release);
        }
    }

    fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }
}

/// The health of a mount's L2, for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierHealth {
    /// L2 operations that failed.
    pub errors: u64,
    /// L2 operations skipped because the breaker was open.
    pub skipped: u64,
    /// Whether the breaker is open now (L2 is being skipped).
    pub breaker_open: bool,
}

/// A store behind its failure policy.
pub(crate) struct L2 {
    pub store: Arc<dyn Store>,
    breaker: Breaker,
    errors: AtomicU64,
    skipped: AtomicU64,
}

impl L2 {
    pub fn new(store: Arc<dyn Store>, cooldown: Duration) -> L2 {
        L2 { store, breaker: Breaker::new(cooldown), errors: AtomicU64::new(0), skipped: AtomicU64::new(0) }
    }

    pub fn health(&self) -> TierHealth {
        TierHealth {
            errors: self.errors.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            breaker_open: self.breaker.is_open(),
        }
    }

    /// Runs one store operation under the failure policy; `None` when it failed or was skipped.
    async fn guard<T>(&self, what: &str, key: &str, op: impl Future<Output = Result<T, crate::Error>>) -> Option<T> {
        if !self.breaker.allow() {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match op.await {
            Ok(v) => {
                self.breaker.success();
                Some(v)
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.breaker.failure();
                tracing::warn!(target: "larder", store = self.store.name(), key, error = %e, "store error during {what}; going on without L2");
                None
            }
        }
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.guard("get", key, self.store.get(key)).await.flatten()
    }

    pub async fn get_many(&self, keys: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
        self.guard("get_many", keys.first().map_or("", String::as_str), self.store.get_many(keys)).await
    }

    pub async fn set(&self, key: &str, bytes: Vec<u8>, ttl: Option<Duration>) -> bool {
        self.guard("set", key, self.store.set(key, bytes, ttl)).await.is_some()
    }

    pub async fn delete(&self, key: &str) -> bool {
        self.guard("delete", key, self.store.delete(key)).await.unwrap_or(false)
    }

    pub async fn delete_prefix(&self, prefix: &str) -> u64 {
        self.guard("delete_prefix", prefix, self.store.delete_prefix(prefix)).await.unwrap_or(0)
    }
}
