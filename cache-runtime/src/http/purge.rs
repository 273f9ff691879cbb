//! The opt-in purge endpoint: a `PURGE` request to a path, carrying
//! `Authorization: Bearer {token}`, drops every entry of that path (every host, method and
//! variant) and of the tags its tag header names (`Surrogate-Key: a b`), answered here,
//! never by the handler. Off unless [`CacheLayer::purge_token`](super::CacheLayer::purge_token)
//! sets a token; the token is compared in constant time, and a wrong or missing one gets
//! `401` and purges nothing.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};

use super::key;
use super::plan::Shared;
use super::response::tags_of;

/// The method of the purge endpoint.
pub(crate) const PURGE: &str = "PURGE";

/// Answers a `PURGE` request (the layer has a token).
pub(crate) async fn purge(shared: &Shared, token: &[u8], req: Parts) -> Response<Bytes> {
    let given =
        req.headers.get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer ")).unwrap_or_default();
    if !same(given, token) {
        let mut res = Response::new(Bytes::from_static(b"a PURGE needs Authorization: Bearer <token>\n"));
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    let path = req.uri.path();
    let entries = shared.cache.delete_prefix(&key::path_prefix(path)).await;
    let settings = shared.rules.for_path(path);
    let tags = settings.tag_header.as_ref().map(|name| tags_of(&req.headers, name)).unwrap_or_default();
    for tag in &tags {
        shared.cache.in_scope(crate::invalidate_tag(tag)).await;
    }
    tracing::info!(target: "larder", path, entries, tags = tags.len(), "http: purged");
    Response::new(Bytes::from(format!("purged {entries} entries and {} tags\n", tags.len())))
}

/// Whether `a` equals `b`, in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        for other in [&b"s3cre"[..], b"s3crett", b"S3cret", b""] {
            assert!(!same(other, b"s3cret"), "{other:?}");
        }
    }
}
