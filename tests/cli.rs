//! The `larder` binary (feature `cli`), run as a process against a temp directory (an fs
//! store) and a real `redis-server`, with running instances (runtimes in this process) that
//! must drop their memory copies when the CLI clears, deletes or invalidates.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use common::fs::files;
use common::redis::RedisServer;
use common::{Runs, dropped_from_memory, wait_for_bus, within};
use larder::FsStore;
use larder::RedisStore;
use larder::{Mount, Options, Runtime, cached};
use serde_json::Value;

/// What one run of the binary gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "larder failed: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

/// Runs `larder ARGS…` (on the blocking pool, so that this process's runtimes go on
/// meanwhile) and waits at most 30 s for it.
async fn larder<S: AsRef<str>>(args: &[S]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.as_ref().to_owned()).collect();
    let run = tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(&args)
            .env_remove("LARDER_REDIS_URL")
            .output()
            .expect("run the larder binary");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    });
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("larder ended within 30 s").expect("no panic")
}

/// `[flag, value, args…]`, owned.
fn with(flag: &str, value: &str, args: &[&str]) -> Vec<String> {
    [flag, value].iter().chain(args).map(|s| s.to_string()).collect()
}

/// A runtime whose mount `cache` is memory in front of `dir`.
fn fs_instance(dir: &Path) -> Runtime {
    let store = FsStore::new(dir).expect("an fs store");
    Runtime::builder().mount("cache", Mount::memory(1_000).l2(store)).build()
}

/// A running instance: memory in front of the shared Redis, and the bus.
async fn redis_instance(server: &RedisServer, prefix: &str) -> Runtime {
    redis_instance_on(server, prefix, "cache").await
}

/// [`redis_instance`], with its mount called `mount`.
async fn redis_instance_on(server: &RedisServer, prefix: &str, mount: &str) -> Runtime {
    let store = RedisStore::builder(server.url())
        .prefix(prefix)
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .connect_lazy()
        .expect("a valid URL");
    let rt = Runtime::builder().mount(mount, Mount::memory(1_000).l2(store)).bus(server.url()).build();
    wait_for_bus(&rt).await;
    rt
}

fn hour() -> Options {
    Options::new().max_age(Duration::from_secs(3600))
}

// --- functions cached by the instances; each test uses its own -------------------------

static FS_USER_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1h", group = "reports", get_key = |id: &u64| *id)]
async fn fs_report(id: u64) -> String {
    format!("report {id}")
}

/// A tagged entry (`users:{id}.json`, tag `users`), through the programmatic API.
async fn fs_user(rt: &Runtime, id: u64) -> String {
    let opts = hour().tag("users");
    rt.cache("cache")
        .namespace("users")
        .get_or_set(&id.to_string(), &opts, move || async move {
            let n = FS_USER_RUNS.hit();
            Ok::<_, larder::Error>(format!("user {id} run {n}"))
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_get_stats_delete_and_clear_on_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap().to_owned();
    let d = |args: &[&'static str]| with("--dir", &dir, args);
    let rt = fs_instance(tmp.path());
    rt.scope(async {
        fs_report(1).await;
        fs_report(2).await;
    })
    .await;
    fs_user(&rt, 7).await;
    rt.cache("cache").namespace("settings").set("theme", "dark".to_owned(), &hour()).await;

    // keys: sorted, every key, or those under a prefix
    let keys = larder(&d(&["keys"])).await.ok();
    assert_eq!(
        keys.stdout.lines().collect::<Vec<_>>(),
        ["reports:fs_report:1.json", "reports:fs_report:2.json", "settings:theme.json", "users:7.json"]
    );
    let some = larder(&d(&["keys", "reports:"])).await.ok();
    assert_eq!(some.stdout.lines().count(), 2, "{some:#?}");
    let json = larder(&d(&["keys", "--json", "users:"])).await.ok();
    assert_eq!(json.json(), serde_json::json!(["users:7.json"]));

    // get: the entry, pretty, `value` first
    let got = larder(&d(&["get", "reports:fs_report:1.json"])).await.ok();
    assert!(got.stdout.starts_with("{\n  \"value\": \"report 1\""), "{got:#?}");
    let entry = got.json();
    assert!(
        entry["mtime"].as_u64().unwrap() > 0 && entry["expires"].as_u64().unwrap() > entry["mtime"].as_u64().unwrap()
    );
    let missing = larder(&d(&["get", "reports:fs_report:3.json"])).await;
    assert_eq!(missing.code, 1, "{missing:#?}");
    assert!(missing.stderr.contains("no entry under \"reports:fs_report:3.json\""), "{missing:#?}");
    let no_suffix = larder(&d(&["get", "reports:fs_report:1"])).await;
    assert_eq!(no_suffix.code, 1);
    assert!(no_suffix.stderr.contains("did you mean \"reports:fs_report:1.json\""), "{no_suffix:#?}");

    // stats: counts per group, and the bytes of the files
    let stats = larder(&d(&["stats", "--json"])).await.ok().json();
    let bytes: u64 = files(tmp.path()).iter().map(|f| std::fs::metadata(tmp.path().join(f)).unwrap().len()).sum();
    assert_eq!(stats["entries"], 4, "{stats}");
    assert_eq!(stats["fresh"], 4, "{stats}");
    assert_eq!(stats["bytes"], bytes, "{stats}");
    assert_eq!(stats["groups"]["reports"]["entries"], 2, "{stats}");
    assert_eq!(stats["groups"]["users"]["entries"], 1, "{stats}");
    let text = larder(&d(&["stats"])).await.ok();
    assert!(text.stdout.contains("entries:  4 (4 fresh, 0 stale, 0 unreadable)"), "{text:#?}");
    assert!(text.stdout.contains("GROUP"), "{text:#?}");

    // delete: present keys go, missing ones are reported, not failures
    let deleted = larder(&d(&["delete", "reports:fs_report:2.json", "reports:fs_report:9.json"])).await.ok();
    assert!(deleted.stdout.contains("1 of 2 key(s) deleted"), "{deleted:#?}");
    assert!(deleted.stderr.contains("not found: reports:fs_report:9.json"), "{deleted:#?}");
    assert!(deleted.stderr.contains("no bus"), "without --bus the CLI says instances were not told: {deleted:#?}");
    assert!(!tmp.path().join("reports/fs_report/2.json").exists());

    // clear --tag: the tag's timestamp is in the store; a new instance sees a miss
    let cleared = larder(&d(&["clear", "--tag", "users"])).await.ok();
    assert!(cleared.stdout.contains("invalidated tag \"users\""), "{cleared:#?}");
    // The tag's invalidation stamp (µs, an order stamp) is in the store, after the entry's birth.
    let stamp: u64 = std::fs::read_to_string(tmp.path().join("_larder/tags/invalidated/users.json"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(stamp >= entry["born"].as_u64().unwrap(), "{stamp} {entry}");
    assert!(
        larder(&d(&["keys"])).await.ok().stdout.lines().all(|k| !k.starts_with("_larder:")),
        "internal keys are hidden"
    );
    let all = larder(&d(&["keys", "--all"])).await.ok();
    assert!(all.stdout.lines().any(|k| k == "_larder:tags:invalidated:users.json"), "{all:#?}");
    let runs = FS_USER_RUNS.get();
    let fresh_instance = fs_instance(tmp.path());
    let again = fs_user(&fresh_instance, 7).await;
    assert_eq!(FS_USER_RUNS.get(), runs + 1, "the tagged entry is a miss: {again}");
    assert_eq!(fresh_instance.scope(fs_report(1)).await, "report 1");

    // clear --group: only that group
    larder(&d(&["clear", "--group", "reports"])).await.ok();
    assert!(!tmp.path().join("reports/fs_report/1.json").exists());
    assert!(tmp.path().join("settings/theme.json").exists());

    // clear: everything
    let everything = larder(&d(&["clear"])).await.ok();
    assert!(everything.stdout.contains("cleared everything"), "{everything:#?}");
    // Only the clear's stamp is left (a late write from a running instance is refused).
    let left = files(tmp.path());
    assert!(left.len() == 1 && left.iter().all(|f| f.starts_with("_larder/gone/")), "{left:?}");
    assert_eq!(larder(&d(&["stats", "--json"])).await.ok().json()["entries"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_and_failures_are_explained_with_a_non_zero_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();

    let nothing = larder(&["keys"]).await;
    assert_eq!(nothing.code, 2, "{nothing:#?}");
    assert!(nothing.stderr.contains("--redis URL or --dir PATH"), "{nothing:#?}");

    let both = larder(&["--dir", dir, "--redis", "redis://127.0.0.1:1/", "keys"]).await;
    assert_eq!(both.code, 2, "{both:#?}");

    let no_dir = larder(&["--dir", &format!("{dir}/nope"), "keys"]).await;
    assert_eq!(no_dir.code, 1, "{no_dir:#?}");
    assert!(no_dir.stderr.contains("no such directory"), "{no_dir:#?}");
    assert!(!tmp.path().join("nope").exists(), "the CLI never creates a cache directory");

    let prefix = larder(&["--dir", dir, "--prefix", "x:", "keys"]).await;
    assert_eq!(prefix.code, 2, "{prefix:#?}");

    let group = larder(&["--dir", dir, "clear", "--group", "../etc"]).await;
    assert_eq!(group.code, 2, "{group:#?}");
    assert!(group.stderr.contains("invalid group"), "{group:#?}");

    let unknown = larder(&["--dir", dir, "purge"]).await;
    assert_eq!(unknown.code, 2, "{unknown:#?}");

    // A dead Redis: a clear message, within the timeout.
    let started = Instant::now();
    let dead = larder(&["--redis", "redis://127.0.0.1:1/", "--timeout", "0.5", "stats"]).await;
    assert_eq!(dead.code, 1, "{dead:#?}");
    assert!(dead.stderr.contains("cannot reach Redis"), "{dead:#?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    // A file that is not JSON.
    let store = FsStore::new(tmp.path()).unwrap();
    larder::Store::set(&store, "g:n:k.json", b"\x00garbage".to_vec(), None).await.unwrap();
    let garbage = larder(&["--dir", dir, "get", "g:n:k.json"]).await;
    assert_eq!(garbage.code, 1, "{garbage:#?}");
    assert!(garbage.stderr.contains("is not JSON"), "{garbage:#?}");
    let raw = larder(&["--dir", dir, "get", "--raw", "g:n:k.json"]).await.ok();
    assert!(raw.stdout.contains("garbage"));
    let stats = larder(&["--dir", dir, "stats", "--json"]).await.ok().json();
    assert_eq!(stats["unreadable"], 1, "{stats}");
}

static RD_USER_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1h", group = "rd", get_key = |id: &u64| *id)]
async fn rd_user(id: u64) -> String {
    let n = RD_USER_RUNS.hit();
    format!("user {id} run {n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_get_stats_and_delete_against_redis() {
    let server = RedisServer::start();
    let url = server.url();
    let r = |args: &[&'static str]| with("--redis", &url, args);
    let rt = redis_instance(&server, "larder:").await;
    rt.scope(async {
        rd_user(1).await;
        rd_user(2).await;
    })
    .await;
    // Another application on the same server, under its own prefix.
    let other = redis_instance(&server, "app2:").await;
    other.cache("cache").namespace("misc").set("k", 1u32, &hour()).await;

    let keys = larder(&r(&["keys"])).await.ok();
    assert_eq!(keys.stdout.lines().collect::<Vec<_>>(), ["rd:rd_user:1.json", "rd:rd_user:2.json"]);
    let theirs = larder(&r(&["--prefix", "app2:", "keys"])).await.ok();
    assert_eq!(theirs.stdout.trim(), "misc:k.json");

    let got = larder(&r(&["get", "rd:rd_user:1.json"])).await.ok().json();
    assert_eq!(got["value"], "user 1 run 1");

    let stats = larder(&r(&["stats", "--json"])).await.ok().json();
    assert_eq!(stats["entries"], 2, "{stats}");
    assert_eq!(stats["groups"]["rd"]["entries"], 2, "{stats}");
    let strlen: u64 = ["1", "2"]
        .iter()
        .map(|id| {
            server
                .command(&format!("STRLEN larder:rd:rd_user:{id}.json"))
                .unwrap()
                .trim_start_matches(':')
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(stats["bytes"], strlen, "{stats}");

    // A bus that can't be reached: nothing is changed.
    let no_bus =
        larder(&r(&["--bus", "redis://127.0.0.1:1/", "--timeout", "0.5", "delete", "rd:rd_user:1.json"])).await;
    assert_eq!(no_bus.code, 1, "{no_bus:#?}");
    assert!(no_bus.stderr.contains("nothing was changed"), "{no_bus:#?}");
    assert_eq!(server.command("EXISTS larder:rd:rd_user:1.json").unwrap(), ":1");

    let deleted = larder(&r(&["delete", "rd:rd_user:1.json"])).await.ok();
    assert!(deleted.stdout.contains("1 of 1 key(s) deleted"), "{deleted:#?}");
    assert!(
        deleted.stdout.contains("told 2 running instance(s) on channel \"larder:bus\" (every mount)"),
        "{deleted:#?}"
    );
    assert_eq!(server.command("EXISTS larder:rd:rd_user:1.json").unwrap(), ":0");
    // The instance dropped its memory copy: its next call runs the body.
    dropped_from_memory("the instance drops its copy", &rt, "cache", "rd:rd_user:1.json").await;
    assert_eq!(rt.scope(rd_user(1)).await, "user 1 run 3");

    // An empty prefix would clear the whole database: refused without --force.
    let refused = larder(&["--redis", &url, "--prefix", "", "clear"]).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    // Three keys, and the stamp of the delete above (a late write of it is refused).
    assert_eq!(server.command("DBSIZE").unwrap(), ":4");

    // clear: everything under our prefix, not the other application's keys.
    larder(&r(&["clear"])).await.ok();
    // The other application's key, and the clear's stamp.
    assert_eq!(server.command("DBSIZE").unwrap(), ":2");
    assert_eq!(server.command("EXISTS app2:misc:k.json").unwrap(), ":1");
}

static GRP_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
static KEPT_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1h", group = "billing/invoices", get_key = |id: &u64| *id)]
async fn invoice(id: u64) -> String {
    let n = GRP_RUNS.hit();
    format!("invoice {id} run {n}")
}

#[cached(max_age = "1h", group = "catalog", get_key = |id: &u64| *id)]
async fn product(id: u64) -> String {
    let n = KEPT_RUNS.hit();
    format!("product {id} run {n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_drops_its_memory_copies_after_clear_group() {
    let server = RedisServer::start();
    let rt = redis_instance(&server, "larder:").await;
    assert_eq!(rt.scope(invoice(1)).await, "invoice 1 run 1");
    assert_eq!(rt.scope(product(1)).await, "product 1 run 1");
    assert_eq!(rt.keys("cache", "billing.invoices:").len(), 1, "in memory");
    assert_eq!(rt.scope(invoice(1)).await, "invoice 1 run 1", "a memory hit");

    let cleared = larder(&["--redis", &server.url(), "clear", "--group", "billing/invoices"]).await.ok();
    assert!(
        cleared.stdout.contains("cleared group billing/invoices: 1 key(s) under \"billing.invoices:\""),
        "{cleared:#?}"
    );
    assert!(cleared.stdout.contains("told 1 running instance(s)"), "{cleared:#?}");
    assert_eq!(server.command("EXISTS larder:billing.invoices:invoice:1.json").unwrap(), ":0");

    dropped_from_memory("the instance drops the group from memory", &rt, "cache", "billing.invoices:").await;
    assert_eq!(rt.scope(invoice(1)).await, "invoice 1 run 2", "a miss after the clear");
    assert_eq!(rt.keys("cache", "catalog:").len(), 1, "another group stays in memory");
    assert_eq!(rt.scope(product(1)).await, "product 1 run 1", "and is still a hit");
}

static TAGGED_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
static UNTAGGED_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

/// A tagged entry (`plans:{id}.json`, tag `pricing`), through the programmatic API.
async fn plan(rt: &Runtime, id: u64) -> String {
    let opts = hour().tag("pricing");
    rt.cache("cache")
        .namespace("plans")
        .get_or_set(&id.to_string(), &opts, move || async move {
            let n = TAGGED_RUNS.hit();
            Ok::<_, larder::Error>(format!("plan {id} run {n}"))
        })
        .await
        .unwrap()
}

#[cached(max_age = "1h", group = "plans", get_key = |id: &u64| *id)]
async fn plan_name(id: u64) -> String {
    let n = UNTAGGED_RUNS.hit();
    format!("name {id} run {n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_treats_tagged_entries_as_misses_after_clear_tag() {
    let server = RedisServer::start();
    let rt = redis_instance(&server, "larder:").await;
    // A second instance that has never read the entry: it goes to Redis.
    let cold = redis_instance(&server, "larder:").await;
    assert_eq!(plan(&rt, 1).await, "plan 1 run 1");
    assert_eq!(rt.scope(plan_name(1)).await, "name 1 run 1");
    assert_eq!(plan(&rt, 1).await, "plan 1 run 1", "a memory hit");

    // Let the clock move on, so that the invalidation is later than the entry's mtime.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cleared = larder(&["--redis", &server.url(), "clear", "--tag", "pricing"]).await.ok();
    assert!(cleared.stdout.contains("invalidated tag \"pricing\""), "{cleared:#?}");
    assert!(cleared.stdout.contains("told 2 running instance(s)"), "{cleared:#?}");
    let stamp: u64 = server.command("GET larder:_larder:tags:invalidated:pricing.json").unwrap().parse().unwrap();
    assert!(stamp > 0, "{stamp}");

    // Timestamps are in ms and an entry produced in the same ms as the invalidation counts
    // as invalidated (on purpose): let a ms pass before anything is recomputed.
    tokio::time::sleep(Duration::from_millis(3)).await;
    // The entry is still in the instance's memory; the bus message makes it a miss there.
    let again = within("the instance treats the tagged entry as a miss", async {
        loop {
            let v = plan(&rt, 1).await;
            if v != "plan 1 run 1" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(again, "plan 1 run 2");
    assert_eq!(rt.scope(plan_name(1)).await, "name 1 run 1", "an entry without the tag is still a hit");
    // The instance that reads from Redis sees the new entry (produced after the invalidation).
    assert_eq!(plan(&cold, 1).await, "plan 1 run 2");
    assert_eq!(TAGGED_RUNS.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mount_the_cli_tells_every_mount_and_with_it_only_that_one() {
    let server = RedisServer::start();
    // An instance whose mount is not the default `cache`.
    let rt = redis_instance_on(&server, "larder:", "users").await;
    let users = rt.cache("users").namespace("u");
    users.set("a", 1u32, &hour()).await;
    users.set("b", 2u32, &hour()).await;
    let url = server.url();

    let only_cache = larder(&["--redis", &url, "--mount", "cache", "delete", "u:a.json"]).await.ok();
    assert!(only_cache.stdout.contains("(mount cache)"), "{only_cache:#?}");
    let every = larder(&["--redis", &url, "delete", "u:b.json"]).await.ok();
    assert!(
        every.stdout.contains("told 1 running instance(s)") && every.stdout.contains("(every mount)"),
        "{every:#?}"
    );
    dropped_from_memory("the instance drops its copy of b", &rt, "users", "u:b.json").await;
    // Messages arrive in order: the one for mount `cache` came first and was not for us.
    assert_eq!(rt.keys("users", "u:a.json"), ["u:a.json"], "a message for another mount leaves this one alone");
}
