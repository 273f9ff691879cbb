//! Single-flight: one run per key, however many callers.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use common::{Gate, Runs, runtime};
use futures::future::join_all;
use larder::cached;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callers_of_a_cold_key_share_one_run() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);
    #[cached(max_age = "1h")]
    async fn cold(id: u64) -> Vec<u64> {
        RUNS.hit();
        GATE.wait().await;
        vec![id; 3]
    }
    let (rt, _clock) = runtime();
    let callers: Vec<_> = (0..1000).map(|_| common::spawn_scoped(&rt, cold(7))).collect();
    RUNS.reached(1).await;
    // Give every caller a chance to join the flight before the body finishes.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    GATE.open();
    let results = join_all(callers).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap() == &vec![7, 7, 7]));
    assert_eq!(RUNS.get(), 1, "1,000 callers, one body run");
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_never_run_the_body_twice_even_when_it_takes_time() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h")]
    async fn slow(id: u64) -> u64 {
        RUNS.hit();
        tokio::time::sleep(Duration::from_millis(50)).await; // virtual time: paused clock
        id
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        let all = join_all((0..1000).map(|_| slow(1))).await;
        assert!(all.iter().all(|v| *v == 1));
        assert_eq!(RUNS.get(), 1);
    })
    .await;
}

#[tokio::test]
async fn different_keys_never_wait_on_each_other() {
    static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);
    #[cached(max_age = "1h")]
    async fn maybe_blocked(id: u64) -> u64 {
        if id == 1 {
            GATE.wait().await;
        }
        id
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        let blocked = common::spawn_scoped(&rt, maybe_blocked(1));
        tokio::task::yield_now().await;
        // Key 1 is stuck in its body; key 2 answers anyway (a hang here fails the test).
        let other = tokio::time::timeout(Duration::from_secs(10), maybe_blocked(2)).await;
        assert_eq!(other.expect("key 2 waited for key 1"), 2);
        GATE.open();
        assert_eq!(blocked.await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn when_the_leading_caller_is_dropped_a_waiter_takes_over() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static NEVER: LazyLock<Gate> = LazyLock::new(Gate::new);
    #[cached(max_age = "1h")]
    async fn fetch(id: u64) -> String {
        let n = RUNS.hit();
        if n == 1 {
            NEVER.wait().await; // the first run never finishes by itself
        }
        format!("{id} from run {n}")
    }
    let (rt, _clock) = runtime();
    let leader = common::spawn_scoped(&rt, fetch(5));
    RUNS.reached(1).await;
    let follower = common::spawn_scoped(&rt, fetch(5));
    tokio::task::yield_now().await;
    leader.abort(); // the caller driving the run goes away
    assert!(leader.await.unwrap_err().is_cancelled());
    let got = tokio::time::timeout(Duration::from_secs(10), follower).await.expect("the waiter hung");
    assert_eq!(got.unwrap(), "5 from run 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_body_reaches_every_waiter_and_frees_the_key() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);
    #[cached(max_age = "1h")]
    async fn fragile(id: u64) -> u64 {
        let n = RUNS.hit();
        if n == 1 {
            GATE.wait().await;
            panic!("boom");
        }
        id
    }
    let (rt, _clock) = runtime();
    let callers: Vec<_> = (0..20).map(|_| common::spawn_scoped(&rt, fragile(3))).collect();
    RUNS.reached(1).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    GATE.open();
    let outcomes = tokio::time::timeout(Duration::from_secs(10), join_all(callers)).await.expect("a waiter hung");
    assert!(outcomes.iter().all(|o| o.as_ref().is_err_and(|e| e.is_panic())), "every waiter sees the panic");
    assert_eq!(RUNS.get(), 1, "waiters don't re-run a panicking body");
    assert_eq!(rt.scope(fragile(3)).await, 3, "the key is free again");
}

#[derive(Debug, Clone, PartialEq)]
struct Shared(&'static str);

#[tokio::test(start_paused = true)]
async fn every_waiter_gets_a_cloneable_error() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h")]
    async fn failing() -> Result<u64, Shared> {
        RUNS.hit();
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(Shared("down"))
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        let all = join_all((0..50).map(|_| failing())).await;
        assert!(all.iter().all(|r| r == &Err(Shared("down"))));
        assert_eq!(RUNS.get(), 1);
    })
    .await;
}

#[derive(Debug)]
enum NotClone {
    Upstream,
    Larder(larder::Error),
}

impl From<larder::Error> for NotClone {
    fn from(e: larder::Error) -> Self {
        NotClone::Larder(e)
    }
}

#[tokio::test(start_paused = true)]
async fn waiters_of_an_error_that_cannot_be_cloned_get_shared_run_failed() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h")]
    async fn failing() -> Result<u64, NotClone> {
        RUNS.hit();
        tokio::time::sleep(Duration::from_millis(10)).await;
        Err(NotClone::Upstream)
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        let all = join_all((0..10).map(|_| failing())).await;
        let upstream = all.iter().filter(|r| matches!(r, Err(NotClone::Upstream))).count();
        let shared = all.iter().filter(|r| matches!(r, Err(NotClone::Larder(larder::Error::SharedRunFailed)))).count();
        assert_eq!((upstream, shared), (1, 9));
        assert_eq!(RUNS.get(), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_cached_function_may_call_cached_functions_and_itself() {
    #[cached(max_age = "1h")]
    async fn leaf(n: u64) -> u64 {
        n * 10
    }
    #[cached(max_age = "1h")]
    async fn fib(n: u64) -> u64 {
        if n < 2 { leaf(n).await / 10 } else { Box::pin(fib(n - 1)).await + Box::pin(fib(n - 2)).await }
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        let v = tokio::time::timeout(Duration::from_secs(10), fib(10)).await.expect("deadlock");
        assert_eq!(v, 55);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_back_to_the_same_key_panics_at_once_naming_the_key_instead_of_hanging() {
    #[larder::cached(max_age = "1h", group = "cycle", get_key = |n: &u64| *n)]
    async fn ping(n: u64) -> Result<u64, String> {
        Box::pin(pong(n)).await
    }
    #[larder::cached(max_age = "1h", group = "cycle", get_key = |n: &u64| *n)]
    async fn pong(n: u64) -> Result<u64, String> {
        Box::pin(ping(n)).await
    }
    let (rt, _clock) = common::runtime();
    let spawn = |rt: &larder::Runtime| common::spawn_scoped(rt, ping(1));
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), spawn(&rt)).await;
    let joined = outcome.expect("the cycle hung instead of failing");
    let panic = joined.expect_err("the cycle must fail").into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("cycle") && message.contains("cycle:ping:1.json"), "{message}");
    // The unwinding freed both keys: calling again fails the same way, at once.
    let again = tokio::time::timeout(std::time::Duration::from_secs(10), spawn(&rt)).await;
    assert!(again.expect("the second call hung on a key left in flight").is_err());
}

#[test]
fn cached_recursion_goes_5000_levels_deep_on_a_2_mib_stack() {
    #[larder::cached(max_age = "1h", group = "recursion", get_key = |n: &u64| *n)]
    async fn depth(n: u64) -> Result<u64, String> {
        if n == 0 { Ok(0) } else { Ok(Box::pin(depth(n - 1)).await? + 1) }
    }
    // A Tokio worker's stack: every level is a miss, each nests one more poll.
    let worker = std::thread::Builder::new().stack_size(2 << 20).spawn(|| {
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (rt, _clock) = common::runtime();
        tokio.block_on(rt.scope(depth(5000)))
    });
    assert_eq!(worker.unwrap().join().expect("no stack overflow"), Ok(5000));
}
