//! The bus between instances (feature `redis`): Redis pub/sub on one channel, so that what
//! one instance changes in L2, the others drop or expire from their memory tier.
//!
//! When an instance changes what other instances may hold in memory, it publishes a
//! [`BusMessage`]: which keys were set, deleted or expired, which prefix was cleared, which
//! tag was invalidated or expired. Each instance subscribes with [`Bus::connect`] and
//! receives [`BusEvent`]s: the other instances' messages (its own are filtered out by
//! `origin`), and [`BusEvent::Reconnected`] after its subscription was lost and
//! re-established, since it cannot know what it missed meanwhile (the runtime then expires
//! its whole memory tier).
//!
//! `wire.rs` is the message format, `connection.rs` the Redis connection, `link.rs` a
//! runtime's publishing side, `apply.rs` what a runtime does with what it hears.

pub(crate) mod apply;
pub(crate) mod connection;
pub(crate) mod link;
pub(crate) mod wire;

pub use connection::{Bus, BusEvent, BusOptions};
pub use wire::{BusMessage, BusOp};
