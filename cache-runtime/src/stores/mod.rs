//! The stores that can sit behind a mount's memory tier as its L2: the [`Store`] trait
//! and its conformance suite, an in-memory store, a filesystem store (feature `fs`) and
//! Redis (feature `redis`). A store only keeps bytes under keys; the entries' meaning,
//! freshness and the failure policy are the mount's.

#[cfg(feature = "fs")]
pub mod fs;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub mod store;

#[cfg(feature = "fs")]
pub use fs::{FsStore, FsStoreBuilder};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisStore, RedisStoreBuilder};
pub use store::{Store, StoreFuture, conformance};
