//! What a call knows before it starts: [`FnSpec`], everything about a cached function (or a
//! `get_or_set` call) that does not change from call to call, and [`SpecRef`], a spec that
//! a background task can keep.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::entry::Policy;

/// Everything about a cached function (or a `get_or_set` call) that does not change
/// from call to call.
#[derive(Debug, Clone)]
pub struct FnSpec {
    /// `group` as written (may contain `/`).
    pub group: Cow<'static, str>,
    /// `name`.
    pub name: Cow<'static, str>,
    /// Every key of the function starts with it: `{group with / as :}:{name}:`.
    pub prefix: Cow<'static, str>,
    /// The id of `prefix` (`cache_keyspace::prefix_id`): default keys' ids are made from it.
    pub prefix_id: u128,
    /// The keyed mask of `prefix_id` that a default key's digest is turned into its id
    /// with, worked out on first use (it depends on the process's secret).
    pub id_mask: OnceLock<u128>,
    /// The name of the mount (the `base` option).
    pub mount: Cow<'static, str>,
    /// Where that mount was last found, so that a hit does not look it up by name.
    pub mount_hint: MountHint,
    /// xxh3-128 of the function's tokens and semantic options (or of `integrity = "…"`).
    pub integrity: u128,
    /// The time rules.
    pub policy: Policy,
    /// Static tags.
    pub tags: Cow<'static, [Cow<'static, str>]>,
    /// After a failure answered from grace, the body is not called again for this long.
    pub grace_backoff_ms: u64,
    /// Soft timeout: with a usable stale value, answer with it after this long.
    pub timeout_ms: Option<u64>,
    /// Hard timeout: the call is abandoned after this long.
    pub hard_timeout_ms: Option<u64>,
}

impl FnSpec {
    /// The id of the default key whose argument digest is `digest`.
    #[inline]
    pub fn digest_id(&self, digest: u128) -> u128 {
        digest ^ *self.id_mask.get_or_init(|| crate::key::storage_key::digest_id(self.prefix_id, 0))
    }
}

/// Where a spec's mount was last found: the id of the runtime's mounts and the mount's
/// index among them (0: not yet). Only a lookup by name stores it, and a runtime's
/// configured mounts never change, so a hint with the current runtime's id is right.
#[derive(Debug, Default)]
pub struct MountHint(AtomicU64);

impl MountHint {
    /// No hint yet.
    pub const fn new() -> MountHint {
        MountHint(AtomicU64::new(0))
    }

    /// The index of the mount in the mounts with id `mounts_id`, if that is where it was found.
    #[inline]
    pub(crate) fn index_in(&self, mounts_id: u32) -> Option<usize> {
        let h = self.0.load(Ordering::Relaxed);
        ((h >> 32) as u32 == mounts_id).then_some(h as u32 as usize)
    }

    /// Notes that the mount is at `index` in the mounts with id `mounts_id`.
    #[inline]
    pub(crate) fn set(&self, mounts_id: u32, index: usize) {
        self.0.store(u64::from(mounts_id) << 32 | index as u64, Ordering::Relaxed);
    }
}

impl Clone for MountHint {
    fn clone(&self) -> MountHint {
        MountHint(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

/// A spec that a background task can keep: static (the attribute) or shared (the API).
#[derive(Debug, Clone)]
pub enum SpecRef {
    /// A spec in a `static` of the expansion.
    Static(&'static FnSpec),
    /// A spec built at run time.
    Shared(Arc<FnSpec>),
}

impl Deref for SpecRef {
    type Target = FnSpec;
    #[inline]
    fn deref(&self) -> &FnSpec {
        match self {
            SpecRef::Static(s) => s,
            SpecRef::Shared(s) => s,
        }
    }
}
