//! `#[cached_impl]` on an `impl Trait for Type` block: every method in it marked
//! `#[cached(…)]` moves, with its attribute, to an inherent `impl Type` beside the block
//! (where `#[cached]` can emit its helpers: `Type::find_invalidate(&value, …)`), and the trait
//! method calls it. Inherent items take precedence over trait items in `<Type>::method`, so
//! both share one name and one cache. The entry's default `name` is `{Type}_{method}`, so two
//! types implementing one trait never share keys.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, Pat};

/// The attribute on the impl block.
pub(crate) fn cached_impl(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(
            attr.span(),
            "`#[cached_impl]` takes no options: put them on each `#[cached(…)]` method",
        )
        .to_compile_error();
    }
    let mut block: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(b) => b,
        Err(e) => {
            let msg = "`#[cached_impl]` goes on an `impl Trait for Type` block whose methods carry `#[cached(…)]`";
            let mut err = syn::Error::new(e.span(), msg).to_compile_error();
            err.extend(item);
            return err;
        }
    };
    if block.trait_.is_none() {
        let msg = "`#[cached_impl]` is for `impl Trait for Type` blocks; in an inherent `impl Type`, `#[cached]` works on its own: remove `#[cached_impl]`";
        let mut err = syn::Error::new(block.impl_token.span(), msg).to_compile_error();
        err.extend(block.into_token_stream());
        return err;
    }
    let type_name = type_segment(&block.self_ty);
    let mut moved = Vec::new();
    let mut errors = TokenStream::new();
    for item in &mut block.items {
        let ImplItem::Fn(f) = item else { continue };
        let Some(at) = f.attrs.iter().position(|a| a.path().segments.last().is_some_and(|s| s.ident == "cached"))
        else {
            continue;
        };
        let mut attr = f.attrs.remove(at);
        if !has_option(&attr, "name") {
            let name = format!("{type_name}_{}", f.sig.ident.to_string().trim_start_matches("r#"));
            attr = with_name(attr, &name);
        }
        let mut args = Vec::new();
        for input in &f.sig.inputs {
            match input {
                FnArg::Receiver(r) => args.push(r.self_token.to_token_stream()),
                FnArg::Typed(pt) => match &*pt.pat {
                    Pat::Ident(p) => args.push(p.ident.to_token_stream()),
                    other => errors.extend(
                        syn::Error::new(other.span(), "a cached method needs a name for each argument: write e.g. `arg: T` and destructure it in the body")
                            .to_compile_error(),
                    ),
                },
            }
        }
        let ident = &f.sig.ident;
        let mut inherent = f.clone();
        inherent.attrs = std::iter::once(attr).chain(f.attrs.iter().cloned()).collect();
        inherent.vis = syn::parse_quote!(pub);
        let forward = if f.sig.asyncness.is_some() {
            quote!({ <Self>::#ident(#(#args),*).await })
        } else {
            quote!({ <Self>::#ident(#(#args),*) })
        };
        f.block = syn::parse2(forward).expect("a block");
        moved.push(inherent);
    }
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    let inherent = if moved.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            impl #impl_generics #self_ty #where_clause {
                #(#moved)*
            }
        }
    };
    quote!(#errors #block #inherent)
}

/// The last segment of the implementing type's path (`PgRepo` in `crate::db::PgRepo<T>`),
/// or `impl` for a type without one.
fn type_segment(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map_or_else(|| "impl".to_owned(), |s| s.ident.to_string()),
        syn::Type::Reference(r) => type_segment(&r.elem),
        _ => "impl".to_owned(),
    }
}

/// Whether the `#[cached(…)]` attribute sets `option`.
fn has_option(attr: &syn::Attribute, option: &str) -> bool {
    attr.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
        .is_ok_and(|metas| metas.iter().any(|m| m.path().is_ident(option)))
}

/// The attribute with `name = "…"` added to its options.
fn with_name(attr: syn::Attribute, name: &str) -> syn::Attribute {
    let path = attr.path().clone();
    let existing = match &attr.meta {
        syn::Meta::List(l) => l.tokens.clone(),
        _ => TokenStream::new(),
    };
    if existing.is_empty() {
        syn::parse_quote!(#[#path(name = #name)])
    } else {
        syn::parse_quote!(#[#path(#existing, name = #name)])
    }
}
