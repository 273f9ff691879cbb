//! Cold keys under load, on a multi-thread tokio runtime.
//!
//! - `one_key_1000_callers`: 1,000 spawned tasks call one cold key whose body sleeps 50 ms.
//!   Single-flight must run the body once per iteration (checked: the bench panics
//!   otherwise), so the wall time should stay close to 50 ms.
//! - `256_keys_at_once`: 256 different cold keys are called at once, each body sleeping
//!   50 ms. Different keys never wait on each other, so the wall time should also stay
//!   close to 50 ms.
//!
//! Every iteration uses fresh keys (a generation number is part of the arguments), so
//! every call is cold. `floor_*` run the same tasks with the sleep alone and no cache:
//! what spawning and sleeping cost by themselves.
//!
//! Criterion reports the mean wall time per iteration; at the end, each case also prints
//! the median, min and max of its iterations (criterion's warm-up iterations included) and
//! the body runs it counted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use futures::future::join_all;

const BODY: Duration = Duration::from_millis(50);
const CALLERS: usize = 1_000;
const KEYS: u32 = 256;

/// A fresh generation per iteration: every key of an iteration is cold.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static ONE_KEY_RUNS: AtomicUsize = AtomicUsize::new(0);
static MANY_KEYS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[larder::cached(max_age = "1h")]
async fn one_key(generation: u64) -> u64 {
    ONE_KEY_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    generation
}

#[larder::cached(max_age = "1h")]
async fn many_keys(generation: u64, i: u32) -> u64 {
    MANY_KEYS_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BODY).await;
    generation ^ u64::from(i)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a multi-thread runtime")
}

/// Wall time of every iteration of one case, and the body runs counted in it.
#[derive(Default)]
struct Record {
    walls: Vec<Duration>,
    runs: usize,
}

impl Record {
    fn report(&self, name: &str, runs_per_iteration: usize) {
        let mut w = self.walls.clone();
        if w.is_empty() {
            return;
        }
        w.sort();
        let median = w[w.len() / 2];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name}: {} iterations, wall median {:.2} ms (min {:.2}, max {:.2}) vs body {} ms = {:.3}x; body runs {} ({} per iteration, expected {})",
            w.len(),
            ms(median),
            ms(w[0]),
            ms(w[w.len() - 1]),
            BODY.as_millis(),
            median.as_secs_f64() / BODY.as_secs_f64(),
            self.runs,
            self.runs as f64 / w.len() as f64,
            runs_per_iteration,
        );
    }
}

/// What call `n` of generation `generation` returns.
fn same(generation: u64, _n: usize) -> u64 {
    generation
}

fn per_key(generation: u64, n: usize) -> u64 {
    generation ^ n as u64
}

/// Runs one iteration: spawns every call of `task(generation, n)` for `n` in `0..count`,
/// waits for all of them, checks their outputs against `expect` and the body runs counted
/// in `runs` against `expected_runs`.
async fn iteration<F, Fut>(
    count: usize,
    runs: &AtomicUsize,
    expected_runs: usize,
    record: &Mutex<Record>,
    expect: fn(u64, usize) -> u64,
    task: F,
) -> Duration
where
    F: Fn(u64, usize) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst);
    let before = runs.load(Ordering::SeqCst);
    let start = Instant::now();
    let handles: Vec<_> = (0..count).map(|n| tokio::spawn(task(generation, n))).collect();
    let outputs = join_all(handles).await;
    let wall = start.elapsed();
    for (n, out) in outputs.into_iter().enumerate() {
        let out = out.expect("no task panicked");
        assert_eq!(out, expect(generation, n), "call {n} of generation {generation}");
    }
    let ran = runs.load(Ordering::SeqCst) - before;
    assert_eq!(ran, expected_runs, "the body ran {ran} times in one iteration; expected {expected_runs}");
    let mut r = record.lock().unwrap();
    r.walls.push(wall);
    r.runs += ran;
    wall
}

fn stampede(c: &mut Criterion) {
    let rt = runtime();
    let one = Mutex::new(Record::default());
    let many = Mutex::new(Record::default());
    let floor_one = Mutex::new(Record::default());
    let floor_many = Mutex::new(Record::default());
    let no_runs = AtomicUsize::new(0);

    let mut g = c.benchmark_group("stampede");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    g.bench_function("one_key_1000_callers", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let one = &one;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += iteration(CALLERS, &ONE_KEY_RUNS, 1, one, same, |generation, _| one_key(generation)).await;
                }
                total
            }
        })
    });
    g.bench_function("floor_1000_sleeps", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (floor_one, no_runs) = (&floor_one, &no_runs);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += iteration(CALLERS, no_runs, 0, floor_one, same, |generation, _| async move {
                        tokio::time::sleep(BODY).await;
                        generation
                    })
                    .await;
                }
                total
            }
        })
    });
    g.bench_function("256_keys_at_once", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let many = &many;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total +=
                        iteration(KEYS as usize, &MANY_KEYS_RUNS, KEYS as usize, many, per_key, |generation, n| {
                            many_keys(generation, n as u32)
                        })
                        .await;
                }
                total
            }
        })
    });
    g.bench_function("floor_256_sleeps", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (floor_many, no_runs) = (&floor_many, &no_runs);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += iteration(KEYS as usize, no_runs, 0, floor_many, per_key, |generation, n| async move {
                        tokio::time::sleep(BODY).await;
                        generation ^ n as u64
                    })
                    .await;
                }
                total
            }
        })
    });
    g.finish();

    println!();
    one.lock().unwrap().report("stampede/one_key_1000_callers (larder)", 1);
    floor_one.lock().unwrap().report("stampede/floor_1000_sleeps (no cache)", 0);
    many.lock().unwrap().report("stampede/256_keys_at_once (larder)", KEYS as usize);
    floor_many.lock().unwrap().report("stampede/floor_256_sleeps (no cache)", 0);
}

criterion_group!(benches, stampede);
criterion_main!(benches);
