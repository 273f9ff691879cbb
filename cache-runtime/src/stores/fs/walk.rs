//! Walking the store's directory for listings and prefix deletes, without following links.

use std::fs::{self, Metadata};
use std::io::{self};
use std::path::{Path, PathBuf};

use crate::stores::fs::files::is_absent;
use crate::stores::fs::path::{MAX_PATH, TEMP_PREFIX};

/// A guard against directory trees deeper than any key could make.
pub(super) const MAX_DEPTH: usize = MAX_PATH / 2;

/// What [`walk`] finds.
pub(super) enum Found {
    /// A key's file (or something else that is not a directory at a key's place).
    File { key: String, path: PathBuf, meta: Metadata },
    /// A temp file.
    Temp { path: PathBuf },
}

/// Visits every file under `dir` (whose key prefix is `key`), keeping at the top level only
/// the names that start with `partial`. Names that are not UTF-8 can't be keys: skipped.
pub(super) fn walk(
    dir: &Path,
    key: &mut String,
    partial: &str,
    depth: usize,
    visit: &mut dyn FnMut(Found),
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e),
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(TEMP_PREFIX) {
            visit(Found::Temp { path: entry.path() });
            continue;
        }
        if !name.starts_with(partial) {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e),
        };
        let len = key.len();
        key.push_str(name);
        if meta.is_dir() {
            key.push(':');
            match walk(&entry.path(), key, "", depth + 1, visit) {
                Err(e) if !is_absent(&e) => return Err(e),
                _ => {}
            }
        } else {
            visit(Found::File { key: key.clone(), path: entry.path(), meta });
        }
        key.truncate(len);
    }
    Ok(())
}

/// Removes the empty directories under `dir`, and `dir` itself if `including_self`. Best
/// effort: a directory that is not empty (or is being filled) stays.
pub(super) fn prune_empty_dirs(dir: &Path, including_self: bool) {
    fn prune(dir: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let path = entry.path();
                prune(&path, depth + 1);
                let _ = fs::remove_dir(&path);
            }
        }
    }
    prune(dir, 0);
    if including_self {
        let _ = fs::remove_dir(dir);
    }
}
