//! The one error type of larder, [`Error`], and the details of its store, codec and bus
//! variants. Each detail keeps the error it came from as its [`source`](std::error::Error::source),
//! so a report walks down to the I/O or Redis error that caused it.

use std::fmt;
use std::sync::Arc;

/// The error a detail came from, shared so that [`Error`] stays `Clone`.
type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong inside larder itself.
///
/// Errors of a cached function's body are never wrapped in this type: they reach the
/// caller as they are. This type appears where larder has to say something of its own,
/// for example when a concurrent run that a caller was waiting for failed with an error
/// that cannot be cloned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call took longer than its `hard_timeout`.
    #[error("the cached call was abandoned after its `hard_timeout`")]
    Timeout,
    /// The caller waited for a concurrent run of the same key, and that run failed with an
    /// error that cannot be cloned; the error went to the caller that drove the run.
    #[error(
        "a concurrent run of the same cache key failed; its error cannot be cloned, so it went \
         only to the caller that ran it (derive `Clone` on the error type to share it)"
    )]
    SharedRunFailed,
    /// A runtime was installed after the global one was already in use or installed.
    #[error(
        "a larder runtime is already installed or in use: call `Runtime::install` once, at start, \
         before the first cached call"
    )]
    AlreadyInstalled,
    /// A store (L2) failed. Calls never return this; it is logged and counted.
    #[error("cache store error: {0}")]
    Store(#[source] StoreError),
    /// A cache entry or a bus message could not be encoded or decoded.
    #[error("cache codec error: {0}")]
    Codec(#[source] CodecError),
    /// The bus between instances failed (connecting, subscribing or publishing). Calls never
    /// return this; it is logged, and the bus reconnects.
    #[error("cache bus error: {0}")]
    Bus(#[source] BusError),
}

/// Declares a detail type: a message saying what failed and how to fix it, and optionally
/// the error it came from.
macro_rules! detail {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            message: Box<str>,
            source: Option<Source>,
        }

        impl $name {
            /// A detail with only a message.
            pub fn new(message: impl Into<String>) -> Self {
                $name { message: message.into().into_boxed_str(), source: None }
            }

            /// A detail with a message and the error it came from.
            pub fn with_source(
                message: impl Into<String>,
                source: impl std::error::Error + Send + Sync + 'static,
            ) -> Self {
                $name { message: message.into().into_boxed_str(), source: Some(Arc::new(source)) }
            }

            /// What failed, without the source.
            pub fn message(&self) -> &str {
                &self.message
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match &self.source {
                    Some(source) => write!(f, "{}: {source}", self.message),
                    None => f.write_str(&self.message),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("message", &self.message)
                    .field("source", &self.source)
                    .finish()
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
            }
        }

        /// Details compare by what they say (sources are not comparable).
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.to_string() == other.to_string()
            }
        }
        impl Eq for $name {}

        impl From<String> for $name {
            fn from(message: String) -> Self {
                $name::new(message)
            }
        }
        impl From<&str> for $name {
            fn from(message: &str) -> Self {
                $name::new(message)
            }
        }
    };
}

detail!(
    /// What a store said when it failed: the operation, the key or path, and the I/O or
    /// Redis error behind it. Your own [`Store`](crate::Store) makes one with
    /// `Error::Store("what failed".into())` or [`StoreError::with_source`].
    StoreError
);
detail!(
    /// Why an entry or a bus message could not be encoded or decoded, with the serde error.
    CodecError
);
detail!(
    /// Why the bus could not connect, subscribe or publish, with the Redis error.
    BusError
);

impl Error {
    /// A store error with the error it came from.
    pub fn store(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Store(StoreError::with_source(message, source))
    }

    /// A bus error with the error it came from.
    pub fn bus(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Bus(BusError::with_source(message, source))
    }

    /// A codec error with the serde error it came from.
    pub fn codec(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Codec(CodecError::with_source(message, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_store_error_keeps_its_source_and_says_both() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only file system");
        let e = Error::store("fs store: cannot write /x", io);
        assert_eq!(e.to_string(), "cache store error: fs store: cannot write /x: read-only file system");
        let detail = e.source().expect("the detail");
        let io = detail.source().expect("the I/O error");
        assert_eq!(io.to_string(), "read-only file system");
    }

    #[test]
    fn a_store_error_made_from_a_message_compares_by_its_text() {
        assert_eq!(Error::Store("down".into()), Error::Store(StoreError::new("down")));
        assert_ne!(Error::Store("down".into()), Error::Bus("down".into()));
    }
}
