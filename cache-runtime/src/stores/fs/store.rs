//! [`FsStore`] itself: the store's operations over its directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use filetime::FileTime;

use crate::error::Error;
use crate::stores::fs::beneath::{Kind, is_link};
use crate::stores::fs::files::{expired, io_error, is_absent, remove_if_same};
use crate::stores::fs::path::{MAX_PATH, check_segment, invalid_key};
use crate::stores::fs::root::{
    Bounds, DEFAULT_MAX_ENTRY_SIZE, INLINE_READ_MAX, Opened, Root, create_private_dir, read_live, read_open,
};
use crate::stores::fs::walk::{Found, prune_empty_dirs, walk};
use crate::stores::fs::write::{raise_stamp, remove_old_temp, replace_keeping_expiry, write_atomic};
use crate::stores::store::{Store, StoreFuture};

/// The mtime, in seconds since the Unix epoch, of a file stored without a TTL:
/// 2200-01-01T00:00:00Z.
pub const NO_TTL_MTIME: i64 = 7_258_118_400;

/// A [`Store`] that keeps each key in its own file under one directory.
///
/// See the [module documentation](crate::stores::fs) for the layout, expiry, atomic writes and key rules.
/// Errors: an invalid key, and any file system error other than "not there", is an
/// [`Error::Store`] naming the key or path; nothing panics. Clones share the directory.
///
/// # Hostile files in the directory
///
/// The store reads only what it can trust, whoever put it there:
///
/// - **Oversized entries.** A file larger than the size bound ([`DEFAULT_MAX_ENTRY_SIZE`],
///   64 MiB, or [`FsStoreBuilder::max_entry_size`]) is a miss, logged as a warning on the
///   `larder` target, and is never read into memory: the size is checked on the open file
///   before reading, and the read stops one byte past the bound if the file grew meanwhile.
///   The file is left in place (a `set` of its key replaces it).
/// - **Symlinks.** No link below the directory is ever followed (on Unix every path is
///   opened segment by segment relative to the open directory, with `O_NOFOLLOW`). A link
///   where an entry's file should be is a miss (and `get` removes the link, never its
///   target; so does `delete`); a link where a directory should be makes every key under it
///   a miss, is skipped by `keys` and `delete_prefix`, and a `set` under it fails with
///   [`Error::Store`] instead of writing through it. The directory's own path may contain
///   links: they are resolved once, when the store is built.
/// - **Shared directories.** On Unix, building a store refuses (with [`Error::Store`]) a
///   directory that belongs to another user or that group or others may write to (mode
///   `& 0o022`): anyone who can write there can plant entries that the application would
///   serve. The store creates a missing directory with mode `0o700`. To share a directory
///   on purpose (several users' processes of one application, say), opt in with
///   [`FsStoreBuilder::allow_shared_directory`].
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
///
/// // Options: a smaller bound on entries, every read on the blocking pool.
/// let store = FsStore::builder(dir.path()).max_entry_size(1 << 20).blocking_reads(true).build()?;
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct FsStore {
    dir: Arc<Path>,
    /// The directory, held open, that every call resolves keys in.
    root: Arc<Root>,
    /// Every read goes to the blocking pool, small ones too.
    blocking_reads: bool,
    /// Larger entries are misses.
    max_entry_size: u64,
}

/// Options of an [`FsStore`]; finish with [`build`](FsStoreBuilder::build) or
/// [`open`](FsStoreBuilder::open).
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` or `open`"]
pub struct FsStoreBuilder {
    dir: PathBuf,
    blocking_reads: bool,
    max_entry_size: u64,
    allow_shared_directory: bool,
}

impl FsStore {
    /// Opens the store in `dir` with the default options, creating the directory (and its
    /// parents, with mode `0o700`) if needed, and removes the temp files that a crash left
    /// in it (older than a minute). The same as `FsStore::builder(dir).build()`.
    ///
    /// Blocking: it walks the whole directory once. In async code, with a large directory,
    /// prefer [`FsStore::open`].
    ///
    /// Errors: `dir` can't be created or is not a directory; or (on Unix) it belongs to
    /// another user or group or others may write to it (see
    /// [`FsStoreBuilder::allow_shared_directory`]). Failures to list the directory or to
    /// remove a leftover temp file are logged, not returned.
    pub fn new(dir: impl AsRef<Path>) -> Result<FsStore, Error> {
        FsStore::builder(dir.as_ref()).build()
    }

    /// [`FsStore::new`] on Tokio's blocking pool. Must be called inside a Tokio runtime.
    ///
    /// Errors: those of [`FsStore::new`].
    pub async fn open(dir: impl Into<PathBuf>) -> Result<FsStore, Error> {
        FsStore::builder(dir).open().await
    }

    /// Options for a store in `dir`: reads of small files on the calling thread, entries of
    /// at most [`DEFAULT_MAX_ENTRY_SIZE`], a private directory only.
    pub fn builder(dir: impl Into<PathBuf>) -> FsStoreBuilder {
        FsStoreBuilder {
            dir: dir.into(),
            blocking_reads: false,
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
            allow_shared_directory: false,
        }
    }

    /// With `true`, every read runs on Tokio's blocking pool, small ones too (for slow or
    /// network file systems); by default a file of at most [`INLINE_READ_MAX`] bytes is read
    /// on the calling thread.
    pub fn blocking_reads(mut self, yes: bool) -> FsStore {
        self.blocking_reads = yes;
        self
    }

    /// The size bound of entries (see [`FsStoreBuilder::max_entry_size`]).
    pub fn max_entry_size(mut self, bytes: u64) -> FsStore {
        self.max_entry_size = bytes;
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

    fn bounds(&self, inline: u64) -> Bounds {
        Bounds { inline, max: self.max_entry_size }
    }
}

impl FsStoreBuilder {
    /// With `true`, every read runs on Tokio's blocking pool (see [`FsStore::blocking_reads`]).
    pub fn blocking_reads(mut self, yes: bool) -> Self {
        self.blocking_reads = yes;
        self
    }

    /// The largest entry, in bytes, that the store reads (default
    /// [`DEFAULT_MAX_ENTRY_SIZE`], 64 MiB). A larger file under a key is a miss for `get`
    /// and `get_many`, logged as a warning on the `larder` target, and is never read into
    /// memory; a value written with `set` is not bounded, so keep this above the largest
    /// value the application stores.
    pub fn max_entry_size(mut self, bytes: u64) -> Self {
        self.max_entry_size = bytes;
        self
    }

    /// With `true`, accept a directory that another user owns or that group or others may
    /// write to (refused by default, on Unix). Anyone who can write to the directory can
    /// then put entries there that the application serves as its own: opt in only for a
    /// directory shared on purpose, among users who trust each other.
    pub fn allow_shared_directory(mut self, yes: bool) -> Self {
        self.allow_shared_directory = yes;
        self
    }

    /// Opens the store (see [`FsStore::new`], which this is with the options).
    ///
    /// Errors: those of [`FsStore::new`].
    pub fn build(self) -> Result<FsStore, Error> {
        let dir = &self.dir;
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_private_dir(dir)?,
            _ => {}
        }
        let dir = std::fs::canonicalize(dir).map_err(|e| io_error("cannot resolve the directory", dir, &e))?;
        let dir: Arc<Path> = dir.into();
        let root = Root::open(Arc::clone(&dir), self.allow_shared_directory)?;
        let store = FsStore {
            root: Arc::new(root),
            dir,
            blocking_reads: self.blocking_reads,
            max_entry_size: self.max_entry_size,
        };
        store.clean_leftovers();
        Ok(store)
    }

    /// [`FsStoreBuilder::build`] on Tokio's blocking pool. Must be called inside a Tokio
    /// runtime.
    ///
    /// Errors: those of [`FsStore::new`].
    pub async fn open(self) -> Result<FsStore, Error> {
        blocking(move || self.build()).await
    }
}

impl FsStore {
    /// Removes the temp files that a crash left (older than a minute), and empty directories.
    fn clean_leftovers(&self) {
        let Ok(Some(root)) = self.root.current() else { return };
        let (mut path, mut key) = (self.dir.to_path_buf(), String::new());
        let cleaned = walk(&root, &mut path, &mut key, "", 0, &mut |found| {
            if let Found::Temp { dir, name, path } = found {
                remove_old_temp(dir, name, path);
            }
        });
        if let Err(e) = cleaned {
            tracing::warn!(target: "larder", dir = %self.dir.display(), error = %e, "fs store: cannot clean leftover temp files");
        }
        prune_empty_dirs(&root);
    }
}

/// The mtime that says when a file written now with `ttl` expires ([`NO_TTL_MTIME`] without one).
fn expiry_mtime(ttl: Option<Duration>) -> FileTime {
    match ttl.and_then(|ttl| SystemTime::now().checked_add(ttl)) {
        Some(at) => FileTime::from_system_time(at),
        None => FileTime::from_unix_time(NO_TTL_MTIME, 0),
    }
}

/// `path` (from [`FsStore::path_of`] or [`FsStore::scope`]) relative to the store's directory.
fn relative<'p>(dir: &Path, path: &'p Path) -> &'p Path {
    path.strip_prefix(dir).expect("a key's path is under the store's directory")
}

impl Store for FsStore {
    fn name(&self) -> &str {
        "fs"
    }

    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            if self.blocking_reads {
                let (root, dir, bounds) = (Arc::clone(&self.root), Arc::clone(&self.dir), self.bounds(u64::MAX));
                return blocking(move || match read_live(&root, relative(&dir, &path), &path, bounds)? {
                    Opened::Read(bytes) => Ok(bytes),
                    Opened::Large(file, meta) => Ok(read_open(&path, file, &meta, bounds.max)),
                })
                .await;
            }
            let bounds = self.bounds(INLINE_READ_MAX);
            match read_live(&self.root, relative(&self.dir, &path), &path, bounds)? {
                Opened::Read(bytes) => Ok(bytes),
                Opened::Large(file, meta) => blocking(move || Ok(read_open(&path, file, &meta, bounds.max))).await,
            }
        })
    }

    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let mtime = expiry_mtime(ttl);
            let (root, dir) = (Arc::clone(&self.root), Arc::clone(&self.dir));
            blocking(move || write_atomic(&root, relative(&dir, &path), &path, &value, mtime)).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let (root, dir) = (Arc::clone(&self.root), Arc::clone(&self.dir));
            blocking(move || {
                let rel = relative(&dir, &path);
                let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else { return Ok(false) };
                let Some(root) = root.current()? else { return Ok(false) };
                let dir = match root.descend(parent) {
                    Ok(dir) => dir,
                    // Not there, or a link on the way: nothing of ours to delete.
                    Err(e) if is_absent(&e) || is_link(&e) => return Ok(false),
                    Err(e) => return Err(io_error("cannot open the directory of", &path, &e)),
                };
                let meta = match dir.stat(name) {
                    Ok(meta) => meta,
                    Err(e) if is_absent(&e) => return Ok(false),
                    Err(e) => return Err(io_error("cannot inspect", &path, &e)),
                };
                if meta.kind == Kind::Dir {
                    return Ok(false);
                }
                // A link is unlinked itself, never what it points to.
                let live = meta.kind == Kind::File && !expired(&meta);
                match dir.remove_file(name) {
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
            let (scope, mut key, partial) = self.scope(prefix)?;
            let (root, dir) = (Arc::clone(&self.root), Arc::clone(&self.dir));
            let partial = partial.to_owned();
            blocking(move || {
                let rel = relative(&dir, &scope);
                let Some(root) = root.current()? else { return Ok(0) };
                let top = match root.descend(rel) {
                    Ok(top) => top,
                    Err(e) if is_absent(&e) || is_link(&e) => return Ok(0),
                    Err(e) => return Err(io_error("cannot open", &scope, &e)),
                };
                let mut n = 0;
                let mut first_error = None;
                let mut path = scope.clone();
                walk(&top, &mut path, &mut key, &partial, 0, &mut |found| match found {
                    // Links are skipped: neither followed nor removed.
                    Found::File { meta, .. } if meta.kind == Kind::Link => {}
                    Found::File { dir, name, path, meta, .. } => match dir.remove_file(name) {
                        Ok(()) => n += u64::from(meta.kind == Kind::File && !expired(&meta)),
                        Err(e) if is_absent(&e) => {}
                        Err(e) => {
                            first_error.get_or_insert_with(|| io_error("cannot remove", path, &e));
                        }
                    },
                    Found::Temp { dir, name, path } => remove_old_temp(dir, name, path),
                })
                .or_else(|e| if is_absent(&e) { Ok(()) } else { Err(io_error("cannot list", &scope, &e)) })?;
                prune_empty_dirs(&top);
                // The scope's own directory too, if it is now empty (never the store's).
                if let (Some(name), Some(parent)) = (rel.file_name(), rel.parent())
                    && let Ok(parent) = root.descend(parent)
                {
                    let _ = parent.remove_dir(name);
                }
                match first_error {
                    Some(e) => Err(e),
                    None => Ok(n),
                }
            })
            .await
        })
    }

    fn raise<'a>(&'a self, key: &'a str, stamp: u64, ttl: Option<Duration>) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let (root, dir) = (Arc::clone(&self.root), Arc::clone(&self.dir));
            let mtime = expiry_mtime(ttl);
            blocking(move || raise_stamp(&root, relative(&dir, &path), &path, stamp, mtime)).await
        })
    }

    fn replace<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let path = self.path_of(key)?;
            let (root, dir) = (Arc::clone(&self.root), Arc::clone(&self.dir));
            blocking(move || replace_keeping_expiry(&root, relative(&dir, &path), &path, &value)).await
        })
    }

    fn keys<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let (scope, mut key, partial) = self.scope(prefix)?;
            let (root, dir) = (Arc::clone(&self.root), Arc::clone(&self.dir));
            let partial = partial.to_owned();
            blocking(move || {
                let rel = relative(&dir, &scope);
                let Some(root) = root.current()? else { return Ok(Vec::new()) };
                let top = match root.descend(rel) {
                    Ok(top) => top,
                    Err(e) if is_absent(&e) || is_link(&e) => return Ok(Vec::new()),
                    Err(e) => return Err(io_error("cannot open", &scope, &e)),
                };
                let mut keys = Vec::new();
                let mut path = scope.clone();
                walk(&top, &mut path, &mut key, &partial, 0, &mut |found| {
                    if let Found::File { key, dir, name, path, meta } = found {
                        if meta.kind != Kind::File {
                            return;
                        }
                        if expired(&meta) {
                            remove_if_same(dir, name, path, &meta);
                        } else {
                            keys.push(key.to_owned());
                        }
                    }
                })
                .or_else(|e| if is_absent(&e) { Ok(()) } else { Err(io_error("cannot list", &scope, &e)) })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::UNIX_EPOCH;

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

    #[cfg(unix)]
    #[tokio::test]
    async fn reads_follow_the_directory_when_it_is_removed_or_replaced() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("cache");
        let mut store = FsStore::new(&dir).unwrap();
        // Compare the open directory with the path on every read (not once a second).
        store.root = Arc::new(Root::open(Arc::clone(&store.dir), false).unwrap().always_rechecked());
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
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        assert_eq!(store.get("g:k.json").await.unwrap(), None, "the new directory has no entry yet");
        store.set("g:k.json", b"3".to_vec(), None).await.unwrap();
        assert_eq!(store.get("g:k.json").await.unwrap().as_deref(), Some(&b"3"[..]));
        let blocking = store.clone().blocking_reads(true);
        assert_eq!(blocking.get("g:k.json").await.unwrap().as_deref(), Some(&b"3"[..]));
    }

    /// Without `openat2` (old kernels, sandboxes), paths are opened one segment at a time:
    /// a link on the way or at the end is refused there too.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn links_are_refused_segment_by_segment_without_openat2() {
        crate::stores::fs::beneath::disable_openat2();
        let (dir, store) = store();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("k.json");
        fs::write(&secret, b"secret").unwrap();
        fs::File::options().write(true).open(&secret).unwrap().set_modified(UNIX_EPOCH).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("evil")).unwrap();
        fs::create_dir(dir.path().join("g")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.path().join("g/link.json")).unwrap();

        assert_eq!(store.get("evil:k.json").await.unwrap(), None);
        assert_eq!(store.clone().blocking_reads(true).get("evil:k.json").await.unwrap(), None);
        assert_eq!(store.get("g:link.json").await.unwrap(), None);
        assert!(store.set("evil:new.json", b"x".to_vec(), None).await.is_err());
        assert!(store.keys("").await.unwrap().is_empty());
        assert_eq!(store.delete_prefix("").await.unwrap(), 0);
        assert_eq!(fs::read(&secret).unwrap(), b"secret", "the expired file outside is still there");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1, "nothing written outside");
        assert!(dir.path().join("g/link.json").symlink_metadata().is_err(), "the linked entry was unlinked");
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
