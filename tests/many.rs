//! `NAME_many`: many argument sets, results in their order; memory in one pass, L2 in one
//! round trip for the rest, the body only for the sets still missing, each key
//! single-flight with the function's other callers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use common::{Gate, Runs, runtime, within};
use larder::{MemoryStore, Mount, Runtime, Store, StoreFuture, cached};

static TITLE_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1m", group = "books")]
async fn title(id: u64, lang: &str) -> Result<String, String> {
    TITLE_RUNS.hit();
    if id == 0 {
        return Err("no book 0".to_owned());
    }
    Ok(format!("book {id} ({lang})"))
}

#[tokio::test]
async fn many_answers_in_order_and_runs_the_body_only_for_the_misses() {
    let (rt, _clock) = runtime();
    rt.scope(async {
        for id in [2, 4, 6] {
            title(id, "en").await.unwrap();
        }
        let calls: Vec<(u64, &str)> = (1..=6).map(|id| (id, "en")).chain([(0, "en"), (2, "fr")]).collect();
        let got = title_many(calls.clone()).await;
        let want: Vec<Result<String, String>> = calls
            .iter()
            .map(|(id, lang)| if *id == 0 { Err("no book 0".to_owned()) } else { Ok(format!("book {id} ({lang})")) })
            .collect();
        assert_eq!(got, want);
        assert_eq!(TITLE_RUNS.get(), 3 + 5, "1, 3, 5, 0 and (2, fr): the misses only");
        assert_eq!(title_many(calls).await, want);
        assert_eq!(TITLE_RUNS.get(), 3 + 5 + 1, "only the error runs again: it was not cached");
    })
    .await;
}

/// A memory store that counts the reads it is asked for.
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    gets: AtomicUsize,
    get_manys: AtomicUsize,
}

impl Store for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn get_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        self.get_manys.fetch_add(1, Ordering::SeqCst);
        self.inner.get_many(keys)
    }
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        self.inner.set(key, value, ttl)
    }
    common::store::pass_through_store!(inner);
}

static SCORE_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1h", group = "scores")]
async fn score(player: u64) -> u64 {
    SCORE_RUNS.hit();
    player * 10
}

#[tokio::test]
async fn what_memory_lacks_is_read_from_l2_in_one_round_trip() {
    let store = Arc::new(Counting::default());
    let instance = || Runtime::builder().mount("cache", Mount::memory(1_000).l2_shared(store.clone())).build();
    instance()
        .scope(async { assert_eq!(score_many(1..=90).await, (1..=90).map(|p| p * 10).collect::<Vec<_>>()) })
        .await;
    assert_eq!(SCORE_RUNS.get(), 90);
    // Another instance, memory cold: 90 players are in L2, 10 nowhere.
    let (gets, manys) = (store.gets.load(Ordering::SeqCst), store.get_manys.load(Ordering::SeqCst));
    let got = instance().scope(score_many(1..=100)).await;
    assert_eq!(got, (1..=100).map(|p| p * 10).collect::<Vec<_>>());
    assert_eq!(SCORE_RUNS.get(), 100, "the body ran for the 10 missing players only");
    assert_eq!(store.get_manys.load(Ordering::SeqCst) - manys, 1, "one round trip for the entries");
    assert_eq!(store.gets.load(Ordering::SeqCst) - gets, 0, "and no read per key after it");
}

static SLOW_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
static SLOW_GATE: LazyLock<Gate> = LazyLock::new(Gate::new);

#[cached(max_age = "1m")]
async fn slow(n: u64) -> u64 {
    SLOW_RUNS.hit();
    if n == 3 {
        SLOW_GATE.wait().await;
    }
    n + 100
}

/// `fut` in `rt`'s scope, as a `'static` future to spawn.
fn in_scope<F: Future>(rt: &Runtime, fut: F) -> impl Future<Output = F::Output> + use<F> {
    let rt = rt.clone();
    async move { rt.scope(fut).await }
}

#[tokio::test]
async fn a_key_another_caller_is_running_is_waited_for_not_run_again() {
    let (rt, _clock) = runtime();
    let single = tokio::spawn(in_scope(&rt, slow(3)));
    within("the single call leads its run", SLOW_RUNS.reached(1)).await;
    let batch = tokio::spawn(in_scope(&rt, slow_many([1, 2, 3, 4])));
    within("the batch runs its other keys", SLOW_RUNS.reached(4)).await;
    assert!(!batch.is_finished(), "the batch waits for key 3");
    SLOW_GATE.open();
    assert_eq!(within("the batch", batch).await.unwrap(), vec![101, 102, 103, 104]);
    assert_eq!(within("the single call", single).await.unwrap(), 103);
    assert_eq!(SLOW_RUNS.get(), 4, "key 3 ran once, for both");
}

static CUBE_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1m")]
fn cube(n: i64) -> i64 {
    CUBE_RUNS.hit();
    n * n * n
}

#[test]
fn a_sync_function_has_a_sync_many() {
    let (rt, _clock) = runtime();
    rt.scope_sync(|| {
        assert_eq!(cube(2), 8);
        assert_eq!(cube_many([-1, 2, 3, 3]), vec![-1, 8, 27, 27]);
        assert_eq!(CUBE_RUNS.get(), 3, "2 was cached, and the two 3s share one run");
    });
}

#[derive(Clone)]
struct Library;

static SHELF_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

impl Library {
    #[cached(max_age = "1m", get_key = |shelf: &str| shelf.to_owned())]
    async fn shelf(&self, shelf: &str) -> Vec<String> {
        SHELF_RUNS.hit();
        vec![format!("{shelf}-1")]
    }
}

#[tokio::test]
async fn a_method_has_a_many_too() {
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(Library.shelf_many(["a", "b", "a"]).await, vec![vec!["a-1"], vec!["b-1"], vec!["a-1"]]);
        assert_eq!(SHELF_RUNS.get(), 2);
        assert_eq!(rt.keys("cache", "functions:shelf:"), vec!["functions:shelf:a.json", "functions:shelf:b.json"]);
    })
    .await;
}
