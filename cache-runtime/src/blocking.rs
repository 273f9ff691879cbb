//! Sync functions: a `#[cached]` plain `fn` runs the one algorithm of
//! [`Call::run`](crate::call::algorithm::Call::run) with its body as a future that never
//! waits, driven on the caller's thread by [`drive`]. Nothing of the algorithm is written
//! twice: the hit path is the same [`hit`](crate::call::lookup::hit), before anything here
//! runs; a follower of another thread's run parks its thread until the leader publishes
//! (the flight's `watch` channel wakes it); a background refresh is the same leader's run on
//! a thread of a blocking pool ([`Runtime::spawn_blocking`](crate::runtime::Runtime)).
//!
//! What the call's future needs of Tokio (timers for L2 timeouts and the soft `timeout`,
//! `spawn_blocking` for the fs store, sockets for Redis, tasks for probes) comes from a Tokio
//! runtime that is entered while the future is driven:
//!
//! - on a worker of a multi-thread runtime, that runtime, the wait inside
//!   `block_in_place` (the worker's other tasks move to another thread);
//! - anywhere else (a plain `fn main`, a current-thread runtime's thread, which must not be
//!   blocked on itself), larder's own runtime: one worker thread and a small blocking pool,
//!   started on the first sync call that misses.
//!
//! No Tokio runtime is ever blocked on from inside one (`Runtime::block_on` would panic
//! there): the future is polled by a parking loop of ours, which may nest (a sync body that
//! calls another sync cached function on a miss).

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Wake, Waker};
use std::thread::Thread;

use tokio::runtime::{Handle, RuntimeFlavor};

/// How many threads larder's own runtime may start for blocking work (sync refreshes, fs
/// calls), at most.
const OWN_BLOCKING_THREADS: usize = 16;

thread_local! {
    /// Whether this thread is inside [`drive`] already (the runtime to use is entered).
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `fut` to completion on this thread, with a Tokio runtime entered for what it needs.
pub fn drive<F: Future>(fut: F) -> F::Output {
    if DRIVING.get() {
        return park_on(fut);
    }
    let _driving = Driving::start();
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| park_on(fut)),
        _ => {
            let _entered = own_runtime().enter();
            park_on(fut)
        }
    }
}

/// The handle to start blocking work on: the runtime entered here if any, else larder's own.
pub(crate) fn blocking_handle() -> Handle {
    Handle::try_current().unwrap_or_else(|_| own_runtime().clone())
}

/// Marks this thread as driving until dropped.
struct Driving;

impl Driving {
    fn start() -> Driving {
        DRIVING.set(true);
        Driving
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.set(false);
    }
}

/// larder's own Tokio runtime, for sync calls made where no multi-thread runtime runs.
fn own_runtime() -> &'static Handle {
    static OWN: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    OWN.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(OWN_BLOCKING_THREADS)
            .thread_name("larder-sync")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("larder: cannot start the runtime of sync cached functions: {e}"))
    })
    .handle()
}

/// What wakes a parked driver: a flag (so that a wake meant for an outer, nested driver is
/// not lost) and the thread to unpark.
struct Signal {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Polls `fut` until it is ready, parking the thread between polls: no spinning.
fn park_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let signal = Arc::new(Signal { woken: AtomicBool::new(false), thread: std::thread::current() });
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        while !signal.woken.swap(false, Ordering::Acquire) {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_future_is_driven_without_a_runtime_and_its_timers_fire() {
        let out = drive(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tokio::task::spawn_blocking(|| 7).await.unwrap()
        });
        assert_eq!(out, 7);
    }

    #[test]
    fn drivers_nest() {
        assert_eq!(drive(async { drive(async { 1 }) + 1 }), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn inside_a_current_thread_runtime_nothing_panics() {
        let out = drive(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            drive(async { 3 })
        });
        assert_eq!(out, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_thread_worker_the_wait_is_in_block_in_place() {
        let out = drive(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            4
        });
        assert_eq!(out, 4);
    }
}
