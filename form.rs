//! A free function or a `&self` method: the one place where the generated code of the
//! two differs.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{Parts, function};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Free,
    /// A method. Its helpers take `&self`, whatever the receiver as written (anything but
    /// `&self` is an error, and the helpers are still emitted then).
    Method,
}

impl Form {
    pub fn of(sig: &syn::Signature) -> Form {
        if sig.receiver().is_some() { Form::Method } else { Form::Free }
    }

    /// `&self,` at the head of a helper's parameters.
    pub fn gen_receiver(self) -> Option<TokenStream> {
        (self == Form::Method).then(|| quote!(&self,))
    }

    /// `let _ = self;` in a helper's body, which doesn't otherwise use its receiver.
    pub fn gen_touch(self) -> Option<TokenStream> {
        (self == Form::Method).then(|| quote!(let _ = self;))
    }

    /// The `'static` future a background refresh runs, from owned copies `owned` of the
    /// arguments: a method calls `Self::NAME_uncached` on a clone of `self`; a free
    /// function runs its body with the arguments rebound to the copies.
    pub fn gen_refresh_future(self, parts: &Parts, owned: &[syn::Ident]) -> TokenStream {
        let args = &parts.sig.args;
        let wrap = &parts.outline.value.wrap;
        match self {
            Form::Method => {
                let uncached = format_ident!("{}_uncached", parts.outline.func.sig.ident);
                let borrowed = args.iter().zip(owned).map(|(a, o)| match &a.referent {
                    Some(_) => quote!(::std::borrow::Borrow::borrow(&#o)),
                    None => quote!(#o),
                });
                quote! {
                    let __larder_self = <Self as ::core::clone::Clone>::clone(self);
                    #wrap(async move { Self::#uncached(&__larder_self, #(#borrowed),*).await })
                }
            }
            Form::Free => {
                let rebind = args.iter().zip(owned).map(|(a, o)| {
                    let i = &a.ident;
                    let m = &a.mutability;
                    match &a.referent {
                        Some(t) => quote!(let #m #i: &#t = ::std::borrow::Borrow::borrow(&#o);),
                        None => quote!(let #m #i = #o;),
                    }
                });
                let inner = function::gen_block(
                    parts,
                    quote!(#[allow(unused_variables, unused_mut)] let _ = (); #(#[allow(unused_variables, unused_mut)] #rebind)*),
                );
                quote!(#wrap(#inner))
            }
        }
    }
}
