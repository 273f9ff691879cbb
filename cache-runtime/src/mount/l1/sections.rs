//! Reading without a lock ([`enter`] a [`Section`]), and knowing when nothing that was
//! read before a point can still be in use ([`Grace`]): what lets the memory tier's readers
//! take no lock while its writers unlink slots and free them later.
//!
//! Each thread that reads has a record of its own, whose counter is odd while the thread
//! is inside a section. A writer that has unlinked something begins a grace period: after
//! a full fence it notes the records that are inside a section; once each of those has
//! left it (its counter moved on), no reader can still hold what was unlinked, and the
//! writer frees it. A reader that enters after the fence sees the unlinking and cannot
//! find it.
//!
//! Entering a section is a store and a full fence on a cache line that only the reading
//! thread writes (on x86 one locked exchange; a shard's read lock took two locked
//! operations on a line every reader of the shard wrote); leaving it is a plain store.
//! Sections nest (a value's `Clone` may read the cache). A thread whose thread-locals are
//! being torn down reads under a shared counter instead, which holds every grace period
//! that begins while it is nonzero.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};

use smallvec::SmallVec;

/// One thread's record: the counter of its sections. Records are never freed; a thread
/// that ends gives its record back for the next thread.
#[repr(align(128))]
struct Record {
    /// Odd while its thread is inside a section; only its thread writes it.
    seq: AtomicU64,
    /// Whether a thread owns it.
    taken: AtomicBool,
    /// The record registered before it (fixed once it is in the list).
    next: *const Record,
}

// SAFETY: `next` is written only before the record is published, then only read.
unsafe impl Sync for Record {}

/// Every record ever registered, newest first.
static RECORDS: AtomicPtr<Record> = AtomicPtr::new(ptr::null_mut());

/// Readers inside a section without a record (their thread is ending).
static UNRECORDED: AtomicUsize = AtomicUsize::new(0);

struct Local {
    record: Cell<*const Record>,
    depth: Cell<u32>,
}

thread_local! {
    static LOCAL: Local = const { Local { record: Cell::new(ptr::null()), depth: Cell::new(0) } };
    /// Gives the thread's record back when the thread ends.
    static RELEASE: Release = const { Release };
}

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|l| {
            let record = l.record.replace(ptr::null());
            // SAFETY: records are never freed.
            if let Some(r) = unsafe { record.as_ref() } {
                r.taken.store(false, Ordering::Release);
            }
        });
    }
}

/// A record for this thread: a free one, or a new one. `None` when the thread is ending
/// (a record taken now could not be given back).
#[cold]
fn claim() -> *const Record {
    if RELEASE.try_with(|_| ()).is_err() {
        return ptr::null();
    }
    let mut at = RECORDS.load(Ordering::Acquire);
    // SAFETY: records are never freed.
    while let Some(r) = unsafe { at.as_ref() } {
        if !r.taken.load(Ordering::Relaxed)
            && r.taken.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            return r;
        }
        at = r.next.cast_mut();
    }
    let mut head = RECORDS.load(Ordering::Relaxed);
    let new = Box::into_raw(Box::new(Record { seq: AtomicU64::new(0), taken: AtomicBool::new(true), next: head }));
    loop {
        match RECORDS.compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return new,
            Err(now) => {
                head = now;
                // SAFETY: not yet published: this thread is its only user.
                unsafe { (*new).next = now };
            }
        }
    }
}

/// A read section: while it lives, nothing this thread finds in an index is freed.
pub(crate) struct Section {
    /// This thread's record when this section is the outermost one (null: nested, or
    /// read under the shared counter when `unrecorded`).
    record: *const Record,
    outermost: bool,
}

/// Enters a read section.
#[inline]
pub(crate) fn enter() -> Section {
    LOCAL.with(|l| {
        let depth = l.depth.get();
        l.depth.set(depth + 1);
        if depth > 0 {
            return Section { record: ptr::null(), outermost: false };
        }
        let mut record = l.record.get();
        if record.is_null() {
            record = claim();
            l.record.set(record);
        }
        // SAFETY: records are never freed.
        match unsafe { record.as_ref() } {
            Some(r) => {
                announce(&r.seq);
                Section { record, outermost: true }
            }
            None => {
                UNRECORDED.fetch_add(1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                Section { record, outermost: true }
            }
        }
    })
}

/// Makes the counter odd, and fences: what this thread reads next is read after every
/// grace period that began before it sees this section.
#[inline]
fn announce(seq: &AtomicU64) {
    let odd = seq.load(Ordering::Relaxed) + 1;
    // On x86 a locked exchange is a full barrier (the same instruction as a SeqCst store)
    // and cheaper than a store followed by `mfence`; it releases too.
    #[cfg(all(any(target_arch = "x86_64", target_arch = "x86"), not(miri)))]
    {
        seq.swap(odd, Ordering::SeqCst);
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "x86"), not(miri))))]
    {
        // Release as well: a writer that reads this value (the section after the one it
        // waited for) must see that section's reads as done.
        seq.store(odd, Ordering::Release);
        fence(Ordering::SeqCst);
    }
}

impl Drop for Section {
    #[inline]
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|l| l.depth.set(l.depth.get() - 1));
        if !self.outermost {
            return;
        }
        // SAFETY: records are never freed.
        match unsafe { self.record.as_ref() } {
            // Release: every read of the section happens before a writer sees it left.
            Some(r) => r.seq.store(r.seq.load(Ordering::Relaxed) + 1, Ordering::Release),
            None => {
                UNRECORDED.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

/// A grace period: the sections that were open when it began. Once it has
/// [`passed`](Self::passed), what was unlinked before it began is in nobody's hands.
pub(crate) struct Grace {
    open: SmallVec<[(&'static Record, u64); 4]>,
    unrecorded: bool,
}

impl Grace {
    /// Begins a grace period (after the unlinking it is for).
    pub fn begin() -> Grace {
        fence(Ordering::SeqCst);
        let unrecorded = UNRECORDED.load(Ordering::Acquire) != 0;
        let mut open = SmallVec::new();
        let mut at = RECORDS.load(Ordering::Acquire);
        // SAFETY: records are never freed.
        while let Some(r) = unsafe { at.as_ref() } {
            let seq = r.seq.load(Ordering::Acquire);
            if seq & 1 == 1 {
                open.push((r, seq));
            }
            at = r.next.cast_mut();
        }
        Grace { open, unrecorded }
    }

    /// Whether every section open when it began has ended.
    pub fn passed(&mut self) -> bool {
        // Acquire: a section's reads happen before its end is seen here.
        self.open.retain(|(r, seq)| r.seq.load(Ordering::Acquire) == *seq);
        if self.unrecorded && UNRECORDED.load(Ordering::Acquire) == 0 {
            self.unrecorded = false;
        }
        self.open.is_empty() && !self.unrecorded
    }
}

#[cfg(test)]
mod tests {
    use super::{Grace, enter};

    #[test]
    fn a_grace_period_waits_for_a_section_open_when_it_began_and_no_other() {
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (leave_tx, leave_rx) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let section = enter();
            entered_tx.send(()).unwrap();
            leave_rx.recv().unwrap();
            drop(section);
        });
        entered_rx.recv().unwrap();
        let mut grace = Grace::begin();
        assert!(!grace.passed(), "a section open at the start holds the grace period");
        // A section begun after the grace period does not hold it.
        let mine = enter();
        leave_tx.send(()).unwrap();
        reader.join().unwrap();
        // Other tests' readers may have been inside a section too: theirs end on their own.
        assert!(passes(&mut grace), "the section that held it has ended");
        drop(mine);
    }

    /// Whether `grace` passes within ten seconds (it waits only for sections that end).
    fn passes(grace: &mut Grace) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !grace.passed() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    #[test]
    fn nested_sections_end_with_the_outermost() {
        let outer = enter();
        let inner = enter();
        drop(inner);
        let (tx, rx) = std::sync::mpsc::channel();
        // Another thread's grace period sees this thread still inside.
        std::thread::scope(|s| {
            s.spawn(|| tx.send(Grace::begin()).unwrap());
        });
        let mut grace = rx.recv().unwrap();
        assert!(!grace.passed());
        drop(outer);
        assert!(passes(&mut grace));
    }

    #[test]
    fn a_thread_that_ends_gives_its_record_back() {
        for _ in 0..64 {
            std::thread::spawn(|| drop(enter())).join().unwrap();
        }
        let mut n = 0;
        let mut at = super::RECORDS.load(std::sync::atomic::Ordering::Acquire);
        while let Some(r) = unsafe { at.as_ref() } {
            n += 1;
            at = r.next.cast_mut();
        }
        assert!(n < 64, "records are reused: {n} for 64 threads one after another");
    }
}
