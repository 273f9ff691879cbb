//! Request-scoped memoization: `#[larder::memo]` and `larder::request_scope`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;

static USER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Not `Serialize`: memoization needs only `Hash` arguments and a `Clone` result.
#[derive(Debug, Clone, PartialEq)]
struct User {
    id: u64,
    run: usize,
}

#[larder::memo]
async fn load_user(id: u64) -> User {
    let run = USER_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;
    User { id, run }
}

#[tokio::test(start_paused = true)]
async fn inside_a_scope_equal_calls_run_once_concurrent_ones_too() {
    let before = USER_RUNS.load(Ordering::SeqCst);
    larder::request_scope(async {
        let users = join_all((0..10).map(|_| load_user(1))).await;
        assert!(users.iter().all(|u| *u == users[0]));
        assert_eq!(load_user(1).await, users[0]);
        assert_eq!(load_user(2).await.id, 2, "other arguments, other call");
    })
    .await;
    assert_eq!(USER_RUNS.load(Ordering::SeqCst) - before, 2);
}

#[tokio::test(start_paused = true)]
async fn nothing_outlives_the_scope_and_outside_a_scope_the_function_just_runs() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    #[larder::memo]
    async fn tick(label: &str) -> String {
        format!("{label}{}", RUNS.fetch_add(1, Ordering::SeqCst))
    }
    let a = larder::request_scope(async { (tick("x").await, tick("x").await) }).await;
    assert_eq!(a.0, a.1);
    let b = larder::request_scope(async { tick("x").await }).await;
    assert_ne!(a.0, b, "a new scope starts empty");
    assert!(!larder::in_request_scope());
    assert_ne!(tick("x").await, tick("x").await, "no scope: no memoization");
}

#[tokio::test(start_paused = true)]
async fn methods_memoize_per_object() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    struct Repo(u32);
    impl Repo {
        #[larder::memo]
        async fn count(&self, table: &str) -> u32 {
            RUNS.fetch_add(1, Ordering::SeqCst);
            self.0 + table.len() as u32
        }
    }
    let (r1, r2) = (Repo(1), Repo(100));
    larder::request_scope(async {
        assert_eq!(r1.count("ab").await, 3);
        assert_eq!(r1.count("ab").await, 3);
        assert_eq!(r2.count("ab").await, 102, "another object: another call");
    })
    .await;
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}
