//! What a call does: the one implementation behind `#[cached]`, the programmatic
//! `get_or_set` and the HTTP layer. It reads as the algorithm:
//! bypass → lookup (fresh → hit; stale → answer and refresh; grace in backoff → answer) →
//! L2 → single-flight run (soft/hard timeouts) → store, or fall back to grace on error.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::context::{Context, StorageFn, spec_tags, weigher_of};
use crate::call::lookup::{Lookup, fill_from_l2, lookup};
use crate::call::outcome::{Answer, Storage};
use crate::call::share::Errors;
use crate::call::spec::SpecRef;
use crate::call::strategy::{Job, Refresher, TagSource};
use crate::call::this_entry::inside_run_of;
use crate::key::storage_key::Key;
use crate::mount::flights::{self, Awaited, Join, Published};
use crate::runtime::with_current;

/// One call: everything it is given. The expansion of `#[cached]`, `Cache::get_or_set` and
/// the HTTP layer each build one and [`run`](Call::run) it.
///
/// `key` is `None` when `should_bypass_cache` said so: the body runs, nothing is read or
/// written. `invalidate` deletes the entry first (`should_invalidate`). `storage` decides
/// per produced value whether and how long to keep it. `args` are the arguments (a tuple);
/// `body` runs the function on them in the caller's task; `refresh` makes an owned copy of
/// them for a background run; `tags` computes the call's dynamic tags (only when the body
/// is about to run). `read_l2` is false when the caller has just read L2 for this key (a
/// batch: `NAME_many` reads every key's entry in one round trip first).
pub struct Call<A, V, E, B, R, T> {
    /// The function's spec.
    pub spec: SpecRef,
    /// The key, or `None` to bypass the cache.
    pub key: Option<Key>,
    /// Delete the entry before the lookup.
    pub invalidate: bool,
    /// How the body's errors are shared, and made on `hard_timeout`.
    pub errors: Errors<E>,
    /// A per-value storage decision.
    pub storage: Option<fn(&V) -> Storage>,
    /// What a value weighs in a memory tier bounded by bytes, when not its JSON's size.
    pub weigh: Option<fn(&V) -> usize>,
    /// The arguments.
    pub args: A,
    /// The body, run in the caller's task.
    pub body: B,
    /// The body, run in the background (or [`NoRefresh`](crate::call::strategy::NoRefresh)).
    pub refresh: R,
    /// The dynamic tags (or [`NoTags`](crate::call::strategy::NoTags)).
    pub tags: T,
    /// Read L2 on a memory miss (false: the caller has just read it).
    pub read_l2: bool,
}

/// How a call starts, decided before its first `.await`.
// Taken apart as soon as it is made: boxing the large variant would allocate on every miss.
#[allow(clippy::large_enum_variant)]
enum Start<V> {
    /// `should_bypass_cache` said so, or the function stores nothing: run the body.
    Bypass,
    /// A fresh value in the memory tier.
    Hit(V),
    /// Everything else, with what the memory tier holds.
    Go(Context, Lookup<V>),
}

/// The start of a call: bypass, a hit in the memory tier, or the context to go on with.
/// The hit path clones no runtime, allocates nothing and takes no lock.
fn begin<V: Clone + Send + Sync + 'static>(
    spec: SpecRef,
    key: Option<Key>,
    invalidate: bool,
    storage: Option<fn(&V) -> Storage>,
    weigh: Option<fn(&V) -> usize>,
) -> Start<V> {
    let Some(key) = key else {
        tracing::trace!(target: "larder", group = &*spec.group, name = &*spec.name, "bypass");
        return Start::Bypass;
    };
    if !spec.policy.stores() {
        return Start::Bypass;
    }
    with_current(|rt| {
        let looked = rt.with_mount_of(&spec, |mount| {
            if invalidate {
                return Ok((Arc::clone(mount), Lookup::Miss));
            }
            match lookup::<V>(mount, &spec, (key.id(), key.is()), rt.clock().now_ms(), true) {
                Lookup::Fresh(v) => Err(v),
                other => Ok((Arc::clone(mount), other)),
            }
        });
        let (mount, found) = match looked {
            Ok(go) => go,
            Err(v) => {
                tracing::trace!(target: "larder", group = &*spec.group, name = &*spec.name, key = key.as_str(), "hit");
                return Start::Hit(v);
            }
        };
        let storage = storage.map(|decide| -> StorageFn {
            Arc::new(move |v: &(dyn Any + Send + Sync)| v.downcast_ref::<V>().map_or(Storage::Default, decide))
        });
        let ctx = Context {
            stats: rt.stats_for(&spec),
            rt: rt.clone(),
            mount,
            tags: spec_tags(&spec),
            spec,
            key,
            storage,
            weigher: weigh.map(weigher_of),
        };
        Start::Go(ctx, found)
    })
}

impl<A, V, E, B, BF, R, T> Call<A, V, E, B, R, T>
where
    V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
    B: FnOnce(A) -> BF,
    BF: Future<Output = Result<V, E>>,
    R: Refresher<A, V, E>,
    T: TagSource<A>,
{
    /// The call's result only. Not an `async fn` of its own: the future is
    /// [`run`](Self::run)'s, mapped, so a hit pays for one state machine, not two.
    #[inline]
    pub fn result(self) -> impl Future<Output = Result<V, E>> {
        fn result<V, E>((result, _): (Result<V, E>, Answer)) -> Result<V, E> {
            result
        }
        self.run().map(result)
    }

    /// The call's result, and how it was answered.
    pub async fn run(self) -> (Result<V, E>, Answer) {
        // Everything up to the first `.await` is in a block of its own, and the key goes
        // straight into the call's `Context`: the future then holds the key once, not once
        // more for each binding it passed through.
        let (mut ctx, found, errors, args, body, refresh, tags, invalidate, read_l2) = {
            let Call { spec, key, invalidate, errors, storage, weigh, args, body, refresh, tags, read_l2 } = self;
            match begin::<V>(spec, key, invalidate, storage, weigh) {
                Start::Go(ctx, found) => (ctx, found, errors, args, body, refresh, tags, invalidate, read_l2),
                Start::Hit(v) => return (Ok(v), Answer::Hit),
                Start::Bypass => return (body(args).await, Answer::Bypass),
            }
        };
        if invalidate {
            // Boxed, like the L2 read below: rare, and large futures.
            Box::pin(ctx.mount.delete(&ctx.key)).await;
        }
        // L2: on a memory miss (or an entry only good for grace), the store may have a
        // better entry, for example one written by another instance.
        let found = match found {
            Lookup::Miss | Lookup::Grace { .. } if read_l2 && ctx.mount.l2.is_some() && !invalidate => {
                match Box::pin(ctx.mount.read_l2::<V>(&ctx.key, Some(ctx.spec.integrity))).await {
                    Some(l2) => fill_from_l2(&ctx.rt, &ctx.mount, &ctx.spec, &ctx.key, l2, &ctx.stats).unwrap_or(found),
                    None => found,
                }
            }
            other => other,
        };
        if let Lookup::Fresh(v) = found {
            return (Ok(v), Answer::Hit);
        }
        let ahead = matches!(found, Lookup::RefreshAhead(_));
        let grace = match found {
            // Stale, or fresh but due for a refresh ahead: answered now, refreshed behind.
            Lookup::Stale(v) | Lookup::RefreshAhead(v) => {
                if !ahead {
                    ctx.stats.stale();
                }
                if R::ENABLED && !ctx.mount.flights.is_running(ctx.key.id()) {
                    ctx.add_tags(tags.tags(&args));
                    let what = if ahead { "refreshing ahead of expiry" } else { "stale: refreshing in the background" };
                    ctx.log(tracing::Level::DEBUG, what);
                    if let Some(leader) = ctx.mount.flights.try_lead(&ctx.key, &ctx.tags, ctx.mount.ticket()) {
                        // A refresh that landed since the lookup leaves nothing to refresh.
                        if ctx.fresh_now::<V>().is_none() {
                            refresh.start(&args, Job::new(ctx.clone(), errors, leader));
                        }
                    }
                }
                return (Ok(v), if ahead { Answer::Hit } else { Answer::Stale });
            }
            Lookup::Grace { value, backing_off: true } => {
                return (
                    Ok(ctx.answer_from_grace(value, "grace: the body failed recently and is backed off")),
                    Answer::Grace,
                );
            }
            Lookup::Grace { value, backing_off: false } => Some(value),
            Lookup::Fresh(v) => return (Ok(v), Answer::Hit),
            Lookup::Miss => None,
        };
        ctx.stats.miss();
        ctx.add_tags(tags.tags(&args));
        ctx.log(tracing::Level::DEBUG, "miss");
        loop {
            match ctx.mount.flights.join(&ctx.key, &ctx.tags, ctx.mount.ticket()) {
                Join::Lead(leader) => {
                    // A run may have finished between the lookup and the join.
                    if let Some(v) = ctx.fresh_now::<V>() {
                        return (Ok(v), Answer::Hit);
                    }
                    if let (Some(ms), Some(stale), true) = (ctx.spec.timeout_ms, &grace, R::ENABLED) {
                        // Soft timeout: run in the background, answer with the stale value if
                        // the run takes longer than `timeout`; the run stores its result anyway.
                        let rx = leader.subscribe();
                        refresh.start(&args, Job::new(ctx.clone(), errors, leader));
                        let waited = tokio::time::timeout(Duration::from_millis(ms), flights::wait(rx)).await;
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
                            Ok(Awaited::Abandoned) => {
                                ctx.answer_from_grace(stale.clone(), "grace: the run was abandoned")
                            }
                            Err(_) => ctx.answer_from_grace(stale.clone(), "timeout: answered with the stale value"),
                        };
                        return (Ok(answered), Answer::Grace);
                    }
                    return match ctx.run(errors, leader, body(args)).await {
                        Ok(v) => (Ok(v), Answer::Miss),
                        Err(_) if grace.is_some() => {
                            ctx.back_off();
                            (
                                Ok(ctx.answer_from_grace(grace.expect("checked"), "grace: the body failed")),
                                Answer::Grace,
                            )
                        }
                        Err(e) => (Err(e), Answer::Miss),
                    };
                }
                Join::Follow(_) if inside_run_of(ctx.key.id()) => panic!(
                    "cycle: the cached function {}:{} was called again with the key {} while its run for that key \
                     was computing it (f(x) → … → f(x)); that call would wait for itself forever",
                    ctx.spec.group,
                    ctx.spec.name,
                    ctx.key.as_str()
                ),
                Join::Follow(rx) => match follow(&ctx, rx, &grace).await {
                    Err(stale) => {
                        return (
                            Ok(ctx.answer_from_grace(stale, "timeout: answered with the stale value")),
                            Answer::Grace,
                        );
                    }
                    Ok(Awaited::Done(published)) => match &*published {
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
                    Ok(Awaited::Abandoned) => {}
                },
            }
        }
    }
}

/// Waits for the run a follower joined; with a usable old value and a soft `timeout`, no
/// longer than the timeout (`Err(old value)`), like the caller that leads the run.
async fn follow<V: Clone>(ctx: &Context, rx: flights::Follower, grace: &Option<V>) -> Result<Awaited, V> {
    match (ctx.spec.timeout_ms, grace) {
        (Some(ms), Some(stale)) => {
            tokio::time::timeout(Duration::from_millis(ms), flights::wait(rx)).await.map_err(|_| stale.clone())
        }
        _ => Ok(flights::wait(rx).await),
    }
}

/// A call, as the expansion writes it today: [`Call::result`].
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
    read_l2: bool,
) -> impl Future<Output = Result<V, E>>
where
    V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
    B: FnOnce(A) -> BF,
    BF: Future<Output = Result<V, E>>,
    R: Refresher<A, V, E>,
    T: TagSource<A>,
{
    Call { spec, key, invalidate, errors, storage: None, weigh: None, args, body, refresh, tags, read_l2 }.result()
}
