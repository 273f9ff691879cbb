//! Hits per second on 1,000 warm `u64` keys, with 1, 2 and 4 threads (this machine may have
//! fewer cores than threads: the 4-thread line shows whether contention collapses), for
//! larder, quick_cache, moka and a plain `RwLock<HashMap>` read (the floor).
//!
//! Each thread reads the keys in a fixed order from a different starting point, for a fixed
//! time (larder's `async fn` polled once: a hit is ready at the first poll); the table shows the sum over
//! threads. `cargo bench --bench throughput` runs each case for 2 s; under `cargo test` it
//! runs each for 20 ms and checks only that every read was a hit with the right value.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt as _;

const KEYS: u64 = 1_000;

#[larder::cached(max_age = "1h")]
async fn larder_u64(x: u64) -> u64 {
    x.wrapping_mul(3)
}

/// One contender: a read of key `k`, which must be a hit.
type Read = Arc<dyn Fn(u64) -> u64 + Send + Sync>;

fn contenders(rt: &tokio::runtime::Runtime) -> Vec<(&'static str, Read)> {
    rt.block_on(async {
        for k in 0..KEYS {
            larder_u64(k).await;
        }
    });
    let quick = Arc::new(quick_cache::sync::Cache::<u64, u64>::new(10_000));
    let moka = moka::sync::Cache::<u64, u64>::new(10_000);
    let map = Arc::new(RwLock::new(HashMap::<u64, u64>::new()));
    for k in 0..KEYS {
        quick.insert(k, k.wrapping_mul(3));
        moka.insert(k, k.wrapping_mul(3));
        map.write().unwrap().insert(k, k.wrapping_mul(3));
    }
    vec![
        // A hit answers on the first poll: one poll, no executor.
        ("larder", Arc::new(|k| larder_u64(k).now_or_never().unwrap_or(u64::MAX)) as Read),
        ("quick_cache", Arc::new(move |k| quick.get(&k).unwrap_or(u64::MAX))),
        ("moka_sync", Arc::new(move |k| moka.get(&k).unwrap_or(u64::MAX))),
        ("rwlock_hashmap", Arc::new(move |k| map.read().unwrap().get(&k).copied().unwrap_or(u64::MAX))),
    ]
}

/// Hits per second of `read` over `threads` threads for `time`.
fn run(read: &Read, threads: usize, time: Duration) -> f64 {
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (read, start) = (Arc::clone(read), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                let (mut n, mut k) = (0u64, (t as u64 * 331) % KEYS);
                while began.elapsed() < time {
                    for _ in 0..1024 {
                        let v = read(black_box(k));
                        assert_eq!(v, k.wrapping_mul(3), "key {k} was not a hit");
                        k = (k + 1) % KEYS;
                    }
                    n += 1024;
                }
                n as f64 / began.elapsed().as_secs_f64()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("a reader")).sum()
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let time = if measuring { Duration::from_secs(2) } else { Duration::from_millis(20) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let _enter = rt.enter();
    println!("{:<16} {:>14} {:>14} {:>14}", "hits/s", "1 thread", "2 threads", "4 threads");
    for (name, read) in contenders(&rt) {
        let rates: Vec<String> = [1, 2, 4].iter().map(|&t| format!("{:.1} M", run(&read, t, time) / 1e6)).collect();
        println!("{name:<16} {:>14} {:>14} {:>14}", rates[0], rates[1], rates[2]);
    }
}
