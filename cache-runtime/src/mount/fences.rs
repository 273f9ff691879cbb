//! Invalidation fences: the one rule that keeps an invalidated value from landing in the
//! memory tier or in L2 after the invalidation.
//!
//! Everything that may land a value (a body's run, an L2 read that fills memory, a
//! background refresh) first takes a [`Ticket`]: the mount's next sequence number, and an
//! order stamp ([`Clock::order_stamp`](crate::Clock::order_stamp)) for other instances. An
//! invalidation raises the fence of the key's stripe (or of every key) to a newer sequence
//! number. A value lands only if its ticket is newer than the fence, and the lander checks
//! again after it has landed (an invalidation between the check and the insert removes
//! the memory copy after raising the fence, so one of the two always sees the other).
//!
//! Stripes are shared by keys (a key's id picks one of [`STRIPES`]): an invalidation may
//! keep a run of another key of its stripe from being stored (one more miss later), never
//! the reverse.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many stripes of keys share a fence.
pub(crate) const STRIPES: usize = 4096;

/// What a value that may land carries: when its production began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// The mount's sequence number (orders it against this instance's invalidations).
    pub seq: u64,
    /// The order stamp (orders it against every instance's invalidations, in L2; 0 on a
    /// mount without L2, where nothing reads it).
    pub born: u64,
}

/// The fences of one mount.
pub(crate) struct Fences {
    stripes: Box<[AtomicU64]>,
    /// Raised by invalidations of many keys at once (a prefix, everything).
    all: AtomicU64,
}

impl Fences {
    pub fn new() -> Fences {
        Fences { stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(), all: AtomicU64::new(0) }
    }

    #[inline]
    fn stripe(&self, id: u128) -> &AtomicU64 {
        &self.stripes[(id as usize) & (STRIPES - 1)]
    }

    /// Fences off every ticket of `id` older than `seq`.
    pub fn raise(&self, id: u128, seq: u64) {
        self.stripe(id).fetch_max(seq, Ordering::SeqCst);
    }

    /// Fences off every ticket older than `seq`, whatever its key.
    pub fn raise_all(&self, seq: u64) {
        self.all.fetch_max(seq, Ordering::SeqCst);
    }

    /// Whether a value of `id` produced under `ticket` may land.
    #[inline]
    pub fn admits(&self, id: u128, ticket: Ticket) -> bool {
        self.all.load(Ordering::SeqCst) < ticket.seq && self.stripe(id).load(Ordering::SeqCst) < ticket.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_stops_older_tickets_of_its_stripe_only() {
        let f = Fences::new();
        let old = Ticket { seq: 5, born: 0 };
        let new = Ticket { seq: 9, born: 0 };
        assert!(f.admits(1, old));
        f.raise(1, 7);
        assert!(!f.admits(1, old), "an older ticket is fenced off");
        assert!(f.admits(1, new), "a newer one lands");
        assert!(f.admits(2, old), "another stripe is not fenced");
        f.raise_all(10);
        assert!(!f.admits(2, new) && !f.admits(3, new), "raise_all fences every key");
    }
}
