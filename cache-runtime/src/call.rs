//! What a call does (SPEC §4): the one implementation behind `#[cached]`.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, resume_unwind};
use std::sync::Arc;

use futures_util::FutureExt as _;

use crate::entry::{Freshness, Policy};
use crate::error::Error;
use crate::flight::{self, Awaited, Join, Leader, Published};
use crate::key::Key;
use crate::memory::{Memory, Slot};
use crate::runtime::{LiveMount, Runtime, with_current};

/// Everything about a cached function that is fixed at compile time.
#[derive(Debug)]
pub struct FnSpec {
    /// `group` as written (may contain `/`).
    pub group: &'static str,
    /// `name`.
    pub name: &'static str,
    /// `{group with / as :}:{name}:`: every key of the function starts with it.
    pub prefix: &'static str,
    /// The mount.
    pub base: &'static str,
    /// xxh3-128 of the function's tokens and semantic options (or of `integrity = "…"`).
    pub integrity: u128,
    /// The time rules.
    pub policy: Policy,
    /// Static tags.
    pub tags: &'static [&'static str],
}

impl FnSpec {
    /// The integrity as stored in entries (32 hex digits).
    pub fn integrity_hex(&self) -> String {
        format!("{:032x}", self.integrity)
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
        ErrShare { to_shared: |_| None, from_shared: |_| None }
    }
}

/// A way to start a background refresh (`swr`), or none. `A` is the arguments' tuple.
pub trait Refresher<A, V, E> {
    /// Whether this refresher can refresh at all.
    const ENABLED: bool;
    /// Starts the refresh as the leader of its key. Returns whether it started.
    #[doc(hidden)]
    fn start(self, args: &A, job: Job<V, E>) -> bool;
}

/// No background refresh: the function has no `swr`.
pub struct NoRefresh;

impl<A, V, E> Refresher<A, V, E> for NoRefresh {
    const ENABLED: bool = false;
    fn start(self, _args: &A, _job: Job<V, E>) -> bool {
        false
    }
}

/// A background refresh: `F` clones the arguments and returns the body as an owned future.
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
    V: Clone + Send + Sync + 'static,
    E: Send + 'static,
{
    const ENABLED: bool = true;
    fn start(self, args: &A, job: Job<V, E>) -> bool {
        let fut = (self.0)(args);
        let rt = job.rt.clone();
        rt.spawn(async move {
            let Job { rt, mount, spec, key, share, leader, .. } = job;
            let run = AssertUnwindSafe(fut).catch_unwind().await;
            match run {
                Ok(Ok(v)) => {
                    store(&rt, &mount, spec, &key, v.clone(), &leader);
                    leader.publish(Published::Value(Box::new(v)));
                    tracing::debug!(target: "larder", group = spec.group, name = spec.name, key = key.as_str(), "refreshed");
                }
                Ok(Err(e)) => {
                    leader.publish(Published::Error((share.to_shared)(&e)));
                    tracing::warn!(target: "larder", group = spec.group, name = spec.name, key = key.as_str(),
                        "background refresh failed; the stale entry is kept until its window ends");
                }
                Err(_) => {
                    leader.publish(Published::Panicked);
                    tracing::error!(target: "larder", group = spec.group, name = spec.name, key = key.as_str(),
                        "background refresh panicked; the stale entry is kept until its window ends");
                }
            }
        })
    }
}

/// What a background refresh needs (built by the runtime, consumed by a [`Refresher`]).
pub struct Job<V, E> {
    rt: Runtime,
    mount: Arc<LiveMount>,
    spec: &'static FnSpec,
    key: Key,
    share: ErrShare<E>,
    leader: Leader,
    _v: PhantomData<fn() -> V>,
}

enum Lookup<V> {
    Fresh(V),
    Stale(V),
    Miss,
}

/// SPEC §4 steps 3–5 against the memory tier.
#[inline]
fn lookup<V: Clone + 'static>(memory: &Memory, spec: &FnSpec, key: &Key, now: u64) -> Lookup<V> {
    memory
        .peek(key.id(), now, |slot| {
            if slot.integrity != spec.integrity || slot.key.as_bytes() != key.as_bytes() {
                return Lookup::Miss;
            }
            let Some(v) = slot.value.downcast_ref::<V>() else { return Lookup::Miss };
            match spec.policy.freshness(slot.mtime, slot.is_expired(), now) {
                Freshness::Fresh => Lookup::Fresh(v.clone()),
                Freshness::Stale => Lookup::Stale(v.clone()),
                Freshness::Expired => Lookup::Miss,
            }
        })
        .unwrap_or(Lookup::Miss)
}

/// Stores a produced value, unless an invalidation arrived while it was produced.
fn store<V: Send + Sync + 'static>(rt: &Runtime, mount: &LiveMount, spec: &FnSpec, key: &Key, v: V, leader: &Leader) {
    if leader.cancelled() {
        return;
    }
    let slot = make_slot(rt, spec, key, v);
    let slot = mount.memory.insert(key.id(), slot);
    // An invalidation between the check above and the insert cancelled the flight first
    // and removes the memory entry second; re-checking here closes the gap.
    if leader.cancelled() {
        mount.memory.remove_if_same(key.id(), &slot);
    }
}

fn make_slot<V: Send + Sync + 'static>(rt: &Runtime, spec: &FnSpec, key: &Key, v: V) -> Slot {
    let tags: Box<[Box<str>]> = spec.tags.iter().map(|t| Box::<str>::from(*t)).collect();
    Slot::new(key.as_str(), Box::new(v), rt.clock().now_ms(), spec.integrity, tags, spec.policy.store_ttl_ms())
}

/// Runs the body as the leader of its key: stores and publishes its outcome.
async fn lead<V, E, Fut>(
    rt: &Runtime,
    mount: &LiveMount,
    spec: &FnSpec,
    key: &Key,
    share: ErrShare<E>,
    leader: Leader,
    fut: Fut,
) -> Result<V, E>
where
    V: Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<V, E>>,
{
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(v)) => {
            store(rt, mount, spec, key, v.clone(), &leader);
            leader.publish(Published::Value(Box::new(v.clone())));
            Ok(v)
        }
        Ok(Err(e)) => {
            leader.publish(Published::Error((share.to_shared)(&e)));
            Err(e)
        }
        Err(panic) => {
            leader.publish(Published::Panicked);
            resume_unwind(panic)
        }
    }
}

enum First<V> {
    Hit(V),
    Go(Runtime, Arc<LiveMount>, Lookup<V>),
}

/// A call of a cached function (SPEC §4).
///
/// `key` is `None` when `should_bypass_cache` said so: the body runs, nothing is read or
/// written. `args` are the arguments (a tuple); `body` runs the function on them in the
/// caller's task; `refresh` makes an owned copy of them for a background refresh.
pub async fn call<A, V, E, B, BF, R>(
    spec: &'static FnSpec,
    key: Option<Key>,
    invalidate: bool,
    share: ErrShare<E>,
    args: A,
    body: B,
    refresh: R,
) -> Result<V, E>
where
    V: Clone + Send + Sync + 'static,
    B: FnOnce(A) -> BF,
    BF: Future<Output = Result<V, E>>,
    R: Refresher<A, V, E>,
{
    let Some(key) = key else {
        tracing::trace!(target: "larder", group = spec.group, name = spec.name, "bypass");
        return body(args).await;
    };
    if !spec.policy.stores() {
        return body(args).await;
    }
    // The hit path: no clone of the runtime, no allocation, one shard read lock.
    let first = with_current(|rt| {
        rt.with_mount(spec.base, |mount| {
            if invalidate {
                return First::Go(rt.clone(), Arc::clone(mount), Lookup::Miss);
            }
            match lookup::<V>(&mount.memory, spec, &key, rt.clock().now_ms()) {
                Lookup::Fresh(v) => First::Hit(v),
                other => First::Go(rt.clone(), Arc::clone(mount), other),
            }
        })
    });
    let (rt, mount, found) = match first {
        First::Hit(v) => {
            tracing::trace!(target: "larder", group = spec.group, name = spec.name, key = key.as_str(), "hit");
            return Ok(v);
        }
        First::Go(rt, mount, found) => (rt, mount, found),
    };
    if invalidate {
        drop_entry(&mount, &key);
    }
    if let Lookup::Stale(v) = found {
        tracing::debug!(target: "larder", group = spec.group, name = spec.name, key = key.as_str(), "stale");
        if R::ENABLED {
            let tags: Box<[Box<str>]> = Box::new([]);
            if let Some(leader) = mount.flights.try_lead(key.id(), key.as_str(), &tags) {
                let job = Job {
                    rt: rt.clone(),
                    mount: Arc::clone(&mount),
                    spec,
                    key: key.clone(),
                    share,
                    leader,
                    _v: PhantomData,
                };
                refresh.start(&args, job);
            }
        }
        return Ok(v);
    }
    tracing::debug!(target: "larder", group = spec.group, name = spec.name, key = key.as_str(), "miss");
    loop {
        match mount.flights.join(key.id(), key.as_str(), &[]) {
            Join::Lead(leader) => {
                // A run may have finished between the lookup and the join.
                if let Lookup::Fresh(v) = lookup::<V>(&mount.memory, spec, &key, rt.clock().now_ms()) {
                    return Ok(v);
                }
                return lead(&rt, &mount, spec, &key, share, leader, body(args)).await;
            }
            Join::Follow(rx) => match flight::wait(rx).await {
                Awaited::Done(published) => match &*published {
                    Published::Value(v) => {
                        if let Some(v) = v.downcast_ref::<V>() {
                            return Ok(v.clone());
                        }
                    }
                    Published::Error(shared) => {
                        if let Some(e) = (share.from_shared)(shared.as_deref()) {
                            return Err(e);
                        }
                    }
                    Published::Panicked => {
                        panic!("the body of the cached function {}:{} panicked in the run this call waited for", spec.group, spec.name)
                    }
                },
                Awaited::Abandoned => {}
            },
        }
    }
}

/// Deletes one entry and cancels its run in flight (the run's result is not stored).
pub(crate) fn drop_entry(mount: &LiveMount, key: &Key) {
    mount.flights.cancel(key.id());
    mount.memory.remove(key.id());
}

/// `NAME_invalidate`: deletes the entry from every tier; a run in flight does not write back.
pub async fn invalidate(spec: &'static FnSpec, key: Key) {
    let mount = with_current(|rt| rt.mount(spec.base));
    drop_entry(&mount, &key);
}

/// `NAME_expire`: the entry stays usable for `swr`, but is no longer fresh.
pub async fn expire(spec: &'static FnSpec, key: Key) {
    with_current(|rt| rt.with_mount(spec.base, |m| m.memory.expire(key.id())));
}

/// `NAME_prime`: stores `value` as if the body had just produced it.
pub async fn prime<V: Send + Sync + 'static>(spec: &'static FnSpec, key: Key, value: V) {
    if !spec.policy.stores() {
        return;
    }
    with_current(|rt| {
        rt.with_mount(spec.base, |mount| {
            mount.flights.cancel(key.id());
            mount.memory.insert(key.id(), make_slot(rt, spec, &key, value));
        })
    });
}

/// `NAME_clear`: deletes every entry of the function.
pub async fn clear_fn(spec: &'static FnSpec) {
    let mount = with_current(|rt| rt.mount(spec.base));
    clear_prefix(&mount, spec.prefix);
}

pub(crate) fn clear_prefix(mount: &LiveMount, prefix: &str) -> usize {
    mount.flights.cancel_where(|key, _| key.starts_with(prefix));
    mount.memory.remove_prefix(prefix)
}

/// Deletes every entry of `group` (and its sub-groups `group/…`) on every mount.
pub async fn clear_group(group: &str) -> usize {
    let prefix = format!("{}:", crate::key::group_segment(group));
    let rt = Runtime::current();
    rt.mounts().iter().map(|m| clear_prefix(m, &prefix)).sum()
}

/// Deletes every entry on every mount.
pub async fn clear() -> usize {
    let rt = Runtime::current();
    rt.mounts().iter().map(|m| clear_prefix(m, "")).sum()
}
