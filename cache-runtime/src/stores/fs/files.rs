//! File system primitives shared by the store's reads, writes and walks: what counts as
//! "not there", as expired, and removals that never fail a call.

use std::fs::{self, Metadata};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use crate::error::Error;

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
pub(super) fn expired(meta: &Metadata) -> bool {
    meta.modified().map_or(true, |mtime| mtime <= SystemTime::now())
}

pub(super) fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && !is_absent(&e)
    {
        tracing::warn!(target: "larder", path = %path.display(), error = %e, "fs store: cannot remove a file");
    }
}

/// Removes `path` only if it is still the file described by `meta`: an expired file that a
/// concurrent `set` just replaced stays.
pub(super) fn remove_if_same(path: &Path, meta: &Metadata) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match fs::symlink_metadata(path) {
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => remove_quietly(path),
            _ => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        remove_quietly(path);
    }
}
