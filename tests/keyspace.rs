//! The key space is unambiguous: the group and the name are one `:`-free segment each, so no
//! two functions share a key, and clearing one function or one group never deletes another
//! function's or group's entries, in memory or in L2.

mod common;

use std::collections::HashMap;
use std::sync::LazyLock;

use cache_keyspace::{group_prefixes, is_segment, prefix};
use common::{Runs, runtime};
use larder::{Clock, FsStore, ManualClock, MemoryStore, Mount, Runtime, Store, cached, escape_key};

// Group `a/b`, function `c`. Under the old layout (`/` stored as `:`) its keys began with
// `a:b:c:`, inside the prefix `a:b:` of the function `b` of the group `a`, and its default
// key `a:b:c:default.json` was `b`'s key for `c/default`.
static C_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
#[cached(max_age = "1h", group = "a/b", name = "c")]
async fn c() -> u64 {
    C_RUNS.hit() as u64
}

// Group `a`, function `b`, whose keys may start with `c/`.
static B_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
#[cached(max_age = "1h", group = "a", name = "b", get_key = |k: &str| k.to_owned())]
async fn b(k: &str) -> String {
    format!("{k} {}", B_RUNS.hit())
}

// The statics above belong to the first two tests (run counts are compared, and the tests
// of a file run in parallel); the group test has functions of its own at the same keys.

#[test]
fn a_function_never_shares_a_key_with_a_function_of_a_sub_group() {
    assert_eq!(c_key(), "a.b:c:default.json");
    assert_eq!(b_key("c/default"), "a:b:c:default.json");
    assert_ne!(b_key("c/default"), c_key());
    assert!(!c_key().starts_with(&prefix("a", "b")), "{} under a's b", c_key());
    // The attribute's compile-time prefix is the runtime's.
    assert!(b_key("x").starts_with(&prefix("a", "b")));
    assert!(c_key().starts_with(&prefix("a/b", "c")));
}

/// A runtime whose mount `cache` has `l2` under its memory tier.
fn with_l2(l2: impl Store, clock: &ManualClock) -> Runtime {
    Runtime::builder().clock(Clock::Manual(clock.clone())).mount("cache", Mount::memory(1000).l2(l2)).build()
}

#[tokio::test]
async fn clearing_a_function_never_deletes_the_entries_of_a_function_of_a_sub_group() {
    let clock = ManualClock::new();
    let l2 = MemoryStore::new();
    let rt = with_l2(l2.clone(), &clock);
    rt.scope(async {
        c().await;
        b("c/x").await;
        b("c/default").await;
        let runs = C_RUNS.get();
        b_clear().await;
        assert_eq!(l2.keys("a:b:").await.unwrap(), Vec::<String>::new(), "b's entries are gone from L2");
        c().await;
        assert_eq!(C_RUNS.get(), runs, "a/b's c is still a hit after a's b_clear");
    })
    .await;
    // (larder's own keys aside: the clear left its stamp.)
    let entries: Vec<String> = l2.keys("").await.unwrap().into_iter().filter(|k| !k.starts_with("_larder:")).collect();
    assert_eq!(entries, vec![c_key()], "and still in L2");
    // A cold instance on the same L2 finds it there, without running the body.
    let cold = with_l2(l2.clone(), &clock);
    let runs = C_RUNS.get();
    cold.scope(c()).await;
    assert_eq!(C_RUNS.get(), runs, "an L2 hit on a cold instance");
}

#[tokio::test]
async fn clear_group_deletes_a_group_and_its_sub_groups_and_nothing_else() {
    static SUB: LazyLock<Runs> = LazyLock::new(Runs::new);
    static OWN: LazyLock<Runs> = LazyLock::new(Runs::new);
    static OTHER: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h", group = "a/b", name = "c")]
    async fn sub_c() -> usize {
        SUB.hit()
    }
    #[cached(max_age = "1h", group = "a", name = "b", get_key = |k: &str| k.to_owned())]
    async fn own_b(k: &str) -> String {
        format!("{k} {}", OWN.hit())
    }
    // Group `ab`: not a sub-group of `a`.
    #[cached(max_age = "1h", group = "ab", name = "c")]
    async fn other_c() -> usize {
        OTHER.hit()
    }
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let rt = with_l2(FsStore::new(dir.path()).unwrap(), &clock);
    rt.scope(async {
        own_b("c/x").await;
        sub_c().await;
        other_c().await;
        // `a/b` is not the function `b` of `a`.
        assert!(larder::clear_group("a/b").await >= 1);
        own_b("c/x").await;
        assert_eq!(OWN.get(), 1, "a's b is still a hit after clear_group(\"a/b\")");
        sub_c().await;
        assert_eq!(SUB.get(), 2, "a/b's c was cleared");
    })
    .await;
    let on_disk = common::fs::files(dir.path());
    assert!(on_disk.contains("a/b/c/x.json"), "{on_disk:?}");

    // A cold instance on the same directory: `a`'s `b` is still in L2.
    let cold = with_l2(FsStore::new(dir.path()).unwrap(), &clock);
    cold.scope(async {
        own_b("c/x").await;
        assert_eq!(OWN.get(), 1, "an L2 hit on a cold instance");
        // `a` with its sub-group `a/b`, but not `ab`.
        assert!(larder::clear_group("a").await >= 2);
        other_c().await;
        assert_eq!(OTHER.get(), 1, "ab is not a sub-group of a");
        own_b("c/x").await;
        sub_c().await;
        assert_eq!((OWN.get(), SUB.get()), (2, 3), "a and a/b were cleared");
    })
    .await;
}

/// Groups, names and namespaces to try: valid ones (the attribute's), and text the runtime's
/// string APIs (`Cache::namespace`, the HTTP layer's `group`/`name`) take as well.
const SEGMENTS: &[&str] = &[
    "a", "b", "c", "ab", "a/b", "a/b/c", "b/c", "a-b", "a_b", "default", "", ":", "a:b", "b:c", "/", "a/", "/a",
    "a//b", "a.b", "a.json", ".json", "%", "a%b", "ab%0", "é", "a b", "..",
];

/// Keys to try: `get_key` results and programmatic keys.
const KEYS: &[&str] = &[
    "",
    "c",
    "x",
    "c/x",
    "c/default",
    "default",
    "b/c",
    ":",
    "a:b",
    "/",
    "a/b",
    "//",
    ".json",
    "x.json",
    "%",
    "%3A",
    "é",
    "ü/é",
    "..",
    "../x",
    "a.b",
    "00000000000000000000000000000000",
];

#[tokio::test]
async fn distinct_triples_give_distinct_keys_and_no_prefix_covers_another_functions_keys() {
    let (rt, _clock) = runtime();
    let root = rt.cache("cache");
    let mut seen: HashMap<String, (&str, &str, &str)> = HashMap::new();
    let mut keys = Vec::new();
    for &g in SEGMENTS {
        for &n in SEGMENTS {
            let p = prefix(g, n);
            let ns = root.namespace(g).namespace(n);
            for &k in KEYS {
                let key = format!("{p}{}.json", escape_key(k));
                assert_eq!(ns.storage_key(k), key, "a namespace is stored as a group and a name are");
                assert_eq!(key.matches(':').count(), 2 + escape_key(k).matches(':').count(), "{key}");
                if let Some(other) = seen.insert(key.clone(), (g, n, k)) {
                    panic!("{key} is the key of {:?} and of {other:?}", (g, n, k));
                }
                keys.push((g, n, key));
            }
        }
    }
    for &g in SEGMENTS {
        let groups = group_prefixes(g);
        for &n in SEGMENTS {
            let p = prefix(g, n);
            for (og, on, key) in &keys {
                let same_function = (g, n) == (*og, *on);
                assert_eq!(key.starts_with(&p), same_function, "{p} and {key} of {:?}", (og, on));
            }
        }
        for (og, _, key) in &keys {
            let sub_group = is_segment(g, true) && is_segment(og, true) && og.starts_with(&format!("{g}/"));
            let covered = groups.iter().any(|p| key.starts_with(p));
            assert_eq!(covered, g == *og || sub_group, "clear_group({g:?}) and {key} of the group {og:?}");
        }
    }
}
