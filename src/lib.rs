#![doc = include_str!("../README.md")]

pub use cache_macros::{cached, cached_impl, memo};
pub use cache_runtime::*;
