//! What a call does (SPEC §4): the one implementation behind `#[cached]` and the
//! programmatic `get_or_set`. It reads as the algorithm of the spec:
//! bypass → lookup (fresh → hit; stale → answer and refresh; grace in backoff → answer) →
//! single-flight run (soft/hard timeouts) → store, or fall back to grace on error.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt as _;

use crate::entry::{Entry, Freshness, Policy};
use crate::error::Error;
use crate::flight::{self, Awaited, Join, Leader, Published};
use crate::key::{CallKey, Key, KeyIs};
use crate::memory::{NewSlot, Slot};
use crate::runtime::{LiveMount, Runtime, with_current};
use crate::stats::Stats;
use crate::tags::TagVerdict;
use crate::tier::FromL2;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Everything about a cached function (or a `get_or_set` call) that does not change
/// from call to call.
#[derive(Debug, Clone)]
pub struct FnSpec {
    /// `group` as written (may contain `/`).
    pub group: Cow<'static, str>,
    /// `name`.
    pub name: Cow<'static, str>,
    /// Every key of the function starts with it: `{group with / as :}:{name}:`.
    pub prefix: Cow<'static, str>,
    /// [`prefix_id`](crate::key::prefix_id) of `prefix`: default keys' ids are made from it.
    pub prefix_id: u128,
    /// The mount.
    pub base: Cow<'static, str>,
    /// xxh3-128 of the function's tokens and semantic options (or of `integrity = "…"`).
    pub integrity: u128,
    /// The time rules.
    pub policy: Policy,
    /// Static tags.
    pub tags: Cow<'static, [Cow<'static, str>]>,
    /// After a failure answered from grace, the body is not called again for this long.
    pub grace_backoff_ms: u64,
    /// Soft timeout: with a usable stale value, answer with it after this long.
    pub timeout_ms: Option<u64>,
    /// Hard timeout: the call is abandoned after this long.
    pub hard_timeout_ms: Option<u64>,
}

/// A spec that a background task can keep: static (the attribute) or shared (the API).
#[derive(Debug, Clone)]
pub enum SpecRef {
    /// A spec in a `static` of the expansion.
    Static(&'static FnSpec),
    /// A spec built at run time.
    Shared(Arc<FnSpec>),
}

impl Deref for SpecRef {
    type Target = FnSpec;
    #[inline]
    fn deref(&self) -> &FnSpec {
        match self {
            SpecRef::Static(s) => s,
            SpecRef::Shared(s) => s,
        }
    }
}

/// How a body's error reaches the callers that waited for the same run.
///
/// Chosen at compile time by the attribute: an `E: Clone` is cloned to every waiter; an
/// `E: From<larder::Error>` gets [`Error::SharedRunFailed`]; any other error goes only to
/// the caller that ran the body, and each waiter runs it again in turn.
pub struct ErrShare<E> {
    to_shared: fn(&E) -> Option<Box<dyn Any + Send + Sync>>,
    from_shared: fn(Option<&(dyn Any + Send + Sync)>) -> Option<E>,
}

impl<E> Clone for ErrShare<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for ErrShare<E> {}

impl<E> ErrShare<E> {
    /// Waiters of a failed run run the body themselves.
    pub const fn none() -> Self {
        ErrShare { to_shared: |_| None, from_shared: |_| None }
    }
}

/// Selects an [`ErrShare`] by autoref specialization: `(&&&Pick::<E>::new()).err_share()`.
pub struct Pick<E>(PhantomData<fn() -> E>);

impl<E> Pick<E> {
    /// The selector.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Pick(PhantomData)
    }
}

/// First choice: clone the error to every waiter.
pub trait PickClone<E> {
    /// The chosen way.
    fn err_share(&self) -> ErrShare<E>;
}
/// Second choice: waiters get `E::from(Error::SharedRunFailed)`.
pub trait PickFrom<E> {
    /// The chosen way.
    fn err_share(&self) -> ErrShare<E>;
}
/// Last choice: waiters run the body themselves.
pub trait PickNone<E> {
    /// The chosen way.
    fn err_share(&self) -> ErrShare<E>;
}

impl<E: Clone + Send + Sync + 'static> PickClone<E> for &&Pick<E> {
    fn err_share(&self) -> ErrShare<E> {
        ErrShare {
            to_shared: |e| Some(Box::new(e.clone())),
            from_shared: |s| s.and_then(|s| s.downcast_ref::<E>()).cloned(),
        }
    }
}

impl<E: From<Error>> PickFrom<E> for &Pick<E> {
    fn err_share(&self) -> ErrShare<E> {
        ErrShare { to_shared: |_| None, from_shared: |_| Some(E::from(Error::SharedRunFailed)) }
    }
}

impl<E> PickNone<E> for Pick<E> {
    fn err_share(&self) -> ErrShare<E> {
        ErrShare::none()
    }
}

/// What larder does with a body's errors: share them, and make one on `hard_timeout`.
pub struct Errors<E> {
    /// How waiters get the error.
    pub share: ErrShare<E>,
    /// Makes the error of a call abandoned after `hard_timeout`.
    pub timeout: Option<fn() -> E>,
}

impl<E> Clone for Errors<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Errors<E> {}

/// Whether and how long to keep one produced value (the HTTP layer decides per response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// As the policy says.
    Default,
    /// Fresh for this many milliseconds instead of the policy's `max_age`.
    MaxAge(u64),
    /// Not stored (still handed to every waiter of the run).
    Skip,
}

/// How a call was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A fresh entry.
    Hit,
    /// A stale entry (`swr`); a background refresh was started.
    Stale,
    /// The body ran (here or in a concurrent caller).
    Miss,
    /// An old entry, because the body failed, was backed off or timed out.
    Grace,
    /// `should_bypass_cache`: nothing read or written.
    Bypass,
}

/// Tags computed from the arguments (`tags = |…| …`), or none.
pub trait TagSource<A> {
    /// The tags of this call.
    fn tags(self, args: &A) -> Vec<String>;
}

/// No tags beyond the static ones.
pub struct NoTags;

impl<A> TagSource<A> for NoTags {
    fn tags(self, _: &A) -> Vec<String> {
        Vec::new()
    }
}

/// Tags from a closure over the arguments.
pub struct DynTags<F>(F);

/// Wraps the tags closure (here, so that its signature is inferred from the bound).
pub fn dyn_tags<A, F: FnOnce(&A) -> Vec<String>>(f: F) -> DynTags<F> {
    DynTags(f)
}

impl<A, F: FnOnce(&A) -> Vec<String>> TagSource<A> for DynTags<F> {
    fn tags(self, args: &A) -> Vec<String> {
        (self.0)(args)
    }
}

/// A way to run the body in the background (`swr`, `timeout`), or none.
pub trait Refresher<A, V, E> {
    /// Whether this refresher can run in the background at all.
    const ENABLED: bool;
    /// Starts the run as the leader of its key. Returns whether it started.
    #[doc(hidden)]
    fn start(self, args: &A, job: Job<V, E>) -> bool;
}

/// No background run: the function has neither `swr` nor `timeout`.
pub struct NoRefresh;

impl<A, V, E> Refresher<A, V, E> for NoRefresh {
    const ENABLED: bool = false;
    fn start(self, _args: &A, _job: Job<V, E>) -> bool {
        false
    }
}

/// A background run: `F` clones the arguments and returns the body as an owned future.
pub struct SpawnRefresh<F>(F);

/// Wraps the refresh closure (here, so that its signature is inferred from the bound).
pub fn spawn_refresh<A, F, Fut>(f: F) -> SpawnRefresh<F>
where
    F: FnOnce(&A) -> Fut,
{
    SpawnRefresh(f)
}

impl<A, V, E, F, Fut> Refresher<A, V, E> for SpawnRefresh<F>
where
    F: FnOnce(&A) -> Fut,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
    E: Send + 'static,
{
    const ENABLED: bool = true;
    fn start(self, args: &A, job: Job<V, E>) -> bool {
        let fut = (self.0)(args);
        let rt = job.ctx.rt.clone();
        rt.spawn(async move {
            let Job { ctx, errors, leader, .. } = job;
            let _ = ctx.run(errors, leader, fut).await;
        })
    }
}

/// What a background run needs (built by the runtime, consumed by a [`Refresher`]).
pub struct Job<V, E> {
    ctx: Ctx,
    errors: Errors<E>,
    leader: Leader,
    _v: PhantomData<fn() -> V>,
}

/// The context of one call: where it stores, under which key, with which tags.
#[derive(Clone)]
struct Ctx {
    rt: Runtime,
    mount: Arc<LiveMount>,
    spec: SpecRef,
    key: Key,
    tags: Arc<[Box<str>]>,
    stats: Arc<Stats>,
    /// Per-value storage decision.
    storage: Option<StorageFn>,
}

/// What was stored in the memory tier, for the L2 copy.
#[derive(Clone, Copy)]
struct Stored {
    mtime: u64,
    expires: u64,
    ttl_ms: Option<u64>,
}

type StorageFn = Arc<dyn Fn(&(dyn Any + Send + Sync)) -> Storage + Send + Sync>;

impl Ctx {
    fn log(&self, level: tracing::Level, what: &str) {
        let (group, name, key) = (&*self.spec.group, &*self.spec.name, self.key.as_str());
        match level {
            tracing::Level::WARN => tracing::warn!(target: "larder", group, name, key, "{what}"),
            tracing::Level::ERROR => tracing::error!(target: "larder", group, name, key, "{what}"),
            tracing::Level::DEBUG => tracing::debug!(target: "larder", group, name, key, "{what}"),
            _ => tracing::trace!(target: "larder", group, name, key, "{what}"),
        }
    }

    /// Runs the body as the leader of the key: applies `hard_timeout`, stores a value,
    /// publishes the outcome to the followers. A panic is published, then resumed.
    async fn run<V, E, Fut>(&self, errors: Errors<E>, leader: Leader, fut: Fut) -> Result<V, E>
    where
        V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
        Fut: Future<Output = Result<V, E>>,
    {
        let seq = leader.seq();
        self.stats.runs.incr();
        let outcome = match (self.spec.hard_timeout_ms, errors.timeout) {
            (Some(ms), Some(make)) => {
                match tokio::time::timeout(Duration::from_millis(ms), AssertUnwindSafe(fut).catch_unwind()).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        self.log(tracing::Level::WARN, "abandoned after hard_timeout");
                        Ok(Err(make()))
                    }
                }
            }
            _ => AssertUnwindSafe(fut).catch_unwind().await,
        };
        match outcome {
            Ok(Ok(v)) => {
                let stored = self.store(v.clone(), seq, Some(&leader));
                leader.publish(Published::Value(Box::new(v.clone())));
                if let Some(stored) = stored {
                    self.write_l2(&v, stored).await;
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                self.stats.errors.incr();
                leader.publish(Published::Error((errors.share.to_shared)(&e)));
                Err(e)
            }
            Err(panic) => {
                self.log(tracing::Level::ERROR, "the body panicked");
                leader.publish(Published::Panicked);
                resume_unwind(panic)
            }
        }
    }

    /// Stores a produced value, unless an invalidation arrived while it was produced.
    fn store<V: Send + Sync + 'static>(&self, v: V, seq: u64, leader: Option<&Leader>) -> Option<Stored> {
        if leader.is_some_and(Leader::cancelled) {
            return None;
        }
        let policy = &self.spec.policy;
        let max_age = match self.storage.as_ref().map_or(Storage::Default, |decide| decide(&v)) {
            Storage::Skip => return None,
            Storage::MaxAge(ms) => ms,
            Storage::Default => policy.max_age_ms,
        };
        let ttl_ms = Policy { max_age_ms: max_age, ..*policy }.store_ttl_ms();
        let now = self.rt.clock().stamp_ms();
        let slot = Slot::new(NewSlot {
            key: self.key.as_str(),
            value: Box::new(v),
            mtime: now,
            expires: now.saturating_add(max_age),
            integrity: self.spec.integrity,
            tags: self.tags.iter().cloned().collect(),
            seq,
            ttl_ms,
            stats: Some(Arc::clone(&self.stats)),
        });
        let slot = self.mount.memory.insert(self.key.id(), slot);
        // An invalidation between the check above and the insert cancelled the flight
        // first and removes the memory entry second; re-checking here closes the gap.
        if leader.is_some_and(Leader::cancelled) {
            self.mount.memory.remove_if_same(self.key.id(), &slot);
            return None;
        }
        Some(Stored { mtime: now, expires: now.saturating_add(max_age), ttl_ms })
    }

    /// Writes a stored value to L2 (if the mount has one).
    async fn write_l2<V: Serialize>(&self, v: &V, stored: Stored) {
        if self.mount.l2.is_none() {
            return;
        }
        let entry = Entry {
            value: v,
            mtime: stored.mtime,
            expires: stored.expires,
            integrity: format!("{:032x}", self.spec.integrity),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
        };
        self.mount.write_l2(&self.key, &entry, stored.ttl_ms).await;
    }

    /// Starts the grace backoff of the entry: the body is not called again for a while.
    fn back_off(&self) {
        if let Some(slot) = self.mount.memory.get(self.key.id()) {
            let until = self.rt.clock().now_ms().saturating_add(self.spec.grace_backoff_ms);
            slot.backoff_until.store(until, Ordering::Relaxed);
        }
    }

    fn answer_from_grace<V>(&self, value: V, why: &str) -> V {
        self.stats.grace.incr();
        self.log(tracing::Level::WARN, why);
        value
    }
}

pub(crate) enum Lookup<V> {
    Fresh(V),
    Stale(V),
    /// Past every window but `grace`: usable only if the body fails (or is backed off).
    Grace {
        value: V,
        backing_off: bool,
    },
    Miss,
}

/// SPEC §4 steps 3–5 (and the grace window of step 6) against the memory tier.
#[inline]
fn lookup<V: Clone + 'static>(
    mount: &LiveMount,
    spec: &FnSpec,
    (id, key): (u128, KeyIs<'_>),
    now: u64,
    count_hit: bool,
) -> Lookup<V> {
    mount
        .memory
        .peek(id, now, |slot| {
            let Some((v, expired)) = readable::<V>(mount, slot, key, Some(spec.integrity)) else { return Lookup::Miss };
            // Each entry keeps the max_age it was stored with (an HTTP response may carry its own).
            let policy = Policy { max_age_ms: slot.expires.saturating_sub(slot.mtime), ..spec.policy };
            match policy.freshness(slot.mtime, expired, now) {
                Freshness::Fresh => {
                    if count_hit && let Some(stats) = &slot.stats {
                        stats.hits.incr();
                    }
                    Lookup::Fresh(v.clone())
                }
                Freshness::Stale => Lookup::Stale(v.clone()),
                Freshness::Expired if policy.within_grace(slot.mtime, now) => {
                    Lookup::Grace { value: v.clone(), backing_off: slot.backoff_until.load(Ordering::Relaxed) > now }
                }
                Freshness::Expired => Lookup::Miss,
            }
        })
        .unwrap_or(Lookup::Miss)
}

/// SPEC §4 step 3 for one memory slot: the value, if the slot is this key's entry of type
/// `V` (with this integrity, when one is given) and none of its tags was invalidated after
/// it was stored; with whether it was expired by hand or by a tag.
#[inline]
fn readable<'s, V: 'static>(
    mount: &LiveMount,
    slot: &'s Slot,
    key: KeyIs<'_>,
    integrity: Option<u128>,
) -> Option<(&'s V, bool)> {
    if integrity.is_some_and(|i| i != slot.integrity) || !slot.is(key) {
        return None;
    }
    let v = slot.value.downcast_ref::<V>()?;
    match mount.tags.check(&slot.tag_ids, slot.seq) {
        TagVerdict::Valid => Some((v, slot.is_expired())),
        TagVerdict::Expired => Some((v, true)),
        TagVerdict::Invalid => None,
    }
}

/// A fresh value of the memory tier, judged by the `max_age` it was stored with (the
/// programmatic API and the HTTP layer's fast path). A hit is counted when `count_hit`.
pub(crate) fn fresh_in_memory<V: Clone + 'static>(
    mount: &LiveMount,
    key: &Key,
    integrity: Option<u128>,
    now: u64,
    count_hit: bool,
) -> Option<V> {
    mount
        .memory
        .peek(key.id(), now, |slot| {
            let (v, expired) = readable::<V>(mount, slot, key.is(), integrity)?;
            let policy = Policy::max_age(Duration::from_millis(slot.expires.saturating_sub(slot.mtime)));
            if policy.freshness(slot.mtime, expired, now) != Freshness::Fresh {
                return None;
            }
            if count_hit && let Some(stats) = &slot.stats {
                stats.hits.incr();
            }
            Some(v.clone())
        })
        .flatten()
}

/// Puts an entry read from L2 into the memory tier (for the rest of its life under the
/// windows of `spec`, with the integrity it was written with) and says what it is worth
/// now. `None` when it is worth nothing.
pub(crate) fn fill_from_l2<V: Clone + Send + Sync + 'static>(
    rt: &Runtime,
    mount: &LiveMount,
    spec: &FnSpec,
    key: &Key,
    l2: FromL2<V>,
    stats: &Arc<Stats>,
) -> Option<Lookup<V>> {
    let now = rt.clock().now_ms();
    let e = l2;
    let policy = Policy { max_age_ms: e.expires.saturating_sub(e.mtime), ..spec.policy };
    let lookup = match policy.freshness(e.mtime, e.expired, now) {
        Freshness::Fresh => Lookup::Fresh(e.value.clone()),
        Freshness::Stale => Lookup::Stale(e.value.clone()),
        Freshness::Expired if policy.within_grace(e.mtime, now) => {
            Lookup::Grace { value: e.value.clone(), backing_off: false }
        }
        Freshness::Expired => return None,
    };
    let age = now.saturating_sub(e.mtime);
    let slot = Slot::new(NewSlot {
        key: key.as_str(),
        value: Box::new(e.value),
        mtime: e.mtime,
        expires: e.expires,
        // `read_l2` has checked it against the caller's integrity, when it had one.
        integrity: e.integrity.unwrap_or(spec.integrity),
        tags: e.tags.into_iter().collect(),
        seq: mount.next_seq(),
        ttl_ms: policy.store_ttl_ms().map(|ttl| ttl.saturating_sub(age).max(1)),
        stats: Some(Arc::clone(stats)),
    });
    if e.expired {
        slot.expired.store(true, Ordering::Relaxed);
    }
    mount.memory.insert(key.id(), slot);
    Some(lookup)
}

/// The hit path of `#[cached]`, before any future is built: the value of a fresh entry of
/// the memory tier, or `None` for everything else (stale, grace, L2, a miss), which is for
/// [`call`] to decide. A hash, a shard read lock and a freshness check: no allocation, no
/// async lock, no system call.
#[inline]
pub fn hit<V: Clone + 'static>(spec: &FnSpec, key: &CallKey) -> Option<V> {
    if !spec.policy.stores() {
        return None;
    }
    with_current(|rt| {
        rt.with_mount(&spec.base, |mount| {
            match lookup::<V>(mount, spec, (key.id(), key.is(&spec.prefix)), rt.clock().now_ms(), true) {
                Lookup::Fresh(v) => {
                    tracing::trace!(target: "larder", group = &*spec.group, name = &*spec.name, "hit");
                    Some(v)
                }
                _ => None,
            }
        })
    })
}

enum First<V> {
    Hit(V),
    Go(Runtime, Arc<LiveMount>, Lookup<V>),
}

/// A call (SPEC §4): [`call_full`] without a storage decision, returning only the result.
/// Not an `async fn` of its own: the future is `call_full`'s, mapped, so a hit pays for
/// one state machine, not two.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn call<A, V, E, B, BF, R, T>(
    spec: SpecRef,
    key: Option<Key>,
    invalidate: bool,
    errors: Errors<E>,
    args: A,
    body: B,
    refresh: R,
    tags: T,
) -> impl Future<Output = Result<V, E>>
where
    V: Clone + Send + Sync + 'static,
    B: FnOnce(A) -> BF,
    BF: Future<Output = Result<V, E>>,
    R: Refresher<A, V, E>,
    T: TagSource<A>,
    V: Serialize + DeserializeOwned,
{
    fn result<V, E>((result, _): (Result<V, E>, Answer)) -> Result<V, E> {
        result
    }
    call_full(spec, key, invalidate, errors, None, args, body, refresh, tags).map(result)
}

/// A call (SPEC §4), and how it was answered.
///
/// `key` is `None` when `should_bypass_cache` said so: the body runs, nothing is read or
/// written. `storage` decides per produced value whether and how long to keep it. `args`
/// are the arguments (a tuple); `body` runs the function on them in the caller's task;
/// `refresh` makes an owned copy of them for a background run; `tags` computes the call's
/// dynamic tags (only when the body is about to run).
#[allow(clippy::too_many_arguments)]
pub async fn call_full<A, V, E, B, BF, R, T>(
    spec: SpecRef,
    key: Option<Key>,
    invalidate: bool,
    errors: Errors<E>,
    storage: Option<fn(&V) -> Storage>,
    args: A,
    body: B,
    refresh: R,
    tags: T,
) -> (Result<V, E>, Answer)
where
    V: Clone + Send + Sync + 'static,
    B: FnOnce(A) -> BF,
    BF: Future<Output = Result<V, E>>,
    R: Refresher<A, V, E>,
    T: TagSource<A>,
    V: Serialize + DeserializeOwned,
{
    let Some(key) = key else {
        tracing::trace!(target: "larder", group = &*spec.group, name = &*spec.name, "bypass");
        return (body(args).await, Answer::Bypass);
    };
    if !spec.policy.stores() {
        return (body(args).await, Answer::Bypass);
    }
    // The hit path: no clone of the runtime, no allocation, one shard read lock.
    let first = with_current(|rt| {
        rt.with_mount(&spec.base, |mount| {
            if invalidate {
                return First::Go(rt.clone(), Arc::clone(mount), Lookup::Miss);
            }
            match lookup::<V>(mount, &spec, (key.id(), key.is()), rt.clock().now_ms(), true) {
                Lookup::Fresh(v) => First::Hit(v),
                other => First::Go(rt.clone(), Arc::clone(mount), other),
            }
        })
    });
    let (rt, mount, found) = match first {
        First::Hit(v) => {
            tracing::trace!(target: "larder", group = &*spec.group, name = &*spec.name, key = key.as_str(), "hit");
            return (Ok(v), Answer::Hit);
        }
        First::Go(rt, mount, found) => (rt, mount, found),
    };
    if invalidate {
        mount.delete(&key).await;
    }
    // L2: on a memory miss (or an entry only good for grace), the store may have a
    // better entry, for example one written by another instance.
    let stats = rt.stats_for(&spec.prefix);
    let found = match found {
        Lookup::Miss | Lookup::Grace { .. } if mount.l2.is_some() && !invalidate => {
            match mount.read_l2::<V>(&key, Some(spec.integrity)).await {
                Some(l2) => fill_from_l2(&rt, &mount, &spec, &key, l2, &stats).unwrap_or(found),
                None => found,
            }
        }
        other => other,
    };
    if let Lookup::Fresh(v) = found {
        return (Ok(v), Answer::Hit);
    }
    let mut all_tags: Vec<Box<str>> = spec.tags.iter().map(|t| Box::<str>::from(&**t)).collect();
    let storage = storage.map(|decide| -> StorageFn {
        Arc::new(move |v: &(dyn Any + Send + Sync)| v.downcast_ref::<V>().map_or(Storage::Default, decide))
    });
    let grace = match found {
        Lookup::Stale(v) => {
            stats.stale.incr();
            if R::ENABLED && !mount.flights.is_running(key.id()) {
                all_tags.extend(tags.tags(&args).into_iter().map(String::into_boxed_str));
                let ctx = Ctx { rt, mount, spec, key, tags: all_tags.into(), stats, storage };
                ctx.log(tracing::Level::DEBUG, "stale: refreshing in the background");
                if let Some(leader) =
                    ctx.mount.flights.try_lead(ctx.key.id(), ctx.key.as_str(), &ctx.tags, ctx.mount.next_seq())
                {
                    refresh.start(&args, Job { ctx: ctx.clone(), errors, leader, _v: PhantomData });
                }
            }
            return (Ok(v), Answer::Stale);
        }
        Lookup::Grace { value, backing_off: true } => {
            let ctx = Ctx { rt, mount, spec, key, tags: all_tags.into(), stats, storage };
            return (
                Ok(ctx.answer_from_grace(value, "grace: the body failed recently and is backed off")),
                Answer::Grace,
            );
        }
        Lookup::Grace { value, backing_off: false } => Some(value),
        Lookup::Fresh(v) => return (Ok(v), Answer::Hit),
        Lookup::Miss => None,
    };
    stats.misses.incr();
    all_tags.extend(tags.tags(&args).into_iter().map(String::into_boxed_str));
    let ctx = Ctx { rt, mount, spec, key, tags: all_tags.into(), stats, storage };
    ctx.log(tracing::Level::DEBUG, "miss");
    loop {
        match ctx.mount.flights.join(ctx.key.id(), ctx.key.as_str(), &ctx.tags, ctx.mount.next_seq()) {
            Join::Lead(leader) => {
                // A run may have finished between the lookup and the join.
                let (now, key) = (ctx.rt.clock().now_ms(), (ctx.key.id(), ctx.key.is()));
                if let Lookup::Fresh(v) = lookup::<V>(&ctx.mount, &ctx.spec, key, now, false) {
                    return (Ok(v), Answer::Hit);
                }
                if let (Some(ms), Some(stale), true) = (ctx.spec.timeout_ms, &grace, R::ENABLED) {
                    // Soft timeout: run in the background, answer with the stale value if
                    // the run takes longer than `timeout`; the run stores its result anyway.
                    let rx = leader.subscribe();
                    refresh.start(&args, Job { ctx: ctx.clone(), errors, leader, _v: PhantomData });
                    let waited = tokio::time::timeout(Duration::from_millis(ms), flight::wait(rx)).await;
                    let answered = match waited {
                        Ok(Awaited::Done(p)) => match &*p {
                            Published::Value(v) if v.is::<V>() => {
                                return (Ok(v.downcast_ref::<V>().expect("checked").clone()), Answer::Miss);
                            }
                            _ => {
                                ctx.back_off();
                                ctx.answer_from_grace(stale.clone(), "grace: the body failed")
                            }
                        },
                        Ok(Awaited::Abandoned) => ctx.answer_from_grace(stale.clone(), "grace: the run was abandoned"),
                        Err(_) => ctx.answer_from_grace(stale.clone(), "timeout: answered with the stale value"),
                    };
                    return (Ok(answered), Answer::Grace);
                }
                return match ctx.run(errors, leader, body(args)).await {
                    Ok(v) => (Ok(v), Answer::Miss),
                    Err(_) if grace.is_some() => {
                        ctx.back_off();
                        (Ok(ctx.answer_from_grace(grace.expect("checked"), "grace: the body failed")), Answer::Grace)
                    }
                    Err(e) => (Err(e), Answer::Miss),
                };
            }
            Join::Follow(rx) => match flight::wait(rx).await {
                Awaited::Done(published) => match &*published {
                    Published::Value(v) => {
                        if let Some(v) = v.downcast_ref::<V>() {
                            return (Ok(v.clone()), Answer::Miss);
                        }
                    }
                    Published::Error(shared) => {
                        if let Some(stale) = grace {
                            return (Ok(ctx.answer_from_grace(stale, "grace: the body failed")), Answer::Grace);
                        }
                        if let Some(e) = (errors.share.from_shared)(shared.as_deref()) {
                            return (Err(e), Answer::Miss);
                        }
                    }
                    Published::Panicked => panic!(
                        "the body of the cached function {}:{} panicked in the run this call waited for",
                        ctx.spec.group, ctx.spec.name
                    ),
                },
                Awaited::Abandoned => {}
            },
        }
    }
}

fn mount_of(spec: &FnSpec) -> Arc<LiveMount> {
    with_current(|rt| rt.mount(&spec.base))
}

/// `NAME_invalidate`: deletes the entry from every tier; a run in flight does not write back.
pub async fn invalidate(spec: SpecRef, key: Key) {
    mount_of(&spec).delete(&key).await;
}

/// `NAME_expire`: the entry stays usable for `swr`/`grace`, but is no longer fresh.
pub async fn expire(spec: SpecRef, key: Key) {
    mount_of(&spec).expire(&key).await;
}

/// `NAME_prime`: stores `value` as if the body had just produced it.
pub async fn prime<V>(spec: SpecRef, key: Key, value: V, tags: Vec<String>)
where
    V: Send + Sync + 'static + Serialize,
{
    let rt = Runtime::current();
    let mount = rt.mount(&spec.base);
    prime_in(rt, mount, spec, key, value, tags).await;
}

/// Stores `value` in `mount` as if just produced; a run in flight for the key won't overwrite it.
pub(crate) async fn prime_in<V>(
    rt: Runtime,
    mount: Arc<LiveMount>,
    spec: SpecRef,
    key: Key,
    value: V,
    tags: Vec<String>,
) where
    V: Send + Sync + 'static + Serialize,
{
    if !spec.policy.stores() {
        return;
    }
    mount.flights.cancel(key.id());
    let stats = rt.stats_for(&spec.prefix);
    let tags: Vec<Box<str>> =
        spec.tags.iter().map(|t| Box::<str>::from(&**t)).chain(tags.into_iter().map(String::into_boxed_str)).collect();
    let seq = mount.next_seq();
    let ctx = Ctx { rt, mount, spec, key, tags: tags.into(), stats, storage: None };
    if ctx.mount.l2.is_some() {
        let json = serde_json::to_value(&value).ok();
        if let Some(stored) = ctx.store(value, seq, None)
            && let Some(json) = json
        {
            ctx.write_l2(&json, stored).await;
        }
    } else {
        ctx.store(value, seq, None);
    }
}

/// `NAME_clear`: deletes every entry of the function.
pub async fn clear_fn(spec: SpecRef) {
    mount_of(&spec).clear_prefix(&spec.prefix).await;
}

/// `NAME_stats`: the counters of the function in the runtime in force.
pub fn stats(spec: SpecRef) -> crate::CacheStats {
    with_current(|rt| rt.stats(&spec.prefix))
}

/// Deletes every entry of `group` (and of its sub-groups `group/…`) on every mount.
pub async fn clear_group(group: &str) -> usize {
    let prefix = format!("{}:", crate::key::group_segment(group));
    let mut n = 0;
    for mount in Runtime::current().mounts() {
        n += mount.clear_prefix(&prefix).await;
    }
    n
}

/// Deletes every entry on every mount.
pub async fn clear() -> usize {
    let mut n = 0;
    for mount in Runtime::current().mounts() {
        n += mount.clear_prefix("").await;
    }
    n
}

/// Invalidates every entry tagged `tag`, on every mount: they become misses. Costs the same
/// whatever the number of entries (they are checked when read). Runs in flight with that
/// tag don't store their results.
pub async fn invalidate_tag(tag: &str) {
    let rt = Runtime::current();
    let now = rt.clock().stamp_ms();
    for mount in rt.mounts() {
        mount.tag_event(tag, true, now).await;
    }
}

/// Expires every entry tagged `tag`, on every mount: they are no longer fresh, but still
/// usable under `swr` and `grace`.
pub async fn expire_tag(tag: &str) {
    let rt = Runtime::current();
    let now = rt.clock().stamp_ms();
    for mount in rt.mounts() {
        mount.tag_event(tag, false, now).await;
    }
}
