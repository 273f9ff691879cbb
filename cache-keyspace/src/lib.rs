//! The key rules that larder's `#[cached]` attribute and its runtime share.
//!
//! # The layout
//!
//! A storage key is `:`-separated: `{group}:{name}:{key}.json`. **A group or a name is one
//! segment, and a segment never contains `:`**, so the first `:` ends the group and the
//! second ends the name, whatever the key holds (the key, last, may have `:`s of its own:
//! `escape_key` joins a `get_key` result's `/`-separated parts with them). From that:
//!
//! - a function's prefix `{group}:{name}:` starts only that function's keys, so clearing
//!   one function never deletes another's entries;
//! - two different (group, name, key) triples never share a storage key;
//! - a group's keys are exactly those under `{group}:`, and its sub-groups' those under
//!   `{group}.`: [`group_prefixes`] gives both, and nothing else starts with either.
//!
//! [`segment`] makes the segment of a group or name:
//!
//! - a valid one ([`is_segment`]: `[A-Za-z0-9_-]+`, and for a group parts of those joined by
//!   `/`) is kept, with each `/` stored as `.` (`github/users` → `github.users`);
//! - any other text (the runtime takes names and namespaces as plain strings) becomes its
//!   characters of `[A-Za-z0-9_-]` (at most 64), `%` and the hex xxh3-128 of the text, so
//!   it is never a valid segment's form (those have no `%`) nor another text's.
//!
//! The attribute computes a function's prefix and its id at compile time; the runtime
//! computes them for the programmatic API, the HTTP layer, `clear_group` and the CLI. They
//! must agree to the byte, so both call this crate, and neither has a copy.
//!
//! ```
//! use cache_keyspace::{group_prefixes, is_segment, prefix, segment, segment_fix};
//! assert!(is_segment("github/users", true));
//! assert!(!is_segment("user profile", false));
//! assert_eq!(segment_fix("user profile", false, "f"), "user_profile");
//! assert_eq!(prefix("github/users", "stars"), "github.users:stars:");
//! assert_eq!(group_prefixes("github"), ["github:".to_owned(), "github.".to_owned()]);
//! assert!(segment("user profile").starts_with("userprofile%"));
//! ```

#![warn(missing_docs)]

use std::borrow::Cow;

/// The most characters of an invalid text that its segment keeps (as `escape_key` does).
const KEPT_MAX: usize = 64;

/// Whether `s` is a valid `name` (or, with `allow_slash`, a `group`): letters, digits, `_`
/// and `-`, at least one; a group may have several such parts separated by single `/`.
pub fn is_segment(s: &str, allow_slash: bool) -> bool {
    if allow_slash { s.split('/').all(is_part) } else { is_part(s) }
}

/// One part of a segment: `[A-Za-z0-9_-]+`.
fn is_part(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(is_plain)
}

/// A byte that a segment keeps as it is.
const fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A valid segment close to `s`, for a fix-it: other characters become `_`, empty parts
/// are dropped, and `fallback` stands in when nothing is left.
pub fn segment_fix(s: &str, allow_slash: bool, fallback: &str) -> String {
    let clean = |p: &str| -> String {
        p.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
    };
    let fixed = if allow_slash {
        s.split('/').filter(|p| !p.is_empty()).map(clean).collect::<Vec<_>>().join("/")
    } else {
        clean(s)
    };
    if fixed.is_empty() { fallback.to_owned() } else { fixed }
}

/// The key segment of a group, a name or a namespace (see the [crate] docs): a valid group
/// with `/` stored as `.`; any other text as its plain characters (at most 64), `%` and the
/// hex xxh3-128 of the text. Never contains `:`, `/`, `\`, NUL or `..`, and is never empty.
pub fn segment(raw: &str) -> Cow<'_, str> {
    if is_segment(raw, true) {
        return if raw.contains('/') { Cow::Owned(raw.replace('/', ".")) } else { Cow::Borrowed(raw) };
    }
    let mut out: String = raw.bytes().filter(|&b| is_plain(b)).take(KEPT_MAX).map(char::from).collect();
    out.push('%');
    out.push_str(&format!("{:032x}", xxhash_rust::xxh3::xxh3_128(raw.as_bytes())));
    Cow::Owned(out)
}

/// `group` as it is stored ([`segment`]): `/` becomes `.`.
pub fn group_segment(group: &str) -> String {
    segment(group).into_owned()
}

/// The prefix of every key of the function `name` in `group`: `{group}:{name}:`, each as
/// its [`segment`] (`github/api`, `stars` → `github.api:stars:`).
pub fn prefix(group: &str, name: &str) -> String {
    format!("{}:{}:", segment(group), segment(name))
}

/// The prefixes of every key of `group` and of its sub-groups (`group/…`): `{group}:`,
/// and `{group}.` for a valid group (only those have sub-groups). No other function's key
/// starts with either.
pub fn group_prefixes(group: &str) -> Vec<String> {
    let seg = segment(group);
    let mut out = vec![format!("{seg}:")];
    if is_segment(group, true) {
        out.push(format!("{seg}."));
    }
    out
}

/// The id of a prefix, from which the ids of a function's default keys are made.
#[inline]
pub fn prefix_id(prefix: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_checked_and_fixed() {
        assert!(is_segment("get_access-token2", false));
        assert!(!is_segment("a/b", false));
        assert!(is_segment("github/users", true));
        assert!(!is_segment("github//users", true));
        assert!(!is_segment("/github", true));
        assert!(!is_segment("", true));
        assert!(!is_segment("", false));
        assert_eq!(segment_fix("user profile", false, "f"), "user_profile");
        assert_eq!(segment_fix("a/b", false, "f"), "a_b");
        assert_eq!(segment_fix("/github.com//users/", true, "functions"), "github_com/users");
        assert_eq!(segment_fix("", false, "gh_stars"), "gh_stars");
        assert_eq!(segment_fix("///", true, "functions"), "functions");
    }

    #[test]
    fn a_prefix_is_the_group_with_dots_then_the_name() {
        assert_eq!(prefix("functions", "get_token"), "functions:get_token:");
        assert_eq!(prefix("github/api", "stars"), "github.api:stars:");
        assert_eq!(group_segment("a/b/c"), "a.b.c");
        // The collision the old layout (`/` stored as `:`) had: `a/b`'s `c` under `a`'s `b`.
        assert!(!prefix("a/b", "c").starts_with(&prefix("a", "b")));
    }

    #[test]
    fn other_text_is_hashed_behind_a_percent_sign() {
        for raw in ["", "a:b", "a b", "a/", "/a", "a//b", "a.b", "..", "%", "é", "x.json", "a%2Fb"] {
            let s = segment(raw);
            assert!(!is_segment(raw, true), "{raw:?}");
            assert_eq!(s.matches('%').count(), 1, "{s}");
            assert!(s.ends_with(&format!("%{:032x}", xxhash_rust::xxh3::xxh3_128(raw.as_bytes()))), "{s}");
            assert!(!s.contains([':', '/', '\\', '\0']) && !s.contains(".."), "{s}");
        }
        assert_eq!(segment("a b"), format!("ab%{:032x}", xxhash_rust::xxh3::xxh3_128(b"a b")));
        assert_eq!(segment(&format!("{} ", "x".repeat(100))).len(), 64 + 1 + 32);
        assert_ne!(segment("a:b"), segment("a/b"));
    }

    #[test]
    fn a_group_is_cleared_with_its_sub_groups_and_nothing_else() {
        let [own, subs] = <[String; 2]>::try_from(group_prefixes("a")).unwrap();
        assert!(prefix("a", "f").starts_with(&own));
        assert!(prefix("a/b", "f").starts_with(&subs));
        assert!(prefix("a/b/c", "f").starts_with(&subs));
        for other in ["ab", "a-b", "b/a", "ab/c"] {
            let p = prefix(other, "f");
            assert!(!p.starts_with(&own) && !p.starts_with(&subs), "{p}");
        }
        assert_eq!(group_prefixes("a b"), vec![format!("{}:", segment("a b"))]);
    }

    #[test]
    fn a_prefix_id_is_the_xxh3_128_of_the_prefix() {
        // Pinned: default keys' ids (and so which memory slot a call finds) depend on it.
        assert_eq!(prefix_id("functions:get_token:"), xxhash_rust::xxh3::xxh3_128(b"functions:get_token:"));
        assert_ne!(prefix_id("a:b:"), prefix_id("a:c:"));
    }
}
