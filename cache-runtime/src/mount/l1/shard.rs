//! One shard of the memory tier ([`Shard`]): its slots and the index that finds them by id
//! ([`Index`], read without a lock), and, behind the shard's lock, what only its writers
//! use: the bound, the clock hand that evicts, the free slab indices, and the slots that
//! wait for a grace period before they are freed.
//!
//! The eviction policy is a clock with use counts (GCLOCK): a read raises its slot's count
//! (up to [`MAX_USES`]); when the shard is over its bound, the hand walks the slab,
//! evicting the first slot that is past every window or has no use left, and lowering the
//! count of the others as it passes. A slot starts with no use, so a scan of keys read once
//! is evicted before the keys that are read again: scan-resistant without a second queue.
//! A read does no bookkeeping beyond that count (one load, and a store only while the
//! count is below its top); the walk happens on inserts, under the shard's lock.
//!
//! A slot that leaves the index (replaced, evicted, removed) may still be in a reader's
//! hands: it waits in `limbo` until a [grace period](crate::mount::l1::sections::Grace)
//! begun after it left has passed, and is then taken out and dropped outside the lock (a
//! value's `Drop` is the user's code). Grace periods begin in batches of [`BATCH`] (a
//! removal begins one at once, so a removed value is dropped soon); each write looks
//! whether the last one has passed.

use parking_lot::Mutex;

use crate::mount::l1::index::{Index, Layout, Retired};
use crate::mount::l1::sections::{Grace, enter};
use crate::mount::l1::slot::{MAX_USES, Slot};

/// What left a shard in one write, to be dropped outside its lock. Inline for the usual
/// one or two (a batch past its grace period spills to the heap, once per [`BATCH`]).
pub(crate) type Gone = smallvec::SmallVec<[Slot; 2]>;

/// Slots that left the index before a grace period begins for them.
const BATCH: usize = 16;

/// How many slots, and how many bytes of them, a shard may hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardBound {
    pub entries: usize,
    pub weight: u64,
}

/// Where a slab index stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Linked,
    /// Out of the index, not yet freed.
    Unlinked,
}

/// What the shard's writers share, behind its lock.
#[derive(Default)]
struct Writer {
    layout: Layout,
    states: Vec<State>,
    free: Vec<u32>,
    /// Where the clock hand stands in the slab.
    hand: usize,
    weight: u64,
    /// Unlinked slots and tables no grace period has begun for yet.
    limbo: Vec<u32>,
    limbo_tables: Vec<Retired>,
    /// The grace period begun for the batch below, if one is waiting.
    grace: Option<Grace>,
    /// The batch whose grace period has begun (its buffers are kept: a batch allocates
    /// nothing).
    batch: Vec<u32>,
    batch_tables: Vec<Retired>,
}

/// One shard of a memory tier.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Shard {
    index: Index,
    writer: Mutex<Writer>,
}

impl Writer {
    /// A free slab index for a new slot (`None`: the slab is at its most, every index
    /// linked or waiting for a grace period).
    fn claim(&mut self, index: &Index) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            return Some(i);
        }
        let i = index.grow(&mut self.layout)?;
        self.states.push(State::Free);
        Some(i)
    }

    /// Counts out the slot at slab index `i`, which has just left the table, and puts it in
    /// the limbo.
    fn retire(&mut self, index: &Index, i: u32) {
        self.weight -= u64::from(index.slot(i).weight);
        self.states[i as usize] = State::Unlinked;
        self.limbo.push(i);
    }

    /// Takes the slot of `id` out of the table and retires it; whether it was linked.
    fn take_out(&mut self, index: &Index, id: u128) -> bool {
        let Some(i) = index.unlink(&mut self.layout, id) else { return false };
        self.retire(index, i);
        true
    }

    /// Frees what a passed grace period covered (into `gone`), and begins one for the limbo
    /// when it is full (or `now`, for a removal).
    fn reclaim(&mut self, index: &Index, now: bool, gone: &mut Gone) {
        if self.grace.as_mut().is_some_and(Grace::passed) {
            self.free_batch(index, gone);
        }
        // A table is large: it goes at once, like a removal.
        let due = self.limbo.len() >= BATCH || !self.limbo_tables.is_empty() || (now && !self.limbo.is_empty());
        if self.grace.is_none() && due {
            std::mem::swap(&mut self.limbo, &mut self.batch);
            std::mem::swap(&mut self.limbo_tables, &mut self.batch_tables);
            let mut grace = Grace::begin();
            if grace.passed() {
                self.free_batch(index, gone);
            } else {
                self.grace = Some(grace);
            }
        }
    }

    /// Frees the batch, whose grace period has passed.
    fn free_batch(&mut self, index: &Index, gone: &mut Gone) {
        self.grace = None;
        gone.reserve(self.batch.len());
        for i in self.batch.drain(..) {
            gone.push(index.take(i));
            self.states[i as usize] = State::Free;
            self.free.push(i);
        }
        self.batch_tables.drain(..).for_each(Index::free_table);
    }

    /// Evicts one linked slot other than the one at `keep`; whether there was one.
    fn evict_one(&mut self, index: &Index, now: u64, keep: u32) -> bool {
        let n = self.states.len();
        if self.layout.live() <= 1 {
            return false;
        }
        // Every pass lowers each count by one: after MAX_USES + 1 passes one is at zero,
        // unless readers raise the counts as fast (reads take no lock): then the slot the
        // hand stands on at the end goes, so that the bound holds whatever the reads.
        let mut last = None;
        for _ in 0..n * (usize::from(MAX_USES) + 1) + 1 {
            self.hand = (self.hand + 1) % n;
            let i = self.hand as u32;
            if i == keep || self.states[self.hand] != State::Linked {
                continue;
            }
            let slot = index.slot(i);
            let uses = slot.uses.load(std::sync::atomic::Ordering::Relaxed);
            if uses == 0 || slot.is_dead(now) {
                last = Some(i);
                break;
            }
            slot.uses.store(uses - 1, std::sync::atomic::Ordering::Relaxed);
            last = Some(i);
        }
        last.is_some_and(|i| self.take_out(index, index.slot(i).id))
    }
}

impl Shard {
    /// Runs `f` on the slot of `id`, and notes the read. No lock: a read section.
    #[inline]
    pub fn peek<R>(&self, id: u128, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        let section = enter();
        let slot = self.index.find(&section, id)?;
        slot.note_use();
        Some(f(slot))
    }

    /// Runs `f` on the slot of `id`, without noting a read.
    pub fn with<R>(&self, id: u128, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        let section = enter();
        let slot = self.index.find(&section, id)?;
        Some(f(slot))
    }

    /// Stores `slot` (in place of the slot of its id, if any) and evicts until the shard is
    /// within `bound`. What is freed goes to `gone`, to be dropped by the caller outside
    /// the lock. A slot heavier than the whole shard is not kept, nor one the slab has no
    /// room for (every index linked or waiting for a grace period); the one it replaces
    /// goes all the same, so no older value stays in its place.
    pub fn insert(&self, slot: Slot, bound: ShardBound, now: u64, gone: &mut Gone) {
        let mut guard = self.writer.lock();
        let w = &mut *guard;
        let index = &self.index;
        let claimed = if u64::from(slot.weight) > bound.weight { None } else { w.claim(index) };
        let Some(i) = claimed else {
            w.take_out(index, slot.id);
            gone.push(slot);
            w.reclaim(index, true, gone);
            return;
        };
        let weight = u64::from(slot.weight);
        index.write(i, slot);
        w.states[i as usize] = State::Linked;
        w.weight += weight;
        if let Some(old) = index.link(&mut w.layout, i, &mut w.limbo_tables) {
            w.retire(index, old);
        }
        while w.layout.live() > bound.entries || w.weight > bound.weight {
            if !w.evict_one(index, now, i) {
                break;
            }
        }
        w.reclaim(index, false, gone);
    }

    /// Takes the slot of `id` out of the index, if `is_it` says it is the one; whether it
    /// did. The slot is freed after a grace period (into `gone`, like everything freed then).
    pub fn remove_if(&self, id: u128, is_it: impl FnOnce(&Slot) -> bool, gone: &mut Gone) -> bool {
        let mut guard = self.writer.lock();
        let w = &mut *guard;
        let index = &self.index;
        let Some(i) = index.position(id) else { return false };
        if !is_it(index.slot(i)) {
            return false;
        }
        w.take_out(index, id);
        w.reclaim(index, true, gone);
        true
    }

    /// Frees what a passed grace period covers, and begins one for whatever is unlinked.
    #[cfg(test)]
    pub fn reclaim(&self, gone: &mut Gone) {
        self.writer.lock().reclaim(&self.index, true, gone);
    }

    /// What `f` gives for each linked slot, where it gives something.
    pub fn collect<T>(&self, mut f: impl FnMut(&Slot) -> Option<T>) -> Vec<T> {
        let w = self.writer.lock();
        (0..w.states.len())
            .filter(|&i| w.states[i] == State::Linked)
            .filter_map(|i| f(self.index.slot(i as u32)))
            .collect()
    }

    /// How many slots it holds, and what they weigh.
    pub fn size(&self) -> (usize, u64) {
        let w = self.writer.lock();
        (w.layout.live(), w.weight)
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // No reader can be inside: they borrow the shard.
        let w = self.writer.get_mut();
        for (i, state) in w.states.iter().enumerate() {
            if *state != State::Free {
                drop(self.index.take(i as u32));
            }
        }
        w.batch_tables.drain(..).chain(w.limbo_tables.drain(..)).for_each(Index::free_table);
        self.index.free();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{Gone, Shard, ShardBound};
    use crate::mount::l1::key_text::KeyTexts;
    use crate::mount::l1::slot::{NewSlot, Slot, value};

    fn slot(texts: &KeyTexts, id: u128, v: Arc<Vec<u64>>) -> Slot {
        let key = format!("k{id}");
        let text = texts.text_for(&key, None, 0, None);
        let n = NewSlot {
            key: &key,
            function: None,
            value: value(v),
            mtime: 0,
            expires: u64::MAX,
            integrity: 0,
            tags: Box::new([]),
            seq: 0,
            ttl_ms: None,
            stats: None,
            weight: 0,
            expired: false,
        };
        Slot::new(id, text, n, 1)
    }

    /// Readers check every value they find against its id while a writer replaces,
    /// evicts and removes: a slot freed while a reader holds it would show up as a wrong
    /// or torn value (or a crash, or a Miri error).
    #[test]
    fn readers_never_see_a_freed_slot_while_the_writer_churns() {
        let shard = Shard::default();
        let texts = KeyTexts::default();
        let bound = ShardBound { entries: 48, weight: u64::MAX };
        let keys: u128 = if cfg!(miri) { 24 } else { 200 };
        let rounds = if cfg!(miri) { 300 } else { 50_000 };
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for r in 0..2u128 {
                let (shard, stop) = (&shard, &stop);
                s.spawn(move || {
                    let mut found = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for id in 0..keys {
                            let id = (id * 7 + r) % keys;
                            if let Some(ok) = shard.peek(id, |s| {
                                let v = s.value::<Arc<Vec<u64>>>().expect("the type stored");
                                v.len() == 3 && v.iter().all(|&x| x == id as u64)
                            }) {
                                assert!(ok, "a slot of id {id} held another value");
                                found += 1;
                            }
                        }
                    }
                    assert!(found > 0);
                });
            }
            let mut gone = Gone::new();
            for n in 0..rounds {
                let id = (n as u128 * 31) % keys;
                if n % 5 == 0 {
                    shard.remove_if(id, |_| true, &mut gone);
                } else {
                    shard.insert(slot(&texts, id, Arc::new(vec![id as u64; 3])), bound, 0, &mut gone);
                    // Readers raise use counts as the hand lowers them: the bound holds anyway.
                    assert!(shard.size().0 <= 48, "the shard holds {} slots of 48", shard.size().0);
                }
                gone.clear();
            }
            stop.store(true, Ordering::Relaxed);
        });
    }

    #[test]
    fn a_removed_value_is_dropped_once_the_readers_of_the_time_are_done() {
        let shard = Shard::default();
        let texts = KeyTexts::default();
        let v = Arc::new(vec![1u64; 3]);
        let mut gone = Gone::new();
        shard.insert(slot(&texts, 1, Arc::clone(&v)), ShardBound { entries: 10, weight: u64::MAX }, 0, &mut gone);
        assert!(shard.remove_if(1, |_| true, &mut gone));
        assert!(shard.peek(1, |_| ()).is_none(), "gone from the index at once");
        // Freed at once unless another thread was reading at that moment (other tests run
        // beside this one); then by the next write that finds their sections ended.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while gone.is_empty() {
            assert!(std::time::Instant::now() < deadline, "the removed value was never freed");
            std::thread::yield_now();
            shard.reclaim(&mut gone);
        }
        drop(gone);
        assert_eq!(Arc::strong_count(&v), 1, "the removed slot was freed and its value dropped");
    }
}
