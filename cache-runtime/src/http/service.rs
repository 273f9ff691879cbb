//! The tower [`Service`]: what one request through the layer does.
//!
//! A cacheable request becomes one `Cache::get_or_set_weighed` call, whose factory runs the
//! wrapped service and turns its response into what the cache holds ([`Held`]). So misses
//! are single-flight, and `swr`, `grace` and timeouts are those of every cached call:
//!
//! - a storable response is a [`Held::Stored`] value, kept as long as its own
//!   `s-maxage`/`max-age` says (else the route's `max_age`), and through its own
//!   `stale-while-revalidate`/`stale-if-error` windows, which widen the route's `swr` and
//!   `grace` for a request that finds it in memory;
//! - a storable response whose `Vary` nominates request headers the key lacks is stored
//!   under its secondary key, and its URL's primary key holds [`Held::Varies`], the record
//!   of that `Vary`: a request that meets it goes on to its own variant's key (`vary.rs`);
//! - a response that may not be stored is [`Held::Passed`]: never kept, and not shared
//!   either. The request that ran the handler gets the response itself (its body untouched,
//!   through a side slot); the concurrent requests that waited on that run each run the
//!   handler for themselves, since the response may be meant for one client (`Set-Cookie`);
//! - a 5xx that may not be stored (or the service failing, or the handler panicking) is
//!   the factory's error: under `grace` an older response answers; otherwise the request
//!   that ran the handler gets the 5xx as it was (a panic: `500`), and the waiters run the
//!   handler themselves.
//!
//! Any other method passes through; an unsafe one answered 2xx or 3xx invalidates the
//! entries of its URI and of the same-origin `Location`/`Content-Location` (`invalidate.rs`).

use std::future::Future;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use parking_lot::Mutex;
use tower::Service;

use super::body::CacheBody;
use super::conditional::Conditional;
use super::invalidate;
use super::key::{self, QueryKeys};
use super::plan::Shared;
use super::policy;
use super::purge;
use super::reason::NotCacheable;
use super::response::{
    CacheStatus, CachedResponse, Held, StaleWindows, X_CACHE, answer_unstored, strip_cache_fields, tags_of,
};
use super::settings::Settings;
use super::validation;
use super::variants;
use super::vary;
use crate::call::helpers::Landing;
use crate::call::outcome::{Answer, Storage};
use crate::error::Error;
use crate::options::Options;

/// The service of [`CacheLayer`](super::CacheLayer): caches the responses of `S`.
#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService").field("cache", &self.shared.cache).finish_non_exhaustive()
    }
}

impl<S> CacheService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        CacheService { inner, shared }
    }

    /// The store of this service, for invalidation and the Cloudflare-style API.
    pub fn store(&self) -> super::ResponseCache {
        super::store::ResponseCache::new(Arc::clone(&self.shared))
    }
}

/// How long the cache keeps what a run produced.
fn storage_of(flight: &Held) -> Storage {
    match flight {
        // Stale on arrival (`no-cache`, `max-age=0` with a validator): answers this run,
        // kept only for revalidation (`validation.rs`).
        Held::Stored(r) if r.max_age_ms() == Some(0) => Storage::Skip,
        Held::Stored(r) => match (r.max_age_ms(), r.stale_windows().longest_ms()) {
            (None, _) => Storage::Default,
            (Some(ms), 0) => Storage::MaxAge(ms),
            // Kept through its own stale windows, however short the route's are.
            (Some(ms), past) => Storage::Windowed { max_age_ms: ms, kept_past_ms: past },
        },
        Held::Varies(_) => Storage::MaxAge(vary::RECORD_FOR.as_millis() as u64),
        Held::Passed => Storage::Skip,
    }
}

/// `options` widened by the stale windows a stored response gives itself (RFC 5861): its
/// `stale-while-revalidate` lengthens the `swr` window (turning `swr` on), its
/// `stale-if-error` the `grace` window; a route's own window stays when it is longer. A
/// response that may never be served stale has no windows.
fn with_windows(mut options: Options, windows: StaleWindows) -> Options {
    if windows.while_revalidating_ms > 0 {
        let own = Duration::from_millis(windows.while_revalidating_ms);
        match (options.is_swr(), options.stale_max_age) {
            // Stale for as long as it is kept already.
            (true, None) => {}
            (true, Some(route)) => options.stale_max_age = Some(route.max(own)),
            (false, _) => {
                options.swr = Some(true);
                options.stale_max_age = Some(own);
            }
        }
    }
    if windows.if_error_ms > 0 {
        let own = Duration::from_millis(windows.if_error_ms);
        options.grace = Some(options.grace.map_or(own, |route| route.max(own)));
    }
    options
}

/// Why a run produced no value.
#[derive(Debug)]
pub(crate) enum RunError {
    /// larder's own (a hard timeout, or the failure of a run this request waited for).
    Larder(Error),
    /// The handler answered 5xx, or the service failed.
    Handler,
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        RunError::Larder(e)
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CacheService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send + 'static,
{
    type Response = Response<CacheBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if req.method().as_str() == purge::PURGE
            && let Some(token) = self.shared.purge.clone()
        {
            let shared = Arc::clone(&self.shared);
            let (parts, _) = req.into_parts();
            return Box::pin(async move { Ok(pass(purge::purge(&shared, &token, parts).await.map(CacheBody::full))) });
        }
        let way = match route(&self.shared, req) {
            // A fresh entry in memory: answered here, the service is not used.
            ControlFlow::Break(hit) => {
                return Box::pin(std::future::ready(Ok(hit.map(CacheBody::full))));
            }
            ControlFlow::Continue(way) => way,
        };
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut svc = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            match way {
                Way::Bypass(req) => Ok(pass(caught(svc.call(req)).await?)),
                Way::Write(req) => {
                    let target = invalidate::Target::of(&req);
                    let res = caught(svc.call(req)).await?;
                    let status = res.status();
                    if status.is_success() || status.is_redirection() {
                        for path in target.paths(res.headers()) {
                            let n = shared.cache.delete_prefix(&key::path_prefix(&path)).await;
                            tracing::debug!(target: "larder", path, entries = n, "http: an unsafe request invalidated a URI");
                        }
                    }
                    Ok(pass(res))
                }
                Way::Cache(call) => Run::through_cache(shared, svc, *call).await,
            }
        })
    }
}

/// What a request not answered from memory does.
enum Way<ReqBody> {
    /// Passes through untouched.
    Bypass(Request<ReqBody>),
    /// Any method but `GET`, `HEAD`, `OPTIONS` and `TRACE` (RFC 9111 §4.4): passes through,
    /// and invalidates its URIs if answered 2xx or 3xx.
    Write(Request<ReqBody>),
    /// Through the cache's algorithm (a miss, a stale or grace answer, an entry in L2).
    Cache(Box<CacheCall<ReqBody>>),
}

/// A request on its way through the cache.
struct CacheCall<ReqBody> {
    /// As the handler will see it: without preconditions, with only the allowed query.
    req: Request<ReqBody>,
    settings: Arc<Settings>,
    /// Storage form: the request's secondary key when its URL's record of `Vary` is in
    /// memory, else its primary key.
    key: String,
    /// Storage form.
    primary: String,
    /// The request's headers (without preconditions), for its secondary key.
    asked: Arc<HeaderMap>,
    cond: Conditional,
    extra_tags: Option<Vec<String>>,
}

/// Decides what a request does, or answers it at once from a fresh entry in memory (the
/// common hit takes no lock a miss holds, allocates little and clones no service).
fn route<ReqBody>(shared: &Shared, req: Request<ReqBody>) -> ControlFlow<Response<Bytes>, Way<ReqBody>> {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return ControlFlow::Continue(match *method {
            Method::OPTIONS | Method::TRACE => Way::Bypass(req),
            _ => Way::Write(req),
        });
    }
    let (mut parts, body) = req.into_parts();
    let (settings, mut key) = match shared.plan(&parts) {
        Ok(plan) => plan,
        Err(reason) => {
            tracing::trace!(target: "larder", path = parts.uri.path(), %reason, "http: bypass");
            return ControlFlow::Continue(Way::Bypass(Request::from_parts(parts, body)));
        }
    };
    let mut primary = None;
    let mut held = shared.cache.fresh_in_memory::<Held>(&key);
    if let Some(Held::Varies(record)) = &held {
        // The URL's responses vary: this request's variant is under its secondary key.
        let (variant, _) = key::secondary(&key, &record.vary, &parts.headers);
        held = shared.cache.fresh_in_memory::<Held>(&variant);
        primary = Some(std::mem::replace(&mut key, variant));
    }
    if let Some(Held::Stored(r)) = held {
        let cond = Conditional::read(&parts.headers);
        return ControlFlow::Break(r.replay(CacheStatus::Hit, &cond, shared.cache.now_ms()));
    }
    let asks = policy::RequestDirectives::of(&parts.headers);
    if asks.only_if_cached {
        // Nothing stored answers it, and the handler is not to be asked (RFC 9111 §5.2.1.7).
        let mut res = Response::new(Bytes::new());
        *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        res.headers_mut().insert(X_CACHE, CacheStatus::Miss.header());
        return ControlFlow::Break(res);
    }
    if asks.no_store {
        // Nothing that answers it is stored (RFC 9111 §5.2.1.5): it passes through.
        return ControlFlow::Continue(Way::Bypass(Request::from_parts(parts, body)));
    }
    let extra_tags = shared.tags.as_ref().map(|f| f(&parts)).filter(|t| !t.is_empty());
    let cond = Conditional::take(&mut parts.headers);
    strip_query(&mut parts.uri, &settings.allow_query);
    ControlFlow::Continue(Way::Cache(Box::new(CacheCall {
        asked: Arc::new(parts.headers.clone()),
        req: Request::from_parts(parts, body),
        settings: Arc::clone(settings),
        primary: primary.unwrap_or_else(|| key.clone()),
        key,
        cond,
        extra_tags,
    })))
}

/// The request and the (ready) service that will answer it, taken by whoever runs it.
type Pending<ReqBody, S> = Arc<Mutex<Option<(Request<ReqBody>, S)>>>;
/// The response of a run that the cache did not take, for the request that ran it.
type Passed<ResBody, E> = Arc<Mutex<Option<Result<Response<CacheBody<ResBody>>, E>>>>;
/// The response a run stored as a variant of its URL, for the request that ran it (the
/// run itself answers with the URL's record of `Vary`).
type Own = Arc<Mutex<Option<CachedResponse>>>;

/// What one run of the handler for the cache works with: the request (taken by whoever
/// runs it) and its headers, the slot for a response the cache does not take, the route's
/// settings, the layer, the entry's raw key and options, and the URL's primary raw key.
struct Run<ReqBody, S, ResBody: Body, E> {
    pending: Pending<ReqBody, S>,
    passed: Passed<ResBody, E>,
    own: Own,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    entry: Arc<(String, Options)>,
    primary: Arc<str>,
    asked: Arc<HeaderMap>,
    hash_body: bool,
}

impl<ReqBody, S, ResBody: Body, E> Clone for Run<ReqBody, S, ResBody, E> {
    fn clone(&self) -> Self {
        Run {
            pending: Arc::clone(&self.pending),
            passed: Arc::clone(&self.passed),
            own: Arc::clone(&self.own),
            settings: Arc::clone(&self.settings),
            shared: Arc::clone(&self.shared),
            entry: Arc::clone(&self.entry),
            primary: Arc::clone(&self.primary),
            asked: Arc::clone(&self.asked),
            hash_body: self.hash_body,
        }
    }
}

impl<ReqBody, S, ResBody> Run<ReqBody, S, ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send + 'static,
{
    /// The entry through the cache's algorithm, with `options`: a run of the handler on a miss.
    /// A stored response's own stale windows widen the route's for its entry.
    async fn through(&self, options: &Options) -> (Result<Held, RunError>, Answer) {
        let run = self.clone();
        let raw = &self.entry.0;
        let widened;
        let options = match self.shared.cache.held_in_memory::<Held>(raw) {
            Some(Held::Stored(r)) if r.stale_windows().longest_ms() > 0 => {
                widened = with_windows(options.clone(), r.stale_windows());
                &widened
            }
            _ => options,
        };
        self.shared.cache.get_or_set_weighed(raw, options, Some(storage_of), Some(Held::weight), || produce(run)).await
    }

    /// A request through the cache: its run (or the run it joins), and its answer.
    async fn through_cache(
        shared: Arc<Shared>,
        svc: S,
        call: CacheCall<ReqBody>,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error> {
        let CacheCall { req, settings, key, primary, asked, cond, extra_tags } = call;
        let hash_body = req.method() == Method::GET;
        let pending: Pending<ReqBody, S> = Arc::new(Mutex::new(Some((req, svc))));
        let passed: Passed<ResBody, S::Error> = Arc::new(Mutex::new(None));
        let options = match extra_tags {
            Some(tags) => settings.options.clone().tags(tags),
            None => settings.options.clone(),
        };
        let entry = Arc::new((key::raw(&key), options.clone()));
        let primary: Arc<str> = key::raw(&primary).into();
        let own = Own::default();
        let mut run = Run { pending, passed, own, settings, shared, entry, primary, asked, hash_body };
        let (mut result, mut answer) = run.through(&options).await;
        if let Ok(Held::Varies(record)) = &result {
            // The URL's responses vary: this request's own variant, under its secondary key.
            let (variant, _) = key::secondary(&run.primary, &record.vary, &run.asked);
            run.entry = Arc::new((variant, options.clone()));
            let first = answer;
            (result, answer) = run.through(&options).await;
            if first == Answer::Miss && answer == Answer::Hit {
                answer = Answer::Miss;
            }
            let stored = run.own.lock().take();
            if let (false, Some(stored)) = (matches!(result, Ok(Held::Stored(_))), stored) {
                // This request's own run stored its variant, which is already gone (evicted,
                // or invalidated since): the run's response still answers the request.
                (result, answer) = (Ok(Held::Stored(stored)), Answer::Miss);
            }
        }
        let never_stale = |result: &Result<Held, RunError>| matches!(result, Ok(Held::Stored(r)) if r.never_stale());
        if answer == Answer::Stale && never_stale(&result) {
            // Not to be served stale: wait for a fresh one (joining the refresh just started).
            let mut strict = options.clone();
            (strict.swr, strict.stale_max_age, strict.grace) = (Some(false), None, None);
            (result, answer) = run.through(&strict).await;
        }
        if answer == Answer::Grace && never_stale(&result) {
            // Not to be served stale: the handler's failure answers instead.
            result = Err(RunError::Handler);
        }

        let status = match answer {
            Answer::Hit => CacheStatus::Hit,
            Answer::Miss => CacheStatus::Miss,
            Answer::Stale | Answer::Grace => CacheStatus::Stale,
            Answer::Bypass => CacheStatus::Bypass,
        };
        if let Ok(Held::Stored(r)) = &result {
            return Ok(r.replay(status, &cond, run.shared.cache.now_ms()).map(CacheBody::full));
        }
        // Nothing to replay. The run this request drove left its response aside…
        let own = run.passed.lock().take();
        if let Some(res) = own {
            return res.map(|res| pass(unstored(res, &cond)));
        }
        // …or this request waited on another's run, which it may not share: run it here.
        let unsent = run.pending.lock().take();
        if let Some((req, mut svc)) = unsent {
            let mut res = caught(svc.call(req)).await?;
            strip_cache_fields(res.headers_mut(), &run.settings);
            return Ok(pass(unstored(res, &cond)));
        }
        // The run was abandoned (hard timeout) or is still going in the background.
        let timed_out = matches!(result, Err(RunError::Larder(Error::Timeout)));
        let mut res = Response::new(CacheBody::empty());
        *res.status_mut() = if timed_out { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::BAD_GATEWAY };
        Ok(pass(res))
    }
}

/// One run of the handler for the cache: its response, as the cache will hold it. A
/// panic of the handler (or of its body) is this run's error, its request answered `500`.
async fn produce<S, ReqBody, ResBody>(run: Run<ReqBody, S, ResBody, S::Error>) -> Result<Held, RunError>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    let passed = Arc::clone(&run.passed);
    match AssertUnwindSafe(produce_caught(run)).catch_unwind().await {
        Ok(held) => held,
        Err(_) => {
            tracing::error!(target: "larder", "http: the handler panicked; its request gets 500");
            *passed.lock() = Some(Ok(internal_error()));
            Err(RunError::Handler)
        }
    }
}

async fn produce_caught<S, ReqBody, ResBody>(run: Run<ReqBody, S, ResBody, S::Error>) -> Result<Held, RunError>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    let Run { pending, passed, own, settings, shared, entry, primary, asked, hash_body } = run;
    // Whatever this run stores, now or when a streamed body ends, is kept out by an
    // invalidation from here on.
    let landing = Landing { weigh: Some(Held::weight), since: Some(shared.cache.ticket()) };
    let taken = pending.lock().take();
    let Some((mut req, mut svc)) = taken else {
        return Err(RunError::Larder(Error::SharedRunFailed));
    };
    let (raw, options) = &*entry;
    let old = validation::stored_for(&shared.cache, raw).await;
    if let Some(old) = &old {
        validation::add_preconditions(req.headers_mut(), old);
    }
    let mut res = match svc.call(req).await {
        Ok(res) => res,
        Err(e) => {
            *passed.lock() = Some(Err(e));
            return Err(RunError::Handler);
        }
    };
    let now = shared.cache.now_ms();
    if let Some(old) = old
        && res.status() == StatusCode::NOT_MODIFIED
    {
        return match validation::refreshed(&old, res.headers(), &settings, now) {
            Ok(fresh) => {
                validation::keep(&shared.cache, raw, options, &fresh, landing).await;
                Ok(Held::Stored(fresh))
            }
            Err(not) => {
                *passed.lock() = Some(Ok((*not).map(CacheBody::full)));
                Ok(Held::Passed)
            }
        };
    }
    if res.status().is_server_error() && policy::response_storage(res.status(), res.headers(), &settings, now).is_err()
    {
        strip_cache_fields(res.headers_mut(), &settings);
        *passed.lock() = Some(Ok(res.map(CacheBody::handler)));
        return Err(RunError::Handler);
    }
    let variant = match variants::variant_of(&shared.cache, &primary, &asked, res.headers(), &settings).await {
        Ok(variant) => variant,
        Err(reason) => {
            tracing::debug!(target: "larder", %reason, "http: response not stored");
            strip_cache_fields(res.headers_mut(), &settings);
            *passed.lock() = Some(Ok(res.map(CacheBody::handler)));
            return Ok(Held::Passed);
        }
    };
    let tags = settings.tag_header.as_ref().map(|name| tags_of(res.headers(), name)).unwrap_or_default();
    let head = res.body().size_hint().exact().is_none().then(|| (res.status(), res.headers().clone()));
    match policy::storable(res, &settings, now, hash_body).await {
        Ok(stored) => {
            if !tags.is_empty() {
                crate::call::this_entry::tags(tags.clone());
            }
            let options = variants::fresh_for(options.clone().tags(tags), &stored);
            if variant.is_some() {
                *own.lock() = Some(stored.clone());
            }
            Ok(variants::land(&shared.cache, raw, &primary, variant, &options, stored, landing).await)
        }
        Err(mut not) if not.reason == NotCacheable::BodyUnbounded && head.is_some() => {
            // A body of unknown length: stored once it has passed, complete and within max_body.
            let (status, headers) = head.expect("checked");
            let lifetime = policy::response_storage(status, &headers, &settings, now);
            strip_cache_fields(not.response.headers_mut(), &settings);
            if let Ok(lifetime) = lifetime {
                let (store, max) = (Arc::clone(&shared), settings.max_body);
                let (settings, entry) = (Arc::clone(&settings), Arc::clone(&entry));
                let done = move |body: Bytes| {
                    let stored = CachedResponse::new(status, &headers, body, now, lifetime, &settings, hash_body);
                    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
                    rt.spawn(async move {
                        let fresh = lifetime.remaining_ms().saturating_sub(store.cache.now_ms().saturating_sub(now));
                        if fresh > 0 {
                            let (raw, options) = &*entry;
                            let options = options.clone().max_age(Duration::from_millis(fresh)).tags(tags);
                            let options = variants::kept_through_windows(options, &stored);
                            let held =
                                variants::land(&store.cache, raw, &primary, variant, &options, stored, landing).await;
                            variants::hold(&store.cache, raw, held, &options, landing).await;
                        }
                    });
                };
                not.response = not.response.map(|b| b.tee(max, Box::new(done)));
            }
            *passed.lock() = Some(Ok(not.response));
            Ok(Held::Passed)
        }
        Err(mut not) => {
            tracing::debug!(target: "larder", status = not.response.status().as_u16(), reason = %not.reason, "http: response not stored");
            strip_cache_fields(not.response.headers_mut(), &settings);
            *passed.lock() = Some(Ok(not.response));
            Ok(Held::Passed)
        }
    }
}

/// The inner service's answer, with a panic of the handler turned into a `500`.
async fn caught<F, B, E>(call: F) -> Result<Response<CacheBody<B>>, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(res) => res.map(|r| r.map(CacheBody::handler)),
        Err(_) => {
            tracing::error!(target: "larder", "http: the handler panicked; its request gets 500");
            Ok(internal_error())
        }
    }
}

fn internal_error<B: Body>() -> Response<CacheBody<B>> {
    let mut res = Response::new(CacheBody::empty());
    *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    res
}

/// A response the cache did not store, answering the client's preconditions (which the
/// run did not send) as the handler would have.
fn unstored<B: Body>(res: Response<CacheBody<B>>, cond: &Conditional) -> Response<CacheBody<B>> {
    let copied = res.body().is_copied();
    answer_unstored(res, cond, copied, CacheBody::empty())
}

/// Marks a response that was not stored and did not come from the cache.
fn pass<B>(mut res: Response<B>) -> Response<B> {
    res.headers_mut().insert(X_CACHE, CacheStatus::Bypass.header());
    res
}

/// Keeps only the `allow_query` parameters in the URI the handler sees.
fn strip_query(uri: &mut Uri, allow_query: &QueryKeys) {
    let Some(query) = uri.query() else { return };
    if query.split('&').all(|p| allow_query.allows(p)) {
        return;
    }
    let kept: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && allow_query.allows(p)).collect();
    let path_and_query =
        if kept.is_empty() { uri.path().to_owned() } else { format!("{}?{}", uri.path(), kept.join("&")) };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(path_and_query.parse().expect("a subset of a valid path and query"));
    *uri = Uri::from_parts(parts).expect("only the query changed");
}
