//! The tower [`Layer`] and its options, as a builder.

use std::sync::{Arc, OnceLock};

use http::request::Parts;
use tower::Layer;

use super::plan::Shared;
use super::plan::{BypassFn, KeyFn, TagsFn};
use super::routes::RouteRules;
use super::service::CacheService;
use super::settings::{RouteRule, route_setters};
use super::store::ResponseCache;

use crate::mount::config::DEFAULT_HTTP_MOUNT;
use crate::options::{Options, option_setters};
use crate::runtime::Runtime;

/// The default `group` of HTTP entries.
pub const DEFAULT_GROUP: &str = "http";

/// The default `name` of HTTP entries.
pub const DEFAULT_NAME: &str = "default";

/// A tower [`Layer`] that caches the responses of the service it wraps, safe by default.
/// Use it with axum's `Router::layer`/`route_layer`, or on any tower service
/// of `http::Request<B>` → `http::Response<B2>`.
///
/// ```
/// # use cache_runtime as larder;
/// use std::time::Duration;
/// use larder::http::{CacheLayer, RouteRule, RouteRules};
///
/// let layer = CacheLayer::new()
///     .max_age(Duration::from_secs(60))
///     .swr()
///     .allow_query(["page"])
///     .routes(RouteRules::new().rule("/admin/**", RouteRule::off()));
/// // axum: Router::new().route(…).layer(layer)
/// ```
///
/// What is cached, and how (the README's HTTP section has the table of directives):
///
/// - Only `GET` and `HEAD` requests without `Range`, with a usable authority (the
///   absolute-form target's, else a UTF-8 `Host`), without `Authorization` or `Cookie`
///   unless [`varies`](Self::varies) lists them, and without commonly reflected headers
///   (`X-Forwarded-Host`, …) unless [`reflected_headers`](Self::reflected_headers) keys
///   them. Any other method passes through; one that is not `OPTIONS` or `TRACE`, answered
///   2xx or 3xx, invalidates the entries of its URI and of its same-origin `Location` and
///   `Content-Location` (RFC 9111 §4.4).
/// - The key is the path, the authority, the method (`HEAD` apart from `GET`), the
///   [`allow_query`](Self::allow_query) parameters (by name, repeated ones in order; the
///   handler does not see the others), the [`varies`](Self::varies) headers (normalised),
///   the accepted content codings and the [`key`](Self::key) function's result.
/// - A response is stored only if it has no `Set-Cookie`, its `Cache-Control` has no
///   `no-store` or `private` (nor `no-cache` without a validator), its `Vary` is not `*`
///   and names `Cookie`/`Authorization` only when `varies` does (other headers it names
///   make a secondary key, up to [`max_variants`](Self::max_variants) per URL), it is fresh on arrival, its status is allowed (with explicit
///   freshness, [`statuses`](Self::statuses); without, also
///   [`heuristic_statuses`](Self::heuristic_statuses)), and its body is at most
///   [`max_body`](Self::max_body) (one of unknown length streams to the client and is
///   stored once it has passed complete). Anything else passes through untouched.
///   Hop-by-hop headers are never stored.
/// - Freshness: a targeted field over `Cache-Control`, `s-maxage` over `max-age` over
///   `Expires`, less the age it arrived with; else [`max_age`](Self::max_age) as a
///   heuristic (zero: none). `must-revalidate`, `proxy-revalidate` and `s-maxage` responses
///   are never served stale.
/// - Every response gets `x-cache: HIT|MISS|STALE|BYPASS`; stored ones `Age`, an `ETag`
///   and answer `If-None-Match`/`If-Modified-Since` with `304`.
/// - A 5xx that may not be stored (or a failure or panic of the service) counts as the
///   handler's error: with [`grace`](Self::grace) an older response answers instead.
#[derive(Clone)]
pub struct CacheLayer {
    runtime: Option<Runtime>,
    mount: String,
    group: String,
    name: String,
    defaults: RouteRule,
    routes: RouteRules,
    key: Option<KeyFn>,
    bypass: Option<BypassFn>,
    tags: Option<TagsFn>,
    purge: Option<Arc<[u8]>>,
    /// Shared by the clones of one configuration (axum clones a layer for each route).
    shared: Arc<OnceLock<Arc<Shared>>>,
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer")
            .field("mount", &self.mount)
            .field("group", &self.group)
            .field("name", &self.name)
            .field("defaults", &self.defaults)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl Default for CacheLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheLayer {
    /// A layer with the defaults: a heuristic freshness of 1 s, no `swr`, every final
    /// status but 206, 304 and 5xx (without explicit freshness, the heuristically cacheable
    /// ones), bodies up to 8 MiB, reflected headers bypassing, `Surrogate-Key` as the tag
    /// header, no purge endpoint, no query parameters and no headers in the key, entries under
    /// `http:default:` in the mount `http` of the runtime in force when it is applied
    /// (unless configured, its memory tier holds up to 256 MiB of responses, weighed by
    /// their bodies and headers).
    pub fn new() -> Self {
        CacheLayer {
            runtime: None,
            mount: DEFAULT_HTTP_MOUNT.to_owned(),
            group: DEFAULT_GROUP.to_owned(),
            name: DEFAULT_NAME.to_owned(),
            defaults: RouteRule::new(),
            routes: RouteRules::new(),
            key: None,
            bypass: None,
            tags: None,
            purge: None,
            shared: Arc::new(OnceLock::new()),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self.shared = Arc::new(OnceLock::new());
        self
    }

    /// The runtime whose store holds the entries (default: the one in force, see
    /// [`Runtime::current`], when the layer is first applied).
    pub fn runtime(self, runtime: Runtime) -> Self {
        self.with(|l| l.runtime = Some(runtime))
    }

    /// The name of the mount the entries live in (default `"http"`), as the `base` option
    /// of `#[cached]` names one.
    pub fn base(self, base: impl Into<String>) -> Self {
        self.with(|l| l.mount = base.into())
    }

    /// The first key segment (default `"http"`), stored as a `#[cached]` group is (`/` as
    /// `.`); `larder::clear_group` clears it.
    pub fn group(self, group: impl Into<String>) -> Self {
        self.with(|l| l.group = group.into())
    }

    /// The second key segment (default `"default"`): give layers of one mount their own.
    pub fn name(self, name: impl Into<String>) -> Self {
        self.with(|l| l.name = name.into())
    }

    option_setters!(options_mut);
    route_setters!(rule_mut);

    /// The layer's own options (every route's, unless its rule sets them).
    fn options_mut(&mut self) -> &mut Options {
        &mut self.rule_mut().options
    }

    /// The layer's own rule; a change makes the next service see the new configuration.
    fn rule_mut(&mut self) -> &mut RouteRule {
        self.shared = Arc::new(OnceLock::new());
        &mut self.defaults
    }

    /// Per-path options: see [`RouteRules`].
    pub fn routes(self, routes: RouteRules) -> Self {
        self.with(|l| l.routes = routes)
    }

    /// A key function (like `get_key`) over the request head: requests of one path, host
    /// and method share an entry only when its results are equal too (it adds to the key;
    /// it cannot merge what the default key keeps apart).
    pub fn key<F: Fn(&Parts) -> String + Send + Sync + 'static>(self, f: F) -> Self {
        self.with(|l| l.key = Some(Arc::new(f)))
    }

    /// A predicate over the request head (like `should_bypass_cache`): `true` passes the
    /// request through, nothing read or stored.
    pub fn bypass<F: Fn(&Parts) -> bool + Send + Sync + 'static>(self, f: F) -> Self {
        self.with(|l| l.bypass = Some(Arc::new(f)))
    }

    /// Tags computed from the request head, added to the static ones.
    pub fn tags_with<F: Fn(&Parts) -> Vec<String> + Send + Sync + 'static>(self, f: F) -> Self {
        self.with(|l| l.tags = Some(Arc::new(f)))
    }

    /// Turns the purge endpoint on (it is off by default): a `PURGE` request to a path with
    /// `Authorization: Bearer {token}` drops every entry of the path (every host, method
    /// and variant) and of the tags its tag header lists (`Surrogate-Key: a b`), answered
    /// by the layer; a wrong or missing token gets `401` (compared in constant time).
    /// Without a token, `PURGE` is a method like any other and reaches the handler.
    ///
    /// # Panics
    ///
    /// If `token` is empty.
    pub fn purge_token(self, token: impl Into<String>) -> Self {
        let token: String = token.into();
        assert!(!token.is_empty(), "`purge_token`: an empty token would open the purge endpoint to anyone");
        self.with(|l| l.purge = Some(Arc::from(token.into_bytes())))
    }

    /// The store of this layer, for invalidation and the Cloudflare-style `match`/`put`/`delete`.
    pub fn store(&self) -> ResponseCache {
        ResponseCache::new(self.shared())
    }

    fn shared(&self) -> Arc<Shared> {
        Arc::clone(self.shared.get_or_init(|| {
            let runtime = self.runtime.clone().unwrap_or_else(Runtime::current);
            Arc::new(Shared {
                cache: runtime.cache(&self.mount).namespace(&self.group).namespace(&self.name),
                rules: self.routes.resolve(&self.defaults),
                key: self.key.clone(),
                bypass: self.bypass.clone(),
                tags: self.tags.clone(),
                purge: self.purge.clone(),
            })
        }))
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> CacheService<S> {
        CacheService::new(inner, self.shared())
    }
}
