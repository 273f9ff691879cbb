//! What a slot knows of its key, and what it shares with every slot of its function
//! ([`KeyText`]): a default key (`{prefix}{hex digest}.json`) keeps only its function's
//! prefix, shared by all its slots, because the digest is recoverable from the key's id; any
//! other key keeps its whole string. The integrity and the function's counters ride along,
//! so that a slot holds one pointer for all three.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::key::storage_key::{IdMap, KeyIs, digest_from_id, hex128, prefix_id, split_digest};
use crate::mount::stats::Stats;

/// A prefix or a key: a `static` function's prefix is kept by reference, so that a read
/// can tell it is its own function's by its address, without comparing bytes.
enum Text {
    Static(&'static str),
    Owned(Box<str>),
}

impl Deref for Text {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Owned(s) => s,
        }
    }
}

/// Whether a function's prefix is `prefix`: by address first (a `static` prefix is kept by
/// reference), else by its bytes.
#[inline]
fn same_prefix(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// The key, integrity and counters of one slot (shared by the slots of one function).
pub(crate) struct KeyText {
    /// The function's prefix (`Some` prefix id below), or the whole key.
    text: Text,
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
                same_prefix(&self.text, prefix)
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
            None => (*self.text).to_owned(),
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
        && all_lower_hex(&b[prefix.len()..prefix.len() + 32])
}

/// Whether every byte of `hex` is `0-9` or `a-f`, eight bytes at a time.
#[inline]
fn all_lower_hex(hex: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const fn each(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }
    // For bytes below 0x80, `x + (0x80 - lo)` has its high bit set iff `x >= lo`, and
    // never carries into the next byte.
    let at_least = |w: u64, lo: u8| w.wrapping_add(each(0x80 - lo)) & HIGH;
    let (words, rest) = hex.as_chunks::<8>();
    words.iter().all(|w| {
        let w = u64::from_ne_bytes(*w);
        let digit = at_least(w, b'0') & !at_least(w, b'9' + 1);
        let letter = at_least(w, b'a') & !at_least(w, b'f' + 1);
        w & HIGH == 0 && digit | letter == HIGH
    }) && rest.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
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
        function: Option<(&Cow<'static, str>, u128)>,
        integrity: u128,
        stats: Option<&Arc<Stats>>,
    ) -> Arc<KeyText> {
        let (prefix, pid, static_prefix) = match function.filter(|(prefix, _)| is_digest_key_of(key, prefix)) {
            // The caller's function, and a key of its default form: no parse, no hash.
            Some((Cow::Borrowed(prefix), pid)) => (*prefix, pid, Some(*prefix)),
            Some((Cow::Owned(prefix), pid)) => (prefix.as_str(), pid, None),
            None => match split_digest(key) {
                Some((prefix, _)) => (prefix, prefix_id(prefix), None),
                None => {
                    let text = Text::Owned(key.into());
                    return Arc::new(KeyText { text, prefix_id: None, integrity, stats: stats.cloned() });
                }
            },
        };
        let fits = |t: &KeyText| {
            *t.text == *prefix
                // A text kept by address serves reads by address; one that is not, is replaced.
                && (static_prefix.is_none() || matches!(t.text, Text::Static(_)))
                && match (&t.stats, stats) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        };
        if let Some(t) = self.shared.read().get(&(pid ^ integrity)).filter(|t| fits(t) && t.integrity == integrity) {
            return Arc::clone(t);
        }
        let text = static_prefix.map_or_else(|| Text::Owned(prefix.into()), Text::Static);
        let text = Arc::new(KeyText { text, prefix_id: Some(pid), integrity, stats: stats.cloned() });
        let mut shared = self.shared.write();
        if shared.len() < MAX_SHARED || shared.contains_key(&(pid ^ integrity)) {
            shared.insert(pid ^ integrity, Arc::clone(&text));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::all_lower_hex;

    #[test]
    fn all_lower_hex_takes_only_lowercase_hex_digits_at_every_position() {
        let good = *b"0123456789abcdef0123456789abcdef";
        assert!(all_lower_hex(&good));
        for at in 0..good.len() {
            for b in 0..=255u8 {
                let mut hex = good;
                hex[at] = b;
                assert_eq!(all_lower_hex(&hex), matches!(b, b'0'..=b'9' | b'a'..=b'f'), "byte {b:#x} at {at}");
            }
        }
        assert!(all_lower_hex(b"abc") && !all_lower_hex(b"abG"));
    }
}
