//! Batches: the first two steps of answering many keys at once, shared by
//! `Cache::get_or_set_many` and the generated `NAME_many` ([`prefetch`]): one pass over
//! the memory tier, then one L2 round trip (`LiveMount::read_l2_many`) for every key it
//! did not answer, filling memory. What is still missing afterwards is for the caller:
//! the loader of `get_or_set_many`, or one [`Call`](crate::call::algorithm::Call) per key
//! (told not to read L2 again) for `NAME_many`.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::lookup::{Lookup, fill_from_l2, lookup};
use crate::call::spec::FnSpec;
use crate::key::storage_key::Key;
use crate::mount::live::LiveMount;
use crate::mount::stats::Stats;
use crate::runtime::{Runtime, with_current};

/// What the memory tier should answer in a batch beside fresh entries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ahead {
    /// An entry due for a refresh ahead is answered as fresh (the loader has no refresh).
    Answer,
    /// It is left to the key's own call, which answers it and starts the refresh.
    LeaveToTheCall,
}

/// The fresh values of `keys` (`None` for a key to skip) from memory, then from L2 in
/// one round trip for the rest: `Some(value)` per key answered, `None` for the others.
pub(crate) async fn fresh_many<V>(
    (rt, mount, stats): (&Runtime, &Arc<LiveMount>, &Arc<Stats>),
    spec: &FnSpec,
    keys: &[Option<&Key>],
    ahead: Ahead,
) -> Vec<Option<V>>
where
    V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
{
    let mut out: Vec<Option<V>> = keys.iter().map(|_| None).collect();
    if !spec.policy.stores() {
        return out;
    }
    // 1. Memory, one pass.
    let now = rt.clock().now_ms();
    let mut missing: Vec<usize> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(key) = key else { continue };
        match lookup::<V>(mount, spec, (key.id(), key.is()), now, true) {
            Lookup::Fresh(v) => out[i] = Some(v),
            Lookup::RefreshAhead(v) if ahead == Ahead::Answer => out[i] = Some(v),
            Lookup::RefreshAhead(_) => {}
            _ => missing.push(i),
        }
    }
    // 2. L2, one round trip for all the rest.
    if mount.l2.is_some() && !missing.is_empty() {
        let wanted: Vec<&Key> = missing.iter().filter_map(|&i| keys[i]).collect();
        let read = mount.read_l2_many::<V>(&wanted, Some(spec.integrity)).await;
        for ((&i, key), found) in missing.iter().zip(wanted).zip(read) {
            if let Some(Lookup::Fresh(v)) = found.and_then(|l2| fill_from_l2(rt, mount, spec, key, l2, stats)) {
                out[i] = Some(v);
            }
        }
    }
    out
}

/// The first steps of `NAME_many`: the fresh values of the keys of `plan` in the runtime
/// in force. A plan is a call's key (`None`: it bypasses the cache) and whether it is to be
/// invalidated (then it is not looked up: its call deletes it first).
pub async fn prefetch<V>(spec: &FnSpec, plan: &[(Option<Key>, bool)]) -> Vec<Option<V>>
where
    V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
{
    let (rt, mount) = with_current(|rt| (rt.clone(), rt.mount(&spec.mount)));
    let stats = rt.stats_for(&spec.prefix);
    let keys: Vec<Option<&Key>> =
        plan.iter().map(|(key, invalidate)| if *invalidate { None } else { key.as_ref() }).collect();
    fresh_many((&rt, &mount, &stats), spec, &keys, Ahead::LeaveToTheCall).await
}
