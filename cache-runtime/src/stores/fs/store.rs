//! [`FsStore`] itself: the store's operations over its directory.

use std::fs::{self};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use filetime::FileTime;

use crate::error::Error;
use crate::stores::fs::files::{expired, io_error, is_absent, remove_if_same};
use crate::stores::fs::path::{MAX_PATH, check_segment, invalid_key};
use crate::stores::fs::root::{INLINE_READ_MAX, Opened, Root, read_any, read_live, read_open};
use crate::stores::fs::walk::{Found, prune_empty_dirs, walk};
use crate::stores::fs::write::{remove_old_temp, write_atomic};
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

#[cfg(test)]
mod tests {
    use super::*;
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reads_follow_the_directory_when_it_is_removed_or_replaced() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("cache");
        let mut store = FsStore::new(&dir).unwrap();
        // Compare the open directory with the path on every read (not once a second).
        store.root = Arc::new(Root::open(Arc::clone(&store.dir)).always_rechecked());
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
