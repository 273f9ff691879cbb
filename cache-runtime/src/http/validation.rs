//! Validation (RFC 9111 §4.3): a stored response with a validator of the handler's
//! (`ETag`, `Last-Modified`) is also kept, past its freshness, under a sibling key (the
//! entry's key + `-r`, so path and tag invalidation reach it too), for a day. A run of the
//! handler for that key sends its validators (`If-None-Match`, `If-Modified-Since`); a `304`
//! updates the stored headers and freshness (§4.3.4) and the stored body answers. A
//! response that must be revalidated before each use (`no-cache`, or stale on arrival) is
//! kept only there: every use is a run of the handler, mostly answered `304`.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::header::{self, HeaderMap, HeaderValue};

use super::policy;
use super::response::{CachedResponse, Held, X_CACHE};
use super::settings::Settings;
use crate::cache::Cache;
use crate::call::helpers::Landing;
use crate::options::Options;

/// How long past its freshness a response with validators is kept for revalidation.
const KEPT_FOR: Duration = Duration::from_secs(24 * 3600);

/// The raw key of the revalidation copy of the entry under `raw`.
fn sibling(raw: &str) -> String {
    format!("{raw}-r")
}

/// Whether `etag` is the weak one the layer makes from a body's hash (the handler does not
/// know it).
fn generated(etag: &HeaderValue) -> bool {
    let b = etag.as_bytes();
    b.len() == 36 && b.starts_with(b"W/\"") && b.ends_with(b"\"") && b[3..35].iter().all(u8::is_ascii_hexdigit)
}

/// Whether the handler gave `r` a validator.
fn has_validator(r: &CachedResponse) -> bool {
    r.headers().get(header::ETAG).is_some_and(|e| !generated(e)) || r.headers().contains_key(header::LAST_MODIFIED)
}

/// The response kept for revalidating the entry under `raw`, if any.
pub(crate) async fn stored_for(cache: &Cache, raw: &str) -> Option<CachedResponse> {
    match cache.get::<Held>(&sibling(raw)).await? {
        Held::Stored(r) if has_validator(&r) => Some(r),
        _ => None,
    }
}

/// Keeps `stored` for revalidation, if the handler gave it a validator (landing as the
/// entry itself does).
pub(crate) async fn keep(cache: &Cache, raw: &str, options: &Options, stored: &CachedResponse, landing: Landing<Held>) {
    if !has_validator(stored) {
        return;
    }
    let fresh = Duration::from_millis(stored.max_age_ms().unwrap_or(0));
    let options = options.clone().max_age(fresh.saturating_add(KEPT_FOR));
    cache.set_weighed(&sibling(raw), Held::Stored(stored.clone()), &options, landing).await;
}

/// Makes the handler's request conditional on `old`'s validators (RFC 9111 §4.3.1).
pub(crate) fn add_preconditions(headers: &mut HeaderMap, old: &CachedResponse) {
    if let Some(etag) = old.headers().get(header::ETAG).filter(|e| !generated(e)) {
        headers.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(date) = old.headers().get(header::LAST_MODIFIED) {
        headers.insert(header::IF_MODIFIED_SINCE, date.clone());
    }
}

/// `old` updated by a `304`'s headers (RFC 9111 §4.3.4: each field the `304` carries
/// replaces the stored one, but `Content-Length` and hop-by-hop fields), with its freshness
/// recomputed; or, when the update makes it unstorable, the response to pass on.
pub(crate) fn refreshed(
    old: &CachedResponse,
    not_modified: &HeaderMap,
    settings: &Settings,
    now_ms: u64,
) -> Result<CachedResponse, Box<Response<Bytes>>> {
    let mut merged = old.headers().clone();
    for name in not_modified.keys() {
        if name == header::CONTENT_LENGTH || name == X_CACHE || name == header::TRANSFER_ENCODING {
            continue;
        }
        merged.remove(name);
        for v in not_modified.get_all(name) {
            merged.append(name.clone(), v.clone());
        }
    }
    match policy::response_storage(old.status(), &merged, settings, now_ms) {
        Ok(lifetime) => {
            Ok(CachedResponse::new(old.status(), &merged, old.body().clone(), now_ms, lifetime, settings, false))
        }
        Err(_) => {
            merged.remove(header::AGE);
            let mut res = Response::new(old.body().clone());
            *res.status_mut() = old.status();
            *res.headers_mut() = merged;
            Err(Box::new(res))
        }
    }
}
