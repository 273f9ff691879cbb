#![doc = include_str!("../README.md")]

pub use cache_macros::{cached, memo};
pub use cache_runtime::{
    Answer, Cache, CacheStats, Clock, Entry, Error, Freshness, ManualClock, Mount, Options, Policy, Runtime,
    RuntimeBuilder, Storage, Window, cache, canonical, clear, clear_group, entry, escape_key, expire_tag,
    in_request_scope, invalidate_tag, key, request_scope, runtime, store,
};

/// HTTP response caching for tower and axum (feature `http`).
#[cfg(feature = "http")]
pub use cache_runtime::http;

pub use cache_runtime::MemoryStore;
#[cfg(feature = "fs")]
pub use cache_runtime::fs;
#[cfg(feature = "redis")]
pub use cache_runtime::{bus, redis};

#[doc(hidden)]
pub mod __private {
    pub use cache_runtime::__private::*;
}
