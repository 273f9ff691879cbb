//! The runtime: named mounts, a clock, installed once (or scoped to a future).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Clock;
use crate::error::Error;
use crate::flight::Flights;
use crate::memory::Memory;
use crate::stats::{CacheStats, Stats};
use crate::store::Store;
use crate::tags::Tags;
use crate::tier::{L2, TierHealth};

/// The default number of entries a memory tier holds.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// The name of the mount that `#[cached]` uses when no `base` is given.
pub const DEFAULT_BASE: &str = "cache";

/// How one mount (a `base`) stores its entries: a memory tier (L1), and optionally a
/// [`Store`] behind it (L2: a filesystem, Redis, or your own).
///
/// Reads stop at the first tier that has the entry (an L2 hit fills L1 for the rest of the
/// entry's life); writes go to both. An L2 failure never fails a call (SPEC §6).
#[derive(Clone)]
pub struct Mount {
    capacity: u64,
    l2: Option<Arc<dyn Store>>,
    cooldown: Duration,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("capacity", &self.capacity)
            .field("l2", &self.l2.as_ref().map(|s| s.name().to_owned()))
            .finish()
    }
}

impl Mount {
    /// A memory mount holding at most `capacity` entries (least valuable evicted first).
    /// `0` means no memory tier: every read goes to the L2 store (or the function).
    pub fn memory(capacity: u64) -> Mount {
        Mount { capacity, l2: None, cooldown: Duration::from_secs(10) }
    }

    /// Adds an L2 store behind the memory tier.
    pub fn l2(mut self, store: impl Store) -> Mount {
        self.l2 = Some(Arc::new(store));
        self
    }

    /// Adds a shared L2 store behind the memory tier.
    pub fn l2_shared(mut self, store: Arc<dyn Store>) -> Mount {
        self.l2 = Some(store);
        self
    }

    /// How long L2 is skipped after repeated failures before one call probes it (default 10 s).
    pub fn breaker_cooldown(mut self, cooldown: Duration) -> Mount {
        self.cooldown = cooldown;
        self
    }

    /// The capacity of the memory tier.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

impl Default for Mount {
    fn default() -> Self {
        Mount::memory(DEFAULT_CAPACITY)
    }
}

/// A live mount: its memory tier, its runs in flight, its tag events.
pub(crate) struct LiveMount {
    pub name: Box<str>,
    pub memory: Memory,
    pub flights: Arc<Flights>,
    pub tags: Tags,
    pub l2: Option<L2>,
    /// Where changes are announced to other instances.
    #[cfg(feature = "redis")]
    pub bus: Option<Arc<crate::instances::BusLink>>,
    /// Orders stores against tag events.
    seq: AtomicU64,
}

impl LiveMount {
    fn new(name: &str, config: &Mount, bus: &Bus) -> Arc<LiveMount> {
        #[cfg(not(feature = "redis"))]
        let _ = bus;
        Arc::new(LiveMount {
            name: name.into(),
            memory: Memory::new(config.capacity),
            flights: Flights::new(),
            tags: Tags::new(),
            l2: config.l2.clone().map(|store| L2::new(store, config.cooldown)),
            #[cfg(feature = "redis")]
            bus: bus.clone(),
            seq: AtomicU64::new(1),
        })
    }

    /// The next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }
}

#[cfg(feature = "redis")]
type Bus = Option<Arc<crate::instances::BusLink>>;
#[cfg(not(feature = "redis"))]
type Bus = ();

pub(crate) struct Inner {
    bus: Bus,
    configured: Box<[Arc<LiveMount>]>,
    created: RwLock<Vec<Arc<LiveMount>>>,
    default_mount: Mount,
    pub clock: Clock,
    stats: RwLock<HashMap<String, Arc<Stats>>>,
}

/// A larder runtime: the mounts that cached functions store into, and the clock.
///
/// Without any set-up, cached functions use a global runtime whose every mount is a
/// memory store of [`DEFAULT_CAPACITY`] entries. To configure it, build one at start and
/// [`install`](Runtime::install) it before the first cached call:
///
/// ```
/// # use cache_runtime as larder;
/// use larder::{Mount, Runtime};
///
/// Runtime::builder()
///     .mount("cache", Mount::memory(50_000))
///     .mount("sessions", Mount::memory(1_000))
///     .build()
///     .install()
///     .expect("installed once, at start");
/// ```
///
/// A runtime can also be scoped to one future (every cached call inside it, and the
/// background refreshes it starts, use that runtime): tests use this to get a fresh
/// cache and a [`ManualClock`](crate::ManualClock) each.
///
/// ```
/// # use cache_runtime as larder;
/// use larder::{Clock, ManualClock, Runtime};
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let clock = ManualClock::new();
/// let cache = Runtime::builder().clock(Clock::Manual(clock.clone())).build();
/// cache.scope(async {
///     // cached calls here use `cache`
/// }).await;
/// # });
/// ```
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.mounts().iter().map(|m| m.name.to_string()).collect();
        f.debug_struct("Runtime").field("mounts", &names).field("clock", &self.inner.clock).finish()
    }
}

/// Builds a [`Runtime`].
#[derive(Debug, Default)]
pub struct RuntimeBuilder {
    #[cfg(feature = "redis")]
    bus: Option<(String, String)>,
    mounts: Vec<(String, Mount)>,
    default_mount: Mount,
    clock: Clock,
}

impl RuntimeBuilder {
    /// Configures the mount `name` (the `base` option of `#[cached]` picks a mount).
    /// Mounts not configured here are created on first use with the default mount.
    pub fn mount(mut self, name: impl Into<String>, mount: Mount) -> Self {
        let name = name.into();
        self.mounts.retain(|(n, _)| *n != name);
        self.mounts.push((name, mount));
        self
    }

    /// The configuration of mounts created on first use (default: memory,
    /// [`DEFAULT_CAPACITY`] entries).
    pub fn default_mount(mut self, mount: Mount) -> Self {
        self.default_mount = mount;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Connects the instances that share an L2 through Redis pub/sub (feature `redis`):
    /// what one instance sets, deletes, expires or invalidates, the others drop or expire
    /// from their memory tier. Messages go on the channel `larder:bus` (see
    /// [`bus_channel`](Self::bus_channel)). The bus connects in the background (retrying
    /// while Redis is down); build the runtime inside a Tokio runtime.
    #[cfg(feature = "redis")]
    pub fn bus(mut self, redis_url: impl Into<String>) -> Self {
        let channel = self.bus.take().map_or_else(|| "larder:bus".to_owned(), |(_, c)| c);
        self.bus = Some((redis_url.into(), channel));
        self
    }

    /// The pub/sub channel of the bus (default `larder:bus`): instances that should hear
    /// each other use the same one.
    #[cfg(feature = "redis")]
    pub fn bus_channel(mut self, channel: impl Into<String>) -> Self {
        if let Some((_, c)) = &mut self.bus {
            *c = channel.into();
        }
        self
    }

    /// Builds the runtime.
    pub fn build(self) -> Runtime {
        #[cfg(feature = "redis")]
        let bus: Bus = self.bus.clone().map(|(url, channel)| crate::instances::BusLink::new(url, channel));
        #[cfg(not(feature = "redis"))]
        let bus: Bus = ();
        let mut configured: Vec<Arc<LiveMount>> = self.mounts.iter().map(|(n, m)| LiveMount::new(n, m, &bus)).collect();
        if !configured.iter().any(|m| &*m.name == DEFAULT_BASE) {
            configured.push(LiveMount::new(DEFAULT_BASE, &self.default_mount, &bus));
        }
        let runtime = Runtime {
            inner: Arc::new(Inner {
                bus,
                configured: configured.into_boxed_slice(),
                created: RwLock::new(Vec::new()),
                default_mount: self.default_mount,
                clock: self.clock,
                stats: RwLock::new(HashMap::new()),
            }),
        };
        #[cfg(feature = "redis")]
        if let Some(link) = &runtime.inner.bus {
            crate::instances::start(Arc::clone(link), Arc::downgrade(&runtime.inner));
        }
        runtime
    }
}

impl Inner {
    /// Every live mount.
    pub(crate) fn all_mounts(&self) -> Vec<Arc<LiveMount>> {
        let mut all: Vec<Arc<LiveMount>> = self.configured.to_vec();
        all.extend(self.created.read().iter().cloned());
        all
    }
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

tokio::task_local! {
    static SCOPED: Runtime;
}

impl Runtime {
    /// A builder.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Installs this runtime as the global one. Call it once, at start, before the first
    /// cached call; afterwards it fails with [`Error::AlreadyInstalled`].
    pub fn install(self) -> Result<(), Error> {
        GLOBAL.set(self).map_err(|_| Error::AlreadyInstalled)
    }

    /// The runtime in force here: the scoped one if inside [`scope`](Self::scope), else
    /// the global one (created with defaults on first use).
    pub fn current() -> Runtime {
        with_current(Runtime::clone)
    }

    /// Runs `fut` with this runtime in force for every cached call inside it.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        SCOPED.scope(self.clone(), fut).await
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The live mount `name`, created on first use.
    #[inline]
    pub(crate) fn mount(&self, name: &str) -> Arc<LiveMount> {
        self.with_mount(name, Arc::clone)
    }

    /// Runs `f` on the live mount `name` without cloning its `Arc`.
    #[inline]
    pub(crate) fn with_mount<R>(&self, name: &str, f: impl FnOnce(&Arc<LiveMount>) -> R) -> R {
        if let Some(m) = self.inner.configured.iter().find(|m| &*m.name == name) {
            return f(m);
        }
        if let Some(m) = self.inner.created.read().iter().find(|m| &*m.name == name) {
            return f(m);
        }
        let mut created = self.inner.created.write();
        if let Some(m) = created.iter().find(|m| &*m.name == name) {
            return f(m);
        }
        let m = LiveMount::new(name, &self.inner.default_mount, &self.inner.bus);
        created.push(Arc::clone(&m));
        f(&m)
    }

    /// Every live mount.
    pub(crate) fn mounts(&self) -> Vec<Arc<LiveMount>> {
        self.inner.all_mounts()
    }

    /// Whether the bus is connected (feature `redis`; false without a bus).
    pub fn bus_connected(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.inner.bus.as_ref().is_some_and(|b| b.connected());
        #[cfg(not(feature = "redis"))]
        false
    }

    /// The number of entries in the memory tier of mount `name`.
    pub fn memory_len(&self, name: &str) -> u64 {
        self.with_mount(name, |m| m.memory.len())
    }

    /// The health of the L2 of mount `name` (all zero without L2).
    pub fn tier_health(&self, name: &str) -> TierHealth {
        self.with_mount(name, |m| m.l2.as_ref().map(L2::health).unwrap_or_default())
    }

    /// Every key in the memory tier of mount `name` that starts with `prefix`, sorted.
    pub fn keys(&self, name: &str, prefix: &str) -> Vec<String> {
        self.with_mount(name, |m| m.memory.keys(prefix))
    }

    /// The live counters of the function whose keys start with `prefix`.
    pub(crate) fn stats_for(&self, prefix: &str) -> Arc<Stats> {
        if let Some(s) = self.inner.stats.read().get(prefix) {
            return Arc::clone(s);
        }
        Arc::clone(self.inner.stats.write().entry(prefix.to_owned()).or_default())
    }

    /// The counters of the function whose keys start with `prefix` (`group:name:`).
    pub fn stats(&self, prefix: &str) -> CacheStats {
        self.inner.stats.read().get(prefix).map(|s| s.snapshot()).unwrap_or_default()
    }

    /// Runs `fut` inside this runtime's scope, on a tokio task that outlives the caller.
    /// Without a tokio runtime there is nothing to run it on: it is dropped and `false`
    /// is returned.
    pub(crate) fn spawn<F>(&self, fut: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(SCOPED.scope(self.clone(), fut));
                true
            }
            Err(_) => {
                tracing::warn!(target: "larder", "no tokio runtime: background refresh skipped");
                false
            }
        }
    }
}

/// Runs `f` with the runtime in force, without cloning it.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    let mut f = Some(f);
    if let Ok(r) = SCOPED.try_with(|rt| (f.take().expect("called once"))(rt)) {
        return r;
    }
    (f.take().expect("called once"))(GLOBAL.get_or_init(|| Runtime::builder().build()))
}
