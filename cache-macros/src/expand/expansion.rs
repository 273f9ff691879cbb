//! What every generated item of one function needs, computed once ([`Expansion`]): the
//! paths, the spec, the key expression, the value and error types and their spans.

use proc_macro2::TokenStream;
use quote::quote;

use crate::expand::key::{arg_refs, gen_key};
use crate::expand::spans::{respan, value_span};
use crate::expand::spec::gen_spec;
use crate::options::Options;
use crate::signature::{Ret, Sig};

/// One function's expansion, before any item is built.
pub(crate) struct Expansion<'a> {
    pub opts: &'a Options,
    pub sig: &'a Sig,
    pub func: &'a syn::ItemFn,
    /// `{crate}::__private`.
    pub p: TokenStream,
    /// The `static __LARDER_SPEC` item.
    pub spec: TokenStream,
    /// The prefix of the function's keys (for docs).
    pub prefix: String,
    /// The arguments as references (`&x`, or `x` for those already references).
    pub arg_refs: Vec<TokenStream>,
    /// The call's `CallKey`.
    pub key_expr: TokenStream,
    /// The cached value's type, and the error type (`Infallible` for a plain return).
    pub value_ty: TokenStream,
    pub err_ty: TokenStream,
    /// Makes the body's future a `Result` future.
    pub wrap: TokenStream,
    /// Turns `__larder_out: Result<V, E>` back into the function's return type.
    pub finish: TokenStream,
    /// Where the value's type is written.
    pub value_span: proc_macro2::Span,
}

impl<'a> Expansion<'a> {
    pub fn new(opts: &'a Options, sig: &'a Sig, func: &'a syn::ItemFn) -> Expansion<'a> {
        let krate = &opts.krate;
        let p = quote!(#krate::__private);
        let (spec, prefix) = gen_spec(opts, func, &p);
        let (value_ty, err_ty, wrap, finish) = match &sig.ret {
            Ret::Plain(t) => (
                quote!(#t),
                quote!(::core::convert::Infallible),
                quote!(#p::ok),
                quote!(#p::unwrap_infallible(__larder_out)),
            ),
            Ret::Result(t) => (
                quote!(<#t as #p::IsResult>::Ok),
                quote!(<#t as #p::IsResult>::Err),
                quote!(#p::as_result),
                quote!(<#t as #p::IsResult>::from_result(__larder_out)),
            ),
        };
        let key_expr = gen_key(opts, sig, &p);
        Expansion {
            opts,
            sig,
            func,
            spec,
            prefix,
            arg_refs: arg_refs(sig),
            key_expr,
            value_ty,
            err_ty,
            wrap,
            finish,
            value_span: value_span(&sig.ret),
            p,
        }
    }

    /// The check of what the value must be. It is checked once, and a type that falls
    /// short is reported once, at the return type: the check and the calls that need the
    /// same bounds all carry the return type's span, so rustc reports each unmet bound a
    /// single time.
    pub fn assert_value(&self) -> TokenStream {
        let (p, value_ty) = (&self.p, &self.value_ty);
        respan(quote!(#p::assert_value::<#value_ty>();), self.value_span)
    }

    /// `function(args)` for a runtime function with bounds on the value, spanned like
    /// [`assert_value`](Self::assert_value) so that a bound the value misses is reported
    /// once, by `assert_value` (which every function that makes such a call runs first).
    pub fn value_call(&self, function: TokenStream, args: TokenStream) -> TokenStream {
        let function = respan(function, self.value_span);
        let mut args = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args);
        args.set_span(self.value_span);
        quote!(#function #args)
    }

    /// `.await`, spanned at the value's type.
    pub fn value_await(&self) -> TokenStream {
        respan(quote!(.await), self.value_span)
    }
}
