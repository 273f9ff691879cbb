//! File system primitives shared by the store's reads, writes and walks: what counts as
//! "not there", as expired, and removals that never fail a call.

use std::io;
use std::path::Path;
use std::time::SystemTime;

use crate::error::Error;
use crate::stores::fs::beneath::{Dir, Meta};

pub(super) fn io_error(what: &str, path: &Path, e: &io::Error) -> Error {
    // `io::Error` is not `Clone`: the source keeps its kind and text.
    Error::store(format!("fs store: {what} {}", path.display()), io::Error::new(e.kind(), e.to_string()))
}

/// "Not there": the file, or one of its parents, does not exist or is not a directory.
pub(super) fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// Whether a file's expiry (its mtime) has passed. An mtime that can't be read counts as
/// expired: the file can't be trusted to be fresh.
pub(super) fn expired(meta: &Meta) -> bool {
    meta.mtime.is_none_or(|mtime| mtime <= SystemTime::now())
}

/// Unlinks `name` in `dir` (`path` is the same file, for the log).
pub(super) fn remove_quietly(dir: &Dir, name: &str, path: &Path) {
    if let Err(e) = dir.remove_file(name)
        && !is_absent(&e)
    {
        tracing::warn!(target: "larder", path = %path.display(), error = %e, "fs store: cannot remove a file");
    }
}

/// Removes `name` in `dir` only if it is still the file described by `meta`: an expired
/// file that a concurrent `set` just replaced stays.
pub(super) fn remove_if_same(dir: &Dir, name: &str, path: &Path, meta: &Meta) {
    if dir.stat(name).is_ok_and(|now| now.same_file(meta)) {
        remove_quietly(dir, name, path);
    }
}
