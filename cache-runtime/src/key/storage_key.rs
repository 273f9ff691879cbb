//! Storage keys: `{group}:{name}:{key}.json`, the group and the name one `:`-free part
//! each (the rule is in the [module above](super)), the key escaped by [`escape_key`].
//!
//! A [`Key`] is built on the stack for the common case. Its [`id`](Key::id) is a 128-bit
//! function of the full key string ([`id_of`]); the memory tier and the single-flight
//! table are indexed by it. A default key's id can be had without building its string at
//! all ([`CallKey`]), which is what keeps a warm call to a hash, a shard read and a
//! freshness check.

use std::fmt::{self, Write as _};
use std::hash::BuildHasher as _;
use std::sync::OnceLock;

use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_seed};

use crate::key::canonical;

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
        let mut key = Key::with_id(prefix, segment, 0);
        key.id = id_of(key.as_str());
        key
    }

    /// `{prefix}{segment}.json` whose id is already known.
    fn with_id(prefix: &str, segment: &str, id: u128) -> Key {
        let (p, s) = (prefix.len(), segment.len());
        let len = p + s + 5;
        let repr = if len <= INLINE {
            // Straight into the inline buffer: the prefix, the segment, `.json`.
            let mut buf = [0u8; INLINE];
            buf[..p].copy_from_slice(prefix.as_bytes());
            buf[p..p + s].copy_from_slice(segment.as_bytes());
            buf[p + s..len].copy_from_slice(b".json");
            Repr::Inline { len: len as u8, buf }
        } else {
            Repr::Heap([prefix, segment, ".json"].concat().into_boxed_str())
        };
        Key { repr, id }
    }

    /// A key from a complete storage key string (already escaped).
    pub fn from_full(full: impl Into<Box<str>>) -> Key {
        let full = full.into();
        let id = id_of(&full);
        Key { repr: Repr::Heap(full), id }
    }

    /// The key of a function without arguments: `{prefix}default.json`.
    pub fn default_for(prefix: &str) -> Key {
        Key::from_parts(prefix, "default")
    }

    /// The default key of arguments: `{prefix}{hex xxh3-128 of their canonical encoding}.json`.
    pub fn from_args<A: Serialize + ?Sized>(prefix: &str, args: &A) -> Key {
        let digest = canonical::hash(args);
        Key::from_digest(prefix, digest, digest_id(prefix_id(prefix), digest))
    }

    /// `{prefix}{hex digest}.json`, whose id is `id`.
    fn from_digest(prefix: &str, digest: u128, id: u128) -> Key {
        let mut hex = [0u8; 32];
        hex128(digest, &mut hex);
        // SAFETY: `hex128` writes only ASCII hex digits.
        let seg = unsafe { std::str::from_utf8_unchecked(&hex) };
        let key = Key::with_id(prefix, seg, id);
        debug_assert_eq!(key.id, id_of(key.as_str()), "the id given is not the id of {key:?}");
        key
    }

    /// The key of a `get_key` result: `{prefix}{escape_key(raw)}.json`. Built on the stack
    /// when the raw key and the full key are short, so a warm call allocates nothing.
    pub fn from_display<D: fmt::Display + ?Sized>(prefix: &str, raw: &D) -> Key {
        let mut text = StackString::<128>::new();
        let _ = write!(text, "{raw}");
        Key::from_text(prefix, text.as_str())
    }

    /// [`from_display`](Self::from_display) of a raw key that is text already.
    pub fn from_text(prefix: &str, raw: &str) -> Key {
        let mut full = StackString::<INLINE>::new();
        let _ = full.write_str(prefix);
        escape_with(raw, |piece| {
            let _ = full.write_str(piece);
        });
        let _ = full.write_str(".json");
        let mut key = Key { repr: full.into_repr(), id: 0 };
        key.id = id_of(key.as_str());
        key
    }

    /// The 128-bit id of this key ([`id_of`] its full string).
    #[inline]
    pub fn id(&self) -> u128 {
        self.id
    }

    /// The full storage key.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.repr {
            // SAFETY: the inline buffer is only ever filled by copying whole `&str`s
            // (`with_id`, `StackString::write_str`), so its first `len` bytes are UTF-8.
            Repr::Inline { len, buf } => unsafe { std::str::from_utf8_unchecked(&buf[..*len as usize]) },
            Repr::Heap(s) => s,
        }
    }

    /// What a slot's key must be to be this key.
    #[inline]
    pub(crate) fn is(&self) -> KeyIs<'_> {
        KeyIs::Str(self.as_str())
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

/// The id of a key of a function whose keys start with `prefix` (see [`id_of`]).
#[inline]
pub fn prefix_id(prefix: &str) -> u128 {
    cache_keyspace::prefix_id(prefix)
}

/// The 128-bit id of a full storage key string.
///
/// A key that ends in `:{32 lowercase hex digits}.json` (every default key of a function
/// with arguments) has the id [`digest_id`]`(prefix_id(everything up to that ':'), digits)`,
/// so a call can find its entry from the argument digest and its function's [`prefix_id`]
/// without formatting the key. Any other key has the seeded xxh3-128 of the whole string.
/// Either way the id is a function of the string alone within a process: the key
/// `NAME_key` prints, a key read back from a store, a bus message or the CLI all find the
/// same entry. Ids never leave the process, and are seeded at random per process (as
/// std's `HashMap` is), so no one can choose a key whose id meets another key's; and a
/// read still checks that the slot it found holds its very key.
pub fn id_of(full: &str) -> u128 {
    match split_digest(full) {
        Some((prefix, digest)) => digest_id(prefix_id(prefix), digest),
        None => xxh3_128_with_seed(full.as_bytes(), seed()),
    }
}

/// The id of the default key with argument digest `digest` of a function whose
/// [`prefix_id`] is `prefix_id`: `digest ^ mask(prefix_id)`, where `mask` is a keyed mix
/// with a per-process secret. Two keys of different functions meet only if their digests
/// differ by exactly the xor of their masks, which nobody outside the process can know.
#[inline]
pub fn digest_id(prefix_id: u128, digest: u128) -> u128 {
    digest ^ mask(prefix_id)
}

/// Hashes a key id for a map: ids are seeded hashes already, so their low bits serve as
/// they are (no SipHash over them).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only ids should come here; anything else is still hashed, if weakly.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0 ^= i as u64 ^ (i >> 64) as u64;
    }
}

/// A map by key id.
pub(crate) type IdMap<V> = std::collections::HashMap<u128, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The argument digest of the default key whose id is `id`, for a function whose
/// [`prefix_id`] is `prefix_id` (the inverse of [`digest_id`]): the memory tier keeps only a
/// default key's function and id, and gets its digest back from them.
#[inline]
pub(crate) fn digest_from_id(prefix_id: u128, id: u128) -> u128 {
    id ^ mask(prefix_id)
}

/// A keyed, non-linear mix of a prefix id (two folded 64×64→128-bit multiplies).
#[inline]
fn mask(prefix_id: u128) -> u128 {
    #[inline(always)]
    fn fold(a: u64, b: u64) -> u64 {
        let m = u128::from(a) * u128::from(b);
        (m as u64) ^ ((m >> 64) as u64)
    }
    let (k0, k1) = secret();
    let (lo, hi) = (prefix_id as u64 ^ k0, (prefix_id >> 64) as u64 ^ k1);
    let a = fold(lo, hi ^ 0x9e37_79b9_7f4a_7c15);
    let b = fold(hi, lo ^ 0xd6e8_feb8_6659_fd93);
    u128::from(fold(a ^ k1, b)) << 64 | u128::from(fold(b ^ k0, a))
}

/// This process's secret for key ids.
#[inline]
fn secret() -> (u64, u64) {
    static SECRET: OnceLock<(u64, u64)> = OnceLock::new();
    *SECRET.get_or_init(|| {
        let random = std::collections::hash_map::RandomState::new();
        (random.hash_one(0x6c61_7264_6572_u64), random.hash_one(0x6b65_7973_u64))
    })
}

/// The seed of the ids of keys that are not default keys.
#[inline]
fn seed() -> u64 {
    secret().0
}

/// `(prefix, digest)` of a key of the form `{prefix}{32 lowercase hex digits}.json` whose
/// prefix ends in `:`.
pub(crate) fn split_digest(full: &str) -> Option<(&str, u128)> {
    let b = full.as_bytes();
    if b.len() < 38 || !b.ends_with(b".json") || b[b.len() - 38] != b':' {
        return None;
    }
    let mut digest = 0u128;
    for &c in &b[b.len() - 37..b.len() - 5] {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        digest = digest << 4 | d as u128;
    }
    Some((&full[..b.len() - 37], digest))
}

/// What a slot's key must be for a read to use it.
#[derive(Clone, Copy)]
pub(crate) enum KeyIs<'a> {
    /// This string.
    Str(&'a str),
    /// `{prefix}{hex digest}.json` (the memory tier, which finds it by id, checks the
    /// digest in debug builds only: a slot under the same id and prefix has the same one).
    Digest { prefix: &'a str, digest: u128 },
}

/// The key of one call, as the call computes it: for a default key only the argument
/// digest (the string is formatted only when a miss needs it), else the built [`Key`].
pub enum CallKey {
    /// A default key: `{prefix}{hex digest}.json`.
    Digest {
        /// `id_of` the key.
        id: u128,
        /// The xxh3-128 of the arguments' canonical encoding.
        digest: u128,
    },
    /// Any other key.
    Built(Key),
}

impl CallKey {
    /// The id of the key.
    #[inline]
    pub fn id(&self) -> u128 {
        match self {
            CallKey::Digest { id, .. } => *id,
            CallKey::Built(k) => k.id(),
        }
    }

    /// What a slot's key must be to be this key; `prefix` is the function's (`group:name:`).
    #[inline]
    pub(crate) fn is<'a>(&'a self, prefix: &'a str) -> KeyIs<'a> {
        match self {
            CallKey::Digest { digest, .. } => KeyIs::Digest { prefix, digest: *digest },
            CallKey::Built(k) => KeyIs::Str(k.as_str()),
        }
    }

    /// The full key; `prefix` is the function's key prefix (`group:name:`).
    pub fn into_key(self, prefix: &str) -> Key {
        match self {
            CallKey::Digest { id, digest } => Key::from_digest(prefix, digest, id),
            CallKey::Built(k) => k,
        }
    }
}

/// Lowercase hex of a 128-bit value, big-endian digit order (like `{:032x}`).
#[inline]
pub(crate) fn hex128(v: u128, out: &mut [u8; 32]) {
    // The two digits of every byte value, looked up a byte at a time.
    static PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0u8; 2]; 256];
        let mut b = 0;
        while b < 256 {
            pairs[b] = [DIGITS[b >> 4], DIGITS[b & 0xf]];
            b += 1;
        }
        pairs
    };
    for (pair, b) in out.as_chunks_mut::<2>().0.iter_mut().zip(v.to_be_bytes()) {
        *pair = PAIRS[b as usize];
    }
}

/// Escapes a `get_key` result into a storage-safe key segment.
///
/// The raw key is split on `/`. A part of 1 to 64 characters, all of `[A-Za-z0-9_-]`,
/// stays as it is; any other part becomes its allowed characters (at most 64) followed by
/// `.` and the hex xxh3-128 of the raw part. Parts are joined with `:`. Two different raw
/// keys never share an escaped key, and the result never contains `..`, `/`, `\` or NUL.
/// The key is the last part of a storage key, after the group and the name (which never
/// contain `:`), so its own `:`s can't be taken for theirs: `a/b` in the function `b` of the
/// group `a` is `a:b:a:b.json`, and the group `a/b` is stored as `a.b`.
///
/// ```
/// use cache_runtime::escape_key;
/// assert_eq!(escape_key("rust-lang/rust"), "rust-lang:rust");
/// assert!(escape_key("../../etc/passwd").starts_with("."));
/// assert!(!escape_key("../../etc/passwd").contains(".."));
/// ```
pub fn escape_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    escape_with(raw, |piece| out.push_str(piece));
    out
}

/// [`escape_key`], handed out piece by piece (each piece is ASCII).
#[inline]
fn escape_with(raw: &str, mut out: impl FnMut(&str)) {
    let mut first = true;
    for part in raw.as_bytes().split(|&b| b == b'/') {
        if !first {
            out(":");
        }
        first = false;
        let plain = !part.is_empty() && part.len() <= PART_MAX && part.iter().all(|&b| ALLOWED[b as usize]);
        if plain {
            // SAFETY: every byte is an ASCII letter, digit, `_` or `-`.
            out(unsafe { std::str::from_utf8_unchecked(part) });
            continue;
        }
        // The allowed characters (at most 64), `.`, the 32 hex digits of the part's hash.
        let mut kept = [0u8; PART_MAX + 33];
        let mut n = 0;
        for &b in part {
            if ALLOWED[b as usize] {
                kept[n] = b;
                n += 1;
                if n == PART_MAX {
                    break;
                }
            }
        }
        kept[n] = b'.';
        let hex: &mut [u8; 32] = (&mut kept[n + 1..n + 33]).try_into().expect("32 bytes");
        hex128(xxh3_128(part), hex);
        // SAFETY: ASCII letters, digits, `_`, `-`, `.` and hex digits only.
        out(unsafe { std::str::from_utf8_unchecked(&kept[..n + 33]) });
    }
}

/// The bytes that may stay as they are in a key part: `[A-Za-z0-9_-]`.
static ALLOWED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        b += 1;
    }
    table
};

/// A string written on the stack until it outgrows `N` bytes, then on the heap.
struct StackString<const N: usize> {
    len: usize,
    buf: [u8; N],
    heap: Option<String>,
}

impl<const N: usize> StackString<N> {
    fn new() -> Self {
        StackString { len: 0, buf: [0; N], heap: None }
    }

    fn as_str(&self) -> &str {
        match &self.heap {
            // SAFETY: `buf` is only filled by copying whole `&str`s (`write_str`).
            None => unsafe { std::str::from_utf8_unchecked(&self.buf[..self.len]) },
            Some(heap) => heap,
        }
    }
}

impl StackString<INLINE> {
    /// The string as a key's representation: inline if it stayed on the stack.
    #[inline]
    fn into_repr(self) -> Repr {
        match self.heap {
            None => Repr::Inline { len: self.len as u8, buf: self.buf },
            Some(heap) => Repr::Heap(heap.into_boxed_str()),
        }
    }
}

impl<const N: usize> fmt::Write for StackString<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match &mut self.heap {
            None if self.len + s.len() <= N && self.len + s.len() <= u8::MAX as usize => {
                self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
                self.len += s.len();
            }
            None => {
                let mut heap = String::with_capacity(self.len + s.len() + 32);
                // SAFETY: as in `as_str`.
                heap.push_str(unsafe { std::str::from_utf8_unchecked(&self.buf[..self.len]) });
                heap.push_str(s);
                self.heap = Some(heap);
            }
            Some(heap) => heap.push_str(s),
        }
        Ok(())
    }
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
    fn a_digest_key_has_the_id_of_its_string() {
        let prefix = "github:stars:";
        let digest = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let id = digest_id(prefix_id(prefix), digest);
        let key = Key::from_digest(prefix, digest, id);
        assert_eq!(key.as_str(), format!("{prefix}{digest:032x}.json"));
        assert_eq!(key.id(), Key::from_full(key.as_str()).id());
        let call = CallKey::Digest { id, digest };
        assert_eq!(call.id(), key.id());
        assert_eq!(call.into_key(prefix).as_str(), key.as_str());
        // A `get_key` that happens to give 32 hex digits lands on the same entry as the digest.
        let same = Key::from_parts(prefix, &format!("{digest:032x}"));
        assert_eq!(same.id(), key.id());
        // Uppercase digits, a `.`-separated escape suffix or a missing `:` are other keys.
        assert_ne!(Key::from_full(format!("{prefix}{digest:032X}.json")).id(), key.id());
        assert_ne!(Key::from_full(format!("github:stars.{digest:032x}.json")).id(), key.id());
        assert_ne!(Key::from_parts(prefix, "other").id(), key.id());
    }

    #[test]
    fn a_digest_key_is_its_prefix_digits_and_json_inline_or_not_and_so_is_a_parts_key() {
        let digest = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        for prefix in ["g:f:", &format!("{}:f:", "g".repeat(INLINE - 40)), &format!("{}:f:", "long".repeat(40))] {
            let key = Key::from_digest(prefix, digest, digest_id(prefix_id(prefix), digest));
            assert_eq!(key.as_str(), format!("{prefix}{digest:032x}.json"));
            assert_eq!(key.id(), id_of(key.as_str()));
            let key = Key::from_parts(prefix, "some-part");
            assert_eq!(key.as_str(), format!("{prefix}some-part.json"));
            assert_eq!(key.id(), id_of(key.as_str()));
        }
    }

    #[test]
    fn a_chosen_digest_cannot_take_another_functions_id() {
        // With ids made by xor (`prefix_id ^ digest`), a `get_key` that passes 32 hex digits
        // through could pick the id of any other function's key; a seeded hash of both can't.
        let (a, b) = ("a:f:", "b:g:");
        let victim = 0x1234u128;
        let chosen = prefix_id(a) ^ prefix_id(b) ^ victim;
        assert_ne!(digest_id(prefix_id(a), chosen), digest_id(prefix_id(b), victim));
        let victim_key = Key::from_full(format!("{b}{victim:032x}.json"));
        let slot_key = Key::from_full(format!("{a}{chosen:032x}.json"));
        assert_ne!(victim_key.id(), slot_key.id(), "the memory tier finds slots by id");
    }

    #[test]
    fn get_key_results_build_the_same_key_on_the_stack_and_on_the_heap() {
        for raw in ["rust-lang/rust", "a b/../c", &"z".repeat(100), &"w/".repeat(90), "é/ü"] {
            let built = Key::from_display("functions:f:", raw);
            assert_eq!(built.as_str(), format!("functions:f:{}.json", escape_key(raw)));
            assert_eq!(built.id(), Key::from_full(built.as_str()).id());
        }
    }

    #[test]
    fn hex_matches_format() {
        let v = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let mut out = [0u8; 32];
        hex128(v, &mut out);
        assert_eq!(std::str::from_utf8(&out).unwrap(), format!("{v:032x}"));
    }
}
