//! The store's directory held open, and reading an entry through it: `openat` relative to
//! the directory, never following a symlink, bounded by size.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

use crate::stores::fs::files::{expired, io_error, is_absent, remove_if_same, remove_quietly};

/// Files up to this size are read on the calling thread (see the module documentation).
pub const INLINE_READ_MAX: u64 = 64 * 1024;

/// The store's directory, held open (Linux): an entry is opened with `openat` relative to
/// it, so a read resolves only the key's own segments, not the directory's whole path
/// again (a path walk costs the kernel per segment; this takes about a sixth off a small
/// read). If the directory is removed or replaced (say `rm -rf` and a write that creates it
/// again, or a `mv` and a new one in its place), the handle would go on naming the old one.
/// So the handle is compared with what the path names now, and reopened if they differ:
/// when an entry is not found (then the open is tried once more), and on the first read
/// after [`ROOT_RECHECK`] has passed since the last comparison. Writes, deletes and
/// listings use the path.
pub(super) struct Root {
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    dir: Arc<Path>,
    #[cfg(target_os = "linux")]
    handle: parking_lot::RwLock<Option<File>>,
    /// When the handle was last compared with the path (coarse ms since the epoch).
    #[cfg(target_os = "linux")]
    checked_at: std::sync::atomic::AtomicU64,
    /// How often the handle is compared with the path, found or not.
    #[cfg(target_os = "linux")]
    recheck_ms: u64,
}

/// How often a store on Linux compares the directory it holds open (it reads entries
/// relative to it, with `openat`) with the one at its path, and reopens it if they differ:
/// for at most this long after its directory was moved away and replaced, a store may
/// still read entries from the old one. (A read that finds no entry compares at once.)
pub const ROOT_RECHECK: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Root {
    pub(super) fn open(dir: Arc<Path>) -> Root {
        #[cfg(target_os = "linux")]
        {
            let handle = parking_lot::RwLock::new(open_dir(&dir).ok());
            let checked_at = crate::clock::Clock::System.now_ms().into();
            Root { dir, handle, checked_at, recheck_ms: ROOT_RECHECK.as_millis() as u64 }
        }
        #[cfg(not(target_os = "linux"))]
        Root { dir }
    }

    /// The same directory, compared with its path on every read (for tests).
    #[cfg(all(test, target_os = "linux"))]
    pub(super) fn always_rechecked(self) -> Root {
        Root { recheck_ms: 0, ..self }
    }

    /// Opens the entry file at `path` (a path under the directory, from
    /// `FsStore::path_of`) for reading, without following a symlink.
    pub(super) fn open_entry(&self, path: &Path) -> io::Result<File> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::ffi::OsStrExt;
            let (dir, full) = (self.dir.as_os_str().as_bytes(), path.as_os_str().as_bytes());
            let rel = full.strip_prefix(dir).map(|rest| rest.strip_prefix(b"/").unwrap_or(rest));
            let Some(rel) = rel.filter(|rel| !rel.is_empty() && !rel.starts_with(b"/")) else {
                return open_no_follow(path);
            };
            let now = crate::clock::Clock::System.now_ms();
            if now.saturating_sub(self.checked_at.load(std::sync::atomic::Ordering::Relaxed)) >= self.recheck_ms {
                self.reopened();
            }
            match self.open_at(rel) {
                Err(e) if is_absent(&e) && self.reopened() => self.open_at(rel),
                opened => opened,
            }
        }
        #[cfg(not(target_os = "linux"))]
        open_no_follow(path)
    }

    /// `openat` of `rel` under the held directory.
    #[cfg(target_os = "linux")]
    pub(super) fn open_at(&self, rel: &[u8]) -> io::Result<File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // The path with its NUL, on the stack when it is short (keys have no NUL: checked).
        let mut buf = [0u8; 512];
        let heap;
        let c_path: &[u8] = if rel.len() < buf.len() {
            buf[..rel.len()].copy_from_slice(rel);
            &buf[..=rel.len()]
        } else {
            heap = [rel, &[0]].concat();
            &heap
        };
        let handle = self.handle.read();
        let Some(dir) = handle.as_ref() else { return Err(io::ErrorKind::NotFound.into()) };
        let base = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        for flags in [base | libc::O_NOATIME, base] {
            // SAFETY: `c_path` is NUL-terminated and outlives the call; `dir` is an open
            // directory, kept open by the read guard for as long as the call runs.
            let fd = unsafe { libc::openat(dir.as_raw_fd(), c_path.as_ptr().cast(), flags) };
            if fd >= 0 {
                // SAFETY: `fd` was just opened and is owned by nobody else.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
            let e = io::Error::last_os_error();
            // `O_NOATIME` is for the file's owner only: others open without it.
            if e.raw_os_error() != Some(libc::EPERM) || flags & libc::O_NOATIME == 0 {
                return Err(e);
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Whether the held directory is no longer the one at the path (removed, replaced,
    /// created since): then it is reopened (or dropped, if there is none now).
    #[cfg(target_os = "linux")]
    pub(super) fn reopened(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.checked_at.store(crate::clock::Clock::System.now_ms(), std::sync::atomic::Ordering::Relaxed);
        let id = |m: &Metadata| (m.dev(), m.ino());
        let now = fs::metadata(&self.dir).ok().filter(Metadata::is_dir).map(|m| id(&m));
        let held = self.handle.read().as_ref().and_then(|d| d.metadata().ok()).map(|m| id(&m));
        if now == held {
            return false;
        }
        *self.handle.write() = if now.is_some() { open_dir(&self.dir).ok() } else { None };
        true
    }
}

/// The directory at `dir`, open for `openat`.
#[cfg(target_os = "linux")]
pub(super) fn open_dir(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(dir)
}

/// Opens `path` for reading without following a symlink at the path itself, and without
/// blocking on a FIFO.
pub(super) fn open_no_follow(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // `O_NOATIME`: a read doesn't write the inode back. (With `relatime`, the kernel
        // would update the access time of every read, since an entry's mtime, its expiry,
        // lies in the future.) Only the file's owner may ask for it: others open without.
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOATIME);
        match options.open(path) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
            }
            opened => return opened,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Elsewhere: check first (a symlink placed between the check and the open is followed).
        if !fs::symlink_metadata(path)?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
    }
    options.open(path)
}

/// What [`read_live`] found.
pub(super) enum Opened {
    /// The bytes, or a miss.
    Read(Option<Vec<u8>>),
    /// A live file larger than the limit given, open and checked, to read elsewhere.
    Large(File, Metadata),
}

/// The bytes of a live regular file at `path`, whatever its size.
pub(super) fn read_any(root: &Root, path: &Path) -> Result<Option<Vec<u8>>, Error> {
    Ok(match read_live(root, path, u64::MAX)? {
        Opened::Read(bytes) => bytes,
        Opened::Large(file, meta) => read_open(path, file, &meta),
    })
}

/// The bytes of a live regular file at `path` of at most `limit` bytes; a miss for
/// anything else, removing what can't be a value (expired, unreadable, a symlink or other
/// special file). A larger file comes back open, as [`Opened::Large`].
pub(super) fn read_live(root: &Root, path: &Path, limit: u64) -> Result<Opened, Error> {
    let file = match root.open_entry(path) {
        Ok(file) => file,
        Err(e) if is_absent(&e) => return Ok(Opened::Read(None)),
        Err(e) => {
            // A symlink (ELOOP), a file we may not read, or another special file.
            if fs::symlink_metadata(path).is_ok_and(|meta| !meta.is_dir()) {
                tracing::warn!(target: "larder", path = %path.display(), error = %e, "fs store: unreadable file, removing it");
                remove_quietly(path);
            }
            return Ok(Opened::Read(None));
        }
    };
    let meta = file.metadata().map_err(|e| io_error("cannot inspect", path, &e))?;
    if meta.is_dir() {
        return Ok(Opened::Read(None));
    }
    if !meta.is_file() {
        tracing::warn!(target: "larder", path = %path.display(), "fs store: not a regular file, removing it");
        remove_quietly(path);
        return Ok(Opened::Read(None));
    }
    if expired(&meta) {
        remove_if_same(path, &meta);
        return Ok(Opened::Read(None));
    }
    if meta.len() > limit {
        return Ok(Opened::Large(file, meta));
    }
    Ok(Opened::Read(read_open(path, file, &meta)))
}

/// The rest of [`read_live`]: the bytes of the checked, open file at `path`.
pub(super) fn read_open(path: &Path, mut file: File, meta: &Metadata) -> Option<Vec<u8>> {
    // Exactly the size `fstat` gave, in one `read`: no second `statx` and `lseek` (as
    // `File::read_to_end` would do to learn the size again) and no `read` for the end of
    // the file. A file is replaced by rename, never rewritten, so it keeps that size; one
    // that shrank is an error below, one that grew is cut and fails to parse (a miss).
    let mut bytes = vec![0; usize::try_from(meta.len()).unwrap_or(usize::MAX)];
    match file.read_exact(&mut bytes) {
        Ok(()) => Some(bytes),
        Err(e) => {
            tracing::warn!(target: "larder", path = %path.display(), error = %e, "fs store: unreadable file, removing it");
            remove_if_same(path, meta);
            None
        }
    }
}
