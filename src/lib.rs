#![doc = include_str!("../README.md")]

pub use cache_macros::{cached, memo};
pub use cache_runtime::*;
