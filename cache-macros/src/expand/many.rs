//! `NAME_many`: the function for many argument sets at once, results in their order. Every
//! key is computed first; the runtime answers what it can from memory in one pass and from
//! L2 in one round trip (`prefetch`); each set still missing then runs the function's own
//! call (single-flight, `swr`, grace, tags), told not to read L2 again. The calls of one
//! batch run concurrently (an async body) or one after another (a sync body, on the
//! caller's thread). Not emitted for a function without arguments (it has one key) or with
//! an `impl Trait` argument (a batch can't name its type).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::visit_mut::VisitMut;

use crate::expand::expansion::Expansion;
use crate::expand::function::gen_call;
use crate::expand::key::{arg_refs, gen_key, gen_predicate};
use crate::signature::{Arg, Ret, Sig};

/// Whether the function gets a `NAME_many`.
pub(crate) fn has_many(sig: &Sig) -> bool {
    !sig.args.is_empty() && !sig.args.iter().any(|a| a.is_impl)
}

/// The type of one argument set: the argument's type, or a tuple of them, with each elided
/// lifetime named (`&str` → `&'__larder_item str`: an `impl Trait` argument of a plain `fn`
/// can't elide it); and whether one was.
fn item_type(sig: &Sig) -> (TokenStream, bool) {
    struct Name(bool);
    impl VisitMut for Name {
        fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
            if r.lifetime.is_none() {
                r.lifetime = Some(syn::Lifetime::new(ITEM_LIFETIME, r.and_token.span));
                self.0 = true;
            }
            syn::visit_mut::visit_type_reference_mut(self, r);
        }
        fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
            if l.ident == "_" {
                *l = syn::Lifetime::new(ITEM_LIFETIME, l.span());
                self.0 = true;
            }
        }
    }
    let mut named = Name(false);
    let tys: Vec<syn::Type> = sig
        .args
        .iter()
        .map(|a| {
            let mut t = a.ty.clone();
            named.visit_type_mut(&mut t);
            t
        })
        .collect();
    let item = if tys.len() == 1 { quote!(#(#tys)*) } else { quote!((#(#tys,)*)) };
    (item, named.0)
}

/// The lifetime of the references in an argument set.
const ITEM_LIFETIME: &str = "'__larder_item";

/// `NAME_many` with `body` (after the spec): its signature is the same on the error path.
pub(crate) fn many_item(func: &syn::ItemFn, sig: &Sig, spec: &TokenStream, body: TokenStream) -> TokenStream {
    let ident = &func.sig.ident;
    let name = format_ident!("{}_many", ident);
    let vis = &func.vis;
    let (item, named) = item_type(sig);
    let mut generics = func.sig.generics.clone();
    if named {
        let lifetime = syn::Lifetime::new(ITEM_LIFETIME, proc_macro2::Span::call_site());
        generics.params.insert(0, syn::GenericParam::Lifetime(syn::LifetimeParam::new(lifetime)));
    }
    let where_clause = &generics.where_clause;
    let ret = sig.ret.ty();
    let receiver = sig.has_self.then(|| quote!(&self,));
    let asyncness = sig.is_async.then(|| quote!(async));
    let keep_attrs =
        func.attrs.iter().filter(|a| ["cfg", "allow", "expect", "warn", "deny"].iter().any(|n| a.path().is_ident(n)));
    let doc = format!(
        "[`{ident}`] for each argument set of `calls`, the results in their order: fresh entries from memory in one pass, then from L2 in one round trip for the rest; the body runs only for the sets still missing (each key single-flight with every other caller)."
    );
    quote! {
        #(#keep_attrs)*
        #[doc = #doc]
        #[allow(dead_code, clippy::type_complexity)]
        #vis #asyncness fn #name #generics (
            #receiver
            calls: impl ::core::iter::IntoIterator<Item = #item>,
        ) -> ::std::vec::Vec<#ret> #where_clause {
            #spec
            #body
        }
    }
}

/// The signature as `NAME_many` sees an argument set by reference: every argument is a
/// reference (owned ones borrowed from the set), so that the key and the predicates are
/// computed without taking the set apart.
fn borrowed(sig: &Sig) -> Sig {
    let args = sig
        .args
        .iter()
        .map(|a| Arg {
            ident: a.ident.clone(),
            mutability: None,
            ty: a.ty.clone(),
            referent: Some(a.referent.clone().unwrap_or_else(|| a.ty.clone())),
            is_impl: a.is_impl,
        })
        .collect();
    let ret = match &sig.ret {
        Ret::Plain(t) => Ret::Plain(t.clone()),
        Ret::Result(t) => Ret::Result(t.clone()),
    };
    Sig { is_async: sig.is_async, has_self: sig.has_self, args, ret }
}

/// `NAME_many` of a function, with its real body.
pub(crate) fn gen_many(x: &Expansion<'_>) -> TokenStream {
    if !has_many(x.sig) {
        return TokenStream::new();
    }
    let (opts, sig, p) = (x.opts, x.sig, &x.p);
    let (value_ty, err_ty, finish) = (&x.value_ty, &x.err_ty, &x.finish);
    let idents: Vec<&syn::Ident> = sig.args.iter().map(|a| &a.ident).collect();
    let by_ref = borrowed(sig);
    let refs = arg_refs(&by_ref);
    let key_expr = gen_key(opts, &by_ref, p);
    let bypass = gen_predicate(&opts.bypass, &refs);
    let invalidate = gen_predicate(&opts.invalidate, &refs);
    // One argument set, by reference (`&(A, &str)` → `a: &A`, `s: &str`), and by value.
    let (bind_refs, bind_owned) = if sig.args.len() == 1 {
        (quote!(let #(#idents)* = __larder_item;), quote!(let #(#idents)* = __larder_item;))
    } else {
        (quote!(let (#(#idents,)*) = __larder_item;), quote!(let (#(#idents,)*) = __larder_item;))
    };
    let reborrow = sig.args.iter().filter_map(|a| {
        let (i, t) = (&a.ident, a.referent.as_ref()?);
        Some(quote!(let #i: &#t = *#i;))
    });
    let call = gen_call(x, quote!(__larder_key), false);
    let assert_value = x.assert_value();
    let prefetch = x.value_call(quote!(#p::prefetch::<#value_ty>), quote!(&__LARDER_SPEC, __larder_plan));
    let ret_ty = sig.ret.ty();
    let value_await = x.value_await();
    let body = quote! {
        #[allow(unused_imports)]
        use #p::{PickClone as _, PickFrom as _, PickNone as _};
        #assert_value
        let __larder_calls: ::std::vec::Vec<_> = ::core::iter::IntoIterator::into_iter(calls).collect();
        let __larder_plan: ::std::vec::Vec<(::core::option::Option<#p::CallKey>, bool)> = __larder_calls
            .iter()
            .map(|__larder_item| {
                #[allow(unused_variables)]
                #bind_refs
                #(#[allow(unused_variables)] #reborrow)*
                let __larder_key = if #bypass { ::core::option::Option::None } else { ::core::option::Option::Some(#key_expr) };
                let __larder_invalidate: bool = __larder_key.is_some() && #invalidate;
                (__larder_key, __larder_invalidate)
            })
            .collect();
        let __larder_invalidates: ::std::vec::Vec<bool> = __larder_plan.iter().map(|(_, __larder_i)| *__larder_i).collect();
        let __larder_found = #prefetch #value_await;
        // Answered ones now, a call for each of the others (all at once), in order.
        let mut __larder_results: ::std::vec::Vec<::core::option::Option<#ret_ty>> =
            ::std::vec::Vec::with_capacity(__larder_found.len());
        let mut __larder_runs = ::std::vec::Vec::new();
        for ((__larder_item, __larder_invalidate), __larder_found) in ::core::iter::Iterator::zip(
            ::core::iter::Iterator::zip(__larder_calls.into_iter(), __larder_invalidates),
            __larder_found,
        ) {
            match __larder_found {
                #p::Prefetched::Found(__larder_v) => {
                    let __larder_out = ::core::result::Result::Ok(__larder_v);
                    __larder_results.push(::core::option::Option::Some(#finish));
                }
                #p::Prefetched::Missing(__larder_key) => {
                    __larder_results.push(::core::option::Option::None);
                    let __larder_share = (&&&#p::Pick::<#err_ty>::new()).err_share();
                    __larder_runs.push(async move {
                        #bind_owned
                        let __larder_out = #call #value_await;
                        #finish
                    });
                }
            }
        }
        let mut __larder_ran = ::core::iter::IntoIterator::into_iter(#p::join_all(__larder_runs).await);
        __larder_results
            .into_iter()
            .map(|__larder_r| match __larder_r {
                ::core::option::Option::Some(__larder_r) => __larder_r,
                ::core::option::Option::None => match ::core::iter::Iterator::next(&mut __larder_ran) {
                    ::core::option::Option::Some(__larder_r) => __larder_r,
                    ::core::option::Option::None => ::core::unreachable!("one run per set not answered"),
                },
            })
            .collect()

    };
    let body = if sig.is_async { body } else { quote!(#p::drive(async move { #body })) };
    many_item(x.func, sig, &x.spec, body)
}
