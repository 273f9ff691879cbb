//! HTTP response caching for tower and axum, safe by default (feature `http`).
//!
//! [`CacheLayer`] caches the responses of the service it wraps through the same algorithm
//! as `#[cached]` (single-flight misses, `swr`, `grace`, timeouts, tags), in a runtime's
//! store; [`RouteRules`] give paths their own options; [`ResponseCache`] is the same store
//! as an API (invalidation, and Cloudflare-style `match`/`put`/`delete`).
//!
//! ```no_run
//! # use cache_runtime as larder;
//! use std::time::Duration;
//! use larder::http::{CacheLayer, RouteRule, RouteRules};
//!
//! let cache = CacheLayer::new()
//!     .max_age(Duration::from_secs(10))
//!     .swr()
//!     .routes(
//!         RouteRules::new()
//!             .rule("/blog/**", RouteRule::new().max_age(Duration::from_secs(3600)).tag("blog"))
//!             .rule("/blog/drafts/**", RouteRule::off()),
//!     );
//! let store = cache.store(); // store.invalidate_path("/blog/**"), store.invalidate_tag("blog"), …
//! // let app = axum::Router::new().route("/blog/{slug}", get(post)).layer(cache);
//! ```
//!
//! It is a shared cache in the sense of RFC 9111, stricter where safety asks for it. Safe
//! by default means that a response reaches the store only when nothing about it can
//! belong to one client, and that no request can steer what others are answered with:
//! requests with `Authorization`/`Cookie` pass through (unless
//! [`varies`](CacheLayer::varies) lists them, keying entries by their value), as do
//! requests carrying headers apps commonly reflect ([`ReflectedHeaders`]) and requests
//! without a usable `Host`; the key's authority is the absolute-form target's, else
//! `Host`. Responses with `Set-Cookie`, `Cache-Control: no-store/private/no-cache`, a
//! `Vary` of `*` or naming credentials `varies` does not list, an error status not listed in
//! [`statuses`](CacheLayer::statuses), and bodies larger than
//! [`max_body`](CacheLayer::max_body) pass through untouched (a body of unknown length
//! streams to the client and is stored once it has passed complete within `max_body`). A response that was not
//! stored is not shared with concurrent requests either: each runs the handler.
//!
//! Freshness is computed once, when a response is stored (`freshness.rs`): a targeted field
//! (`Larder-Cache-Control`, `CDN-Cache-Control`) over `Cache-Control`; `s-maxage` over
//! `max-age` over `Expires` − `Date`; the response's `Age` and apparent age count; the
//! layer's `max_age` is the heuristic for responses without explicit freshness. Choices
//! made here: a request's own `Cache-Control` is ignored (a client cannot force a
//! refresh); a stale entry with a validator of the handler's is revalidated with a
//! conditional request (`validation.rs`), and `no-cache` responses are stored only when
//! they have one; `HEAD` responses get no body-hash `ETag` (they have
//! no body), only the handler's.

mod body;
mod conditional;
mod freshness;
mod invalidate;
mod key;
mod layer;
mod plan;
mod policy;
mod purge;
mod reason;
mod reflected;
mod response;
mod routes;
mod service;
mod settings;
mod store;
mod validation;
mod variants;
mod vary;

pub use body::CacheBody;
pub use layer::{CacheLayer, DEFAULT_GROUP, DEFAULT_NAME};
pub use reason::NotCacheable;
pub use reflected::ReflectedHeaders;
pub use response::{CacheStatus, CachedResponse, X_CACHE};
pub use routes::{InvalidGlob, RouteRules};
pub use service::CacheService;
pub use settings::{DEFAULT_MAX_BODY, DEFAULT_TAG_HEADER, HEURISTIC_STATUSES, RouteRule, TARGETED_FIELDS};
pub use store::{PutError, ResponseCache};
