//! Tags, invalidated lazily: a tag event costs O(1), whatever the number of
//! entries; reads compare the entry's store sequence with its tags' event sequences.
//!
//! Ordering uses a per-mount sequence number rather than the clock, so "invalidated after
//! this entry was stored" is exact even within one millisecond. Runs in flight that carry
//! a tag being invalidated are cancelled (their results are not stored).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use xxhash_rust::xxh3::xxh3_64;

/// The id of a tag in the table (xxh3-64 of the tag).
#[inline]
pub(crate) fn tag_id(tag: &str) -> u64 {
    xxh3_64(tag.as_bytes())
}

#[derive(Default, Clone, Copy)]
struct Stamp {
    invalidated: u64,
    expired: u64,
    /// When the latest event of the tag was recorded (ms by the mount's clock).
    at_ms: u64,
}

/// What an entry's tags say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagVerdict {
    Valid,
    /// A tag was expired after the entry was stored: not fresh, still usable as stale.
    Expired,
    /// A tag was invalidated after the entry was stored: a miss.
    Invalid,
}

/// The most tags whose events are kept one by one; past it (after pruning), the oldest
/// events are folded into a floor below which every tagged entry is invalid.
pub(crate) const MAX_TAG_EVENTS: usize = 100_000;

/// The tag events of one mount.
///
/// An event only matters to entries stored before it, and those are all gone once the
/// longest lifetime of any entry has passed: events older than that are pruned. If more
/// than [`MAX_TAG_EVENTS`] tags still have events, the table is emptied and `floor` takes
/// the latest of their sequence numbers: every tagged entry stored before it is a miss
/// (safe, and memory stays bounded whatever the number of distinct tags).
pub(crate) struct Tags {
    /// The sequence of the latest event of any tag (0: none yet).
    last_event: AtomicU64,
    /// Tagged entries stored at or before this sequence are invalid (0: none).
    floor: AtomicU64,
    table: RwLock<HashMap<u64, Stamp>>,
}

impl Tags {
    pub fn new() -> Tags {
        Tags { last_event: AtomicU64::new(0), floor: AtomicU64::new(0), table: RwLock::new(HashMap::new()) }
    }

    /// The verdict for an entry stored at sequence `seq` with these tags. With no tag
    /// event since the entry was stored, this is one atomic load.
    #[inline]
    pub fn check(&self, tag_ids: &[u64], seq: u64) -> TagVerdict {
        if tag_ids.is_empty() || self.last_event.load(Ordering::Acquire) < seq {
            return TagVerdict::Valid;
        }
        if self.floor.load(Ordering::Acquire) >= seq {
            return TagVerdict::Invalid;
        }
        let table = self.table.read();
        let mut verdict = TagVerdict::Valid;
        for id in tag_ids {
            if let Some(stamp) = table.get(id) {
                if stamp.invalidated > seq {
                    return TagVerdict::Invalid;
                }
                if stamp.expired > seq {
                    verdict = TagVerdict::Expired;
                }
            }
        }
        verdict
    }

    /// Records that `tag` was invalidated at sequence `seq` (at `now_ms`); events older
    /// than `keep_ms` (the longest lifetime of an entry) may be pruned.
    pub fn invalidate(&self, tag: &str, seq: u64, now_ms: u64, keep_ms: u64) {
        self.record(tag, now_ms, keep_ms, |s| s.invalidated = s.invalidated.max(seq));
        self.last_event.fetch_max(seq, Ordering::AcqRel);
    }

    /// Records that `tag` was expired at sequence `seq` (see [`invalidate`](Self::invalidate)).
    pub fn expire(&self, tag: &str, seq: u64, now_ms: u64, keep_ms: u64) {
        self.record(tag, now_ms, keep_ms, |s| s.expired = s.expired.max(seq));
        self.last_event.fetch_max(seq, Ordering::AcqRel);
    }

    fn record(&self, tag: &str, now_ms: u64, keep_ms: u64, f: impl FnOnce(&mut Stamp)) {
        let mut table = self.table.write();
        let stamp = table.entry(tag_id(tag)).or_default();
        f(stamp);
        stamp.at_ms = now_ms;
        // Prune when the table has doubled since the last prune (amortized O(1) per event).
        let len = table.len();
        if len >= 1024 && len.is_power_of_two() {
            table.retain(|_, s| s.at_ms.saturating_add(keep_ms) > now_ms);
            if table.len() > MAX_TAG_EVENTS {
                let latest = table.values().map(|s| s.invalidated.max(s.expired)).max().unwrap_or(0);
                self.floor.fetch_max(latest, Ordering::AcqRel);
                table.clear();
            }
            table.shrink_to_fit();
        }
    }

    /// How many tags have events in the table (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.read().len()
    }
}

/// The L2 key of the stamp of `tag`'s latest invalidation (see [`Store::raise`](crate::Store::raise)).
pub(crate) fn tag_invalidated_key(tag: &str) -> String {
    format!("_larder:tags:invalidated:{}.json", crate::key::storage_key::escape_key(tag))
}

/// The L2 key of the stamp of `tag`'s latest expiry.
pub(crate) fn tag_expired_key(tag: &str) -> String {
    format!("_larder:tags:expired:{}.json", crate::key::storage_key::escape_key(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_after_the_entry_count() {
        let t = Tags::new();
        let ids = [tag_id("a"), tag_id("b")];
        assert_eq!(t.check(&ids, 5), TagVerdict::Valid);
        t.expire("b", 6, 0, u64::MAX);
        assert_eq!(t.check(&ids, 5), TagVerdict::Expired);
        assert_eq!(t.check(&ids, 7), TagVerdict::Valid);
        t.invalidate("a", 8, 0, u64::MAX);
        assert_eq!(t.check(&ids, 7), TagVerdict::Invalid);
        assert_eq!(t.check(&[tag_id("c")], 1), TagVerdict::Valid);
    }

    #[test]
    fn old_events_are_pruned_and_the_table_stays_bounded() {
        let t = Tags::new();
        // A million distinct tags, each event older than the longest lifetime (10 ms)
        // by the time the next prune runs.
        for i in 0..1_000_000u64 {
            t.invalidate(&format!("tag-{i}"), i + 1, i, 10);
        }
        assert!(t.len() <= 1 << 20 && t.len() < 2048, "{} events kept", t.len());
        // Events that may still matter are kept: a million tags within the lifetime.
        let t = Tags::new();
        for i in 0..1_000_000u64 {
            t.invalidate(&format!("tag-{i}"), i + 1, 0, u64::MAX);
        }
        assert!(t.len() <= MAX_TAG_EVENTS * 2, "{} events kept", t.len());
        // Folded into the floor: an entry stored before is invalid, one after is valid.
        assert_eq!(t.check(&[tag_id("tag-5")], 6), TagVerdict::Invalid);
        assert_eq!(t.check(&[tag_id("other")], 10), TagVerdict::Invalid);
        assert_eq!(t.check(&[tag_id("other")], 2_000_000), TagVerdict::Valid);
    }
}
