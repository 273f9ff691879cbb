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
use crate::key::storage_key::{CallKey, Key, KeyIs};
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

/// What a batch found for one key.
pub enum Prefetched<V> {
    /// A fresh value.
    Found(V),
    /// Nothing fresh: the full key for the call that produces it (`None`: it bypasses the
    /// cache).
    Missing(Option<Key>),
}

/// A key of a batch: looked up in memory as it is, built into a [`Key`] only if memory
/// does not answer it (a default key's string is never formatted for a hit).
pub(crate) trait BatchKey {
    fn id(&self) -> u128;
    fn is<'a>(&'a self, prefix: &'a str) -> KeyIs<'a>;
    fn into_key(self, prefix: &str) -> Key;
}

impl BatchKey for &Key {
    fn id(&self) -> u128 {
        Key::id(self)
    }
    fn is<'a>(&'a self, _: &'a str) -> KeyIs<'a> {
        Key::is(self)
    }
    fn into_key(self, _: &str) -> Key {
        self.clone()
    }
}

impl BatchKey for CallKey {
    fn id(&self) -> u128 {
        CallKey::id(self)
    }
    fn is<'a>(&'a self, prefix: &'a str) -> KeyIs<'a> {
        CallKey::is(self, prefix)
    }
    fn into_key(self, prefix: &str) -> Key {
        CallKey::into_key(self, prefix)
    }
}

/// The fresh values of `keys` from memory, then from L2 in one round trip for the rest: per
/// key, a fresh value, or the key still to produce. A key is `(None, _)` to
/// bypass the cache (`Missing(None)`), `(Some(key), false)` not to be looked up (it is about to
/// be invalidated).
pub(crate) async fn fresh_many<V, K: BatchKey>(
    (rt, mount, stats): (&Runtime, &Arc<LiveMount>, &Arc<Stats>),
    spec: &FnSpec,
    keys: Vec<(Option<K>, bool)>,
    ahead: Ahead,
) -> Vec<Prefetched<V>>
where
    V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
{
    if !spec.policy.stores() {
        return keys.into_iter().map(|(k, _)| Prefetched::Missing(k.map(|k| k.into_key(&spec.prefix)))).collect();
    }
    // 1. Memory, one pass.
    let now = rt.clock().now_ms();
    let mut out: Vec<Prefetched<V>> = Vec::with_capacity(keys.len());
    let mut missing: Vec<usize> = Vec::new();
    for (key, look_up) in keys {
        let Some(key) = key else {
            out.push(Prefetched::Missing(None));
            continue;
        };
        if !look_up {
            out.push(Prefetched::Missing(Some(key.into_key(&spec.prefix))));
            continue;
        }
        match lookup::<V>(mount, spec, (key.id(), key.is(&spec.prefix)), now, true) {
            Lookup::Fresh(v) => out.push(Prefetched::Found(v)),
            Lookup::RefreshAhead(v) if ahead == Ahead::Answer => out.push(Prefetched::Found(v)),
            Lookup::RefreshAhead(_) => out.push(Prefetched::Missing(Some(key.into_key(&spec.prefix)))),
            _ => {
                missing.push(out.len());
                out.push(Prefetched::Missing(Some(key.into_key(&spec.prefix))));
            }
        }
    }
    // 2. L2, one round trip for all the rest.
    if mount.l2.is_some() && !missing.is_empty() {
        let wanted: Vec<&Key> = missing
            .iter()
            .filter_map(|&i| match &out[i] {
                Prefetched::Missing(key) => key.as_ref(),
                Prefetched::Found(_) => None,
            })
            .collect();
        let read = mount.read_l2_many::<V>(&wanted, Some(spec.integrity)).await;
        let fresh: Vec<Option<V>> = wanted
            .iter()
            .zip(read)
            .map(|(key, found)| match found.and_then(|l2| fill_from_l2(rt, mount, spec, key, l2, stats)) {
                Some(Lookup::Fresh(v)) => Some(v),
                _ => None,
            })
            .collect();
        for (&i, v) in missing.iter().zip(fresh) {
            if let Some(v) = v {
                out[i] = Prefetched::Found(v);
            }
        }
    }
    out
}

/// The first steps of `NAME_many`: for each call's key (`None`: it bypasses the cache) and
/// whether it is to be invalidated first, its fresh value in the runtime in force, or its
/// full key for the call that produces it.
pub async fn prefetch<V>(spec: &FnSpec, plan: Vec<(Option<CallKey>, bool)>) -> Vec<Prefetched<V>>
where
    V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
{
    let (rt, mount) = with_current(|rt| (rt.clone(), rt.mount(&spec.mount)));
    let stats = rt.stats_for(spec);
    let keys = plan.into_iter().map(|(key, invalidate)| (key, !invalidate)).collect();
    fresh_many((&rt, &mount, &stats), spec, keys, Ahead::LeaveToTheCall).await
}
