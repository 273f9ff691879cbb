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

use crate::call::context::{Context, StorageFn, inside_run_of, weigher_of};
use crate::call::lookup::{Lookup, fill_from_l2, lookup};
use crate::call::outcome::{Answer, Storage};
use crate::call::share::Errors;
use crate::call::spec::SpecRef;
use crate::call::strategy::{Job, Refresher, TagSource};
use crate::key::storage_key::Key;
use crate::mount::flights::{self, Awaited, Join, Published};
use crate::mount::live::LiveMount;
use crate::runtime::{Runtime, with_current};

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

/// The tags of a call, shared by its context's clones (no tags: one shared empty list,
/// no allocation per miss).
fn shared_tags(tags: Vec<Box<str>>) -> Arc<[Box<str>]> {
    static NONE: std::sync::LazyLock<Arc<[Box<str>]>> = std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    if tags.is_empty() { Arc::clone(&NONE) } else { tags.into() }
}

/// What the first look at the memory tier found.
enum First<V> {
    Hit(V),
    Go(Runtime, Arc<LiveMount>, Lookup<V>),
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
        let Call { spec, key, invalidate, errors, storage, weigh, args, body, refresh, tags, read_l2 } = self;
        let Some(key) = key else {
            tracing::trace!(target: "larder", group = &*spec.group, name = &*spec.name, "bypass");
            return (body(args).await, Answer::Bypass);
        };
        if !spec.policy.stores() {
            return (body(args).await, Answer::Bypass);
        }
        // The hit path: no clone of the runtime, no allocation, one shard read lock.
        let first = with_current(|rt| {
            rt.with_mount_of(&spec, |mount| {
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
            // Boxed, like the L2 read below: rare, and large futures.
            Box::pin(mount.delete(&key)).await;
        }
        // L2: on a memory miss (or an entry only good for grace), the store may have a
        // better entry, for example one written by another instance.
        let stats = rt.stats_for(&spec);
        let found = match found {
            Lookup::Miss | Lookup::Grace { .. } if read_l2 && mount.l2.is_some() && !invalidate => {
                match Box::pin(mount.read_l2::<V>(&key, Some(spec.integrity))).await {
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
        let weigher = weigh.map(weigher_of);
        let ahead = matches!(found, Lookup::RefreshAhead(_));
        let grace = match found {
            // Stale, or fresh but due for a refresh ahead: answered now, refreshed behind.
            Lookup::Stale(v) | Lookup::RefreshAhead(v) => {
                if !ahead {
                    stats.stale();
                }
                if R::ENABLED && !mount.flights.is_running(key.id()) {
                    all_tags.extend(tags.tags(&args).into_iter().map(String::into_boxed_str));
                    let ctx = Context { rt, mount, spec, key, tags: shared_tags(all_tags), stats, storage, weigher };
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
                let ctx = Context { rt, mount, spec, key, tags: shared_tags(all_tags), stats, storage, weigher };
                return (
                    Ok(ctx.answer_from_grace(value, "grace: the body failed recently and is backed off")),
                    Answer::Grace,
                );
            }
            Lookup::Grace { value, backing_off: false } => Some(value),
            Lookup::Fresh(v) => return (Ok(v), Answer::Hit),
            Lookup::Miss => None,
        };
        stats.miss();
        all_tags.extend(tags.tags(&args).into_iter().map(String::into_boxed_str));
        let ctx = Context { rt, mount, spec, key, tags: shared_tags(all_tags), stats, storage, weigher };
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
