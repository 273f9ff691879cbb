//! Walking the store's directory for listings and prefix deletes, without following links:
//! each directory is opened relative to its parent with `O_NOFOLLOW`, each name inspected
//! with `AT_SYMLINK_NOFOLLOW`, so a symlinked directory is never entered.

use std::io;
use std::path::{Path, PathBuf};

use crate::stores::fs::beneath::{Dir, Kind, Meta, is_link};
use crate::stores::fs::files::is_absent;
use crate::stores::fs::path::{MAX_PATH, TEMP_PREFIX};

/// A guard against directory trees deeper than any key could make.
pub(super) const MAX_DEPTH: usize = MAX_PATH / 2;

/// What [`walk`] finds: a name in an open directory (`path` is the same file, for logs and
/// errors).
pub(super) enum Found<'w> {
    /// A key's file, or something else that is not a directory at a key's place (a link, a
    /// FIFO: see `meta.kind`).
    File { key: &'w str, dir: &'w Dir, name: &'w str, path: &'w Path, meta: Meta },
    /// A temp file.
    Temp { dir: &'w Dir, name: &'w str, path: &'w Path },
}

/// Visits every file under `dir` (at `path`, whose key prefix is `key`), keeping at the top
/// level only the names that start with `partial`. Names that are not UTF-8 can't be keys:
/// skipped. Subdirectories are entered only if they are real directories (never a link).
pub(super) fn walk(
    dir: &Dir,
    path: &mut PathBuf,
    key: &mut String,
    partial: &str,
    depth: usize,
    visit: &mut dyn FnMut(Found<'_>),
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for name in dir.names()? {
        if name.starts_with(TEMP_PREFIX) {
            path.push(&name);
            visit(Found::Temp { dir, name: &name, path: path.as_path() });
            path.pop();
            continue;
        }
        if !name.starts_with(partial) {
            continue;
        }
        let meta = match dir.stat(&name) {
            Ok(meta) => meta,
            Err(e) if is_absent(&e) => continue,
            Err(e) => return Err(e),
        };
        let len = key.len();
        key.push_str(&name);
        path.push(&name);
        if meta.kind == Kind::Dir {
            key.push(':');
            match dir.sub(&name) {
                Ok(sub) => match walk(&sub, path, key, "", depth + 1, visit) {
                    Err(e) if !is_absent(&e) => return Err(e),
                    _ => {}
                },
                // Removed, or replaced by a link since the `stat`: not ours to enter.
                Err(e) if is_absent(&e) || is_link(&e) => {}
                Err(e) => return Err(e),
            }
        } else {
            visit(Found::File { key: key.as_str(), dir, name: &name, path: path.as_path(), meta });
        }
        path.pop();
        key.truncate(len);
    }
    Ok(())
}

/// Removes the empty directories under `dir`. Best effort: a directory that is not empty
/// (or is being filled) stays; a link is never entered nor removed.
pub(super) fn prune_empty_dirs(dir: &Dir) {
    fn prune(dir: &Dir, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let Ok(names) = dir.names() else { return };
        for name in names {
            if !dir.stat(&name).is_ok_and(|meta| meta.kind == Kind::Dir) {
                continue;
            }
            if let Ok(sub) = dir.sub(&name) {
                prune(&sub, depth + 1);
                let _ = dir.remove_dir(&name);
            }
        }
    }
    prune(dir, 0);
}
