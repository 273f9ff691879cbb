//! Why a request or a response was not cached ([`NotCacheable`]): one typed reason for the
//! layer's logs and for [`ResponseCache::put`](crate::http::ResponseCache::put)'s error.

/// Why a request passed through uncached, or a response was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum NotCacheable {
    /// The route's rule turns caching off.
    #[error("caching is off for this route")]
    RouteOff,
    /// Only `GET` and `HEAD` requests are cached.
    #[error("only GET and HEAD are cached")]
    Method,
    /// A `Range` request.
    #[error("a Range request")]
    Range,
    /// The request carries `Authorization`, which `varies` does not list.
    #[error("the request carries Authorization, which `varies` does not list")]
    Authorization,
    /// The request carries `Cookie`, which `varies` does not list.
    #[error("the request carries Cookie, which `varies` does not list")]
    Cookie,
    /// The layer's bypass predicate said so.
    #[error("the bypass predicate said so")]
    BypassPredicate,
    /// The response's status is not in `statuses`.
    #[error("its status is not in `statuses`")]
    Status,
    /// The response sets a cookie.
    #[error("it sets a cookie")]
    SetCookie,
    /// The response's `Cache-Control` has `no-store`, `private` or `no-cache`.
    #[error("its Cache-Control has no-store, private or no-cache")]
    CacheControl,
    /// The response's `Vary` is not readable.
    #[error("its Vary is not readable")]
    VaryUnreadable,
    /// The response has `Vary: *`.
    #[error("it has Vary: *")]
    VaryAll,
    /// The response's `Vary` names a header that `varies` does not list.
    #[error("its Vary names a header that `varies` does not list")]
    VaryUnlisted,
    /// The response's `Cache-Control` makes it stale at once (`max-age=0`).
    #[error("its Cache-Control makes it stale at once")]
    StaleAtOnce,
    /// The body is a stream, or longer than `max_body`.
    #[error("its body is a stream or longer than `max_body`")]
    BodyUnbounded,
    /// The body turned out longer than `max_body`.
    #[error("its body is longer than `max_body`")]
    BodyTooLong,
    /// The body has trailers.
    #[error("its body has trailers")]
    BodyTrailers,
    /// Reading the body failed.
    #[error("reading its body failed")]
    BodyFailed,
}
