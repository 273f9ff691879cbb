//! Spans for the generated code, so that a type error points at what the user wrote: the
//! value type, an option's closure body, a predicate's result.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;

use crate::signature::Ret;

/// Where the cached value's type is written: `T` of a `Result<T, E>`, else the return type.
pub(crate) fn value_span(ret: &Ret) -> proc_macro2::Span {
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
pub(crate) fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
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
pub(crate) fn result_span(e: &syn::Expr) -> proc_macro2::Span {
    match e {
        syn::Expr::Closure(c) => c.body.span(),
        other => other.span(),
    }
}

/// A predicate closure with its return type written out (`-> bool`), so a body of another
/// type is a mismatch at the body, not somewhere in the expansion.
pub(crate) fn returning_bool(e: &syn::Expr) -> syn::Expr {
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
