//! The index of one shard ([`Index`]), read without a lock: slots in a slab whose chunks
//! never move, and an open-addressed table of slab indices that the shard's writer changes
//! with atomic stores and replaces whole when it grows.
//!
//! A reader inside a [`Section`] finds a slot by id and may use it until the section ends.
//! The writer (one at a time: the caller holds the shard's lock) links a slot it has
//! written, unlinks slots and old tables, and frees them only once a grace period begun
//! after the unlinking has passed (the shard decides when). A bucket is an 8-bit tag of the
//! id and the slot's index in one `u32` (4 bytes: a probe compares tags before it reads a
//! slot), so a shard holds at most [`MAX_SLOTS`] slots.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::mount::l1::sections::Section;
use crate::mount::l1::slot::Slot;

const EMPTY: u32 = 0;
const TOMB: u32 = 1;
/// The index bits of a bucket (the top 8 are the tag).
const INDEX_BITS: u32 = 24;
/// The most slots a shard's slab holds (an index and 2 fit in [`INDEX_BITS`]).
pub(crate) const MAX_SLOTS: u32 = (1 << INDEX_BITS) - 2;
/// The first chunk's slots; chunk `k` holds `FIRST << k`.
const FIRST_BITS: u32 = 6;
/// Enough chunks for every index below [`MAX_SLOTS`].
const CHUNKS: usize = 19;
/// The smallest table.
const MIN_BUCKETS: usize = 16;

/// An open-addressed table of buckets (linear probing; never full: some bucket is empty).
struct Table {
    mask: usize,
    buckets: Box<[AtomicU32]>,
}

impl Table {
    fn new(buckets: usize) -> *mut Table {
        Box::into_raw(Box::new(Table {
            mask: buckets - 1,
            buckets: (0..buckets).map(|_| AtomicU32::new(EMPTY)).collect(),
        }))
    }
}

/// A table taken out of use, to be freed after a grace period.
pub(crate) struct Retired(*mut Table);

// SAFETY: a retired table is only freed, by whichever writer holds it.
unsafe impl Send for Retired {}

#[inline]
fn hash(id: u128) -> u64 {
    // Ids are random already (seeded xxh3 or a keyed mix); the high half picks the shard.
    id as u64
}

/// The tag of an id in its buckets: bits the bucket's position does not use.
#[inline]
fn tag(id: u128) -> u32 {
    (hash(id) >> 56) as u32
}

#[inline]
fn bucket(id: u128, index: u32) -> u32 {
    debug_assert!(index < MAX_SLOTS);
    (tag(id) << INDEX_BITS) | (index + 2)
}

#[inline]
fn index_of(bucket: u32) -> Option<u32> {
    (bucket & ((1 << INDEX_BITS) - 1)).checked_sub(2)
}

/// Which chunk, and where in it, the slot `index` is.
#[inline]
fn chunk_of(index: u32) -> (usize, usize) {
    let j = (index >> FIRST_BITS) + 1;
    let k = 31 - j.leading_zeros();
    (k as usize, (index as usize) + (1 << FIRST_BITS) - ((1usize << FIRST_BITS) << k))
}

/// The index of one shard.
pub(crate) struct Index {
    table: AtomicPtr<Table>,
    chunks: [AtomicPtr<Slot>; CHUNKS],
    _owns: PhantomData<Slot>,
}

/// What only the writer knows of an index: what its table holds, and how far its slab goes.
#[derive(Default)]
pub(crate) struct Layout {
    /// Linked slots, and tombstones, in the current table.
    live: usize,
    tombs: usize,
    /// Slab indices handed out so far.
    high: u32,
}

impl Layout {
    /// How many slots are linked.
    pub fn live(&self) -> usize {
        self.live
    }
}

impl Default for Index {
    fn default() -> Index {
        Index { table: AtomicPtr::new(Table::new(MIN_BUCKETS)), chunks: Default::default(), _owns: PhantomData }
    }
}

impl Index {
    #[inline]
    fn slot_ptr(&self, index: u32) -> *mut Slot {
        let (k, at) = chunk_of(index);
        // Acquire: the chunk was published before any index in it.
        let chunk = self.chunks[k].load(Ordering::Acquire);
        debug_assert!(!chunk.is_null());
        // SAFETY: `index` was handed out, so its chunk exists and holds `at`.
        unsafe { chunk.add(at) }
    }

    /// The slot of `id`, for as long as `section` lasts.
    #[inline]
    pub fn find<'s>(&'s self, _section: &'s Section, id: u128) -> Option<&'s Slot> {
        // SAFETY: a table is freed only after a grace period begun after it was replaced,
        // and this section keeps any such grace period from passing.
        let table = unsafe { &*self.table.load(Ordering::Acquire) };
        // Acquire: a linked index is a written slot (published by the Release store of its
        // bucket); the section keeps it from being freed.
        self.probe(table, id, Ordering::Acquire).map(|(_, _, slot)| slot)
    }

    /// The bucket of `table` that links `id`, the slab index in it and its slot: the probe from the
    /// id's bucket to an empty one, comparing tags before slots. A reader loads the buckets
    /// with `Acquire`; the writer, which stored them, may load them `Relaxed`.
    #[inline]
    fn probe<'t>(&self, table: &'t Table, id: u128, order: Ordering) -> Option<(&'t AtomicU32, u32, &Slot)> {
        let tag = tag(id);
        let mut i = hash(id) as usize & table.mask;
        for _ in 0..=table.mask {
            // SAFETY: `i` is masked to the table.
            let bucket = unsafe { table.buckets.get_unchecked(i) };
            let b = bucket.load(order);
            if b == EMPTY {
                return None;
            }
            if b >> INDEX_BITS == tag
                && let Some(index) = index_of(b)
            {
                let slot = self.slot(index);
                if slot.id == id {
                    return Some((bucket, index, slot));
                }
            }
            i = (i + 1) & table.mask;
        }
        None
    }

    /// The slot at `index`, which the caller knows to be written and not freed: the writer
    /// for a slot linked or unlinked and not yet freed, a reader for one it found linked
    /// inside its section.
    #[inline]
    pub fn slot(&self, index: u32) -> &Slot {
        // SAFETY: as above; slots are freed only by the writer, after a grace period.
        unsafe { &*self.slot_ptr(index) }
    }

    /// A new slab index (past every index handed out), with its chunk; `None` when the
    /// slab holds [`MAX_SLOTS`] already.
    pub fn grow(&self, layout: &mut Layout) -> Option<u32> {
        let index = layout.high;
        if index >= MAX_SLOTS {
            return None;
        }
        let (k, at) = chunk_of(index);
        if at == 0 && self.chunks[k].load(Ordering::Relaxed).is_null() {
            let chunk = Box::<[Slot]>::new_uninit_slice((1usize << FIRST_BITS) << k);
            self.chunks[k].store(Box::into_raw(chunk).cast::<Slot>(), Ordering::Release);
        }
        layout.high += 1;
        Some(index)
    }

    /// Writes `slot` at the free `index` (not linked: nobody can read it).
    pub fn write(&self, index: u32, slot: Slot) {
        // SAFETY: a free index is in no table and in no reader's hands.
        unsafe { self.slot_ptr(index).write(slot) }
    }

    /// Takes the slot at `index` out, leaving it free. Only for an index that is in no
    /// table and past a grace period (or never linked).
    pub fn take(&self, index: u32) -> Slot {
        // SAFETY: see above: nobody else can reach the slot.
        unsafe { self.slot_ptr(index).read() }
    }

    /// Links the written slot at `index` under its id, in place of the slot of the same id
    /// (whose index is returned, now unlinked). The table grows first if it must: the old
    /// table is given to `retire`.
    pub fn link(&self, layout: &mut Layout, index: u32, retire: &mut Vec<Retired>) -> Option<u32> {
        let id = self.slot(index).id;
        // At most half the buckets linked, three quarters used with tombstones: probes stay
        // short (a lookup of an absent key walks to an empty bucket).
        let capacity = self.capacity();
        if (layout.live + 1) * 2 > capacity {
            self.rebuild(layout, capacity * 2, retire);
        } else if (layout.live + layout.tombs + 1) * 4 > capacity * 3 {
            self.rebuild(layout, capacity, retire);
        }
        // SAFETY: only the writer replaces the table, and it is the caller.
        let table = unsafe { &*self.table.load(Ordering::Relaxed) };
        let h = hash(id);
        let mut i = h as usize & table.mask;
        let mut free_at = None;
        loop {
            let b = table.buckets[i].load(Ordering::Relaxed);
            if b == EMPTY {
                break;
            }
            if b == TOMB {
                free_at.get_or_insert(i);
            } else if let Some(old) = index_of(b)
                && b >> INDEX_BITS == tag(id)
                && self.slot(old).id == id
            {
                table.buckets[i].store(bucket(id, index), Ordering::Release);
                return Some(old);
            }
            i = (i + 1) & table.mask;
        }
        match free_at {
            Some(at) => {
                layout.tombs -= 1;
                table.buckets[at].store(bucket(id, index), Ordering::Release);
            }
            None => table.buckets[i].store(bucket(id, index), Ordering::Release),
        }
        layout.live += 1;
        None
    }

    /// Unlinks the slot of `id`; its index, if it was linked.
    pub fn unlink(&self, layout: &mut Layout, id: u128) -> Option<u32> {
        let (bucket, index) = self.locate(id)?;
        bucket.store(TOMB, Ordering::Release);
        layout.live -= 1;
        layout.tombs += 1;
        Some(index)
    }

    /// The linked index of `id`, for the writer.
    pub fn position(&self, id: u128) -> Option<u32> {
        self.locate(id).map(|(_, index)| index)
    }

    /// The bucket that links `id` in the current table, and the slab index in it. For the
    /// writer.
    fn locate(&self, id: u128) -> Option<(&AtomicU32, u32)> {
        // SAFETY: only the writer replaces the table, and it is the caller.
        let table = unsafe { &*self.table.load(Ordering::Relaxed) };
        self.probe(table, id, Ordering::Relaxed).map(|(bucket, index, _)| (bucket, index))
    }

    fn capacity(&self) -> usize {
        // SAFETY: only the writer replaces the table, and it is the caller.
        unsafe { &*self.table.load(Ordering::Relaxed) }.mask + 1
    }

    /// Replaces the table with one of `buckets` (a power of two) holding the same links and
    /// no tombstones; the old one goes to `retire` (freed after a grace period).
    fn rebuild(&self, layout: &mut Layout, buckets: usize, retire: &mut Vec<Retired>) {
        let old_ptr = self.table.load(Ordering::Relaxed);
        // SAFETY: only the writer replaces the table, and it is the caller.
        let old = unsafe { &*old_ptr };
        let new_ptr = Table::new(buckets);
        // SAFETY: not yet published: this writer is its only user.
        let new = unsafe { &*new_ptr };
        for b in old.buckets.iter() {
            let b = b.load(Ordering::Relaxed);
            let Some(index) = index_of(b) else { continue };
            let mut i = hash(self.slot(index).id) as usize & new.mask;
            while new.buckets[i].load(Ordering::Relaxed) != EMPTY {
                i = (i + 1) & new.mask;
            }
            new.buckets[i].store(b, Ordering::Relaxed);
        }
        // Release: the new table's buckets are written before readers can find it.
        self.table.store(new_ptr, Ordering::Release);
        layout.tombs = 0;
        retire.push(Retired(old_ptr));
    }

    /// Frees a table given to `retire`, once a grace period begun after it has passed.
    pub fn free_table(retired: Retired) {
        // SAFETY: the caller says no reader can hold it; it came from `Table::new`.
        drop(unsafe { Box::from_raw(retired.0) });
    }

    /// Frees the chunks and the table. The caller has taken every written slot out first.
    pub fn free(&mut self) {
        for (k, chunk) in self.chunks.iter_mut().enumerate() {
            let chunk = std::mem::replace(chunk.get_mut(), ptr::null_mut());
            if !chunk.is_null() {
                let len = (1usize << FIRST_BITS) << k;
                // SAFETY: made by `grow` with this length; its slots are taken out.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(chunk.cast::<MaybeUninit<Slot>>(), len)) });
            }
        }
        let table = std::mem::replace(self.table.get_mut(), ptr::null_mut());
        if !table.is_null() {
            Index::free_table(Retired(table));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chunk_of;

    #[test]
    fn chunks_cover_every_index_once_in_order() {
        let mut expect = (0usize, 0usize);
        for index in 0..200_000u32 {
            let got = chunk_of(index);
            assert_eq!(got, expect, "index {index}");
            expect.1 += 1;
            if expect.1 == 64 << expect.0 {
                expect = (expect.0 + 1, 0);
            }
        }
        assert_eq!(chunk_of(super::MAX_SLOTS - 1).0, super::CHUNKS - 1);
    }
}
