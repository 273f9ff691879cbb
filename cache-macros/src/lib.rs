//! The `#[cached]` attribute of larder. Use it through the `larder` crate; its
//! documentation is there.
//!
//! Parse (darling, module `options`) → check the options as a whole and the signature
//! (`signature`) → expand (`expand`). Every problem is a compile error at the span
//! of what caused it, with what to write instead.

use proc_macro::TokenStream;

mod duration;
mod expand;
mod memo;
mod option_names;
mod options;
mod signature;

/// Caches the results of an `async fn` or a plain `fn`. See the `larder` crate.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::entry::cached(attr.into(), item.into()).into()
}

/// On an `impl Trait for Type` block: its `#[cached(…)]` methods move to an inherent
/// `impl Type` beside it (where their helpers live) and the trait methods call them. See
/// the `larder` crate.
#[proc_macro_attribute]
pub fn cached_impl(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::trait_impl::cached_impl(attr.into(), item.into()).into()
}

/// Memoizes an `async fn` within one request: inside `larder::request_scope(…)`, calls
/// with equal arguments (`Hash`) run once, concurrent ones included, and the result
/// (`Clone`) is dropped with the scope. Outside a scope the function just runs. See the
/// `larder` crate.
#[proc_macro_attribute]
pub fn memo(attr: TokenStream, item: TokenStream) -> TokenStream {
    memo::memo(attr.into(), item.into()).into()
}
