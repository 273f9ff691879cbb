//! The generated helpers of a cached function: `NAME_key`, `NAME_invalidate`, `NAME_expire`,
//! `NAME_prime`, `NAME_uncached`, `NAME_clear` and `NAME_stats`. Their signatures are built
//! in one place ([`Helpers`]) for both the real expansion and the error path, where they
//! get bodies that cannot run, so that code calling them still compiles while the
//! attribute's one error is reported.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::expand::expansion::Expansion;
use crate::expand::function::dynamic_tags;
use crate::expand::many::{has_many, many_item};
use crate::expand::spans::respan;
use crate::signature::Sig;

/// One generated helper.
#[derive(Clone, Copy)]
enum Helper {
    Key,
    Invalidate,
    Expire,
    Prime,
    Clear,
    Stats,
}

/// What every helper's signature is made of.
struct Helpers<'a> {
    func: &'a syn::ItemFn,
    sig: &'a Sig,
    /// `{crate}::__private`.
    p: TokenStream,
    /// The type `NAME_prime` takes.
    value_ty: TokenStream,
    /// The key prefix, for the docs (`None` on the error path).
    prefix: Option<&'a str>,
}

impl Helpers<'_> {
    /// The helper `which`, with `body` (after the spec, if any).
    fn item(&self, which: Helper, spec: &TokenStream, body: TokenStream) -> TokenStream {
        let (func, sig, p) = (self.func, self.sig, &self.p);
        let ident = &func.sig.ident;
        let vis = &func.vis;
        let generics = &func.sig.generics;
        let where_clause = &func.sig.generics.where_clause;
        let keep_attrs = func
            .attrs
            .iter()
            .filter(|a| ["cfg", "allow", "expect", "warn", "deny"].iter().any(|n| a.path().is_ident(n)));
        let fn_name = ident.to_string();
        let prefix = self.prefix.map(|p| format!(" (`{p}…`)")).unwrap_or_default();
        let (suffix, doc) = match which {
            Helper::Key => {
                ("key", format!("The full storage key of a call of [`{fn_name}`] with these arguments{prefix}."))
            }
            Helper::Invalidate => (
                "invalidate",
                format!(
                    "Deletes the cached result of [`{fn_name}`] for these arguments; a run in flight won't store its result."
                ),
            ),
            Helper::Expire => (
                "expire",
                format!(
                    "Marks the cached result of [`{fn_name}`] for these arguments stale: still served under `swr`, no longer fresh."
                ),
            ),
            Helper::Prime => (
                "prime",
                format!("Stores `value` as the result of [`{fn_name}`] for these arguments, as if just produced."),
            ),
            Helper::Clear => ("clear", format!("Deletes every cached result of [`{fn_name}`]{prefix}.")),
            Helper::Stats => (
                "stats",
                format!(
                    "What [`{fn_name}`] has done in the runtime in force: hits, stale hits, misses, body runs, errors, grace answers."
                ),
            ),
        };
        let name = format_ident!("{}_{}", ident, suffix);
        // A sync function's helpers are sync: they drive their future on the caller's thread.
        let (async_kw, body) = match which {
            Helper::Key | Helper::Stats => (None, body),
            _ if sig.is_async => (Some(quote!(async)), body),
            _ => (None, quote!(#p::drive(async { #body }))),
        };
        if let Helper::Clear | Helper::Stats = which {
            let (asyncness, ret) = match which {
                Helper::Clear => (async_kw, quote!()),
                _ => (None, quote!(-> #p::CacheStats)),
            };
            return quote! {
                #(#keep_attrs)*
                #[doc = #doc]
                #[allow(dead_code)]
                #vis #asyncness fn #name() #ret {
                    #spec
                    #body
                }
            };
        }
        let receiver = sig.has_self.then(|| quote!(&self,));
        let params = sig.args.iter().map(|a| {
            let (i, t) = (&a.ident, &a.ty);
            quote!(#i: #t)
        });
        let touch_self = sig.has_self.then(|| quote!(let _ = self;));
        let value_ty = &self.value_ty;
        let (asyncness, extra, ret) = match which {
            Helper::Key => (None, None, quote!(-> ::std::string::String)),
            Helper::Prime => {
                let value = prime_param(sig);
                (async_kw, Some(quote!(#value: #value_ty)), quote!())
            }
            _ => (async_kw, None, quote!()),
        };
        quote! {
            #(#keep_attrs)*
            #[doc = #doc]
            #[allow(unused_variables, dead_code, clippy::unused_async)]
            #vis #asyncness fn #name #generics (#receiver #(#params,)* #extra) #ret #where_clause {
                #spec
                #touch_self
                #body
            }
        }
    }

    /// `NAME_uncached`: the function itself, without the cache.
    fn uncached(&self) -> TokenStream {
        let func = self.func;
        let mut sig = func.sig.clone();
        sig.ident = format_ident!("{}_uncached", func.sig.ident);
        let vis = &func.vis;
        let block = &func.block;
        let keep_attrs = func
            .attrs
            .iter()
            .filter(|a| ["cfg", "allow", "expect", "warn", "deny"].iter().any(|n| a.path().is_ident(n)));
        let doc = format!("[`{}`] without the cache: runs the body every time.", func.sig.ident);
        quote! {
            #(#keep_attrs)*
            #[doc = #doc]
            #[allow(dead_code)]
            #vis #sig #block
        }
    }
}

/// The name of `NAME_prime`'s value parameter: `value`, unless an argument has that name.
fn prime_param(sig: &Sig) -> syn::Ident {
    let name = if sig.args.iter().any(|a| a.ident == "value") { "__larder_value" } else { "value" };
    syn::Ident::new(name, proc_macro2::Span::call_site())
}

/// Every helper of the function, with their real bodies.
pub(crate) fn gen_helpers(x: &Expansion<'_>) -> TokenStream {
    let p = &x.p;
    let spec = &x.spec;
    let key = &x.key_expr;
    let helpers =
        Helpers { func: x.func, sig: x.sig, p: p.clone(), value_ty: x.value_ty.clone(), prefix: Some(&x.prefix) };
    let full_key = quote!(#p::full_key(&__LARDER_SPEC, #key));
    let this = quote!(#p::SpecRef::Static(&__LARDER_SPEC));
    let key_fn = helpers.item(Helper::Key, spec, quote!(::std::string::ToString::to_string(#full_key.as_str())));
    let invalidate_fn = helpers.item(Helper::Invalidate, spec, quote!(#p::invalidate(#this, #full_key).await));
    let expire_fn = helpers.item(Helper::Expire, spec, quote!(#p::expire(#this, #full_key).await));
    let prime_fn = {
        let value = prime_param(x.sig);
        let value = respan(quote!(#value), x.value_span);
        let arg_refs = &x.arg_refs;
        let tags = match dynamic_tags(x) {
            Some(e) => quote!((#e)(#(#arg_refs),*)),
            None => quote!(::std::vec::Vec::new()),
        };
        let prime = x.value_call(quote!(#p::prime), quote!(#this, #full_key, #value, #tags));
        let assert_value = x.assert_value();
        let value_await = x.value_await();
        helpers.item(Helper::Prime, spec, quote!(#assert_value #prime #value_await))
    };
    let clear_fn = helpers.item(Helper::Clear, spec, quote!(#p::clear_fn(#this).await));
    let stats_fn = helpers.item(Helper::Stats, spec, quote!(#p::stats(#this)));
    let uncached_fn = helpers.uncached();
    quote! {
        #key_fn
        #invalidate_fn
        #expire_fn
        #prime_fn
        #uncached_fn
        #clear_fn
        #stats_fn
    }
}

/// Every helper with its signature and a body that cannot run: what the error path emits
/// beside the function, so that a mistake in the attribute is its only error.
pub(crate) fn gen_stubs(func: &syn::ItemFn, sig: &Sig, krate: &syn::Path) -> TokenStream {
    let p = quote!(#krate::__private);
    let value_ty = match &sig.ret {
        crate::signature::Ret::Plain(t) => quote!(#t),
        crate::signature::Ret::Result(t) => quote!(<#t as #p::IsResult>::Ok),
    };
    let helpers = Helpers { func, sig, p, value_ty, prefix: None };
    let none = TokenStream::new();
    let stub = quote!(::core::unreachable!("`#[cached]` failed to expand: see its compile error"));
    let items = [Helper::Key, Helper::Invalidate, Helper::Expire, Helper::Prime, Helper::Clear, Helper::Stats]
        .map(|which| helpers.item(which, &none, stub.clone()));
    let uncached = helpers.uncached();
    let many = has_many(sig).then(|| many_item(func, sig, &none, stub.clone()));
    quote!(#(#items)* #uncached #many)
}
