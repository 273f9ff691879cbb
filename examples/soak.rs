//! A coherence soak: two instances sharing a real redis-server (L2 and bus) and a directory
//! (a second mount's L2), a mixed workload, and faults, checking after every call that no
//! invalidated value is served where larder promises it is not.
//!
//! ```text
//! cargo run --release --example soak --features redis,fs -- --seconds 60
//! ```
//!
//! It starts its own `redis-server` (append-only file, fsync on every write) on a free
//! loopback port. 64 tasks, half on each instance: 80 % reads of 10k hot keys, 15 % reads of
//! cold keys (misses), 5 % invalidations of a hot key, 0.1 % tag invalidations (100 keys a
//! tag). Every value carries the version of its key when the run began; an invalidation
//! bumps the version first. Faults: three SIGKILLs of redis-server (restarted from its
//! append-only file), one 3 s SIGSTOP, one 3 s read-only phase of the directory.
//!
//! Checked (the run fails otherwise): no call fails; no call that began after an
//! invalidation returned on its instance answers an older version; outside fault windows,
//! the other instance stops answering it within 100 ms; nothing invalidated during a fault is
//! served after the fault's recovery (both instances have applied and told everything, plus
//! 100 ms for the bus).

#[path = "../tests/common/fs.rs"]
#[allow(dead_code)]
mod fs_switch;
#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fs_switch::ReadOnlySwitch;
use larder::{FsStore, Mount, RedisStore, Runtime, cached};
use redis_server::RedisServer;

/// `std`'s mutex, without poisoning (a panic fails the run anyway).
#[derive(Default)]
struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    fn new(v: T) -> Mutex<T> {
        Mutex(std::sync::Mutex::new(v))
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A small xorshift generator: reproducible workloads without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const HOT: u64 = 10_000;
const TAG_SPAN: u64 = 100;
const TASKS: usize = 64;
const DISK_KEYS: u64 = 1_000;

/// The source of truth of one cached function: each key's version, and per instance the
/// newest version whose invalidation has returned there (and when).
struct Truth {
    versions: Vec<AtomicU64>,
    settled: [Vec<Mutex<(u64, Instant)>>; 2],
}

impl Truth {
    fn new(n: u64, start: Instant) -> Truth {
        let slots = || (0..n).map(|_| Mutex::new((0, start))).collect();
        Truth { versions: (0..n).map(|_| AtomicU64::new(1)).collect(), settled: [slots(), slots()] }
    }
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
static REDIS_TRUTH: std::sync::OnceLock<Truth> = std::sync::OnceLock::new();
static DISK_TRUTH: std::sync::OnceLock<Truth> = std::sync::OnceLock::new();

fn truth(disk: bool) -> &'static Truth {
    if disk { DISK_TRUTH.get().expect("set") } else { REDIS_TRUTH.get().expect("set") }
}

#[cached(max_age = "1h", group = "soak", tags = |id: &u64| vec![format!("t{}", id % TAG_SPAN)], get_key = |id: &u64| *id)]
async fn item(id: u64) -> Result<(u64, u64), String> {
    let version = if id < HOT { truth(false).versions[id as usize].load(Ordering::SeqCst) } else { 0 };
    Ok((id, version))
}

#[cached(max_age = "1h", group = "soak", base = "disk", get_key = |id: &u64| *id)]
async fn on_disk(id: u64) -> Result<(u64, u64), String> {
    Ok((id, truth(true).versions[id as usize].load(Ordering::SeqCst)))
}

/// One stale answer on the other instance: when it was answered, when the invalidation it
/// should have honoured returned, and how late it was.
#[derive(Clone, Copy)]
struct Late {
    answered: Instant,
    invalidated: Instant,
    disk: bool,
    id: u64,
    me: usize,
    version: u64,
    wanted: u64,
}

#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    failed: AtomicU64,
    stale_here: AtomicU64,
    max_latency_us: AtomicU64,
    late: Mutex<Vec<Late>>,
}

/// The faults: when each began, when it was lifted, and when everything had recovered
/// (plus 100 ms for the bus).
struct Windows(Mutex<Vec<(Instant, Instant, Instant)>>);

impl Windows {
    /// Whether `t` is inside a fault or its recovery.
    fn covers(&self, t: Instant) -> bool {
        self.0.lock().iter().any(|(a, _, b)| *a <= t && t <= *b)
    }
}

fn instance(url: &str, dir: &std::path::Path) -> Runtime {
    // The store's default timeouts (1 s to connect, 500 ms for a reply), as users get them.
    let store = RedisStore::builder(url).connect_lazy().expect("a valid URL");
    let disk = FsStore::new(dir).expect("an fs store");
    Runtime::builder()
        .mount("cache", Mount::memory(200_000).l2(store).breaker_cooldown(Duration::from_secs(1)))
        .mount("disk", Mount::memory(200_000).l2(disk).breaker_cooldown(Duration::from_secs(1)))
        .bus(url)
        .build()
}

/// Checks one answer of instance `me` for key `id`, given what had settled when it began.
fn judge(tally: &Tally, disk: bool, me: usize, id: u64, answer: (u64, u64), seen: [(u64, Instant); 2]) {
    let (_, version) = answer;
    if version < seen[me].0 {
        tally.stale_here.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "STALE on the invalidating instance: {} key {id}: version {version} < {}",
            if disk { "disk" } else { "redis" },
            seen[me].0
        );
    }
    let other = seen[1 - me];
    if version < other.0 {
        tally.late.lock().push(Late {
            answered: Instant::now(),
            invalidated: other.1,
            disk,
            id,
            me,
            version,
            wanted: other.0,
        });
    }
}

async fn call(tally: &Tally, rt: &Runtime, me: usize, disk: bool, id: u64) {
    let t = truth(disk);
    let watched = disk || id < HOT;
    let seen = if watched {
        [*t.settled[0][id as usize].lock(), *t.settled[1][id as usize].lock()]
    } else {
        [(0, Instant::now()); 2]
    };
    let started = Instant::now();
    let result = if disk { rt.scope(on_disk(id)).await } else { rt.scope(item(id)).await };
    tally.max_latency_us.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    tally.calls.fetch_add(1, Ordering::Relaxed);
    match result {
        Ok(answer) if watched => judge(tally, disk, me, id, answer, seen),
        Ok(_) => {}
        Err(_) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn invalidate(rt: &Runtime, me: usize, disk: bool, id: u64) {
    let t = truth(disk);
    let v = t.versions[id as usize].fetch_add(1, Ordering::SeqCst) + 1;
    if disk {
        rt.scope(on_disk_invalidate(id)).await
    } else {
        rt.scope(item_invalidate(id)).await
    }
    let mut s = t.settled[me][id as usize].lock();
    if s.0 < v {
        *s = (v, Instant::now());
    }
}

async fn invalidate_tag(rt: &Runtime, me: usize, tag: u64) {
    let t = truth(false);
    let ids: Vec<u64> = (0..HOT).filter(|id| id % TAG_SPAN == tag).collect();
    let vs: Vec<u64> = ids.iter().map(|&id| t.versions[id as usize].fetch_add(1, Ordering::SeqCst) + 1).collect();
    rt.scope(larder::invalidate_tag(&format!("t{tag}"))).await;
    let now = Instant::now();
    for (&id, v) in ids.iter().zip(vs) {
        let mut s = t.settled[me][id as usize].lock();
        if s.0 < v {
            *s = (v, now);
        }
    }
}

async fn worker(tally: Arc<Tally>, rt: Runtime, me: usize, seed: u64, stop: Arc<AtomicBool>) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.unit();
        let disk = rng.below(10) == 0;
        let hot = if disk { rng.below(DISK_KEYS) } else { rng.below(HOT) };
        if roll < 0.80 {
            call(&tally, &rt, me, disk, hot).await;
        } else if roll < 0.95 {
            call(&tally, &rt, me, false, HOT + rng.below(10_000_000)).await;
        } else if roll < 0.999 {
            invalidate(&rt, me, disk, hot).await;
        } else {
            invalidate_tag(&rt, me, rng.below(TAG_SPAN)).await;
        }
    }
}

/// Waits until both instances have applied and told every invalidation and use L2 again.
async fn recovered(instances: &[Runtime]) {
    let began = Instant::now();
    let mut told = false;
    loop {
        if !told && began.elapsed() > Duration::from_secs(10) {
            told = true;
            for rt in instances {
                eprintln!(
                    "  still recovering: unsettled {} cache {:?} disk {:?}",
                    rt.unsettled_invalidations(),
                    rt.tier_health("cache"),
                    rt.tier_health("disk")
                );
            }
        }
        let healthy = instances.iter().all(|rt| {
            rt.unsettled_invalidations() == 0
                && !rt.tier_health("cache").breaker_open
                && !rt.tier_health("disk").breaker_open
        });
        if healthy {
            return;
        }
        if began.elapsed() > Duration::from_secs(120) {
            eprintln!("FAIL: not recovered 120 s after the fault was lifted");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut seconds = 60u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            other => panic!("unknown argument {other:?} (use --seconds N)"),
        }
    }
    let start = *START.get_or_init(Instant::now);
    REDIS_TRUTH.get_or_init(|| Truth::new(HOT, start));
    DISK_TRUTH.get_or_init(|| Truth::new(DISK_KEYS, start));

    let mut server = RedisServer::start_persistent();
    let dir = tempfile::tempdir().expect("a temp dir");
    let switch = ReadOnlySwitch::new(dir.path());
    let url = server.url();
    let instances = [instance(&url, dir.path()), instance(&url, dir.path())];
    for rt in &instances {
        while !rt.bus_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    println!(
        "larder soak: {seconds} s, 2 instances, {TASKS} tasks, redis-server on port {} (AOF, fsync always)",
        server.port()
    );

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| tokio::spawn(worker(Arc::clone(&tally), instances[i % 2].clone(), i % 2, i as u64, Arc::clone(&stop))))
        .collect();

    // The fault plan, spread over the run.
    let at = |fraction: f64| start + Duration::from_secs_f64(seconds as f64 * fraction);
    let windows = Windows(Mutex::new(Vec::new()));
    let plan = [(0.15, "kill"), (0.30, "kill"), (0.45, "stop"), (0.60, "read-only"), (0.75, "kill")];
    for (fraction, fault) in plan {
        tokio::time::sleep_until(at(fraction).into()).await;
        let began = Instant::now();
        match fault {
            "kill" => {
                server.stop();
                tokio::time::sleep(Duration::from_millis(500)).await;
                server.restart();
            }
            "stop" => {
                server.freeze();
                tokio::time::sleep(Duration::from_secs(3)).await;
                server.thaw();
            }
            _ => {
                switch.read_only();
                tokio::time::sleep(Duration::from_secs(3)).await;
                switch.writable();
            }
        }
        let lifted = Instant::now();
        recovered(&instances).await;
        let end = Instant::now() + Duration::from_millis(100);
        println!(
            "  fault at {:>5.1} s: {fault:<9}  recovered {:.2} s after it began",
            began.duration_since(start).as_secs_f64(),
            end.duration_since(began).as_secs_f64() - 0.1
        );
        windows.0.lock().push((began, lifted, end));
    }
    tokio::time::sleep_until((start + Duration::from_secs(seconds)).into()).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if t.await.is_err() {
            tally.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    // The verdict.
    let calls = tally.calls.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let stale_here = tally.stale_here.load(Ordering::Relaxed);
    let late = tally.late.lock().clone();
    let mut outside = Vec::new();
    let mut after_outage = 0u64;
    for l in &late {
        let in_fault = windows.covers(l.answered) || windows.covers(l.invalidated);
        if !in_fault {
            outside.push(l.answered.duration_since(l.invalidated).as_secs_f64() * 1000.0);
        }
        let ws = windows.0.lock();
        // Invalidated while the fault was on, answered after everything recovered (and not
        // during the next fault).
        let in_a_fault = ws.iter().any(|(a, _, b)| *a <= l.answered && l.answered <= *b);
        if let Some(i) = ws.iter().position(|(a, lifted, b)| {
            *a <= l.invalidated && l.invalidated <= *lifted && l.answered > *b && !in_a_fault
        }) {
            after_outage += 1;
            if after_outage <= 10 || std::env::var_os("SOAK_DEBUG").is_some() {
                eprintln!(
                    "  after fault {i}: {} key {} on instance {}: v{} < v{}, invalidated at {:.3} s, answered at {:.3} s (window ends {:.3} s)",
                    if l.disk { "disk" } else { "redis" },
                    l.id,
                    l.me,
                    l.version,
                    l.wanted,
                    l.invalidated.duration_since(start).as_secs_f64(),
                    l.answered.duration_since(start).as_secs_f64(),
                    ws[i].2.duration_since(start).as_secs_f64()
                );
            }
        }
    }
    outside.sort_by(f64::total_cmp);
    let max_ms = outside.last().copied().unwrap_or(0.0);
    let elapsed = start.elapsed().as_secs_f64();
    println!("calls:                                   {calls} ({:.0}/s)", calls as f64 / elapsed);
    println!("failed calls:                            {failed}");
    println!("stale answers on the invalidating instance: {stale_here}");
    println!(
        "stale answers on the other instance, outside faults: {} (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms after the invalidation returned)",
        outside.len(),
        percentile(&outside, 0.5),
        percentile(&outside, 0.99),
        max_ms
    );
    println!("invalidated during a fault, served after its recovery: {after_outage}");
    println!(
        "max call latency:                        {:.1} ms",
        tally.max_latency_us.load(Ordering::Relaxed) as f64 / 1000.0
    );
    let pass = failed == 0 && stale_here == 0 && after_outage == 0 && max_ms < 100.0;
    println!("{}", if pass { "PASS" } else { "FAIL" });
    drop(switch);
    if !pass {
        std::process::exit(1);
    }
}
