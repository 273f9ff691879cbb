#![doc = include_str!("../README.md")]

pub use cache_macros::cached;
pub use cache_runtime::{
    Clock, Entry, Error, Freshness, ManualClock, Mount, Policy, Runtime, RuntimeBuilder, Window, canonical, clear,
    clear_group, entry, escape_key, key, runtime,
};

#[doc(hidden)]
pub mod __private {
    pub use cache_runtime::__private::*;
}
