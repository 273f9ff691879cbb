//! A runtime's side of the bus ([`BusLink`]): its name on the bus, and publishing its
//! mounts' changes in the background, so that a slow or dead bus delays no call.

use std::sync::{Arc, OnceLock};

use crate::bus::connection::Bus;
use crate::bus::wire::{BusMessage, BusOp};

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

    /// Keeps the connection once it is up (the first one wins).
    pub(crate) fn connected_with(&self, bus: Bus) {
        let _ = self.bus.set(bus);
    }
}
