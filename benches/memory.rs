//! Bytes per entry: the resident memory a cache grows by when it holds 1,000,000 `u64 → u64`
//! entries, for larder, moka, `cached`, quick_cache and a plain `RwLock<HashMap>` (the floor).
//!
//! Each contender runs in a process of its own (this binary, started again with
//! `--contender NAME`), so that what one allocated cannot hide in another's numbers: the
//! child reads its resident set (`/proc/self/statm`) once everything but the entries is set
//! up, inserts the entries, reads it again and prints the growth per entry. Every crate has
//! its default features; each is bounded a little above the entry count, so none evicts.
//!
//! `cargo bench --bench memory` measures 1,000,000 entries; under `cargo test` it runs the
//! same code on 20,000 entries and only checks that every contender holds them all.

use std::collections::HashMap;
use std::hint::black_box;
use std::process::Command;
use std::sync::RwLock;

const CONTENDERS: [&str; 5] = ["larder", "moka_sync", "cached_concurrent", "quick_cache", "rwlock_hashmap"];

#[larder::cached(max_age = "1h")]
async fn larder_u64(x: u64) -> u64 {
    x.wrapping_mul(3)
}

#[cached::concurrent_cached(ttl_secs = 3600)]
async fn cached_u64(x: u64) -> u64 {
    x.wrapping_mul(3)
}

/// The resident set of this process, in bytes (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Inserts `n` entries into the contender's cache; returns how many it holds.
fn fill(contender: &str, n: u64) -> (u64, Option<u64>, Option<u64>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let bound = n + n / 10;
    match contender {
        "larder" => {
            let cache = larder::Runtime::builder().mount("cache", larder::Mount::memory(bound)).build();
            // One call first: what the first call sets up (the mount, its counters) is not
            // an entry's cost.
            let before = rt.block_on(cache.scope(async {
                black_box(larder_u64(u64::MAX).await);
                resident_bytes()
            }));
            rt.block_on(cache.scope(async {
                for i in 0..n {
                    black_box(larder_u64(i).await);
                }
            }));
            let after = resident_bytes();
            (cache.memory_len("cache") - 1, before, after)
        }
        "moka_sync" => {
            let cache = moka::sync::Cache::<u64, u64>::new(bound);
            let before = resident_bytes();
            for i in 0..n {
                cache.insert(i, i.wrapping_mul(3));
            }
            cache.run_pending_tasks();
            let after = resident_bytes();
            (cache.entry_count(), before, after)
        }
        "cached_concurrent" => {
            let before = rt.block_on(async {
                black_box(cached_u64(u64::MAX).await);
                resident_bytes()
            });
            rt.block_on(async {
                for i in 0..n {
                    black_box(cached_u64(i).await);
                }
            });
            let after = resident_bytes();
            let held = (0..n).step_by(997).all(|i| rt.block_on(cached_u64(i)) == i.wrapping_mul(3));
            (if held { n } else { 0 }, before, after)
        }
        "quick_cache" => {
            let cache = quick_cache::sync::Cache::<u64, u64>::new(bound as usize);
            let before = resident_bytes();
            for i in 0..n {
                cache.insert(i, i.wrapping_mul(3));
            }
            let after = resident_bytes();
            (cache.len() as u64, before, after)
        }
        "rwlock_hashmap" => {
            let map = RwLock::new(HashMap::<u64, u64>::new());
            let before = resident_bytes();
            for i in 0..n {
                map.write().unwrap().insert(i, i.wrapping_mul(3));
            }
            let after = resident_bytes();
            let len = map.read().unwrap().len() as u64;
            (len, before, after)
        }
        other => panic!("unknown contender {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--contender") {
        let (name, n): (&str, u64) = (&args[i + 1], args[i + 2].parse().expect("an entry count"));
        let (held, before, after) = fill(name, n);
        match (before, after) {
            (Some(b), Some(a)) => println!("{held} {}", a.saturating_sub(b)),
            _ => println!("{held} -"),
        }
        return;
    }
    let measuring = args.iter().any(|a| a == "--bench");
    let n: u64 = if measuring { 1_000_000 } else { 20_000 };
    let exe = std::env::current_exe().expect("this binary");
    println!("{:<20} {:>16} {:>16}", "memory", "entries", "bytes per entry");
    for name in CONTENDERS {
        let out = Command::new(&exe).args(["--contender", name, &n.to_string()]).output().expect("a child");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let held: u64 = parts.next().and_then(|h| h.parse().ok()).expect("the entries held");
        assert_eq!(held, n, "{name} holds {held} of {n} entries: the measure would not be per entry");
        let per = match parts.next().and_then(|b| b.parse::<u64>().ok()) {
            Some(bytes) => format!("{:.0}", bytes as f64 / n as f64),
            None => "-".into(),
        };
        println!("{name:<20} {n:>16} {per:>16}");
    }
}
