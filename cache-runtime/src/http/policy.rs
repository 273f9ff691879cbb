//! What may be cached: which requests, which responses, and for how long.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::Body;

use super::body::{self, CacheBody, NotRead, Read};
use super::reason::NotCacheable;
use super::response::CachedResponse;
use super::settings::Settings;

/// Why a `GET`/`HEAD` request passes through uncached, if it does.
pub(crate) fn request_bypass(parts: &Parts, settings: &Settings) -> Option<NotCacheable> {
    if !settings.cache {
        return Some(NotCacheable::RouteOff);
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Some(NotCacheable::Method);
    }
    if parts.headers.contains_key(header::RANGE) {
        return Some(NotCacheable::Range);
    }
    if parts.headers.contains_key(header::AUTHORIZATION) && !settings.varies_authorization {
        return Some(NotCacheable::Authorization);
    }
    if parts.headers.contains_key(header::COOKIE) && !settings.varies_cookie {
        return Some(NotCacheable::Cookie);
    }
    None
}

/// Whether a handler's response may be stored, judging by its status and headers; if so,
/// its own freshness (`s-maxage`, else `max-age`) in ms. The body is judged apart.
pub(crate) fn response_storage(
    status: StatusCode,
    headers: &HeaderMap,
    settings: &Settings,
) -> Result<Option<u64>, NotCacheable> {
    if !settings.stores_status(status) {
        return Err(NotCacheable::Status);
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotCacheable::SetCookie);
    }
    let cc = CacheControl::of(headers);
    if cc.no_store || cc.private || cc.no_cache {
        return Err(NotCacheable::CacheControl);
    }
    for value in headers.get_all(header::VARY) {
        let Ok(value) = value.to_str() else {
            return Err(NotCacheable::VaryUnreadable);
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err(NotCacheable::VaryAll);
            }
            if !settings.varies.iter().any(|v| v.as_str().eq_ignore_ascii_case(name)) {
                return Err(NotCacheable::VaryUnlisted);
            }
        }
    }
    let max_age = if cc.invalid_age { Some(0) } else { cc.s_maxage.or(cc.max_age) };
    match max_age {
        Some(0) => Err(NotCacheable::StaleAtOnce),
        Some(secs) => Ok(Some(secs.saturating_mul(1000))),
        None => Ok(None),
    }
}

/// A handler's response that may not be stored: itself, untouched (nothing of its body
/// lost), and why.
pub(crate) struct NotStored<B: Body> {
    pub response: Response<CacheBody<B>>,
    pub reason: NotCacheable,
    /// Set when reading the body failed.
    pub failed: bool,
}

/// Judges a (non-5xx) handler's response as a whole: its stored form (produced at `now_ms`;
/// `hash_body`: give it a weak `ETag` from its body if it has none), or the response to
/// pass on. Reads the body only when its headers allow storing, and no further than
/// `max_body`.
pub(crate) async fn storable<B>(
    res: Response<B>,
    settings: &Settings,
    now_ms: u64,
    hash_body: bool,
) -> Result<CachedResponse, NotStored<B>>
where
    B: Body<Data = Bytes>,
{
    let max_age_ms = match response_storage(res.status(), res.headers(), settings) {
        Ok(max_age_ms) => max_age_ms,
        Err(reason) => {
            return Err(NotStored { response: res.map(CacheBody::handler), reason, failed: false });
        }
    };
    let (head, body) = res.into_parts();
    match body::read(body, settings.max_body).await {
        Read::Complete(bytes) => {
            Ok(CachedResponse::new(head.status, &head.headers, bytes, now_ms, max_age_ms, settings, hash_body))
        }
        Read::PassOn(body, why) => Err(NotStored {
            response: Response::from_parts(head, body),
            reason: why.reason(),
            failed: why == NotRead::Failed,
        }),
    }
}

/// The directives of a response's `Cache-Control` that decide storing.
#[derive(Debug, Default, PartialEq, Eq)]
struct CacheControl {
    no_store: bool,
    private: bool,
    no_cache: bool,
    s_maxage: Option<u64>,
    max_age: Option<u64>,
    /// A malformed `s-maxage`/`max-age`: treated as stale (RFC 9111 §4.2.1).
    invalid_age: bool,
}

impl CacheControl {
    fn of(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else {
                // Unreadable: the safe reading.
                cc.no_store = true;
                continue;
            };
            for directive in value.split(',') {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let seconds = |cc: &mut CacheControl| match arg.and_then(|a| a.parse::<u64>().ok()) {
                    Some(s) => Some(s),
                    None => {
                        cc.invalid_age = true;
                        None
                    }
                };
                if name.eq_ignore_ascii_case("no-store") {
                    cc.no_store = true;
                } else if name.eq_ignore_ascii_case("private") {
                    cc.private = true;
                } else if name.eq_ignore_ascii_case("no-cache") {
                    cc.no_cache = true;
                } else if name.eq_ignore_ascii_case("s-maxage") {
                    let s = seconds(&mut cc);
                    cc.s_maxage = min(cc.s_maxage, s);
                } else if name.eq_ignore_ascii_case("max-age") {
                    let s = seconds(&mut cc);
                    cc.max_age = min(cc.max_age, s);
                }
            }
        }
        cc
    }
}

/// The smaller of two optional ages (a directive given twice counts at its strictest).
fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::settings::RouteRule;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn s_maxage_wins_over_max_age() {
        let s = Settings::resolve(&RouteRule::new());
        let ok = StatusCode::OK;
        assert_eq!(
            response_storage(ok, &headers(&[("cache-control", "max-age=5, s-maxage=10")]), &s),
            Ok(Some(10_000))
        );
        assert_eq!(response_storage(ok, &headers(&[("cache-control", "public, max-age=\"7\"")]), &s), Ok(Some(7_000)));
        assert_eq!(response_storage(ok, &headers(&[]), &s), Ok(None));
        assert!(response_storage(ok, &headers(&[("cache-control", "max-age=0")]), &s).is_err());
        assert!(response_storage(ok, &headers(&[("cache-control", "max-age=soon")]), &s).is_err());
    }

    #[test]
    fn unsafe_responses_are_refused() {
        let s = Settings::resolve(&RouteRule::new().varies(["Accept-Language"]));
        let ok = StatusCode::OK;
        for h in [
            headers(&[("set-cookie", "a=1")]),
            headers(&[("cache-control", "no-store")]),
            headers(&[("cache-control", "Private")]),
            headers(&[("cache-control", "no-cache=\"x\"")]),
            headers(&[("vary", "*")]),
            headers(&[("vary", "accept-language, accept-encoding")]),
        ] {
            assert!(response_storage(ok, &h, &s).is_err(), "{h:?}");
        }
        assert_eq!(response_storage(ok, &headers(&[("vary", "accept-language")]), &s), Ok(None));
        assert!(response_storage(StatusCode::NOT_FOUND, &headers(&[]), &s).is_err());
        assert!(response_storage(StatusCode::MOVED_PERMANENTLY, &headers(&[]), &s).is_ok());
    }
}
