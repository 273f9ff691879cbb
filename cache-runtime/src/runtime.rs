//! The runtime ([`Runtime`]): the registry of mounts, the clock and the per-function
//! counters; installed once as the global runtime, or scoped to one future. The operations
//! that reach every mount (`clear`, `clear_group`, `invalidate_tag`, `expire_tag`) are here.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::call::spec::FnSpec;
use crate::clock::Clock;
use crate::error::Error;
use crate::key::storage_key::{IdMap, prefix_id};
use crate::mount::config::Mount;
use crate::mount::l2::TierHealth;
use crate::mount::live::LiveMount;
use crate::mount::registry::Mounts;
use crate::mount::stats::{CacheStats, Stats};

/// What the clones of one runtime share.
pub(crate) struct RuntimeState {
    mounts: Arc<Mounts>,
    clock: Clock,
    /// By prefix id (a hash of the prefix: no second hash per call), the prefix checked.
    stats: RwLock<StatsByPrefix>,
}

/// The counters of each function, under its prefix's id (the prefixes that share one id,
/// if ever, side by side).
type StatsByPrefix = IdMap<Vec<(Box<str>, Arc<Stats>)>>;

/// The counters of the function with this prefix, whose prefix id is `id`.
fn stats_of<'m>(map: &'m StatsByPrefix, prefix: &str, id: u128) -> Option<&'m Arc<Stats>> {
    map.get(&id)?.iter().find(|(p, _)| **p == *prefix).map(|(_, s)| s)
}

/// A larder runtime: the mounts that cached functions store into, and the clock.
///
/// Without any set-up, cached functions use a global runtime whose every mount is a
/// memory store of [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY) entries. To configure it, build one at start and
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
    state: Arc<RuntimeState>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.mounts().iter().map(|m| m.name.to_string()).collect();
        f.debug_struct("Runtime").field("mounts", &names).field("clock", &self.state.clock).finish()
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
    /// [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY) entries).
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
        let bus = self.bus.clone().map(|(url, channel)| crate::bus::link::BusLink::new(url, channel));
        let mounts = Arc::new(Mounts::new(
            &self.mounts,
            self.default_mount,
            self.clock.clone(),
            #[cfg(feature = "redis")]
            bus.clone(),
        ));
        #[cfg(feature = "redis")]
        if let Some(link) = bus {
            crate::bus::apply::start(link, Arc::downgrade(&mounts));
        }
        Runtime { state: Arc::new(RuntimeState { mounts, clock: self.clock, stats: RwLock::new(IdMap::default()) }) }
    }
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

tokio::task_local! {
    static SCOPED: Runtime;
}

/// Whether any runtime but the global one was ever put in force by a scope: until then
/// the runtime in force is the global one, and a call does not look for a scope.
static SCOPES_USED: AtomicBool = AtomicBool::new(false);

/// Notes that `rt` is about to be put in force by a scope: from then on calls look for
/// one, unless `rt` is the global runtime (in force without a scope all the same).
fn note_scope(rt: &Runtime) {
    if GLOBAL.get().is_none_or(|g| !Arc::ptr_eq(&g.state, &rt.state)) {
        SCOPES_USED.store(true, Ordering::Relaxed);
    }
}

/// `fut` with `rt` in force, in its scope.
fn scoped<F: Future>(rt: &Runtime, fut: F) -> tokio::task::futures::TaskLocalFuture<Runtime, F> {
    note_scope(rt);
    SCOPED.scope(rt.clone(), fut)
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
        scoped(self, fut).await
    }

    /// Runs `f` with this runtime in force for every cached call inside it: the
    /// [`scope`](Self::scope) of sync code (sync cached functions, and the background
    /// refreshes they start).
    pub fn scope_sync<R>(&self, f: impl FnOnce() -> R) -> R {
        note_scope(self);
        SCOPED.sync_scope(self.clone(), f)
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// The live mount `name`, created on first use.
    #[inline]
    pub(crate) fn mount(&self, name: &str) -> Arc<LiveMount> {
        self.state.mounts.get(name)
    }

    /// Runs `f` on the live mount `name` without cloning its `Arc`.
    #[inline]
    pub(crate) fn with_mount<R>(&self, name: &str, f: impl FnOnce(&Arc<LiveMount>) -> R) -> R {
        self.state.mounts.with(name, f)
    }

    /// Runs `f` on the mount of `spec`, found through its hint.
    #[inline]
    pub(crate) fn with_mount_of<R>(&self, spec: &crate::call::spec::FnSpec, f: impl FnOnce(&Arc<LiveMount>) -> R) -> R {
        self.state.mounts.with_hinted(&spec.mount, &spec.mount_hint, f)
    }

    /// Every live mount.
    pub(crate) fn mounts(&self) -> Vec<Arc<LiveMount>> {
        self.state.mounts.all()
    }

    /// Whether the bus is connected (feature `redis`; false without a bus).
    pub fn bus_connected(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.state.mounts.bus().is_some_and(|b| b.connected());
        #[cfg(not(feature = "redis"))]
        false
    }

    /// The number of entries in the memory tier of mount `name`.
    pub fn memory_len(&self, name: &str) -> u64 {
        self.with_mount(name, |m| m.memory.len())
    }

    /// What the entries in the memory tier of mount `name` weigh: bytes when it is bounded
    /// by bytes ([`Mount::memory_bytes`](crate::Mount::memory_bytes)), else their number.
    pub fn memory_weight(&self, name: &str) -> u64 {
        self.with_mount(name, |m| m.memory.weight())
    }

    /// The health of the L2 of mount `name` (all zero without L2).
    pub fn tier_health(&self, name: &str) -> TierHealth {
        self.with_mount(name, |m| m.l2.as_ref().map(|l2| l2.health()).unwrap_or_default())
    }

    /// Invalidations this runtime made that have not reached everything yet: those kept for
    /// an L2 that failed (all mounts) and those kept for a bus that could not take them.
    /// `0`: every invalidation made so far is in L2 and was told to the other instances.
    pub fn unsettled_invalidations(&self) -> usize {
        let in_l2: usize = self.mounts().iter().map(|m| m.l2.as_ref().map_or(0, |l2| l2.health().pending)).sum();
        #[cfg(feature = "redis")]
        let on_bus = self.state.mounts.bus().map_or(0, |b| b.unsent());
        #[cfg(not(feature = "redis"))]
        let on_bus = 0;
        in_l2 + on_bus
    }

    /// Every key in the memory tier of mount `name` that starts with `prefix`, sorted.
    pub fn keys(&self, name: &str, prefix: &str) -> Vec<String> {
        self.with_mount(name, |m| m.memory.keys(prefix))
    }

    /// The live counters of the function of `spec` (found by its prefix id: no hash of
    /// the prefix per call).
    pub(crate) fn stats_for(&self, spec: &FnSpec) -> Arc<Stats> {
        let (prefix, id) = (&*spec.prefix, spec.prefix_id);
        if let Some(s) = stats_of(&self.state.stats.read(), prefix, id) {
            return Arc::clone(s);
        }
        let mut map = self.state.stats.write();
        if let Some(s) = stats_of(&map, prefix, id) {
            return Arc::clone(s);
        }
        let s = Arc::new(Stats::default());
        map.entry(id).or_default().push((prefix.into(), Arc::clone(&s)));
        s
    }

    /// The counters of the function whose keys start with `prefix` (`group:name:`).
    pub fn stats(&self, prefix: &str) -> CacheStats {
        stats_of(&self.state.stats.read(), prefix, prefix_id(prefix)).map(|s| s.snapshot()).unwrap_or_default()
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
                handle.spawn(scoped(self, fut));
                true
            }
            Err(_) => {
                tracing::warn!(target: "larder", "no tokio runtime: background refresh skipped");
                false
            }
        }
    }
}

impl Runtime {
    /// Runs `fut` inside this runtime's scope on a thread of a blocking pool (a sync body's
    /// background run): the pool of the Tokio runtime entered here, else of larder's own.
    pub(crate) fn spawn_blocking<F>(&self, fut: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let fut = scoped(self, fut);
        drop(crate::blocking::blocking_handle().spawn_blocking(move || crate::blocking::drive(fut)));
        true
    }
}

/// Runs `f` with the runtime in force, without cloning it.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Runtime) -> R) -> R {
    let mut f = Some(f);
    if SCOPES_USED.load(Ordering::Relaxed)
        && let Ok(r) = SCOPED.try_with(|rt| (f.take().expect("called once"))(rt))
    {
        return r;
    }
    (f.take().expect("called once"))(GLOBAL.get_or_init(|| Runtime::builder().build()))
}

/// Deletes every entry of `group` (and of its sub-groups `group/…`) on every mount: the
/// keys under `{group}:` and `{group}.` (a `/` in a group is stored as `.`). No other
/// group's entries are touched: clearing `a` leaves `ab`, and clearing `a/b` leaves the
/// function `b` of the group `a`.
pub async fn clear_group(group: &str) -> usize {
    let prefixes = cache_keyspace::group_prefixes(group);
    let mut n = 0;
    for mount in Runtime::current().mounts() {
        for prefix in &prefixes {
            n += mount.clear_prefix(prefix).await;
        }
    }
    n
}

/// Deletes every entry on every mount.
pub async fn clear() -> usize {
    let mut n = 0;
    for mount in Runtime::current().mounts() {
        n += mount.clear_prefix("").await;
    }
    n
}

/// Invalidates every entry tagged `tag`, on every mount: they become misses. Costs the same
/// whatever the number of entries (they are checked when read). Runs in flight with that
/// tag don't store their results.
pub async fn invalidate_tag(tag: &str) {
    for mount in Runtime::current().mounts() {
        mount.tag_event(tag, true).await;
    }
}

/// Expires every entry tagged `tag`, on every mount: they are no longer fresh, but still
/// usable under `swr` and `grace`.
pub async fn expire_tag(tag: &str) {
    for mount in Runtime::current().mounts() {
        mount.tag_event(tag, false).await;
    }
}
