//! A mount: a named place that entries live in, with a memory tier (L1), an optional store
//! behind it (L2), its runs in flight and its tag events. `live.rs` holds every operation
//! that spans the tiers; the other files are the parts.

pub(crate) mod config;
pub(crate) mod fences;
pub(crate) mod flights;
pub(crate) mod l1;
pub(crate) mod l2;
pub(crate) mod live;
pub(crate) mod registry;
pub(crate) mod stats;
pub(crate) mod tags;
