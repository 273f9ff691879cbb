//! The programmatic API, for code that cannot use the attribute: a [`Cache`] handle on
//! one mount (and namespace) of a runtime, with Bentocache-style operations. `get_or_set`
//! runs the same algorithm as `#[cached]`.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::call::algorithm::Call;
use crate::call::helpers::{Landing, prime_in};
use crate::call::lookup::{Lookup, fill_from_l2, fresh_in_memory, held_in_memory, is_fresh_in_memory};
use crate::call::outcome::{Answer, Storage};
use crate::call::share::{Errors, Pick, PickFrom as _};
use crate::call::spec::{FnSpec, MountHint, SpecRef};
use crate::call::strategy::{NoTags, spawn_refresh};
use crate::entry::{Freshness, Policy};
use crate::error::Error;
use crate::key::storage_key::{Key, escape_key};
use crate::mount::config::DEFAULT_MOUNT;
use crate::mount::fences::Ticket;
use crate::mount::live::LiveMount;
use crate::options::{Options, ms};
use crate::runtime::Runtime;
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::time::Duration;

/// A handle on one mount (and namespace) of a runtime.
///
/// ```
/// # use cache_runtime as larder;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// let users = larder::cache().namespace("users");
/// let opts = larder::Options::new().max_age(Duration::from_secs(60));
/// let name: Result<String, larder::Error> =
///     users.get_or_set("42", &opts, || async { Ok("Ada".to_owned()) }).await;
/// assert_eq!(name.unwrap(), "Ada");
/// assert_eq!(users.get::<String>("42").await.as_deref(), Some("Ada"));
/// users.clear().await;
/// assert!(!users.has("42").await);
/// # });
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) rt: Runtime,
    pub(crate) mount: Arc<LiveMount>,
    /// `ns1:ns2:` (empty at the root).
    pub(crate) prefix: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("mount", &&*self.mount.name).field("prefix", &self.prefix).finish()
    }
}

/// A handle on the default mount (`"cache"`) of the runtime in force.
pub fn cache() -> Cache {
    Runtime::current().cache(DEFAULT_MOUNT)
}

impl Runtime {
    /// A handle on the mount named `mount` (the `base` option of `#[cached]` names one).
    pub fn cache(&self, mount: &str) -> Cache {
        Cache { rt: self.clone(), mount: self.mount(mount), prefix: String::new() }
    }
}

impl Cache {
    /// A handle whose keys live under `name` (nested namespaces add up); [`clear`](Self::clear)
    /// on it deletes only its keys.
    ///
    /// A namespace is one key segment, stored as a `group` is: `users` → `users:`,
    /// `github/users` → `github.users:` (a `/` is a `.`: `namespace("a/b")` is not
    /// `namespace("a").namespace("b")`), any other text as its plain characters, `%` and a
    /// hash. So `namespace(group).namespace(name)` holds exactly the entries of the
    /// `#[cached]` function `name` of `group`, and a namespace's prefix starts only its own
    /// keys (its nested namespaces' among them). A key's `/`-separated parts are stored as a
    /// `get_key` result's are ([`escape_key`](crate::escape_key)): `ns.get("b/c")` reads the
    /// key `c` of `ns.namespace("b")`.
    pub fn namespace(&self, name: &str) -> Cache {
        Cache {
            rt: self.rt.clone(),
            mount: Arc::clone(&self.mount),
            prefix: format!("{}{}:", self.prefix, cache_keyspace::segment(name)),
        }
    }

    /// The storage key of `key` in this handle: `{namespaces}{escaped key}.json`.
    pub fn storage_key(&self, key: &str) -> String {
        self.key(key).as_str().to_owned()
    }

    fn key(&self, key: &str) -> Key {
        Key::from_parts(&self.prefix, &escape_key(key))
    }

    fn spec(&self, opts: &Options) -> FnSpec {
        FnSpec {
            group: Cow::Borrowed("api"),
            name: Cow::Owned(self.prefix.trim_end_matches(':').to_owned()),
            prefix: Cow::Owned(self.prefix.clone()),
            prefix_id: crate::key::storage_key::prefix_id(&self.prefix),
            id_mask: std::sync::OnceLock::new(),
            mount: Cow::Owned(self.mount.name.to_string()),
            mount_hint: MountHint::new(),
            integrity: opts.integrity.as_deref().map_or(0, |i| xxhash_rust::xxh3::xxh3_128(i.as_bytes())),
            policy: opts.policy(),
            tags: opts.tags.iter().map(|t| Cow::Owned(t.clone())).collect::<Vec<_>>().into(),
            grace_backoff_ms: ms(opts.grace_backoff_or_default()),
            timeout_ms: opts.timeout.map(ms),
            hard_timeout_ms: opts.hard_timeout.map(ms),
        }
    }

    /// A value that is fresh under the options it was stored with.
    pub async fn get<V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned>(&self, key: &str) -> Option<V> {
        self.read(&self.key(key)).await
    }

    /// A fresh value from L1, else from L2 (which then fills L1).
    async fn read<V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned>(&self, key: &Key) -> Option<V> {
        let now = self.rt.clock().now_ms();
        if let Some(v) = fresh_in_memory::<V>(&self.mount, key, None, now, false) {
            return Some(v);
        }
        let l2 = self.mount.read_l2::<V>(key, None).await?;
        // Into L1 for as long as it is fresh (`get` knows no stale or grace window).
        let spec = self.spec(&Options::default());
        let stats = self.rt.stats_for(&spec);
        match fill_from_l2(&self.rt, &self.mount, &spec, key, l2, &stats)? {
            Lookup::Fresh(v) => Some(v),
            _ => None,
        }
    }

    /// Whether a fresh entry exists under `key` (of any type), in any tier: whether
    /// [`get`](Self::get) of the right type would return a value. Memory first, then L2 (the same read as `get`'s:
    /// integrity and tags checked, freshness judged by the `max_age` the entry was stored
    /// with). An entry found only in L2 is not put in memory, as its type is not known here.
    pub async fn has(&self, key: &str) -> bool {
        let key = self.key(key);
        if is_fresh_in_memory(&self.mount, &key, self.rt.clock().now_ms()) {
            return true;
        }
        // Any type: the value is skipped, not decoded.
        let Some(e) = self.mount.read_l2::<IgnoredAny>(&key, None).await else { return false };
        let stored = Policy { max_age_ms: e.expires.saturating_sub(e.mtime), ..Policy::max_age(Duration::ZERO) };
        stored.freshness(e.mtime, e.expired, self.rt.clock().now_ms()) == Freshness::Fresh
    }

    /// Stores `value` under `key`, as produced now.
    pub async fn set<V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned>(
        &self,
        key: &str,
        value: V,
        opts: &Options,
    ) {
        self.set_weighed(key, value, opts, Landing::now()).await;
    }

    /// [`set`](Self::set), with what the value weighs in a memory tier bounded by bytes
    /// when it is not its JSON's size, and the [`ticket`](Self::ticket) taken when its
    /// production began (an invalidation since then keeps it out).
    pub(crate) async fn set_weighed<V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned>(
        &self,
        key: &str,
        value: V,
        opts: &Options,
        landing: Landing<V>,
    ) {
        let spec = SpecRef::Shared(Arc::new(self.spec(opts)));
        prime_in(self.rt.clone(), Arc::clone(&self.mount), spec, self.key(key), value, Vec::new(), landing).await;
    }

    /// A ticket for a value about to be produced, to store it later with
    /// [`set_weighed`](Self::set_weighed) unless an invalidation came in between.
    pub(crate) fn ticket(&self) -> Ticket {
        self.mount.ticket()
    }

    /// The value under `key`; on a miss, runs `factory` (once for all concurrent callers of
    /// the key), stores an `Ok` and returns it. `swr`, `grace`, timeouts and tags work as
    /// with the attribute. Waiters of a failed run get `E::from(Error::SharedRunFailed)`;
    /// a call abandoned after `hard_timeout` gets `E::from(Error::Timeout)`.
    pub async fn get_or_set<V, E, F, Fut>(&self, key: &str, opts: &Options, factory: F) -> Result<V, E>
    where
        V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
        E: From<Error> + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        self.get_or_set_with(key, opts, None, factory).await.0
    }

    /// The values under `keys`, in their order, loading the missing ones with one call of
    /// `loader` (a `WHERE id IN (…)` query, a batch endpoint). Fresh values come from memory,
    /// then from L2 in one round trip for all the others (and one more for their tags);
    /// `loader` gets the keys still missing, as given, and returns what it found: each value
    /// is stored (under the options) and answered. Each key is still one run for concurrent
    /// callers: a key another call is producing is waited for, not loaded again. A key the
    /// loader does not return is `None` (nothing is stored for it).
    ///
    /// Errors: the loader's; nothing is stored then, and callers waiting for its keys run
    /// them themselves. Stale and grace entries count as missing here, and the loader's
    /// keys share its one run: a body's [`this_entry`](crate::this_entry) decisions don't
    /// apply to it.
    pub async fn get_or_set_many<V, E, F, Fut>(
        &self,
        keys: &[impl AsRef<str>],
        opts: &Options,
        loader: F,
    ) -> Result<Vec<Option<V>>, E>
    where
        V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<std::collections::HashMap<String, V>, E>>,
    {
        use crate::call::batch::{Ahead, Prefetched, fresh_many};
        use crate::call::context::{Context, spec_tags};
        use crate::mount::flights::{self, Awaited, Join, Published};

        let spec = SpecRef::Shared(Arc::new(self.spec(opts)));
        let stats = self.rt.stats_for(&spec);
        let given: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let storage_keys: Vec<Key> = given.iter().map(|k| self.key(k)).collect();
        if !spec.policy.stores() {
            let mut found = loader(given.iter().map(|k| (*k).to_owned()).collect()).await?;
            return Ok(given.iter().map(|k| found.remove(*k)).collect());
        }
        // 1. Memory, one pass; 2. L2, one round trip for all the rest.
        let wanted: Vec<(Option<&Key>, bool)> = storage_keys.iter().map(|k| (Some(k), true)).collect();
        let found = fresh_many((&self.rt, &self.mount, &stats), &spec, wanted, Ahead::Answer).await;
        let mut out: Vec<Option<V>> = found
            .into_iter()
            .map(|p| match p {
                Prefetched::Found(v) => Some(v),
                Prefetched::Missing(_) => None,
            })
            .collect();
        let missing: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        // 3. Single-flight: lead the keys nobody is producing, follow the others.
        let tags = spec_tags(&spec);
        let mut leaders = Vec::new();
        let mut followers = Vec::new();
        for &i in &missing {
            let key = &storage_keys[i];
            stats.miss();
            match self.mount.flights.join(key, &tags, self.mount.ticket()) {
                Join::Lead(leader) => leaders.push((i, leader)),
                Join::Follow(rx) => followers.push((i, rx)),
            }
        }
        if !leaders.is_empty() {
            stats.run();
            // Dropping the leaders on an error frees their keys for their waiters.
            let mut found = loader(leaders.iter().map(|(i, _)| given[*i].to_owned()).collect()).await?;
            for (i, leader) in leaders {
                let Some(v) = found.remove(given[i]) else { continue };
                let ctx = Context {
                    rt: self.rt.clone(),
                    mount: Arc::clone(&self.mount),
                    spec: spec.clone(),
                    key: storage_keys[i].clone(),
                    tags: Arc::clone(&tags),
                    stats: Arc::clone(&stats),
                    storage: None,
                    weigher: None,
                };
                ctx.land(&v, leader).await;
                out[i] = Some(v);
            }
        }
        for (i, rx) in followers {
            if let Awaited::Done(published) = flights::wait(rx).await
                && let Published::Value(v) = &*published
            {
                out[i] = v.downcast_ref::<V>().cloned();
            }
        }
        Ok(out)
    }

    /// [`get_or_set`](Self::get_or_set), with a per-value storage decision (`storage`:
    /// keep as the options say, keep for another `max_age`, or don't keep), and how the
    /// call was answered (hit, stale, miss, grace).
    pub async fn get_or_set_with<V, E, F, Fut>(
        &self,
        key: &str,
        opts: &Options,
        storage: Option<fn(&V) -> Storage>,
        factory: F,
    ) -> (Result<V, E>, Answer)
    where
        V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
        E: From<Error> + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        self.get_or_set_weighed(key, opts, storage, None, factory).await
    }

    /// [`get_or_set_with`](Self::get_or_set_with), with what a value weighs in a memory
    /// tier bounded by bytes when it is not its JSON's size (`weigh`).
    pub(crate) async fn get_or_set_weighed<V, E, F, Fut>(
        &self,
        key: &str,
        opts: &Options,
        storage: Option<fn(&V) -> Storage>,
        weigh: Option<fn(&V) -> usize>,
        factory: F,
    ) -> (Result<V, E>, Answer)
    where
        V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
        E: From<Error> + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
    {
        let spec = SpecRef::Shared(Arc::new(self.spec(opts)));
        let errors =
            Errors { share: (&Pick::<E>::new()).err_share(), timeout: Some(crate::__private::timeout_error::<E>) };
        // The factory runs either in the caller's task or in the background: whoever
        // comes first takes it.
        let factory = Mutex::new(Some(factory));
        let take = |m: &Mutex<Option<F>>| m.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.rt
            .scope(
                Call {
                    spec,
                    key: Some(self.key(key)),
                    invalidate: false,
                    errors,
                    storage,
                    weigh,
                    args: factory,
                    body: move |m: Mutex<Option<F>>| async move {
                        match m.into_inner().unwrap_or_else(|p| p.into_inner()) {
                            Some(f) => f().await,
                            None => Err(E::from(Error::SharedRunFailed)),
                        }
                    },
                    refresh: spawn_refresh(move |m: &Mutex<Option<F>>| {
                        let f = take(m);
                        async move {
                            match f {
                                Some(f) => f().await,
                                None => Err(E::from(Error::SharedRunFailed)),
                            }
                        }
                    }),
                    tags: NoTags,
                    read_l2: true,
                }
                .run(),
            )
            .await
    }

    /// Deletes `key`; returns whether it was there.
    pub async fn delete(&self, key: &str) -> bool {
        self.mount.delete(&self.key(key)).await
    }

    /// Deletes every key of `keys`; returns how many were there.
    pub async fn delete_many<S: AsRef<str>>(&self, keys: &[S]) -> usize {
        let mut n = 0;
        for k in keys {
            n += usize::from(self.mount.delete(&self.key(k.as_ref())).await);
        }
        n
    }

    /// The fresh value under `key`, deleted as it is read.
    pub async fn pull<V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned>(&self, key: &str) -> Option<V> {
        let key = self.key(key);
        let v = self.read(&key).await;
        self.mount.delete(&key).await;
        v
    }

    /// Marks `key` stale: no longer fresh, still usable under `swr`/`grace`.
    pub async fn expire(&self, key: &str) -> bool {
        self.mount.expire(&self.key(key)).await
    }

    /// Deletes every key of this handle (its namespace; the whole mount at the root).
    pub async fn clear(&self) -> usize {
        self.mount.clear_prefix(&self.prefix).await
    }
}

/// What the HTTP layer needs of a handle beyond the public API.
#[cfg(feature = "http")]
impl Cache {
    /// The value under the storage-form key `key` (`a:b:c`, parts already plain) if the
    /// memory tier holds it fresh: the hit of `get_or_set_with`'s lookup (same integrity,
    /// tag and freshness checks; the hit is counted), without setting up a call. Anything
    /// else (stale, grace, L2, a miss) is for `get_or_set_with` to decide.
    pub(crate) fn fresh_in_memory<V: Clone + 'static>(&self, key: &str) -> Option<V> {
        debug_assert_eq!(crate::key::storage_key::escape_key(&key.replace(':', "/")), key);
        let key = Key::from_parts(&self.prefix, key);
        let now = self.rt.clock().now_ms();
        // `Options` without `integrity` give their entries integrity 0.
        fresh_in_memory(&self.mount, &key, Some(0), now, true)
    }

    /// The value under the raw key `key` if the memory tier holds it, fresh or not (no hit
    /// is counted): for a caller that needs the stored value's own rules before it calls.
    pub(crate) fn held_in_memory<V: Clone + 'static>(&self, key: &str) -> Option<V> {
        held_in_memory(&self.mount, &self.key(key), Some(0))
    }

    /// Keys of this handle that start with `{namespace}{prefix}`, in every tier, sorted.
    pub(crate) async fn keys_under(&self, prefix: &str) -> Vec<String> {
        let full = format!("{}{prefix}", self.prefix);
        let mut keys = self.mount.memory.keys(&full);
        if let Some(l2) = &self.mount.l2 {
            match l2.store.keys(&full).await {
                Ok(more) => keys.extend(more),
                Err(e) => {
                    tracing::warn!(target: "larder", prefix = full, error = %e, "listing L2 keys failed; going on with L1's")
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Deletes every key of this handle that starts with `{namespace}{prefix}`, in every
    /// tier (runs in flight for them don't store their results).
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> usize {
        self.mount.clear_prefix(&format!("{}{prefix}", self.prefix)).await
    }

    /// The namespace prefix of this handle's keys.
    pub(crate) fn namespace_prefix(&self) -> &str {
        &self.prefix
    }

    /// The clock of this handle's runtime, ms.
    pub(crate) fn now_ms(&self) -> u64 {
        self.rt.clock().now_ms()
    }

    /// Runs `fut` with this handle's runtime in force.
    pub(crate) async fn in_scope<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.rt.scope(fut).await
    }
}
