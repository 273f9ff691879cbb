//! "A hit takes no lock that a miss holds", and the issue's "no allocation on a
//! hit": a warm call of a `#[cached]` function allocates nothing, whatever its key kind.
//! A counting global allocator counts each thread's allocations while that thread is armed.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use larder::cached;

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    if ARMED.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is handed to `System` unchanged; the count is a side effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocations of this thread during 100 calls of `f` (on a current-thread runtime,
/// every poll happens on this thread).
async fn allocations_of<F: Future>(f: impl Fn() -> F) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    ARMED.with(|a| a.set(true));
    for _ in 0..100 {
        std::hint::black_box(f().await);
    }
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[cached(max_age = "1h")]
async fn by_number(n: u64) -> u64 {
    n * 2
}

#[cached(max_age = "1h")]
async fn by_str(s: &str) -> String {
    s.to_uppercase()
}

#[cached(max_age = "1h", get_key = |repo: &str| repo.replace('@', "/"))]
async fn by_get_key(repo: &str) -> Result<u64, String> {
    Ok(repo.len() as u64)
}

fn same(repo: &str) -> &str {
    repo
}

#[cached(max_age = "1h", get_key = same)]
async fn by_borrowed_key(repo: &str) -> u64 {
    repo.len() as u64
}

#[cached(max_age = "1h", get_key = |id: &i64| *id)]
async fn by_int_key(id: i64) -> i64 {
    -id
}

#[cached(max_age = "1h")]
async fn without_arguments() -> Vec<u8> {
    vec![1, 2, 3]
}

#[tokio::test(flavor = "current_thread")]
async fn a_warm_hit_allocates_nothing_for_any_kind_of_key() {
    let (rt, _clock) = common::runtime();
    rt.scope(async {
        // Warm every key (and every lazily initialized thing on the way).
        for _ in 0..2 {
            by_number(21).await;
            by_str("rust-lang/rust@1.95.0-ab").await;
            by_get_key("rust-lang@rust").await.unwrap();
            by_borrowed_key("rust-lang/rust").await;
            by_int_key(-42).await;
            without_arguments().await;
        }
        assert_eq!(by_number_stats().runs, 1, "the key is warm");

        assert_eq!(allocations_of(|| by_number(21)).await, 0, "u64 argument");
        assert_eq!(allocations_of(|| by_borrowed_key("rust-lang/rust")).await, 0, "get_key returning a &str");
        assert_eq!(allocations_of(|| by_int_key(-42)).await, 0, "get_key returning an integer");
        assert_eq!(allocations_of(without_arguments).await, 100, "only the Vec clone handed to each caller");
        // The value itself is cloned for the caller (a `String` allocates); the key does not.
        assert_eq!(allocations_of(|| by_str("rust-lang/rust@1.95.0-ab")).await, 100, "one per value clone");
        // The user's closure allocates its `String`; larder adds nothing to it.
        assert_eq!(allocations_of(|| by_get_key("rust-lang@rust")).await, 100, "one per get_key result");
        assert_eq!(by_number_stats().hits, 101);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_counter_sees_allocations() {
    // The test above can fail: an allocation on the measured path is counted.
    assert_eq!(allocations_of(|| async { Box::new(1u8) }).await, 100);
}
