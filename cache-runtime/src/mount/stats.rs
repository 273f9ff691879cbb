//! Counters per cached function: hits, stale hits, misses, body runs, errors, grace answers.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

const STRIPES: usize = 8;

#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

/// A counter striped over cache lines, so that threads hitting the same function don't
/// fight over one.
#[derive(Default)]
pub(crate) struct Counter([Stripe; STRIPES]);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe() -> usize {
    STRIPE.with(|s| {
        let mut v = s.get();
        if v == usize::MAX {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            v = NEXT.fetch_add(1, Ordering::Relaxed) as usize % STRIPES;
            s.set(v);
        }
        v
    })
}

impl Counter {
    #[inline]
    pub fn incr(&self) {
        self.0[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// The live counters of one function.
#[derive(Default)]
pub(crate) struct Stats {
    pub hits: Counter,
    pub stale: Counter,
    pub misses: Counter,
    pub runs: Counter,
    pub errors: Counter,
    pub grace: Counter,
}

impl Stats {
    pub fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            stale_hits: self.stale.get(),
            misses: self.misses.get(),
            runs: self.runs.get(),
            errors: self.errors.get(),
            grace_answers: self.grace.get(),
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
