//! The configuration of a mount: [`Mount`], what the builder of a runtime takes for each
//! mount name (the `base` option of `#[cached]` picks one by name).

use std::sync::Arc;
use std::time::Duration;

use crate::mount::l1::memory::MemoryBound;
use crate::stores::store::Store;

/// The default number of entries a memory tier holds.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// The default bound of the HTTP layer's memory tier, in bytes (256 MiB): responses are
/// weighed by their bodies and headers, so anyone who can choose URLs cannot fill memory.
pub const DEFAULT_HTTP_BYTES: u64 = 256 << 20;

/// The name of the mount that `#[cached]` uses when no `base` (the mount's name) is given.
pub const DEFAULT_MOUNT: &str = "cache";

/// The name of the mount the HTTP layer uses unless told otherwise. Created on first use,
/// its memory tier is bounded by bytes ([`DEFAULT_HTTP_BYTES`]), not by entries.
pub const DEFAULT_HTTP_MOUNT: &str = "http";

/// How one mount (a `base`) stores its entries: a memory tier (L1), and optionally a
/// [`Store`] behind it (L2: a filesystem, Redis, or your own).
///
/// Reads stop at the first tier that has the entry (an L2 hit fills L1 for the rest of the
/// entry's life); writes go to both. An L2 failure never fails a call.
#[derive(Clone)]
pub struct Mount {
    bound: MemoryBound,
    l2: Option<Arc<dyn Store>>,
    cooldown: Duration,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("memory", &self.bound)
            .field("l2", &self.l2.as_ref().map(|s| s.name().to_owned()))
            .finish()
    }
}

impl Mount {
    /// A memory mount holding at most `capacity` entries (the least used evicted first; a
    /// scan of keys read once does not push out the keys read again). `0` means no memory
    /// tier: every read goes to the L2 store (or the function).
    pub fn memory(capacity: u64) -> Mount {
        Mount { bound: MemoryBound::Entries(capacity), l2: None, cooldown: Duration::from_secs(10) }
    }

    /// A memory mount holding at most `bytes` bytes of entries, however many that is.
    ///
    /// An entry weighs its value, its key and a fixed overhead (its slot and its share of
    /// the index, about 120 bytes). A value of `#[cached]` or
    /// [`Cache`](crate::Cache) weighs its serialized (JSON) size, counted without being
    /// kept: a fair measure of what it holds on the heap, computed on a miss only. An HTTP
    /// response weighs its body and headers. An entry heavier than one shard of the tier
    /// (a shard holds at least 32 MiB, or the whole tier if it is smaller) is not kept in
    /// memory; it still reaches L2.
    pub fn memory_bytes(bytes: u64) -> Mount {
        Mount { bound: MemoryBound::Bytes(bytes), l2: None, cooldown: Duration::from_secs(10) }
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

    /// The same mount with its memory tier bounded by `bound`.
    pub(crate) fn with_memory_bound(self, bound: MemoryBound) -> Mount {
        Mount { bound, ..self }
    }

    /// What the memory tier is bounded by.
    pub fn memory_bound(&self) -> MemoryBound {
        self.bound
    }

    /// The L2 store, if any.
    pub(crate) fn l2_store(&self) -> Option<&Arc<dyn Store>> {
        self.l2.as_ref()
    }

    /// The breaker's cool-down.
    pub(crate) fn cooldown(&self) -> Duration {
        self.cooldown
    }
}

impl Default for Mount {
    fn default() -> Self {
        Mount::memory(DEFAULT_CAPACITY)
    }
}
