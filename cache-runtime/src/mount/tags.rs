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

/// The tag events of one mount.
pub(crate) struct Tags {
    /// The sequence of the latest event of any tag (0: none yet).
    last_event: AtomicU64,
    table: RwLock<HashMap<u64, Stamp>>,
}

impl Tags {
    pub fn new() -> Tags {
        Tags { last_event: AtomicU64::new(0), table: RwLock::new(HashMap::new()) }
    }

    /// The verdict for an entry stored at sequence `seq` with these tags. With no tag
    /// event since the entry was stored, this is one atomic load.
    #[inline]
    pub fn check(&self, tag_ids: &[u64], seq: u64) -> TagVerdict {
        if tag_ids.is_empty() || self.last_event.load(Ordering::Acquire) < seq {
            return TagVerdict::Valid;
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

    /// Records that `tag` was invalidated at sequence `seq`.
    pub fn invalidate(&self, tag: &str, seq: u64) {
        self.table.write().entry(tag_id(tag)).or_default().invalidated = seq;
        self.last_event.fetch_max(seq, Ordering::AcqRel);
    }

    /// Records that `tag` was expired at sequence `seq`.
    pub fn expire(&self, tag: &str, seq: u64) {
        self.table.write().entry(tag_id(tag)).or_default().expired = seq;
        self.last_event.fetch_max(seq, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_after_the_entry_count() {
        let t = Tags::new();
        let ids = [tag_id("a"), tag_id("b")];
        assert_eq!(t.check(&ids, 5), TagVerdict::Valid);
        t.expire("b", 6);
        assert_eq!(t.check(&ids, 5), TagVerdict::Expired);
        assert_eq!(t.check(&ids, 7), TagVerdict::Valid);
        t.invalidate("a", 8);
        assert_eq!(t.check(&ids, 7), TagVerdict::Invalid);
        assert_eq!(t.check(&[tag_id("c")], 1), TagVerdict::Valid);
    }
}

/// The L2 key of a tag's timestamps.
pub(crate) fn tag_key(tag: &str) -> String {
    format!("_larder:tags:{}.json", crate::key::storage_key::escape_key(tag))
}

/// A tag's events in L2, in ms since the epoch (so that every instance agrees).
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) struct TagStamps {
    #[serde(default)]
    pub invalidated: u64,
    #[serde(default)]
    pub expired: u64,
}
