//! Applying what other instances say: a runtime with a bus connects it (retrying while
//! Redis is down) and drops or expires its own memory copies when told. After a reconnect
//! an instance cannot know what it missed, so it expires its whole memory tier.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::bus::connection::{Bus, BusEvent};
use crate::bus::link::BusLink;
use crate::bus::wire::BusOp;
use crate::key::storage_key::Key;
use crate::mount::live::LiveMount;
use crate::mount::registry::Mounts;

/// Connects the bus (retrying while Redis is down) and applies what other instances say.
/// Ends when the runtime (its mounts) is dropped.
pub(crate) fn start(link: Arc<BusLink>, mounts: Weak<Mounts>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(target: "larder", "a bus is configured but the runtime was built outside Tokio: no bus");
        return;
    };
    handle.spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut events = loop {
            if mounts.strong_count() == 0 {
                return;
            }
            match Bus::connect(&link.url, &link.channel, &link.origin).await {
                Ok((bus, events)) => {
                    link.connected_with(bus);
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
            let Some(mounts) = mounts.upgrade() else { return };
            apply(&mounts, event);
        }
    });
}

fn apply(mounts: &Mounts, event: BusEvent) {
    match event {
        BusEvent::Reconnected => {
            tracing::info!(target: "larder", "bus reconnected: expiring the memory tier (messages may have been missed)");
            for mount in mounts.all() {
                mount.memory.expire_prefix("");
            }
        }
        BusEvent::Message(message) => {
            // A message for every mount (`""`, as the CLI sends without `--mount`) is applied to
            // each: at worst a memory copy of the same key in another mount is dropped.
            let all = mounts.all();
            let targets = all.iter().filter(|m| message.mount.is_empty() || *m.name == *message.mount);
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
