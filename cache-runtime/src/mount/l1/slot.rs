//! One entry of the memory tier ([`Slot`]): the decoded value and what a read checks, in
//! 96 bytes for a value of up to 8 bytes (a `u64`, an `Arc`), which is kept inline.
//!
//! A slot keeps one pointer for its key, integrity and counters (a [`KeyText`], shared by
//! every slot of a function with default keys); its tags, rare, live behind a second
//! pointer that is null without them.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use smallbox::SmallBox;
use smallbox::space::S1;

use crate::entry::Policy;
use crate::key::storage_key::KeyIs;
use crate::mount::l1::key_text::KeyText;

/// A value of any type, inline when it fits in one word.
pub(crate) type Value = SmallBox<dyn Any + Send + Sync, S1>;

/// Boxes a value (inline when it fits).
pub(crate) fn value<V: Any + Send + Sync>(v: V) -> Value {
    smallbox::smallbox!(v)
}

/// Tags, with the mount's sequence number when the entry was stored (to order them
/// against tag events).
struct Tagged {
    ids: Box<[u64]>,
    seq: u64,
}

/// The highest use count; a read raises it by one, a pass of the eviction hand lowers it.
pub(crate) const MAX_USES: u8 = 3;

/// One decoded entry in the memory tier.
pub(crate) struct Slot {
    pub(super) id: u128,
    pub(super) text: Arc<KeyText>,
    value: Value,
    /// When the value was produced (ms since the epoch, runtime clock).
    mtime: u64,
    /// `mtime + max_age` of the policy that stored it.
    expires: u64,
    tagged: Option<Box<Tagged>>,
    /// What it counts against a memory tier bounded by bytes (1 in one bounded by entries).
    pub(super) weight: u32,
    /// Past every window at `mtime + life_s` seconds (`u32::MAX`: never).
    life_s: u32,
    /// Until `mtime + backoff_ms` a failing body is not called again (grace backoff).
    backoff_ms: AtomicU32,
    expired: AtomicBool,
    /// Reads since the eviction hand last passed, up to [`MAX_USES`].
    pub(super) uses: AtomicU8,
}

/// What a new slot is made of.
pub(crate) struct NewSlot<'a> {
    pub key: &'a str,
    /// The prefix and prefix id of the function the key is of, when the caller knows them
    /// (a default key's shared text is then found without parsing the key).
    pub function: Option<(&'a std::borrow::Cow<'static, str>, u128)>,
    pub value: Value,
    pub mtime: u64,
    pub expires: u64,
    pub integrity: u128,
    pub tags: Box<[Box<str>]>,
    pub seq: u64,
    /// How long it is worth keeping at all (`None`: forever).
    pub ttl_ms: Option<u64>,
    pub stats: Option<Arc<crate::mount::stats::Stats>>,
    /// What the value weighs in bytes (used by a memory tier bounded by bytes).
    pub weight: usize,
    /// Stored as expired (an L2 entry read so).
    pub expired: bool,
}

impl Slot {
    pub(super) fn new(id: u128, text: Arc<KeyText>, n: NewSlot<'_>, weight: u32) -> Slot {
        let tagged = (!n.tags.is_empty()).then(|| {
            Box::new(Tagged { ids: n.tags.iter().map(|t| crate::mount::tags::tag_id(t)).collect(), seq: n.seq })
        });
        let life_s = n.ttl_ms.map_or(u32::MAX, |ms| u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX - 1));
        Slot {
            id,
            text,
            value: n.value,
            mtime: n.mtime,
            expires: n.expires,
            tagged,
            weight,
            life_s,
            backoff_ms: AtomicU32::new(0),
            expired: AtomicBool::new(n.expired),
            uses: AtomicU8::new(0),
        }
    }

    /// Whether this slot holds the entry of `key`.
    #[inline]
    pub fn is(&self, key: KeyIs<'_>) -> bool {
        self.text.is(self.id, key)
    }

    /// Its whole key.
    pub fn key(&self) -> String {
        self.text.key(self.id)
    }

    /// Whether it was expired by hand (`NAME_expire`, a bus message, an L2 entry read so).
    #[inline]
    pub fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }

    /// Marks it expired: never fresh again, still usable under `swr` and `grace`.
    pub fn mark_expired(&self) {
        self.expired.store(true, Ordering::SeqCst);
    }

    /// The value, if it is a `V`.
    #[inline]
    pub fn value<V: 'static>(&self) -> Option<&V> {
        (*self.value).downcast_ref::<V>()
    }

    /// The integrity it was stored with.
    #[inline]
    pub fn integrity(&self) -> u128 {
        self.text.integrity()
    }

    /// Its tags' ids, and the mount's sequence number when it was stored (to check them
    /// against the mount's tag events).
    #[inline]
    pub fn tags(&self) -> (&[u64], u64) {
        self.tagged.as_ref().map_or((&[], 0), |t| (&t.ids, t.seq))
    }

    /// When its value was produced (ms since the epoch, runtime clock).
    #[inline]
    pub fn mtime(&self) -> u64 {
        self.mtime
    }

    /// Whether it is past every window at `now` (worth nothing: the first to go).
    #[inline]
    pub(super) fn is_dead(&self, now: u64) -> bool {
        self.life_s != u32::MAX && now >= self.mtime.saturating_add(u64::from(self.life_s) * 1000)
    }

    /// `windows` with the `max_age` this entry was stored with (each entry keeps its own:
    /// an HTTP response may carry one).
    #[inline]
    pub fn policy(&self, windows: Policy) -> Policy {
        Policy { max_age_ms: self.expires.saturating_sub(self.mtime), ..windows }
    }

    /// Counts a hit on its function's counters.
    #[inline]
    pub fn count_hit(&self) {
        if let Some(stats) = self.text.stats() {
            stats.hit();
        }
    }

    /// Whether a failing body is backed off at `now` (grace backoff).
    #[inline]
    pub fn is_backing_off(&self, now: u64) -> bool {
        self.mtime.saturating_add(u64::from(self.backoff_ms.load(Ordering::Relaxed))) > now
    }

    /// Backs a failing body off until `until` (ms).
    pub fn back_off_until(&self, until: u64) {
        let ms = u32::try_from(until.saturating_sub(self.mtime)).unwrap_or(u32::MAX);
        self.backoff_ms.store(ms, Ordering::Relaxed);
    }

    /// Notes a read for the eviction policy: a load, and a store only while the count is
    /// below its top (a hot slot's line is not written on every hit).
    #[inline]
    pub(super) fn note_use(&self) {
        let uses = self.uses.load(Ordering::Relaxed);
        if uses < MAX_USES {
            self.uses.store(uses + 1, Ordering::Relaxed);
        }
    }
}
