//! What the expansion chooses at compile time for one function: where its dynamic tags come
//! from ([`TagSource`]) and whether its body can run in the background ([`Refresher`], for
//! `swr` and the soft `timeout`), with the [`Job`] a background run is handed.

use std::future::Future;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::context::Context;
use crate::call::share::Errors;
use crate::mount::flights::Leader;

/// Tags computed from the arguments (`tags = |…| …`), or none.
pub trait TagSource<A> {
    /// The tags of this call.
    fn tags(self, args: &A) -> Vec<String>;
}

/// No tags beyond the static ones.
pub struct NoTags;

impl<A> TagSource<A> for NoTags {
    fn tags(self, _: &A) -> Vec<String> {
        Vec::new()
    }
}

/// Tags from a closure over the arguments.
pub struct DynTags<F>(F);

/// Wraps the tags closure (here, so that its signature is inferred from the bound).
pub fn dyn_tags<A, F: FnOnce(&A) -> Vec<String>>(f: F) -> DynTags<F> {
    DynTags(f)
}

impl<A, F: FnOnce(&A) -> Vec<String>> TagSource<A> for DynTags<F> {
    fn tags(self, args: &A) -> Vec<String> {
        (self.0)(args)
    }
}

/// A way to run the body in the background (`swr`, `timeout`), or none.
pub trait Refresher<A, V, E> {
    /// Whether this refresher can run in the background at all.
    const ENABLED: bool;
    /// Starts the run as the leader of its key. Returns whether it started.
    #[doc(hidden)]
    fn start(self, args: &A, job: Job<V, E>) -> bool;
}

/// No background run: the function has neither `swr` nor `timeout`.
pub struct NoRefresh;

impl<A, V, E> Refresher<A, V, E> for NoRefresh {
    const ENABLED: bool = false;
    fn start(self, _args: &A, _job: Job<V, E>) -> bool {
        false
    }
}

/// A background run: `F` clones the arguments and returns the body as an owned future,
/// run in a task of the call's runtime, or for a sync body (which never waits, and may
/// block) on a thread of a blocking pool. Either way one per key at a time: the run leads
/// its key's flight.
pub struct SpawnRefresh<F> {
    make: F,
    on_a_thread: bool,
}

/// Wraps the refresh closure of an async body (here, so that its signature is inferred
/// from the bound).
pub fn spawn_refresh<A, F, Fut>(f: F) -> SpawnRefresh<F>
where
    F: FnOnce(&A) -> Fut,
{
    SpawnRefresh { make: f, on_a_thread: false }
}

/// Wraps the refresh closure of a sync body: its runs go to a blocking pool.
pub fn blocking_refresh<A, F, Fut>(f: F) -> SpawnRefresh<F>
where
    F: FnOnce(&A) -> Fut,
{
    SpawnRefresh { make: f, on_a_thread: true }
}

impl<A, V, E, F, Fut> Refresher<A, V, E> for SpawnRefresh<F>
where
    F: FnOnce(&A) -> Fut,
    Fut: Future<Output = Result<V, E>> + Send + 'static,
    V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
    E: Send + 'static,
{
    const ENABLED: bool = true;
    fn start(self, args: &A, job: Job<V, E>) -> bool {
        let fut = (self.make)(args);
        let rt = job.context.rt.clone();
        if self.on_a_thread { rt.spawn_blocking(job.run(fut)) } else { rt.spawn(job.run(fut)) }
    }
}

/// What a background run needs (built by the runtime, consumed by a [`Refresher`]).
pub struct Job<V, E> {
    context: Context,
    errors: Errors<E>,
    leader: Leader,
    _v: PhantomData<fn() -> V>,
}

impl<V, E> Job<V, E> {
    /// The run of `leader`'s key in `context`.
    pub(crate) fn new(context: Context, errors: Errors<E>, leader: Leader) -> Self {
        Job { context, errors, leader, _v: PhantomData }
    }

    /// The run of `fut` as the leader, its outcome stored and published.
    async fn run<Fut>(self, fut: Fut)
    where
        Fut: Future<Output = Result<V, E>>,
        V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
    {
        let Job { context, errors, leader, .. } = self;
        let _ = context.run(errors, leader, fut).await;
    }
}
