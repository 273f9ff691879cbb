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
    /// The request names no authority the key can trust (no `Host`, or one that is not UTF-8).
    #[error("the request has no usable Host")]
    Host,
    /// The request carries a header that apps commonly reflect (`X-Forwarded-Host`, …),
    /// and the policy is to let such requests bypass.
    #[error("the request carries a commonly reflected header (X-Forwarded-Host, …)")]
    ReflectedHeader,
    /// The request carries a precondition only the origin can evaluate (`If-Match`,
    /// `If-Unmodified-Since`): it goes to the handler as it came.
    #[error("the request carries If-Match or If-Unmodified-Since, for the origin to evaluate")]
    OriginPrecondition,
    /// The layer's bypass predicate said so.
    #[error("the bypass predicate said so")]
    BypassPredicate,
    /// The response's status is not in `statuses` (or, without explicit freshness, not in
    /// `heuristic_statuses`).
    #[error("its status is not stored (`statuses`, or `heuristic_statuses` without explicit freshness)")]
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
    /// The response's `Vary` names `Cookie` or `Authorization`, which `varies` does not list.
    #[error("its Vary names Cookie or Authorization, which `varies` does not list")]
    VaryUnlisted,
    /// The response's `Vary` makes a new variant of a URL that has `max_variants` already.
    #[error("its URL has `max_variants` variants already")]
    VaryVariants,
    /// The response's `Vary` nominates request headers the key does not hold (only the
    /// layer keeps a secondary key; `ResponseCache::put` does not).
    #[error("its Vary nominates request headers the key does not hold")]
    VaryNominates,
    /// The response is stale on arrival (`max-age=0`, an `Age` past its lifetime, an invalid `Expires`).
    #[error("it is stale on arrival (max-age=0, an Age past its lifetime, an invalid Expires, …)")]
    StaleAtOnce,
    /// The response gives no freshness and the layer's heuristic is off (`max_age` zero).
    #[error("it gives no freshness and the layer's heuristic `max_age` is off")]
    NoFreshness,
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
