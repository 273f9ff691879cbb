//! The [`Store`] operations of [`FsStore`]: each checks its key, then reads, writes, lists or
//! deletes files through the open directory on Tokio's blocking pool (a small read on the
//! calling thread), a file's mtime being its expiry ([`NO_TTL_MTIME`] without a TTL).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use filetime::FileTime;

use crate::error::Error;
use crate::stores::fs::beneath::{Dir, Kind, is_link};
use crate::stores::fs::files::{expired, io_error, is_absent, remove_if_same};
use crate::stores::fs::root::{INLINE_READ_MAX, Opened, Root, read_live, read_open};
use crate::stores::fs::store::{FsStore, blocking};
use crate::stores::fs::walk::{Found, prune_empty_dirs, walk};
use crate::stores::fs::write::{raise_stamp, remove_old_temp, replace_keeping_expiry, write_atomic};
use crate::stores::store::{Store, StoreFuture};

/// The mtime, in seconds since the Unix epoch, of a file stored without a TTL:
/// 2200-01-01T00:00:00Z.
pub const NO_TTL_MTIME: i64 = 7_258_118_400;

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
                let Some((root, top)) = open_scope(&root, rel, &scope)? else { return Ok(0) };
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
                let Some((_, top)) = open_scope(&root, relative(&dir, &scope), &scope)? else { return Ok(Vec::new()) };
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

/// The store's open directory and the directory of `scope` (at `rel` below it), or `None`
/// when either is not there or the scope is a link (never followed): what a listing or a
/// prefix delete walks.
fn open_scope(root: &Root, rel: &Path, scope: &Path) -> Result<Option<(Arc<Dir>, Dir)>, Error> {
    let Some(root) = root.current()? else { return Ok(None) };
    match root.descend(rel) {
        Ok(top) => Ok(Some((root, top))),
        Err(e) if is_absent(&e) || is_link(&e) => Ok(None),
        Err(e) => Err(io_error("cannot open", scope, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::UNIX_EPOCH;

    use crate::error::Error;
    use crate::stores::fs::root::Root;

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
