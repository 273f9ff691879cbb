//! What the generated helpers (`NAME_invalidate`, `NAME_expire`, `NAME_prime`, `NAME_clear`,
//! `NAME_stats`) do, on the mount of the function in the runtime in force.

use std::sync::Arc;

use serde::Serialize;

use crate::call::context::{Context, spec_tags, weigher_of};
use crate::call::spec::{FnSpec, SpecRef};
use crate::key::storage_key::Key;
use crate::mount::fences::Ticket;
use crate::mount::live::LiveMount;
use crate::mount::stats::CacheStats;
use crate::runtime::{Runtime, with_current};

fn mount_of(spec: &FnSpec) -> Arc<LiveMount> {
    with_current(|rt| rt.mount(&spec.mount))
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
    let mount = rt.mount(&spec.mount);
    prime_in(rt, mount, spec, key, value, tags, Landing::now()).await;
}

/// How a primed value lands: what it weighs in a memory tier bounded by bytes (else its
/// JSON's size), and the ticket it carries (else one taken now).
pub(crate) struct Landing<V> {
    pub weigh: Option<fn(&V) -> usize>,
    /// When the value's production began: an invalidation after it keeps the value out.
    pub since: Option<Ticket>,
}

impl<V> Landing<V> {
    /// A value produced now, weighed by its JSON.
    pub fn now() -> Landing<V> {
        Landing { weigh: None, since: None }
    }
}

impl<V> Clone for Landing<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Landing<V> {}

/// Stores `value` in `mount` as if just produced (or produced since `landing.since`); a run
/// in flight for the key won't overwrite it.
pub(crate) async fn prime_in<V>(
    rt: Runtime,
    mount: Arc<LiveMount>,
    spec: SpecRef,
    key: Key,
    value: V,
    tags: Vec<String>,
    landing: Landing<V>,
) where
    V: Send + Sync + 'static + Serialize,
{
    if !spec.policy.stores() {
        return;
    }
    mount.flights.cancel(key.id());
    let stats = rt.stats_for(&spec);
    let ticket = landing.since.unwrap_or_else(|| mount.ticket());
    let weigher = landing.weigh.map(weigher_of);
    let mut ctx = Context { rt, mount, tags: spec_tags(&spec), spec, key, stats, storage: None, weigher };
    ctx.add_tags(tags);
    let weight = ctx.weigh(&value);
    if ctx.mount.l2.is_some() {
        let json = serde_json::to_value(&value).ok();
        if let Some(stored) = ctx.store(value, weight, ticket, None)
            && let Some(json) = json
        {
            ctx.write_l2(&json, stored, ticket).await;
        }
    } else {
        ctx.store(value, weight, ticket, None);
    }
}

/// `NAME_clear`: deletes every entry of the function.
pub async fn clear_fn(spec: SpecRef) {
    mount_of(&spec).clear_prefix(&spec.prefix).await;
}

/// `NAME_stats`: the counters of the function in the runtime in force.
pub fn stats(spec: SpecRef) -> CacheStats {
    with_current(|rt| rt.stats(&spec.prefix))
}
