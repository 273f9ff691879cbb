//! The mounts of one runtime ([`Mounts`]): those configured at build time, and those
//! created on first use with the default configuration. A mount is found by its name
//! (the `base` option of `#[cached]`) without a lock on the hit path for configured ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::RwLock;

use crate::call::spec::MountHint;
use crate::clock::Clock;
use crate::mount::config::{DEFAULT_HTTP_BYTES, DEFAULT_HTTP_MOUNT, DEFAULT_MOUNT, Mount};
use crate::mount::l1::memory::MemoryBound;
use crate::mount::live::LiveMount;

/// The mounts of one runtime, by name.
pub(crate) struct Mounts {
    /// Unique among the runtimes of the process (never 0), for [`MountHint`]s.
    id: u32,
    configured: Box<[Arc<LiveMount>]>,
    created: RwLock<Vec<Arc<LiveMount>>>,
    /// The configuration of mounts created on first use.
    default_config: Mount,
    /// Where every mount announces its changes to other instances.
    #[cfg(feature = "redis")]
    bus: Option<Arc<crate::bus::link::BusLink>>,
    clock: Clock,
}

impl Mounts {
    /// The configured mounts, and the default mount unless it is one of them.
    pub fn new(
        configured: &[(String, Mount)],
        default_config: Mount,
        clock: Clock,
        #[cfg(feature = "redis")] bus: Option<Arc<crate::bus::link::BusLink>>,
    ) -> Mounts {
        static NEXT_ID: AtomicU32 = AtomicU32::new(1);
        let mut mounts = Mounts {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed).max(1),
            configured: Box::new([]),
            created: RwLock::new(Vec::new()),
            default_config,
            #[cfg(feature = "redis")]
            bus,
            clock,
        };
        let mut live: Vec<Arc<LiveMount>> = configured.iter().map(|(name, config)| mounts.live(name, config)).collect();
        if !live.iter().any(|m| &*m.name == DEFAULT_MOUNT) {
            live.push(mounts.live(DEFAULT_MOUNT, &mounts.default_config));
        }
        mounts.configured = live.into_boxed_slice();
        mounts
    }

    fn live(&self, name: &str, config: &Mount) -> Arc<LiveMount> {
        let mount = LiveMount::new(name, config, self.clock.clone());
        #[cfg(feature = "redis")]
        let mount = mount.announcing_on(self.bus.clone());
        Arc::new(mount)
    }

    /// The bus the mounts announce on, if any.
    #[cfg(feature = "redis")]
    pub fn bus(&self) -> Option<&Arc<crate::bus::link::BusLink>> {
        self.bus.as_ref()
    }

    /// The mount `name`, created on first use.
    #[inline]
    pub fn get(&self, name: &str) -> Arc<LiveMount> {
        self.with(name, Arc::clone)
    }

    /// [`with`](Self::with), where `hint` says where the mount was found last time (for
    /// this runtime: then no name is compared) and is told where it is now.
    #[inline]
    pub fn with_hinted<R>(&self, name: &str, hint: &MountHint, f: impl FnOnce(&Arc<LiveMount>) -> R) -> R {
        if let Some(m) = hint.index_in(self.id).and_then(|i| self.configured.get(i)) {
            return f(m);
        }
        if let Some(i) = self.configured.iter().position(|m| &*m.name == name) {
            hint.set(self.id, i);
            return f(&self.configured[i]);
        }
        self.with(name, f)
    }

    /// Runs `f` on the mount `name` (created on first use) without cloning its `Arc`.
    #[inline]
    pub fn with<R>(&self, name: &str, f: impl FnOnce(&Arc<LiveMount>) -> R) -> R {
        if let Some(m) = self.configured.iter().find(|m| &*m.name == name) {
            return f(m);
        }
        if let Some(m) = self.created.read().iter().find(|m| &*m.name == name) {
            return f(m);
        }
        let mut created = self.created.write();
        if let Some(m) = created.iter().find(|m| &*m.name == name) {
            return f(m);
        }
        let m = if name == DEFAULT_HTTP_MOUNT && self.default_config.memory_bound() == Mount::default().memory_bound() {
            // Responses can be large and their URLs chosen by anyone: bytes bound them.
            self.live(name, &self.default_config.clone().with_memory_bound(MemoryBound::Bytes(DEFAULT_HTTP_BYTES)))
        } else {
            self.live(name, &self.default_config)
        };
        created.push(Arc::clone(&m));
        f(&m)
    }

    /// Every mount.
    pub fn all(&self) -> Vec<Arc<LiveMount>> {
        let mut all: Vec<Arc<LiveMount>> = self.configured.to_vec();
        all.extend(self.created.read().iter().cloned());
        all
    }
}
