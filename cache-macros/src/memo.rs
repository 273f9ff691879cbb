//! `#[memo]`: request-scoped memoization. Inside `larder::request_scope`, equal calls run
//! once; outside one, the function just runs.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;

/// The whole attribute.
pub fn memo(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = syn::Error::new(e.span(), "`#[memo]` goes on an `async fn`").to_compile_error();
            return quote!(#item #err);
        }
    };
    match expand(attr, &func) {
        Ok(tokens) => tokens,
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#func #err)
        }
    }
}

fn expand(attr: TokenStream, func: &syn::ItemFn) -> syn::Result<TokenStream> {
    let krate: syn::Path = if attr.is_empty() {
        syn::parse_quote!(::larder)
    } else {
        let meta: syn::MetaNameValue = syn::parse2(attr)?;
        if !meta.path.is_ident("crate") {
            return Err(syn::Error::new(meta.path.span(), "`#[memo]` takes only `crate = path`"));
        }
        match meta.value {
            syn::Expr::Path(p) => p.path,
            other => return Err(syn::Error::new(other.span(), "write `crate = ::path::to::larder`")),
        }
    };
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(sig.fn_token.span, "`#[memo]` works on `async fn` only: write `async fn`"));
    }
    let mut hashed = Vec::new();
    let mut names = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => {
                if !matches!(r.kind, syn::ReceiverKind::Reference(_, _, None)) {
                    return Err(syn::Error::new(r.span(), "a memoized method must take `&self`"));
                }
                // Calls on different objects are different calls.
                hashed.push(quote!(::core::ptr::from_ref(self) as *const () as usize));
            }
            syn::FnArg::Typed(pt) => match &*pt.pat {
                syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    let i = &p.ident;
                    hashed.push(quote!(&#i));
                    names.push(i.clone());
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "a memoized function's arguments must be plain names: write `name: Type`",
                    ));
                }
            },
        }
    }
    let ret: syn::Type = match &sig.output {
        syn::ReturnType::Default => syn::parse_quote!(()),
        syn::ReturnType::Type(_, t) => (**t).clone(),
    };
    let attrs = &func.attrs;
    let vis = &func.vis;
    let block = &func.block;
    let ident = &sig.ident;
    let hash = format_ident!("__larder_memo_hash");
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            let #hash = #krate::__private::memo_hash(&(#(#hashed,)*));
            #krate::__private::memo(
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                #hash,
                move || async move {
                    #[allow(unused_variables)]
                    let _ = (#(&#names,)*);
                    #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::needless_return)]
                    if false {
                        let __larder_never: #ret = loop {};
                        return __larder_never;
                    };
                    #block
                },
            )
            .await
        }
    })
}
