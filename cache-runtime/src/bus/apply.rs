//! Applying what other instances say: a runtime with a bus connects it (retrying while
//! Redis is down) and, when told of an invalidation, does in its own memory what the
//! sender did in its own (raise the fence, cancel the runs in flight, drop the copies), so
//! that a run in flight here when the message arrives stores nothing. After a reconnect
//! (or a first connection that had to be retried) an instance cannot know what it
//! missed: it fences and drops its whole memory tier (L2, which the invalidations reached,
//! refills it).

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
        let mut retried = false;
        let mut events = loop {
            if mounts.strong_count() == 0 {
                return;
            }
            match Bus::connect(&link.url, &link.channel, &link.origin).await {
                Ok((bus, events)) => {
                    link.connected_with(bus);
                    if retried && let Some(mounts) = mounts.upgrade() {
                        apply(&mounts, BusEvent::Reconnected);
                    }
                    break events;
                }
                Err(e) => {
                    retried = true;
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
            tracing::info!(target: "larder", "bus reconnected: dropping the memory tier (messages may have been missed)");
            for mount in mounts.all() {
                mount.fence_prefix("");
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
        // A newer value: the copy here is older, not invalid.
        BusOp::Set { keys } => {
            for k in keys {
                mount.memory.remove(Key::from_full(k).id());
            }
        }
        BusOp::Delete { keys } => {
            for k in keys {
                mount.fence_key(&Key::from_full(k));
            }
        }
        BusOp::Expire { keys } => {
            for k in keys {
                mount.memory.expire(Key::from_full(k).id());
            }
        }
        BusOp::Clear { prefix } => {
            mount.fence_prefix(&prefix);
        }
        BusOp::InvalidateTag { tag } => mount.tag_event_in_memory(&tag, true),
        BusOp::ExpireTag { tag } => mount.tag_event_in_memory(&tag, false),
    }
}
