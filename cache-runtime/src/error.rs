//! The one error type of larder.

use std::fmt;

/// Everything that can go wrong inside larder itself.
///
/// Errors of a cached function's body are never wrapped in this type: they reach the
/// caller as they are. This type appears where larder has to say something of its own,
/// for example when a concurrent run that a caller was waiting for failed with an error
/// that cannot be cloned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The call took longer than its `hard_timeout`.
    Timeout,
    /// The caller waited for a concurrent run of the same key, and that run failed with an
    /// error that cannot be cloned; the error went to the caller that drove the run.
    SharedRunFailed,
    /// A runtime was installed after the global one was already in use or installed.
    AlreadyInstalled,
    /// A store (L2) failed. Calls never return this; it is logged and counted.
    Store(String),
    /// A cache entry could not be encoded or decoded.
    Codec(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str("the cached call was abandoned after its `hard_timeout`"),
            Error::SharedRunFailed => f.write_str(
                "a concurrent run of the same cache key failed; its error cannot be cloned, so it went \
                 only to the caller that ran it (derive `Clone` on the error type to share it)",
            ),
            Error::AlreadyInstalled => f.write_str(
                "a larder runtime is already installed or in use: call `Runtime::install` once, at start, \
                 before the first cached call",
            ),
            Error::Store(msg) => write!(f, "cache store error: {msg}"),
            Error::Codec(msg) => write!(f, "cache entry codec error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}
