//! Keeping every instance's memory tier honest (SPEC §6): each runtime with a bus tells the
//! others what it changed in L2, and drops or expires its own memory copies when told.
//! Messages carry keys, never values. After a reconnect an instance cannot know what it
//! missed, so it expires its whole memory tier.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crate::bus::{Bus, BusEvent, BusMessage, BusOp};
use crate::key::Key;
use crate::runtime::{Inner, LiveMount};

/// How a runtime reaches the bus: set once connected.
pub(crate) struct BusLink {
    pub url: String,
    pub channel: String,
    pub origin: String,
    bus: OnceLock<Bus>,
}

impl BusLink {
    pub fn new(url: String, channel: String) -> Arc<BusLink> {
        let origin = format!(
            "{}-{:x}",
            std::process::id(),
            xxhash_rust::xxh3::xxh3_64(format!("{:?}", std::time::SystemTime::now()).as_bytes())
        );
        Arc::new(BusLink { url, channel, origin, bus: OnceLock::new() })
    }

    /// Whether the bus is connected (at least once).
    pub fn connected(&self) -> bool {
        self.bus.get().is_some()
    }

    /// Publishes in the background: a slow or dead bus delays nothing.
    pub fn publish(&self, mount: &str, op: BusOp) {
        let Some(bus) = self.bus.get().cloned() else { return };
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let message = BusMessage::new(mount, op);
        handle.spawn(async move {
            if let Err(e) = bus.publish(message).await {
                tracing::warn!(target: "larder", error = %e, "bus publish failed; other instances may serve an old copy until it expires");
            }
        });
    }
}

/// Connects the bus (retrying while Redis is down) and applies what other instances say.
/// Ends when the runtime is dropped.
pub(crate) fn start(link: Arc<BusLink>, runtime: Weak<Inner>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(target: "larder", "a bus is configured but the runtime was built outside Tokio: no bus");
        return;
    };
    handle.spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut events = loop {
            if runtime.strong_count() == 0 {
                return;
            }
            match Bus::connect(&link.url, &link.channel, &link.origin).await {
                Ok((bus, events)) => {
                    let _ = link.bus.set(bus);
                    break events;
                }
                Err(e) => {
                    tracing::warn!(target: "larder", error = %e, "bus not reachable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        while let Some(event) = events.recv().await {
            let Some(inner) = runtime.upgrade() else { return };
            apply(&inner, event);
        }
    });
}

fn apply(inner: &Inner, event: BusEvent) {
    match event {
        BusEvent::Reconnected => {
            tracing::info!(target: "larder", "bus reconnected: expiring the memory tier (messages may have been missed)");
            for mount in inner.all_mounts() {
                mount.memory.expire_prefix("");
            }
        }
        BusEvent::Message(message) => {
            // A message for every mount (`""`, as the CLI sends without `--mount`) is applied to
            // each: at worst a memory copy of the same key in another mount is dropped.
            let mounts = inner.all_mounts();
            let targets = mounts.iter().filter(|m| message.mount.is_empty() || *m.name == *message.mount);
            for mount in targets {
                apply_op(mount, message.op.clone());
            }
        }
    }
}

fn apply_op(mount: &LiveMount, op: BusOp) {
    match op {
        BusOp::Set { keys } | BusOp::Delete { keys } => {
            for k in keys {
                mount.memory.remove(Key::from_full(k).id());
            }
        }
        BusOp::Expire { keys } => {
            for k in keys {
                mount.memory.expire(Key::from_full(k).id());
            }
        }
        BusOp::Clear { prefix } => {
            mount.flights.cancel_where(|key, _, _| key.starts_with(&prefix));
            mount.memory.remove_prefix(&prefix);
        }
        BusOp::InvalidateTag { tag } => mount.tag_event_in_memory(&tag, true),
        BusOp::ExpireTag { tag } => mount.tag_event_in_memory(&tag, false),
    }
}
