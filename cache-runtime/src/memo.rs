//! Request-scoped memoization (what React's `cache()` does for a request): inside one
//! [`request_scope`], equal calls of a `#[memo]` function run once, concurrent ones too;
//! nothing outlives the scope; outside a scope the function just runs.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

type Cell = Arc<OnceCell<Box<dyn Any + Send + Sync>>>;

/// The memo table of one scope.
#[derive(Default)]
struct Scope {
    cells: Mutex<HashMap<(&'static str, u128), Cell>>,
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

/// Runs `fut` in a fresh memoization scope: every `#[larder::memo]` call inside it (in this
/// task) runs once per distinct arguments; the results are dropped with the scope.
///
/// ```
/// # use cache_runtime as larder;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let answer = larder::request_scope(async { 42 }).await;
/// assert_eq!(answer, 42);
/// # });
/// ```
pub async fn request_scope<F: Future>(fut: F) -> F::Output {
    SCOPE.scope(Arc::new(Scope::default()), fut).await
}

/// Whether the current task is inside a [`request_scope`].
pub fn in_request_scope() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// The 128-bit hash of a memoized call's arguments.
#[doc(hidden)]
pub fn memo_hash<A: Hash + ?Sized>(args: &A) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    args.hash(&mut hasher);
    hasher.digest128()
}

/// A memoized call: `function` names the function, `args` is [`memo_hash`] of its arguments.
#[doc(hidden)]
pub async fn memo<V, F, Fut>(function: &'static str, args: u128, body: F) -> V
where
    V: Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = V>,
{
    let Ok(scope) = SCOPE.try_with(Arc::clone) else {
        return body().await;
    };
    let id = (function, args);
    let cell = Arc::clone(scope.cells.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_default());
    let value = cell.get_or_init(|| async { Box::new(body().await) as Box<dyn Any + Send + Sync> }).await;
    match value.downcast_ref::<V>() {
        Some(v) => v.clone(),
        None => unreachable!("one function name, one return type"),
    }
}
