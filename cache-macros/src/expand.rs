//! Parse → check → expand. On any error the user's function is emitted unchanged, with
//! the errors, so that one mistake gives one error.

use darling::FromMeta;
use darling::ast::NestedMeta;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::option_names;
use crate::options::{Options, RawOptions, Stale, TagsOpt};
use crate::signature::{self, Ret, Sig};

/// The whole attribute.
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let msg =
                syn::Error::new(e.span(), "`#[cached]` goes on an `async fn` (free, or a method of an `impl` block)");
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
    let metas = metas.map(|m| option_names::screen(m, &mut errors));
    let raw = metas.and_then(|m| errors.handle(RawOptions::from_list(&m)));
    let opts = raw.and_then(|r| errors.handle(r.build(&func.sig.ident.to_string())));
    let has_get_key = opts.as_ref().is_some_and(|o| o.get_key.is_some());
    let sig = errors.handle(signature::analyse(&func.sig, has_get_key));
    if let (Some(o), Some(s)) = (&opts, &sig) {
        for (option, expr) in
            [("get_key", &o.get_key), ("should_bypass_cache", &o.bypass), ("should_invalidate_cache", &o.invalidate)]
        {
            if let Some(expr) = expr {
                errors.handle(signature::check_closure(option, expr, &func.sig.ident, s));
            }
        }
        if let Some(TagsOpt::Dynamic(expr)) = &o.tags {
            errors.handle(signature::check_closure("tags", expr, &func.sig.ident, s));
        }
        if let (Some((_, span)), Ret::Plain(_)) = (&o.hard_timeout, &s.ret) {
            errors.push(
                darling::Error::custom(
                    "`hard_timeout` makes a slow call fail with `larder::Error::Timeout`, so the function must return a `Result` whose error implements `From<larder::Error>`: return `Result<T, E>`, or remove `hard_timeout`",
                )
                .with_span(span),
            );
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
            let tags = match &opts.tags {
                Some(TagsOpt::Static(t)) => t.join(","),
                Some(TagsOpt::Dynamic(e)) => quote!(#e).to_string(),
                None => String::new(),
            };
            format!(
                "{}\nmax_age={}\nstale={:?}\nget_key={}\ntags={}\ngrace={:?}",
                quote!(#sig #block),
                opts.max_age_ms,
                opts.stale,
                get_key,
                tags,
                opts.grace_ms
            )
        }
    };
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}

/// Where the cached value's type is written: `T` of a `Result<T, E>`, else the return type.
fn value_span(ret: &Ret) -> proc_macro2::Span {
    match ret {
        Ret::Plain(t) => t.span(),
        Ret::Result(t) => {
            let ok = match t {
                syn::Type::Path(p) => p.path.segments.last().and_then(|s| match &s.arguments {
                    syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|a| match a {
                        syn::GenericArgument::Type(t) => Some(t.span()),
                        _ => None,
                    }),
                    _ => None,
                }),
                _ => None,
            };
            ok.unwrap_or_else(|| t.span())
        }
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut inner = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                inner.set_span(span);
                tt = proc_macro2::TokenTree::Group(inner);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// Where a closure option's result is written (its body), so a type error about the
/// result points there; the whole expression for a path to a function.
fn result_span(e: &syn::Expr) -> proc_macro2::Span {
    match e {
        syn::Expr::Closure(c) => c.body.span(),
        other => other.span(),
    }
}

/// A predicate closure with its return type written out (`-> bool`), so a body of another
/// type is a mismatch at the body, not somewhere in the expansion.
fn returning_bool(e: &syn::Expr) -> syn::Expr {
    match e {
        syn::Expr::Closure(c) if matches!(c.output, syn::ReturnType::Default) => {
            let mut c = c.clone();
            let body = &c.body;
            c.body = Box::new(syn::parse_quote_spanned!(body.span()=> { #body }));
            c.output = syn::parse_quote_spanned!(c.inputs_end.span=> -> bool);
            syn::Expr::Closure(c)
        }
        other => other.clone(),
    }
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
    // The same prefix and id the runtime computes (both from `cache-keyspace`).
    let prefix = cache_keyspace::prefix(group, name);
    let prefix_id = Literal::u128_suffixed(cache_keyspace::prefix_id(&prefix));
    let base = &opts.base;
    let integrity = Literal::u128_suffixed(integrity(opts, func));
    let max_age = opts.max_age_ms;
    let stale = match opts.stale {
        Stale::Off => quote!(#p::Window::None),
        Stale::For(ms) => quote!(#p::Window::For(#ms)),
        Stale::Forever => quote!(#p::Window::Forever),
    };
    let grace = match opts.grace_ms {
        Some(ms) => quote!(#p::Window::For(#ms)),
        None => quote!(#p::Window::None),
    };
    let static_tags: Vec<&String> = match &opts.tags {
        Some(TagsOpt::Static(t)) => t.iter().collect(),
        _ => Vec::new(),
    };
    let grace_backoff = opts.grace_backoff_ms;
    let some_ms = |v: Option<u64>| match v {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    let timeout = some_ms(opts.timeout_ms);
    let hard_timeout = some_ms(opts.hard_timeout.map(|(ms, _)| ms));
    let spec = quote! {
        static __LARDER_SPEC: #p::FnSpec = #p::FnSpec {
            group: #p::Cow::Borrowed(#group),
            name: #p::Cow::Borrowed(#name),
            prefix: #p::Cow::Borrowed(#prefix),
            prefix_id: #prefix_id,
            base: #p::Cow::Borrowed(#base),
            integrity: #integrity,
            policy: #p::Policy { max_age_ms: #max_age, stale: #stale, grace: #grace },
            tags: #p::Cow::Borrowed(&[#(#p::Cow::Borrowed(#static_tags)),*]),
            grace_backoff_ms: #grace_backoff,
            timeout_ms: #timeout,
            hard_timeout_ms: #hard_timeout,
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

    // Type errors in what the user wrote point at it: a `get_key` result that is not
    // `Display` at the closure's body, an argument that is not `Serialize` at its type.
    let key_expr = match &opts.get_key {
        Some(get_key) => {
            let span = result_span(get_key);
            let key_display = respan(quote!(#p::key_display), span);
            let raw = quote_spanned!(span=> &__larder_raw);
            // `key_display` reports a result that is not `Display` (it never runs); the key
            // is built through the probe, which skips `fmt` for strings and integers.
            quote!({
                let __larder_raw = (#get_key)(#(#arg_refs),*);
                if false {
                    let _ = #key_display(&__LARDER_SPEC, #raw);
                }
                #[allow(unused_imports)]
                use #p::{KeyFromDisplay as _, KeyFromText as _, KeyNotDisplay as _};
                (&&#p::KeyRaw(&__larder_raw)).larder_key(&__LARDER_SPEC)
            })
        }
        None if sig.args.is_empty() => quote!(#p::key_default(&__LARDER_SPEC)),
        None => {
            // Each argument is checked on its own (`key_arg`), so that an argument that is
            // not `Serialize` is reported once, at its type, with what to do. The key of
            // all of them is then taken through an autoref probe that falls back to a
            // placeholder when they are not all `Serialize`, instead of a second error
            // about the tuple. The fallback never runs: `key_arg` has failed the build.
            let refs: Vec<TokenStream> = sig
                .args
                .iter()
                .map(|a| {
                    let span = a.referent.as_ref().map_or_else(|| a.ty.span(), |t| t.span());
                    let mut ident = a.ident.clone();
                    ident.set_span(span);
                    if a.referent.is_some() { quote!(#ident) } else { quote_spanned!(span=> &#ident) }
                })
                .collect();
            let checks = refs.iter().map(|r| {
                let check = respan(quote!(#p::key_arg), r.span());
                quote_spanned!(r.span()=> #check(#r);)
            });
            quote!({
                #(#checks)*
                struct __LarderArgs<'a, A: ?Sized>(&'a A);
                trait __LarderKeyArgs {
                    fn __larder_key(&self, spec: &#p::FnSpec) -> #p::CallKey;
                }
                impl<A: ?Sized + #p::serde::Serialize> __LarderKeyArgs for __LarderArgs<'_, A> {
                    #[inline]
                    fn __larder_key(&self, spec: &#p::FnSpec) -> #p::CallKey {
                        #p::key_args(spec, self.0)
                    }
                }
                trait __LarderKeyArgsNotSerialize {
                    fn __larder_key(&self, spec: &#p::FnSpec) -> #p::CallKey;
                }
                impl<A: ?Sized> __LarderKeyArgsNotSerialize for &__LarderArgs<'_, A> {
                    fn __larder_key(&self, spec: &#p::FnSpec) -> #p::CallKey {
                        #p::key_default(spec)
                    }
                }
                (&__LarderArgs(&(#(#refs,)*))).__larder_key(&__LARDER_SPEC)
            })
        }
    };
    let predicate = |e: &Option<syn::Expr>| match e {
        Some(e) => {
            let e = returning_bool(e);
            quote!({ let __larder_flag: bool = (#e)(#(#arg_refs),*); __larder_flag })
        }
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
    // What the value must be is checked once, and a type that falls short is reported
    // once, at the return type: the check and the call that needs the same bounds both
    // carry the return type's span, so rustc reports each unmet bound a single time.
    let value_span = value_span(&sig.ret);
    let assert_value = respan(quote!(#p::assert_value::<#value_ty>();), value_span);
    // `function(args)` for a runtime function with bounds on the value, spanned like
    // `assert_value` so that a bound the value misses is reported once, by `assert_value`
    // (which every function that makes such a call runs first).
    let value_call = |function: TokenStream, args: TokenStream| {
        let function = respan(function, value_span);
        let mut args = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args);
        args.set_span(value_span);
        quote!(#function #args)
    };
    let value_await = respan(quote!(.await), value_span);

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
                // Bound, not the tail: a body `{ expr }` as the tail of this block would
                // draw `unused_braces` on the user's code.
                let __larder_out: #ret_ty = #block;
                __larder_out
            }
        }
    };
    let body = body_block(quote! {
        #[allow(unused_variables, unused_mut)]
        let (#(#pats,)*) = __larder_args;
    });

    // --- the background refresh (swr): owned copies of the arguments, a 'static future
    let uncached = format_ident!("{}_uncached", ident);
    let refresh = if matches!(opts.stale, Stale::Off) && opts.timeout_ms.is_none() {
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
            let inner = body_block(
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
        value_call(quote!(#p::spawn_refresh), closure)
    };

    // Dynamic tags: computed from the arguments only when the body is about to run.
    let dynamic_tags = match &opts.tags {
        Some(TagsOpt::Dynamic(e)) => Some(e),
        _ => None,
    };
    let tag_source = match dynamic_tags {
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
    };
    let timeout_error = match &opts.hard_timeout {
        Some((_, span)) => {
            let make = respan(quote!(#p::timeout_error::<#err_ty>), *span);
            quote!(::core::option::Option::Some(#make))
        }
        None => quote!(::core::option::Option::None),
    };
    let call = value_call(
        quote!(#p::call),
        quote! {
            #p::SpecRef::Static(&__LARDER_SPEC),
            __larder_key.map(|__larder_key| #p::full_key(&__LARDER_SPEC, __larder_key)),
            __larder_invalidate,
            #p::Errors { share: __larder_share, timeout: #timeout_error },
            (#(#idents,)*),
            |__larder_args| #wrap(#body),
            #refresh,
            #tag_source,
        },
    );

    let hit = value_call(quote!(#p::hit::<#value_ty>), quote!(&__LARDER_SPEC, __larder_k));
    let boxed_call = value_call(quote!(::std::boxed::Box::pin), call);

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
            // A fresh hit returns before the call's future is built; the rest of a call
            // is boxed, so that this function's own future stays small.
            if let (::core::option::Option::Some(__larder_k), false) = (&__larder_key, __larder_invalidate) {
                if let ::core::option::Option::Some(__larder_v) = #hit {
                    let __larder_out = ::core::result::Result::Ok(__larder_v);
                    return #finish;
                }
            }
            let __larder_out = #boxed_call #value_await;
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
    let helper =
        |suffix: &str, doc: String, asyncness: bool, extra: TokenStream, ret: TokenStream, body: TokenStream| {
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
        quote!(::std::string::ToString::to_string(#p::full_key(&__LARDER_SPEC, #key_expr).as_str())),
    );
    let invalidate_fn = helper(
        "invalidate",
        format!(
            "Deletes the cached result of [`{fn_name}`] for these arguments; a run in flight won't store its result."
        ),
        true,
        quote!(),
        quote!(),
        quote!(#p::invalidate(#p::SpecRef::Static(&__LARDER_SPEC), #p::full_key(&__LARDER_SPEC, #key_expr)).await),
    );
    let expire_fn = helper(
        "expire",
        format!(
            "Marks the cached result of [`{fn_name}`] for these arguments stale: still served under `swr`, no longer fresh."
        ),
        true,
        quote!(),
        quote!(),
        quote!(#p::expire(#p::SpecRef::Static(&__LARDER_SPEC), #p::full_key(&__LARDER_SPEC, #key_expr)).await),
    );
    let prime_fn = helper(
        "prime",
        format!("Stores `value` as the result of [`{fn_name}`] for these arguments, as if just produced."),
        true,
        quote!(value: #value_ty),
        quote!(),
        {
            let value = respan(quote!(value), value_span);
            let tags = match dynamic_tags {
                Some(e) => quote!((#e)(#(#arg_refs),*)),
                None => quote!(::std::vec::Vec::new()),
            };
            let prime = value_call(
                quote!(#p::prime),
                quote!(#p::SpecRef::Static(&__LARDER_SPEC), #p::full_key(&__LARDER_SPEC, #key_expr), #value, #tags),
            );
            quote!(#assert_value #prime #value_await)
        },
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
    let stats_name = format_ident!("{}_stats", ident);
    let stats_doc = format!(
        "What [`{fn_name}`] has done in the runtime in force: hits, stale hits, misses, body runs, errors, grace answers."
    );
    let stats_fn = quote! {
        #(#keep_attrs)*
        #[doc = #stats_doc]
        #[allow(dead_code)]
        #vis fn #stats_name() -> #p::CacheStats {
            #spec
            #p::stats(#p::SpecRef::Static(&__LARDER_SPEC))
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
        #stats_fn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_predicate_closure_gets_its_bool_return_type_written_out() {
        let e: syn::Expr = syn::parse_quote!(|id: &u64| *id == 0);
        let syn::Expr::Closure(c) = returning_bool(&e) else { panic!("not a closure") };
        assert_eq!(quote!(#c).to_string(), quote!(|id: &u64| -> bool { *id == 0 }).to_string());
        let typed: syn::Expr = syn::parse_quote!(|id: &u64| -> bool { true });
        assert_eq!(returning_bool(&typed), typed);
        let path: syn::Expr = syn::parse_quote!(is_admin);
        assert_eq!(returning_bool(&path), path);
    }

    #[test]
    fn one_mistake_gives_the_function_back_and_one_error() {
        let out = cached(
            quote!(max_agee = "1m"),
            quote!(
                async fn answer() -> u64 {
                    42
                }
            ),
        )
        .to_string();
        assert_eq!(out.matches("compile_error").count(), 1, "{out}");
        assert!(
            out.starts_with(
                &quote!(
                    async fn answer() -> u64 {
                        42
                    }
                )
                .to_string()
            ),
            "{out}"
        );
        assert!(!out.contains("answer_key"), "{out}");
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let out = cached(
            quote!(max_age = "soon", group = "a b"),
            quote!(
                fn answer(x: &mut u8) -> u64 {
                    42
                }
            ),
        )
        .to_string();
        assert_eq!(out.matches("compile_error").count(), 4, "{out}");
    }
}
