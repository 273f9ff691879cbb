//! A stored response, how it is made from a handler's response, how it is replayed, and
//! its JSON form for stores.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::conditional::{Conditional, is_entity_tag};
use super::freshness::{Lifetime, MAX_AGE_SECS};
use super::settings::{Settings, TARGETED_FIELDS};
use super::vary::Varies;

/// The `x-cache` header of every response through the layer.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Hop-by-hop headers (RFC 9110 §7.6.1), never stored.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// What a `304 Not Modified` carries of the stored response (RFC 9110 §15.4.5).
static NOT_MODIFIED_HEADERS: [HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::LAST_MODIFIED,
    header::VARY,
];

/// How a response through the layer was answered: the value of its `x-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From a fresh stored response.
    Hit,
    /// The handler ran and its response was stored (or shared with concurrent requests).
    Miss,
    /// From a stored response past its freshness: under `swr` (refreshed in the
    /// background) or `grace` (the handler failed).
    Stale,
    /// Not cached: the request or the response may not be (or caching is off for it).
    Bypass,
}

impl CacheStatus {
    /// `HIT`, `MISS`, `STALE` or `BYPASS`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Bypass => "BYPASS",
        }
    }

    pub(crate) fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// A stored response: its status, its end-to-end headers and its complete body. Cheap to
/// clone (shared). Stores keep it as JSON, the body in base64.
#[derive(Clone)]
pub struct CachedResponse(Arc<Stored>);

struct Stored {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// When it was produced, ms since the epoch (runtime clock).
    stored_at_ms: u64,
    /// The response's corrected initial age (its `Age`, or how far its `Date` lay behind), s.
    initial_age: u64,
    /// How long it was fresh from `stored_at`, ms (its freshness lifetime less its initial age).
    max_age_ms: Option<u64>,
    /// Never served stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`).
    never_stale: bool,
    /// Its own `stale-while-revalidate` and `stale-if-error` windows past its freshness, ms.
    windows: StaleWindows,
    /// Last modification, s since the epoch: `Last-Modified`, else `Date`, else `stored_at`.
    last_modified: u64,
}

/// The windows past its freshness in which a response lets a cache serve it stale (RFC
/// 5861): while it revalidates in the background, and when the handler fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StaleWindows {
    /// `stale-while-revalidate`, ms.
    pub while_revalidating_ms: u64,
    /// `stale-if-error`, ms.
    pub if_error_ms: u64,
}

impl StaleWindows {
    /// How long past its freshness the entry must be kept for them, ms.
    pub fn longest_ms(&self) -> u64 {
        self.while_revalidating_ms.max(self.if_error_ms)
    }
}

/// What the cache holds for a key: a stored response, the mark of a run whose response
/// could not be stored (never kept: its storage decision is `Storage::Skip`), or, at the
/// primary key of a URL whose responses vary, the record of their `Vary` (`vary.rs`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Held {
    Stored(CachedResponse),
    Passed,
    Varies(Varies),
}

impl Held {
    /// What it weighs in a memory tier bounded by bytes: its body and headers, as they are
    /// held (not their base64 JSON, which is never built to weigh them).
    pub(crate) fn weight(&self) -> usize {
        match self {
            Held::Stored(r) => {
                let s = &*r.0;
                let headers: usize = s.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum();
                size_of::<Stored>() + s.body.len() + headers
            }
            Held::Passed => 0,
            Held::Varies(v) => v.weight(),
        }
    }
}

impl std::fmt::Debug for CachedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedResponse")
            .field("status", &self.0.status)
            .field("headers", &self.0.headers)
            .field("body_len", &self.0.body.len())
            .field("stored_at_ms", &self.0.stored_at_ms)
            .finish()
    }
}

impl CachedResponse {
    /// Makes the stored form of a handler's response: hop-by-hop headers (and those its
    /// `Connection` names) dropped, its freshness and initial age from `lifetime`, an `ETag`
    /// (the handler's, else a weak one from the body's hash, unless `hash_body` is false),
    /// its own `Vary`, and, when its freshness is the layer's heuristic and it has no
    /// `Cache-Control`, the route's. The fields meant for the layer alone are dropped
    /// unless the route forwards them.
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        now_ms: u64,
        lifetime: Lifetime,
        settings: &Settings,
        hash_body: bool,
    ) -> CachedResponse {
        let mut kept = end_to_end(headers);
        kept.remove(header::AGE);
        kept.remove(X_CACHE);
        strip_cache_fields(&mut kept, settings);
        let has_etag = kept.get(header::ETAG).is_some_and(is_entity_tag);
        if !has_etag {
            kept.remove(header::ETAG);
            if hash_body {
                let hash = xxhash_rust::xxh3::xxh3_128(&body);
                let etag = HeaderValue::from_str(&format!("W/\"{hash:032x}\"")).expect("hex");
                kept.insert(header::ETAG, etag);
            }
        }
        if !lifetime.explicit
            && !kept.contains_key(header::CACHE_CONTROL)
            && let Some(cc) = &settings.cache_control
        {
            kept.insert(header::CACHE_CONTROL, cc.clone());
        }
        let fresh_ms = lifetime.remaining_ms();
        let mut r = CachedResponse::assemble(status, kept, body, now_ms, lifetime.initial_age, Some(fresh_ms));
        let s = Arc::get_mut(&mut r.0).expect("just made");
        s.never_stale = lifetime.never_stale;
        s.windows = StaleWindows { while_revalidating_ms: lifetime.stale_ms, if_error_ms: lifetime.if_error_ms };
        r
    }

    fn assemble(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        stored_at_ms: u64,
        initial_age: u64,
        max_age_ms: Option<u64>,
    ) -> CachedResponse {
        let date = |name| date_secs(&headers, name);
        let last_modified = date(header::LAST_MODIFIED).or_else(|| date(header::DATE)).unwrap_or(stored_at_ms / 1000);
        CachedResponse(Arc::new(Stored {
            status,
            headers,
            body,
            stored_at_ms,
            initial_age,
            max_age_ms,
            never_stale: false,
            windows: StaleWindows::default(),
            last_modified,
        }))
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stored headers (without `x-cache` and `Age`, which are added when replayed).
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The complete body.
    pub fn body(&self) -> &Bytes {
        &self.0.body
    }

    /// When the response was produced, in ms since the Unix epoch (runtime clock).
    pub fn stored_at_ms(&self) -> u64 {
        self.0.stored_at_ms
    }

    /// How long it was fresh from [`stored_at_ms`](Self::stored_at_ms): its freshness
    /// lifetime (explicit, or the layer's heuristic) less the age it arrived with.
    pub fn max_age_ms(&self) -> Option<u64> {
        self.0.max_age_ms
    }

    /// Whether it may never be served stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`).
    pub fn never_stale(&self) -> bool {
        self.0.never_stale
    }

    /// The windows past its freshness in which it may be served stale by its own
    /// `stale-while-revalidate` and `stale-if-error` (none when it is never served stale).
    pub(crate) fn stale_windows(&self) -> StaleWindows {
        self.0.windows
    }

    /// Its `Age` at `now_ms`, in seconds (at most 2^31, RFC 9111 §1.2.2).
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        let resident = now_ms.saturating_sub(self.0.stored_at_ms) / 1000;
        self.0.initial_age.saturating_add(resident).min(MAX_AGE_SECS)
    }

    /// The response to replay at `now_ms` for a request with preconditions `cond`: a `304`
    /// (with an empty body) when they say the client's copy is current, else the stored
    /// response; with `x-cache: {status}` and `Age`.
    pub(crate) fn replay(&self, status: CacheStatus, cond: &Conditional, now_ms: u64) -> Response<Bytes> {
        let s = &*self.0;
        let mut res = if cond.not_modified(s.status, s.headers.get(header::ETAG), s.last_modified) {
            not_modified(&s.headers, Bytes::new())
        } else {
            let mut res = Response::new(s.body.clone());
            *res.status_mut() = s.status;
            *res.headers_mut() = s.headers.clone();
            res
        };
        let headers = res.headers_mut();
        headers.insert(X_CACHE, status.header());
        headers.insert(header::AGE, HeaderValue::from(self.age_secs(now_ms)));
        res
    }
}

/// A field's HTTP date, s since the epoch.
fn date_secs(headers: &HeaderMap, name: HeaderName) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// A `304 Not Modified` for a response with `headers` (RFC 9110 §15.4.5), with `empty` as its body.
fn not_modified<B>(headers: &HeaderMap, empty: B) -> Response<B> {
    let mut res = Response::new(empty);
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    let out = res.headers_mut();
    for name in &NOT_MODIFIED_HEADERS {
        for v in headers.get_all(name) {
            out.append(name.clone(), v.clone());
        }
    }
    res
}

/// A response the cache did not store, answering a request whose preconditions `cond` the
/// run did not send to the handler: a `304` when they say the client's copy is current
/// (RFC 9110 §13.2.2, as the handler would have answered them), else `res` as it is. One
/// with `Set-Cookie` is left as it is, as is a body being copied for the cache (`copied`).
pub(crate) fn answer_unstored<B>(res: Response<B>, cond: &Conditional, copied: bool, empty: B) -> Response<B> {
    let headers = res.headers();
    // Without a `Last-Modified`, `If-Modified-Since` cannot say the copy is current.
    let last_modified = date_secs(headers, header::LAST_MODIFIED).unwrap_or(u64::MAX);
    if copied
        || headers.contains_key(header::SET_COOKIE)
        || !cond.not_modified(res.status(), headers.get(header::ETAG), last_modified)
    {
        return res;
    }
    not_modified(headers, empty)
}

/// Removes the fields meant for the layer alone (the tag header, the targeted
/// cache-control fields), unless the route forwards them.
pub(crate) fn strip_cache_fields(headers: &mut HeaderMap, settings: &Settings) {
    if settings.forward_cache_fields {
        return;
    }
    if let Some(name) = &settings.tag_header {
        headers.remove(name);
    }
    for name in TARGETED_FIELDS {
        headers.remove(name);
    }
}

/// The tags a response (or a purge request) names in its tag header `name` (members separated by spaces or commas).
pub(crate) fn tags_of(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for value in headers.get_all(name) {
        let Ok(text) = value.to_str() else { continue };
        for tag in text.split(|c: char| c == ',' || c.is_ascii_whitespace()).filter(|t| !t.is_empty()) {
            if !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_owned());
            }
        }
    }
    tags
}

/// The end-to-end headers of `headers`: without the hop-by-hop ones and those that
/// `Connection` names.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if HOP_BY_HOP.contains(name) || named.iter().any(|n| n == name.as_str()) {
            continue;
        }
        kept.append(name.clone(), value.clone());
    }
    kept
}

/// The JSON form: `{"status", "headers": [[name, value]], "body": base64, "stored_at",
/// "initial_age", "max_age"}`; a header value that is not UTF-8 is `{"b64": …}`.
#[derive(Serialize, Deserialize)]
struct Wire {
    status: u16,
    headers: Vec<(String, WireValue)>,
    body: String,
    stored_at: u64,
    #[serde(default)]
    initial_age: u64,
    #[serde(default)]
    max_age: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    never_stale: bool,
    /// `stale-while-revalidate`, ms.
    #[serde(default, skip_serializing_if = "is_zero")]
    swr: u64,
    /// `stale-if-error`, ms.
    #[serde(default, skip_serializing_if = "is_zero")]
    sie: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum WireValue {
    Text(String),
    Bytes { b64: String },
}

impl Serialize for CachedResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = &*self.0;
        Wire {
            status: s.status.as_u16(),
            headers: s
                .headers
                .iter()
                .map(|(n, v)| {
                    let value = match std::str::from_utf8(v.as_bytes()) {
                        Ok(text) => WireValue::Text(text.to_owned()),
                        Err(_) => WireValue::Bytes { b64: BASE64.encode(v.as_bytes()) },
                    };
                    (n.as_str().to_owned(), value)
                })
                .collect(),
            body: BASE64.encode(&s.body),
            stored_at: s.stored_at_ms,
            initial_age: s.initial_age,
            max_age: s.max_age_ms,
            never_stale: s.never_stale,
            swr: s.windows.while_revalidating_ms,
            sie: s.windows.if_error_ms,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CachedResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let w = Wire::deserialize(deserializer)?;
        let status = StatusCode::from_u16(w.status).map_err(D::Error::custom)?;
        let mut headers = HeaderMap::with_capacity(w.headers.len());
        for (name, value) in w.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(D::Error::custom)?;
            let value = match value {
                WireValue::Text(t) => HeaderValue::from_str(&t).map_err(D::Error::custom)?,
                WireValue::Bytes { b64 } => {
                    let raw = BASE64.decode(b64).map_err(D::Error::custom)?;
                    HeaderValue::from_bytes(&raw).map_err(D::Error::custom)?
                }
            };
            headers.append(name, value);
        }
        let body = Bytes::from(BASE64.decode(w.body).map_err(D::Error::custom)?);
        let mut r = CachedResponse::assemble(status, headers, body, w.stored_at, w.initial_age, w.max_age);
        let s = Arc::get_mut(&mut r.0).expect("just made");
        s.never_stale = w.never_stale;
        s.windows = StaleWindows { while_revalidating_ms: w.swr, if_error_ms: w.sie };
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::settings::{RouteRule, Settings};

    #[test]
    fn json_round_trip_keeps_binary_bodies_and_header_bytes() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        h.insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        h.insert(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let body: Bytes = (0..=255u8).collect::<Vec<u8>>().into();
        let settings = Settings::resolve(&RouteRule::new());
        let lifetime = Lifetime {
            lifetime_ms: 5_000,
            explicit: true,
            initial_age: 0,
            never_stale: true,
            stale_ms: 7_000,
            if_error_ms: 9_000,
        };
        let r = CachedResponse::new(StatusCode::OK, &h, body.clone(), 1_000, lifetime, &settings, true);
        assert!(r.headers().get("x-hop").is_none() && r.headers().get(header::TRANSFER_ENCODING).is_none());
        let json = serde_json::to_string(&r).unwrap();
        let back: CachedResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(back.body(), &body);
        assert_eq!(back.headers(), r.headers());
        assert_eq!(back.status(), StatusCode::OK);
        assert_eq!(back.max_age_ms(), Some(5_000));
        assert_eq!(back.stored_at_ms(), 1_000);
        assert!(back.never_stale());
        assert_eq!(back.stale_windows(), StaleWindows { while_revalidating_ms: 7_000, if_error_ms: 9_000 });
        assert!(json.len() < 2 * body.len() + 400, "compact: {json}");
    }
}
