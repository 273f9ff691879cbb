//! A live mount ([`LiveMount`]): its memory tier, its L2, its runs in flight, its tag
//! events, its invalidation fences, and every operation that spans them. Each operation
//! here is the one place where it touches every tier: reading and filling from L2, writing
//! to L2, deleting, expiring, clearing a prefix, recording a tag event, and telling other
//! instances.
//!
//! Every invalidation (a key, a prefix, a tag) is done the same way, so that nothing that
//! was in flight when it began can bring the old value back:
//!
//! 1. in memory: raise the fence ([`Fences`]), cancel the runs in flight, drop the copies;
//! 2. in L2: raise the invalidation's stamp (an order stamp, see
//!    [`Clock::order_stamp`](crate::Clock::order_stamp)), then delete; an L2 entry is
//!    refused when a stamp of its key, of a `:`-ended prefix of its key or of one of its
//!    tags is at or after the stamp of the run that produced it (`born`), so a late write
//!    from any instance cannot resurrect it; if L2 fails, the invalidation is kept and
//!    replayed ([`L2::invalidate`]);
//! 3. in memory again: a second fence, for the L2 reads that began during step 2;
//! 4. on the bus: other instances do step 1 when they hear it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::Clock;
use crate::entry::Entry;
use crate::key::storage_key::Key;
use crate::mount::config::Mount;
use crate::mount::fences::{Fences, Ticket};
use crate::mount::flights::Flights;
use crate::mount::l1::memory::Memory;
use crate::mount::l2::{Invalidation as Target, L2, gone_keys};
use crate::mount::tags::{TagVerdict, Tags, tag_expired_key, tag_invalidated_key};
use crate::stores::store::parse_stamp;

/// The shortest time an invalidation's stamp is kept in L2 (runs in flight when it was
/// made may still try to write for that long).
pub(crate) const MIN_STAMP_LIFETIME: Duration = Duration::from_secs(300);

/// A live mount: its memory tier, its L2, its runs in flight, its tag events.
pub(crate) struct LiveMount {
    pub name: Box<str>,
    pub memory: Memory,
    pub flights: Arc<Flights>,
    pub tags: Tags,
    pub l2: Option<L2>,
    /// Where changes are announced to other instances.
    #[cfg(feature = "redis")]
    bus: Option<Arc<crate::bus::link::BusLink>>,
    /// Orders stores against tag events and invalidations.
    seq: AtomicU64,
    /// What keeps an invalidated value from landing after its invalidation.
    pub fences: Fences,
    clock: Clock,
    /// The longest lifetime in L2 of an entry this mount wrote or read, ms (`u64::MAX`:
    /// one lives forever): how long invalidation stamps and tag events must be kept.
    longest_ms: AtomicU64,
}

impl LiveMount {
    /// A mount named `name`, configured by `config`, that tells no other instance.
    pub fn new(name: &str, config: &Mount, clock: Clock) -> LiveMount {
        LiveMount {
            name: name.into(),
            memory: Memory::new(config.memory_bound(), clock.clone()),
            flights: Flights::new(),
            tags: Tags::new(),
            l2: config.l2_store().map(|store| L2::new(Arc::clone(store), config.cooldown())),
            #[cfg(feature = "redis")]
            bus: None,
            seq: AtomicU64::new(1),
            fences: Fences::new(),
            clock,
            longest_ms: AtomicU64::new(MIN_STAMP_LIFETIME.as_millis() as u64),
        }
    }

    /// The same mount, announcing its changes on `bus`.
    #[cfg(feature = "redis")]
    pub fn announcing_on(self, bus: Option<Arc<crate::bus::link::BusLink>>) -> LiveMount {
        if let (Some(link), Some(l2)) = (&bus, &self.l2) {
            // An invalidation L2 applies late is told again: another instance may have
            // read the old entry from L2 (and kept it) before it was applied.
            let (link, name) = (Arc::clone(link), self.name.to_string());
            l2.on_replayed(move |applied| {
                let change = match applied {
                    Target::Key(k) => Change::Delete(k),
                    Target::Prefix(p) => Change::Clear(p),
                    Target::TagInvalidated(t) => Change::InvalidateTag(t),
                    Target::TagExpired(t) => Change::ExpireTag(t),
                };
                link.publish(&name, change.bus_op());
            });
        }
        LiveMount { bus, ..self }
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// A ticket for a value about to be produced (a run, an L2 read). Its order stamp is
    /// read only by L2 (written with the entry, checked against invalidations kept there):
    /// without L2 it is 0, and the miss reads no exact clock for it.
    pub fn ticket(&self) -> Ticket {
        let born = if self.l2.is_some() { self.clock.order_stamp() } else { 0 };
        Ticket { seq: self.next_seq(), born }
    }

    /// Notes that an entry lives `ttl_ms` in L2 (`None`: forever).
    fn note_lifetime(&self, ttl_ms: Option<u64>) {
        self.longest_ms.fetch_max(ttl_ms.unwrap_or(u64::MAX), Ordering::AcqRel);
    }

    /// How long an invalidation's stamp must stay in L2: as long as any entry it may
    /// refuse could live (`None`: forever).
    fn stamp_ttl(&self) -> Option<Duration> {
        match self.longest_ms.load(Ordering::Acquire) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms).max(MIN_STAMP_LIFETIME)),
        }
    }

    /// Step 1 (and 3) of an invalidation of one key: fence, cancel, drop. Whether memory
    /// held it.
    pub(crate) fn fence_key(&self, key: &Key) -> bool {
        self.fences.raise(key.id(), self.next_seq());
        self.flights.cancel(key.id());
        self.memory.remove(key.id())
    }

    /// Step 1 (and 3) of an invalidation of a prefix (`""`: everything); how many copies
    /// memory held.
    pub(crate) fn fence_prefix(&self, prefix: &str) -> usize {
        self.fences.raise_all(self.next_seq());
        self.flights.cancel_where(|key, _, _| key.starts_with(prefix));
        self.memory.remove_prefix(prefix)
    }
}

/// An entry read from L2, checked against its tags.
pub(crate) struct FromL2<V> {
    pub value: V,
    /// The size of the entry as it was read.
    pub bytes: usize,
    pub mtime: u64,
    pub expires: u64,
    pub tags: Vec<Box<str>>,
    /// The entry's integrity, parsed (`None`: not a 128-bit hex number).
    pub integrity: Option<u128>,
    /// A tag was expired after the entry was produced.
    pub expired: bool,
    /// Taken before the read: a fill of memory from it lands only past the fences.
    pub ticket: Ticket,
}

/// The entry as [`LiveMount::read_l2`] decodes it: the integrity and the tags
/// borrowed from the bytes where they can be (no allocation for the integrity).
#[derive(serde::Deserialize)]
struct EntryView<'a, V> {
    value: V,
    mtime: u64,
    expires: u64,
    #[serde(default)]
    born: u64,
    #[serde(borrow)]
    integrity: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    tags: Vec<std::borrow::Cow<'a, str>>,
}

/// A change that other instances must hear of.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Change<'a> {
    Set(&'a str),
    Delete(&'a str),
    Expire(&'a str),
    Clear(&'a str),
    InvalidateTag(&'a str),
    ExpireTag(&'a str),
}

#[cfg(feature = "redis")]
impl Change<'_> {
    /// The bus message that says it.
    fn bus_op(&self) -> crate::bus::wire::BusOp {
        use crate::bus::wire::BusOp;
        match *self {
            Change::Set(k) => BusOp::Set { keys: vec![k.to_owned()] },
            Change::Delete(k) => BusOp::Delete { keys: vec![k.to_owned()] },
            Change::Expire(k) => BusOp::Expire { keys: vec![k.to_owned()] },
            Change::Clear(p) => BusOp::Clear { prefix: p.to_owned() },
            Change::InvalidateTag(t) => BusOp::InvalidateTag { tag: t.to_owned() },
            Change::ExpireTag(t) => BusOp::ExpireTag { tag: t.to_owned() },
        }
    }
}

impl LiveMount {
    /// Tells the other instances (feature `redis`, with a bus); a no-op otherwise.
    pub(crate) fn announce(&self, change: Change<'_>) {
        #[cfg(feature = "redis")]
        if let Some(link) = &self.bus {
            link.publish(&self.name, change.bus_op());
        }
        #[cfg(not(feature = "redis"))]
        let _ = change;
    }

    /// Reads `key` from L2: decodes it, checks integrity, its invalidation stamps (the
    /// key's and its prefixes', in the same round trip as the entry) and its tags' (one
    /// more round trip for all of them), and what L2 has not applied yet. An unreadable
    /// entry is deleted and is a miss; a foreign integrity is a miss.
    pub(crate) async fn read_l2<V: DeserializeOwned>(&self, key: &Key, integrity: Option<u128>) -> Option<FromL2<V>> {
        self.read_l2_many(&[key], integrity).await.pop().flatten()
    }

    /// [`read_l2`](Self::read_l2) for many keys at once: every entry and its key's stamps
    /// in one round trip, the stamps of all their tags in a second.
    pub(crate) async fn read_l2_many<V: DeserializeOwned>(
        &self,
        keys: &[&Key],
        integrity: Option<u128>,
    ) -> Vec<Option<FromL2<V>>> {
        let mut out: Vec<Option<FromL2<V>>> = keys.iter().map(|_| None).collect();
        let Some(l2) = self.l2.as_ref() else { return out };
        let ticket = self.ticket();
        // Each key's entry, then its stamps; a key a pending invalidation covers is not read.
        let mut all = Vec::new();
        let mut spans = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if !l2.covers(key.as_str(), None) {
                let start = all.len();
                all.push(key.as_str().to_owned());
                all.extend(gone_keys(key.as_str()));
                spans.push((i, start, all.len()));
            }
        }
        if spans.is_empty() {
            return out;
        }
        let Some(mut got) = l2.get_many(&all).await else { return out };
        let mut borns = vec![0u64; keys.len()];
        for (i, start, end) in spans {
            let Some(bytes) = got[start].take() else { continue };
            let entry: EntryView<'_, V> = match serde_json::from_slice(&bytes) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(target: "larder", key = keys[i].as_str(), error = %e, "unreadable entry in L2: deleted, treated as a miss");
                    l2.delete(keys[i].as_str()).await;
                    continue;
                }
            };
            let parsed = u128::from_str_radix(&entry.integrity, 16).ok();
            if integrity.is_some_and(|want| parsed != Some(want)) {
                continue;
            }
            // Entries written before runs had a birth stamp: born when produced.
            let born = if entry.born > 0 { entry.born } else { entry.mtime.saturating_mul(1000) };
            if got[start + 1..end].iter().flatten().any(|raw| parse_stamp(raw).is_some_and(|s| s >= born)) {
                continue;
            }
            let expired = match l2.tags_verdict(&entry.tags, born) {
                TagVerdict::Invalid => continue,
                TagVerdict::Expired => true,
                TagVerdict::Valid => false,
            };
            borns[i] = born;
            out[i] = Some(FromL2 {
                bytes: bytes.len(),
                value: entry.value,
                mtime: entry.mtime,
                expires: entry.expires,
                tags: entry.tags.into_iter().map(|t| Box::<str>::from(&*t)).collect(),
                integrity: parsed,
                expired,
                ticket,
            });
        }
        // The stamps of every tag of every entry found, in one more round trip.
        let tag_keys: Vec<String> = out
            .iter()
            .flatten()
            .flat_map(|e| e.tags.iter().flat_map(|t| [tag_invalidated_key(t), tag_expired_key(t)]))
            .collect();
        if tag_keys.is_empty() {
            return out;
        }
        let stamps = l2.get_many(&tag_keys).await;
        let mut at = 0;
        for (i, slot) in out.iter_mut().enumerate() {
            let Some(entry) = slot else { continue };
            let n = entry.tags.len() * 2;
            let Some(stamps) = &stamps else {
                // The tags could not be checked: a miss.
                if n > 0 {
                    *slot = None;
                }
                continue;
            };
            let mut invalid = false;
            for (j, raw) in stamps[at..at + n].iter().enumerate() {
                if raw.as_deref().and_then(parse_stamp).is_some_and(|s| s >= borns[i]) {
                    if j % 2 == 0 {
                        invalid = true;
                    } else {
                        entry.expired = true;
                    }
                }
            }
            at += n;
            if invalid {
                *slot = None;
            }
        }
        out
    }

    /// Writes an entry to L2 (a failure is logged, never returned), unless an
    /// invalidation came after `ticket` (the run that produced it began before it).
    pub(crate) async fn write_l2<V: Serialize>(
        &self,
        key: &Key,
        entry: &Entry<&V>,
        ttl_ms: Option<u64>,
        ticket: Ticket,
    ) {
        let Some(l2) = &self.l2 else { return };
        if !self.fences.admits(key.id(), ticket) {
            return;
        }
        self.note_lifetime(ttl_ms);
        match serde_json::to_vec(entry) {
            Ok(bytes) => {
                if l2.set(key.as_str(), bytes, ttl_ms.map(Duration::from_millis)).await {
                    self.announce(Change::Set(key.as_str()));
                }
            }
            Err(e) => {
                tracing::warn!(target: "larder", key = key.as_str(), error = %e, "entry could not be encoded for L2")
            }
        }
    }

    /// Deletes one entry from every tier and cancels its run in flight (see the steps at
    /// the top of this file).
    pub(crate) async fn delete(&self, key: &Key) -> bool {
        let stamp = self.clock.order_stamp();
        let in_memory = self.fence_key(key);
        let in_l2 = match &self.l2 {
            Some(l2) => {
                let n = l2.invalidate(Target::Key(key.as_str().to_owned()), stamp, self.stamp_ttl()).await;
                self.fence_key(key);
                n.is_some_and(|n| n > 0)
            }
            None => false,
        };
        self.announce(Change::Delete(key.as_str()));
        in_memory || in_l2
    }

    /// Marks one entry stale in every tier: still usable under `swr`/`grace`, not fresh.
    /// L2 keeps the entry for the time it had left.
    pub(crate) async fn expire(&self, key: &Key) -> bool {
        let in_memory = self.memory.expire(key.id());
        let mut in_l2 = false;
        if let Some(l2) = &self.l2
            && let Some(bytes) = l2.get(key.as_str()).await
            && let Ok(mut entry) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
            && let Some(mtime) = entry.get("mtime").and_then(serde_json::Value::as_u64)
        {
            // Stale in L2: no longer fresh from its production on.
            entry.insert("expires".into(), mtime.into());
            if let Ok(bytes) = serde_json::to_vec(&entry) {
                in_l2 = l2.replace(key.as_str(), bytes).await.unwrap_or(false);
            }
        }
        self.announce(Change::Expire(key.as_str()));
        in_memory || in_l2
    }

    /// Deletes every entry whose key starts with `prefix` from every tier (see the steps
    /// at the top of this file).
    pub(crate) async fn clear_prefix(&self, prefix: &str) -> usize {
        let stamp = self.clock.order_stamp();
        let in_memory = self.fence_prefix(prefix);
        let in_l2 = match &self.l2 {
            Some(l2) => {
                let n = l2.invalidate(Target::Prefix(prefix.to_owned()), stamp, self.stamp_ttl()).await;
                self.fence_prefix(prefix);
                n.unwrap_or(0) as usize
            }
            None => 0,
        };
        self.announce(Change::Clear(prefix));
        in_memory.max(in_l2)
    }

    /// Records a tag event in this instance only (memory tier and runs in flight): for a
    /// local event and for one heard on the bus.
    pub(crate) fn tag_event_in_memory(&self, tag: &str, invalidate: bool) {
        let seq = self.next_seq();
        let (now, keep) = (self.clock.now_ms(), self.longest_ms.load(Ordering::Acquire));
        if invalidate {
            self.tags.invalidate(tag, seq, now, keep);
            // Runs that began after the event produce values from after it: kept.
            self.flights.cancel_where(|_, tags, started| started < seq && tags.iter().any(|t| &**t == tag));
        } else {
            self.tags.expire(tag, seq, now, keep);
        }
    }

    /// Records a tag event locally and in L2 (see the steps at the top of this file).
    pub(crate) async fn tag_event(&self, tag: &str, invalidate: bool) {
        let stamp = self.clock.order_stamp();
        self.tag_event_in_memory(tag, invalidate);
        if let Some(l2) = &self.l2 {
            let target =
                if invalidate { Target::TagInvalidated(tag.to_owned()) } else { Target::TagExpired(tag.to_owned()) };
            l2.invalidate(target, stamp, self.stamp_ttl()).await;
            self.tag_event_in_memory(tag, invalidate);
        }
        self.announce(if invalidate { Change::InvalidateTag(tag) } else { Change::ExpireTag(tag) });
    }
}
