//! The attribute's entry: parse → check → expand. On an error the user's function is
//! emitted unchanged, with every helper (bodies that cannot run) and the errors, so that one
//! mistake gives one error.

use darling::FromMeta;
use darling::ast::NestedMeta;
use proc_macro2::TokenStream;
use quote::quote;

use crate::expand::expansion::Expansion;
use crate::expand::function::gen_function;
use crate::expand::helpers::{gen_helpers, gen_stubs};
use crate::expand::many::gen_many;
use crate::option_names;
use crate::options::{Options, RawOptions, TagsOpt};
use crate::signature::{self, Ret, Sig};

/// The whole attribute.
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let msg = syn::Error::new(
                e.span(),
                "`#[cached]` goes on a function: an `async fn` or a plain `fn` (free, or a method of an `impl` block)",
            );
            let err = msg.to_compile_error();
            return quote!(#item #err);
        }
    };
    match check(attr.clone(), &func) {
        Ok((opts, sig)) => {
            let x = Expansion::new(&opts, &sig, &func);
            let function = gen_function(&x);
            let helpers = gen_helpers(&x);
            let many = gen_many(&x);
            quote!(#function #helpers #many)
        }
        Err(e) => {
            let errors = e.write_errors();
            // The helpers keep their signatures when the signature itself is fine; with a
            // broken signature only the function is given back.
            let stubs = match signature::analyse(&func.sig, true) {
                Ok(sig) => gen_stubs(&func, &sig, &krate_of(attr)),
                Err(_) => TokenStream::new(),
            };
            quote!(#func #stubs #errors)
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
    let mut sig = errors.handle(signature::analyse(&func.sig, has_get_key));
    // `result = true`: a `Result` behind an alias of another name; `false`: a plain value.
    if let (Some(force), Some(s)) = (opts.as_ref().and_then(|o| o.result), sig.as_mut()) {
        let ty = match &s.ret {
            Ret::Plain(t) | Ret::Result(t) => t.clone(),
        };
        s.ret = if force { Ret::Result(ty) } else { Ret::Plain(ty) };
    }
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
        if let (Some((_, span)), false) = (&o.hard_timeout, s.is_async) {
            errors.push(
                darling::Error::custom(format!(
                    "`hard_timeout` abandons a slow body, but a sync body can't be stopped: its thread would go on running it after the caller got `Timeout`. Make it `async fn {}`, bound the blocking call itself (a socket or client timeout), or remove `hard_timeout`",
                    func.sig.ident
                ))
                .with_span(span),
            );
        } else if let (Some((_, span)), Ret::Plain(_)) = (&o.hard_timeout, &s.ret) {
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

/// The path larder is known by (`crate = …`), read on its own for the error path; `::larder`
/// when it is not given or not readable.
fn krate_of(attr: TokenStream) -> syn::Path {
    let default = || syn::parse_quote!(::larder);
    let Ok(metas) = NestedMeta::parse_meta_list(attr) else { return default() };
    for meta in metas {
        if let NestedMeta::Meta(syn::Meta::NameValue(nv)) = meta
            && nv.path.is_ident("crate")
            && let syn::Expr::Path(p) = &nv.value
        {
            return p.path.clone();
        }
    }
    default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expand::spans::returning_bool;

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
        assert!(out.contains("fn answer_key"), "the helpers keep their signatures: {out}");
        assert!(out.contains("unreachable"), "with bodies that cannot run: {out}");
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let out = cached(
            quote!(max_age = "soon", group = "a b"),
            quote!(
                const fn answer(x: &mut u8) -> u64 {
                    42
                }
            ),
        )
        .to_string();
        assert_eq!(out.matches("compile_error").count(), 4, "{out}");
    }
}
