//! The store of a layer as an API: invalidation by path glob and by tag, and the
//! Cloudflare-style `match` / `put` / `delete` (the Cache API of Workers) on the same entries.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::Full;

use super::conditional::Conditional;
use super::key;
use super::plan::Shared;
use super::policy;
use super::reason::NotCacheable;
use super::response::{CacheStatus, Held};
use super::routes::{InvalidGlob, PathGlob};
use super::vary;
use crate::call::helpers::Landing;

/// The store of a [`CacheLayer`](super::CacheLayer): the same entries the layer reads and
/// writes, with the same keys and rules. Get it with [`CacheLayer::store`](super::CacheLayer::store).
///
/// ```
/// # use cache_runtime as larder;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use larder::http::CacheLayer;
/// let store = CacheLayer::new().runtime(larder::Runtime::builder().build()).store();
/// let req = http::Request::get("http://example.com/hello").body(()).unwrap();
/// let res = http::Response::builder()
///     .header("cache-control", "max-age=60")
///     .body(http_body_util::Full::new(bytes::Bytes::from("hi")))
///     .unwrap();
/// store.put(&req, res).await.unwrap();
/// let hit = store.r#match(&req).await.unwrap();
/// assert_eq!(hit.headers()["x-cache"], "HIT");
/// assert!(store.delete(&req).await);
/// assert!(store.r#match(&req).await.is_none());
/// # });
/// ```
#[derive(Clone)]
pub struct ResponseCache {
    shared: Arc<Shared>,
}

impl fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache").field("cache", &self.shared.cache).finish()
    }
}

/// Why [`ResponseCache::put`] did not store a response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError {
    /// Only responses to `GET` and `HEAD` are stored.
    Method,
    /// The layer's rules refuse this request or response (the reason says which).
    NotCacheable(NotCacheable),
    /// Reading the body failed.
    Body(String),
}

impl fmt::Display for PutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Method => f.write_str("only responses to GET and HEAD requests can be stored"),
            PutError::NotCacheable(why) => write!(f, "not stored: {why}"),
            PutError::Body(e) => write!(f, "not stored: reading the body failed: {e}"),
        }
    }
}

impl std::error::Error for PutError {}

/// The head of a request (its extensions left out).
fn head_of<B>(req: &Request<B>) -> Parts {
    let mut head = Request::new(());
    *head.method_mut() = req.method().clone();
    *head.uri_mut() = req.uri().clone();
    *head.version_mut() = req.version();
    *head.headers_mut() = req.headers().clone();
    head.into_parts().0
}

impl ResponseCache {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        ResponseCache { shared }
    }

    /// The storage key of the entry a request would be answered from, if the layer would
    /// cache it (`{group}:{name}:{path parts}:_h{host}:_v{method}[-{variant}].json`).
    pub fn storage_key<B>(&self, req: &Request<B>) -> Option<String> {
        let (_, key) = self.shared.plan(&head_of(req)).ok()?;
        Some(self.shared.cache.storage_key(&key::raw(&key)))
    }

    /// Cloudflare's `cache.match(request)`: the fresh stored response for `req` (with
    /// `x-cache: HIT` and `Age`; a `304` if `req`'s preconditions say the client's copy is
    /// current), or `None`.
    pub async fn r#match<B>(&self, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
        let parts = head_of(req);
        let (_, key) = self.shared.plan(&parts).ok()?;
        let mut held = self.shared.cache.get::<Held>(&key::raw(&key)).await?;
        if let Held::Varies(record) = &held {
            let (variant, _) = key::secondary(&key, &record.vary, &parts.headers);
            held = self.shared.cache.get::<Held>(&key::raw(&variant)).await?;
        }
        match held {
            Held::Stored(r) => {
                let cond = Conditional::read(&parts.headers);
                Some(r.replay(CacheStatus::Hit, &cond, self.shared.cache.now_ms()).map(Full::new))
            }
            Held::Passed | Held::Varies(_) => None,
        }
    }

    /// Cloudflare's `cache.put(request, response)`: stores `res` as the answer to `req`,
    /// fresh for its own `s-maxage`, else `max-age`, else the route's `max_age`; under the
    /// same rules as the layer (no `Set-Cookie`, no `no-store`/`private`/`no-cache`, a
    /// stored status, a body of known length up to `max_body`, …); a response whose `Vary`
    /// nominates request headers the route's `varies` does not list is refused (only the
    /// layer keeps secondary keys).
    pub async fn put<ReqBody, B>(&self, req: &Request<ReqBody>, res: Response<B>) -> Result<(), PutError>
    where
        B: Body<Data = Bytes>,
        B::Error: fmt::Display,
    {
        let parts = head_of(req);
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return Err(PutError::Method);
        }
        let (settings, key) = self.shared.plan(&parts).map_err(PutError::NotCacheable)?;
        if vary::nominated(res.headers(), settings).is_ok_and(|names| !names.is_empty()) {
            return Err(PutError::NotCacheable(NotCacheable::VaryNominates));
        }
        let now = self.shared.cache.now_ms();
        let stored = match policy::storable(res, settings, now, parts.method == Method::GET).await {
            Ok(stored) => stored,
            Err(not) if not.failed => {
                // The error comes after what was read: find it, to say it.
                use http_body_util::BodyExt as _;
                let mut body = std::pin::pin!(not.response.into_body());
                while let Some(frame) = body.frame().await {
                    if let Err(e) = frame {
                        return Err(PutError::Body(e.to_string()));
                    }
                }
                return Err(PutError::NotCacheable(not.reason));
            }
            Err(not) => return Err(PutError::NotCacheable(not.reason)),
        };
        // One that must be revalidated before use has nothing to answer `match` with.
        let Some(fresh) = stored.max_age_ms().filter(|&ms| ms > 0) else {
            return Err(PutError::NotCacheable(NotCacheable::StaleAtOnce));
        };
        let max_age = Duration::from_millis(fresh);
        let mut options = settings.options.clone().max_age(max_age);
        if let Some(tags) = self.shared.tags.as_ref().map(|f| f(&parts)) {
            options = options.tags(tags);
        }
        let landing = Landing { weigh: Some(Held::weight), since: None };
        self.shared.cache.set_weighed(&key::raw(&key), Held::Stored(stored), &options, landing).await;
        Ok(())
    }

    /// Cloudflare's `cache.delete(request)`: deletes the entry `req` would be answered
    /// from; returns whether there was one.
    pub async fn delete<B>(&self, req: &Request<B>) -> bool {
        match self.shared.plan(&head_of(req)) {
            Ok((_, key)) => self.shared.cache.delete(&key::raw(&key)).await,
            Err(_) => false,
        }
    }

    /// Deletes every entry (every host, method and variant) of the paths that `glob`
    /// matches (same syntax as [`RouteRules`](super::RouteRules): `/blog/**`,
    /// `/api/*/stars`); returns how many. Runs in flight for them don't store their result.
    pub async fn invalidate_path(&self, glob: &str) -> Result<usize, InvalidGlob> {
        let glob = PathGlob::new(glob)?;
        let cache = &self.shared.cache;
        let namespace = cache.namespace_prefix().len();
        let mut done: HashSet<String> = HashSet::new();
        let mut deleted = 0;
        for full in cache.keys_under(&key::segments_prefix(glob.literal_segments())).await {
            let Some(path) = key::path_of_stored(&full[namespace..]) else {
                continue;
            };
            if glob.is_match(&path) && !done.contains(&path) {
                deleted += cache.delete_prefix(&key::path_prefix(&path)).await;
                done.insert(path);
            }
        }
        Ok(deleted)
    }

    /// Invalidates every entry tagged `tag`, in this layer's runtime (for entries in the
    /// runtime in force, `larder::invalidate_tag` does the same).
    pub async fn invalidate_tag(&self, tag: &str) {
        self.shared.cache.in_scope(crate::invalidate_tag(tag)).await;
    }

    /// Deletes every entry of this layer; returns how many.
    pub async fn clear(&self) -> usize {
        self.shared.cache.clear().await
    }

    /// The storage keys of this layer's entries (in every tier), sorted.
    pub async fn keys(&self) -> Vec<String> {
        self.shared.cache.keys_under("").await
    }
}
