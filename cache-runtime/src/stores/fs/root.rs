//! The store's directory held open, checked to be private, and reading an entry through
//! it: relative to the directory, never following a symlink, bounded by size.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use crate::clock::Clock;
use crate::error::Error;
use crate::stores::fs::beneath::{Dir, Kind, Meta, is_link};
use crate::stores::fs::files::{expired, io_error, is_absent, remove_if_same, remove_quietly};

/// Files up to this size are read on the calling thread (see the module documentation).
pub const INLINE_READ_MAX: u64 = 64 * 1024;

/// The largest entry an [`FsStore`](crate::FsStore) reads unless told otherwise
/// ([`FsStoreBuilder::max_entry_size`](crate::stores::fs::FsStoreBuilder::max_entry_size)):
/// 64 MiB. A larger file is a miss.
pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 64 * 1024 * 1024;

/// How often a store compares the directory it holds open (it reads entries relative to
/// it) with the one at its path, and reopens it if they differ: for at most this long
/// after its directory was moved away and replaced, a store may still read entries from
/// the old one. (A read that finds no entry compares at once; writes, deletes and listings
/// compare every time.)
pub const ROOT_RECHECK: Duration = Duration::from_secs(1);

/// The store's directory, held open: every file system call of the store is relative to it
/// (an entry's path is resolved segment by segment below it, never through a link), so a
/// read resolves only the key's own segments, not the directory's whole path again. If the
/// directory is removed or replaced (say `rm -rf` and a write that creates it again, or a
/// `mv` and a new one in its place), the handle would go on naming the old one. So the
/// handle is compared with what the path names now, and reopened (and checked again) if
/// they differ: before every write, delete and listing; for reads, when an entry is not
/// found (then the open is tried once more), and on the first read after [`ROOT_RECHECK`]
/// has passed since the last comparison.
pub(super) struct Root {
    dir: Arc<Path>,
    /// Whether a directory that others may write to is accepted.
    allow_shared: bool,
    handle: RwLock<Option<Arc<Dir>>>,
    /// When the handle was last compared with the path (coarse ms since the epoch).
    checked_at: AtomicU64,
    /// How often reads compare the handle with the path, found or not.
    recheck_ms: u64,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Root {
    /// Opens the directory at `dir` (absolute, symlinks resolved), and checks that it is
    /// private to this user unless `allow_shared`.
    ///
    /// Errors: it is not a directory, can't be opened, or is refused (with the fix).
    pub(super) fn open(dir: Arc<Path>, allow_shared: bool) -> Result<Root, Error> {
        let handle = open_checked(&dir, allow_shared)?;
        Ok(Root {
            dir,
            allow_shared,
            handle: RwLock::new(Some(Arc::new(handle))),
            checked_at: Clock::System.now_ms().into(),
            recheck_ms: ROOT_RECHECK.as_millis() as u64,
        })
    }

    /// The same directory, compared with its path on every read (for tests).
    #[cfg(test)]
    pub(super) fn always_rechecked(self) -> Root {
        Root { recheck_ms: 0, ..self }
    }

    pub(super) fn path(&self) -> &Path {
        &self.dir
    }

    /// The directory now at the path (compared first), or `None` if there is none.
    ///
    /// Errors: the directory now at the path is refused, or can't be opened.
    pub(super) fn current(&self) -> Result<Option<Arc<Dir>>, Error> {
        self.reopened()?;
        Ok(self.handle.read().clone())
    }

    /// The directory now at the path, created (private) if there is none.
    ///
    /// Errors: it can't be created or opened, or is refused.
    pub(super) fn for_write(&self) -> Result<Arc<Dir>, Error> {
        if let Some(dir) = self.current()? {
            return Ok(dir);
        }
        create_private_dir(&self.dir)?;
        self.current()?.ok_or_else(|| Error::Store(format!("fs store: {} vanished", self.dir.display()).into()))
    }

    /// Opens the entry file at `rel` (below the directory) for reading, without following
    /// a symlink anywhere on the way.
    pub(super) fn open_entry(&self, rel: &Path) -> io::Result<File> {
        let now = Clock::System.now_ms();
        if now.saturating_sub(self.checked_at.load(Ordering::Relaxed)) >= self.recheck_ms {
            self.reopened_for_read();
        }
        match self.open_held(rel) {
            Err(e) if is_absent(&e) && self.reopened_for_read() => self.open_held(rel),
            opened => opened,
        }
    }

    fn open_held(&self, rel: &Path) -> io::Result<File> {
        let handle = self.handle.read();
        let Some(dir) = handle.as_ref() else { return Err(io::ErrorKind::NotFound.into()) };
        dir.open_file_beneath(rel)
    }

    /// [`Root::reopened`] for a read, which can't fail: a refused directory is logged (and
    /// not read from).
    fn reopened_for_read(&self) -> bool {
        self.reopened().unwrap_or_else(|e| {
            tracing::warn!(target: "larder", error = %e, "fs store: not reading from a refused directory");
            true
        })
    }

    /// Whether the held directory is no longer the one at the path (removed, replaced,
    /// created since): then it is reopened and checked (or dropped, if there is none now or
    /// it is refused).
    fn reopened(&self) -> Result<bool, Error> {
        self.checked_at.store(Clock::System.now_ms(), Ordering::Relaxed);
        let now = fs::symlink_metadata(&self.dir).ok().filter(fs::Metadata::is_dir).map(|m| identity(&m));
        let held = self.handle.read().as_ref().and_then(|d| d.meta().ok()).map(|m| m.id);
        if now == held {
            return Ok(false);
        }
        let mut handle = self.handle.write();
        *handle = None;
        if now.is_some() {
            *handle = Some(Arc::new(open_checked(&self.dir, self.allow_shared)?));
        }
        Ok(true)
    }
}

#[cfg(unix)]
fn identity(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_: &fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Creates `dir` and its missing parents, readable and writable by this user only.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| io_error("cannot create the directory", dir, &e))
}

/// The directory at `dir`, open, after [`check_private`].
fn open_checked(dir: &Path, allow_shared: bool) -> Result<Dir, Error> {
    let handle = Dir::open_path(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotADirectory => Error::Store(format!("fs store: {} is not a directory", dir.display()).into()),
        _ if is_link(&e) => Error::Store(format!("fs store: {} is a symbolic link", dir.display()).into()),
        _ => io_error("cannot open the directory", dir, &e),
    })?;
    let meta = handle.meta().map_err(|e| io_error("cannot inspect", dir, &e))?;
    check_private(dir, &meta, allow_shared)?;
    Ok(handle)
}

/// Refuses a directory that another user owns, or that group or others may write to
/// (anyone who can write there can plant entries the store would serve), unless
/// `allow_shared`.
fn check_private(dir: &Path, meta: &Meta, allow_shared: bool) -> Result<(), Error> {
    #[cfg(unix)]
    if !allow_shared {
        let me = rustix::process::geteuid().as_raw();
        let why = if meta.owner != me {
            format!("it belongs to user {} and this process runs as user {me}", meta.owner)
        } else if meta.mode & 0o022 != 0 {
            format!("group or others may write to it (mode {:04o})", meta.mode)
        } else {
            return Ok(());
        };
        return Err(Error::Store(
            format!(
                "fs store: refused directory {}: {why}, so another user could plant or change its entries; \
                 make it private to this user (`chmod 700` it, or give the store a directory of its own), \
                 or, if sharing it is intended, build the store with \
                 `FsStore::builder(dir).allow_shared_directory(true)`",
                dir.display()
            )
            .into(),
        ));
    }
    let _ = (dir, meta, allow_shared);
    Ok(())
}

/// What [`read_live`] found.
pub(super) enum Opened {
    /// The bytes, or a miss.
    Read(Option<Vec<u8>>),
    /// A live file larger than the inline limit given (and at most the size bound), open
    /// and checked, to read elsewhere.
    Large(File, Meta),
}

/// How much of an entry to read: files over `inline` come back open ([`Opened::Large`]),
/// files over `max` are misses.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    pub(super) inline: u64,
    pub(super) max: u64,
}

/// The bytes of a live regular file at `rel` below the root (`path` is the same file, for
/// logs); a miss for anything else, removing what can't be a value (expired, unreadable, a
/// symlink or other special file at the entry's place; a link on the way is left alone
/// and never followed). A file larger than `bounds.max` is a miss (logged) and is not read.
pub(super) fn read_live(root: &Root, rel: &Path, path: &Path, bounds: Bounds) -> Result<Opened, Error> {
    let file = match root.open_entry(rel) {
        Ok(file) => file,
        Err(e) if is_absent(&e) => return Ok(Opened::Read(None)),
        Err(e) => {
            // A symlink (ELOOP), a file we may not read, or another special file.
            not_an_entry(root, rel, path, &e);
            return Ok(Opened::Read(None));
        }
    };
    let meta = Meta::of_file(&file).map_err(|e| io_error("cannot inspect", path, &e))?;
    match meta.kind {
        Kind::File => {}
        Kind::Dir => return Ok(Opened::Read(None)),
        Kind::Link | Kind::Other => {
            tracing::warn!(target: "larder", path = %path.display(), "fs store: not a regular file, removing it");
            with_parent(root, rel, |dir, name| remove_quietly(dir, name, path));
            return Ok(Opened::Read(None));
        }
    }
    if expired(&meta) {
        with_parent(root, rel, |dir, name| remove_if_same(dir, name, path, &meta));
        return Ok(Opened::Read(None));
    }
    if meta.len > bounds.max {
        oversized(path, meta.len, bounds.max);
        return Ok(Opened::Read(None));
    }
    if meta.len > bounds.inline {
        return Ok(Opened::Large(file, meta));
    }
    Ok(Opened::Read(read_open(path, file, &meta, bounds.max)))
}

/// The rest of [`read_live`]: the bytes of the checked, open file at `path`, at most `max`
/// of them (a file that grew past it since its `fstat` is a miss, never read whole).
pub(super) fn read_open(path: &Path, file: File, meta: &Meta, max: u64) -> Option<Vec<u8>> {
    // Room for the size `fstat` gave: one `read` fills it and one more sees the end. (A
    // file is replaced by rename, never rewritten, so it keeps that size; one that changed
    // fails to parse, a miss.) `Take` also spares the `statx` and `lseek` that
    // `File::read_to_end` makes to learn the size again.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len.min(max)).unwrap_or(usize::MAX));
    match file.take(max.saturating_add(1)).read_to_end(&mut bytes) {
        Ok(n) if n as u64 > max => {
            oversized(path, n as u64, max);
            None
        }
        Ok(_) => Some(bytes),
        Err(e) => {
            tracing::warn!(target: "larder", path = %path.display(), error = %e, "fs store: unreadable file");
            None
        }
    }
}

fn oversized(path: &Path, len: u64, max: u64) {
    tracing::warn!(
        target: "larder",
        path = %path.display(),
        size = len,
        max_entry_size = max,
        "fs store: entry larger than max_entry_size, a miss (not read)"
    );
}

/// After an entry could not be opened: unlinks what is at the entry's own place unless it
/// is a directory, if the way there has no link (a link on the way is left alone).
fn not_an_entry(root: &Root, rel: &Path, path: &Path, e: &io::Error) {
    with_parent(root, rel, |dir, name| {
        if dir.stat(name).is_ok_and(|meta| meta.kind != Kind::Dir) {
            tracing::warn!(target: "larder", path = %path.display(), error = %e, "fs store: unreadable file or link, removing it");
            remove_quietly(dir, name, path);
        }
    });
}

/// Runs `f` with the directory of `rel` (opened without following links) and its last
/// segment; not at all if the directory can't be opened so.
fn with_parent(root: &Root, rel: &Path, f: impl FnOnce(&Dir, &str)) {
    let (Some(name), Some(parent)) = (rel.file_name().and_then(|n| n.to_str()), rel.parent()) else { return };
    let Some(root_dir) = root.handle.read().clone() else { return };
    if let Ok(dir) = root_dir.descend(parent) {
        f(&dir, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_grew_past_the_bound_after_its_fstat_is_not_read_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grown.json");
        fs::write(&path, [b'x'; 10]).unwrap();
        let file = File::open(&path).unwrap();
        let meta = Meta::of_file(&file).unwrap();
        // It grows after the size check: 4 KiB now, over a bound of 1 KiB.
        fs::write(&path, [b'y'; 4096]).unwrap();
        assert_eq!(read_open(&path, file, &meta, 1024), None, "a miss, not 4 KiB read");

        let file = File::open(&path).unwrap();
        assert_eq!(read_open(&path, file, &meta, 4096).map(|b| b.len()), Some(4096), "at the bound: read");
    }
}
