//! The memory tier's bounds as a user sees them: a mount bounded by bytes holds no more
//! than its bytes whatever the count, a mount bounded by entries no more than its entries,
//! a scan of keys read once does not push out the keys that are read again, and reads on
//! several threads, with no lock, each get their own key's value while others evict.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;

use larder::{Mount, Runtime, cached};

/// Body runs per argument.
static RUNS: Mutex<Option<HashMap<u64, usize>>> = Mutex::new(None);

fn ran(x: u64) {
    *RUNS.lock().unwrap().get_or_insert_with(HashMap::new).entry(x).or_default() += 1;
}

fn runs_of(x: u64) -> usize {
    RUNS.lock().unwrap().as_ref().and_then(|r| r.get(&x).copied()).unwrap_or(0)
}

#[cached(max_age = "1h", base = "bytes")]
async fn page(x: u64) -> String {
    ran(1_000_000 + x);
    format!("{x:>16384}")
}

#[cached(max_age = "1h", base = "entries")]
async fn small(x: u64) -> u64 {
    ran(x);
    x * 2
}

#[tokio::test]
async fn a_mount_bounded_by_bytes_holds_no_more_than_its_bytes() {
    let rt = Runtime::builder().mount("bytes", Mount::memory_bytes(1 << 20)).build();
    rt.scope(async {
        for x in 0..400 {
            assert_eq!(page(x).await.len(), 16384);
        }
    })
    .await;
    let (weight, len) = (rt.memory_weight("bytes"), rt.memory_len("bytes"));
    assert!(weight <= 1 << 20, "a 1 MiB tier holds {weight} bytes");
    // Each entry weighs a little over 16 KiB (its JSON, its key, its slot).
    assert!((40..=64).contains(&len), "a 1 MiB tier of 16 KiB values holds {len} entries");
    // What it holds are hits: the last value read is one of them.
    rt.scope(async { assert_eq!(page(399).await.len(), 16384) }).await;
    assert_eq!(runs_of(1_000_399), 1, "the newest entry was kept");
}

#[tokio::test]
async fn a_mount_bounded_by_entries_holds_no_more_than_its_entries() {
    let rt = Runtime::builder().mount("entries", Mount::memory(50)).build();
    rt.scope(async {
        for x in 10_000..10_500 {
            assert_eq!(small(x).await, x * 2);
            assert!(larder::Runtime::current().memory_len("entries") <= 50);
        }
    })
    .await;
    assert_eq!(rt.memory_len("entries"), 50, "a full tier stays full");
}

#[tokio::test]
async fn a_scan_does_not_push_out_the_keys_read_again() {
    let rt = Runtime::builder().mount("entries", Mount::memory(1_000)).build();
    rt.scope(async {
        let hot: Vec<u64> = (0..100).collect();
        for &h in &hot {
            small(h).await;
        }
        // A scan of 20 times the capacity, read once each, with the hot keys read between.
        for i in 0..20_000u64 {
            small(100_000 + i).await;
            if i % 20 == 0 {
                for &h in &hot {
                    assert_eq!(small(h).await, h * 2);
                }
            }
        }
        let rerun = hot.iter().filter(|&&h| runs_of(h) > 1).count();
        assert!(rerun <= 5, "{rerun} of 100 hot keys were evicted by a scan and ran again");
    })
    .await;
}

/// 400 distinct 1 MiB responses (400 MiB) through the HTTP layer's default mount: it holds
/// no more than its 256 MiB, and what it holds are hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_layer_is_bounded_by_bytes_by_default() {
    use axum::Router;
    use common::http::{counted, layer, serve};

    let (rt, _clock) = common::runtime();
    let runs = common::Runs::default();
    let app = Router::new().route("/blob/{n}", counted(&runs, |_| vec![b'x'; 1 << 20])).layer(layer(&rt));
    let s = serve(app).await;
    for n in 0..400 {
        let reply = s.get(&format!("/blob/{n}")).await;
        assert_eq!(reply.body.len(), 1 << 20);
    }
    let weight = rt.memory_weight(larder::DEFAULT_HTTP_MOUNT);
    assert!(weight <= larder::DEFAULT_HTTP_BYTES, "the HTTP mount holds {weight} bytes");
    assert!(weight >= larder::DEFAULT_HTTP_BYTES / 2, "the HTTP mount holds only {weight} bytes");
    assert_eq!(runs.get(), 400);
    let again = s.get("/blob/399").await;
    assert_eq!((again.x_cache(), runs.get()), ("HIT", 400), "the newest response was kept");
}

static HINTED_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cached(max_age = "1h", base = "second")]
async fn on_the_second_mount(n: u64) -> u64 {
    HINTED_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) as u64 * 1000 + n
}

/// A function remembers where its mount was found, per runtime: a runtime whose mounts
/// are laid out differently never answers from another runtime's mount, and each answers
/// from its own.
#[tokio::test]
async fn a_function_finds_its_own_mount_in_each_runtime_whatever_their_layout() {
    let runs = || HINTED_RUNS.load(std::sync::atomic::Ordering::SeqCst);
    // "second" is the second mount of `a` and the first of `b`.
    let a = Runtime::builder().mount("first", Mount::memory(10)).mount("second", Mount::memory(10)).build();
    let b = Runtime::builder().mount("second", Mount::memory(10)).mount("first", Mount::memory(10)).build();
    let from_a = a.scope(on_the_second_mount(7)).await;
    assert_eq!(a.scope(on_the_second_mount(7)).await, from_a, "a's second call is a hit");
    assert_eq!(runs(), 1);
    let from_b = b.scope(on_the_second_mount(7)).await;
    assert_ne!(from_b, from_a, "b has its own entry: its body ran");
    assert_eq!(runs(), 2);
    for _ in 0..3 {
        assert_eq!(a.scope(on_the_second_mount(7)).await, from_a);
        assert_eq!(b.scope(on_the_second_mount(7)).await, from_b);
    }
    assert_eq!(runs(), 2, "alternating runtimes, every call is a hit on its own runtime's mount");
    assert_eq!((a.memory_len("second"), a.memory_len("first")), (1, 0));
    assert_eq!((b.memory_len("second"), b.memory_len("first")), (1, 0));
}

#[cached(max_age = "1h", base = "churn")]
async fn churned(x: u64) -> Vec<u64> {
    vec![x; 4]
}

/// Reads take no lock: tasks on two threads read a tier of 64 entries over 200 keys (every
/// miss evicts) while another invalidates keys, and each answer is its own key's value;
/// the tier never holds more than its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_get_their_own_keys_value_while_others_evict_and_invalidate() {
    let rt = Runtime::builder().mount("churn", Mount::memory(64)).build();
    let tasks: Vec<_> = (0..4u64)
        .map(|t| {
            common::spawn_scoped(&rt, async move {
                for i in 0..10_000u64 {
                    let x = (i * 7 + t * 13) % 200;
                    if t == 3 && i % 3 == 0 {
                        churned_invalidate(x).await;
                    } else {
                        assert_eq!(churned(x).await, vec![x; 4], "task {t}, call {i}: another key's value");
                    }
                    let held = Runtime::current().memory_len("churn");
                    assert!(held <= 64, "a tier of 64 holds {held}");
                }
            })
        })
        .collect();
    for task in tasks {
        common::within("the readers finish", task).await.unwrap();
    }
    assert!(rt.memory_len("churn") <= 64);
}
