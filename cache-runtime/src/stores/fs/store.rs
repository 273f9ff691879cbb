//! [`FsStore`] itself: the store's operations over its directory.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filetime::FileTime;

use crate::error::Error;
use crate::stores::store::{Store, StoreFuture};

/// The start of every temp file's name. Keys whose segment starts with it are refused.
pub const TEMP_PREFIX: &str = ".larder-tmp.";

/// The mtime, in seconds since the Unix epoch, of a file stored without a TTL:
/// 2200-01-01T00:00:00Z.
pub const NO_TTL_MTIME: i64 = 7_258_118_400;

/// Temp files older than this are leftovers of a crash; younger ones may be a write in
/// progress.
const TEMP_GRACE: Duration = Duration::from_secs(60);

/// The longest segment (file or directory name) that file systems accept.
const MAX_SEGMENT: usize = 255;

/// The longest path (with its terminating NUL) that Linux accepts.
const MAX_PATH: usize = 4096;

/// Files up to this size are read on the calling thread (see the module documentation).
pub const INLINE_READ_MAX: u64 = 64 * 1024;

/// A guard against directory trees deeper than any key could make.
const MAX_DEPTH: usize = MAX_PATH / 2;

/// A [`Store`] that keeps each key in its own file under one directory.
///
/// See the [module documentation](self) for the layout, expiry, atomic writes and key rules.
/// Errors: an invalid key, and any file system error other than "not there", is an
/// [`Error::Store`] naming the key or path; nothing panics. Clones share the directory.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use cache_runtime::FsStore;
/// use cache_runtime::Store;
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = FsStore::new(dir.path())?;
/// store.set("functions:get_token:default.json", b"{}".to_vec(), None).await?;
/// assert!(dir.path().join("functions/get_token/default.json").is_file());
/// assert!(store.set("../../etc/passwd", vec![], None).await.is_err());
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct FsStore {
    dir: Arc<Path>,
    /// The directory, held open, that reads resolve keys in.
    root: Arc<Root>,
    /// Every read goes to the blocking pool, small ones too.
    blocking_reads: bool,
}

impl FsStore {
    /// Opens the store in `dir`, creating the directory (and its parents) if needed, and
    /// removes the temp files that a crash left in it (older than a minute).
    ///
    /// Blocking: it walks the whole directory once. In async code, with a large directory,
    /// prefer [`FsStore::open`].
    ///
    /// Errors: `dir` can't be created or is not a directory. Failures to list the directory
    /// or to remove a leftover temp file are logged, not returned.
    pub fn new(dir: impl AsRef<Path>) -> Result<FsStore, Error> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| io_error("cannot create the directory", dir, &e))?;
        let dir = fs::canonicalize(dir).map_err(|e| io_error("cannot resolve the directory", dir, &e))?;
        if !dir.is_dir() {
            return Err(Error::Store(format!("fs store: {} is not a directory", dir.display()).into()));
        }
        let dir: Arc<Path> = dir.into();
        let store = FsStore { root: Arc::new(Root::open(Arc::clone(&dir))), dir, blocking_reads: false };
        let mut key = String::new();
        let cleaned = walk(&store.dir, &mut key, "", 0, &mut |found| {
            if let Found::Temp { path } = found {
                remove_old_temp(&path);
            }
        });
        if let Err(e) = cleaned {
            tracing::warn!(target: "larder", dir = %store.dir.display(), error = %e, "fs store: cannot clean leftover temp files");
        }
        prune_empty_dirs(&store.dir, false);
        Ok(store)
    }

    /// [`FsStore::new`] on Tokio's blocking pool. Must be called inside a Tokio runtime.
    ///
    /// Errors: those of [`FsStore::new`].
    pub async fn open(dir: impl Into<PathBuf>) -> Result<FsStore, Error> {
        let dir = dir.into();
        blocking(move || FsStore::new(dir)).await
    }

    /// With `true`, every read runs on Tokio's blocking pool, small ones too (for slow or
    /// network file systems); by default a file of at most [`INLINE_READ_MAX`] bytes is read
    /// on the calling thread.
    pub fn blocking_reads(mut self, yes: bool) -> FsStore {
        self.blocking_reads = yes;
        self
    }

    /// The store's directory (absolute, symlinks resolved).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds `key`, after checking the key (see the module documentation).
    ///
    /// Errors: the key is refused, with the reason.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, Error> {
        // One allocation of the final size, instead of one `push` (and its growth) per segment.
        let mut path = PathBuf::with_capacity(self.dir.as_os_str().len() + 1 + key.len());
        path.push(&*self.dir);
        for segment in key.split(':') {
            check_segment(segment, false).map_err(|why| invalid_key(key, why))?;
            path.push(segment);
        }
        if path.as_os_str().len() >= MAX_PATH {
            return Err(invalid_key(key, "its path would be longer than 4095 bytes"));
        }
        Ok(path)
    }

    /// The directory to walk for `prefix`, the key prefix of that directory, and the start
    /// of the names to keep in it.
    fn scope<'p>(&self, prefix: &'p str) -> Result<(PathBuf, String, &'p str), Error> {
        let (full, partial) = match prefix.rfind(':') {
            Some(i) => (&prefix[..=i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let mut dir = self.dir.to_path_buf();
        if let Some(full) = full.strip_suffix(':') {
            for segment in full.split(':') {
                check_segment(segment, false).map_err(|why| invalid_key(prefix, why))?;
                dir.push(segment);
            }
        }
        check_segment(partial, true).map_err(|why| invalid_key(prefix, why))?;
        Ok((dir, full.to_owned(), partial))
    }
}

impl Store for FsStore {
    fn name(&self) -> &str {
        "fs"
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            if self.blocking_reads {
                let root = Arc::clone(&self.root);
                return blocking(move || read_any(&root, &path)).await;
            }
            match read_live(&self.root, &path, INLINE_READ_MAX)? {
                Opened::Read(bytes) => Ok(bytes),
                Opened::Large(file, meta) => blocking(move || Ok(read_open(&path, file, &meta))).await,
            }
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let expires = ttl.and_then(|ttl| SystemTime::now().checked_add(ttl));
            let mtime = match expires {
                Some(at) => FileTime::from_system_time(at),
                None => FileTime::from_unix_time(NO_TTL_MTIME, 0),
            };
            blocking(move || write_atomic(&path, &value, mtime)).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            blocking(move || {
                let meta = match fs::symlink_metadata(&path) {
                    Ok(meta) => meta,
                    Err(e) if is_absent(&e) => return Ok(false),
                    Err(e) => return Err(io_error("cannot inspect", &path, &e)),
                };
                if meta.is_dir() {
                    return Ok(false);
                }
                let live = meta.is_file() && !expired(&meta);
                match fs::remove_file(&path) {
                    Ok(()) => Ok(live),
                    Err(e) if is_absent(&e) => Ok(false),
                    Err(e) => Err(io_error("cannot remove", &path, &e)),
                }
            })
            .await
        })
    }

    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let (dir, mut key, partial) = self.scope(prefix)?;
            let root = self.dir.clone();
            let partial = partial.to_owned();
            blocking(move || {
                let mut n = 0;
                let mut first_error = None;
                walk(&dir, &mut key, &partial, 0, &mut |found| match found {
                    Found::File { path, meta, .. } => match fs::remove_file(&path) {
                        Ok(()) => n += u64::from(meta.is_file() && !expired(&meta)),
                        Err(e) if is_absent(&e) => {}
                        Err(e) => {
                            first_error.get_or_insert_with(|| io_error("cannot remove", &path, &e));
                        }
                    },
                    Found::Temp { path } => remove_old_temp(&path),
                })
                .or_else(|e| if is_absent(&e) { Ok(()) } else { Err(io_error("cannot list", &dir, &e)) })?;
                prune_empty_dirs(&dir, dir != *root);
                match first_error {
                    Some(e) => Err(e),
                    None => Ok(n),
                }
            })
            .await
        })
    }

    fn keys<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let (dir, mut key, partial) = self.scope(prefix)?;
            let partial = partial.to_owned();
            blocking(move || {
                let mut keys = Vec::new();
                walk(&dir, &mut key, &partial, 0, &mut |found| {
                    if let Found::File { key, path, meta } = found {
                        if !meta.is_file() {
                            return;
                        }
                        if expired(&meta) {
                            remove_if_same(&path, &meta);
                        } else {
                            keys.push(key);
                        }
                    }
                })
                .or_else(|e| if is_absent(&e) { Ok(()) } else { Err(io_error("cannot list", &dir, &e)) })?;
                Ok(keys)
            })
            .await
        })
    }
}

/// Runs file system work on Tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(Error::store("fs store: a blocking task failed", e)))
}

/// Checks one `:`-separated segment of a key (`partial`: the unfinished last segment of a
/// prefix, which may be empty or `.`/`..`, as it only filters names).
fn check_segment(segment: &str, partial: bool) -> Result<(), &'static str> {
    if segment.contains(['/', '\\', '\0']) {
        return Err("it contains `/`, `\\` or NUL");
    }
    if segment.len() > MAX_SEGMENT {
        return Err("a segment is longer than 255 bytes (file systems can't store it)");
    }
    if partial {
        return Ok(());
    }
    if segment.is_empty() {
        return Err("it has an empty segment (a leading or trailing `:`, or `::`)");
    }
    if segment == "." || segment == ".." {
        return Err("it has a `.` or `..` segment");
    }
    if segment.starts_with(TEMP_PREFIX) {
        return Err("a segment starts with `.larder-tmp.`, which is reserved for temp files");
    }
    Ok(())
}

fn invalid_key(key: &str, why: &str) -> Error {
    const SHOWN: usize = 80;
    let shown = if key.len() > SHOWN {
        let mut end = SHOWN;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}… ({} bytes)", &key[..end], key.len())
    } else {
        format!("{key:?}")
    };
    Error::Store(
        format!(
            "fs store: refused key {shown}: {why}; keys are `:`-separated segments of 1 to 255 bytes, \
         without `/`, `\\` or NUL, and not `.` or `..` (build them with `escape_key`)"
        )
        .into(),
    )
}

fn io_error(what: &str, path: &Path, e: &io::Error) -> Error {
    // `io::Error` is not `Clone`: the source keeps its kind and text.
    Error::store(format!("fs store: {what} {}", path.display()), io::Error::new(e.kind(), e.to_string()))
}

/// "Not there": the file, or one of its parents, does not exist or is not a directory.
fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// Whether a file's expiry (its mtime) has passed. An mtime that can't be read counts as
/// expired: the file can't be trusted to be fresh.
fn expired(meta: &Metadata) -> bool {
    meta.modified().map_or(true, |mtime| mtime <= SystemTime::now())
}

/// The store's directory, held open (Linux): an entry is opened with `openat` relative to
/// it, so a read resolves only the key's own segments, not the directory's whole path
/// again (a path walk costs the kernel per segment; this takes about a sixth off a small
/// read). If the directory is removed or replaced (say `rm -rf` and a write that creates it
/// again, or a `mv` and a new one in its place), the handle would go on naming the old one.
/// So the handle is compared with what the path names now, and reopened if they differ:
/// when an entry is not found (then the open is tried once more), and on the first read
/// after [`ROOT_RECHECK`] has passed since the last comparison. Writes, deletes and
/// listings use the path.
struct Root {
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
    fn open(dir: Arc<Path>) -> Root {
        #[cfg(target_os = "linux")]
        {
            let handle = parking_lot::RwLock::new(open_dir(&dir).ok());
            let checked_at = crate::clock::Clock::System.now_ms().into();
            Root { dir, handle, checked_at, recheck_ms: ROOT_RECHECK.as_millis() as u64 }
        }
        #[cfg(not(target_os = "linux"))]
        Root { dir }
    }

    /// Opens the entry file at `path` (a path under the directory, from
    /// [`FsStore::path_of`]) for reading, without following a symlink.
    fn open_entry(&self, path: &Path) -> io::Result<File> {
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
    fn open_at(&self, rel: &[u8]) -> io::Result<File> {
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
    fn reopened(&self) -> bool {
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
fn open_dir(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(dir)
}

/// Opens `path` for reading without following a symlink at the path itself, and without
/// blocking on a FIFO.
fn open_no_follow(path: &Path) -> io::Result<File> {
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
enum Opened {
    /// The bytes, or a miss.
    Read(Option<Vec<u8>>),
    /// A live file larger than the limit given, open and checked, to read elsewhere.
    Large(File, Metadata),
}

/// The bytes of a live regular file at `path`, whatever its size.
fn read_any(root: &Root, path: &Path) -> Result<Option<Vec<u8>>, Error> {
    Ok(match read_live(root, path, u64::MAX)? {
        Opened::Read(bytes) => bytes,
        Opened::Large(file, meta) => read_open(path, file, &meta),
    })
}

/// The bytes of a live regular file at `path` of at most `limit` bytes; a miss for
/// anything else, removing what can't be a value (expired, unreadable, a symlink or other
/// special file). A larger file comes back open, as [`Opened::Large`].
fn read_live(root: &Root, path: &Path, limit: u64) -> Result<Opened, Error> {
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
fn read_open(path: &Path, mut file: File, meta: &Metadata) -> Option<Vec<u8>> {
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

/// Writes `value` to `path` atomically (temp file in the same directory, then rename), with
/// `mtime` as its expiry.
fn write_atomic(path: &Path, value: &[u8], mtime: FileTime) -> Result<(), Error> {
    let parent = path.parent().expect("a key's path has its directory as parent");
    // A concurrent `delete_prefix` may remove an empty directory between its creation and
    // the temp file's: try again a few times.
    let mut attempts = 0;
    let mut temp = loop {
        attempts += 1;
        fs::create_dir_all(parent).map_err(|e| io_error("cannot create the directory", parent, &e))?;
        match tempfile::Builder::new().prefix(&temp_prefix()).tempfile_in(parent) {
            Ok(temp) => break temp,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 4 => continue,
            Err(e) => return Err(io_error("cannot create a temp file in", parent, &e)),
        }
    };
    temp.write_all(value).map_err(|e| io_error("cannot write", temp.path(), &e))?;
    filetime::set_file_handle_times(temp.as_file(), None, Some(mtime))
        .map_err(|e| io_error("cannot set the expiry (mtime) of", temp.path(), &e))?;
    // On failure the temp file is removed when the error's handle drops.
    temp.persist(path).map_err(|e| io_error("cannot rename a temp file to", path, &e.error))?;
    Ok(())
}

/// `.larder-tmp.{ms since epoch}.`: the time tells later cleanups how old a temp file is.
fn temp_prefix() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("{TEMP_PREFIX}{ms}.")
}

/// Removes a temp file if its name says it is older than [`TEMP_GRACE`] (or can't say).
fn remove_old_temp(path: &Path) {
    let born = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix(TEMP_PREFIX))
        .and_then(|rest| rest.split('.').next())
        .and_then(|ms| ms.parse::<u64>().ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    let old = born.is_none_or(|born| born + TEMP_GRACE <= SystemTime::now());
    if old {
        remove_quietly(path);
    }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && !is_absent(&e)
    {
        tracing::warn!(target: "larder", path = %path.display(), error = %e, "fs store: cannot remove a file");
    }
}

/// Removes `path` only if it is still the file described by `meta`: an expired file that a
/// concurrent `set` just replaced stays.
fn remove_if_same(path: &Path, meta: &Metadata) {
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

/// What [`walk`] finds.
enum Found {
    /// A key's file (or something else that is not a directory at a key's place).
    File { key: String, path: PathBuf, meta: Metadata },
    /// A temp file.
    Temp { path: PathBuf },
}

/// Visits every file under `dir` (whose key prefix is `key`), keeping at the top level only
/// the names that start with `partial`. Names that are not UTF-8 can't be keys: skipped.
fn walk(dir: &Path, key: &mut String, partial: &str, depth: usize, visit: &mut dyn FnMut(Found)) -> io::Result<()> {
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
fn prune_empty_dirs(dir: &Path, including_self: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, FsStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path()).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let (_dir, store) = store();
        crate::stores::store::conformance::check(&store).await;
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reads_follow_the_directory_when_it_is_removed_or_replaced() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("cache");
        let mut store = FsStore::new(&dir).unwrap();
        // Compare the open directory with the path on every read (not once a second).
        store.root = Arc::new(Root { recheck_ms: 0, ..Root::open(Arc::clone(&store.dir)) });
        store.set("g:k.json", b"1".to_vec(), None).await.unwrap();
        assert_eq!(store.get("g:k.json").await.unwrap().as_deref(), Some(&b"1"[..]));

        // Removed: a miss, not an error.
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(store.get("g:k.json").await.unwrap(), None);
        // Created again by a write: read from the new directory.
        store.set("g:k.json", b"2".to_vec(), None).await.unwrap();
        assert_eq!(store.get("g:k.json").await.unwrap().as_deref(), Some(&b"2"[..]));

        // Moved away, and a new directory in its place: the new one is read, not the old.
        fs::rename(&dir, parent.path().join("old")).unwrap();
        fs::create_dir(&dir).unwrap();
        assert_eq!(store.get("g:k.json").await.unwrap(), None, "the new directory has no entry yet");
        store.set("g:k.json", b"3".to_vec(), None).await.unwrap();
        assert_eq!(store.get("g:k.json").await.unwrap().as_deref(), Some(&b"3"[..]));
        let blocking = store.clone().blocking_reads(true);
        assert_eq!(blocking.get("g:k.json").await.unwrap().as_deref(), Some(&b"3"[..]));
    }

    #[tokio::test]
    async fn a_key_is_a_path_with_colons_as_slashes() {
        let (dir, store) = store();
        store.set("functions:get_token:default.json", b"{\"value\":1}".to_vec(), None).await.unwrap();
        let file = dir.path().join("functions/get_token/default.json");
        assert_eq!(fs::read(&file).unwrap(), b"{\"value\":1}");
        assert_eq!(
            store.path_of("functions:get_token:default.json").unwrap(),
            store.dir().join("functions/get_token/default.json")
        );
    }

    #[tokio::test]
    async fn hostile_keys_are_refused_and_touch_nothing() {
        let (dir, store) = store();
        let long_segment = "a".repeat(10_000);
        let long_path = "a:".repeat(5_000) + "x.json";
        let hostile = [
            "",
            "../../etc/passwd",
            "..",
            "a:..:b",
            "a:.:b",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "..\\..\\windows",
            "a\0b",
            "C:\\Windows",
            "a::b",
            ":a",
            "a:",
            ".larder-tmp.1.x",
            long_segment.as_str(),
            long_path.as_str(),
        ];
        for key in hostile {
            for result in [
                store.get(key).await.map(drop),
                store.set(key, b"x".to_vec(), None).await,
                store.delete(key).await.map(drop),
            ] {
                let err = result.expect_err(&format!("key {key:?} must be refused"));
                let Error::Store(detail) = err else { panic!("not a store error") };
                let msg = detail.to_string();
                assert!(msg.contains("refused key"), "{msg}");
                assert!(msg.len() < 400, "the message stays short: {msg}");
            }
        }
        for prefix in ["../", "/etc:", "a::", "..:", "a\0"] {
            assert!(store.keys(prefix).await.is_err(), "prefix {prefix:?}");
            assert!(store.delete_prefix(prefix).await.is_err(), "prefix {prefix:?}");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was written");
    }

    #[tokio::test]
    async fn the_longest_keys_that_fit_work() {
        let (_dir, store) = store();
        let key = format!("{}:{}", "g".repeat(255), "k".repeat(255));
        store.set(&key, b"1".to_vec(), None).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.keys("").await.unwrap(), vec![key]);
    }

    #[tokio::test]
    async fn the_expiry_is_the_mtime() {
        let (dir, store) = store();
        store.set("a:ttl.json", b"1".to_vec(), Some(Duration::from_secs(3600))).await.unwrap();
        store.set("a:forever.json", b"1".to_vec(), None).await.unwrap();
        let mtime = |name: &str| {
            fs::metadata(dir.path().join("a").join(name))
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let ttl = mtime("ttl.json");
        assert!(ttl > now + Duration::from_secs(3590) && ttl <= now + Duration::from_secs(3601), "{ttl:?}");
        assert_eq!(mtime("forever.json").as_secs(), NO_TTL_MTIME as u64);
    }

    #[tokio::test]
    async fn an_expired_file_is_removed_when_read() {
        let (dir, store) = store();
        store.set("a:x.json", b"1".to_vec(), Some(Duration::from_millis(20))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(store.get("a:x.json").await.unwrap(), None);
        assert!(!dir.path().join("a/x.json").exists());
    }

    #[tokio::test]
    async fn a_prefix_is_matched_on_whole_and_partial_segments() {
        let (_dir, store) = store();
        for key in ["g:n:a.json", "g:n:ab.json", "g:nn:a.json", "h:n:a.json"] {
            store.set(key, b"1".to_vec(), None).await.unwrap();
        }
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(sorted(store.keys("g:n:a").await.unwrap()), ["g:n:a.json", "g:n:ab.json"]);
        assert_eq!(sorted(store.keys("g:n").await.unwrap()), ["g:n:a.json", "g:n:ab.json", "g:nn:a.json"]);
        assert_eq!(store.keys("nothing:here:").await.unwrap(), Vec::<String>::new());
        assert_eq!(store.delete_prefix("g:").await.unwrap(), 3);
        assert_eq!(store.keys("").await.unwrap(), ["h:n:a.json"]);
        assert!(!store.dir().join("g").exists(), "empty directories are pruned");
    }
}
