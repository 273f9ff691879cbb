//! What may be cached: which requests, which responses, and for how long.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body::Body;

use super::body::{self, CacheBody, NotRead, Read};
use super::freshness::{self, Directives, Lifetime};
use super::reason::NotCacheable;
use super::reflected::{self, ReflectedHeaders};
use super::response::CachedResponse;
use super::settings::Settings;
use super::vary;

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
    if settings.reflected == ReflectedHeaders::Bypass && reflected::carried(&parts.headers).is_some() {
        return Some(NotCacheable::ReflectedHeader);
    }
    // Preconditions meant for the origin server (RFC 9111 §4.3.2: a cache must not
    // evaluate them).
    if parts.headers.contains_key(header::IF_MATCH) || parts.headers.contains_key(header::IF_UNMODIFIED_SINCE) {
        return Some(NotCacheable::OriginPrecondition);
    }
    None
}

/// The request directives the layer obeys (RFC 9111 §5.2.1): `no-store` (nothing that
/// answers it is stored; a fresh stored response may still answer) and `only-if-cached`
/// (answered from a stored response or `504`, the handler never called). The others
/// (`no-cache`, `max-age`, `max-stale`, `min-fresh`) are preferences the layer does not
/// follow: a client cannot make everyone's entry be refetched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestDirectives {
    pub no_store: bool,
    pub only_if_cached: bool,
}

impl RequestDirectives {
    pub fn of(headers: &HeaderMap) -> RequestDirectives {
        let mut d = RequestDirectives::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let name = directive.split_once('=').map_or(directive, |(n, _)| n).trim();
                if name.eq_ignore_ascii_case("no-store") {
                    d.no_store = true;
                } else if name.eq_ignore_ascii_case("only-if-cached") {
                    d.only_if_cached = true;
                }
            }
        }
        d
    }
}

/// Whether a handler's response may be stored, judging by its status and headers; if so,
/// its freshness (explicit, or the route's heuristic; zero remaining for one that has a
/// validator but must be revalidated before use: `no-cache`, or stale on arrival). The
/// body is judged apart.
pub(crate) fn response_storage(
    status: StatusCode,
    headers: &HeaderMap,
    settings: &Settings,
    now_ms: u64,
) -> Result<Lifetime, NotCacheable> {
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotCacheable::SetCookie);
    }
    let cc = Directives::of(headers);
    // A validator lets a response that must be revalidated be kept for revalidation.
    let validator = headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    // `must-understand` (RFC 9111 §5.2.2.3): `no-store` gives way for a status whose
    // caching rules the layer implements (the heuristically cacheable ones).
    let no_store = cc.no_store && !(cc.must_understand && UNDERSTOOD.contains(&status.as_u16()));
    if no_store || cc.private || (cc.no_cache && !validator) {
        return Err(NotCacheable::CacheControl);
    }
    // The headers it nominates beyond the key's make a secondary key (`vary.rs`).
    vary::nominated(headers, settings)?;
    let Some(lifetime) = freshness::lifetime(headers, &cc, now_ms, settings.heuristic_ms) else {
        return Err(NotCacheable::NoFreshness);
    };
    // `public` lets the heuristic apply to any status `statuses` allows (RFC 9111 §4.2.2).
    if !settings.stores_status(status, lifetime.explicit || cc.public) {
        return Err(NotCacheable::Status);
    }
    let mut lifetime = lifetime;
    if cc.no_cache {
        lifetime.lifetime_ms = 0;
    }
    if lifetime.remaining_ms() == 0 && !validator {
        return Err(NotCacheable::StaleAtOnce);
    }
    Ok(lifetime)
}

/// The statuses whose caching rules the layer implements, for `must-understand`.
const UNDERSTOOD: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

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
    let lifetime = match response_storage(res.status(), res.headers(), settings, now_ms) {
        Ok(lifetime) => lifetime,
        Err(reason) => {
            return Err(NotStored { response: res.map(CacheBody::handler), reason, failed: false });
        }
    };
    let (head, body) = res.into_parts();
    match body::read(body, settings.max_body).await {
        Read::Complete(bytes) => {
            Ok(CachedResponse::new(head.status, &head.headers, bytes, now_ms, lifetime, settings, hash_body))
        }
        Read::PassOn(body, why) => Err(NotStored {
            response: Response::from_parts(head, body),
            reason: why.reason(),
            failed: why == NotRead::Failed,
        }),
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
    fn unsafe_responses_are_refused() {
        let s = Settings::resolve(&RouteRule::new().varies(["Accept-Language"]));
        let ok = StatusCode::OK;
        for h in [
            headers(&[("set-cookie", "a=1")]),
            headers(&[("cache-control", "no-store")]),
            headers(&[("cache-control", "Private")]),
            headers(&[("cache-control", "no-cache=\"x\"")]),
            headers(&[("vary", "*")]),
            headers(&[("vary", "accept-language, cookie")]),
            headers(&[("cache-control", "max-age=0")]),
        ] {
            assert!(response_storage(ok, &h, &s, 0).is_err(), "{h:?}");
        }
        assert!(response_storage(ok, &headers(&[("vary", "accept-language, accept-encoding")]), &s, 0).is_ok());
        assert!(response_storage(StatusCode::NOT_FOUND, &headers(&[]), &s, 0).is_ok(), "heuristically cacheable");
        assert!(response_storage(StatusCode::FOUND, &headers(&[]), &s, 0).is_err(), "not heuristically cacheable");
        assert!(response_storage(StatusCode::FOUND, &headers(&[("cache-control", "max-age=9")]), &s, 0).is_ok());
        let five = StatusCode::SERVICE_UNAVAILABLE;
        assert!(response_storage(five, &headers(&[("cache-control", "max-age=9")]), &s, 0).is_err());
        let listed = Settings::resolve(&RouteRule::new().statuses([200, 503]));
        assert!(response_storage(five, &headers(&[("cache-control", "max-age=9")]), &listed, 0).is_ok());
    }
}
