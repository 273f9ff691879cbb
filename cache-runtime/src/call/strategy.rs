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

/// A background run: `F` clones the arguments and returns the body as an owned future.
pub struct SpawnRefresh<F>(F);

/// Wraps the refresh closure (here, so that its signature is inferred from the bound).
pub fn spawn_refresh<A, F, Fut>(f: F) -> SpawnRefresh<F>
where
    F: FnOnce(&A) -> Fut,
{
    SpawnRefresh(f)
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
        let fut = (self.0)(args);
        job.spawn(fut)
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

    /// Runs `fut` as the leader, in a task of the call's runtime. Returns whether it started.
    fn spawn<Fut>(self, fut: Fut) -> bool
    where
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        V: Clone + Send + Sync + 'static + Serialize + DeserializeOwned,
        E: Send + 'static,
    {
        let rt = self.context.rt.clone();
        rt.spawn(async move {
            let Job { context, errors, leader, .. } = self;
            let _ = context.run(errors, leader, fut).await;
        })
    }
}
