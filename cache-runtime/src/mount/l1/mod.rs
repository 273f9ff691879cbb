//! The memory tier (L1): decoded values in one structure per shard that is both the index
//! and the eviction order, bounded by entries or by bytes; read without a lock.

pub(crate) mod index;
pub(crate) mod key_text;
pub(crate) mod memory;
pub(crate) mod sections;
pub(crate) mod shard;
pub(crate) mod slot;
