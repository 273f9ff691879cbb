//! What a call does. One test per rule; each test has its own runtime and a
//! manual clock, so time moves only when a test says so.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use common::{Gate, Runs, runtime};
use larder::cached;

#[derive(Debug, Clone, PartialEq)]
struct Upstream(String);

#[tokio::test]
async fn a_fresh_entry_is_a_hit_and_the_body_does_not_run() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h")]
    async fn double(x: u64) -> u64 {
        RUNS.hit();
        x * 2
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(double(21).await, 42);
        clock.advance(Duration::from_secs(3600)); // age == max_age: still fresh
        assert_eq!(double(21).await, 42);
        assert_eq!(RUNS.get(), 1);
        assert_eq!(double(1).await, 2, "another argument is another key");
        assert_eq!(RUNS.get(), 2);
    })
    .await;
}

#[tokio::test]
async fn past_max_age_without_swr_is_a_miss() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "10s")]
    async fn run_number() -> usize {
        RUNS.hit()
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(run_number().await, 1);
        clock.advance(Duration::from_millis(10_001));
        assert_eq!(run_number().await, 2, "an expired entry is recomputed in the foreground");
        assert_eq!(run_number().await, 2);
    })
    .await;
}

#[tokio::test]
async fn swr_serves_the_stale_value_at_once_and_refreshes_in_the_background() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);
    #[cached(max_age = "1m", swr)]
    async fn version() -> usize {
        RUNS.hit_holding_reruns(&GATE).await // the refresh takes as long as the test wants
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(version().await, 1);
        clock.advance(Duration::from_secs(61));
        // Stale: answered with the old value while the refresh is held at the gate.
        assert_eq!(version().await, 1);
        RUNS.reached(2).await;
        assert_eq!(version().await, 1, "still stale while the refresh runs");
        assert_eq!(RUNS.get(), 2, "one refresh, however many stale reads");
        GATE.open();
        // The refresh stores its value; wait for it through the cache itself.
        let fresh = common::within("the refresh stores its value", async {
            loop {
                let v = version().await;
                if v == 2 {
                    break v;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert_eq!(fresh, 2);
        assert_eq!(RUNS.get(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_bounded_stale_window_ends_in_a_miss() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1m", swr, stale_max_age = "1m")]
    async fn bounded() -> usize {
        RUNS.hit()
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(bounded().await, 1);
        clock.advance(Duration::from_secs(121)); // 1 s past max_age + stale_max_age
        assert_eq!(bounded().await, 2, "beyond the stale window the body runs in the foreground");
    })
    .await;
}

#[tokio::test]
async fn an_unbounded_stale_window_serves_stale_after_a_year() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);
    #[cached(max_age = "1s", swr)]
    async fn forever() -> usize {
        RUNS.hit_holding_reruns(&GATE).await
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(forever().await, 1);
        clock.advance(Duration::from_secs(365 * 86_400));
        assert_eq!(forever().await, 1);
        GATE.open();
    })
    .await;
}

#[tokio::test]
async fn the_background_refresh_outlives_its_caller() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);
    #[cached(max_age = "1m", swr)]
    async fn slow(id: &str) -> String {
        let n = RUNS.hit_holding_reruns(&GATE).await;
        format!("{id}#{n}")
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        assert_eq!(slow("a").await, "a#1");
        clock.advance(Duration::from_secs(120));
        // The caller runs in its own task, gets the stale value and is gone.
        let caller = common::spawn_scoped(&rt, slow("a"));
        assert_eq!(caller.await.unwrap(), "a#1");
        RUNS.reached(2).await;
        GATE.open();
        common::until("the background refresh stores its value", async || slow("a").await == "a#2").await;
    })
    .await;
}

#[tokio::test]
async fn should_bypass_cache_reads_and_writes_nothing() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h", should_bypass_cache = |live: &bool| *live)]
    async fn price(live: bool) -> usize {
        let _ = live;
        RUNS.hit()
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        price_prime(true, 100).await; // the key of `true` holds 100 …
        assert_eq!(price(true).await, 1, "… but a bypassed call neither reads it");
        assert_eq!(price(true).await, 2, "… nor writes its own result");
        assert_eq!(price(false).await, 3);
        assert_eq!(price(false).await, 3);
    })
    .await;
}

#[tokio::test]
async fn should_invalidate_cache_drops_the_entry_and_recomputes() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h", should_invalidate_cache = |force: &bool| *force)]
    async fn report(force: bool) -> usize {
        let _ = force;
        RUNS.hit()
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(report(false).await, 1);
        assert_eq!(report(false).await, 1);
        assert_eq!(report(true).await, 2, "forced: recomputed");
        assert_eq!(report(true).await, 3);
    })
    .await;
}

mod integrity {
    use super::*;

    pub static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

    pub mod v1 {
        #[larder::cached(max_age = "1h", name = "shared")]
        pub async fn value() -> String {
            super::RUNS.hit();
            "old code".to_owned()
        }
    }

    pub mod v2 {
        #[larder::cached(max_age = "1h", name = "shared")]
        pub async fn value() -> String {
            super::RUNS.hit();
            "new code".to_owned()
        }
    }

    #[larder::cached(max_age = "1h", name = "pinned", integrity = "v1")]
    pub async fn pinned_a() -> String {
        "a".to_owned()
    }

    #[larder::cached(max_age = "1h", name = "pinned", integrity = "v1")]
    pub async fn pinned_b() -> String {
        "b".to_owned()
    }
}

#[tokio::test]
async fn an_entry_whose_integrity_differs_is_a_miss() {
    use integrity::*;
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(v1::value_key(), v2::value_key(), "same group and name: same key");
        assert_eq!(v1::value().await, "old code");
        assert_eq!(v2::value().await, "new code", "changed code never reads the old entry");
        assert_eq!(RUNS.get(), 2);
        // With a pinned `integrity`, the code may change and the entry is kept.
        assert_eq!(pinned_a().await, "a");
        assert_eq!(pinned_b().await, "a");
    })
    .await;
}

#[tokio::test]
async fn max_age_zero_never_stores() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = 0)]
    async fn never() -> usize {
        RUNS.hit()
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(never().await, 1);
        assert_eq!(never().await, 2);
        never_prime(99).await;
        assert_eq!(never().await, 3);
        assert!(rt.keys("cache", "functions:never:").is_empty());
    })
    .await;
}

#[tokio::test]
async fn errors_are_never_cached() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h")]
    async fn flaky() -> Result<usize, Upstream> {
        let n = RUNS.hit();
        if n < 3 { Err(Upstream(format!("attempt {n}"))) } else { Ok(n) }
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(flaky().await, Err(Upstream("attempt 1".into())));
        assert_eq!(flaky().await, Err(Upstream("attempt 2".into())));
        assert_eq!(flaky().await, Ok(3));
        assert_eq!(flaky().await, Ok(3));
        assert_eq!(RUNS.get(), 3);
    })
    .await;
}

#[tokio::test]
async fn question_mark_and_early_return_work_in_the_body() {
    #[cached(max_age = "1h")]
    async fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {
        if s.is_empty() {
            return Ok(0);
        }
        let n: u32 = s.parse()?;
        Ok(n + 1)
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(parse("").await, Ok(0));
        assert_eq!(parse("41").await, Ok(42));
        assert!(parse("x").await.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_non_result_value_is_cached_as_is_none_included() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h")]
    async fn lookup(id: u32) -> Option<String> {
        RUNS.hit();
        (id == 1).then(|| "one".to_owned())
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(lookup(2).await, None);
        assert_eq!(lookup(2).await, None);
        assert_eq!(RUNS.get(), 1, "`None` is a value: cached");
        assert_eq!(lookup(1).await.as_deref(), Some("one"));
    })
    .await;
}

#[tokio::test]
async fn the_default_key_is_stable_across_processes() {
    use std::collections::HashMap;

    #[derive(serde::Serialize)]
    struct Query {
        user: u64,
        filters: HashMap<String, Vec<String>>,
    }
    #[cached(max_age = "1h", group = "golden")]
    async fn search(q: &Query, page: u32) -> u32 {
        q.user as u32 + page
    }
    #[cached(max_age = "1h", group = "golden")]
    async fn nothing() -> u32 {
        0
    }
    let mut filters = HashMap::new();
    for (k, v) in [("lang", ["rust", "go"]), ("sort", ["stars", "desc"]), ("state", ["open", "all"])] {
        filters.insert(k.to_owned(), v.iter().map(|s| s.to_string()).collect());
    }
    let q = Query { user: 7, filters };
    // Golden: the canonical encoding is part of larder's contract. If this changes,
    // every cache in the field is invalidated: bump the major version.
    assert_eq!(search_key(&q, 2), "golden:search:c21dc2488dd610181d4238bb8c6b9023.json");
    assert_eq!(nothing_key(), "golden:nothing:default.json");
}

#[tokio::test]
async fn get_key_results_are_escaped_per_part() {
    #[cached(max_age = "1h", group = "github/api", get_key = |repo: &str| repo.to_owned())]
    async fn stars(repo: &str) -> u64 {
        repo.len() as u64
    }
    assert_eq!(stars_key("rust-lang/rust"), "github.api:stars:rust-lang:rust.json");
    let hostile = stars_key("../../etc/passwd");
    assert!(hostile.starts_with("github.api:stars:"));
    assert!(!hostile.contains("..") && !hostile.contains('/'), "{hostile}");
    assert_eq!(hostile, format!("github.api:stars:{}.json", larder::escape_key("../../etc/passwd")));
}

/// A `Result` under another name.
type Fallible<T> = Result<T, String>;

#[tokio::test]
async fn result_true_treats_an_alias_as_a_result_so_errors_are_not_cached() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h", result = true)]
    async fn lookup(id: u64) -> Fallible<u64> {
        if RUNS.hit() == 1 { Err("down".to_owned()) } else { Ok(id * 10) }
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(lookup(1).await, Err("down".to_owned()));
        assert_eq!(lookup(1).await, Ok(10), "the error was not cached: the body ran again");
        assert_eq!(lookup(1).await, Ok(10));
        assert_eq!(RUNS.get(), 2, "the Ok value was cached");
    })
    .await;
}

#[tokio::test]
async fn result_false_caches_a_result_as_a_plain_value() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h", result = false)]
    async fn probe(id: u64) -> Result<u64, String> {
        RUNS.hit();
        Err(format!("{id} is down"))
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(probe(1).await, Err("1 is down".to_owned()));
        assert_eq!(probe(1).await, Err("1 is down".to_owned()));
        assert_eq!(RUNS.get(), 1, "the error was cached as a value");
    })
    .await;
}

#[tokio::test]
async fn a_body_tags_its_entry_from_its_result() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h")]
    async fn cart(id: u64) -> Vec<u64> {
        RUNS.hit();
        let products = vec![id * 10, id * 10 + 1];
        for p in &products {
            assert!(larder::this_entry::tag(format!("product:{p}")), "inside a running body");
        }
        products
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(cart(1).await, vec![10, 11]);
        assert_eq!(cart(2).await, vec![20, 21]);
        assert_eq!(cart(1).await, vec![10, 11]);
        assert_eq!(RUNS.get(), 2);
        larder::invalidate_tag("product:11").await;
        cart(1).await;
        assert_eq!(RUNS.get(), 3, "the cart holding product 11 was invalidated by its tag");
        cart(2).await;
        assert_eq!(RUNS.get(), 3, "the other cart was not");
    })
    .await;
    assert!(!larder::this_entry::tag("x"), "outside a body it does nothing, and says so");
}

#[tokio::test]
async fn a_body_shortens_its_entrys_life_or_keeps_it_out_of_the_cache() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h")]
    async fn search(q: String) -> Vec<String> {
        RUNS.hit();
        match q.as_str() {
            "partial" => {
                larder::this_entry::max_age(Duration::from_secs(10));
            }
            "volatile" => {
                larder::this_entry::skip();
            }
            _ => {}
        }
        vec![q]
    }
    let (rt, clock) = runtime();
    rt.scope(async {
        search("full".into()).await;
        search("partial".into()).await;
        search("volatile".into()).await;
        assert_eq!(RUNS.get(), 3);
        search("volatile".into()).await;
        assert_eq!(RUNS.get(), 4, "a skipped value is not stored");
        clock.advance(Duration::from_secs(11));
        search("full".into()).await;
        assert_eq!(RUNS.get(), 4, "the function's max_age still holds for the others");
        search("partial".into()).await;
        assert_eq!(RUNS.get(), 5, "the body's shorter max_age was kept");
    })
    .await;
}

#[tokio::test]
async fn a_get_or_set_factory_decides_too() {
    let (rt, _clock) = runtime();
    let cache = rt.cache("cache");
    let opts = larder::Options::new().max_age(Duration::from_secs(3600));
    let runs = Runs::new();
    for _ in 0..2 {
        let r = runs.clone();
        let v = cache
            .get_or_set("k", &opts, move || async move {
                r.hit();
                larder::this_entry::tag("from-factory");
                Ok::<_, larder::Error>(1u64)
            })
            .await
            .unwrap();
        assert_eq!(v, 1);
    }
    assert_eq!(runs.get(), 1);
    rt.scope(larder::invalidate_tag("from-factory")).await;
    assert!(cache.get::<u64>("k").await.is_none(), "the factory's tag reached the entry");
}
