//! The memory tier of one mount ([`Memory`]): shards by the high bits of a key's id, each
//! its own index and eviction order ([`Shard`]); bounded by entries ([`Mount::memory`]) or
//! by bytes ([`Mount::memory_bytes`]).
//!
//! A hit is: pick a shard, enter a read section (no lock), find the slab index by id, check
//! the slot, clone the value. No allocation, no system call, no lock at all (a miss's body
//! runs with no lock; its insert takes one shard's writer lock, which no read waits for).
//!
//! Eviction cannot undo an invalidation: fences and tag events live beside the tier, not
//! in its slots, and a stale value a call answers with (`swr`, `grace`, a soft timeout) is
//! the call's own clone, so dropping the slot takes nothing from a call in flight.
//!
//! [`Mount::memory`]: crate::Mount::memory
//! [`Mount::memory_bytes`]: crate::Mount::memory_bytes

use std::sync::Arc;

use crate::clock::Clock;
use crate::mount::l1::index::MAX_SLOTS;
use crate::mount::l1::key_text::KeyTexts;
use crate::mount::l1::shard::{Gone, Shard, ShardBound};
use crate::mount::l1::slot::{NewSlot, Slot};

/// What a memory tier is bounded by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryBound {
    /// At most this many entries (0: no memory tier).
    Entries(u64),
    /// At most this many bytes of entries: each weighs its value (see
    /// [`Mount::memory_bytes`](crate::Mount::memory_bytes)), its own key text, and
    /// [`ENTRY_OVERHEAD`].
    Bytes(u64),
}

/// What an entry weighs beyond its value and key in a memory tier bounded by bytes: its
/// slot and its share of the index.
pub const ENTRY_OVERHEAD: usize = size_of::<Option<Slot>>() + 16;

/// Shards hold at least this many entries (so a small tier keeps close to its capacity).
const MIN_SHARD_ENTRIES: u64 = 64;
/// Shards of a tier bounded by bytes hold at least this many bytes (an entry heavier than
/// a shard is not kept).
const MIN_SHARD_BYTES: u64 = 32 << 20;

/// What was stored, to take back out if an invalidation came meanwhile.
#[derive(Clone, Copy)]
pub(crate) struct Stored {
    mtime: u64,
    /// The address of the slot's text (compared, never followed).
    text: usize,
}

/// The memory tier of one mount.
pub(crate) struct Memory {
    shards: Box<[Shard]>,
    mask: usize,
    bound: MemoryBound,
    per_shard: ShardBound,
    texts: KeyTexts,
    clock: Clock,
}

impl Memory {
    /// A memory tier within `bound`, reading time from `clock`.
    pub fn new(bound: MemoryBound, clock: Clock) -> Memory {
        let most = (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4) * 8).next_power_of_two() as u64;
        let (total, least) = match bound {
            MemoryBound::Entries(n) => (n, MIN_SHARD_ENTRIES),
            MemoryBound::Bytes(n) => (n, MIN_SHARD_BYTES),
        };
        let mut n = most;
        while n > 1 && total / n < least {
            n /= 2;
        }
        // A shard's slab has room for its bound and for what waits for a grace period.
        let most_entries = (MAX_SLOTS / 2) as usize;
        let per_shard = match bound {
            MemoryBound::Entries(e) => ShardBound {
                entries: usize::try_from(e.div_ceil(n)).unwrap_or(usize::MAX).min(most_entries),
                weight: u64::MAX,
            },
            MemoryBound::Bytes(b) => ShardBound { entries: most_entries, weight: b.div_ceil(n) },
        };
        Memory {
            shards: (0..n).map(|_| Shard::default()).collect(),
            mask: n as usize - 1,
            bound,
            per_shard,
            texts: KeyTexts::default(),
            clock,
        }
    }

    #[inline]
    fn shard(&self, id: u128) -> &Shard {
        &self.shards[((id >> 64) as usize) & self.mask]
    }

    /// Whether entries are weighed in bytes (else each counts one).
    #[inline]
    pub fn by_bytes(&self) -> bool {
        matches!(self.bound, MemoryBound::Bytes(_))
    }

    /// Whether there is a memory tier at all.
    #[inline]
    fn keeps(&self) -> bool {
        !matches!(self.bound, MemoryBound::Entries(0) | MemoryBound::Bytes(0))
    }

    /// Runs `f` on the slot of `id`, in a read section (no lock). Nothing is allocated.
    #[inline]
    pub fn peek<R>(&self, id: u128, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        self.shard(id).peek(id, f)
    }

    /// Stores a slot; returns what to give [`remove_if_same`](Self::remove_if_same) to take
    /// this very slot back out.
    pub fn insert(&self, id: u128, n: NewSlot<'_>) -> Stored {
        if !self.keeps() {
            return Stored { mtime: n.mtime, text: 0 };
        }
        let text = self.texts.text_for(n.key, n.function, n.integrity, n.stats.as_ref());
        let stored = Stored { mtime: n.mtime, text: Arc::as_ptr(&text) as usize };
        let weight = if self.by_bytes() {
            u32::try_from(n.weight.saturating_add(ENTRY_OVERHEAD + text.own_bytes())).unwrap_or(u32::MAX)
        } else {
            1
        };
        let slot = Slot::new(id, text, n, weight);
        let mut gone = Gone::new();
        self.shard(id).insert(slot, self.per_shard, self.clock.now_ms(), &mut gone);
        // Dropped here, outside the shard's lock: a value's `Drop` is the user's code.
        drop(gone);
        stored
    }

    /// Removes the slot of `id` if it is still the one `stored` says.
    pub fn remove_if_same(&self, id: u128, stored: &Stored) {
        let mut gone = Gone::new();
        self.shard(id).remove_if(
            id,
            |s| s.mtime() == stored.mtime && Arc::as_ptr(&s.text) as usize == stored.text,
            &mut gone,
        );
        // Dropped here, outside the shard's lock.
        drop(gone);
    }

    /// Removes the slot of `id`; whether there was one.
    pub fn remove(&self, id: u128) -> bool {
        let mut gone = Gone::new();
        self.shard(id).remove_if(id, |_| true, &mut gone)
    }

    /// Marks the slot of `id` as expired (stale, not fresh); whether there was one.
    pub fn expire(&self, id: u128) -> bool {
        self.shard(id).with(id, Slot::mark_expired).is_some()
    }

    /// Backs the failing body of `id` off until `until` (ms), if its slot is there.
    pub fn back_off(&self, id: u128, until: u64) {
        self.shard(id).with(id, |s| s.back_off_until(until));
    }

    /// The ids of every slot whose key starts with `prefix`.
    fn matching(&self, prefix: &str) -> Vec<u128> {
        self.shards
            .iter()
            .flat_map(|s| s.collect(|slot| slot.text.starts_with(slot.id, prefix).then_some(slot.id)))
            .collect()
    }

    /// Removes every slot whose key starts with `prefix`; returns how many.
    pub fn remove_prefix(&self, prefix: &str) -> usize {
        let victims = self.matching(prefix);
        let mut gone = Gone::new();
        let n = victims
            .iter()
            .filter(|&&id| self.shard(id).remove_if(id, |s| s.text.starts_with(id, prefix), &mut gone))
            .count();
        drop(gone);
        n
    }

    /// Keys of every slot whose key starts with `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .shards
            .iter()
            .flat_map(|s| s.collect(|slot| slot.text.starts_with(slot.id, prefix).then(|| slot.key())))
            .collect();
        keys.sort();
        keys
    }

    /// The number of entries.
    pub fn len(&self) -> u64 {
        self.shards.iter().map(|s| s.size().0 as u64).sum()
    }

    /// What the entries weigh: bytes in a tier bounded by bytes, else their number.
    pub fn weight(&self) -> u64 {
        self.shards.iter().map(|s| s.size().1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::mount::l1::slot::value;

    fn slot(key: &str, v: u64, weight: usize) -> NewSlot<'_> {
        NewSlot {
            key,
            value: value(v),
            mtime: 0,
            expires: 0,
            integrity: 0,
            tags: Box::new([]),
            seq: 0,
            ttl_ms: None,
            stats: None,
            weight,
            expired: false,
            function: None,
        }
    }

    fn id(i: u128) -> u128 {
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    }

    fn memory(bound: MemoryBound) -> Memory {
        Memory::new(bound, Clock::Manual(ManualClock::at_ms(0)))
    }

    #[test]
    fn capacity_is_enforced_on_every_insert() {
        let m = memory(MemoryBound::Entries(100));
        for i in 0..1000u128 {
            m.insert(id(i), slot(&format!("k{i}"), i as u64, 0));
            assert!(m.len() <= 100, "memory tier holds {} entries over a capacity of 100", m.len());
        }
        assert_eq!(m.len(), 100, "a full tier of one shard stays full");
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let m = memory(MemoryBound::Entries(0));
        m.insert(1, slot("a", 1, 0));
        assert_eq!(m.len(), 0);
        assert!(m.peek(1, |_| ()).is_none());
    }

    #[test]
    fn bytes_bound_the_tier_whatever_the_count() {
        let m = memory(MemoryBound::Bytes(1 << 20));
        for i in 0..400u128 {
            m.insert(id(i), slot(&format!("k{i}"), i as u64, 64 << 10));
            assert!(m.weight() <= 1 << 20, "{} bytes held over a bound of 1 MiB", m.weight());
        }
        assert!(m.len() >= 10, "a 1 MiB tier keeps 64 KiB entries: {}", m.len());
    }

    #[test]
    fn an_entry_heavier_than_the_tier_is_not_kept_and_drops_the_old_one() {
        let m = memory(MemoryBound::Bytes(1 << 20));
        m.insert(id(1), slot("k", 1, 10));
        m.insert(id(1), slot("k", 2, 2 << 20));
        assert!(m.peek(id(1), |_| ()).is_none(), "the old value must not stay as the key's entry");
        assert_eq!(m.weight(), 0);
    }

    #[test]
    fn entries_read_again_survive_a_scan() {
        let m = memory(MemoryBound::Entries(1000));
        let hot: Vec<u128> = (0..100).map(id).collect();
        for (i, &h) in hot.iter().enumerate() {
            m.insert(h, slot(&format!("hot{i}"), 0, 0));
        }
        // A scan of 20 000 keys read once, with the hot keys read between its steps.
        for i in 0..20_000u128 {
            m.insert(id(1_000_000 + i), slot(&format!("scan{i}"), 0, 0));
            if i % 10 == 0 {
                for &h in &hot {
                    m.peek(h, |_| ());
                }
            }
        }
        let kept = hot.iter().filter(|&&h| m.peek(h, |_| ()).is_some()).count();
        assert!(kept >= 95, "only {kept} of 100 hot keys survived a scan of 20x the capacity");
    }

    #[test]
    fn dead_entries_go_first() {
        let hand = ManualClock::at_ms(0);
        let m = Memory::new(MemoryBound::Entries(10), Clock::Manual(hand.clone()));
        for i in 0..10u128 {
            let mut s = slot("k", 0, 0);
            s.ttl_ms = Some(if i == 3 { 1_000 } else { 1_000_000 });
            m.insert(id(i), s);
            // Every one is read: only being past its windows makes one go first.
            m.peek(id(i), |_| ());
            m.peek(id(i), |_| ());
        }
        hand.set(5_000);
        m.insert(id(99), slot("k", 0, 0));
        assert!(m.peek(id(3), |_| ()).is_none(), "the entry past its windows was kept");
        assert_eq!(m.len(), 10);
    }

    #[test]
    fn prefix_removal_only_touches_its_prefix() {
        let m = memory(MemoryBound::Entries(100));
        m.insert(1, slot("a:x:1.json", 1, 0));
        m.insert(2, slot("a:y:1.json", 2, 0));
        m.insert(3, slot("b:x:1.json", 3, 0));
        assert_eq!(m.remove_prefix("a:"), 2);
        assert_eq!(m.keys(""), vec!["b:x:1.json".to_string()]);
    }

    #[test]
    fn a_default_key_keeps_only_its_prefix_and_lists_its_whole_key() {
        let m = memory(MemoryBound::Entries(100));
        let key = crate::key::storage_key::Key::from_args("g:f:", &(7u64,));
        m.insert(key.id(), slot(key.as_str(), 1, 0));
        assert_eq!(m.keys("g:f:"), vec![key.as_str().to_string()]);
        assert!(m.peek(key.id(), |s| s.is(key.is())).unwrap());
        let other = crate::key::storage_key::Key::from_full(key.as_str().replace("g:f:", "g:h:"));
        assert!(m.peek(key.id(), |s| s.is(other.is())).is_some_and(|is| !is));
        assert_eq!(m.remove_prefix(key.as_str()), 1, "a prefix longer than the function's is matched on the whole key");
    }
}
