//! The context of one call once it has a key ([`Context`]): where it stores, under which key,
//! with which tags; and what the leader of a run does with its outcome: store it in memory,
//! then in L2, unless an invalidation arrived meanwhile, and publish it to the waiters.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, resume_unwind};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::lookup::{Lookup, lookup};
use crate::call::outcome::Storage;
use crate::call::share::Errors;
use crate::call::spec::SpecRef;
use crate::call::this_entry::{Decisions, running};
use crate::entry::{Entry, Policy};
use crate::key::storage_key::Key;
use crate::mount::fences::Ticket;
use crate::mount::flights::{Leader, Published};
use crate::mount::l1::slot::{NewSlot, value};
use crate::mount::live::LiveMount;
use crate::mount::stats::Stats;
use crate::runtime::Runtime;

/// The context of one call: where it stores, under which key, with which tags.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) rt: Runtime,
    pub(crate) mount: Arc<LiveMount>,
    pub(crate) spec: SpecRef,
    pub(crate) key: Key,
    pub(crate) tags: Arc<[Box<str>]>,
    pub(crate) stats: Arc<Stats>,
    /// Per-value storage decision.
    pub(crate) storage: Option<StorageFn>,
    /// What a value weighs in a memory tier bounded by bytes, when not its JSON's size.
    pub(crate) weigher: Option<WeighFn>,
}

/// What was stored in the memory tier, for the L2 copy.
#[derive(Clone, Copy)]
pub(crate) struct InMemory {
    mtime: u64,
    expires: u64,
    ttl_ms: Option<u64>,
}

pub(crate) type StorageFn = Arc<dyn Fn(&(dyn Any + Send + Sync)) -> Storage + Send + Sync>;

/// What a value weighs, in bytes.
pub(crate) type WeighFn = Arc<dyn Fn(&(dyn Any + Send + Sync)) -> usize + Send + Sync>;

/// `weigh`, for values met as `dyn Any` (a value of another type weighs nothing).
pub(crate) fn weigher_of<V: 'static>(weigh: fn(&V) -> usize) -> WeighFn {
    Arc::new(move |v: &(dyn Any + Send + Sync)| v.downcast_ref::<V>().map_or(0, weigh))
}

/// The size of `v`'s JSON, counted without keeping it (no allocation beyond serde's own).
pub(crate) fn json_len<V: Serialize + ?Sized>(v: &V) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

/// How much stack a body's poll must have left; below it, the poll goes on a new segment.
const RED_ZONE: usize = 128 * 1024;
/// The size of a new stack segment.
const SEGMENT: usize = 2 * 1024 * 1024;

/// `fut`, polled where at least [`RED_ZONE`] of stack is left: a cached function that calls
/// itself (or another) nests one poll per level, and each level of the call machinery costs
/// a few KiB of stack; when a thread's stack runs low, the next levels are polled on a new
/// segment (the `stacker` crate), so recursion is bounded by memory, not by the 2 MiB of a
/// Tokio worker. A check of the stack pointer per poll of a running body; never on a hit.
///
/// A struct rather than an `async fn`: an `async fn` would hold `fut` twice (its argument,
/// and the pinned copy it polls), and every miss's future would be the larger for it.
struct OnEnoughStack<F>(F);

impl<F: Future> Future for OnEnoughStack<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        // SAFETY: the one field is pinned whenever the struct is (it is never moved out,
        // and the struct has no `Drop` or `Unpin` impl of its own).
        let fut = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        stacker::maybe_grow(RED_ZONE, SEGMENT, || fut.poll(cx))
    }
}

/// The function's own tags, shared by every call's context (none: one shared empty list,
/// no allocation per miss).
pub(crate) fn spec_tags(spec: &SpecRef) -> Arc<[Box<str>]> {
    static NONE: std::sync::LazyLock<Arc<[Box<str>]>> = std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    if spec.tags.is_empty() { Arc::clone(&NONE) } else { spec.tags.iter().map(|t| Box::<str>::from(&**t)).collect() }
}

impl Context {
    /// Adds a call's dynamic tags to the function's own (nothing allocated without them).
    pub(crate) fn add_tags(&mut self, more: Vec<String>) {
        if !more.is_empty() {
            let mut tags = self.tags.to_vec();
            tags.extend(more.into_iter().map(String::into_boxed_str));
            self.tags = tags.into();
        }
    }

    /// The key's value in the memory tier if it is fresh now (and not yet due for a refresh
    /// ahead): what a caller checks after it takes the lead of a run, since a run may
    /// have landed between its lookup and its lead. No hit is counted.
    pub(crate) fn fresh_now<V: Clone + 'static>(&self) -> Option<V> {
        let now = self.rt.clock().now_ms();
        match lookup::<V>(&self.mount, &self.spec, (self.key.id(), self.key.is()), now, false) {
            Lookup::Fresh(v) => Some(v),
            _ => None,
        }
    }

    pub(crate) fn log(&self, level: tracing::Level, what: &str) {
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
    pub(crate) async fn run<V, E, Fut>(&self, errors: Errors<E>, leader: Leader, fut: Fut) -> Result<V, E>
    where
        V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
        Fut: Future<Output = Result<V, E>>,
    {
        self.stats.run();
        let id = self.key.id();
        let fut = AssertUnwindSafe(OnEnoughStack(running(id, fut))).catch_unwind();
        let outcome = match (self.spec.hard_timeout_ms, errors.timeout) {
            (Some(ms), Some(make)) => {
                // Boxed: only a function with a `hard_timeout` carries the timer.
                match Box::pin(tokio::time::timeout(Duration::from_millis(ms), fut)).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        self.log(tracing::Level::WARN, "abandoned after hard_timeout");
                        Ok((Err(make()), Decisions::default()))
                    }
                }
            }
            _ => fut.await,
        };
        match outcome {
            Ok((Ok(v), decided)) => {
                // Boxed: rare, and the future would otherwise hold a second context.
                let decided_ctx;
                let ctx = if decided.is_empty() {
                    self
                } else {
                    decided_ctx = Box::new(self.as_decided(decided));
                    &*decided_ctx
                };
                ctx.land(&v, leader).await;
                Ok(v)
            }
            Ok((Err(e), _)) => {
                self.stats.error();
                leader.publish(|| Published::Error((errors.share.to_shared)(&e)));
                Err(e)
            }
            Err(panic) => {
                self.log(tracing::Level::ERROR, "the body panicked");
                leader.publish(|| Published::Panicked);
                resume_unwind(panic)
            }
        }
    }

    /// What a leader does with a value: stores it in memory (unless an invalidation came
    /// after the run's ticket), hands it to the followers, then writes it to L2.
    pub(crate) async fn land<V>(&self, v: &V, leader: Leader)
    where
        V: Clone + Send + Sync + 'static + Serialize,
    {
        let ticket = leader.ticket();
        let stored = self.store(v.clone(), self.weigh(v), ticket, Some(&leader));
        leader.publish(|| Published::Value(Box::new(v.clone())));
        if let Some(stored) = stored
            && self.mount.l2.is_some()
        {
            // Boxed: only a mount with an L2 carries this future (every miss's future
            // would be the larger for it).
            Box::pin(self.write_l2(v, stored, ticket)).await;
        }
    }

    /// This context, with what the body decided for its entry: more tags, another
    /// `max_age`, or no storing at all.
    fn as_decided(&self, decided: Decisions) -> Context {
        let mut tags: Vec<Box<str>> = self.tags.to_vec();
        for t in decided.tags {
            if !tags.iter().any(|have| **have == *t) {
                tags.push(t.into_boxed_str());
            }
        }
        // The call's own decision comes first: what it would not store (an HTTP response
        // that is private, say) stays unstored whatever the body says.
        let storage: Option<StorageFn> = match (decided.skip, decided.max_age) {
            (false, None) => self.storage.clone(),
            (skip, max_age) => {
                let base = self.storage.clone();
                let max_age = max_age.map(|d| d.as_millis().min(u64::MAX as u128) as u64);
                Some(Arc::new(move |v: &(dyn Any + Send + Sync)| {
                    match base.as_ref().map_or(Storage::Default, |decide| decide(v)) {
                        Storage::Skip => Storage::Skip,
                        _ if skip || max_age == Some(0) => Storage::Skip,
                        own => max_age.map_or(own, Storage::MaxAge),
                    }
                }))
            }
        };
        Context { tags: tags.into(), storage, ..self.clone() }
    }

    /// Stores a produced value, unless an invalidation arrived while it was produced
    /// (after `ticket` was taken).
    pub(crate) fn store<V: Send + Sync + 'static>(
        &self,
        v: V,
        weight: usize,
        ticket: Ticket,
        leader: Option<&Leader>,
    ) -> Option<InMemory> {
        let fenced = || leader.is_some_and(Leader::cancelled) || !self.mount.fences.admits(self.key.id(), ticket);
        if fenced() {
            return None;
        }
        let policy = &self.spec.policy;
        let (max_age, kept_past) = match self.storage.as_ref().map_or(Storage::Default, |decide| decide(&v)) {
            Storage::Skip => return None,
            Storage::MaxAge(ms) => (ms, 0),
            Storage::Windowed { max_age_ms, kept_past_ms } => (max_age_ms, kept_past_ms),
            Storage::Default => (policy.max_age_ms, 0),
        };
        let ttl_ms =
            Policy { max_age_ms: max_age, ..*policy }.store_ttl_ms().map(|t| t.max(max_age.saturating_add(kept_past)));
        let now = self.rt.clock().stamp_ms();
        let stored = self.mount.memory.insert(
            self.key.id(),
            NewSlot {
                key: self.key.as_str(),
                function: Some((&self.spec.prefix, self.spec.prefix_id)),
                value: value(v),
                mtime: now,
                expires: now.saturating_add(max_age),
                integrity: self.spec.integrity,
                tags: self.tags.iter().cloned().collect(),
                seq: ticket.seq,
                ttl_ms,
                stats: Some(Arc::clone(&self.stats)),
                weight,
                expired: false,
            },
        );
        // An invalidation between the check above and the insert raised the fence (and
        // cancelled the flight) first and removes the memory entry second; re-checking
        // here closes the gap.
        if fenced() {
            self.mount.memory.remove_if_same(self.key.id(), &stored);
            return None;
        }
        Some(InMemory { mtime: now, expires: now.saturating_add(max_age), ttl_ms })
    }

    /// Writes a stored value to L2 (if the mount has one), born at `ticket`.
    pub(crate) async fn write_l2<V: Serialize>(&self, v: &V, stored: InMemory, ticket: Ticket) {
        if self.mount.l2.is_none() {
            return;
        }
        let entry = Entry {
            value: v,
            mtime: stored.mtime,
            expires: stored.expires,
            integrity: format!("{:032x}", self.spec.integrity),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
            born: ticket.born,
        };
        self.mount.write_l2(&self.key, &entry, stored.ttl_ms, ticket).await;
    }

    /// What `v` weighs in a memory tier bounded by bytes (0 in one bounded by entries, where
    /// it is not asked): the call's own weigher (an HTTP response's), else the size of its
    /// JSON, counted as it is written and never kept.
    pub(crate) fn weigh<V: Serialize + Send + Sync + 'static>(&self, v: &V) -> usize {
        if !self.mount.memory.by_bytes() {
            return 0;
        }
        match &self.weigher {
            Some(weigh) => weigh(v),
            None => json_len(v),
        }
    }

    /// Starts the grace backoff of the entry: the body is not called again for a while.
    pub(crate) fn back_off(&self) {
        let until = self.rt.clock().now_ms().saturating_add(self.spec.grace_backoff_ms);
        self.mount.memory.back_off(self.key.id(), until);
    }

    pub(crate) fn answer_from_grace<V>(&self, value: V, why: &str) -> V {
        self.stats.grace();
        self.log(tracing::Level::WARN, why);
        value
    }
}
