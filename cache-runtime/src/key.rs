//! Storage keys: `{group}:{name}:{key}.json` (SPEC §3).
//!
//! A [`Key`] is built on the stack for the common case, so that computing the key of a
//! warm call allocates nothing. Its [`id`](Key::id) is the xxh3-128 of the full key string;
//! the memory tier and the single-flight table are indexed by it.

use std::fmt::{self, Write as _};

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::canonical;

/// Keys up to this many bytes live on the stack (a default key with a 60-byte prefix fits).
const INLINE: usize = 104;
const PART_MAX: usize = 64;

/// A full storage key (`group:name:key.json`) and its 128-bit id.
#[derive(Clone)]
pub struct Key {
    repr: Repr,
    id: u128,
}

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<str>),
}

impl Key {
    /// Builds `{prefix}{segment}.json`, where `prefix` is `group:name:`.
    pub fn from_parts(prefix: &str, segment: &str) -> Key {
        let total = prefix.len() + segment.len() + 5;
        if total <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
            buf[prefix.len()..prefix.len() + segment.len()].copy_from_slice(segment.as_bytes());
            buf[prefix.len() + segment.len()..total].copy_from_slice(b".json");
            let id = xxh3_128(&buf[..total]);
            Key { repr: Repr::Inline { len: total as u8, buf }, id }
        } else {
            let s = format!("{prefix}{segment}.json");
            Key::from_full(s)
        }
    }

    /// A key from a complete storage key string (already escaped).
    pub fn from_full(full: impl Into<Box<str>>) -> Key {
        let full = full.into();
        let id = xxh3_128(full.as_bytes());
        Key { repr: Repr::Heap(full), id }
    }

    /// The key of a function without arguments: `{prefix}default.json`.
    pub fn default_for(prefix: &str) -> Key {
        Key::from_parts(prefix, "default")
    }

    /// The default key of arguments: `{prefix}{hex xxh3-128 of their canonical encoding}.json`.
    pub fn from_args<A: Serialize + ?Sized>(prefix: &str, args: &A) -> Key {
        let hash = canonical::hash(args);
        let mut hex = [0u8; 32];
        hex128(hash, &mut hex);
        // SAFETY: `hex128` writes only ASCII hex digits.
        let seg = unsafe { std::str::from_utf8_unchecked(&hex) };
        Key::from_parts(prefix, seg)
    }

    /// The key of a `get_key` result: `{prefix}{escape_key(raw)}.json`.
    pub fn from_display<D: fmt::Display + ?Sized>(prefix: &str, raw: &D) -> Key {
        let mut s = String::new();
        let _ = write!(s, "{raw}");
        Key::from_parts(prefix, &escape_key(&s))
    }

    /// The 128-bit id of this key (xxh3-128 of the full key string).
    #[inline]
    pub fn id(&self) -> u128 {
        self.id
    }

    /// The full storage key.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.repr {
            // SAFETY: the inline buffer is only ever filled by copying whole `&str`s
            // (see `from_parts`), so its first `len` bytes are valid UTF-8.
            Repr::Inline { len, buf } => unsafe { std::str::from_utf8_unchecked(&buf[..*len as usize]) },
            Repr::Heap(s) => s,
        }
    }

    /// The full storage key as bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.as_str())
    }
}

/// Lowercase hex of a 128-bit value, big-endian digit order (like `{:032x}`).
#[inline]
pub(crate) fn hex128(v: u128, out: &mut [u8; 32]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in v.to_be_bytes().into_iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 0xf) as usize];
    }
}

/// Escapes a `get_key` result into a storage-safe key segment (SPEC §3).
///
/// The raw key is split on `/`. A part of 1 to 64 characters, all of `[A-Za-z0-9_-]`,
/// stays as it is; any other part becomes its allowed characters (at most 64) followed by
/// `.` and the hex xxh3-128 of the raw part. Parts are joined with `:`. Two different raw
/// keys never share an escaped key, and the result never contains `..`, `/`, `\` or NUL.
///
/// ```
/// use cache_runtime::escape_key;
/// assert_eq!(escape_key("rust-lang/rust"), "rust-lang:rust");
/// assert!(escape_key("../../etc/passwd").starts_with("."));
/// assert!(!escape_key("../../etc/passwd").contains(".."));
/// ```
pub fn escape_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    for (i, part) in raw.split('/').enumerate() {
        if i > 0 {
            out.push(':');
        }
        let plain = !part.is_empty()
            && part.len() <= PART_MAX
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if plain {
            out.push_str(part);
        } else {
            out.extend(part.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(PART_MAX));
            out.push('.');
            let mut hex = [0u8; 32];
            hex128(xxh3_128(part.as_bytes()), &mut hex);
            out.push_str(std::str::from_utf8(&hex).expect("hex is ASCII"));
        }
    }
    out
}

/// `group` with `/` stored as `:` (SPEC §3).
pub fn group_segment(group: &str) -> String {
    group.replace('/', ":")
}

/// Whether `s` is a valid `name` (and, with `/` allowed, `group`): `[A-Za-z0-9_-]+`.
pub fn is_valid_segment(s: &str, allow_slash: bool) -> bool {
    !s.is_empty()
        && s.split('/').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        && (allow_slash || !s.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_parts_are_kept_and_joined_with_colons() {
        assert_eq!(escape_key("rust-lang/rust"), "rust-lang:rust");
        assert_eq!(escape_key("abc_DEF-09"), "abc_DEF-09");
    }

    #[test]
    fn other_parts_get_a_hash_suffix_and_never_collide() {
        let a = escape_key("a b");
        let b = escape_key("ab");
        assert_ne!(a, b);
        assert!(a.starts_with("ab."));
        assert_eq!(a.len(), 3 + 32);
        assert_ne!(escape_key(""), escape_key("/"));
        assert_ne!(escape_key("a/b"), escape_key("a:b"));
        let long = "x".repeat(65);
        let e = escape_key(&long);
        assert!(e.starts_with(&"x".repeat(64)));
        assert_ne!(e, escape_key(&"x".repeat(66)));
    }

    #[test]
    fn hostile_parts_lose_every_dangerous_character() {
        for raw in ["../../etc/passwd", "/abs/path", "a\0b", "..", "\\\\server\\share"] {
            let e = escape_key(raw);
            assert!(!e.contains(".."), "{e}");
            assert!(!e.contains('/') && !e.contains('\\') && !e.contains('\0'), "{e}");
        }
    }

    #[test]
    fn key_ids_agree_between_inline_and_heap_forms() {
        let a = Key::from_parts("functions:f:", "abc");
        let b = Key::from_full("functions:f:abc.json");
        assert_eq!(a.as_str(), b.as_str());
        assert_eq!(a.id(), b.id());
        let long = "y".repeat(300);
        let c = Key::from_parts("functions:f:", &long);
        assert_eq!(c.as_str(), format!("functions:f:{long}.json"));
        assert_eq!(c.id(), Key::from_full(c.as_str()).id());
    }

    #[test]
    fn hex_matches_format() {
        let v = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let mut out = [0u8; 32];
        hex128(v, &mut out);
        assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{v:032x}"));
    }
}
