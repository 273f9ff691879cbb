//! Parse → check → expand. On any error the user's function is emitted unchanged, with
//! the errors, so that one mistake gives one error.

use darling::FromMeta;
use darling::ast::NestedMeta;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::options::{Options, RawOptions, Stale};
use crate::signature::{self, Ret, Sig};

/// The whole attribute.
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let msg = syn::Error::new(e.span(), "`#[cached]` goes on an `async fn` (free, or a method of an `impl` block)");
            let err = msg.to_compile_error();
            return quote!(#item #err);
        }
    };
    match check(attr, &func) {
        Ok((opts, sig)) => expand(&opts, &sig, &func),
        Err(e) => {
            let errors = e.write_errors();
            quote!(#func #errors)
        }
    }
}

fn check(attr: TokenStream, func: &syn::ItemFn) -> darling::Result<(Options, Sig)> {
    let mut errors = darling::Error::accumulator();
    let metas = errors.handle(NestedMeta::parse_meta_list(attr).map_err(darling::Error::from));
    let raw = metas.and_then(|m| errors.handle(RawOptions::from_list(&m)));
    let opts = raw.and_then(|r| errors.handle(r.build(&func.sig.ident.to_string())));
    let has_get_key = opts.as_ref().is_some_and(|o| o.get_key.is_some());
    let sig = errors.handle(signature::analyse(&func.sig, has_get_key));
    if let (Some(o), Some(s)) = (&opts, &sig) {
        for (option, expr) in [("get_key", &o.get_key), ("should_bypass_cache", &o.bypass), ("should_invalidate_cache", &o.invalidate)] {
            if let Some(expr) = expr {
                errors.handle(signature::check_closure(option, expr, s));
            }
        }
    }
    errors.finish()?;
    Ok((opts.expect("no errors"), sig.expect("no errors")))
}

/// The integrity: xxh3-128 of the function's tokens and the options that change results
/// (not `name`, `group`, `base`), or of `integrity = "…"` when given.
fn integrity(opts: &Options, func: &syn::ItemFn) -> u128 {
    let text = match &opts.integrity {
        Some(given) => format!("integrity:{given}"),
        None => {
            let sig = &func.sig;
            let block = &func.block;
            let get_key = opts.get_key.as_ref().map(|e| quote!(#e).to_string()).unwrap_or_default();
            format!("{}\nmax_age={}\nstale={:?}\nget_key={}", quote!(#sig #block), opts.max_age_ms, opts.stale, get_key)
        }
    };
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

fn expand(opts: &Options, sig: &Sig, func: &syn::ItemFn) -> TokenStream {
    let krate = &opts.krate;
    let p = quote!(#krate::__private);
    let vis = &func.vis;
    let attrs = &func.attrs;
    let fn_sig = &func.sig;
    let block = &func.block;
    let ident = &fn_sig.ident;
    let (_, _, where_clause) = fn_sig.generics.split_for_impl();
    let generics = &fn_sig.generics;
    let ret_ty = sig.ret.ty();

    // --- the spec, repeated as a local `const` in every generated function
    let group = &opts.group;
    let name = &opts.name;
    let prefix = format!("{}:{}:", group.replace('/', ":"), name);
    let base = &opts.base;
    let integrity = Literal::u128_suffixed(integrity(opts, func));
    let max_age = opts.max_age_ms;
    let stale = match opts.stale {
        Stale::Off => quote!(#p::Window::None),
        Stale::For(ms) => quote!(#p::Window::For(#ms)),
        Stale::Forever => quote!(#p::Window::Forever),
    };
    let spec = quote! {
        static __LARDER_SPEC: #p::FnSpec = #p::FnSpec {
            group: #p::Cow::Borrowed(#group),
            name: #p::Cow::Borrowed(#name),
            prefix: #p::Cow::Borrowed(#prefix),
            base: #p::Cow::Borrowed(#base),
            integrity: #integrity,
            policy: #p::Policy { max_age_ms: #max_age, stale: #stale, grace: #p::Window::None },
            tags: #p::Cow::Borrowed(&[]),
            grace_backoff_ms: 10_000,
            timeout_ms: ::core::option::Option::None,
            hard_timeout_ms: ::core::option::Option::None,
        };
    };

    // --- arguments
    let idents: Vec<&syn::Ident> = sig.args.iter().map(|a| &a.ident).collect();
    let pats: Vec<TokenStream> = sig
        .args
        .iter()
        .map(|a| {
            let m = &a.mutability;
            let i = &a.ident;
            quote!(#m #i)
        })
        .collect();
    let arg_refs: Vec<TokenStream> = sig
        .args
        .iter()
        .map(|a| {
            let i = &a.ident;
            if a.referent.is_some() { quote!(#i) } else { quote!(&#i) }
        })
        .collect();
    let arg_tys: Vec<&syn::Type> = sig.args.iter().map(|a| &a.ty).collect();

    let key_expr = match &opts.get_key {
        Some(get_key) => quote!(#p::key_display(&__LARDER_SPEC, &(#get_key)(#(#arg_refs),*))),
        None if sig.args.is_empty() => quote!(#p::key_default(&__LARDER_SPEC)),
        None => {
            let checks = sig.args.iter().zip(&arg_refs).map(|(a, r)| quote_spanned!(a.ty.span()=> #p::key_arg(#r);));
            quote!({ #(#checks)* #p::key_args(&__LARDER_SPEC, &(#(#arg_refs,)*)) })
        }
    };
    let predicate = |e: &Option<syn::Expr>| match e {
        Some(e) => quote!({ let __larder_flag: bool = (#e)(#(#arg_refs),*); __larder_flag }),
        None => quote!(false),
    };
    let bypass = predicate(&opts.bypass);
    let invalidate = predicate(&opts.invalidate);

    // --- value and error types
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
    let assert_value = quote_spanned!(ret_ty.span()=> #p::assert_value::<#value_ty>(););

    // The body as an async block whose output is the function's return type, even with
    // `return` and `?` inside it.
    let body_block = |prelude: TokenStream| {
        quote! {
            async move {
                #prelude
                #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
                if false {
                    let __larder_never: #ret_ty = loop {};
                    return __larder_never;
                };
                #block
            }
        }
    };
    let body = body_block(quote! {
        #[allow(unused_variables, unused_mut)]
        let (#(#pats,)*) = __larder_args;
    });

    // --- the background refresh (swr): owned copies of the arguments, a 'static future
    let uncached = format_ident!("{}_uncached", ident);
    let refresh = if matches!(opts.stale, Stale::Off) {
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
        let future = if sig.has_self {
            let borrowed = sig.args.iter().zip(&owned).map(|(a, o)| match &a.referent {
                Some(_) => quote!(::std::borrow::Borrow::borrow(&#o)),
                None => quote!(#o),
            });
            quote! {
                let __larder_self = <Self as ::core::clone::Clone>::clone(self);
                #wrap(async move { Self::#uncached(&__larder_self, #(#borrowed),*).await })
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
            let inner = body_block(quote!(#[allow(unused_variables, unused_mut)] let _ = (); #(#[allow(unused_variables, unused_mut)] #rebind)*));
            quote!(#wrap(#inner))
        };
        quote! {
            #p::spawn_refresh(move |__larder_args: &(#(#arg_tys,)*)| {
                #[allow(unused_variables)]
                let (#(#idents,)*) = __larder_args;
                #(#to_owned)*
                #future
            })
        }
    };

    let main = quote! {
        #(#attrs)*
        #vis #fn_sig {
            #spec
            #[allow(unused_imports)]
            use #p::{PickClone as _, PickFrom as _, PickNone as _};
            #assert_value
            let __larder_share = (&&&#p::Pick::<#err_ty>::new()).err_share();
            let __larder_key = if #bypass { ::core::option::Option::None } else { ::core::option::Option::Some(#key_expr) };
            let __larder_invalidate: bool = __larder_key.is_some() && #invalidate;
            let __larder_out = #p::call(
                #p::SpecRef::Static(&__LARDER_SPEC),
                __larder_key,
                __larder_invalidate,
                #p::Errors { share: __larder_share, timeout: ::core::option::Option::None },
                (#(#idents,)*),
                |__larder_args| #wrap(#body),
                #refresh,
                #p::NoTags,
            )
            .await;
            #finish
        }
    };

    // --- helpers
    let keep_attrs: Vec<&syn::Attribute> = attrs
        .iter()
        .filter(|a| ["cfg", "allow", "expect", "warn", "deny"].iter().any(|n| a.path().is_ident(n)))
        .collect();
    let receiver = sig.has_self.then(|| quote!(&self,));
    let params: Vec<TokenStream> = sig
        .args
        .iter()
        .map(|a| {
            let i = &a.ident;
            let t = &a.ty;
            quote!(#i: #t)
        })
        .collect();
    let touch_self = sig.has_self.then(|| quote!(let _ = self;));
    let helper = |suffix: &str, doc: String, asyncness: bool, extra: TokenStream, ret: TokenStream, body: TokenStream| {
        let name = format_ident!("{}_{}", ident, suffix);
        let asyncness = asyncness.then(|| quote!(async));
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
    };
    let fn_name = ident.to_string();
    let key_fn = helper(
        "key",
        format!("The full storage key of a call of [`{fn_name}`] with these arguments (`{prefix}…`)."),
        false,
        quote!(),
        quote!(-> ::std::string::String),
        quote!(::std::string::ToString::to_string(#key_expr.as_str())),
    );
    let invalidate_fn = helper(
        "invalidate",
        format!("Deletes the cached result of [`{fn_name}`] for these arguments; a run in flight won't store its result."),
        true,
        quote!(),
        quote!(),
        quote!(#p::invalidate(#p::SpecRef::Static(&__LARDER_SPEC), #key_expr).await),
    );
    let expire_fn = helper(
        "expire",
        format!("Marks the cached result of [`{fn_name}`] for these arguments stale: still served under `swr`, no longer fresh."),
        true,
        quote!(),
        quote!(),
        quote!(#p::expire(#p::SpecRef::Static(&__LARDER_SPEC), #key_expr).await),
    );
    let prime_fn = helper(
        "prime",
        format!("Stores `value` as the result of [`{fn_name}`] for these arguments, as if just produced."),
        true,
        quote!(value: #value_ty),
        quote!(),
        quote!(#p::prime(#p::SpecRef::Static(&__LARDER_SPEC), #key_expr, value, ::std::vec::Vec::new()).await),
    );
    let clear_name = format_ident!("{}_clear", ident);
    let clear_doc = format!("Deletes every cached result of [`{fn_name}`] (keys `{prefix}*`).");
    let clear_fn = quote! {
        #(#keep_attrs)*
        #[doc = #clear_doc]
        #[allow(dead_code)]
        #vis async fn #clear_name() {
            #spec
            #p::clear_fn(#p::SpecRef::Static(&__LARDER_SPEC)).await
        }
    };
    let mut uncached_sig = fn_sig.clone();
    uncached_sig.ident = uncached.clone();
    let uncached_doc = format!("[`{fn_name}`] without the cache: runs the body every time.");
    let uncached_fn = quote! {
        #(#keep_attrs)*
        #[doc = #uncached_doc]
        #[allow(dead_code)]
        #vis #uncached_sig #block
    };

    quote! {
        #main
        #key_fn
        #invalidate_fn
        #expire_fn
        #prime_fn
        #uncached_fn
        #clear_fn
    }
}
