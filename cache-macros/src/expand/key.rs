//! The key of a call: the expression that builds its `CallKey` (default keys from the
//! arguments' digest, `get_key` results through the fastest way their type allows), and
//! the `should_bypass_cache` / `should_invalidate_cache` predicates.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::expand::spans::{respan, result_span, returning_bool};
use crate::options::Options;
use crate::signature::Sig;

/// The arguments as references (`&x`, or `x` for those already references).
pub(crate) fn arg_refs(sig: &Sig) -> Vec<TokenStream> {
    sig.args
        .iter()
        .map(|a| {
            let i = &a.ident;
            if a.referent.is_some() { quote!(#i) } else { quote!(&#i) }
        })
        .collect()
}

/// The expression of the call's `CallKey`.
pub(crate) fn gen_key(opts: &Options, sig: &Sig, p: &TokenStream) -> TokenStream {
    let arg_refs = arg_refs(sig);
    // Type errors in what the user wrote point at it: a `get_key` result that is not
    // `Display` at the closure's body, an argument that is not `Serialize` at its type.
    match &opts.get_key {
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
    }
}

/// A predicate option's value for this call (`false` without the option).
pub(crate) fn gen_predicate(e: &Option<syn::Expr>, arg_refs: &[TokenStream]) -> TokenStream {
    match e {
        Some(e) => {
            let e = returning_bool(e);
            quote!({ let __larder_flag: bool = (#e)(#(#arg_refs),*); __larder_flag })
        }
        None => quote!(false),
    }
}
