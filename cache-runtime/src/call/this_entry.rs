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

tokio::task_local! {
    /// The decisions of the run this task is inside.
    static DECIDED: Mutex<Decisions>;
}

/// Runs `fut` (a body) with a fresh set of decisions; returns its output and them.
pub(crate) async fn deciding<F: Future>(fut: F) -> (F::Output, Decisions) {
    // The decisions live in the scope itself and are taken back out of it: nothing
    // allocated per run.
    let mut scoped = std::pin::pin!(DECIDED.scope(Mutex::new(Decisions::default()), fut));
    let out = scoped.as_mut().await;
    let decisions = scoped.as_mut().take_value().map(Mutex::into_inner).unwrap_or_default();
    (out, decisions)
}

fn decide(f: impl FnOnce(&mut Decisions)) -> bool {
    DECIDED.try_with(|d| f(&mut d.lock())).is_ok()
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
