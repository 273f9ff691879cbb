//! What the `#[cached]` expansion names (through `::larder::__private`), and nothing else.
//! Not a public API: it changes without notice. Keys are built here from what the
//! expansion has (arguments, a `get_key` result), and compile-time checks on the user's
//! types are spelled as traits so that their errors name the fix.

pub use crate::blocking::drive;
pub use crate::call::algorithm::{Call, call};
pub use crate::call::batch::{Prefetched, prefetch};
pub use crate::call::helpers::{clear_fn, expire, invalidate, prime, stats};
pub use crate::call::lookup::hit;
pub use crate::call::share::{ErrShare, Errors, Pick, PickClone, PickFrom, PickNone};
pub use crate::call::spec::{FnSpec, MountHint, SpecRef};
pub use crate::call::strategy::{
    DynTags, Job, NoRefresh, NoTags, Refresher, SpawnRefresh, TagSource, blocking_refresh, dyn_tags, spawn_refresh,
};
pub use crate::entry::{Policy, Window};
pub use crate::key::storage_key::{CallKey, Key};
pub use crate::memo::{memo, memo_hash};
pub use crate::mount::stats::CacheStats;
pub use futures_util::future::join_all;
pub use serde;
use serde::Serialize;
pub use std::borrow::Cow;
use std::future::Future;

/// The default key of a function with arguments: only its digest and id until a miss
/// needs the string.
#[inline]
pub fn key_args<A: Serialize + ?Sized>(spec: &FnSpec, args: &A) -> CallKey {
    let digest = crate::key::canonical::hash(args);
    CallKey::Digest { id: spec.digest_id(digest), digest }
}

/// The key of a function without arguments.
#[inline]
pub fn key_default(spec: &FnSpec) -> CallKey {
    CallKey::Built(Key::default_for(&spec.prefix))
}

/// The key of a `get_key` result.
#[inline]
pub fn key_display<D: std::fmt::Display + ?Sized>(spec: &FnSpec, raw: &D) -> CallKey {
    CallKey::Built(Key::from_display(&spec.prefix, raw))
}

/// A `get_key` result whose text is had without `fmt`: strings and integers. Its key
/// is the same as through `Display`, only built faster.
pub trait KeyText {
    /// Calls `f` with the text of the key.
    fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R;
}
macro_rules! key_text_str {
    ($($t:ty),*) => {$(
        impl KeyText for $t {
            #[inline]
            fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
                f(self)
            }
        }
    )*};
}
key_text_str!(str, String, Box<str>, Cow<'_, str>);
impl<T: KeyText + ?Sized> KeyText for &T {
    #[inline]
    fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        (**self).with_text(f)
    }
}
/// Calls `f` with the decimal text of an integer (its magnitude, and whether it is
/// negative), as `Display` writes it.
#[inline]
fn int_text<R>(magnitude: u128, negative: bool, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 40];
    let mut at = buf.len();
    let mut n = magnitude;
    // Digits beyond 64 bits in 128-bit arithmetic (slow), the rest in 64-bit.
    while n > u128::from(u64::MAX) {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let mut n = n as u64;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    // SAFETY: ASCII digits and `-` only.
    f(unsafe { std::str::from_utf8_unchecked(&buf[at..]) })
}
macro_rules! key_text_int {
    (unsigned: $($u:ty),*; signed: $($i:ty),*) => {
        $(impl KeyText for $u {
            #[inline]
            fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
                int_text(*self as u128, false, f)
            }
        })*
        $(impl KeyText for $i {
            #[inline]
            fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
                int_text(self.unsigned_abs() as u128, *self < 0, f)
            }
        })*
    };
}
key_text_int!(unsigned: u8, u16, u32, u64, u128, usize; signed: i8, i16, i32, i64, i128, isize);

/// A `get_key` result, for the generated code's choice of how to build its key:
/// `(&&KeyRaw(&raw)).larder_key(spec)` takes [`KeyText`] if the result has it, else
/// `Display`, else a placeholder (for a result that is not `Display`, which
/// [`key_display`] has already reported as a compile error: it never runs).
pub struct KeyRaw<'a, T: ?Sized>(pub &'a T);
/// The key of a [`KeyText`] result.
pub trait KeyFromText {
    /// The call's key.
    fn larder_key(&self, spec: &FnSpec) -> CallKey;
}
impl<T: KeyText + ?Sized> KeyFromText for &KeyRaw<'_, T> {
    #[inline]
    fn larder_key(&self, spec: &FnSpec) -> CallKey {
        self.0.with_text(|text| CallKey::Built(Key::from_text(&spec.prefix, text)))
    }
}
/// The key of a `Display` result.
pub trait KeyFromDisplay {
    /// The call's key.
    fn larder_key(&self, spec: &FnSpec) -> CallKey;
}
impl<T: std::fmt::Display + ?Sized> KeyFromDisplay for &&KeyRaw<'_, T> {
    #[inline]
    fn larder_key(&self, spec: &FnSpec) -> CallKey {
        key_display(spec, self.0)
    }
}
/// The placeholder key of a result that is neither (the build has failed already).
pub trait KeyNotDisplay {
    /// A placeholder.
    fn larder_key(&self, spec: &FnSpec) -> CallKey;
}
impl<T: ?Sized> KeyNotDisplay for KeyRaw<'_, T> {
    fn larder_key(&self, spec: &FnSpec) -> CallKey {
        key_default(spec)
    }
}

/// The full key of a call.
#[inline]
pub fn full_key(spec: &FnSpec, key: CallKey) -> Key {
    key.into_key(&spec.prefix)
}

/// An error type that `hard_timeout` can fail a call with.
#[diagnostic::on_unimplemented(
    message = "`hard_timeout` fails a slow call with `larder::Error::Timeout`, but `{Self}` can't be made from a `larder::Error`",
    label = "`{Self}` needs `From<larder::Error>`",
    note = "add `impl From<larder::Error> for {Self}` (e.g. a `Timeout` variant), or remove `hard_timeout`"
)]
pub trait TimeoutError {
    /// The error of a call abandoned after `hard_timeout`.
    fn timeout() -> Self;
}
impl<E: From<crate::Error>> TimeoutError for E {
    fn timeout() -> Self {
        E::from(crate::Error::Timeout)
    }
}

/// The error of a call abandoned after `hard_timeout`.
pub fn timeout_error<E: TimeoutError>() -> E {
    E::timeout()
}

/// A return type that is a `Result`: only `Ok` is cached.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Result`, so `#[cached]` can't tell its errors from its values",
    label = "not a `Result`",
    note = "remove `result = true`, or return a `Result` (or an alias of one)"
)]
pub trait IsResult {
    /// The cached value.
    type Ok;
    /// The error, never cached.
    type Err;
    /// As a `Result`.
    fn into_result(self) -> Result<Self::Ok, Self::Err>;
    /// From a `Result`.
    fn from_result(r: Result<Self::Ok, Self::Err>) -> Self;
}

impl<T, E> IsResult for Result<T, E> {
    type Ok = T;
    type Err = E;
    #[inline]
    fn into_result(self) -> Result<T, E> {
        self
    }
    #[inline]
    fn from_result(r: Result<T, E>) -> Self {
        r
    }
}

/// The value of a call that cannot fail.
#[inline]
pub fn unwrap_infallible<V>(r: Result<V, std::convert::Infallible>) -> V {
    match r {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// The body of a function that cannot fail, as a `Result`.
pub async fn ok<F: Future>(f: F) -> Result<F::Output, std::convert::Infallible> {
    Ok(f.await)
}

/// The body of a function returning a `Result`, as a `Result`.
pub async fn as_result<F>(f: F) -> Result<<F::Output as IsResult>::Ok, <F::Output as IsResult>::Err>
where
    F: Future,
    F::Output: IsResult,
{
    f.await.into_result()
}

/// An argument that makes part of a default key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` can't be part of the default cache key: it is not `serde::Serialize`",
    label = "this argument makes part of the default key",
    note = "derive `Serialize` for it, or give `#[cached]` a key: `get_key = |…| …` returning something `Display`"
)]
pub trait KeyArg {}
impl<T: ?Sized + Serialize> KeyArg for T {}

/// Checks that an argument can be part of a default key.
#[inline(always)]
pub fn key_arg<T: ?Sized + KeyArg>(_: &T) {}

/// Checks, at compile time, what a cached value must be.
#[inline(always)]
pub fn assert_value<V>()
where
    V: Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
}

#[cfg(test)]
mod tests {
    use super::KeyText;
    use crate::key::storage_key::Key;

    /// The key built from a result's text without `fmt` is the one `Display` gives.
    #[test]
    fn key_text_is_what_display_writes() {
        fn same<T: KeyText + std::fmt::Display + ?Sized>(raw: &T) {
            let fast = raw.with_text(|text| Key::from_text("g:n:", text));
            let slow = Key::from_display("g:n:", raw);
            assert_eq!(fast.as_str(), slow.as_str(), "{raw}");
            assert_eq!(fast.id(), slow.id(), "{raw}");
        }
        for n in [0u64, 7, 10, 99, 100, 1234567890, u64::MAX] {
            same(&n);
        }
        for n in [0i64, -1, -10, i64::MIN, i64::MAX] {
            same(&n);
        }
        same(&u128::MAX);
        same(&i128::MIN);
        same(&(u64::MAX as u128 + 1));
        same(&i8::MIN);
        same(&u8::MAX);
        same(&usize::MAX);
        for s in ["", "plain", "rust-lang/rust@1.95.0-ab", "../../etc/passwd", "a//b", "é/ü", &"x".repeat(300)] {
            same(s);
            same(&s.to_owned());
            same(&&s);
            same(&std::borrow::Cow::Borrowed(s));
            same(&Box::<str>::from(s));
        }
    }
}
