//! Resilience through the attribute: fail-safe grace and its backoff, soft and
//! hard timeouts, static and dynamic tags, and the counters of `NAME_stats`.

mod common;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Runs, runtime};
use larder::cached;

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    Down,
    Larder(larder::Error),
}

impl From<larder::Error> for ApiError {
    fn from(e: larder::Error) -> Self {
        ApiError::Larder(e)
    }
}

#[tokio::test]
async fn grace_answers_while_the_body_fails_backs_off_then_lets_the_error_through() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static DOWN: AtomicBool = AtomicBool::new(false);
    #[cached(max_age = "1m", grace = "10m", grace_backoff = "30s")]
    async fn price(sku: &str) -> Result<String, ApiError> {
        let n = RUNS.hit();
        if DOWN.load(Ordering::SeqCst) { Err(ApiError::Down) } else { Ok(format!("{sku}: run {n}")) }
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(price("a").await.unwrap(), "a: run 1");
        DOWN.store(true, Ordering::SeqCst);
        clock.advance(Duration::from_secs(61)); // expired, inside grace
        assert_eq!(price("a").await.unwrap(), "a: run 1", "grace: the old value while the body fails");
        assert_eq!(RUNS.get(), 2);
        clock.advance(Duration::from_secs(29));
        assert_eq!(price("a").await.unwrap(), "a: run 1");
        assert_eq!(RUNS.get(), 2, "inside grace_backoff the body is not called");
        clock.advance(Duration::from_secs(2));
        assert_eq!(price("a").await.unwrap(), "a: run 1");
        assert_eq!(RUNS.get(), 3, "after the backoff it is tried again");
        clock.advance(Duration::from_secs(600)); // past max_age + grace
        assert_eq!(price("a").await, Err(ApiError::Down), "past grace the error comes through");
        let stats = price_stats();
        assert_eq!(stats.grace_answers, 3, "{stats:?}");
        assert_eq!(stats.errors, 3, "{stats:?}");
        DOWN.store(false, Ordering::SeqCst);
    })
    .await;
}

#[tokio::test]
async fn a_soft_timeout_answers_with_the_grace_value_and_stores_the_late_result() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<common::Gate> = LazyLock::new(common::Gate::new);
    #[cached(max_age = "1m", grace = "1h", timeout = "20ms")]
    async fn report(id: u32) -> Result<String, ApiError> {
        let n = RUNS.hit_holding_reruns(&GATE).await;
        Ok(format!("report {id} v{n}"))
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(report(1).await.unwrap(), "report 1 v1");
        clock.advance(Duration::from_secs(61));
        assert_eq!(report(1).await.unwrap(), "report 1 v1", "slow body: the old value after `timeout`");
        GATE.open();
        common::until("the late result is stored", async || report(1).await.unwrap() == "report 1 v2").await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_hard_timeout_fails_the_call_with_error_timeout() {
    #[cached(max_age = "1m", hard_timeout = "100ms")]
    async fn hang() -> Result<u32, ApiError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(1)
    }
    let (rt, _clock) = runtime();
    assert_eq!(rt.scope(hang()).await, Err(ApiError::Larder(larder::Error::Timeout)));
}

#[tokio::test]
async fn static_and_dynamic_tags_invalidate_and_expire() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h", swr, tags = |id: &u64| vec![format!("user:{id}")])]
    async fn user(id: u64) -> String {
        format!("user {id} run {}", RUNS.hit())
    }
    #[cached(max_age = "1h", tags = ["catalog"])]
    async fn catalog(page: u32) -> String {
        format!("page {page} run {}", RUNS.hit())
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        let u1 = user(1).await;
        let u2 = user(2).await;
        let c = catalog(1).await;
        larder::invalidate_tag("user:1").await;
        assert_ne!(user(1).await, u1, "invalidated: a miss");
        assert_eq!(user(2).await, u2, "other tags untouched");
        assert_eq!(catalog(1).await, c);

        larder::invalidate_tag("catalog").await;
        assert_ne!(catalog(1).await, c);

        // expire_tag: stale, still served under swr (and refreshed).
        let before = user(2).await;
        larder::expire_tag("user:2").await;
        assert_eq!(user(2).await, before, "expired: served stale under swr");
    })
    .await;
}

#[tokio::test]
async fn stats_count_hits_misses_runs_and_stale_hits() {
    #[cached(max_age = "1m", swr)]
    async fn counted(n: u32) -> u32 {
        n
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        counted(1).await; // miss, run
        counted(1).await; // hit
        counted(1).await; // hit
        clock.advance(Duration::from_secs(61));
        counted(1).await; // stale (+ a background run)
        let s = counted_stats();
        assert_eq!((s.misses, s.hits, s.stale_hits), (1, 2, 1), "{s:?}");
        assert!(s.runs >= 1 && s.errors == 0, "{s:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_with_an_old_value_gets_it_after_the_soft_timeout_not_only_the_first() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<common::Gate> = LazyLock::new(common::Gate::new);
    #[cached(max_age = "1m", grace = "1h", timeout = "50ms")]
    async fn slow_report(id: u32) -> Result<String, ApiError> {
        let n = RUNS.hit_holding_reruns(&GATE).await;
        Ok(format!("report {id} v{n}"))
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(slow_report(1).await.unwrap(), "report 1 v1");
        clock.advance(Duration::from_secs(61));
        // The first caller leads the slow run; the others join it while it goes on. The
        // gate stays closed: a caller that waited for the body would never answer.
        let callers = (0..4).map(|_| async { common::within("a caller answers", slow_report(1)).await.unwrap() });
        let answers = futures::future::join_all(callers).await;
        assert_eq!(answers, vec!["report 1 v1"; 4], "every caller got the old value after `timeout`");
        assert_eq!(RUNS.get(), 2, "one run for all of them");
        // Callers arriving later still find the run going on, and get the old value too.
        assert_eq!(common::within("a late caller answers", slow_report(1)).await.unwrap(), "report 1 v1");
        GATE.open();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_set_waiters_get_the_old_value_after_the_soft_timeout() {
    let (rt, clock) = runtime();
    let cache = rt.cache("cache");
    let gate = common::Gate::new();
    let runs = Runs::new();
    let opts = larder::Options::new()
        .max_age(Duration::from_secs(60))
        .grace(Duration::from_secs(3600))
        .timeout(Duration::from_millis(50));
    async fn produce(gate: common::Gate, runs: Runs) -> Result<String, larder::Error> {
        let n = runs.hit_holding_reruns(&gate).await;
        Ok(format!("v{n}"))
    }
    let (g, r) = (gate.clone(), runs.clone());
    assert_eq!(cache.get_or_set("k", &opts, move || produce(g, r)).await.unwrap(), "v1");
    clock.advance(Duration::from_secs(61));
    let callers = (0..3).map(|_| {
        let (c, o, g, r) = (cache.clone(), opts.clone(), gate.clone(), runs.clone());
        async move { common::within("a waiter answers", c.get_or_set("k", &o, move || produce(g, r))).await.unwrap() }
    });
    assert_eq!(futures::future::join_all(callers).await, vec!["v1"; 3]);
    assert_eq!(runs.get(), 2);
    gate.open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_refreshes_a_hot_key_before_it_expires_so_callers_never_wait() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<common::Gate> = LazyLock::new(common::Gate::new);
    #[cached(max_age = "100s", refresh_ahead = 0.8)]
    async fn quote(id: u32) -> Result<String, ApiError> {
        let n = RUNS.hit_holding_reruns(&GATE).await;
        Ok(format!("quote {id} v{n}"))
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(quote(1).await.unwrap(), "quote 1 v1");
        clock.advance(Duration::from_secs(79));
        assert_eq!(quote(1).await.unwrap(), "quote 1 v1");
        assert_eq!(RUNS.get(), 1, "before 80 % of max_age, a plain hit");
        clock.advance(Duration::from_secs(2));
        // Past 80 %: still a hit, at once (the refresh is held at its gate), and one refresh.
        for _ in 0..5 {
            assert_eq!(common::within("a hit answers", quote(1)).await.unwrap(), "quote 1 v1");
        }
        common::within("the background refresh starts", RUNS.reached(2)).await;
        assert_eq!(quote(1).await.unwrap(), "quote 1 v1");
        assert_eq!(RUNS.get(), 2, "one background refresh for all the hits");
        GATE.open();
        common::until("the refreshed value is stored", async || quote(1).await.unwrap() == "quote 1 v2").await;
        // Past the first entry's max_age: the refreshed one is fresh, no miss ever happened.
        clock.advance(Duration::from_secs(30));
        assert_eq!(quote(1).await.unwrap(), "quote 1 v2");
        assert_eq!(RUNS.get(), 2);
        let stats = quote_stats();
        assert_eq!((stats.misses, stats.stale_hits), (1, 0), "{stats:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_set_refreshes_ahead_too() {
    let (rt, clock) = runtime();
    let cache = rt.cache("cache");
    let opts = larder::Options::new().max_age(Duration::from_secs(100)).refresh_ahead(0.8);
    let v1 = cache.get_or_set("k", &opts, || async { Ok::<_, larder::Error>("v1".to_owned()) }).await.unwrap();
    assert_eq!(v1, "v1");
    clock.advance(Duration::from_secs(81));
    let (answer, how) =
        cache.get_or_set_with("k", &opts, None, || async { Ok::<_, larder::Error>("v2".to_owned()) }).await;
    assert_eq!((answer.unwrap().as_str(), how), ("v1", larder::Answer::Hit), "answered at once, as a hit");
    common::until("the refresh ahead stores v2", async || cache.get::<String>("k").await.as_deref() == Some("v2"))
        .await;
}
