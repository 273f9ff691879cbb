//! The key layout of cached responses: every entry of a path shares a key prefix.
//!
//! Inside the layer's namespace (`{group}:{name}:`, the layer's `group` and `name` stored as
//! a `#[cached]` function's are: one `:`-free segment each, so `clear_group` and the layer's
//! own invalidations stay inside it), a key is
//!
//! ```text
//! {path segment}:{path segment}:…:_h{host}:_v{method}[-{variant hash}].json
//! ```
//!
//! - A path segment of 1 to 64 characters of `[A-Za-z0-9_-]` that does not start with `_` is
//!   written as it is (`/blog/hello-world` → `blog:hello-world`). Any other segment (empty,
//!   longer, starting with `_`, or with other characters) is written `_e` + the segment with
//!   every byte outside `[A-Za-z0-9-]` as `_XX` (hex), cut into parts of at most 64
//!   characters, the parts after the first starting with `_c`. So the layout is reversible:
//!   a key tells its path, which is how glob invalidation finds its entries.
//! - `_h…` is the host (lowercased, encoded the same way), `_v…` the method (`get`/`head`)
//!   and, when the request has allowed query parameters, varied headers or a key-function
//!   result, the hex xxh3-128 of them.
//!
//! No encoded path segment starts with `_h` or `_v`, so `{segments}:_h` is the prefix of
//! every entry of one path (every host, method and variant), and `{segments}:` the prefix of
//! its whole subtree. Every part is a plain key part for `escape_key`, which therefore keeps
//! `escape_key(raw(key)) == key`: the keys made here go through `Cache`'s methods unchanged.

use std::fmt::Write as _;

use http::request::Parts;
use http::{HeaderName, Method};
use xxhash_rust::xxh3::Xxh3;

/// The longest part `escape_key` keeps as it is.
const PART_MAX: usize = 64;

/// The key of a request, in storage form (parts separated by `:`, see [`raw`]).
pub(crate) fn request_key(
    parts: &Parts,
    allow_query: &[String],
    varies: &[HeaderName],
    custom: Option<&str>,
) -> String {
    let mut out = String::with_capacity(parts.uri.path().len() + 48);
    push_path(&mut out, parts.uri.path());
    out.push(':');
    push_encoded(&mut out, "_h", host_of(parts));
    out.push(':');
    out.push_str(if parts.method == Method::HEAD { "_vhead" } else { "_vget" });
    if let Some(hash) = variant_hash(parts, allow_query, varies, custom) {
        out.push('-');
        let _ = write!(out, "{hash:032x}");
    }
    out
}

/// The key prefix of every entry of `path` (every host, method and variant).
pub(crate) fn path_prefix(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    push_path(&mut out, path);
    out.push_str(":_h");
    out
}

/// The key prefix of every entry whose path starts with the literal segments `segments`.
pub(crate) fn segments_prefix<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for s in segments {
        push_encoded(&mut out, "_e", s);
        out.push(':');
    }
    out
}

/// The raw form of a key made here, as `Cache`'s methods take it (`/` between parts, which
/// `escape_key` turns back into exactly this key).
pub(crate) fn raw(key: &str) -> String {
    key.replace(':', "/")
}

/// The request path of a stored key (after the namespace), or `None` if it is not one of ours.
pub(crate) fn path_of_stored(key: &str) -> Option<String> {
    let key = key.strip_suffix(".json").unwrap_or(key);
    let mut segments: Vec<String> = Vec::new();
    let mut saw_host = false;
    for part in key.split(':') {
        if part.starts_with("_h") {
            saw_host = true;
            break;
        }
        if let Some(more) = part.strip_prefix("_c") {
            let last = segments.last_mut()?;
            last.push_str(more);
            continue;
        }
        segments.push(part.to_owned());
    }
    if !saw_host || segments.is_empty() {
        return None;
    }
    let mut path = String::new();
    for s in segments {
        path.push('/');
        match s.strip_prefix("_e") {
            Some(escaped) => path.push_str(&unescape(escaped)?),
            None => path.push_str(&s),
        }
    }
    Some(path)
}

/// The host a request was sent to: the `Host` header, else the URI's authority.
fn host_of(parts: &Parts) -> &str {
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

fn push_path(out: &mut String, path: &str) {
    let path = path.strip_prefix('/').unwrap_or(path);
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push(':');
        }
        push_encoded(out, "_e", segment);
    }
}

/// Writes one segment (or the host, with `tag` `_h`, lowercased) as key parts.
fn push_encoded(out: &mut String, tag: &str, raw: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let host = tag == "_h";
    let plain = !host
        && !raw.is_empty()
        && raw.len() <= PART_MAX
        && !raw.starts_with('_')
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        out.push_str(raw);
        return;
    }
    // `{tag}` + up to 62 characters, then `_c` + up to 62 each; an escape is never cut.
    out.push_str(tag);
    let mut room = PART_MAX - 2;
    for b in raw.bytes() {
        let b = if host { b.to_ascii_lowercase() } else { b };
        let kept = b.is_ascii_alphanumeric() || b == b'-';
        let need = if kept { 1 } else { 3 };
        if need > room {
            out.push_str(":_c");
            room = PART_MAX - 2;
        }
        room -= need;
        if kept {
            out.push(b as char);
        } else {
            out.push('_');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The hash of what distinguishes requests of one path, host and method: the allowed query
/// parameters (sorted), the varied headers and the key function's result.
fn variant_hash(parts: &Parts, allow_query: &[String], varies: &[HeaderName], custom: Option<&str>) -> Option<u128> {
    let mut pairs: Vec<&str> = Vec::new();
    if let Some(query) = parts.uri.query() {
        pairs.extend(query.split('&').filter(|p| !p.is_empty() && allowed(p, allow_query)));
    }
    if pairs.is_empty() && varies.is_empty() && custom.is_none() {
        return None;
    }
    pairs.sort_unstable();
    let mut h = Xxh3::new();
    let mut field = |tag: u8, bytes: &[u8]| {
        h.update(&[tag]);
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for p in pairs {
        field(b'q', p.as_bytes());
    }
    for name in varies {
        field(b'h', name.as_str().as_bytes());
        let mut values = parts.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            field(b'-', b"");
        }
        for v in values {
            field(b'v', v.as_bytes());
        }
    }
    if let Some(k) = custom {
        field(b'k', k.as_bytes());
    }
    Some(h.digest128())
}

/// Whether the query pair `name[=value]` is one of `allow_query`.
pub(crate) fn allowed(pair: &str, allow_query: &[String]) -> bool {
    let name = pair.split_once('=').map_or(pair, |(n, _)| n);
    allow_query.iter().any(|a| a == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::storage_key::escape_key;

    fn parts(method: Method, uri: &str, host: &str) -> Parts {
        let (p, _) =
            http::Request::builder().method(method).uri(uri).header("host", host).body(()).unwrap().into_parts();
        p
    }

    #[test]
    fn plain_paths_stay_readable_and_escape_key_keeps_them() {
        let key = request_key(&parts(Method::GET, "/blog/hello-world", "Example.COM"), &[], &[], None);
        assert_eq!(key, "blog:hello-world:_hexample_2Ecom:_vget");
        assert_eq!(escape_key(&raw(&key)), key);
    }

    #[test]
    fn every_path_round_trips_and_stays_a_plain_key() {
        let long = "x".repeat(200);
        let escapes = format!("/{}", "%C3%A9.".repeat(30));
        let paths = [
            &escapes,
            "/",
            "/a/",
            "/_h",
            "/_v/x",
            "/a%20b/%C3%BC/%2F",
            "/a.b~c",
            "/a//b",
            &format!("/{long}/z"),
            "/_c",
        ];
        for path in paths {
            let key = request_key(&parts(Method::GET, path, "h"), &[], &[], None);
            assert_eq!(escape_key(&raw(&key)), key, "{key}");
            assert!(key.split(':').all(|p| p.len() <= PART_MAX), "{key}");
            assert_eq!(path_of_stored(&key).as_deref(), Some(path), "{key}");
            assert!(key.starts_with(&path_prefix(path)));
        }
    }

    #[test]
    fn a_path_prefix_never_covers_another_path() {
        let a = path_prefix("/a");
        for other in ["/a/b", "/ab", "/a/", "/_ha"] {
            let k = request_key(&parts(Method::GET, other, "h"), &[], &[], None);
            assert!(!k.starts_with(&a), "{k} under {a}");
        }
    }

    #[test]
    fn head_host_query_and_varies_make_distinct_keys() {
        let q = vec!["page".to_owned()];
        let get = request_key(&parts(Method::GET, "/x?page=1&utm=2", "h"), &q, &[], None);
        assert_eq!(get, request_key(&parts(Method::GET, "/x?utm=3&page=1", "h"), &q, &[], None));
        assert_ne!(get, request_key(&parts(Method::GET, "/x?page=2", "h"), &q, &[], None));
        assert_ne!(get, request_key(&parts(Method::HEAD, "/x?page=1", "h"), &q, &[], None));
        assert_ne!(get, request_key(&parts(Method::GET, "/x?page=1", "other"), &q, &[], None));
        let sorted_a = request_key(&parts(Method::GET, "/x?a=1&b=2", "h"), &["a".into(), "b".into()], &[], None);
        let sorted_b = request_key(&parts(Method::GET, "/x?b=2&a=1", "h"), &["a".into(), "b".into()], &[], None);
        assert_eq!(sorted_a, sorted_b);
    }
}
