//! The tiers of a mount: the memory tier (L1) and an optional store (L2), and the
//! operations that span them. The L2 wrapper owns the failure policy (SPEC §6): an L2
//! error never fails a call; it is logged and counted, and after repeated failures a
//! circuit breaker skips L2 for a cool-down, then lets one call probe it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::Clock;
use crate::entry::Entry;
use crate::key::{Key, escape_key};
use crate::runtime::LiveMount;
use crate::store::Store;

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

/// The L2 key of a tag's timestamps.
pub(crate) fn tag_key(tag: &str) -> String {
    format!("_larder:tags:{}.json", escape_key(tag))
}

/// A tag's events in L2, in ms since the epoch (so that every instance agrees).
#[derive(Debug, Default, Clone, Copy, Serialize, serde::Deserialize)]
pub(crate) struct TagStamps {
    #[serde(default)]
    pub invalidated: u64,
    #[serde(default)]
    pub expired: u64,
}

/// An entry read from L2, checked against its tags.
pub(crate) struct FromL2<V> {
    pub value: V,
    pub mtime: u64,
    pub expires: u64,
    pub tags: Vec<Box<str>>,
    /// The entry's integrity, parsed (`None`: not a 128-bit hex number).
    pub integrity: Option<u128>,
    /// A tag was expired after the entry was produced.
    pub expired: bool,
}

/// The SPEC §3 entry as [`LiveMount::read_l2`] decodes it: the integrity and the tags
/// borrowed from the bytes where they can be (no allocation for the integrity).
#[derive(serde::Deserialize)]
struct Read<'a, V> {
    value: V,
    mtime: u64,
    expires: u64,
    #[serde(borrow)]
    integrity: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    tags: Vec<std::borrow::Cow<'a, str>>,
}

/// A change that other instances must hear of.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Change<'a> {
    Set(&'a str),
    Delete(&'a str),
    Expire(&'a str),
    Clear(&'a str),
    InvalidateTag(&'a str),
    ExpireTag(&'a str),
}

impl LiveMount {
    /// Tells the other instances (feature `redis`, with a bus); a no-op otherwise.
    pub(crate) fn announce(&self, change: Change<'_>) {
        #[cfg(feature = "redis")]
        if let Some(link) = &self.bus {
            use crate::bus::BusOp;
            let op = match change {
                Change::Set(k) => BusOp::Set { keys: vec![k.to_owned()] },
                Change::Delete(k) => BusOp::Delete { keys: vec![k.to_owned()] },
                Change::Expire(k) => BusOp::Expire { keys: vec![k.to_owned()] },
                Change::Clear(p) => BusOp::Clear { prefix: p.to_owned() },
                Change::InvalidateTag(t) => BusOp::InvalidateTag { tag: t.to_owned() },
                Change::ExpireTag(t) => BusOp::ExpireTag { tag: t.to_owned() },
            };
            link.publish(&self.name, op);
        }
        #[cfg(not(feature = "redis"))]
        let _ = change;
    }

    /// Reads `key` from L2: decodes it, checks integrity and tags (one round trip for all
    /// of its tags). An unreadable entry is deleted and is a miss; a foreign integrity is
    /// a miss.
    pub(crate) async fn read_l2<V: DeserializeOwned>(&self, key: &Key, integrity: Option<u128>) -> Option<FromL2<V>> {
        let l2 = self.l2.as_ref()?;
        let bytes = l2.get(key.as_str()).await?;
        let entry: Read<'_, V> = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target: "larder", key = key.as_str(), error = %e, "unreadable entry in L2: deleted, treated as a miss");
                l2.delete(key.as_str()).await;
                return None;
            }
        };
        let parsed = u128::from_str_radix(&entry.integrity, 16).ok();
        if integrity.is_some_and(|i| parsed != Some(i)) {
            return None;
        }
        let mut expired = false;
        if !entry.tags.is_empty() {
            let keys: Vec<String> = entry.tags.iter().map(|t| tag_key(t)).collect();
            let stamps = l2.get_many(&keys).await?;
            for raw in stamps.into_iter().flatten() {
                let Ok(s) = serde_json::from_slice::<TagStamps>(&raw) else { continue };
                if s.invalidated >= entry.mtime {
                    return None;
                }
                expired |= s.expired >= entry.mtime;
            }
        }
        let tags = entry.tags.into_iter().map(|t| Box::<str>::from(&*t)).collect();
        Some(FromL2 {
            value: entry.value,
            mtime: entry.mtime,
            expires: entry.expires,
            tags,
            integrity: parsed,
            expired,
        })
    }

    /// Writes an entry to L2 (a failure is logged, never returned).
    pub(crate) async fn write_l2<V: Serialize>(&self, key: &Key, entry: &Entry<&V>, ttl_ms: Option<u64>) {
        let Some(l2) = &self.l2 else { return };
        match serde_json::to_vec(entry) {
            Ok(bytes) => {
                if l2.set(key.as_str(), bytes, ttl_ms.map(Duration::from_millis)).await {
                    self.announce(Change::Set(key.as_str()));
                }
            }
            Err(e) => {
                tracing::warn!(target: "larder", key = key.as_str(), error = %e, "entry could not be encoded for L2")
            }
        }
    }

    /// Deletes one entry from every tier and cancels its run in flight.
    pub(crate) async fn delete(&self, key: &Key) -> bool {
        self.flights.cancel(key.id());
        let in_memory = self.memory.remove(key.id());
        let in_l2 = match &self.l2 {
            Some(l2) => l2.delete(key.as_str()).await,
            None => false,
        };
        self.announce(Change::Delete(key.as_str()));
        in_memory || in_l2
    }

    /// Marks one entry stale in every tier: still usable under `swr`/`grace`, not fresh.
    pub(crate) async fn expire(&self, key: &Key) -> bool {
        let in_memory = self.memory.expire(key.id());
        let mut in_l2 = false;
        if let Some(l2) = &self.l2
            && let Some(bytes) = l2.get(key.as_str()).await
            && let Ok(mut entry) = serde_json::from_slice::<Entry<serde_json::Value>>(&bytes)
        {
            // Stale in L2: no longer fresh from its production on.
            entry.expires = entry.mtime;
            if let Ok(bytes) = serde_json::to_vec(&entry) {
                in_l2 = l2.set(key.as_str(), bytes, None).await;
            }
        }
        self.announce(Change::Expire(key.as_str()));
        in_memory || in_l2
    }

    /// Deletes every entry whose key starts with `prefix` from every tier.
    pub(crate) async fn clear_prefix(&self, prefix: &str) -> usize {
        self.flights.cancel_where(|key, _, _| key.starts_with(prefix));
        let in_memory = self.memory.remove_prefix(prefix);
        let in_l2 = match &self.l2 {
            Some(l2) => l2.delete_prefix(prefix).await as usize,
            None => 0,
        };
        self.announce(Change::Clear(prefix));
        in_memory.max(in_l2)
    }

    /// Records a tag event in this instance only (memory tier and runs in flight): for a
    /// local event and for one heard on the bus.
    pub(crate) fn tag_event_in_memory(&self, tag: &str, invalidate: bool) {
        let seq = self.next_seq();
        if invalidate {
            self.tags.invalidate(tag, seq);
            // Runs that began after the event produce values from after it: kept.
            self.flights.cancel_where(|_, tags, started| started < seq && tags.iter().any(|t| &**t == tag));
        } else {
            self.tags.expire(tag, seq);
        }
    }

    /// Records a tag event locally and in L2.
    pub(crate) async fn tag_event(&self, tag: &str, invalidate: bool, now_ms: u64) {
        self.tag_event_in_memory(tag, invalidate);
        if let Some(l2) = &self.l2 {
            let key = tag_key(tag);
            let mut stamps = match l2.get(&key).await {
                Some(raw) => serde_json::from_slice::<TagStamps>(&raw).unwrap_or_default(),
                None => TagStamps::default(),
            };
            if invalidate {
                stamps.invalidated = now_ms;
            } else {
                stamps.expired = now_ms;
            }
            if let Ok(bytes) = serde_json::to_vec(&stamps) {
                l2.set(&key, bytes, None).await;
            }
        }
        self.announce(if invalidate { Change::InvalidateTag(tag) } else { Change::ExpireTag(tag) });
    }
}
