//! How a body's error reaches the callers that waited for the same run, chosen at compile
//! time by autoref specialization ([`Pick`]): cloned, made from `larder::Error`, or not
//! shared at all; and the error of a call abandoned after `hard_timeout`.

use std::any::Any;
use std::marker::PhantomData;

use crate::error::Error;

/// How a body's error reaches the callers that waited for the same run.
///
/// Chosen at compile time by the attribute: an `E: Clone` is cloned to every waiter; an
/// `E: From<larder::Error>` gets [`Error::SharedRunFailed`]; any other error goes only to
/// the caller that ran the body, and each waiter runs it again in turn.
pub struct ErrShare<E> {
    pub(crate) to_shared: fn(&E) -> Option<Box<dyn Any + Send + Sync>>,
    pub(crate) from_shared: fn(Option<&(dyn Any + Send + Sync)>) -> Option<E>,
}

impl<E> Clone for ErrShare<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for ErrShare<E> {}

impl<E> ErrShare<E> {
    /// Waiters of a failed run run the body themselves.
    pub const fn none() -> Self {
        ErrShare { to_shared: |_| None, from_shared: |_| None }
    }
}

/// Selects an [`ErrShare`] by autoref specialization: `(&&&Pick::<E>::new()).err_share()`.
pub struct Pick<E>(PhantomData<fn() -> E>);

impl<E> Pick<E> {
    /// The selector.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Pick(PhantomData)
    }
}

/// First choice: clone the error to every waiter.
pub trait PickClone<E> {
    /// The chosen way.
    fn err_share(&self) -> ErrShare<E>;
}
/// Second choice: waiters get `E::from(Error::SharedRunFailed)`.
pub trait PickFrom<E> {
    /// The chosen way.
    fn err_share(&self) -> ErrShare<E>;
}
/// Last choice: waiters run the body themselves.
pub trait PickNone<E> {
    /// The chosen way.
    fn err_share(&self) -> ErrShare<E>;
}

impl<E: Clone + Send + Sync + 'static> PickClone<E> for &&Pick<E> {
    fn err_share(&self) -> ErrShare<E> {
        ErrShare {
            to_shared: |e| Some(Box::new(e.clone())),
            from_shared: |s| s.and_then(|s| s.downcast_ref::<E>()).cloned(),
        }
    }
}

impl<E: From<Error>> PickFrom<E> for &Pick<E> {
    fn err_share(&self) -> ErrShare<E> {
        ErrShare { to_shared: |_| None, from_shared: |_| Some(E::from(Error::SharedRunFailed)) }
    }
}

impl<E> PickNone<E> for Pick<E> {
    fn err_share(&self) -> ErrShare<E> {
        ErrShare::none()
    }
}

/// What larder does with a body's errors: share them, and make one on `hard_timeout`.
pub struct Errors<E> {
    /// How waiters get the error.
    pub share: ErrShare<E>,
    /// Makes the error of a call abandoned after `hard_timeout`.
    pub timeout: Option<fn() -> E>,
}

impl<E> Clone for Errors<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Errors<E> {}
