//! The body decides how its result is cached: from inside a running cached body (a
//! `#[cached]` function, a `get_or_set` factory, an HTTP handler behind the layer), tag the
//! entry it is producing from what it found, give it another lifetime, or keep it out of the
//! cache.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use cache_runtime::{Options, Runtime, this_entry};
//! use std::time::Duration;
//!
//! let carts = Runtime::builder().build().cache("cache");
//! let opts = Options::new().max_age(Duration::from_secs(3600));
//! let cart = carts
//!     .get_or_set("cart:1", &opts, || async {
//!         let products: Vec<u64> = vec![7, 9];
//!         for p in &products {
//!             // `invalidate_tag("product:7")` now makes this cart a miss.
//!             this_entry::tag(format!("product:{p}"));
//!         }
//!         if products.is_empty() {
//!             this_entry::max_age(Duration::from_secs(10)); // an empty cart: not for an hour
//!         }
//!         Ok::<_, cache_runtime::Error>(products)
//!     })
//!     .await;
//! assert_eq!(cart.unwrap(), vec![7, 9]);
//! # });
//! ```
//!
//! Each function returns whether it was called inside a running body (outside one, or in a
//! body that bypasses the cache, it does nothing). Inside a body that calls another cached
//! function, the inner run decides for its own entry, and the outer body's calls after it
//! for the outer entry. The integrity rules are unchanged: a decision changes how long and
//! under which tags the value is kept, never which code's value it is.
//!
//! The same task-local records which runs the body's task is inside, so that a call which
//! would wait for a run it is itself part of (`f(x)` → … → `f(x)`) is caught as a cycle.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;

/// What a body decided for the entry it produces.
#[derive(Debug, Default)]
pub(crate) struct Decisions {
    pub tags: Vec<String>,
    pub max_age: Option<Duration>,
    pub skip: bool,
}

impl Decisions {
    pub(crate) fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.max_age.is_none() && !self.skip
    }
}

/// The keys whose runs a task is inside: the innermost, and the ones around it (a run at
/// the top level, the usual case, allocates nothing for it).
struct Chain {
    innermost: u128,
    outer: Vec<u128>,
}

impl Chain {
    fn contains(&self, id: u128) -> bool {
        self.innermost == id || self.outer.contains(&id)
    }

    /// This chain with `id` inside it.
    fn inside(&self, id: u128) -> Chain {
        let mut outer = Vec::with_capacity(self.outer.len() + 1);
        outer.extend_from_slice(&self.outer);
        outer.push(self.innermost);
        Chain { innermost: id, outer }
    }
}

/// What the task of a running body carries: the runs it is inside, and its decisions.
/// One task-local for both, so that a run enters one scope.
pub(crate) struct Running {
    chain: Chain,
    decided: Mutex<Decisions>,
}

tokio::task_local! {
    /// The run this task is inside.
    static RUNNING: Running;
}

/// Runs `fut`, the body of the run of the key `id`, inside that run (inside the runs
/// around it, if any) with a fresh set of decisions; its output is the body's and them.
pub(crate) fn running<F: Future>(id: u128, fut: F) -> InRun<F> {
    let chain = RUNNING.try_with(|r| r.chain.inside(id)).unwrap_or(Chain { innermost: id, outer: Vec::new() });
    // The decisions live in the scope itself and are taken back out of it: nothing
    // allocated per run.
    InRun(RUNNING.scope(Running { chain, decided: Mutex::new(Decisions::default()) }, fut))
}

/// The future of [`running`]: a struct rather than an `async fn`, which would hold the
/// body's future twice (its argument and the scope it polls).
pub(crate) struct InRun<F: Future>(tokio::task::futures::TaskLocalFuture<Running, F>);

impl<F: Future> Future for InRun<F> {
    type Output = (F::Output, Decisions);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: the one field is pinned whenever the struct is (it is never moved out,
        // and the struct has no `Drop` or `Unpin` impl of its own).
        let mut scoped = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        let out = std::task::ready!(scoped.as_mut().poll(cx));
        let decisions = scoped.take_value().map(|r| r.decided.into_inner()).unwrap_or_default();
        Poll::Ready((out, decisions))
    }
}

/// Whether this task is inside the run of `id`: waiting for that run would wait for itself.
pub(crate) fn inside_run_of(id: u128) -> bool {
    RUNNING.try_with(|r| r.chain.contains(id)).unwrap_or(false)
}

fn decide(f: impl FnOnce(&mut Decisions)) -> bool {
    RUNNING.try_with(|r| f(&mut r.decided.lock())).is_ok()
}

/// Adds a tag to the entry this body is producing (as if it were in the function's
/// `tags`): `larder::invalidate_tag` and `expire_tag` of it reach the entry.
pub fn tag(tag: impl Into<String>) -> bool {
    let tag = tag.into();
    decide(|d| d.tags.push(tag))
}

/// Adds tags to the entry this body is producing.
pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(tags: I) -> bool {
    let tags: Vec<String> = tags.into_iter().map(Into::into).collect();
    decide(|d| d.tags.extend(tags))
}

/// Keeps the entry this body is producing fresh for `max_age` instead of the function's
/// (shorter for a partial result, longer for a stable one). The `swr` and `grace` windows
/// follow it. Zero: the value is not stored.
pub fn max_age(max_age: Duration) -> bool {
    decide(|d| d.max_age = Some(max_age))
}

/// Keeps the value this body is producing out of the cache: it answers this call (and the
/// callers waiting for the same run), and the next call runs the body again.
pub fn skip() -> bool {
    decide(|d| d.skip = true)
}
