//! Invalidation that sticks across instances, with a real `redis-server` as L2 and bus, and
//! faults injected by the test (SIGKILL and restart from the append-only file, SIGSTOP):
//! runs in flight elsewhere write nothing back, tag stamps only move forward, `expire` keeps
//! the TTL, the breaker is back within its cool-down plus a second, invalidations made during
//! an outage are applied when Redis returns and nothing they cover is served after.
#![cfg(feature = "redis")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{Gate, Runs, dropped_from_memory, within};
use larder::{RedisStore, Runtime, Store, cached};

const COOLDOWN: Duration = Duration::from_millis(1000);

/// One instance: memory in front of the shared Redis, and the bus.
async fn instance(server: &RedisServer) -> Runtime {
    common::redis_instance(server, COOLDOWN).await
}

static DATA: AtomicU64 = AtomicU64::new(1);
static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
static BODY_GATE: LazyLock<Mutex<Option<Gate>>> = LazyLock::new(|| Mutex::new(None));

#[cached(max_age = "1h", group = "coh", base = "cache", tags = ["stock"], get_key = |id: &u64| *id)]
async fn stock(id: u64) -> Result<String, String> {
    let seen = DATA.load(Ordering::SeqCst);
    // The gate is taken before the run is counted: a test that waits for the count then
    // calls another body must not have that one take the gate meant for this one.
    let gate = BODY_GATE.lock().unwrap().take();
    RUNS.hit();
    if let Some(gate) = gate {
        gate.wait().await;
    }
    Ok(format!("stock {id} data {seen}"))
}

fn key(id: u64) -> String {
    format!("coh:stock:{id}.json")
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_flight_on_another_instance_when_the_delete_arrives_writes_nothing_back() {
    let _serial = SERIAL.lock().await;
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let id = 1;
    // B starts a run that reads the old data and is held.
    let gate = Gate::new();
    *BODY_GATE.lock().unwrap() = Some(gate.clone());
    let runs = RUNS.get();
    let in_flight = common::spawn_scoped(&b, async move { stock(id).await.unwrap() });
    within("B's body starts", RUNS.reached(runs + 1)).await;
    // The data changes; A invalidates; B hears it (a marker B holds is dropped after it).
    DATA.fetch_add(1, Ordering::SeqCst);
    b.scope(stock(1000)).await.unwrap();
    a.scope(stock_invalidate(id)).await;
    a.scope(stock_invalidate(1000)).await;
    dropped_from_memory("B hears the invalidations", &b, "cache", &key(1000)).await;
    gate.open();
    let old = within("B's run answers", in_flight).await.unwrap();

    assert_ne!(b.scope(stock(id)).await.unwrap(), old, "B stored its cancelled run's value");
    assert_ne!(a.scope(stock(id)).await.unwrap(), old, "B wrote its cancelled run's value to Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tag_invalidations_and_expiries_never_lose_the_invalidation() {
    let _serial = SERIAL.lock().await;
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    for round in 0..50 {
        let id = 100 + round;
        let old = a.scope(stock(id)).await.unwrap();
        DATA.fetch_add(1, Ordering::SeqCst);
        let inv = common::spawn_scoped(&a, larder::invalidate_tag("stock"));
        let exp = common::spawn_scoped(&b, larder::expire_tag("stock"));
        inv.await.unwrap();
        exp.await.unwrap();
        // A third instance reads Redis cold: the invalidation must be there.
        let c = instance(&server).await;
        assert_ne!(c.scope(stock(id)).await.unwrap(), old, "round {round}: the invalidation was lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamps_raised_concurrently_keep_the_largest() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let store = store.clone();
        // A scrambled order of stamps 1..=200.
        let stamp = (i * 37) % 200 + 1;
        tasks.push(tokio::spawn(async move { store.raise("s.json", stamp, None).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.command("GET larder:s.json").unwrap(), "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_keeps_the_entrys_remaining_ttl_in_redis() {
    let _serial = SERIAL.lock().await;
    let server = RedisServer::start();
    let a = instance(&server).await;
    let id = 2;
    a.scope(stock(id)).await.unwrap();
    let pttl =
        |s: &RedisServer| -> i64 { s.command(&format!("PTTL larder:{}", key(id))).unwrap()[1..].parse().unwrap() };
    let before = pttl(&server);
    assert!(before > 3_500_000, "stored for max_age: {before}");
    a.scope(stock_expire(id)).await;
    let after = pttl(&server);
    assert!(after > 0 && after <= before, "PTTL after expire: {after} (before: {before})");
    let entry: serde_json::Value =
        serde_json::from_str(&server.command(&format!("GET larder:{}", key(id))).unwrap()).unwrap();
    assert_eq!(entry["expires"], entry["mtime"], "marked stale in Redis: {entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_returns_l2_is_used_again_within_the_cooldown_plus_a_second() {
    let _serial = SERIAL.lock().await;
    let mut server = RedisServer::start_persistent();
    let a = instance(&server).await;
    a.scope(stock(3)).await.unwrap();
    server.stop();
    within("the breaker opens", async {
        let mut n = 0;
        while !a.tier_health("cache").breaker_open {
            n += 1;
            a.scope(stock(10_000 + n)).await.unwrap();
        }
    })
    .await;
    server.restart();
    let back = Instant::now();
    within("the breaker closes", async {
        while a.tier_health("cache").breaker_open {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let took = back.elapsed();
    assert!(took <= COOLDOWN + Duration::from_secs(1), "L2 was back after {took:?} (cool-down {COOLDOWN:?})");
    // And it is really used: a cold instance finds what this one writes now.
    a.scope(stock(4)).await.unwrap();
    assert!(server.command(&format!("EXISTS larder:{}", key(4))).unwrap() == ":1");
}

/// Waits until `rt` has applied and told everything it invalidated.
async fn settled(rt: &Runtime) {
    within("every invalidation reaches Redis and the bus", async {
        while rt.unsettled_invalidations() > 0 || rt.tier_health("cache").breaker_open {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_crash_is_applied_when_redis_returns_and_never_served_after() {
    let _serial = SERIAL.lock().await;
    let mut server = RedisServer::start_persistent();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let id = 5;
    let old = a.scope(stock(id)).await.unwrap();
    assert_eq!(b.scope(stock(id)).await.unwrap(), old, "B holds a copy");

    server.stop();
    DATA.fetch_add(1, Ordering::SeqCst);
    a.scope(stock_invalidate(id)).await;
    assert!(a.unsettled_invalidations() > 0, "the failed invalidation is kept");
    // A never answers the old value, whatever L2 says (L2 reads it covers are refused).
    for _ in 0..5 {
        assert_ne!(a.scope(stock(id)).await.unwrap(), old, "A served what it invalidated, during the outage");
    }

    server.restart();
    settled(&a).await;
    // After recovery: Redis has the stamp, B heard the delete (sent again), a cold instance
    // reads the stamp. None of them answers the old value.
    within("B drops its copy", async {
        while b.keys("cache", &key(id)).iter().any(|_| true) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_ne!(b.scope(stock(id)).await.unwrap(), old, "B served the invalidated value after recovery");
    let c = instance(&server).await;
    assert_ne!(c.scope(stock(id)).await.unwrap(), old, "a cold instance served it after recovery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_hang_is_applied_when_redis_answers_again() {
    let _serial = SERIAL.lock().await;
    let server = RedisServer::start();
    let (a, b) = (instance(&server).await, instance(&server).await);
    let id = 6;
    let old = a.scope(stock(id)).await.unwrap();
    server.freeze();
    DATA.fetch_add(1, Ordering::SeqCst);
    let started = Instant::now();
    a.scope(stock_invalidate(id)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "a hung Redis holds an invalidation {:?}", started.elapsed());
    assert_ne!(a.scope(stock(id)).await.unwrap(), old);
    server.thaw();
    settled(&a).await;
    // The entry is still in Redis (it was never deleted while the server hung) but its
    // stamp refuses it now.
    let c = instance(&server).await;
    assert_ne!(c.scope(stock(id)).await.unwrap(), old, "the old entry was read back after the hang");
    within("B hears it", async {
        while b.scope(stock(id)).await.unwrap() == old {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_reconnects_drops_its_memory_tier() {
    let _serial = SERIAL.lock().await;
    let mut server = RedisServer::start();
    let b = instance(&server).await;
    let id = 7;
    b.scope(stock(id)).await.unwrap();
    assert!(!b.keys("cache", &key(id)).is_empty());
    // Redis comes back empty: whatever was said meanwhile is lost; B must not trust memory.
    server.stop();
    server.restart();
    dropped_from_memory("B drops its memory after reconnecting", &b, "cache", "").await;
    let runs = RUNS.get();
    b.scope(stock(id)).await.unwrap();
    assert_eq!(RUNS.get(), runs + 1, "the call after the reconnect ran the body");
}
