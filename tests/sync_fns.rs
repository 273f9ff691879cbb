//! `#[cached]` on a plain `fn`: the same algorithm, driven on the caller's thread. Most
//! tests here run without any Tokio runtime (a plain `#[test]`, as in a `fn main`); the
//! last ones call sync functions from inside one.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use common::{PATIENCE, Runs, runtime};
use larder::{Mount, Runtime, cached, cached_impl};

/// A gate that sync bodies wait on (their thread blocks) until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
    fn wait(&self) {
        let (open, cv) = &*self.0;
        let guard = cv.wait_timeout_while(open.lock().unwrap(), PATIENCE, |open| !*open).unwrap();
        assert!(*guard.0, "timed out ({PATIENCE:?}) waiting for the gate");
    }
}

/// Waits until `cond` holds, failing the test after [`PATIENCE`]; `what` names it.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out ({PATIENCE:?}): {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

static SQUARE_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1m")]
fn square(n: u64) -> u64 {
    SQUARE_RUNS.hit();
    n * n
}

#[test]
fn a_sync_function_is_cached_without_any_tokio_runtime() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let (rt, clock) = runtime();
    rt.scope_sync(|| {
        assert_eq!(square(4), 16);
        assert_eq!(square(4), 16);
        assert_eq!(square(5), 25);
        assert_eq!(SQUARE_RUNS.get(), 2, "one run per key");
        clock.advance(Duration::from_secs(61));
        assert_eq!(square(4), 16);
        assert_eq!(SQUARE_RUNS.get(), 3, "past max_age: a miss");
        assert_eq!(square_stats().hits, 1);
    });
}

static SLOW_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
static SLOW_GATE: LazyLock<Gate> = LazyLock::new(Gate::default);

#[cached(max_age = "1m")]
fn slow(key: u64) -> (u64, usize) {
    let run = SLOW_RUNS.hit();
    if key == 1 {
        SLOW_GATE.wait();
    }
    (key, run)
}

#[test]
fn concurrent_callers_on_threads_share_one_run_and_other_keys_do_not_wait() {
    let (rt, _clock) = runtime();
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let rt = rt.clone();
            std::thread::spawn(move || rt.scope_sync(|| slow(1)))
        })
        .collect();
    // Every caller has missed (the first leads the run, the others wait for it)…
    eventually("8 callers joined the run", || rt.scope_sync(slow_stats).misses == 8);
    // …and a caller of another key gets its own run meanwhile.
    assert_eq!(rt.scope_sync(|| slow(2)).0, 2);
    SLOW_GATE.open();
    let answers: Vec<(u64, usize)> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    let first = answers[0];
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");
    assert_eq!(SLOW_RUNS.get(), 2, "one run for key 1, one for key 2");
}

static STALE_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
static STALE_GATE: LazyLock<Gate> = LazyLock::new(Gate::default);
static STALE_STARTED: LazyLock<Mutex<Option<mpsc::Sender<usize>>>> = LazyLock::new(|| Mutex::new(None));

#[cached(max_age = "10s", swr)]
fn headline(id: u64) -> String {
    let run = STALE_RUNS.hit();
    if run > 1 {
        if let Some(tx) = &*STALE_STARTED.lock().unwrap() {
            tx.send(run).unwrap();
        }
        STALE_GATE.wait();
    }
    format!("headline {id}, run {run}")
}

#[test]
fn swr_answers_stale_at_once_and_refreshes_once_on_a_background_thread() {
    let (rt, clock) = runtime();
    let (tx, started) = mpsc::channel();
    *STALE_STARTED.lock().unwrap() = Some(tx);
    rt.scope_sync(|| {
        assert_eq!(headline(1), "headline 1, run 1");
        clock.advance(Duration::from_secs(11));
        // Stale: answered at once while the refresh waits at its gate on another thread.
        assert_eq!(headline(1), "headline 1, run 1");
        assert_eq!(started.recv_timeout(PATIENCE).unwrap(), 2);
        assert_eq!(headline(1), "headline 1, run 1");
        assert_eq!(headline(1), "headline 1, run 1");
        assert_eq!(STALE_RUNS.get(), 2, "one refresh per key at a time");
        STALE_GATE.open();
        eventually("the refresh lands", || headline(1) == "headline 1, run 2");
        assert_eq!(STALE_RUNS.get(), 2);
    });
}

static DISK_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1h", group = "reports", get_key = |month: &u32| *month)]
fn report(month: u32) -> Vec<u32> {
    DISK_RUNS.hit();
    vec![month; 3]
}

#[test]
fn the_fs_tier_works_from_a_sync_function() {
    let dir = tempfile::tempdir().unwrap();
    let tiered = || {
        let store = larder::FsStore::new(dir.path()).unwrap();
        Runtime::builder().mount("cache", Mount::memory(100).l2(store)).build()
    };
    tiered().scope_sync(|| assert_eq!(report(7), vec![7, 7, 7]));
    let on_disk = std::fs::read_to_string(dir.path().join("reports/report/7.json")).unwrap();
    assert!(on_disk.contains(r#""value":[7,7,7]"#), "{on_disk}");
    // A fresh memory tier over the same directory: answered from the file.
    tiered().scope_sync(|| assert_eq!(report(7), vec![7, 7, 7]));
    assert_eq!(DISK_RUNS.get(), 1);
}

static HELPER_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1m", swr, group = "users")]
fn nickname(id: u64) -> Result<String, String> {
    let run = HELPER_RUNS.hit();
    Ok(format!("user {id}, run {run}"))
}

#[test]
fn the_helpers_of_a_sync_function_are_plain_functions() {
    let (rt, _clock) = runtime();
    rt.scope_sync(|| {
        assert!(nickname_key(7).starts_with("users:nickname:"));
        assert_eq!(nickname(7).unwrap(), "user 7, run 1");
        nickname_invalidate(7);
        assert_eq!(nickname(7).unwrap(), "user 7, run 2");
        nickname_prime(7, "primed".to_owned());
        assert_eq!(nickname(7).unwrap(), "primed");
        nickname_expire(7);
        assert_eq!(nickname(7).unwrap(), "primed", "stale, under swr");
        eventually("the refresh lands", || nickname(7).unwrap() == "user 7, run 3");
        assert_eq!(nickname_uncached(8).unwrap(), "user 8, run 4");
        nickname_clear();
        assert!(rt.keys("cache", "users:nickname:").is_empty());
        assert_eq!(nickname_stats().runs, 3);
    });
}

static SOFT_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
static SOFT_GATE: LazyLock<Gate> = LazyLock::new(Gate::default);

#[cached(max_age = "10s", grace = "1h", timeout = "50ms")]
fn quote(symbol: &str) -> Result<String, String> {
    let run = SOFT_RUNS.hit();
    if run > 1 {
        SOFT_GATE.wait();
    }
    Ok(format!("{symbol} run {run}"))
}

#[test]
fn a_soft_timeout_answers_the_old_value_and_the_body_goes_on_to_store_its_result() {
    let (rt, clock) = runtime();
    rt.scope_sync(|| {
        assert_eq!(quote("ACME").unwrap(), "ACME run 1");
        clock.advance(Duration::from_secs(11));
        // The body waits at its gate: after 50 ms the caller gets the old value.
        assert_eq!(quote("ACME").unwrap(), "ACME run 1");
        SOFT_GATE.open();
        eventually("the run goes on and stores", || quote("ACME").unwrap() == "ACME run 2");
        assert_eq!(SOFT_RUNS.get(), 2);
    });
}

#[cached(max_age = "1h")]
fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

#[test]
fn a_sync_function_may_call_itself() {
    let (rt, _clock) = runtime();
    assert_eq!(rt.scope_sync(|| fib(90)), 2_880_067_194_370_816_120);
    assert_eq!(rt.scope_sync(fib_stats).runs, 91, "each n once");
}

trait Prices {
    fn price(&self, sku: &str) -> Result<u64, String>;
}

#[derive(Clone)]
struct Shop;

static PRICE_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached_impl]
impl Prices for Shop {
    #[cached(max_age = "1m")]
    fn price(&self, sku: &str) -> Result<u64, String> {
        PRICE_RUNS.hit();
        Ok(sku.len() as u64)
    }
}

fn through_the_trait(p: &impl Prices) -> u64 {
    p.price("abc").unwrap()
}

#[test]
fn a_sync_method_of_a_trait_impl_is_cached() {
    let (rt, _clock) = runtime();
    rt.scope_sync(|| {
        assert_eq!(through_the_trait(&Shop), 3);
        assert_eq!(Shop.price("abc").unwrap(), 3);
        assert_eq!(PRICE_RUNS.get(), 1);
        Shop.price_invalidate("abc");
        assert_eq!(through_the_trait(&Shop), 3);
        assert_eq!(PRICE_RUNS.get(), 2);
    });
}

/// Body runs of `inside` by argument: the tests that call it run side by side, each with
/// its own argument.
static INSIDE_RUNS: LazyLock<std::sync::Mutex<std::collections::HashMap<u64, usize>>> = LazyLock::new(Default::default);

fn inside_runs(n: u64) -> usize {
    INSIDE_RUNS.lock().unwrap().get(&n).copied().unwrap_or(0)
}

#[cached(max_age = "1m", group = "inside")]
fn inside(n: u64) -> u64 {
    *INSIDE_RUNS.lock().unwrap().entry(n).or_default() += 1;
    n + 1
}

/// Misses (body, L1 and fs L2 writes), hits and helpers of a sync function, from async code.
async fn sync_calls_from_async_code(offset: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = larder::FsStore::new(dir.path()).unwrap();
    let rt = Runtime::builder().mount("cache", Mount::memory(100).l2(store)).build();
    rt.scope(async {
        assert_eq!(inside(offset), offset + 1);
        assert_eq!(inside(offset), offset + 1);
        assert_eq!(inside_runs(offset), 1);
        inside_invalidate(offset);
        assert_eq!(inside(offset), offset + 1);
        assert_eq!(inside_runs(offset), 2);
    })
    .await;
    assert_eq!(common::fs::files(dir.path()).iter().filter(|f| f.starts_with("inside/")).count(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_sync_function_called_on_a_current_thread_runtime_does_not_panic() {
    sync_calls_from_async_code(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_function_called_on_a_multi_thread_runtime_does_not_panic() {
    sync_calls_from_async_code(200).await;
}

#[cfg(feature = "redis")]
static REDIS_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cfg(feature = "redis")]
#[cached(max_age = "1h", group = "redis")]
fn stock(sku: u64) -> u64 {
    REDIS_RUNS.hit();
    sku * 3
}

/// A Redis store is created inside a Tokio runtime (its connection lives there); the sync
/// function is then called from plain threads.
#[cfg(feature = "redis")]
#[test]
fn a_redis_tier_works_from_a_sync_function_on_plain_threads() {
    let server = common::redis::RedisServer::start();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let instance = || {
        let _inside = tokio.enter();
        let store = larder::RedisStore::builder(server.url()).connect_lazy().expect("a valid URL");
        Runtime::builder().mount("cache", Mount::memory(100).l2(store)).build()
    };
    let first = instance();
    assert_eq!(std::thread::spawn(move || first.scope_sync(|| stock(5))).join().unwrap(), 15);
    // Another instance, memory cold: answered from Redis, the body does not run again.
    let second = instance();
    assert_eq!(std::thread::spawn(move || second.scope_sync(|| stock(5))).join().unwrap(), 15);
    assert_eq!(REDIS_RUNS.get(), 1);
}
