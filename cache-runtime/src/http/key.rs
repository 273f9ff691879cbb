//! The key layout of cached responses: every entry of a path shares a key prefix.
//!
//! Inside the layer's namespace (`{group}:{name}:`, the layer's `group` and `name` stored as
//! a `#[cached]` function's are: one `:`-free segment each, so `clear_group` and the layer's
//! own invalidations stay inside it), a key is
//!
//! ```text
//! {path segment}:{path segment}:…:_h{host}:_v{method}[-{variant hash}][-s{secondary}].json
//! ```
//!
//! - A path segment of 1 to 64 characters of `[A-Za-z0-9_-]` that does not start with `_` is
//!   written as it is (`/blog/hello-world` → `blog:hello-world`). Any other segment (empty,
//!   longer, starting with `_`, or with other characters) is written `_e` + the segment with
//!   every byte outside `[A-Za-z0-9-]` as `_XX` (hex), cut into parts of at most 64
//!   characters, the parts after the first starting with `_c`. So the layout is reversible:
//!   a key tells its path, which is how glob invalidation finds its entries.
//! - `_h…` is the authority (lowercased, encoded the same way): the request target's when it
//!   is in absolute form (RFC 9112 §3.3), else `Host`; a request with neither, or with a
//!   `Host` that is not UTF-8, has no key. `_v…` is the method (`get`/`head`) and, when the
//!   request has allowed query parameters, varied headers, keyed reflected headers, accepted
//!   content codings or a key-function result, the hex xxh3-128 of them. `-s…` is the
//!   secondary key of a response's `Vary` ([`secondary`], `vary.rs`).
//!
//! No encoded path segment starts with `_h` or `_v`, so `{segments}:_h` is the prefix of
//! every entry of one path (every host, method and variant), and `{segments}:` the prefix of
//! its whole subtree. Every part is a plain key part for `escape_key`, which therefore keeps
//! `escape_key(raw(key)) == key`: the keys made here go through `Cache`'s methods unchanged.

use std::fmt::Write as _;

use http::request::Parts;
use http::{HeaderMap, HeaderName, Method, header};
use xxhash_rust::xxh3::Xxh3;

/// The longest part `escape_key` keeps as it is.
const PART_MAX: usize = 64;

/// Which query parameters make part of the key (and reach the handler of a cached request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryKeys {
    /// Only these names (sorted, without repeats).
    Names(Vec<String>),
    /// Every parameter.
    All,
}

impl Default for QueryKeys {
    fn default() -> Self {
        QueryKeys::Names(Vec::new())
    }
}

impl QueryKeys {
    /// Whether the query pair `name[=value]` is kept.
    pub fn allows(&self, pair: &str) -> bool {
        match self {
            QueryKeys::All => true,
            QueryKeys::Names(names) => {
                let name = param_name(pair);
                names.iter().any(|a| a == name)
            }
        }
    }
}

fn param_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(n, _)| n)
}

/// What, besides path, authority and method, tells the requests of one URL apart.
pub(crate) struct Variant<'a> {
    pub query: &'a QueryKeys,
    pub varies: &'a [HeaderName],
    /// Request headers keyed because apps reflect them (empty unless the policy keys them).
    pub reflected: &'a [HeaderName],
    pub custom: Option<&'a str>,
}

/// The key of a request, in storage form (parts separated by `:`, see [`raw`]), or `None`
/// when the request names no authority the key can trust.
pub(crate) fn request_key(parts: &Parts, variant: &Variant<'_>) -> Option<String> {
    let authority = authority(parts)?;
    let mut out = String::with_capacity(parts.uri.path().len() + 48);
    push_path(&mut out, parts.uri.path());
    out.push(':');
    push_encoded(&mut out, "_h", authority);
    out.push(':');
    out.push_str(if parts.method == Method::HEAD { "_vhead" } else { "_vget" });
    if let Some(hash) = variant_hash(parts, variant) {
        out.push('-');
        let _ = write!(out, "{hash:032x}");
    }
    Some(out)
}

/// The authority a request was sent to: the request target's when it is in absolute form
/// (RFC 9112 §3.3: then `Host` is ignored), else a non-empty UTF-8 `Host`.
pub(crate) fn authority(parts: &Parts) -> Option<&str> {
    if let Some(a) = parts.uri.authority() {
        return Some(a.as_str());
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = hosts.next()?.to_str().ok()?.trim();
    // Two `Host` fields make the request invalid (RFC 9112 §3.2): no key.
    (hosts.next().is_none() && !host.is_empty()).then_some(host)
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

/// The hash of what distinguishes requests of one path, authority and method: the allowed
/// query parameters (stably sorted by name: repeated ones keep their order), the varied
/// headers (normalised), the keyed reflected headers, the content codings the request
/// accepts and the key function's result.
fn variant_hash(parts: &Parts, v: &Variant<'_>) -> Option<u128> {
    let mut pairs: Vec<&str> = Vec::new();
    if let Some(query) = parts.uri.query() {
        pairs.extend(query.split('&').filter(|p| !p.is_empty() && v.query.allows(p)));
    }
    let codings = accepted_codings(&parts.headers);
    let reflected = v.reflected.iter().any(|n| parts.headers.contains_key(n));
    if pairs.is_empty() && v.varies.is_empty() && !reflected && codings.is_empty() && v.custom.is_none() {
        return None;
    }
    pairs.sort_by(|a, b| param_name(a).cmp(param_name(b)));
    let mut h = Xxh3::new();
    for p in pairs {
        field(&mut h, b'q', p.as_bytes());
    }
    for (tag, names) in [(b'h', v.varies), (b'r', v.reflected)] {
        for name in names {
            header_field(&mut h, tag, name, &parts.headers);
        }
    }
    if !codings.is_empty() {
        field(&mut h, b'e', &[codings.known]);
        for c in &codings.others {
            field(&mut h, b'e', c.as_bytes());
        }
    }
    if let Some(k) = v.custom {
        field(&mut h, b'k', k.as_bytes());
    }
    Some(h.digest128())
}

/// Hashes one tagged, length-prefixed field.
fn field(h: &mut Xxh3, tag: u8, bytes: &[u8]) {
    h.update(&[tag]);
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// Hashes a request header: its name, then each of its values normalised (or its absence).
fn header_field(h: &mut Xxh3, tag: u8, name: &HeaderName, headers: &HeaderMap) {
    field(h, tag, name.as_str().as_bytes());
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        field(h, b'-', b"");
    }
    for value in values {
        field(h, b'v', normalised(name, value.as_bytes()).as_bytes());
    }
}

/// The secondary key (RFC 9111 §4.1) of the entry under `primary` (storage or raw form)
/// for a request with `headers`, when the URL's responses `Vary` by the request headers
/// `nominated` (lowercase valid names): `primary` + `-s` + the hex xxh3-64 of those
/// headers' normalised values; and that hash, which tells the variant.
pub(crate) fn secondary(primary: &str, nominated: &[HeaderName], headers: &HeaderMap) -> (String, u64) {
    let mut h = Xxh3::new();
    for name in nominated {
        header_field(&mut h, b'h', name, headers);
    }
    let variant = h.digest();
    (format!("{primary}-s{variant:016x}"), variant)
}

/// Request headers whose values compare case-insensitively (their tokens do).
static CASELESS: [HeaderName; 4] =
    [header::ACCEPT, header::ACCEPT_CHARSET, header::ACCEPT_ENCODING, header::ACCEPT_LANGUAGE];

/// A header value as the key sees it: list members trimmed, spaces around `,` `;` `=`
/// dropped, and lowercase for the headers whose values are case-insensitive.
fn normalised(name: &HeaderName, value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut out = String::with_capacity(text.len());
    for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        if !out.is_empty() {
            out.push(',');
        }
        for (i, param) in member.split(';').enumerate() {
            if i > 0 {
                out.push(';');
            }
            let mut kv = param.splitn(2, '=');
            out.push_str(kv.next().unwrap_or("").trim());
            if let Some(val) = kv.next() {
                out.push('=');
                out.push_str(val.trim());
            }
        }
    }
    if CASELESS.contains(name) { out.to_ascii_lowercase() } else { out }
}

/// The codings most requests name, as bits of [`Codings::known`].
const KNOWN_CODINGS: [&str; 8] = ["gzip", "x-gzip", "br", "deflate", "zstd", "compress", "x-compress", "*"];

/// The content codings a request accepts (`q` above 0): the usual ones as bits (no
/// allocation on the common path), others lowercase and sorted.
#[derive(Default)]
struct Codings {
    known: u8,
    others: Vec<String>,
}

impl Codings {
    fn is_empty(&self) -> bool {
        self.known == 0 && self.others.is_empty()
    }
}

/// The content codings a request accepts: a response with `Content-Encoding` is never
/// replayed to a request that did not accept its coding, whether or not it says
/// `Vary: Accept-Encoding`.
fn accepted_codings(headers: &HeaderMap) -> Codings {
    let mut codings = Codings::default();
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = std::str::from_utf8(value.as_bytes()) else {
            codings.others.push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            continue;
        };
        for member in text.split(',') {
            let mut params = member.split(';');
            let coding = params.next().unwrap_or("").trim();
            let refused = params.any(|p| {
                let p = p.trim();
                let q = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="));
                q.is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            if coding.is_empty() || coding.eq_ignore_ascii_case("identity") || refused {
                continue;
            }
            match KNOWN_CODINGS.iter().position(|k| k.eq_ignore_ascii_case(coding)) {
                Some(bit) => codings.known |= 1 << bit,
                None => codings.others.push(coding.to_ascii_lowercase()),
            }
        }
    }
    codings.others.sort();
    codings.others.dedup();
    codings
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

    fn key(p: &Parts, query: &[&str]) -> String {
        let query = QueryKeys::Names(query.iter().map(|q| (*q).to_owned()).collect());
        request_key(p, &Variant { query: &query, varies: &[], reflected: &[], custom: None }).unwrap()
    }

    #[test]
    fn plain_paths_stay_readable_and_escape_key_keeps_them() {
        let key = key(&parts(Method::GET, "/blog/hello-world", "Example.COM"), &[]);
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
            let key = key(&parts(Method::GET, path, "h"), &[]);
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
            let k = key(&parts(Method::GET, other, "h"), &[]);
            assert!(!k.starts_with(&a), "{k} under {a}");
        }
    }

    #[test]
    fn head_host_and_query_make_distinct_keys() {
        let q = ["page"];
        let get = key(&parts(Method::GET, "/x?page=1&utm=2", "h"), &q);
        assert_eq!(get, key(&parts(Method::GET, "/x?utm=3&page=1", "h"), &q));
        assert_ne!(get, key(&parts(Method::GET, "/x?page=2", "h"), &q));
        assert_ne!(get, key(&parts(Method::HEAD, "/x?page=1", "h"), &q));
        assert_ne!(get, key(&parts(Method::GET, "/x?page=1", "other"), &q));
        assert_eq!(
            key(&parts(Method::GET, "/x?a=1&b=2", "h"), &["a", "b"]),
            key(&parts(Method::GET, "/x?b=2&a=1", "h"), &["a", "b"])
        );
        assert_ne!(
            key(&parts(Method::GET, "/x?page=2&page=1", "h"), &q),
            key(&parts(Method::GET, "/x?page=1&page=2", "h"), &q),
            "repeated parameters keep their order"
        );
    }

    #[test]
    fn the_authority_of_an_absolute_target_wins_over_host_and_a_bad_host_has_no_key() {
        let absolute = key(&parts(Method::GET, "http://evil.test/x", "victim.test"), &[]);
        assert_eq!(absolute, key(&parts(Method::GET, "/x", "evil.test"), &[]));
        assert_ne!(absolute, key(&parts(Method::GET, "/x", "victim.test"), &[]));
        let (mut p, _) = http::Request::get("/x").body(()).unwrap().into_parts();
        let none = Variant { query: &QueryKeys::All, varies: &[], reflected: &[], custom: None };
        assert!(request_key(&p, &none).is_none());
        p.headers.insert(header::HOST, http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert!(request_key(&p, &none).is_none());
    }

    #[test]
    fn varied_values_are_normalised_and_accepted_codings_are_keyed() {
        let lang = [header::ACCEPT_LANGUAGE];
        let with = |h: &[(&str, &str)]| {
            let mut b = http::Request::get("/x").header("host", "h");
            for (n, v) in h {
                b = b.header(*n, *v);
            }
            let (p, _) = b.body(()).unwrap().into_parts();
            let q = QueryKeys::default();
            request_key(&p, &Variant { query: &q, varies: &lang, reflected: &[], custom: None }).unwrap()
        };
        assert_eq!(with(&[("accept-language", "fr, de;q=0.5")]), with(&[("accept-language", "FR,de ; q=0.5")]));
        assert_ne!(with(&[("accept-language", "fr")]), with(&[("accept-language", "de")]));
        assert_eq!(with(&[("accept-encoding", "gzip, br")]), with(&[("accept-encoding", "br,GZIP;q=0.8")]));
        assert_ne!(with(&[("accept-encoding", "gzip")]), with(&[]));
        assert_eq!(with(&[("accept-encoding", "gzip;q=0, identity")]), with(&[]));
    }
}
