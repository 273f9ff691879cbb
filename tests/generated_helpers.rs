//! The generated helpers, for free functions and for methods.

mod common;

use std::sync::LazyLock;
use std::time::Duration;

use common::{Gate, Runs, runtime};
use larder::cached;

static FREE_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Profile {
    id: u64,
    name: String,
    run: usize,
}

#[cached(max_age = "1m", swr, group = "users")]
async fn profile(id: u64, locale: &str) -> Result<Profile, String> {
    let run = FREE_RUNS.hit();
    Ok(Profile { id, name: format!("user {id} ({locale})"), run })
}

#[tokio::test]
async fn free_function_helpers() {
    let (rt, clock) = runtime();
    rt.scope(async {
        let key = profile_key(7, "en");
        assert!(key.starts_with("users:profile:") && key.ends_with(".json"), "{key}");
        assert_ne!(key, profile_key(7, "fr"));

        assert_eq!(profile(7, "en").await.unwrap().run, 1);
        assert_eq!(rt.keys("cache", "users:profile:"), vec![key.clone()]);

        // expire: no longer fresh, but served stale under swr (and refreshed).
        profile_expire(7, "en").await;
        assert_eq!(profile(7, "en").await.unwrap().run, 1, "stale answer");
        FREE_RUNS.reached(2).await;

        // invalidate: gone from the cache.
        // wait until the refresh has landed, then invalidate it
        common::until("the refresh lands", async || profile(7, "en").await.unwrap().run == 2).await;
        profile_invalidate(7, "en").await;
        assert!(rt.keys("cache", "users:profile:").is_empty());
        assert_eq!(profile(7, "en").await.unwrap().run, 3);

        // prime: stored as if produced now.
        let primed = Profile { id: 8, name: "primed".into(), run: 0 };
        profile_prime(8, "en", primed.clone()).await;
        assert_eq!(profile(8, "en").await.unwrap(), primed);
        clock.advance(Duration::from_secs(30));
        assert_eq!(profile(8, "en").await.unwrap(), primed, "still fresh 30 s later");

        // uncached: the body, every time, nothing stored.
        let before = FREE_RUNS.get();
        assert_eq!(profile_uncached(8, "en").await.unwrap().run, before + 1);
        assert_eq!(profile(8, "en").await.unwrap(), primed);

        // clear: every entry of the function.
        profile(9, "en").await.unwrap();
        assert_eq!(rt.keys("cache", "users:profile:").len(), 3);
        profile_clear().await;
        assert!(rt.keys("cache", "users:profile:").is_empty());
    })
    .await;
}

#[derive(Clone)]
struct Repo {
    owner: String,
    runs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Stars(u64);

impl Repo {
    #[cached(max_age = "1h", swr, group = "github", get_key = |name: &str, page: &u32| format!("{name}/{page}"))]
    async fn stars(&self, name: &str, page: u32) -> Result<Stars, std::io::Error> {
        let _ = name;
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) as u64 + 1;
        Ok(Stars(self.owner.len() as u64 * 1000 + page as u64 * 10 + n))
    }
}

#[tokio::test]
async fn method_helpers_with_self_by_value_and_reference_arguments() {
    let (rt, clock) = runtime();
    let repo = Repo { owner: "rust-lang".into(), runs: Default::default() };
    rt.scope(async {
        assert_eq!(repo.stars_key("rust", 2), "github:stars:rust:2.json");
        assert_eq!(repo.stars("rust", 2).await.unwrap(), Stars(9021));
        assert_eq!(repo.stars("rust", 2).await.unwrap(), Stars(9021));

        repo.stars_invalidate("rust", 2).await;
        assert_eq!(repo.stars("rust", 2).await.unwrap(), Stars(9022));

        repo.stars_prime("rust", 2, Stars(1)).await;
        assert_eq!(repo.stars("rust", 2).await.unwrap(), Stars(1));

        assert_eq!(repo.stars_uncached("rust", 2).await.unwrap(), Stars(9023));

        // A stale method call refreshes in the background with a clone of `self`.
        clock.advance(Duration::from_secs(7200));
        assert_eq!(repo.stars("rust", 2).await.unwrap(), Stars(1));
        common::until("the background refresh of the method lands", async || {
            repo.stars("rust", 2).await.unwrap() == Stars(9024)
        })
        .await;

        Repo::stars_clear().await;
        assert!(rt.keys("cache", "github:stars:").is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_invalidation_wins_over_a_run_in_flight() {
    static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    static GATE: LazyLock<Gate> = LazyLock::new(Gate::new);
    #[cached(max_age = "1h")]
    async fn balance(account: &str) -> String {
        let n = RUNS.hit();
        if n == 1 {
            GATE.wait().await;
        }
        format!("{account}: run {n}")
    }
    let (rt, _clock) = runtime();
    let first = common::spawn_scoped(&rt, balance("acme"));
    rt.scope(async {
        RUNS.reached(1).await;
        // The run is in flight; the balance changes upstream and we invalidate.
        balance_invalidate("acme").await;
        GATE.open();
        assert_eq!(first.await.unwrap(), "acme: run 1", "the caller still gets its answer");
        // … but the late result of the old run was not written back.
        assert_eq!(balance("acme").await, "acme: run 2");
        assert_eq!(balance("acme").await, "acme: run 2");
    })
    .await;
}

#[tokio::test]
async fn clear_group_and_clear_reach_every_function() {
    #[cached(max_age = "1h", group = "reports/daily")]
    async fn daily(n: u32) -> u32 {
        n
    }
    #[cached(max_age = "1h", group = "reports")]
    async fn weekly(n: u32) -> u32 {
        n
    }
    #[cached(max_age = "1h", group = "other", base = "elsewhere")]
    async fn other(n: u32) -> u32 {
        n
    }
    let (rt, _clock) = runtime();
    rt.scope(async {
        daily(1).await;
        weekly(1).await;
        other(1).await;
        assert_eq!(rt.keys("cache", "").len(), 2);
        assert_eq!(rt.keys("elsewhere", "").len(), 1);
        assert_eq!(larder::clear_group("reports/daily").await, 1);
        assert_eq!(rt.keys("cache", ""), vec![weekly_key(1)]);
        assert_eq!(larder::clear().await, 2);
        assert!(rt.keys("cache", "").is_empty() && rt.keys("elsewhere", "").is_empty());
    })
    .await;
}
