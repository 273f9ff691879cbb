//! What a slot knows of its key, and what it shares with every slot of its function
//! ([`KeyText`]): a default key (`{prefix}{hex digest}.json`) keeps only its function's
//! prefix, shared by all its slots, because the digest is recoverable from the key's id; any
//! other key keeps its whole string. The integrity and the function's counters ride along,
//! so that a slot holds one pointer for all three.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::key::storage_key::{IdMap, KeyIs, digest_from_id, hex128, prefix_id, split_digest};
use crate::mount::stats::Stats;

/// The key, integrity and counters of one slot (shared by the slots of one function).
pub(crate) struct KeyText {
    /// The function's prefix (`Some` prefix id below), or the whole key.
    text: Box<str>,
    /// For a default key: the prefix id the key's digest is recovered with.
    prefix_id: Option<u128>,
    integrity: u128,
    stats: Option<Arc<Stats>>,
}

impl KeyText {
    /// Whether a slot with this text under the id `id` holds the key `key`.
    #[inline]
    pub fn is(&self, id: u128, key: KeyIs<'_>) -> bool {
        match (key, self.prefix_id) {
            // Same prefix and same id: the same digest (the id is the digest, masked by the
            // prefix's id).
            (KeyIs::Digest { prefix, digest }, Some(pid)) => {
                debug_assert!(*self.text != *prefix || digest == digest_from_id(pid, id));
                *self.text == *prefix
            }
            (KeyIs::Digest { .. }, None) => false,
            (KeyIs::Str(s), None) => *self.text == *s,
            (KeyIs::Str(s), Some(pid)) => split_digest(s)
                .is_some_and(|(prefix, digest)| prefix == &*self.text && digest == digest_from_id(pid, id)),
        }
    }

    /// The whole key of the slot with id `id`.
    pub fn key(&self, id: u128) -> String {
        match self.prefix_id {
            None => self.text.to_string(),
            Some(pid) => {
                let mut hex = [0u8; 32];
                hex128(digest_from_id(pid, id), &mut hex);
                let mut out = String::with_capacity(self.text.len() + 37);
                out.push_str(&self.text);
                out.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
                out.push_str(".json");
                out
            }
        }
    }

    /// Whether the key of the slot with id `id` starts with `prefix`.
    pub fn starts_with(&self, id: u128, prefix: &str) -> bool {
        if prefix.len() <= self.text.len() { self.text.starts_with(prefix) } else { self.key(id).starts_with(prefix) }
    }

    /// The integrity its entry was stored with.
    #[inline]
    pub fn integrity(&self) -> u128 {
        self.integrity
    }

    /// Its function's counters.
    #[inline]
    pub fn stats(&self) -> Option<&Arc<Stats>> {
        self.stats.as_ref()
    }

    /// The bytes this text costs a slot that does not share it.
    pub fn own_bytes(&self) -> usize {
        if self.prefix_id.is_some() { 0 } else { self.text.len() + size_of::<KeyText>() }
    }
}

/// Whether `key` is `{prefix}{32 lowercase hex digits}.json`.
#[inline]
fn is_digest_key_of(key: &str, prefix: &str) -> bool {
    let b = key.as_bytes();
    b.len() == prefix.len() + 37
        && b.starts_with(prefix.as_bytes())
        && b.ends_with(b".json")
        && b[prefix.len()..prefix.len() + 32].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// At most this many shared texts per memory tier; past it, slots get their own (a store
/// written by many versions of a function, each with its integrity, cannot grow it forever).
const MAX_SHARED: usize = 4096;

/// The shared texts of one memory tier, by prefix and integrity.
#[derive(Default)]
pub(crate) struct KeyTexts {
    /// By prefix id xor integrity (both seeded or random hashes); the text is checked.
    shared: RwLock<IdMap<Arc<KeyText>>>,
}

impl KeyTexts {
    /// The text of a slot for `key`: shared when `key` is a default key and its function's
    /// text is known (or can be added), else its own.
    pub fn text_for(
        &self,
        key: &str,
        function: Option<(&str, u128)>,
        integrity: u128,
        stats: Option<&Arc<Stats>>,
    ) -> Arc<KeyText> {
        let (prefix, pid) = match function.filter(|(prefix, _)| is_digest_key_of(key, prefix)) {
            // The caller's function, and a key of its default form: no parse, no hash.
            Some(known) => known,
            None => match split_digest(key) {
                Some((prefix, _)) => (prefix, prefix_id(prefix)),
                None => {
                    return Arc::new(KeyText { text: key.into(), prefix_id: None, integrity, stats: stats.cloned() });
                }
            },
        };
        let fits = |t: &KeyText| {
            *t.text == *prefix
                && match (&t.stats, stats) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        };
        if let Some(t) = self.shared.read().get(&(pid ^ integrity)).filter(|t| fits(t) && t.integrity == integrity) {
            return Arc::clone(t);
        }
        let text = Arc::new(KeyText { text: prefix.into(), prefix_id: Some(pid), integrity, stats: stats.cloned() });
        let mut shared = self.shared.write();
        if shared.len() < MAX_SHARED {
            shared.insert(pid ^ integrity, Arc::clone(&text));
        }
        text
    }
}
