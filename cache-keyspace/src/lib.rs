//! The key rules that larder's `#[cached]` attribute and its runtime share.
//!
//! A function's keys start with a prefix `{group}:{name}:` (a `/` in `group` is stored as
//! `:`), and a key's 128-bit id is made from the prefix's id. The attribute computes both at
//! compile time; the runtime computes them for the programmatic API, `clear_group` and the
//! CLI. They must agree to the byte, so both call this crate, and neither has a copy.
//!
//! ```
//! use cache_keyspace::{is_segment, prefix, segment_fix};
//! assert!(is_segment("github/users", true));
//! assert!(!is_segment("user profile", false));
//! assert_eq!(segment_fix("user profile", false, "f"), "user_profile");
//! assert_eq!(prefix("github/users", "stars"), "github:users:stars:");
//! ```

#![warn(missing_docs)]

/// Whether `s` is a valid `name` (or, with `allow_slash`, a `group`): letters, digits, `_`
/// and `-`, at least one; a group may have several such parts separated by single `/`.
pub fn is_segment(s: &str, allow_slash: bool) -> bool {
    let part_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if allow_slash { s.split('/').all(part_ok) } else { part_ok(s) }
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

/// `group` as it is stored: `/` becomes `:`.
pub fn group_segment(group: &str) -> String {
    group.replace('/', ":")
}

/// The prefix of every key of the function `name` in `group`: `{group with / as :}:{name}:`.
pub fn prefix(group: &str, name: &str) -> String {
    format!("{}:{name}:", group_segment(group))
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
    fn a_prefix_is_the_group_with_colons_then_the_name() {
        assert_eq!(prefix("functions", "get_token"), "functions:get_token:");
        assert_eq!(prefix("github/api", "stars"), "github:api:stars:");
        assert_eq!(group_segment("a/b/c"), "a:b:c");
    }

    #[test]
    fn a_prefix_id_is_the_xxh3_128_of_the_prefix() {
        // Pinned: default keys' ids (and so which memory slot a call finds) depend on it.
        assert_eq!(prefix_id("functions:get_token:"), xxhash_rust::xxh3::xxh3_128(b"functions:get_token:"));
        assert_ne!(prefix_id("a:b:"), prefix_id("a:c:"));
    }
}
