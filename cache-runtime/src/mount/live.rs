//! A live mount ([`LiveMount`]): its memory tier, its L2, its runs in flight, its tag
//! events, and every operation that spans them. Each operation here is the one place
//! where it touches every tier: reading and filling from L2, writing to L2, deleting,
//! expiring, clearing a prefix, recording a tag event, and telling other instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::entry::Entry;
use crate::key::storage_key::Key;
use crate::mount::config::Mount;
use crate::mount::flights::Flights;
use crate::mount::l1::Memory;
use crate::mount::l2::L2;
use crate::mount::tags::{TagStamps, Tags, tag_key};

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
    /// Orders stores against tag events.
    seq: AtomicU64,
}

impl LiveMount {
    /// A mount named `name`, configured by `config`, that tells no other instance.
    pub fn new(name: &str, config: &Mount) -> LiveMount {
        LiveMount {
            name: name.into(),
            memory: Memory::new(config.capacity()),
            flights: Flights::new(),
            tags: Tags::new(),
            l2: config.l2_store().map(|store| L2::new(Arc::clone(store), config.cooldown())),
            #[cfg(feature = "redis")]
            bus: None,
            seq: AtomicU64::new(1),
        }
    }

    /// The same mount, announcing its changes on `bus`.
    #[cfg(feature = "redis")]
    pub fn announcing_on(self, bus: Option<Arc<crate::bus::link::BusLink>>) -> LiveMount {
        LiveMount { bus, ..self }
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// An entry read from L2, checked against its tags.
pub(crate) struct FromL2<V> {
    pub value: V,
    pub mtime: u64,
    pub expires: u64,
    pub tags: Vec<Box<str>>,
    /// The entry's integrity, parsed (`None`: not a 128-bit hex number).
    pub integrity: Option<u128>,
    /// A tag was expired after the entry was produced.
    pub expired: bool,
}

/// The entry as [`LiveMount::read_l2`] decodes it: the integrity and the tags
/// borrowed from the bytes where they can be (no allocation for the integrity).
#[derive(serde::Deserialize)]
struct EntryView<'a, V> {
    value: V,
    mtime: u64,
    expires: u64,
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

impl LiveMount {
    /// Tells the other instances (feature `redis`, with a bus); a no-op otherwise.
    pub(crate) fn announce(&self, change: Change<'_>) {
        #[cfg(feature = "redis")]
        if let Some(link) = &self.bus {
            use crate::bus::wire::BusOp;
            let op = match change {
                Change::Set(k) => BusOp::Set { keys: vec![k.to_owned()] },
                Change::Delete(k) => BusOp::Delete { keys: vec![k.to_owned()] },
                Change::Expire(k) => BusOp::Expire { keys: vec![k.to_owned()] },
                Change::Clear(p) => BusOp::Clear { prefix: p.to_owned() },
                Change::InvalidateTag(t) => BusOp::InvalidateTag { tag: t.to_owned() },
                Change::ExpireTag(t) => BusOp::ExpireTag { tag: t.to_owned() },
            };
            link.publish(&self.name, op);
        }
        #[cfg(not(feature = "redis"))]
        let _ = change;
    }

    /// Reads `key` from L2: decodes it, checks integrity and tags (one round trip for all
    /// of its tags). An unreadable entry is deleted and is a miss; a foreign integrity is
    /// a miss.
    pub(crate) async fn read_l2<V: DeserializeOwned>(&self, key: &Key, integrity: Option<u128>) -> Option<FromL2<V>> {
        let l2 = self.l2.as_ref()?;
        let bytes = l2.get(key.as_str()).await?;
        let entry: EntryView<'_, V> = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target: "larder", key = key.as_str(), error = %e, "unreadable entry in L2: deleted, treated as a miss");
                l2.delete(key.as_str()).await;
                return None;
            }
        };
        let parsed = u128::from_str_radix(&entry.integrity, 16).ok();
        if integrity.is_some_and(|i| parsed != Some(i)) {
            return None;
        }
        let mut expired = false;
        if !entry.tags.is_empty() {
            let keys: Vec<String> = entry.tags.iter().map(|t| tag_key(t)).collect();
            let stamps = l2.get_many(&keys).await?;
            for raw in stamps.into_iter().flatten() {
                let Ok(s) = serde_json::from_slice::<TagStamps>(&raw) else { continue };
                if s.invalidated >= entry.mtime {
                    return None;
                }
                expired |= s.expired >= entry.mtime;
            }
        }
        let tags = entry.tags.into_iter().map(|t| Box::<str>::from(&*t)).collect();
        Some(FromL2 {
            value: entry.value,
            mtime: entry.mtime,
            expires: entry.expires,
            tags,
            integrity: parsed,
            expired,
        })
    }

    /// Writes an entry to L2 (a failure is logged, never returned).
    pub(crate) async fn write_l2<V: Serialize>(&self, key: &Key, entry: &Entry<&V>, ttl_ms: Option<u64>) {
        let Some(l2) = &self.l2 else { return };
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

    /// Deletes one entry from every tier and cancels its run in flight.
    pub(crate) async fn delete(&self, key: &Key) -> bool {
        self.flights.cancel(key.id());
        let in_memory = self.memory.remove(key.id());
        let in_l2 = match &self.l2 {
            Some(l2) => l2.delete(key.as_str()).await,
            None => false,
        };
        self.announce(Change::Delete(key.as_str()));
        in_memory || in_l2
    }

    /// Marks one entry stale in every tier: still usable under `swr`/`grace`, not fresh.
    pub(crate) async fn expire(&self, key: &Key) -> bool {
        let in_memory = self.memory.expire(key.id());
        let mut in_l2 = false;
        if let Some(l2) = &self.l2
            && let Some(bytes) = l2.get(key.as_str()).await
            && let Ok(mut entry) = serde_json::from_slice::<Entry<serde_json::Value>>(&bytes)
        {
            // Stale in L2: no longer fresh from its production on.
            entry.expires = entry.mtime;
            if let Ok(bytes) = serde_json::to_vec(&entry) {
                in_l2 = l2.set(key.as_str(), bytes, None).await;
            }
        }
        self.announce(Change::Expire(key.as_str()));
        in_memory || in_l2
    }

    /// Deletes every entry whose key starts with `prefix` from every tier.
    pub(crate) async fn clear_prefix(&self, prefix: &str) -> usize {
        self.flights.cancel_where(|key, _, _| key.starts_with(prefix));
        let in_memory = self.memory.remove_prefix(prefix);
        let in_l2 = match &self.l2 {
            Some(l2) => l2.delete_prefix(prefix).await as usize,
            None => 0,
        };
        self.announce(Change::Clear(prefix));
        in_memory.max(in_l2)
    }

    /// Records a tag event in this instance only (memory tier and runs in flight): for a
    /// local event and for one heard on the bus.
    pub(crate) fn tag_event_in_memory(&self, tag: &str, invalidate: bool) {
        let seq = self.next_seq();
        if invalidate {
            self.tags.invalidate(tag, seq);
            // Runs that began after the event produce values from after it: kept.
            self.flights.cancel_where(|_, tags, started| started < seq && tags.iter().any(|t| &**t == tag));
        } else {
            self.tags.expire(tag, seq);
        }
    }

    /// Records a tag event locally and in L2.
    pub(crate) async fn tag_event(&self, tag: &str, invalidate: bool, now_ms: u64) {
        self.tag_event_in_memory(tag, invalidate);
        if let Some(l2) = &self.l2 {
            let key = tag_key(tag);
            let mut stamps = match l2.get(&key).await {
                Some(raw) => serde_json::from_slice::<TagStamps>(&raw).unwrap_or_default(),
                None => TagStamps::default(),
            };
            if invalidate {
                stamps.invalidated = now_ms;
            } else {
                stamps.expired = now_ms;
            }
            if let Ok(bytes) = serde_json::to_vec(&stamps) {
                l2.set(&key, bytes, None).await;
            }
        }
        self.announce(if invalidate { Change::InvalidateTag(tag) } else { Change::ExpireTag(tag) });
    }
}
