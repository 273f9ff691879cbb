//! Request headers that applications commonly reflect into their responses (absolute links,
//! redirects, the scheme of asset URLs) although they are not part of the URL: the inputs
//! of unkeyed-header cache poisoning. The layer never lets one reach a shared entry that
//! other requests are answered from: by default such a request passes through uncached; a
//! deployment behind a proxy that sets them can key entries by their values instead.

use http::{HeaderMap, HeaderName};

/// What a request carrying a commonly reflected header (`X-Forwarded-Host`,
/// `X-Forwarded-Proto`, `X-Forwarded-Port`, `X-Forwarded-Prefix`, `X-Forwarded-Scheme`,
/// `X-Forwarded-Server`, `Forwarded`, `X-Host`, `X-Original-URL`, `X-Rewrite-URL`,
/// `X-HTTP-Method-Override`) does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReflectedHeaders {
    /// It passes through uncached (the default): a client cannot make the handler build a
    /// response for others from a header the key does not see.
    #[default]
    Bypass,
    /// Their values make part of the key: for a deployment behind a trusted proxy that
    /// sets them on every request (a client's own values then only reach its own entries).
    Key,
}

/// The commonly reflected request headers.
pub(crate) static REFLECTED: [HeaderName; 11] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-scheme"),
    HeaderName::from_static("x-forwarded-server"),
    http::header::FORWARDED,
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
];

/// The first commonly reflected header `headers` carry, if any.
pub(crate) fn carried(headers: &HeaderMap) -> Option<&'static HeaderName> {
    if headers.is_empty() {
        return None;
    }
    REFLECTED.iter().find(|n| headers.contains_key(*n))
}
