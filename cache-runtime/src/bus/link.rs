//! A runtime's side of the bus ([`BusLink`]): its name on the bus, and publishing its
//! mounts' changes in the background, so that a slow or dead bus delays no call.
//!
//! An invalidation that could not be published (the bus is not connected yet, or the
//! server failed or timed out) is not dropped: it is kept, one per mount and target (the
//! newest wins), at most [`MAX_UNSENT`] (past it they collapse into one "clear" of each
//! mount concerned, which is always safe), and sent again until the bus takes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use parking_lot::Mutex;

use crate::bus::connection::Bus;
use crate::bus::wire::{BusMessage, BusOp};

/// The most unsent invalidations kept.
pub(crate) const MAX_UNSENT: usize = 10_000;

/// How a runtime reaches the bus: set once connected.
pub(crate) struct BusLink {
    pub url: String,
    pub channel: String,
    pub origin: String,
    bus: OnceLock<Bus>,
    /// Invalidations not published yet, by mount and target.
    unsent: Mutex<HashMap<String, BusMessage>>,
    resending: AtomicBool,
}

impl BusLink {
    pub fn new(url: String, channel: String) -> Arc<BusLink> {
        let origin = format!(
            "{}-{:x}",
            std::process::id(),
            xxhash_rust::xxh3::xxh3_64(format!("{:?}", std::time::SystemTime::now()).as_bytes())
        );
        Arc::new(BusLink {
            url,
            channel,
            origin,
            bus: OnceLock::new(),
            unsent: Mutex::new(HashMap::new()),
            resending: AtomicBool::new(false),
        })
    }

    /// Whether the bus is connected (at least once).
    pub fn connected(&self) -> bool {
        self.bus.get().is_some()
    }

    /// How many invalidations wait to be published.
    pub fn unsent(&self) -> usize {
        self.unsent.lock().len()
    }

    /// Publishes in the background: a slow or dead bus delays nothing. An invalidation
    /// that cannot be published is kept and sent again.
    pub fn publish(self: &Arc<Self>, mount: &str, op: BusOp) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let message = BusMessage::new(mount, op);
        let Some(bus) = self.bus.get().cloned() else {
            self.keep(message);
            return;
        };
        let me = Arc::clone(self);
        handle.spawn(async move {
            if let Err(e) = bus.publish(message.clone()).await {
                tracing::warn!(target: "larder", error = %e, "bus publish failed; an invalidation is kept and sent again");
                me.keep(message);
            }
        });
    }

    /// Keeps an unpublished invalidation (a `set` is not one: dropped) and makes sure a
    /// task sends it again.
    fn keep(self: &Arc<Self>, message: BusMessage) {
        let target = match &message.op {
            BusOp::Set { .. } => return,
            BusOp::Delete { keys } => format!("delete {}", keys.join(" ")),
            BusOp::Expire { keys } => format!("expire {}", keys.join(" ")),
            BusOp::Clear { prefix } => format!("clear {prefix}"),
            BusOp::InvalidateTag { tag } => format!("invalidate_tag {tag}"),
            BusOp::ExpireTag { tag } => format!("expire_tag {tag}"),
        };
        {
            let mut unsent = self.unsent.lock();
            let mount = message.mount.clone();
            unsent.insert(format!("{mount}\n{target}"), message);
            if unsent.len() > MAX_UNSENT {
                let mounts: std::collections::BTreeSet<String> = unsent.values().map(|m| m.mount.clone()).collect();
                unsent.clear();
                for mount in mounts {
                    let clear = BusMessage::new(mount.clone(), BusOp::Clear { prefix: String::new() });
                    unsent.insert(format!("{mount}\nclear "), clear);
                }
            }
        }
        if self.resending.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.resending.store(false, Ordering::Release);
            return;
        };
        let me = Arc::clone(self);
        handle.spawn(async move { me.resend().await });
    }

    /// Sends the kept invalidations until none is left (or the runtime is gone).
    async fn resend(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            tokio::time::sleep(backoff).await;
            if Arc::strong_count(&self) == 1 {
                return;
            }
            let Some(bus) = self.bus.get().cloned() else { continue };
            let todo: Vec<(String, BusMessage)> =
                self.unsent.lock().iter().map(|(k, m)| (k.clone(), m.clone())).collect();
            // Many at a time: the connection pipelines them.
            let failures = futures_util::stream::iter(todo)
                .map(|(target, message)| {
                    let bus = bus.clone();
                    let me = &self;
                    async move {
                        if bus.publish(message.clone()).await.is_err() {
                            return 1usize;
                        }
                        let mut unsent = me.unsent.lock();
                        if unsent.get(&target).is_some_and(|m| *m == message) {
                            unsent.remove(&target);
                        }
                        0
                    }
                })
                .buffer_unordered(32)
                .fold(0usize, |n, f| async move { n + f })
                .await;
            let failed = failures > 0;
            backoff = if failed { (backoff * 2).min(Duration::from_secs(1)) } else { Duration::from_millis(50) };
            let unsent = self.unsent.lock();
            if unsent.is_empty() {
                // Under the lock: a message kept after this starts its own task.
                self.resending.store(false, Ordering::Release);
                return;
            }
        }
    }

    /// Keeps the connection once it is up (the first one wins).
    pub(crate) fn connected_with(&self, bus: Bus) {
        let _ = self.bus.set(bus);
    }
}
