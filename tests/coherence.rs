//! Invalidation that sticks, on one instance with an L2: whatever was in flight when an
//! invalidation returned (an L2 read, a body's run, its L2 write), no caller gets the
//! invalidated value afterwards, and no instance reads it back from L2. The L2 here is a
//! memory store whose reads and writes of one key the test can hold at a gate, so each race
//! is played in the order that used to lose it. The same rules with a real Redis, several
//! instances and faults are in `coherence_redis.rs`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use common::{Gate, Runs, within};
use larder::{Clock, ManualClock, MemoryStore, Mount, Runtime, Store, StoreFuture, cached};
use tokio::task::JoinHandle;

/// A memory store where the test can hold the next read or write of one key.
#[derive(Clone, Default)]
struct GatedStore {
    inner: MemoryStore,
    holds: Arc<Mutex<Vec<Hold>>>,
}

struct Hold {
    key: String,
    write: bool,
    gate: Gate,
    reached: Runs,
}

impl GatedStore {
    /// Holds the next read (`write == false`) or write of `key` until the returned gate
    /// opens; the counter says when it was reached.
    fn hold(&self, key: &str, write: bool) -> (Gate, Runs) {
        let (gate, reached) = (Gate::new(), Runs::new());
        self.holds.lock().unwrap().push(Hold {
            key: key.to_owned(),
            write,
            gate: gate.clone(),
            reached: reached.clone(),
        });
        (gate, reached)
    }

    async fn pass(&self, key: &str, write: bool) {
        let hold = {
            let mut holds = self.holds.lock().unwrap();
            let i = holds.iter().position(|h| h.key == key && h.write == write);
            i.map(|i| holds.remove(i))
        };
        if let Some(h) = hold {
            h.reached.hit();
            h.gate.wait().await;
        }
    }
}

impl Store for GatedStore {
    fn name(&self) -> &str {
        "gated"
    }
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            self.pass(key, false).await;
            self.inner.get(key).await
        })
    }
    fn get_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            if let Some(first) = keys.first() {
                self.pass(first, false).await;
            }
            self.inner.get_many(keys).await
        })
    }
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.pass(key, true).await;
            self.inner.set(key, value, ttl).await
        })
    }
    common::store::pass_through_store!(inner);
}

/// An instance over `store`, with its own memory, on `clock`.
fn instance(store: &GatedStore, clock: &ManualClock) -> Runtime {
    Runtime::builder().clock(Clock::Manual(clock.clone())).mount("cache", Mount::memory(1000).l2(store.clone())).build()
}

/// What the source of truth says now: bumped by each test before it invalidates.
static DATA: AtomicU64 = AtomicU64::new(1);
static RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
/// Bodies wait here when a test closed it (none by default).
static BODY_GATE: LazyLock<Mutex<Option<Gate>>> = LazyLock::new(|| Mutex::new(None));

/// The value a body reads at its start: what the data was when the run began.
#[cached(max_age = "1h", group = "coherence", base = "cache", tags = ["prices"], get_key = |id: &u64| *id)]
async fn price(id: u64) -> Result<String, String> {
    let seen = DATA.load(Ordering::SeqCst);
    // The gate is taken before the run is counted: a test that waits for the count then
    // calls another body must not have that one take the gate meant for this one.
    let gate = BODY_GATE.lock().unwrap().take();
    RUNS.hit();
    if let Some(gate) = gate {
        gate.wait().await;
    }
    Ok(format!("price {id} data {seen}"))
}

fn key(id: u64) -> String {
    format!("coherence:price:{id}.json")
}

/// Calls `price(id)` on `rt` in a task of its own.
fn spawn_price(rt: &Runtime, id: u64) -> JoinHandle<String> {
    common::spawn_scoped(rt, async move { price(id).await.unwrap() })
}

/// Spawns `price(id)` on `rt` and waits until it reaches its held L2 read or write; the gate and the task.
async fn held_at_l2(store: &GatedStore, rt: &Runtime, id: u64, write: bool) -> (Gate, JoinHandle<String>) {
    let (gate, reached) = store.hold(&key(id), write);
    let call = spawn_price(rt, id);
    within(if write { "the L2 write starts" } else { "the L2 read starts" }, reached.reached(1)).await;
    (gate, call)
}

/// One test at a time: they share the body's data and gate.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l2_read_that_began_before_invalidate_does_not_bring_the_old_value_back() {
    let _serial = SERIAL.lock().await;
    let (store, clock) = (GatedStore::default(), ManualClock::new());
    let (writer, reader) = (instance(&store, &clock), instance(&store, &clock));
    let id = 1;
    let old = writer.scope(price(id)).await.unwrap();

    // The reader's L2 read (cold memory) is held after it started...
    let (gate, in_flight) = held_at_l2(&store, &reader, id, false).await;
    // ...the data changes and the reader invalidates, while the read is in flight.
    DATA.fetch_add(1, Ordering::SeqCst);
    reader.scope(price_invalidate(id)).await;
    gate.open();

    let answered = within("the call in flight answers", in_flight).await.unwrap();
    assert_ne!(answered, old, "the read that began before the invalidation answered the invalidated value");
    for _ in 0..3 {
        assert_ne!(reader.scope(price(id)).await.unwrap(), old, "the old value came back into memory");
    }
    assert_ne!(instance(&store, &clock).scope(price(id)).await.unwrap(), old, "a cold instance read the old value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_l2_write_lands_after_invalidate_is_refused_everywhere() {
    let _serial = SERIAL.lock().await;
    let (store, clock) = (GatedStore::default(), ManualClock::new());
    let a = instance(&store, &clock);
    let id = 2;

    // The run produces the old value, stores it in memory, then its L2 write is held.
    let (gate, run) = held_at_l2(&store, &a, id, true).await;
    DATA.fetch_add(1, Ordering::SeqCst);
    a.scope(price_invalidate(id)).await;
    // The old write lands in L2 after the invalidation returned.
    gate.open();
    let old = within("the run answers", run).await.unwrap();
    within("the write lands", async {
        while store.inner.get(&key(id)).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;

    let runs = RUNS.get();
    assert_ne!(a.scope(price(id)).await.unwrap(), old, "the instance that invalidated served the old value");
    assert_eq!(RUNS.get(), runs + 1, "the old entry was refused, the body ran");
    let cold = instance(&store, &clock);
    let fresh = cold.scope(price(id)).await.unwrap();
    assert_ne!(fresh, old, "another instance read the resurrected entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_running_when_its_key_is_invalidated_stores_nothing() {
    let _serial = SERIAL.lock().await;
    let (store, clock) = (GatedStore::default(), ManualClock::new());
    let a = instance(&store, &clock);
    let id = 3;
    let gate = Gate::new();
    *BODY_GATE.lock().unwrap() = Some(gate.clone());
    let runs = RUNS.get();
    let run = spawn_price(&a, id);
    within("the body starts", RUNS.reached(runs + 1)).await;
    DATA.fetch_add(1, Ordering::SeqCst);
    a.scope(price_invalidate(id)).await;
    gate.open();
    let old = within("the run answers", run).await.unwrap();

    assert_ne!(a.scope(price(id)).await.unwrap(), old, "the cancelled run's value was stored in memory");
    let in_l2 = store.inner.get(&key(id)).await.unwrap().map(|b| String::from_utf8(b).unwrap());
    assert!(!in_l2.is_some_and(|e| e.contains(&old)), "the cancelled run's value was written to L2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_flight_when_its_tag_is_invalidated_is_refused_in_memory_and_in_l2() {
    let _serial = SERIAL.lock().await;
    let (store, clock) = (GatedStore::default(), ManualClock::new());
    let a = instance(&store, &clock);
    let id = 4;
    let (gate, run) = held_at_l2(&store, &a, id, true).await;
    DATA.fetch_add(1, Ordering::SeqCst);
    a.scope(larder::invalidate_tag("prices")).await;
    gate.open();
    let old = within("the run answers", run).await.unwrap();
    assert_ne!(a.scope(price(id)).await.unwrap(), old);
    assert_ne!(instance(&store, &clock).scope(price(id)).await.unwrap(), old, "the tag stamp refuses the late write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_and_delete_many_fence_reads_in_flight_too() {
    let _serial = SERIAL.lock().await;
    let (store, clock) = (GatedStore::default(), ManualClock::new());
    let (writer, reader) = (instance(&store, &clock), instance(&store, &clock));
    for (id, how) in [(5, "clear_group"), (6, "clear"), (7, "price_clear")] {
        let old = writer.scope(price(id)).await.unwrap();
        let (gate, in_flight) = held_at_l2(&store, &reader, id, false).await;
        DATA.fetch_add(1, Ordering::SeqCst);
        match how {
            "clear_group" => drop(reader.scope(larder::clear_group("coherence")).await),
            "clear" => drop(reader.scope(larder::clear()).await),
            _ => reader.scope(price_clear()).await,
        }
        gate.open();
        assert_ne!(within("the call answers", in_flight).await.unwrap(), old, "{how}: the read in flight answered it");
        assert_ne!(reader.scope(price(id)).await.unwrap(), old, "{how}: the old value came back");
    }
}

static FS_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached(max_age = "1h", group = "coherence", base = "disk", get_key = |id: &u64| *id)]
async fn on_disk(id: u64) -> Result<String, String> {
    let seen = DATA.load(Ordering::SeqCst);
    FS_RUNS.hit();
    Ok(format!("on disk {id} data {seen}"))
}

#[cfg(feature = "fs")]
fn fs_instance(dir: &std::path::Path) -> Runtime {
    let store = larder::FsStore::new(dir).expect("an fs store");
    Runtime::builder().mount("disk", Mount::memory(1000).l2(store).breaker_cooldown(Duration::from_millis(300))).build()
}

#[cfg(feature = "fs")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_made_while_the_directory_is_read_only_are_applied_when_it_is_writable_again() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let switch = common::fs::ReadOnlySwitch::new(dir.path());
    let a = fs_instance(dir.path());
    let ids: Vec<u64> = (1..=50).collect();
    let mut old = Vec::new();
    for &id in &ids {
        old.push(a.scope(on_disk(id)).await.unwrap());
    }

    switch.read_only();
    DATA.fetch_add(1, Ordering::SeqCst);
    for &id in &ids {
        a.scope(on_disk_invalidate(id)).await;
    }
    assert!(a.unsettled_invalidations() > 0, "the failed invalidations are kept");
    for (&id, old) in ids.iter().zip(&old) {
        assert_ne!(&a.scope(on_disk(id)).await.unwrap(), old, "{id}: served during the read-only phase");
    }
    // Another instance that opens the directory now may read the old files (nothing could
    // be written); once the directory is writable again, nobody may.
    switch.writable();
    within("the invalidations are applied", async {
        while a.unsettled_invalidations() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let cold = fs_instance(dir.path());
    for (&id, old) in ids.iter().zip(&old) {
        assert_ne!(&a.scope(on_disk(id)).await.unwrap(), old, "{id}: served by the instance after recovery");
        assert_ne!(&cold.scope(on_disk(id)).await.unwrap(), old, "{id}: read back from disk after recovery");
    }
}
