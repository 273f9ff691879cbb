//! The L2 stores against the shared conformance suite, and what each one promises
//! on its own: the fs store's layout, atomic writes, temp files and hostile keys; the Redis
//! store's keys, TTLs, prefix deletes and failure behaviour against a real `redis-server`;
//! the bus between two instances.
#![cfg(all(feature = "fs", feature = "redis"))]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_runtime::RedisStore;
use cache_runtime::bus::{Bus, BusEvent, BusMessage, BusOp, BusOptions};
use cache_runtime::stores::fs::{FsStore, TEMP_PREFIX};
use cache_runtime::stores::{RedisStoreBuilder, Store, conformance};
use cache_runtime::{MemoryStore, escape_key};
use common::fs::files;
use common::redis::RedisServer;

/// A raw redis-rs connection, to look at what the store wrote.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn raw_keys(conn: &mut redis::aio::MultiplexedConnection) -> BTreeSet<String> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    keys.into_iter().collect()
}

/// A store on `url` that gives up fast: 300 ms to connect, 200 ms for a reply.
fn impatient(url: &str) -> RedisStoreBuilder {
    RedisStore::builder(url).connect_timeout(Duration::from_millis(300)).response_timeout(Duration::from_millis(200))
}

/// Retries `f` until it is `Ok` or `within` has passed; the last result.
async fn eventually<T, E>(within: Duration, mut f: impl AsyncFnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = Instant::now() + within;
    loop {
        let result = f().await;
        if result.is_ok() || Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The conformance suite, against every store of the crate
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn memory_store_conforms() {
    conformance::check(&MemoryStore::new()).await;
}

#[tokio::test]
async fn fs_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::check(&FsStore::new(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn fs_store_with_blocking_reads_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::check(&FsStore::new(dir.path()).unwrap().blocking_reads(true)).await;
}

#[tokio::test]
async fn redis_store_conforms() {
    let server = RedisServer::start();
    conformance::check(&RedisStore::connect(&server.url()).await.unwrap()).await;
}

#[tokio::test]
async fn the_suite_runs_through_a_trait_object() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    conformance::check(&*store).await;
}

// ---------------------------------------------------------------------------------------
// fs
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn fs_a_key_is_a_file_under_the_dir_with_colons_as_slashes() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let entry = br#"{"value":"tok","mtime":1,"expires":2,"integrity":"ab","tags":[]}"#;
    store.set("functions:get_token:default.json", entry.to_vec(), Some(Duration::from_secs(60))).await.unwrap();
    store.set("github:gh_stars:rust-lang:rust.json", b"1".to_vec(), None).await.unwrap();
    assert_eq!(
        files(dir.path()),
        BTreeSet::from([
            "functions/get_token/default.json".to_owned(),
            "github/gh_stars/rust-lang/rust.json".to_owned()
        ])
    );
    assert_eq!(std::fs::read(dir.path().join("functions/get_token/default.json")).unwrap(), entry);
    let mut keys = store.keys("").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["functions:get_token:default.json", "github:gh_stars:rust-lang:rust.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_writes_are_atomic_readers_never_see_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStore::new(dir.path()).unwrap());
    let key = "functions:big:default.json";
    store.set(key, vec![b'a'; 256 * 1024], None).await.unwrap();

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..60u8 {
                // Alternate sizes so that a torn read would show as a short or mixed value.
                let len = if i % 2 == 0 { 256 * 1024 } else { 64 * 1024 };
                store.set(key, vec![b'a' + i % 26; len], None).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 20 {
        let value = store.get(key).await.unwrap().expect("a value is always there");
        let first = value[0];
        assert!(value.len() == 256 * 1024 || value.len() == 64 * 1024, "partial file of {} bytes", value.len());
        assert!(value.iter().all(|&b| b == first), "a file mixing two writes");
        reads += 1;
    }
    writer.await.unwrap();
    assert!(
        files(dir.path()).iter().all(|f| !f.contains(TEMP_PREFIX)),
        "no temp file is left after successful writes: {:?}",
        files(dir.path())
    );
}

#[tokio::test]
async fn fs_leftover_temp_files_are_ignored_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("functions/f");
    std::fs::create_dir_all(&nested).unwrap();
    // A crash long ago, and a write that may still be in progress in another process.
    let old = nested.join(format!("{TEMP_PREFIX}0.crash1"));
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let fresh = nested.join(format!("{TEMP_PREFIX}{now_ms}.inflight"));
    std::fs::write(&old, b"partial").unwrap();
    std::fs::write(&fresh, b"partial").unwrap();
    std::fs::write(dir.path().join(format!("{TEMP_PREFIX}garbage")), b"partial").unwrap();

    let store = FsStore::new(dir.path()).unwrap();
    assert!(!old.exists(), "new() removes an old leftover");
    assert!(!dir.path().join(format!("{TEMP_PREFIX}garbage")).exists(), "a temp name without a time counts as old");
    assert!(fresh.exists(), "new() leaves a temp file that may be a write in progress");

    store.set("functions:f:a.json", b"1".to_vec(), None).await.unwrap();
    assert_eq!(store.keys("").await.unwrap(), ["functions:f:a.json"], "keys ignores temp files");
    assert!(
        store.get(&format!("functions:f:{TEMP_PREFIX}{now_ms}.inflight")).await.is_err(),
        "temp names are not keys"
    );

    // Another crash leftover appears; delete_prefix cleans it with the entries.
    std::fs::write(&old, b"partial").unwrap();
    assert_eq!(store.delete_prefix("functions:").await.unwrap(), 1);
    assert!(!old.exists(), "delete_prefix removes an old leftover");
}

#[tokio::test]
async fn fs_hostile_keys_never_leave_the_dir() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("cache");
    let store = FsStore::new(&dir).unwrap();
    let passwd_before = std::fs::read("/etc/passwd").ok();

    // Raw hostile keys are refused with an error, never a panic, and write nothing.
    let ten_kb = "x".repeat(10 * 1024);
    let hostile =
        ["../../etc/passwd", "../escape.json", "/etc/passwd", "a\0b", "a\\..\\b", "a::b", "..", ten_kb.as_str()];
    for key in hostile {
        let err = store.set(key, b"pwned".to_vec(), None).await.expect_err(key);
        assert!(err.to_string().contains("refused key"), "{err}");
        assert!(store.get(key).await.is_err(), "{key:?}");
    }
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1, "nothing written beside the dir");
    assert!(files(&dir).is_empty(), "nothing written in the dir");

    // The same strings as `get_key` results become safe keys that the store takes.
    let very_long = "ab/".repeat(3000);
    for raw in ["../../etc/passwd", "/etc/passwd", "a\0b", "..\\..\\win", ten_kb.as_str(), very_long.as_str()] {
        let key = format!("functions:f:{}.json", escape_key(raw));
        match store.set(&key, b"v".to_vec(), None).await {
            Ok(()) => {
                assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
                let path = store.path_of(&key).unwrap();
                assert!(path.starts_with(store.dir()), "{path:?}");
            }
            // Thousands of parts make a path longer than file systems take: a clear error.
            Err(e) => assert!(e.to_string().contains("longer than 4095 bytes"), "{raw:.20}: {e}"),
        }
    }
    assert!(store.keys("").await.unwrap().len() >= 5);
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1, "still nothing beside the dir");
    assert_eq!(std::fs::read("/etc/passwd").ok(), passwd_before);
}

#[tokio::test]
async fn fs_what_is_not_a_readable_file_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path()).unwrap();
    let g = dir.path().join("g");
    std::fs::create_dir_all(&g).unwrap();

    // A symlink to a file outside the dir: never followed, removed.
    std::os::unix::fs::symlink("/etc/passwd", g.join("link.json")).unwrap();
    assert_eq!(store.get("g:link.json").await.unwrap(), None);
    assert!(g.join("link.json").symlink_metadata().is_err(), "the symlink is removed");
    assert!(Path::new("/etc/passwd").exists());

    // A FIFO: a miss at once (a read would block forever), removed.
    let fifo = g.join("fifo.json");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils)");
    assert!(status.success());
    let got = tokio::time::timeout(Duration::from_secs(5), store.get("g:fifo.json")).await.expect("no hang");
    assert_eq!(got.unwrap(), None);
    assert!(fifo.symlink_metadata().is_err(), "the FIFO is removed");

    // A directory where a file should be: a miss, left alone; a write there is an error.
    std::fs::create_dir_all(g.join("dir.json/inner")).unwrap();
    assert_eq!(store.get("g:dir.json").await.unwrap(), None);
    assert!(g.join("dir.json/inner").is_dir());
    assert!(store.set("g:dir.json", b"1".to_vec(), None).await.is_err());

    // A file without read permission (when we are not root, who reads anything): removed.
    let locked = g.join("locked.json");
    std::fs::write(&locked, b"{}").unwrap();
    filetime_far_future(&locked);
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let readable_anyway = std::fs::File::open(&locked).is_ok();
    let got = store.get("g:locked.json").await.unwrap();
    if readable_anyway {
        assert_eq!(got.as_deref(), Some(&b"{}"[..]), "root reads it");
    } else {
        assert_eq!(got, None);
        assert!(!locked.exists(), "an unreadable file is removed");
    }

    // A file written by someone else with a past mtime: expired, removed.
    std::fs::write(g.join("stale.json"), b"{}").unwrap();
    assert_eq!(store.get("g:stale.json").await.unwrap(), None);
    assert!(!g.join("stale.json").exists());
}

#[tokio::test]
async fn fs_small_files_are_read_inline_large_ones_on_the_pool_and_both_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let inline = FsStore::new(dir.path()).unwrap();
    let pooled = inline.clone().blocking_reads(true);
    let limit = usize::try_from(larder::stores::fs::INLINE_READ_MAX).unwrap();
    for (key, len) in
        [("g:small.json", 1024), ("g:at_limit.json", limit), ("g:large.json", limit + 1), ("g:huge.json", 4 << 20)]
    {
        let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        inline.set(key, value.clone(), Some(Duration::from_secs(60))).await.unwrap();
        assert_eq!(inline.get(key).await.unwrap().as_deref(), Some(&value[..]), "{key} read inline");
        assert_eq!(pooled.get(key).await.unwrap().as_deref(), Some(&value[..]), "{key} read on the pool");
    }
    // An expired large file is a miss and is removed, as a small one is.
    let stale = dir.path().join("g/large.json");
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(inline.get("g:large.json").await.unwrap(), None);
    assert!(!stale.exists());
}

/// Gives a hand-written file a far-future mtime: alive for the store.
fn filetime_far_future(path: &Path) {
    let far = SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(far).unwrap();
}

// ---------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn redis_keys_are_exactly_prefix_and_key_with_px_ttls() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let custom = RedisStore::builder(server.url()).prefix("app2:").connect().await.unwrap();
    let mut raw = raw(&server).await;

    store.set("functions:get_token:default.json", b"{}".to_vec(), Some(Duration::from_secs(90))).await.unwrap();
    store.set("github:gh_stars:rust-lang:rust.json", b"{}".to_vec(), None).await.unwrap();
    custom.set("functions:get_token:default.json", b"{}".to_vec(), None).await.unwrap();

    assert_eq!(
        raw_keys(&mut raw).await,
        BTreeSet::from([
            "larder:functions:get_token:default.json".to_owned(),
            "larder:github:gh_stars:rust-lang:rust.json".to_owned(),
            "app2:functions:get_token:default.json".to_owned(),
        ])
    );
    let pttl: i64 =
        redis::cmd("PTTL").arg("larder:functions:get_token:default.json").query_async(&mut raw).await.unwrap();
    assert!((85_000..=90_000).contains(&pttl), "PTTL {pttl}");
    let pttl: i64 =
        redis::cmd("PTTL").arg("larder:github:gh_stars:rust-lang:rust.json").query_async(&mut raw).await.unwrap();
    assert_eq!(pttl, -1, "no TTL: no PX");
    let bytes: Vec<u8> =
        redis::cmd("GET").arg("larder:functions:get_token:default.json").query_async(&mut raw).await.unwrap();
    assert_eq!(bytes, b"{}", "the value is stored as is");

    // Each store sees only its own prefix.
    assert_eq!(custom.keys("").await.unwrap(), ["functions:get_token:default.json"]);
    assert_eq!(store.keys("").await.unwrap().len(), 2);
    assert_eq!(store.prefix(), "larder:");

    // A sub-millisecond TTL is still a TTL (PX 0 would be an error in Redis).
    store.set("tiny.json", b"1".to_vec(), Some(Duration::from_micros(10))).await.unwrap();
}

#[tokio::test]
async fn redis_prefix_delete_scans_and_unlinks_in_batches_with_glob_characters_escaped() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut raw = raw(&server).await;

    // More keys than one SCAN page, under a prefix full of glob metacharacters.
    let weird = "we*ird?[x]\\:";
    let mut pipe = redis::pipe();
    for i in 0..1_200 {
        pipe.cmd("SET").arg(format!("larder:{weird}k{i}.json")).arg("v").ignore();
    }
    // Keys that the unescaped pattern `larder:we*ird?[x]\:*` would match.
    for key in ["larder:weXXirdZx:k.json", "larder:we-ird!x:k.json"] {
        pipe.cmd("SET").arg(key).arg("v").ignore();
    }
    pipe.cmd("SET").arg("other:we*ird?[x]\\:k.json").arg("v").ignore();
    pipe.query_async::<()>(&mut raw).await.unwrap();

    assert_eq!(store.keys(weird).await.unwrap().len(), 1_200);
    assert_eq!(store.delete_prefix(weird).await.unwrap(), 1_200);
    assert_eq!(
        raw_keys(&mut raw).await,
        BTreeSet::from([
            "larder:weXXirdZx:k.json".to_owned(),
            "larder:we-ird!x:k.json".to_owned(),
            "other:we*ird?[x]\\:k.json".to_owned()
        ]),
        "only the prefix's keys are gone, and only under our prefix"
    );
    // `""` clears everything of this store, and nothing of others.
    assert_eq!(store.delete_prefix("").await.unwrap(), 2);
    assert_eq!(raw_keys(&mut raw).await, BTreeSet::from(["other:we*ird?[x]\\:k.json".to_owned()]));
}

#[tokio::test]
async fn redis_a_foreign_value_under_our_key_is_a_miss() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut raw = raw(&server).await;
    redis::cmd("HSET").arg("larder:g:n:h.json").arg("f").arg("v").query_async::<()>(&mut raw).await.unwrap();
    assert_eq!(store.get("g:n:h.json").await.unwrap(), None);
    assert_eq!(store.get_many(&["g:n:h.json".to_owned()]).await.unwrap(), vec![None]);
    // And a write replaces it.
    store.set("g:n:h.json", b"1".to_vec(), None).await.unwrap();
    assert_eq!(store.get("g:n:h.json").await.unwrap().as_deref(), Some(&b"1"[..]));
}

#[tokio::test]
async fn redis_calls_fail_fast_while_the_server_is_down_and_work_again_after_it_restarts() {
    let mut server = RedisServer::start();
    let store = impatient(&server.url()).connect().await.unwrap();
    store.set("k.json", b"1".to_vec(), None).await.unwrap();

    server.stop();
    for round in 0..5 {
        let started = Instant::now();
        let results = [
            store.get("k.json").await.map(drop),
            store.set("k.json", b"2".to_vec(), Some(Duration::from_secs(5))).await,
            store.delete("k.json").await.map(drop),
            store.delete_prefix("").await.map(drop),
            store.keys("").await.map(drop),
            store.get_many(&["k.json".to_owned()]).await.map(drop),
        ];
        let took = started.elapsed();
        for (i, result) in results.iter().enumerate() {
            assert!(result.is_err(), "round {round}, call {i}: a stopped server is an error");
        }
        // Six calls, each bounded by 500 ms (connect + response timeout); generous margin.
        assert!(took < Duration::from_secs(6), "round {round}: six calls took {took:?}");
    }
    let started = Instant::now();
    let err = store.get("k.json").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "one call took {:?}", started.elapsed());
    assert!(err.to_string().contains("redis store"), "{err}");

    server.restart();
    eventually(Duration::from_secs(10), async || store.set("k.json", b"3".to_vec(), None).await)
        .await
        .expect("writes work again after the restart, without a new store");
    assert_eq!(store.get("k.json").await.unwrap().as_deref(), Some(&b"3"[..]));
}

#[tokio::test]
async fn redis_calls_to_a_hung_server_time_out_and_work_again_when_it_answers() {
    let server = RedisServer::start();
    let store = impatient(&server.url()).connect().await.unwrap();
    store.set("k.json", b"1".to_vec(), None).await.unwrap();

    server.freeze();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.get("k.json").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "a hung server held a call for {:?}", started.elapsed());
        assert!(err.to_string().contains("redis store"), "{err}");
    }
    server.thaw();
    let value = eventually(Duration::from_secs(10), async || match store.get("k.json").await {
        Ok(Some(value)) => Ok(value),
        other => Err(other),
    })
    .await
    .expect("reads work again once the server answers");
    assert_eq!(value, b"1");
}

#[tokio::test]
async fn redis_connect_to_a_dead_server_fails_fast_and_a_lazy_store_recovers() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();

    let started = Instant::now();
    let err = impatient(&url).connect().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(err.to_string().contains("cannot connect"), "{err}");

    // An application may start while Redis is down.
    let lazy = RedisStore::builder(&url).connect_timeout(Duration::from_millis(300)).connect_lazy().unwrap();
    assert!(lazy.get("k.json").await.is_err());
    server.restart();
    eventually(Duration::from_secs(10), async || lazy.set("k.json", b"1".to_vec(), None).await)
        .await
        .expect("a lazy store connects once the server is up");
}

// ---------------------------------------------------------------------------------------
// Bus
// ---------------------------------------------------------------------------------------

/// The next message event within a bound, skipping nothing.
async fn next_event(rx: &mut tokio::sync::mpsc::Receiver<BusEvent>) -> BusEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an event within 10 s").expect("the bus runs")
}

fn fast_options() -> BusOptions {
    BusOptions::default()
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .max_backoff(Duration::from_millis(200))
        .ping_interval(Duration::from_millis(200))
}

#[tokio::test]
async fn bus_instances_see_each_others_messages_but_not_their_own() {
    let server = RedisServer::start();
    let (a, mut a_rx) = Bus::connect(&server.url(), "larder:bus", "instance-a").await.unwrap();
    let (b, mut b_rx) = Bus::connect(&server.url(), "larder:bus", "instance-b").await.unwrap();

    // A raw subscriber shows what is on the wire.
    let client = redis::Client::open(server.url()).unwrap();
    let mut wire = client.get_async_pubsub().await.unwrap();
    wire.subscribe("larder:bus").await.unwrap();

    let receivers = a
        .publish(BusMessage::new("cache", BusOp::Delete { keys: vec!["functions:f:default.json".into()] }))
        .await
        .unwrap();
    assert_eq!(receivers, 3, "a, b and the raw subscriber");
    match next_event(&mut b_rx).await {
        BusEvent::Message(m) => {
            assert_eq!(m.origin, "instance-a");
            assert_eq!(m.mount, "cache");
            assert_eq!(m.op, BusOp::Delete { keys: vec!["functions:f:default.json".into()] });
        }
        other => panic!("{other:?}"),
    }
    let payload: Vec<u8> = {
        use futures::StreamExt;
        let msg = tokio::time::timeout(Duration::from_secs(5), wire.on_message().next()).await.unwrap().unwrap();
        msg.get_payload_bytes().to_vec()
    };
    let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let mut fields: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["at", "keys", "mount", "op", "origin"], "keys, never values: {json}");

    for op in [
        BusOp::Set { keys: vec!["k".into()] },
        BusOp::Expire { keys: vec!["k".into()] },
        BusOp::Clear { prefix: "functions:".into() },
        BusOp::InvalidateTag { tag: "user:1".into() },
        BusOp::ExpireTag { tag: "user:1".into() },
    ] {
        b.publish(BusMessage::new("cache", op.clone())).await.unwrap();
        match next_event(&mut a_rx).await {
            BusEvent::Message(m) => assert_eq!((m.origin.as_str(), m.op), ("instance-b", op)),
            other => panic!("{other:?}"),
        }
    }
    // Neither saw its own messages: after a marker from the other side, nothing else waits.
    a.publish(BusMessage::new("cache", BusOp::Clear { prefix: "marker".into() })).await.unwrap();
    assert!(
        matches!(next_event(&mut b_rx).await, BusEvent::Message(m) if m.op == BusOp::Clear { prefix: "marker".into() })
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a_rx.try_recv().is_err(), "a got none of its own messages");
    assert!(b_rx.try_recv().is_err(), "b got none of its own messages");
}

#[tokio::test]
async fn bus_reports_reconnected_after_a_server_restart_and_goes_on() {
    let mut server = RedisServer::start();
    let (a, mut a_rx) = Bus::connect_with(&server.url(), "ch", "a", fast_options()).await.unwrap();
    let (b, mut b_rx) = Bus::connect_with(&server.url(), "ch", "b", fast_options()).await.unwrap();

    server.stop();
    let started = Instant::now();
    assert!(a.publish(BusMessage::new("cache", BusOp::Clear { prefix: String::new() })).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3), "publish failed fast: {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();

    assert_eq!(next_event(&mut a_rx).await, BusEvent::Reconnected);
    assert_eq!(next_event(&mut b_rx).await, BusEvent::Reconnected);
    let sent = eventually(Duration::from_secs(10), async || {
        a.publish(BusMessage::new("cache", BusOp::InvalidateTag { tag: "t".into() })).await
    })
    .await
    .unwrap();
    assert_eq!(sent, 2, "both subscribed again");
    match next_event(&mut b_rx).await {
        BusEvent::Message(m) => assert_eq!(m.op, BusOp::InvalidateTag { tag: "t".into() }),
        other => panic!("{other:?}"),
    }
    drop(b);
}

#[tokio::test]
async fn bus_notices_a_hung_server_and_reports_reconnected_when_it_answers() {
    let server = RedisServer::start();
    let (a, mut a_rx) = Bus::connect_with(&server.url(), "ch", "a", fast_options()).await.unwrap();
    server.freeze();
    // Longer than a health ping plus its timeout: the subscriber has given the connection up.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.thaw();
    assert_eq!(next_event(&mut a_rx).await, BusEvent::Reconnected);
    let (b, _b_rx) = Bus::connect_with(&server.url(), "ch", "b", fast_options()).await.unwrap();
    b.publish(BusMessage::new("cache", BusOp::Delete { keys: vec!["k".into()] })).await.unwrap();
    assert!(matches!(next_event(&mut a_rx).await, BusEvent::Message(m) if m.origin == "b"));
    drop(a);
}

#[tokio::test]
async fn bus_stops_listening_when_dropped() {
    let server = RedisServer::start();
    let (bus, _rx) = Bus::connect_with(&server.url(), "ch", "a", fast_options()).await.unwrap();
    let mut raw = raw(&server).await;
    let subscribers = async |raw: &mut redis::aio::MultiplexedConnection| -> i64 {
        let (_, n): (String, i64) = redis::cmd("PUBSUB").arg("NUMSUB").arg("ch").query_async(raw).await.unwrap();
        n
    };
    assert_eq!(subscribers(&mut raw).await, 1);
    drop(bus);
    let deadline = Instant::now() + Duration::from_secs(5);
    while subscribers(&mut raw).await != 0 {
        assert!(Instant::now() < deadline, "the subscription outlived the bus");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bus_ignores_foreign_payloads_on_its_channel() {
    let server = RedisServer::start();
    let (_a, mut a_rx) = Bus::connect(&server.url(), "ch", "a").await.unwrap();
    let (b, _b_rx) = Bus::connect(&server.url(), "ch", "b").await.unwrap();
    let mut raw = raw(&server).await;
    redis::cmd("PUBLISH").arg("ch").arg("not json").query_async::<()>(&mut raw).await.unwrap();
    redis::cmd("PUBLISH").arg("ch").arg(r#"{"origin":"x","op":"explode"}"#).query_async::<()>(&mut raw).await.unwrap();
    b.publish(BusMessage::new("cache", BusOp::Delete { keys: vec!["k".into()] })).await.unwrap();
    match next_event(&mut a_rx).await {
        BusEvent::Message(m) => assert_eq!(m.origin, "b"),
        other => panic!("{other:?}"),
    }
}
