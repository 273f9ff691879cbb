//! Counters per cached function: hits, stale hits, misses, body runs, errors, grace answers.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Threads that each own a line of counters (the first this many to count anything).
const OWNED: usize = 8;
/// Lines shared by every later thread, which count on them with atomic adds.
const SHARED: usize = 8;

/// One thread's counters (or a few threads', on a shared line), on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Line([AtomicU64; EVENTS]);

/// What a function's counters count.
#[derive(Clone, Copy)]
enum Event {
    Hit,
    Stale,
    Miss,
    Run,
    Error,
    Grace,
}
const EVENTS: usize = 6;

thread_local! {
    /// This thread's line: below [`OWNED`], its own; else a shared one.
    static LINE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn line() -> usize {
    LINE.with(|s| {
        let mut v = s.get();
        if v == usize::MAX {
            // Never handed out twice: a line below OWNED has one writer for ever.
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            v = if n < OWNED { n } else { OWNED + n % SHARED };
            s.set(v);
        }
        v
    })
}

/// The live counters of one function, on lines of counters per thread, so that threads
/// counting the same function never write the same cache line. A thread among the first
/// [`OWNED`] to count owns its line and counts with a plain load and store (no atomic
/// read-modify-write on a hit); the threads after them share the other lines and add
/// atomically. Either way no count is lost.
#[derive(Default)]
pub(crate) struct Stats {
    lines: [Line; OWNED + SHARED],
}

impl Stats {
    #[inline]
    fn count(&self, e: Event) {
        let i = line();
        let c = &self.lines[i].0[e as usize];
        if i < OWNED {
            // This thread is the line's only writer.
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        } else {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A call answered with a fresh entry.
    #[inline]
    pub fn hit(&self) {
        self.count(Event::Hit);
    }

    /// A call answered with a stale entry.
    pub fn stale(&self) {
        self.count(Event::Stale);
    }

    /// A call that waited for the body.
    pub fn miss(&self) {
        self.count(Event::Miss);
    }

    /// A run of the body.
    pub fn run(&self) {
        self.count(Event::Run);
    }

    /// A failure of the body.
    pub fn error(&self) {
        self.count(Event::Error);
    }

    /// A call answered from grace.
    pub fn grace(&self) {
        self.count(Event::Grace);
    }

    fn total(&self, e: Event) -> u64 {
        self.lines.iter().map(|l| l.0[e as usize].load(Ordering::Relaxed)).sum()
    }

    pub fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.total(Event::Hit),
            stale_hits: self.total(Event::Stale),
            misses: self.total(Event::Miss),
            runs: self.total(Event::Run),
            errors: self.total(Event::Error),
            grace_answers: self.total(Event::Grace),
        }
    }
}

/// What a cached function has done since its runtime started (`NAME_stats()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Calls answered with a fresh entry.
    pub hits: u64,
    /// Calls answered with a stale entry (`swr`), which started a refresh.
    pub stale_hits: u64,
    /// Calls that found nothing usable and waited for the body (run or shared).
    pub misses: u64,
    /// Times the body ran (foreground, shared, or background refresh).
    pub runs: u64,
    /// Times the body failed.
    pub errors: u64,
    /// Calls answered from `grace` while the body failed or was backed off.
    pub grace_answers: u64,
}

#[cfg(test)]
mod tests {
    use super::Stats;

    #[test]
    fn no_count_is_lost_whether_a_thread_owns_its_line_or_shares_one() {
        // More threads than there are owned lines: some count on shared lines.
        let stats = Stats::default();
        std::thread::scope(|s| {
            for _ in 0..24 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        stats.hit();
                    }
                    stats.miss();
                });
            }
        });
        let seen = stats.snapshot();
        assert_eq!((seen.hits, seen.misses, seen.runs), (240_000, 24, 0));
    }
}
