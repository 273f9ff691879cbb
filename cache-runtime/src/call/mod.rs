//! A call of a cached function, from its spec to its answer. `algorithm.rs` is the
//! algorithm; the other files are its parts, named after what they hold.

pub(crate) mod algorithm;
pub(crate) mod batch;
pub(crate) mod context;
pub(crate) mod helpers;
pub(crate) mod lookup;
pub(crate) mod outcome;
pub(crate) mod share;
pub(crate) mod spec;
pub(crate) mod strategy;
pub mod this_entry;
