//! The runtime behind [larder](https://docs.rs/larder)'s `#[cached]` attribute.
//!
//! Use it through the `larder` crate, which re-exports everything public here. The
//! folders are the architecture (`ARCHITECTURE.md` at the repository root has the map):
//! `call/` is the algorithm of one call, `mount/` a mount and every operation that spans
//! its tiers, `stores/` the L2 stores, `bus/` the messages between instances, `http/` the
//! tower layer; `runtime.rs` holds the mounts and the clock, `entry.rs` decides freshness,
//! `key/` builds storage keys, `cache.rs` is the programmatic API, `private.rs` what the
//! expansion names. This file only declares and re-exports.

#![warn(missing_docs)]

mod blocking;
#[cfg(feature = "redis")]
pub mod bus;
mod cache;
mod call;
mod clock;
mod entry;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod key;
mod memo;
mod mount;
mod options;
mod runtime;
pub mod stores;

pub use cache::{Cache, cache};
pub use call::outcome::{Answer, Storage};
pub use call::this_entry;
pub use clock::{Clock, ManualClock};
pub use entry::{Entry, Freshness, Policy, Window};
pub use error::{BusError, CodecError, Error, StoreError};
pub use key::storage_key::escape_key;
pub use memo::{in_request_scope, request_scope};
pub use mount::config::{DEFAULT_CAPACITY, DEFAULT_HTTP_BYTES, DEFAULT_HTTP_MOUNT, DEFAULT_MOUNT, Mount};
pub use mount::l1::memory::{ENTRY_OVERHEAD, MemoryBound};
pub use mount::l2::{Invalidation, TierHealth};
pub use mount::stats::CacheStats;
pub use options::Options;
pub use runtime::{Runtime, RuntimeBuilder, clear, clear_group, expire_tag, invalidate_tag};
#[cfg(feature = "fs")]
pub use stores::fs::FsStore;
pub use stores::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use stores::redis::RedisStore;
pub use stores::store::{Store, StoreFuture};

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
