//! The fs store against hostile files in its directory: entries too large to read, links
//! planted to lead outside, and directories that other users may write to. Each test
//! plants the file a hostile user (or a careless one) would, and checks what the store's
//! user sees and what is left on disk outside the store.
#![cfg(all(feature = "fs", unix))]

mod common;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use cache_runtime::Error;
use cache_runtime::stores::fs::{DEFAULT_MAX_ENTRY_SIZE, FsStore};
use cache_runtime::stores::{Store, conformance};
use common::fs::files;

/// Gives a hand-written file a far-future mtime: alive for the store.
fn alive(path: &Path) {
    let far = SystemTime::now() + Duration::from_secs(3600);
    File::options().write(true).open(path).unwrap().set_modified(far).unwrap();
}

/// Gives a hand-written file a past mtime: expired for the store, which removes the
/// expired files it meets.
fn expired(path: &Path) {
    File::options().write(true).open(path).unwrap().set_modified(SystemTime::UNIX_EPOCH).unwrap();
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

// ---------------------------------------------------------------------------------------
// Entries too large to read
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn fs_a_sparse_terabyte_file_at_an_entry_is_a_miss_and_the_process_survives() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    store.set("g:ok.json", b"1".to_vec(), None).await.unwrap();
    let huge = dir.path().join("g/huge.json");
    File::create(&huge).unwrap().set_len(1 << 40).unwrap();
    alive(&huge);

    assert_eq!(store.get("g:huge.json").await.unwrap(), None, "a file over the default bound is a miss");
    let pooled = store.clone().blocking_reads(true);
    assert_eq!(pooled.get("g:huge.json").await.unwrap(), None, "on the blocking pool too");
    let keys = ["g:huge.json".to_owned(), "g:ok.json".to_owned()];
    assert_eq!(store.get_many(&keys).await.unwrap(), [None, Some(b"1".to_vec())], "get_many takes the same path");
    assert_eq!(fs::metadata(&huge).unwrap().len(), 1 << 40, "the file is left in place, not read");
    const { assert!(DEFAULT_MAX_ENTRY_SIZE < 1 << 40) };

    // A `set` of the key replaces it.
    store.set("g:huge.json", b"2".to_vec(), None).await.unwrap();
    assert_eq!(store.get("g:huge.json").await.unwrap().as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn fs_an_entry_over_a_configured_bound_is_a_miss_one_under_it_a_hit() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::builder(dir.path()).max_entry_size(1024).build().unwrap();
    let pooled = store.clone().blocking_reads(true);
    for (key, len, hit) in [("g:under.json", 1000, true), ("g:at.json", 1024, true), ("g:over.json", 2048, false)] {
        let value = vec![b'x'; len];
        store.set(key, value.clone(), None).await.unwrap();
        let expected = hit.then_some(value);
        assert_eq!(store.get(key).await.unwrap(), expected, "{key} ({len} bytes, bound 1 KiB)");
        assert_eq!(pooled.get(key).await.unwrap(), expected, "{key} on the blocking pool");
        assert_eq!(store.get_many(&[key.to_owned()]).await.unwrap(), [expected], "{key} through get_many");
    }
    // Over the inline-read size too (read on the pool), under and over the bound.
    let store = FsStore::new(dir.path()).unwrap().max_entry_size(200 * 1024);
    let big = vec![b'y'; 150 * 1024];
    store.set("g:big.json", big.clone(), None).await.unwrap();
    store.set("g:bigger.json", vec![b'z'; 250 * 1024], None).await.unwrap();
    assert_eq!(store.get("g:big.json").await.unwrap(), Some(big));
    assert_eq!(store.get("g:bigger.json").await.unwrap(), None);
    assert_eq!(sorted(store.keys("g:big").await.unwrap()), ["g:big.json", "g:bigger.json"], "still listed");
}

// ---------------------------------------------------------------------------------------
// Links planted in the directory
// ---------------------------------------------------------------------------------------

/// A store, and outside it a tree a hostile user links to: `k.json` (expired, so that a
/// store following the link would delete it), `live.json`, and `sub/deep.json`.
struct Planted {
    dir: tempfile::TempDir,
    outside: tempfile::TempDir,
    store: FsStore,
}

impl Planted {
    fn new() -> Planted {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("k.json"), b"outside k").unwrap();
        expired(&outside.path().join("k.json"));
        fs::write(outside.path().join("live.json"), b"outside live").unwrap();
        alive(&outside.path().join("live.json"));
        fs::create_dir(outside.path().join("sub")).unwrap();
        fs::write(outside.path().join("sub/deep.json"), b"outside deep").unwrap();
        alive(&outside.path().join("sub/deep.json"));
        let store = FsStore::new(dir.path()).unwrap();
        Planted { dir, outside, store }
    }

    /// The outside tree is exactly as planted.
    fn assert_outside_intact(&self, after: &str) {
        let out = self.outside.path();
        assert_eq!(
            files(out),
            BTreeSet::from(["k.json".to_owned(), "live.json".to_owned(), "sub/deep.json".to_owned()]),
            "after {after}: files outside the store"
        );
        assert_eq!(fs::read(out.join("k.json")).unwrap(), b"outside k", "after {after}");
        assert_eq!(fs::read(out.join("live.json")).unwrap(), b"outside live", "after {after}");
        assert_eq!(fs::read(out.join("sub/deep.json")).unwrap(), b"outside deep", "after {after}");
    }
}

#[tokio::test]
async fn fs_a_symlinked_directory_is_never_written_through() {
    let p = Planted::new();
    symlink(p.outside.path(), p.dir.path().join("evil")).unwrap();
    fs::create_dir(p.dir.path().join("g")).unwrap();
    symlink(p.outside.path(), p.dir.path().join("g/evil")).unwrap();

    for key in ["evil:new.json", "evil:sub:new.json", "g:evil:new.json", "evil:live.json"] {
        let err = p.store.set(key, b"planted".to_vec(), None).await.expect_err(key);
        let Error::Store(detail) = &err else { panic!("{key}: not a store error: {err}") };
        assert!(detail.to_string().contains("symbolic link"), "{key}: {detail}");
    }
    p.assert_outside_intact("set under the link");
    assert!(p.dir.path().join("evil").symlink_metadata().unwrap().is_symlink(), "the link stays");
}

#[tokio::test]
async fn fs_a_symlinked_directory_is_never_read_listed_or_cleaned_through() {
    let p = Planted::new();
    symlink(p.outside.path(), p.dir.path().join("evil")).unwrap();
    p.store.set("g:mine.json", b"1".to_vec(), None).await.unwrap();

    // The expired file outside would be removed by a store that followed the link.
    assert_eq!(p.store.get("evil:k.json").await.unwrap(), None);
    assert_eq!(p.store.get("evil:live.json").await.unwrap(), None, "a live file outside is not served");
    assert_eq!(p.store.get("evil:sub:deep.json").await.unwrap(), None);
    let pooled = p.store.clone().blocking_reads(true);
    assert_eq!(pooled.get("evil:live.json").await.unwrap(), None);
    p.assert_outside_intact("get");

    assert_eq!(p.store.keys("").await.unwrap(), ["g:mine.json"], "the link is skipped");
    assert_eq!(p.store.keys("evil:").await.unwrap(), Vec::<String>::new());
    assert_eq!(p.store.keys("ev").await.unwrap(), Vec::<String>::new());
    p.assert_outside_intact("keys");

    assert!(!p.store.delete("evil:live.json").await.unwrap());
    assert!(!p.store.delete("evil:k.json").await.unwrap());
    p.assert_outside_intact("delete");

    assert_eq!(p.store.delete_prefix("evil:").await.unwrap(), 0);
    assert_eq!(p.store.delete_prefix("evil:sub:").await.unwrap(), 0);
    assert_eq!(p.store.delete_prefix("evil").await.unwrap(), 0);
    p.assert_outside_intact("delete_prefix of the link's segment");
    assert_eq!(p.store.delete_prefix("").await.unwrap(), 1, "only the store's own entry");
    p.assert_outside_intact("delete_prefix(\"\")");
    assert_eq!(p.store.get("g:mine.json").await.unwrap(), None);

    // A store opened on the directory later (its leftover cleanup walks everything).
    drop(FsStore::new(p.dir.path()).unwrap());
    p.assert_outside_intact("a new store's cleanup");
}

#[tokio::test]
async fn fs_a_symlinked_entry_is_a_miss_and_deleting_it_removes_only_the_link() {
    let p = Planted::new();
    let g = p.dir.path().join("g");
    fs::create_dir(&g).unwrap();
    let target = p.outside.path().join("live.json");
    let link = g.join("link.json");

    symlink(&target, &link).unwrap();
    assert_eq!(p.store.get("g:link.json").await.unwrap(), None, "the target's bytes are not served");
    assert!(link.symlink_metadata().is_err(), "get unlinks the link");
    p.assert_outside_intact("get of a linked entry");

    symlink(&target, &link).unwrap();
    assert_eq!(p.store.keys("").await.unwrap(), Vec::<String>::new(), "a link is not listed");
    assert!(!p.store.delete("g:link.json").await.unwrap(), "a link is not a live entry");
    assert!(link.symlink_metadata().is_err(), "delete removes the link");
    p.assert_outside_intact("delete of a linked entry");

    symlink(&target, &link).unwrap();
    assert_eq!(p.store.delete_prefix("g:").await.unwrap(), 0);
    p.assert_outside_intact("delete_prefix over a linked entry");

    // A write replaces the link with a file of its own.
    p.store.set("g:link.json", b"mine".to_vec(), None).await.unwrap();
    assert!(link.symlink_metadata().unwrap().is_file(), "the link was replaced, not written through");
    assert_eq!(p.store.get("g:link.json").await.unwrap().as_deref(), Some(&b"mine"[..]));
    p.assert_outside_intact("set over a linked entry");
}

// ---------------------------------------------------------------------------------------
// Directories other users may write to
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn fs_a_directory_others_may_write_to_is_refused_unless_shared_on_purpose() {
    let parent = tempfile::tempdir().unwrap();
    for mode in [0o777, 0o770, 0o1777] {
        let dir = parent.path().join(format!("shared{mode:o}"));
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();

        let err = FsStore::new(&dir).expect_err("a shared directory is refused");
        let Error::Store(detail) = &err else { panic!("not a store error: {err}") };
        let msg = detail.to_string();
        assert!(msg.contains("group or others may write"), "{msg}");
        assert!(msg.contains(&format!("{mode:04o}")), "the mode is named: {msg}");
        assert!(msg.contains("allow_shared_directory(true)"), "the opt-in is named: {msg}");
        assert!(FsStore::open(dir.clone()).await.is_err(), "open refuses it too");

        let store = FsStore::builder(&dir).allow_shared_directory(true).build().expect("opted in");
        store.set("g:k.json", b"1".to_vec(), None).await.unwrap();
        assert_eq!(store.get("g:k.json").await.unwrap().as_deref(), Some(&b"1"[..]));
        conformance::check(&store).await;
    }

    // A directory only its owner may write to is fine, whoever may read it.
    let readable = parent.path().join("readable");
    fs::create_dir(&readable).unwrap();
    fs::set_permissions(&readable, fs::Permissions::from_mode(0o755)).unwrap();
    FsStore::new(&readable).expect("0755 is accepted");
}

#[tokio::test]
async fn fs_the_store_creates_its_directory_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("app/cache");
    let store = FsStore::new(&dir).unwrap();
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    store.set("g:k.json", b"1".to_vec(), None).await.unwrap();

    // Removed while the store runs: the next write creates it again, private.
    fs::remove_dir_all(&dir).unwrap();
    store.set("g:k.json", b"2".to_vec(), None).await.unwrap();
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(store.get("g:k.json").await.unwrap().as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn fs_a_directory_of_another_user_is_refused_unless_shared_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    // Only root can give a directory away; others have nothing to test here.
    if fs::metadata(dir.path()).unwrap().uid() != 0 {
        return;
    }
    const NOBODY: u32 = 65534;
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), None).unwrap();
    let err = FsStore::new(dir.path()).expect_err("another user's directory is refused");
    let msg = err.to_string() + &format!("{err:?}");
    assert!(msg.contains("belongs to user 65534"), "{msg}");
    assert!(msg.contains("allow_shared_directory(true)"), "{msg}");
    let store = FsStore::builder(dir.path()).allow_shared_directory(true).build().expect("opted in");
    store.set("g:k.json", b"1".to_vec(), None).await.unwrap();
    assert_eq!(store.get("g:k.json").await.unwrap().as_deref(), Some(&b"1"[..]));
}

// ---------------------------------------------------------------------------------------
// The contract still holds
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn fs_store_with_a_size_bound_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::check(&FsStore::builder(dir.path()).max_entry_size(1 << 20).build().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    conformance::check(&FsStore::builder(dir.path()).blocking_reads(true).build().unwrap()).await;
}
