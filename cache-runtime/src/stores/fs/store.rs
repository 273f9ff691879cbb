//! [`FsStore`] and how it is opened: the store's state, [`FsStoreBuilder`] and its options,
//! and the file a key names under its directory (its [`Store`](crate::Store) operations are
//! in `ops.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;
use crate::stores::fs::files::io_error;
use crate::stores::fs::path::{MAX_PATH, check_segment, invalid_key};
use crate::stores::fs::root::{Bounds, DEFAULT_MAX_ENTRY_SIZE, Root, create_private_dir};
use crate::stores::fs::walk::{Found, prune_empty_dirs, walk};
use crate::stores::fs::write::remove_old_temp;

/// A [`Store`](crate::Store) that keeps each key in its own file under one directory.
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
    pub(super) dir: Arc<Path>,
    /// The directory, held open, that every call resolves keys in.
    pub(super) root: Arc<Root>,
    /// Every read goes to the blocking pool, small ones too.
    pub(super) blocking_reads: bool,
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
    /// network file systems); by default a file of at most
    /// [`INLINE_READ_MAX`](crate::stores::fs::root::INLINE_READ_MAX) bytes is read
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
    pub(super) fn scope<'p>(&self, prefix: &'p str) -> Result<(PathBuf, String, &'p str), Error> {
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

    pub(super) fn bounds(&self, inline: u64) -> Bounds {
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

/// Runs file system work on Tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(Error::store("fs store: a blocking task failed", e)))
}
