//! One shard of the memory tier ([`Shard`]): its slots in a slab, a hash table of slab
//! indices to find them by id, and a clock hand over the slab that evicts.
//!
//! The eviction policy is a clock with use counts (GCLOCK): a read raises its slot's count
//! (up to [`MAX_USES`]); when the shard is over its bound, the hand walks the slab,
//! evicting the first slot that is past every window or has no use left, and lowering the
//! count of the others as it passes. A slot starts with no use, so a scan of keys read once
//! is evicted before the keys that are read again: scan-resistant without a second queue.
//! A read does no bookkeeping beyond that count (one load, and a store only while the
//! count is below its top); the walk happens on inserts, under the shard's write lock.

use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::mount::l1::slot::{MAX_USES, Slot};

/// What left a shard in one insert (the slot it replaced, the ones it evicted: one or two
/// as a rule), to be dropped outside its lock. Inline: an insert that evicts allocates
/// nothing for it.
pub(crate) type Gone = smallvec::SmallVec<[Slot; 2]>;

/// How many slots, and how many bytes of them, a shard may hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardBound {
    pub entries: usize,
    pub weight: u64,
}

#[derive(Default)]
struct Inner {
    /// Slab indices, hashed by the low half of the slot's id.
    table: HashTable<u32>,
    slots: Vec<Option<Slot>>,
    /// Vacant slab indices.
    free: Vec<u32>,
    /// Where the clock hand stands in the slab.
    hand: usize,
    len: usize,
    weight: u64,
}

/// One shard of a memory tier.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Shard(RwLock<Inner>);

#[inline]
fn hash(id: u128) -> u64 {
    // Ids are random already (seeded xxh3 or a keyed mix); the high half picks the shard.
    id as u64
}

impl Inner {
    #[inline]
    fn find(&self, id: u128) -> Option<usize> {
        self.table.find(hash(id), |&i| self.slots[i as usize].as_ref().is_some_and(|s| s.id == id)).map(|&i| i as usize)
    }

    /// Takes the slot at slab index `i` out.
    fn take(&mut self, i: usize) -> Option<Slot> {
        let slot = self.slots[i].take()?;
        if let Ok(entry) = self.table.find_entry(hash(slot.id), |&j| j as usize == i) {
            entry.remove();
        }
        self.free.push(i as u32);
        self.len -= 1;
        self.weight -= u64::from(slot.weight);
        Some(slot)
    }

    /// Evicts one slot other than the one at `keep`; `None` when there is none to evict.
    fn evict_one(&mut self, now: u64, keep: usize) -> Option<Slot> {
        let n = self.slots.len();
        if self.len <= 1 {
            return None;
        }
        // Every pass lowers each count by one: after MAX_USES + 1 passes one is at zero.
        for _ in 0..n * (usize::from(MAX_USES) + 1) + 1 {
            self.hand = (self.hand + 1) % n;
            let i = self.hand;
            if i == keep {
                continue;
            }
            let Some(slot) = &self.slots[i] else { continue };
            let uses = slot.uses.load(std::sync::atomic::Ordering::Relaxed);
            if uses == 0 || slot.is_dead(now) {
                return self.take(i);
            }
            slot.uses.store(uses - 1, std::sync::atomic::Ordering::Relaxed);
        }
        None
    }
}

impl Shard {
    /// Runs `f` on the slot of `id` under the shard's read lock, and notes the read.
    #[inline]
    pub fn peek<R>(&self, id: u128, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        let inner = self.0.read();
        let slot = inner.slots[inner.find(id)?].as_ref()?;
        slot.note_use();
        Some(f(slot))
    }

    /// Runs `f` on the slot of `id` under the shard's read lock, without noting a read.
    pub fn with<R>(&self, id: u128, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        let inner = self.0.read();
        let slot = inner.slots[inner.find(id)?].as_ref()?;
        Some(f(slot))
    }

    /// Stores `slot` (in place of the slot of its id, if any) and evicts until the shard is
    /// within `bound`. What left the shard goes to `gone`, to be dropped by the caller
    /// outside the lock (a value's `Drop` is the user's code). A slot heavier than the
    /// whole shard is not kept (and the one it replaces goes all the same).
    pub fn insert(&self, slot: Slot, bound: ShardBound, now: u64, gone: &mut Gone) {
        let mut inner = self.0.write();
        let id = slot.id;
        if let Some(i) = inner.find(id) {
            gone.extend(inner.take(i));
        }
        if u64::from(slot.weight) > bound.weight {
            gone.push(slot);
            return;
        }
        let i = match inner.free.pop() {
            Some(i) => i as usize,
            None => {
                inner.slots.push(None);
                inner.slots.len() - 1
            }
        };
        inner.len += 1;
        inner.weight += u64::from(slot.weight);
        inner.slots[i] = Some(slot);
        let Inner { table, slots, .. } = &mut *inner;
        table.insert_unique(hash(id), i as u32, |&j| slots[j as usize].as_ref().map_or(0, |s| hash(s.id)));
        while inner.len > bound.entries || inner.weight > bound.weight {
            match inner.evict_one(now, i) {
                Some(evicted) => gone.push(evicted),
                None => break,
            }
        }
    }

    /// Takes the slot of `id` out, if `is_it` says it is the one.
    pub fn remove_if(&self, id: u128, is_it: impl FnOnce(&Slot) -> bool) -> Option<Slot> {
        let mut inner = self.0.write();
        let i = inner.find(id)?;
        if !inner.slots[i].as_ref().is_some_and(is_it) {
            return None;
        }
        inner.take(i)
    }

    /// What `f` gives for each slot, where it gives something.
    pub fn collect<T>(&self, f: impl FnMut(&Slot) -> Option<T>) -> Vec<T> {
        let inner = self.0.read();
        inner.slots.iter().flatten().filter_map(f).collect()
    }

    /// How many slots it holds, and what they weigh.
    pub fn size(&self) -> (usize, u64) {
        let inner = self.0.read();
        (inner.len, inner.weight)
    }
}
