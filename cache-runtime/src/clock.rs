//! Wall-clock time in milliseconds since the Unix epoch, real or controlled by a test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The time source of a [`Runtime`](crate::Runtime).
///
/// `mtime` of every entry and every freshness decision use this clock. Tests install a
/// [`ManualClock`] to move time without sleeping.
///
/// The system clock is read two ways: freshness checks (every hit) take the coarse
/// reading of [`now_ms`](Self::now_ms), and the timestamps that other processes compare
/// (an entry's `mtime`, a tag's invalidation time) take the exact reading of
/// [`stamp_ms`](Self::stamp_ms). So an entry produced a millisecond after a tag was
/// invalidated, here or by the `larder` CLI, is never taken for one from before it; an
/// entry may be judged fresh for up to the coarse clock's resolution past its `max_age`.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock (a coarse reading on Linux: a few milliseconds of resolution,
    /// read without a system call).
    #[default]
    System,
    /// A clock that only moves when told to.
    Manual(ManualClock),
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => system_now_ms(),
            Clock::Manual(m) => m.now_ms(),
        }
    }

    /// Milliseconds since the Unix epoch, read exactly (a `ManualClock` gives its time):
    /// for the timestamps written with an entry or a tag event.
    #[inline]
    pub fn stamp_ms(&self) -> u64 {
        match self {
            Clock::System => exact_now_ms(),
            Clock::Manual(m) => m.now_ms(),
        }
    }

    /// A stamp that orders invalidations against the runs they cancel: microseconds since
    /// the Unix epoch, strictly increasing within the process (two stamps are never
    /// equal, even when the clock stands still or steps back). An invalidation stamped
    /// `s` covers every entry whose run began at a stamp `<= s`; between processes the
    /// order is as good as their clocks agree.
    pub fn order_stamp(&self) -> u64 {
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now = match self {
            Clock::System => exact_now_us(),
            Clock::Manual(m) => m.now_ms().saturating_mul(1000),
        };
        let mut last = LAST.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// A clock for tests: starts at a given time and moves only with [`advance`](Self::advance)
/// or [`set`](Self::set). Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A manual clock that reads the current system time until moved.
    pub fn new() -> Self {
        Self::at_ms(system_now_ms())
    }

    /// A manual clock reading `ms` milliseconds since the Unix epoch.
    pub fn at_ms(ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(ms)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Sets the clock to `ms` milliseconds since the Unix epoch.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// The current reading.
    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The coarse wall clock (Linux: a few milliseconds of resolution, read without a system
/// call), in milliseconds since the Unix epoch.
#[inline]
fn system_now_ms() -> u64 {
    #[cfg(target_os = "linux")]
    let now = read(libc::CLOCK_REALTIME_COARSE);
    #[cfg(not(target_os = "linux"))]
    let now = std_read();
    ms(now)
}

/// The exact wall clock: seconds and nanoseconds since the Unix epoch.
#[inline]
fn exact_now() -> (u64, u64) {
    #[cfg(target_os = "linux")]
    return read(libc::CLOCK_REALTIME);
    #[cfg(not(target_os = "linux"))]
    return std_read();
}

/// Clock `id`: seconds and nanoseconds since the Unix epoch (the standard library's
/// reading if the clock cannot be read).
#[cfg(target_os = "linux")]
#[inline]
fn read(id: libc::clockid_t) -> (u64, u64) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the realtime clocks are served by the vDSO.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc == 0 && ts.tv_sec >= 0 { (ts.tv_sec as u64, ts.tv_nsec as u64) } else { std_read() }
}

fn std_read() -> (u64, u64) {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs(), u64::from(d.subsec_nanos())))
        .unwrap_or((0, 0))
}

#[inline]
fn ms((s, ns): (u64, u64)) -> u64 {
    s * 1000 + ns / 1_000_000
}

fn exact_now_ms() -> u64 {
    ms(exact_now())
}

fn exact_now_us() -> u64 {
    let (s, ns) = exact_now();
    s * 1_000_000 + ns / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system_ms() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn the_system_readings_agree_with_the_standard_library() {
        let before = system_ms();
        let (exact, coarse, us) = (Clock::System.stamp_ms(), Clock::System.now_ms(), exact_now_us());
        let after = system_ms();
        assert!((before..=after).contains(&exact), "exact {exact} outside {before}..={after}");
        // The coarse clock lags by at most its resolution (a few ms; 50 is generous).
        assert!(coarse + 50 >= before && coarse <= after, "coarse {coarse} not near {before}..={after}");
        assert!((before * 1000..=(after + 1) * 1000).contains(&us), "us {us} outside {before}..={after} ms");
    }

    #[test]
    fn order_stamps_strictly_increase() {
        let mut last = 0;
        for _ in 0..10_000 {
            let s = Clock::System.order_stamp();
            assert!(s > last);
            last = s;
        }
    }
}
