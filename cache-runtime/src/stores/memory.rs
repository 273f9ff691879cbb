//! [`MemoryStore`]: a [`Store`] of bytes in process memory, with a TTL per entry.
//!
//! It is the reference implementation of the [`Store`] trait, and an L2 for tests. It is not
//! the memory tier (L1) of a mount, which keeps decoded values: this one keeps bytes, like
//! the fs and Redis stores, so that it behaves like them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::stores::store::{Store, StoreFuture, parse_stamp};

/// The default bound of a [`MemoryStore`]: 64 MiB of keys and values.
const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// One stored value and when it stops being served.
#[derive(Clone)]
struct Bytes {
    bytes: Arc<[u8]>,
    /// `None`: no TTL.
    expires: Option<Instant>,
}

impl Bytes {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// Tells moka when a slot expires: at its own deadline, set again on each write.
struct BytesExpiry;

impl Expiry<String, Bytes> for BytesExpiry {
    fn expire_after_create(&self, _key: &String, slot: &Bytes, created_at: Instant) -> Option<Duration> {
        slot.expires.map(|at| at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        slot: &Bytes,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        slot.expires.map(|at| at.saturating_duration_since(updated_at))
    }
}

/// A [`Store`] that keeps bytes in process memory (a [moka] cache), bounded by the total
/// size of its keys and values, with a TTL per entry.
///
/// Entries past their TTL are never returned, even before moka evicts them. When the bound
/// is reached, moka evicts the entries least likely to be used again, TTL or not. Every
/// method is infallible in practice (it never returns `Err`) and never blocks on I/O.
///
/// Clones share the same entries.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use cache_runtime::MemoryStore;
/// use cache_runtime::Store;
/// use std::time::Duration;
///
/// let store = MemoryStore::new();
/// store.set("functions:answer:default.json", b"42".to_vec(), Some(Duration::from_secs(60))).await?;
/// assert_eq!(store.get("functions:answer:default.json").await?, Some(b"42".to_vec()));
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<String, Bytes>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("entries", &self.cache.entry_count()).finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store bounded to 64 MiB of keys and values.
    pub fn new() -> MemoryStore {
        MemoryStore::with_max_bytes(DEFAULT_MAX_BYTES)
    }

    /// An empty store that holds at most about `max_bytes` of keys and values; past that,
    /// moka evicts entries. A single entry larger than `max_bytes` is not kept.
    pub fn with_max_bytes(max_bytes: u64) -> MemoryStore {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, slot: &Bytes| {
                u32::try_from(key.len().saturating_add(slot.bytes.len())).unwrap_or(u32::MAX)
            })
            .expire_after(BytesExpiry)
            .build();
        MemoryStore { cache }
    }

    /// The live entry under `key`, if any.
    fn live(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key).filter(|slot| slot.live(Instant::now()))
    }

    /// The live keys that start with `prefix`.
    fn live_keys(&self, prefix: &str) -> Vec<String> {
        let now = Instant::now();
        self.cache
            .iter()
            .filter(|(key, slot)| key.starts_with(prefix) && slot.live(now))
            .map(|(key, _)| String::clone(&key))
            .collect()
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { Ok(self.live(key).map(|slot| slot.bytes.to_vec())) })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // A TTL too large for `Instant` is as good as none.
            let expires = ttl.and_then(|ttl| Instant::now().checked_add(ttl));
            self.cache.insert(key.to_owned(), Bytes { bytes: value.into(), expires });
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let now = Instant::now();
            Ok(self.cache.remove(key).is_some_and(|slot| slot.live(now)))
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let now = Instant::now();
            let mut n = 0;
            for key in self.cache.iter().filter(|(key, _)| key.starts_with(prefix)).map(|(key, _)| key) {
                if self.cache.remove(key.as_str()).is_some_and(|slot| slot.live(now)) {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    fn keys<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move { Ok(self.live_keys(prefix)) })
    }

    fn raise<'a>(&'a self, key: &'a str, stamp: u64, ttl: Option<Duration>) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            // moka runs the closure under the key's lock: concurrent raises are serialized.
            let entry = self.cache.entry(key.to_owned()).and_upsert_with(|current| {
                let now = Instant::now();
                if let Some(current) = current.map(|e| e.into_value()).filter(|b| b.live(now))
                    && parse_stamp(&current.bytes).is_some_and(|s| s >= stamp)
                {
                    return current;
                }
                Bytes { bytes: stamp.to_string().into_bytes().into(), expires: ttl.and_then(|t| now.checked_add(t)) }
            });
            Ok(parse_stamp(&entry.into_value().bytes).unwrap_or(stamp))
        })
    }

    fn replace<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            use moka::ops::compute::{CompResult, Op};
            let result = self.cache.entry(key.to_owned()).and_compute_with(|current| {
                match current.map(|e| e.into_value()).filter(|b| b.live(Instant::now())) {
                    Some(old) => Op::Put(Bytes { bytes: value.into(), expires: old.expires }),
                    None => Op::Nop,
                }
            });
            Ok(matches!(result, CompResult::ReplacedWith(_) | CompResult::Inserted(_)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        crate::stores::store::conformance::check(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn an_entry_past_its_ttl_is_gone_from_get_keys_and_delete() {
        let store = MemoryStore::new();
        store.set("a:x.json", b"1".to_vec(), Some(Duration::from_millis(50))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(store.get("a:x.json").await.unwrap(), None);
        assert!(store.keys("a:").await.unwrap().is_empty());
        assert!(!store.delete("a:x.json").await.unwrap(), "an expired entry was not there");
    }

    #[tokio::test]
    async fn a_set_without_ttl_replaces_a_ttl() {
        let store = MemoryStore::new();
        store.set("k.json", b"1".to_vec(), Some(Duration::from_millis(50))).await.unwrap();
        store.set("k.json", b"2".to_vec(), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(store.get("k.json").await.unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[tokio::test]
    async fn it_stays_within_its_byte_bound() {
        let store = MemoryStore::with_max_bytes(10_000);
        for i in 0..100 {
            store.set(&format!("k{i}.json"), vec![0; 1_000], None).await.unwrap();
        }
        store.cache.run_pending_tasks();
        assert!(store.cache.weighted_size() <= 10_000, "weighted size {}", store.cache.weighted_size());
    }
}
