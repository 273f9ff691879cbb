//! The bus's wire format: a [`BusMessage`] (who, which mount, when, and a [`BusOp`]) as JSON:
//! `{"origin":"web-1","mount":"cache","at":1718000000000,"op":"delete","keys":["functions:f:default.json"]}`.
//! Messages carry keys, never values. Anything that does not decode is a codec error and
//! is dropped by the receiver.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What happened, and to which keys. Serialized with an `op` field in snake case
/// (`"set"`, `"delete"`, `"expire"`, `"clear"`, `"invalidate_tag"`, `"expire_tag"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BusOp {
    /// New values were stored in L2 under these keys: drop the L1 copies.
    Set {
        /// Storage keys (`group:name:key.json`).
        keys: Vec<String>,
    },
    /// These keys were deleted: drop the L1 copies.
    Delete {
        /// Storage keys.
        keys: Vec<String>,
    },
    /// These keys were marked stale: expire the L1 copies.
    Expire {
        /// Storage keys.
        keys: Vec<String>,
    },
    /// Every key starting with `prefix` was deleted (`""`: all of the mount).
    Clear {
        /// A storage key prefix.
        prefix: String,
    },
    /// Entries with this tag, stored at or before [`BusMessage::at`], are invalid.
    InvalidateTag {
        /// The tag.
        tag: String,
    },
    /// Entries with this tag, stored at or before [`BusMessage::at`], are stale.
    ExpireTag {
        /// The tag.
        tag: String,
    },
}

/// One message on the bus: who sent it, for which mount, when, and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BusMessage {
    /// The instance that sent it; [`Bus::publish`](crate::bus::connection::Bus::publish) sets it to the bus's own origin.
    pub origin: String,
    /// The mount (`base`) it is about; `""`: every mount of the instances that hear it.
    #[serde(default)]
    pub mount: String,
    /// When it happened, in ms since the Unix epoch by the sender's clock.
    #[serde(default)]
    pub at: u64,
    /// What happened.
    #[serde(flatten)]
    pub op: BusOp,
}

impl BusMessage {
    /// A message about `mount`, timed now; its origin is filled in by [`Bus::publish`](crate::bus::connection::Bus::publish).
    pub fn new(mount: impl Into<String>, op: BusOp) -> BusMessage {
        let at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        BusMessage { origin: String::new(), mount: mount.into(), at: u64::try_from(at).unwrap_or(u64::MAX), op }
    }

    /// The same message timed at `at` (ms since the Unix epoch), e.g. from the runtime's clock.
    pub fn at(mut self, at: u64) -> BusMessage {
        self.at = at;
        self
    }

    /// The message as JSON.
    ///
    /// Errors: none in practice (every field serializes); an [`Error::Codec`] otherwise.
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::codec("bus message", e))
    }

    /// A message from JSON.
    ///
    /// Errors: [`Error::Codec`] if it is not a bus message (malformed, or an unknown `op`).
    pub fn from_json(json: &[u8]) -> Result<BusMessage, Error> {
        serde_json::from_slice(json).map_err(|e| Error::codec("bus message", e))
    }
}
