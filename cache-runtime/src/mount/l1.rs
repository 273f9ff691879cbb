//! The memory tier (L1): decoded values, bounded by moka, read without moka.
//!
//! moka gives the bounded, TinyLFU-evicted store; but its per-read bookkeeping costs more
//! than a whole hit should. So every slot also sits in a sharded index (`RwLock<HashMap>`
//! per shard, keyed by the key's 128-bit id). A hit is: pick a shard, take its read lock,
//! look the id up, check freshness, clone the value. Reads are reported to moka at most
//! once a second per entry, which is all its frequency sketch needs. What moka holds for a
//! slot is a [`Resident`], whose drop (when moka evicts, expires, replaces or invalidates
//! it) takes the slot out of the index, so capacity still holds. (That is moka's eviction
//! listener without the per-key lock moka takes on every insert to order notifications.)

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::entry::Policy;
use crate::mount::stats::Stats;

/// One decoded entry in the memory tier.
pub(crate) struct Slot {
    key: Box<str>,
    /// The argument digest of a default key (`split_digest` of `key`).
    digest: Option<u128>,
    value: Box<dyn Any + Send + Sync>,
    /// When the value was produced (ms since the epoch, runtime clock).
    mtime: u64,
    /// `mtime + max_age` of the policy that stored it.
    expires: u64,
    integrity: u128,
    tag_ids: Box<[u64]>,
    /// The mount's sequence number when it was stored (orders it against tag events).
    seq: u64,
    ttl_ms: Option<u64>,
    stats: Option<Arc<Stats>>,
    expired: AtomicBool,
    /// Until when a failing body is not called again (grace backoff), ms.
    backoff_until: AtomicU64,
    touched: AtomicU64,
}

/// What a new slot is made of.
pub(crate) struct NewSlot<'a> {
    pub key: &'a str,
    pub value: Box<dyn Any + Send + Sync>,
    pub mtime: u64,
    pub expires: u64,
    pub integrity: u128,
    pub tags: Box<[Box<str>]>,
    pub seq: u64,
    pub ttl_ms: Option<u64>,
    pub stats: Option<Arc<Stats>>,
}

impl Slot {
    pub fn new(n: NewSlot<'_>) -> Slot {
        let tag_ids = n.tags.iter().map(|t| crate::mount::tags::tag_id(t)).collect();
        Slot {
            key: n.key.into(),
            digest: crate::key::storage_key::split_digest(n.key).map(|(_, d)| d),
            value: n.value,
            mtime: n.mtime,
            expires: n.expires,
            integrity: n.integrity,
            tag_ids,
            seq: n.seq,
            ttl_ms: n.ttl_ms,
            stats: n.stats,
            expired: AtomicBool::new(false),
            backoff_until: AtomicU64::new(0),
            touched: AtomicU64::new(n.mtime),
        }
    }

    /// Whether this slot holds the entry of `key`.
    #[inline]
    pub fn is(&self, key: crate::key::storage_key::KeyIs<'_>) -> bool {
        key.matches(&self.key, self.digest)
    }

    /// Whether it was expired by hand (`NAME_expire`, a bus message, an L2 entry read so).
    #[inline]
    pub fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }

    /// Marks it expired: never fresh again, still usable under `swr` and `grace`.
    pub fn mark_expired(&self) {
        self.expired.store(true, Ordering::Relaxed);
    }

    /// The value, if it is a `V`.
    #[inline]
    pub fn value<V: 'static>(&self) -> Option<&V> {
        self.value.downcast_ref::<V>()
    }

    /// The integrity it was stored with.
    #[inline]
    pub fn integrity(&self) -> u128 {
        self.integrity
    }

    /// Its tags' ids, and the mount's sequence number when it was stored (to check them
    /// against the mount's tag events).
    #[inline]
    pub fn tags(&self) -> (&[u64], u64) {
        (&self.tag_ids, self.seq)
    }

    /// When its value was produced (ms since the epoch, runtime clock).
    #[inline]
    pub fn mtime(&self) -> u64 {
        self.mtime
    }

    /// `windows` with the `max_age` this entry was stored with (each entry keeps its own:
    /// an HTTP response may carry one).
    #[inline]
    pub fn policy(&self, windows: Policy) -> Policy {
        Policy { max_age_ms: self.expires.saturating_sub(self.mtime), ..windows }
    }

    /// Counts a hit on its function's counters.
    #[inline]
    pub fn count_hit(&self) {
        if let Some(stats) = &self.stats {
            stats.hits.incr();
        }
    }

    /// Whether a failing body is backed off at `now` (grace backoff).
    #[inline]
    pub fn is_backing_off(&self, now: u64) -> bool {
        self.backoff_until.load(Ordering::Relaxed) > now
    }

    /// Backs a failing body off until `until` (ms).
    pub fn back_off_until(&self, until: u64) {
        self.backoff_until.store(until, Ordering::Relaxed);
    }
}

/// Ids are already xxh3-128 hashes: the map uses their low bits as they are.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

type Map = HashMap<u128, Arc<Slot>, BuildHasherDefault<IdHasher>>;

#[repr(align(128))]
struct SlotShard(RwLock<Map>);

struct Index {
    shards: Box<[SlotShard]>,
    mask: usize,
}

impl Index {
    fn new() -> Index {
        let n = (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4) * 8).next_power_of_two();
        Index { shards: (0..n).map(|_| SlotShard(RwLock::new(Map::default()))).collect(), mask: n - 1 }
    }

    #[inline]
    fn shard(&self, id: u128) -> &RwLock<Map> {
        &self.shards[((id >> 64) as usize) & self.mask].0
    }

    fn remove_if_same(&self, id: u128, slot: &Arc<Slot>) {
        let mut map = self.shard(id).write();
        if map.get(&id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(&id);
        }
    }
}

/// The memory tier of one mount.
pub(crate) struct Memory {
    /// 0: no memory tier at all (every read goes to L2 or the function).
    capacity: u64,
    index: Arc<Index>,
    policy: moka::sync::Cache<u128, Arc<Resident>, BuildHasherDefault<IdHasher>>,
}

/// A slot as moka holds it. When moka lets go of it (eviction, expiry, replacement,
/// invalidation), the slot leaves the index too, unless the index holds a newer one.
struct Resident {
    id: u128,
    slot: Arc<Slot>,
    index: Arc<Index>,
}

impl Drop for Resident {
    fn drop(&mut self) {
        // Never run under a shard lock: `Memory` calls moka only after releasing them.
        self.index.remove_if_same(self.id, &self.slot);
    }
}

struct SlotExpiry;

impl moka::Expiry<u128, Arc<Resident>> for SlotExpiry {
    fn expire_after_create(&self, _: &u128, r: &Arc<Resident>, _: Instant) -> Option<Duration> {
        r.slot.ttl_ms.map(Duration::from_millis)
    }
    fn expire_after_update(&self, _: &u128, r: &Arc<Resident>, _: Instant, _: Option<Duration>) -> Option<Duration> {
        r.slot.ttl_ms.map(Duration::from_millis)
    }
}

impl Memory {
    /// A memory tier holding at most `capacity` entries.
    pub fn new(capacity: u64) -> Memory {
        let index = Arc::new(Index::new());
        let policy = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .expire_after(SlotExpiry)
            // Ids are random already (seeded xxh3 or a keyed mix): no SipHash over them.
            .build_with_hasher(BuildHasherDefault::<IdHasher>::default());
        Memory { capacity, index, policy }
    }

    /// Runs `f` on the slot of `id`, under the shard's read lock. Nothing is allocated.
    #[inline]
    pub fn peek<R>(&self, id: u128, now: u64, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        let map = self.index.shard(id).read();
        let slot = map.get(&id)?;
        let out = f(slot);
        if now.abs_diff(slot.touched.load(Ordering::Relaxed)) >= 1000 {
            let slot = Arc::clone(slot);
            drop(map);
            slot.touched.store(now, Ordering::Relaxed);
            // Tell moka's frequency sketch about this read.
            let _ = self.policy.get(&id);
        }
        Some(out)
    }

    /// The slot of `id`, if any.
    pub fn get(&self, id: u128) -> Option<Arc<Slot>> {
        self.index.shard(id).read().get(&id).cloned()
    }

    /// Stores a slot; returns it so the caller can check it is still current.
    pub fn insert(&self, id: u128, slot: Slot) -> Arc<Slot> {
        let slot = Arc::new(slot);
        if self.capacity == 0 {
            return slot;
        }
        // Index first, then moka: moka's notice for this slot can only come after it is
        // in the index, so the listener never misses it.
        self.index.shard(id).write().insert(id, Arc::clone(&slot));
        let index = Arc::clone(&self.index);
        self.policy.insert(id, Arc::new(Resident { id, slot: Arc::clone(&slot), index }));
        slot
    }

    /// Removes the slot of `id` if it is still `slot`.
    pub fn remove_if_same(&self, id: u128, slot: &Arc<Slot>) {
        self.index.remove_if_same(id, slot);
        // moka may hold a newer slot under the same id; only drop it if it is ours.
        if self.policy.get(&id).is_some_and(|r| Arc::ptr_eq(&r.slot, slot)) {
            self.policy.invalidate(&id);
        }
    }

    /// Removes the slot of `id`.
    pub fn remove(&self, id: u128) -> bool {
        let removed = self.index.shard(id).write().remove(&id).is_some();
        self.policy.invalidate(&id);
        removed
    }

    /// Marks the slot of `id` as expired (stale, not fresh).
    pub fn expire(&self, id: u128) -> bool {
        match self.get(id) {
            Some(slot) => {
                slot.expired.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Ids and keys of every slot whose key starts with `prefix`.
    pub fn matching(&self, prefix: &str) -> Vec<(u128, Arc<Slot>)> {
        let mut out = Vec::new();
        for shard in self.index.shards.iter() {
            let map = shard.0.read();
            out.extend(map.iter().filter(|(_, s)| s.key.starts_with(prefix)).map(|(id, s)| (*id, Arc::clone(s))));
        }
        out
    }

    /// Removes every slot whose key starts with `prefix`; returns how many.
    pub fn remove_prefix(&self, prefix: &str) -> usize {
        let victims = self.matching(prefix);
        for (id, slot) in &victims {
            self.remove_if_same(*id, slot);
        }
        victims.len()
    }

    /// Keys of every slot whose key starts with `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.matching(prefix).into_iter().map(|(_, s)| s.key.to_string()).collect();
        keys.sort();
        keys
    }

    /// The number of entries (after pending evictions have run).
    pub fn len(&self) -> u64 {
        // Until it settles: one pass of moka's maintenance handles a bounded batch of
        // writes, what it evicts may still be referenced by its queues until the next, and
        // a `Resident` leaves the index only when moka's last reference goes. (A fixed
        // number of passes was not always enough on a loaded machine.)
        let count = || self.index.shards.iter().map(|s| s.0.read().len() as u64).sum::<u64>();
        let mut last = u64::MAX;
        for _ in 0..256 {
            self.policy.run_pending_tasks();
            let now = count();
            if now == last && self.policy.entry_count() <= self.capacity {
                return now;
            }
            last = now;
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(key: &str, v: u64) -> Slot {
        Slot::new(NewSlot {
            key,
            value: Box::new(v),
            mtime: 0,
            expires: 0,
            integrity: 0,
            tags: Box::new([]),
            seq: 0,
            ttl_ms: None,
            stats: None,
        })
    }

    #[test]
    fn capacity_is_enforced_through_moka_evictions() {
        let m = Memory::new(100);
        for i in 0..1000u128 {
            m.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835), slot(&format!("k{i}"), i as u64));
        }
        let len = m.len();
        assert!(len <= 100, "memory tier holds {len} entries over a capacity of 100");
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let m = Memory::new(0);
        m.insert(1, slot("a", 1));
        assert_eq!(m.len(), 0);
        assert!(m.get(1).is_none());
    }

    #[test]
    fn prefix_removal_only_touches_its_prefix() {
        let m = Memory::new(100);
        m.insert(1, slot("a:x:1.json", 1));
        m.insert(2, slot("a:y:1.json", 2));
        m.insert(3, slot("b:x:1.json", 3));
        assert_eq!(m.remove_prefix("a:"), 2);
        assert_eq!(m.keys(""), vec!["b:x:1.json".to_string()]);
    }
}
