//! Looking a key up: the memory tier's entry judged by the one freshness rule
//! ([`Policy::freshness`](crate::entry::Policy::freshness)), the hit path of `#[cached]`
//! ([`hit`]), and filling the memory tier from an L2 read.

use std::sync::Arc;
use std::time::Duration;

use crate::call::spec::FnSpec;
use crate::entry::{Freshness, Policy};
use crate::key::storage_key::{CallKey, Key, KeyIs};
use crate::mount::l1::slot::{NewSlot, Slot, value};
use crate::mount::live::{FromL2, LiveMount};
use crate::mount::stats::Stats;
use crate::mount::tags::TagVerdict;
use crate::runtime::{Runtime, with_current};

/// What the memory tier (or L2) holds for a key, judged now.
pub(crate) enum Lookup<V> {
    Fresh(V),
    /// Fresh, and due for a refresh ahead of its expiry: answered as a hit.
    RefreshAhead(V),
    Stale(V),
    /// Past every window but `grace`: usable only if the body fails (or is backed off).
    Grace {
        value: V,
        backing_off: bool,
    },
    Miss,
}

/// The memory tier's entry for a key, judged now: the tag, integrity and freshness checks
/// of every call (and the grace window of a failing one).
#[inline]
pub(crate) fn lookup<V: Clone + 'static>(
    mount: &LiveMount,
    spec: &FnSpec,
    (id, key): (u128, KeyIs<'_>),
    now: u64,
    count_hit: bool,
) -> Lookup<V> {
    mount
        .memory
        .peek(id, |slot| {
            let Some((v, expired)) = readable::<V>(mount, slot, key, Some(spec.integrity)) else { return Lookup::Miss };
            let policy = slot.policy(spec.policy);
            match policy.freshness(slot.mtime(), expired, now) {
                Freshness::Fresh => {
                    if count_hit {
                        slot.count_hit();
                    }
                    if policy.refresh_due(slot.mtime(), now) {
                        return Lookup::RefreshAhead(v.clone());
                    }
                    Lookup::Fresh(v.clone())
                }
                Freshness::Stale => Lookup::Stale(v.clone()),
                Freshness::Expired if policy.within_grace(slot.mtime(), now) => {
                    Lookup::Grace { value: v.clone(), backing_off: slot.is_backing_off(now) }
                }
                Freshness::Expired => Lookup::Miss,
            }
        })
        .unwrap_or(Lookup::Miss)
}

/// One memory slot's value, if the slot is this key's entry of type
/// `V` (with this integrity, when one is given) and none of its tags was invalidated after
/// it was stored; with whether it was expired by hand or by a tag.
#[inline]
fn readable<'s, V: 'static>(
    mount: &LiveMount,
    slot: &'s Slot,
    key: KeyIs<'_>,
    integrity: Option<u128>,
) -> Option<(&'s V, bool)> {
    let expired = usable(mount, slot, key, integrity)?;
    Some((slot.value::<V>()?, expired))
}

/// Whether one memory slot is this key's entry (with this integrity, when one is given)
/// and none of its tags was invalidated after it was stored: `Some(expired)` if so, with
/// whether it was expired by hand or by a tag.
#[inline]
fn usable(mount: &LiveMount, slot: &Slot, key: KeyIs<'_>, integrity: Option<u128>) -> Option<bool> {
    if integrity.is_some_and(|i| i != slot.integrity()) || !slot.is(key) {
        return None;
    }
    let (tag_ids, seq) = slot.tags();
    match mount.tags.check(tag_ids, seq) {
        TagVerdict::Valid => Some(slot.is_expired()),
        TagVerdict::Expired => Some(true),
        TagVerdict::Invalid => None,
    }
}

/// Whether the memory tier holds a fresh entry under `key`, of any type and integrity,
/// judged by the `max_age` it was stored with.
pub(crate) fn is_fresh_in_memory(mount: &LiveMount, key: &Key, now: u64) -> bool {
    mount
        .memory
        .peek(key.id(), |slot| {
            usable(mount, slot, key.is(), None).is_some_and(|expired| {
                slot.policy(Policy::max_age(Duration::ZERO)).freshness(slot.mtime(), expired, now) == Freshness::Fresh
            })
        })
        .unwrap_or(false)
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
        .peek(key.id(), |slot| {
            let (v, expired) = readable::<V>(mount, slot, key.is(), integrity)?;
            if slot.policy(Policy::max_age(Duration::ZERO)).freshness(slot.mtime(), expired, now) != Freshness::Fresh {
                return None;
            }
            if count_hit {
                slot.count_hit();
            }
            Some(v.clone())
        })
        .flatten()
}

/// A value of the memory tier whatever its freshness (stale or past every window, until it
/// is evicted), if its slot is this key's entry of type `V` with this integrity and not
/// invalidated by a tag: what a caller reads to learn a stored value's own rules before it
/// calls (an HTTP response's stale windows). No hit is counted.
pub(crate) fn held_in_memory<V: Clone + 'static>(mount: &LiveMount, key: &Key, integrity: Option<u128>) -> Option<V> {
    mount
        .memory
        .peek(key.id(), |slot| readable::<V>(mount, slot, key.is(), integrity).map(|(v, _)| v.clone()))
        .flatten()
}

/// Puts an entry read from L2 into the memory tier (for the rest of its life under the
/// windows of `spec`, with the integrity it was written with) and says what it is worth
/// now. `None` when it is worth nothing, or when an invalidation came after the read
/// began (the entry may be the invalidated one: it is neither kept nor answered).
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
    let ticket = e.ticket;
    if !mount.fences.admits(key.id(), ticket) {
        return None;
    }
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
    let stored = mount.memory.insert(
        key.id(),
        NewSlot {
            key: key.as_str(),
            function: Some((&spec.prefix, spec.prefix_id)),
            value: value(e.value),
            mtime: e.mtime,
            expires: e.expires,
            // `read_l2` has checked it against the caller's integrity, when it had one.
            integrity: e.integrity.unwrap_or(spec.integrity),
            tags: e.tags.into_iter().collect(),
            seq: ticket.seq,
            ttl_ms: policy.store_ttl_ms().map(|ttl| ttl.saturating_sub(age).max(1)),
            stats: Some(Arc::clone(stats)),
            // What it weighed in L2 is what it holds decoded, near enough.
            weight: e.bytes,
            expired: e.expired,
        },
    );
    // An invalidation raises the fence, then drops the copy: one of the two checks sees it.
    if !mount.fences.admits(key.id(), ticket) {
        mount.memory.remove_if_same(key.id(), &stored);
        return None;
    }
    Some(lookup)
}

/// The hit path of `#[cached]`, before any future is built: the value of a fresh entry of
/// the memory tier, or `None` for everything else (stale, grace, L2, a miss), which is for
/// [`Call::run`](crate::call::algorithm::Call::run) to decide. A hash, a read section and a
/// freshness check: no allocation, no lock, no system call.
#[inline]
pub fn hit<V: Clone + 'static>(spec: &FnSpec, key: &CallKey) -> Option<V> {
    if !spec.policy.stores() {
        return None;
    }
    with_current(|rt| {
        rt.with_mount_of(spec, |mount| {
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
