//! The rewritten function (`gen_function`) and the body as the async block a call runs
//! (`gen_block`), with what the call is handed: the background refresh and the dynamic tags.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::expand::expansion::Expansion;
use crate::expand::key::gen_predicate;
use crate::expand::spans::respan;
use crate::options::{Stale, TagsOpt};

/// The body as an async block whose output is the function's return type, even with
/// `return` and `?` inside it; `prelude` binds the arguments first. A sync body runs as a
/// closure inside the block (its `return` leaves the closure; an `.await` in it stays the
/// error it is in a plain `fn`): a future that never waits.
pub(crate) fn gen_block(x: &Expansion<'_>, prelude: TokenStream) -> TokenStream {
    let ret_ty = x.sig.ret.ty();
    let block = &x.func.block;
    if !x.sig.is_async {
        return quote! {
            async move {
                #prelude
                #[allow(clippy::redundant_closure_call)]
                let __larder_out: #ret_ty = (move || -> #ret_ty #block)();
                __larder_out
            }
        };
    }
    quote! {
        async move {
            #prelude
            #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
            if false {
                let __larder_never: #ret_ty = loop {};
                return __larder_never;
            };
            // Bound, not the tail: a body `{ expr }` as the tail of this block would
            // draw `unused_braces` on the user's code.
            let __larder_out: #ret_ty = #block;
            __larder_out
        }
    }
}

/// The background refresh (`swr`, soft `timeout`): owned copies of the arguments and a
/// `'static` future of the body; `NoRefresh` without either option.
fn gen_refresh(x: &Expansion<'_>) -> TokenStream {
    let (opts, sig, p, wrap) = (x.opts, x.sig, &x.p, &x.wrap);
    let idents: Vec<&syn::Ident> = sig.args.iter().map(|a| &a.ident).collect();
    let arg_tys: Vec<&syn::Type> = sig.args.iter().map(|a| &a.ty).collect();
    let uncached = format_ident!("{}_uncached", x.func.sig.ident);
    if matches!(opts.stale, Stale::Off) && opts.timeout_ms.is_none() && opts.refresh_ahead_permille == 0 {
        quote!(#p::NoRefresh)
    } else {
        let owned: Vec<syn::Ident> = (0..sig.args.len()).map(|i| format_ident!("__larder_owned{}", i)).collect();
        let to_owned = sig.args.iter().zip(&owned).map(|(a, o)| {
            let i = &a.ident;
            match &a.referent {
                Some(t) => quote!(let #o = <#t as ::std::borrow::ToOwned>::to_owned(*#i);),
                None => {
                    let t = &a.ty;
                    quote!(let #o = <#t as ::core::clone::Clone>::clone(#i);)
                }
            }
        });
        let await_ = sig.is_async.then(|| quote!(.await));
        let borrowed = sig.args.iter().zip(&owned).map(|(a, o)| match &a.referent {
            Some(_) => quote!(::std::borrow::Borrow::borrow(&#o)),
            None => quote!(#o),
        });
        let future = if sig.has_self {
            quote! {
                let __larder_self = <Self as ::core::clone::Clone>::clone(self);
                #wrap(async move { Self::#uncached(&__larder_self, #(#borrowed),*) #await_ })
            }
        } else {
            let rebind = sig.args.iter().zip(&owned).map(|(a, o)| {
                let i = &a.ident;
                let m = &a.mutability;
                match &a.referent {
                    Some(t) => quote!(let #m #i: &#t = ::std::borrow::Borrow::borrow(&#o);),
                    None => quote!(let #m #i = #o;),
                }
            });
            let inner = gen_block(
                x,
                quote!(#[allow(unused_variables, unused_mut)] let _ = (); #(#[allow(unused_variables, unused_mut)] #rebind)*),
            );
            quote!(#wrap(#inner))
        };
        let closure = quote! {
            move |__larder_args: &(#(#arg_tys,)*)| {
                #[allow(unused_variables)]
                let (#(#idents,)*) = __larder_args;
                #(#to_owned)*
                #future
            }
        };
        let refresher = if sig.is_async { quote!(#p::spawn_refresh) } else { quote!(#p::blocking_refresh) };
        x.value_call(refresher, closure)
    }
}

/// The dynamic tags (`tags = |…| …`): computed from the arguments only when the body is
/// about to run; `NoTags` without them.
fn gen_tags(x: &Expansion<'_>) -> TokenStream {
    let (sig, p) = (x.sig, &x.p);
    let idents: Vec<&syn::Ident> = sig.args.iter().map(|a| &a.ident).collect();
    let arg_tys: Vec<&syn::Type> = sig.args.iter().map(|a| &a.ty).collect();
    match dynamic_tags(x) {
        Some(e) => {
            let passed = sig.args.iter().map(|a| {
                let i = &a.ident;
                if a.referent.is_some() { quote!(*#i) } else { quote!(#i) }
            });
            quote! {
                #p::dyn_tags(move |__larder_args: &(#(#arg_tys,)*)| -> ::std::vec::Vec<::std::string::String> {
                    #[allow(unused_variables)]
                    let (#(#idents,)*) = __larder_args;
                    (#e)(#(#passed),*)
                })
            }
        }
        None => quote!(#p::NoTags),
    }
}

/// The `tags = |…| …` closure, if the tags are dynamic.
pub(crate) fn dynamic_tags<'a>(x: &Expansion<'a>) -> Option<&'a syn::Expr> {
    match &x.opts.tags {
        Some(TagsOpt::Dynamic(e)) => Some(e),
        _ => None,
    }
}

/// The call's future (`Result<V, E>`): `Call` of the runtime, with `key` (an
/// `Option<Key>`), the body and its background refresh, and `__larder_invalidate`,
/// `__larder_share` and the arguments in scope. `read_l2`: false when the caller has just
/// read L2 for the key.
pub(crate) fn gen_call(x: &Expansion<'_>, key: TokenStream, read_l2: bool) -> TokenStream {
    let (p, err_ty, wrap) = (&x.p, &x.err_ty, &x.wrap);
    let idents: Vec<&syn::Ident> = x.sig.args.iter().map(|a| &a.ident).collect();
    let pats = x.sig.args.iter().map(|a| {
        let m = &a.mutability;
        let i = &a.ident;
        quote!(#m #i)
    });
    let body = gen_block(
        x,
        quote! {
            #[allow(unused_variables, unused_mut)]
            let (#(#pats,)*) = __larder_args;
        },
    );
    let refresh = gen_refresh(x);
    let tag_source = gen_tags(x);
    let timeout_error = match &x.opts.hard_timeout {
        Some((_, span)) => {
            let make = respan(quote!(#p::timeout_error::<#err_ty>), *span);
            quote!(::core::option::Option::Some(#make))
        }
        None => quote!(::core::option::Option::None),
    };
    x.value_call(
        quote!(#p::call),
        quote! {
            #p::SpecRef::Static(&__LARDER_SPEC),
            #key,
            __larder_invalidate,
            #p::Errors { share: __larder_share, timeout: #timeout_error },
            (#(#idents,)*),
            |__larder_args| #wrap(#body),
            #refresh,
            #tag_source,
            #read_l2,
        },
    )
}

/// The rewritten function: the hit path before any future is built, then the boxed call.
pub(crate) fn gen_function(x: &Expansion<'_>) -> TokenStream {
    let (opts, sig, p) = (x.opts, x.sig, &x.p);
    let (attrs, vis, fn_sig) = (&x.func.attrs, &x.func.vis, &x.func.sig);
    let (spec, key_expr, value_ty, err_ty, finish) = (&x.spec, &x.key_expr, &x.value_ty, &x.err_ty, &x.finish);
    let bypass = gen_predicate(&opts.bypass, &x.arg_refs);
    let invalidate = gen_predicate(&opts.invalidate, &x.arg_refs);
    let assert_value = x.assert_value();
    let value_await = x.value_await();
    let key = quote!(__larder_key.map(|__larder_key| #p::full_key(&__LARDER_SPEC, __larder_key)));
    let call = gen_call(x, key, true);

    let hit = x.value_call(quote!(#p::hit::<#value_ty>), quote!(&__LARDER_SPEC, __larder_k));
    // A sync function drives the call on its thread; an async one boxes it, so that this
    // function's own future stays small.
    let run_call = if sig.is_async {
        let boxed_call = x.value_call(quote!(::std::boxed::Box::pin), call);
        quote!(#boxed_call #value_await)
    } else {
        x.value_call(quote!(#p::drive), call)
    };

    quote! {
        #(#attrs)*
        #vis #fn_sig {
            #spec
            #[allow(unused_imports)]
            use #p::{PickClone as _, PickFrom as _, PickNone as _};
            #assert_value
            let __larder_share = (&&&#p::Pick::<#err_ty>::new()).err_share();
            let __larder_key = if #bypass { ::core::option::Option::None } else { ::core::option::Option::Some(#key_expr) };
            let __larder_invalidate: bool = __larder_key.is_some() && #invalidate;
            // A fresh hit returns before the call's future is built.
            if let (::core::option::Option::Some(__larder_k), false) = (&__larder_key, __larder_invalidate) {
                if let ::core::option::Option::Some(__larder_v) = #hit {
                    let __larder_out = ::core::result::Result::Ok(__larder_v);
                    return #finish;
                }
            }
            let __larder_out = #run_call;
            #finish
        }
    }
}
