//! A mount's L2: a [`Store`] behind the failure policy. An L2 error never fails a call: it
//! is logged and counted here, and after repeated failures a circuit breaker skips L2 for a
//! cool-down. Everything above this file sees an L2 operation as "done" or "not done",
//! never as an error.
//!
//! Invalidations are not forgotten when L2 fails. One whose L2 part fails (an error, a
//! timeout, the breaker open) is kept in a pending set, one per target (key, prefix or
//! tag; the newest stamp wins), bounded ([`MAX_PENDING`]: past it, the set collapses into
//! one invalidation of everything, which is always safe). While it is pending, a read of
//! what it covers is refused ([`L2::covers`], [`L2::tags_verdict`]); it is applied as soon
//! as L2 answers again, before the breaker closes.
//!
//! The breaker does not let a user's call discover whether L2 is back: when it opens, a
//! background probe waits for the cool-down, then tries the store for up to a second
//! ([`PROBE_WINDOW`], which is also what a reconnecting client needs after a server
//! restart). When the store answers, the breaker closes and the pending invalidations are
//! applied, many at a time; until each is, reads of what it covers stay refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::mount::tags::{TagVerdict, tag_expired_key, tag_invalidated_key};
use crate::stores::store::Store;

/// How many failures in a row open the breaker.
pub(crate) const BREAKER_THRESHOLD: u32 = 3;
/// The most invalidations kept while L2 fails; past it they collapse into one of everything.
pub(crate) const MAX_PENDING: usize = 10_000;
/// How long the probe tries the store after the cool-down before it opens the breaker again.
pub(crate) const PROBE_WINDOW: Duration = Duration::from_secs(1);
/// How many pending invalidations are applied at once when L2 answers again.
const REPLAY_CONCURRENCY: usize = 32;
/// The key the probe reads (any key would do; this one is never written).
const PROBE_KEY: &str = "_larder:probe.json";

/// A circuit breaker over a store.
struct Breaker {
    failures: AtomicU32,
    open_until: AtomicU64,
    cooldown_ms: u64,
}

impl Breaker {
    fn new(cooldown: Duration) -> Breaker {
        Breaker { failures: AtomicU32::new(0), open_until: AtomicU64::new(0), cooldown_ms: cooldown.as_millis() as u64 }
    }

    fn closed(&self) -> bool {
        self.open_until.load(Ordering::Acquire) == 0
    }

    fn close(&self) {
        self.failures.store(0, Ordering::Release);
        self.open_until.store(0, Ordering::Release);
    }

    /// Counts a failure; true when this one opened the breaker.
    fn failure(&self) -> bool {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        n >= BREAKER_THRESHOLD
            && self
                .open_until
                .compare_exchange(0, Clock::System.now_ms() + self.cooldown_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

/// The health of a mount's L2, for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierHealth {
    /// L2 operations that failed.
    pub errors: u64,
    /// L2 operations skipped because the breaker was open.
    pub skipped: u64,
    /// Whether the breaker is open now (L2 is being skipped).
    pub breaker_open: bool,
    /// Invalidations not yet applied to L2 (kept until it answers again).
    pub pending: usize,
}

/// An invalidation as a store records it, for tools that work on a store directly (the
/// `larder` CLI): [`apply_to`](Invalidation::apply_to) raises its stamp, then deletes.
/// Running instances refuse an entry that a stamp of its key, of a `:`-ended prefix of its
/// key or of one of its tags covers (the stamp is at or after the `born` of the entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Invalidation {
    /// One storage key.
    Key(String),
    /// Every storage key that starts with this (`""`: all).
    Prefix(String),
    /// Every entry with this tag becomes a miss.
    TagInvalidated(String),
    /// Every entry with this tag becomes stale.
    TagExpired(String),
}

impl Invalidation {
    /// Applies it to `store` with `stamp` (an order stamp, see
    /// [`Clock::order_stamp`](crate::Clock::order_stamp)): the stamp is raised (kept for
    /// `ttl`; a tag's for ever), then the entries are deleted. Returns how many.
    ///
    /// Errors: the store's.
    pub async fn apply_to(&self, store: &dyn Store, stamp: u64, ttl: Option<Duration>) -> Result<u64, crate::Error> {
        apply(store, self, stamp, ttl).await
    }
}

use Invalidation as Target;

/// One pending invalidation: its stamp, and how long its L2 marker must live.
#[derive(Clone, Copy)]
struct Pending {
    stamp: u64,
    ttl: Option<Duration>,
}

/// What is told of an invalidation applied late.
type Replayed = Box<dyn Fn(&Invalidation) + Send + Sync>;

/// What the store's user and its background probe share.
struct Shared {
    store: Arc<dyn Store>,
    breaker: Breaker,
    errors: AtomicU64,
    skipped: AtomicU64,
    pending: Mutex<HashMap<Target, Pending>>,
    /// `pending.len()`, read without the lock on every L2 read.
    pending_len: AtomicUsize,
    replaying: AtomicBool,
    /// A task is applying the pending invalidations (or waiting to).
    retrying: AtomicBool,
    /// Told of each pending invalidation once it is applied (the mount tells the other
    /// instances again: one may have read the old entry from L2 in the meantime).
    replayed: std::sync::OnceLock<Replayed>,
}

/// A store behind its failure policy.
pub(crate) struct L2 {
    pub store: Arc<dyn Store>,
    shared: Arc<Shared>,
}

/// The L2 key of the stamp that invalidates everything under `prefix` (a whole key
/// included) that was produced by a run that began at or before it.
pub(crate) fn gone_key(prefix: &str) -> String {
    format!("_larder:gone:{}.json", crate::key::storage_key::escape_key(prefix))
}

/// The stamps that can invalidate `key`: its own, the whole store's, and those of each
/// prefix of it that a clear can name: every `:`-ended one (its group, its function, …) and,
/// within the group, every `.`-ended one (the parent groups of a sub-group `a.b`).
pub(crate) fn gone_keys(key: &str) -> impl Iterator<Item = String> + '_ {
    let group_end = key.find(':').unwrap_or(0);
    let parents = key[..group_end].match_indices('.').map(|(i, _)| &key[..=i]);
    let segments = key.match_indices(':').map(|(i, _)| &key[..=i]).filter(move |p| p.len() < key.len());
    std::iter::once(key).chain(std::iter::once("")).chain(parents).chain(segments).map(gone_key)
}

impl L2 {
    pub fn new(store: Arc<dyn Store>, cooldown: Duration) -> L2 {
        let shared = Arc::new(Shared {
            store: Arc::clone(&store),
            breaker: Breaker::new(cooldown),
            errors: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            pending_len: AtomicUsize::new(0),
            replaying: AtomicBool::new(false),
            retrying: AtomicBool::new(false),
            replayed: std::sync::OnceLock::new(),
        });
        L2 { store, shared }
    }

    /// Calls `f` with each pending invalidation once it is applied.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // only a bus listens
    pub fn on_replayed(&self, f: impl Fn(&Invalidation) + Send + Sync + 'static) {
        let _ = self.shared.replayed.set(Box::new(f));
    }

    pub fn health(&self) -> TierHealth {
        let s = &*self.shared;
        TierHealth {
            errors: s.errors.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            breaker_open: !s.breaker.closed(),
            pending: s.pending_len.load(Ordering::Acquire),
        }
    }

    /// Runs one store operation under the failure policy; `None` when it failed or was skipped.
    async fn guard<T>(&self, what: &str, key: &str, op: impl Future<Output = Result<T, crate::Error>>) -> Option<T> {
        let s = &self.shared;
        if !s.breaker.closed() {
            s.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match op.await {
            Ok(v) => {
                s.breaker.failures.store(0, Ordering::Release);
                if s.pending_len.load(Ordering::Acquire) > 0 {
                    Shared::replay_in_background(s);
                }
                Some(v)
            }
            Err(e) => {
                tracing::warn!(target: "larder", store = self.store.name(), key, error = %e, "store error during {what}; going on without L2");
                Shared::failed(s);
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

    /// Deletes `key` (not an invalidation: for an unreadable entry).
    pub async fn delete(&self, key: &str) -> bool {
        self.guard("delete", key, self.store.delete(key)).await.unwrap_or(false)
    }

    /// Replaces the bytes of `key` keeping its TTL; `Some(false)` when nothing was there,
    /// `None` when the store failed (or cannot keep a TTL: then the key is deleted).
    pub async fn replace(&self, key: &str, bytes: Vec<u8>) -> Option<bool> {
        if !self.shared.breaker.closed() {
            self.shared.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match self.store.replace(key, bytes).await {
            Ok(done) => Some(done),
            Err(e) => {
                tracing::debug!(target: "larder", store = self.store.name(), key, error = %e, "replace failed; deleting the entry instead");
                self.guard("delete", key, self.store.delete(key)).await.map(|_| false)
            }
        }
    }

    /// Applies an invalidation to L2 (its stamp first, then the delete), or keeps it for
    /// when L2 answers again. `Some(n)`: applied, `n` entries deleted.
    pub async fn invalidate(&self, target: Target, stamp: u64, ttl: Option<Duration>) -> Option<u64> {
        let s = &self.shared;
        let key = match &target {
            Target::Key(k) | Target::Prefix(k) | Target::TagInvalidated(k) | Target::TagExpired(k) => k.as_str(),
        };
        match self.guard("an invalidation (kept until L2 answers)", key, apply(&*s.store, &target, stamp, ttl)).await {
            Some(n) => {
                s.settled(&target, stamp);
                Some(n)
            }
            None => {
                s.keep(target, Pending { stamp, ttl });
                Shared::replay_in_background(s);
                None
            }
        }
    }

    /// Whether a pending invalidation covers `key` (the key itself or a prefix of it) for
    /// an entry whose run began at `born`: then L2 must not be read for it.
    pub fn covers(&self, key: &str, born: Option<u64>) -> bool {
        if self.shared.pending_len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let pending = self.shared.pending.lock();
        pending.iter().any(|(target, p)| {
            born.is_none_or(|b| p.stamp >= b)
                && match target {
                    Target::Key(k) => k == key,
                    Target::Prefix(prefix) => key.starts_with(prefix.as_str()),
                    _ => false,
                }
        })
    }

    /// What pending tag events say of an entry with these tags whose run began at `born`.
    pub fn tags_verdict(&self, tags: &[impl AsRef<str>], born: u64) -> TagVerdict {
        if tags.is_empty() || self.shared.pending_len.load(Ordering::Acquire) == 0 {
            return TagVerdict::Valid;
        }
        let pending = self.shared.pending.lock();
        let mut verdict = TagVerdict::Valid;
        for tag in tags {
            let tag = tag.as_ref().to_owned();
            if pending.get(&Target::TagInvalidated(tag.clone())).is_some_and(|p| p.stamp >= born) {
                return TagVerdict::Invalid;
            }
            if pending.get(&Target::TagExpired(tag)).is_some_and(|p| p.stamp >= born) {
                verdict = TagVerdict::Expired;
            }
        }
        verdict
    }
}

/// One invalidation in the store: the stamp, then the delete.
async fn apply(
    store: &dyn Store,
    target: &Invalidation,
    stamp: u64,
    ttl: Option<Duration>,
) -> Result<u64, crate::Error> {
    match target {
        Target::Key(key) => {
            store.raise(&gone_key(key), stamp, ttl).await?;
            Ok(u64::from(store.delete(key).await?))
        }
        Target::Prefix(prefix) => {
            // Deletes first: the stamp may be under the prefix (`""`: everything).
            let n = store.delete_prefix(prefix).await?;
            store.raise(&gone_key(prefix), stamp, ttl).await?;
            Ok(n)
        }
        // Entries with the tag stay in the store until their TTL: the stamp must outlive them.
        Target::TagInvalidated(tag) => store.raise(&tag_invalidated_key(tag), stamp, None).await.map(|_| 0),
        Target::TagExpired(tag) => store.raise(&tag_expired_key(tag), stamp, None).await.map(|_| 0),
    }
}

impl Shared {
    /// Keeps an invalidation for later (the newest stamp of a target wins).
    fn keep(&self, target: Target, p: Pending) {
        let mut pending = self.pending.lock();
        let slot = pending.entry(target).or_insert(p);
        if p.stamp > slot.stamp {
            *slot = p;
        }
        if pending.len() > MAX_PENDING {
            // Too many to keep one by one: one invalidation of everything covers them all.
            let stamp = pending.values().map(|p| p.stamp).max().unwrap_or(p.stamp);
            let ttl = pending.values().map(|p| p.ttl).max_by_key(|t| t.unwrap_or(Duration::MAX)).flatten();
            pending.clear();
            pending.insert(Target::Prefix(String::new()), Pending { stamp, ttl });
            tracing::warn!(target: "larder", store = self.store.name(), "too many pending invalidations: everything in L2 from before now will be invalidated when it answers again");
        }
        self.pending_len.store(pending.len(), Ordering::Release);
    }

    /// Forgets a pending invalidation of `target` that `stamp` covers (it was applied).
    fn settled(&self, target: &Target, stamp: u64) {
        if self.pending_len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut pending = self.pending.lock();
        if pending.get(target).is_some_and(|p| p.stamp <= stamp) {
            pending.remove(target);
        }
        self.pending_len.store(pending.len(), Ordering::Release);
    }

    /// Counts a failure; the first one that opens the breaker starts the probe.
    fn failed(self: &Arc<Self>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.breaker.failure() {
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                // No runtime to probe from: close again after the cool-down, unchecked.
                self.breaker.close();
                return;
            };
            handle.spawn(Arc::clone(self).probe());
        }
    }

    /// After each cool-down, tries the store for up to [`PROBE_WINDOW`] (the first try may
    /// only find the dead connection; the client reconnects behind it), applies the
    /// pending invalidations, and closes the breaker; or opens it for another cool-down.
    async fn probe(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(self.breaker.cooldown_ms)).await;
            let start = tokio::time::Instant::now();
            loop {
                if self.store.get(PROBE_KEY).await.is_ok() {
                    // L2 answers: used again at once, except for what a pending invalidation
                    // covers (reads of it are refused until the invalidation is applied,
                    // which starts now).
                    self.breaker.close();
                    tracing::info!(target: "larder", store = self.store.name(), "L2 answers again: breaker closed");
                    if self.pending_len.load(Ordering::Acquire) > 0 {
                        self.replay_in_background();
                    }
                    return;
                }
                if start.elapsed() >= PROBE_WINDOW {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.breaker.open_until.store(Clock::System.now_ms() + self.breaker.cooldown_ms, Ordering::Release);
        }
    }

    /// Makes sure one task applies the pending invalidations: now if the store answers,
    /// else again and again (every 100 ms to 1 s) until it does, even if no call comes.
    fn replay_in_background(self: &Arc<Self>) {
        if self.retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.retrying.store(false, Ordering::Release);
            return;
        };
        let me = Arc::clone(self);
        handle.spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                if me.breaker.closed() {
                    if me.replay().await {
                        if me.pending_len.load(Ordering::Acquire) == 0 {
                            break;
                        }
                        continue;
                    }
                    if !me.replaying.load(Ordering::Acquire) {
                        me.failed();
                    }
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
                if Arc::strong_count(&me) == 1 {
                    break;
                }
            }
            me.retrying.store(false, Ordering::Release);
            // Kept while this task was finishing: start again.
            if me.pending_len.load(Ordering::Acquire) > 0 && me.breaker.closed() {
                me.replay_in_background();
            }
        });
    }

    /// Applies every invalidation pending when it starts, [`REPLAY_CONCURRENCY`] at a time;
    /// false if the store failed on one (those applied are forgotten all the same) or
    /// another replay is under way.
    async fn replay(&self) -> bool {
        use futures_util::StreamExt as _;
        if self.replaying.swap(true, Ordering::AcqRel) {
            return false;
        }
        let todo: Vec<(Target, Pending)> = self.pending.lock().iter().map(|(t, p)| (t.clone(), *p)).collect();
        let failures = futures_util::stream::iter(todo)
            .map(|(target, p)| async move {
                match apply(&*self.store, &target, p.stamp, p.ttl).await {
                    Ok(_) => {
                        self.settled(&target, p.stamp);
                        if let Some(tell) = self.replayed.get() {
                            tell(&target);
                        }
                        0
                    }
                    Err(e) => {
                        tracing::debug!(target: "larder", store = self.store.name(), error = %e, "replaying a pending invalidation failed");
                        1
                    }
                }
            })
            .buffer_unordered(REPLAY_CONCURRENCY)
            .fold(0usize, |n, failed| async move { n + failed })
            .await;
        self.replaying.store(false, Ordering::Release);
        failures == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_invalidated_by_its_own_stamp_and_its_prefixes() {
        let keys: Vec<String> = gone_keys("g:n:k.json").collect();
        let expect: Vec<String> = ["g:n:k.json", "", "g:", "g:n:"].iter().map(|p| gone_key(p)).collect();
        assert_eq!(keys, expect);
        let keys: Vec<String> = gone_keys("a.b:n:k:x.json").collect();
        let expect: Vec<String> =
            ["a.b:n:k:x.json", "", "a.", "a.b:", "a.b:n:", "a.b:n:k:"].iter().map(|p| gone_key(p)).collect();
        assert_eq!(keys, expect);
    }
}
