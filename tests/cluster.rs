//! The tiers with a real `redis-server`: several instances (runtimes) sharing one Redis as
//! L2, kept honest by the bus, and the failure policy when Redis dies mid-test.
#![cfg(feature = "redis")]

mod common;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{Runs, dropped_from_memory, within};
use larder::{Options, Runtime, cached};

/// One instance: memory in front of the shared Redis, and the bus.
async fn instance(server: &RedisServer) -> Runtime {
    common::redis_instance(server, Duration::from_millis(500)).await
}

static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1h", group = "cluster")]
async fn profile(id: u64) -> Result<String, String> {
    let n = RUNS.hit();
    Ok(format!("profile {id} run {n}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_on_one_instance_is_a_miss_on_the_other() {
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let v1 = a.scope(profile(1)).await.unwrap();
    assert_eq!(b.scope(profile(1)).await.unwrap(), v1, "B: an L2 hit");
    // A announces its write on the bus; when that reaches B after B's read, B drops the
    // copy it just took (a newer value may exist). B reads again until its copy stays: the
    // announcement is applied once, so a read after it keeps its copy.
    within("B keeps a copy in memory", async {
        while b.keys("cache", &profile_key(1)).len() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(b.scope(profile(1)).await.unwrap(), v1, "B: an L2 hit, never a run");
        }
    })
    .await;
    // The key in Redis is the storage key under the store's prefix.
    assert_eq!(server.command(&format!("EXISTS larder:{}", profile_key(1))).unwrap().trim(), ":1");

    a.scope(profile_invalidate(1)).await;
    dropped_from_memory("the bus message arrives", &b, "cache", &profile_key(1)).await;
    let v2 = b.scope(profile(1)).await.unwrap();
    assert_ne!(v2, v1, "B recomputed after A's invalidation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_value_stored_by_one_instance_replaces_the_others_memory_copy() {
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let opts = Options::new().max_age(Duration::from_secs(3600));
    a.cache("cache").set("config", "v1".to_owned(), &opts).await;
    assert_eq!(b.cache("cache").get::<String>("config").await.as_deref(), Some("v1"));
    a.cache("cache").set("config", "v2".to_owned(), &opts).await;
    dropped_from_memory("the bus message arrives", &b, "cache", "config.json").await;
    assert_eq!(b.cache("cache").get::<String>("config").await.as_deref(), Some("v2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidated_on_one_instance_is_honoured_by_the_other() {
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let opts = Options::new().max_age(Duration::from_secs(3600)).tag("team:7");
    let runs = Runs::new();
    let load = |rt: &Runtime, runs: &Runs| {
        let (cache, runs) = (rt.cache("cache"), runs.clone());
        let opts = opts.clone();
        async move {
            cache.get_or_set("members", &opts, move || async move { Ok::<_, larder::Error>(runs.hit()) }).await.unwrap()
        }
    };
    assert_eq!(load(&a, &runs).await, 1);
    assert_eq!(load(&b, &runs).await, 1, "B: from L2");
    a.scope(larder::invalidate_tag("team:7")).await;
    // B's memory copy is still there, but the tag event reached B's tag table.
    within("B honours the tag", async {
        loop {
            if b.cache("cache").get::<usize>("members").await.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(load(&b, &runs).await, 2, "B recomputes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_dies_every_call_still_answers_quickly_and_it_all_resumes_after_a_restart() {
    static DOWN_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
    #[cached(max_age = "1h", group = "outage")]
    async fn double(n: u64) -> u64 {
        DOWN_RUNS.hit();
        n * 2
    }
    let mut server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    assert_eq!(a.scope(double(1)).await, 2);

    server.stop();
    let mut slowest = Duration::ZERO;
    for n in 0..40 {
        let started = Instant::now();
        assert_eq!(a.scope(double(n)).await, n * 2, "every call answers");
        slowest = slowest.max(started.elapsed());
    }
    // Bounded by the store's timeouts (300 ms + 300 ms), and the breaker skips Redis after
    // a few failures, so most calls don't wait at all.
    assert!(slowest < Duration::from_secs(2), "a call waited {slowest:?} on a dead Redis");
    let health = a.tier_health("cache");
    assert!(health.breaker_open && health.skipped > 0, "{health:?}");

    server.restart();
    // After the cool-down, L2 is probed and used again; the bus resubscribes.
    within("L2 is used again", async {
        loop {
            a.scope(double_invalidate(1000)).await;
            a.scope(double(1000)).await;
            if server.command(&format!("EXISTS larder:{}", double_key(1000))).unwrap().trim() == ":1" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // The bus works again: an invalidation on A reaches B.
    b.scope(double(1000)).await;
    within("the bus works again", async {
        loop {
            a.scope(double_invalidate(1000)).await;
            if b.keys("cache", &double_key(1000)).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_under_our_key_in_redis_is_a_miss() {
    let server = RedisServer::start();
    let a = instance(&server).await;
    let key = profile_key(99);
    server.command(&format!("SET larder:{key} not-json")).unwrap();
    let v = a.scope(profile(99)).await;
    assert!(v.unwrap().starts_with("profile 99"), "a corrupt value is a miss, not an error");
    server.command(&format!("DEL larder:{key}")).unwrap();
    server.command(&format!("HSET larder:{key} f v")).unwrap();
    a.scope(profile_invalidate(99)).await;
    assert!(a.scope(profile(99)).await.is_ok(), "a value of another Redis type is a miss too");
}
