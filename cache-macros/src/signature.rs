//! What the attribute needs to know of the function's signature, checked once.

use darling::Error;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Pat, ReturnType, Type};

/// One argument.
pub struct Arg {
    pub ident: syn::Ident,
    pub mutability: Option<syn::Token![mut]>,
    pub ty: Type,
    /// `Some(T)` for an argument of type `&T`.
    pub referent: Option<Type>,
    /// The argument's type is `impl Trait` (only with `get_key`).
    pub is_impl: bool,
}

/// What the function returns.
pub enum Ret {
    /// Any value, cached as is.
    Plain(Type),
    /// A `Result`: only `Ok` is cached.
    Result(Type),
}

impl Ret {
    pub fn ty(&self) -> &Type {
        match self {
            Ret::Plain(t) | Ret::Result(t) => t,
        }
    }
}

pub struct Sig {
    pub has_self: bool,
    pub args: Vec<Arg>,
    pub ret: Ret,
    /// Whether the function has type or const parameters (or `impl Trait` arguments).
    pub generic: bool,
}

struct Borrows(Option<proc_macro2::Span>);

impl<'ast> Visit<'ast> for Borrows {
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        self.0.get_or_insert(r.span());
    }
    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        self.0.get_or_insert(t.span());
    }
    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident != "static" {
            self.0.get_or_insert(l.span());
        }
    }
}

/// Reads and checks the signature. Every problem is reported, each at its own span.
pub fn analyse(sig: &syn::Signature, has_get_key: bool) -> darling::Result<Sig> {
    let mut errors = Error::accumulator();
    if sig.asyncness.is_none() {
        errors.push(
            Error::custom("`#[cached]` works on `async fn` only: write `async fn` (a cached call may wait for another caller's run)")
                .with_span(&sig.fn_token),
        );
    }
    let mut has_self = false;
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => match &r.kind {
                syn::ReceiverKind::Reference(_, _, None) => has_self = true,
                syn::ReceiverKind::Reference(_, _, Some(m)) => errors.push(
                    Error::custom("`&mut self` can't be shared between concurrent callers of a cached method: take `&self`")
                        .with_span(m),
                ),
                _ => errors.push(
                    Error::custom("a cached method must take `&self`: write `&self` (the receiver is not part of the key)")
                        .with_span(&r.self_token),
                ),
            },
            FnArg::Typed(pt) => {
                let ident = match &*pt.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some((p.ident.clone(), p.mutability)),
                    other => {
                        errors.push(
                            Error::custom("a cached function's arguments must be plain names: write `name: Type` and destructure inside the body")
                                .with_span(other),
                        );
                        None
                    }
                };
                let (referent, is_impl) = match &*pt.ty {
                    Type::Reference(r) if r.mutability.is_some() => {
                        errors.push(
                            Error::custom("`&mut` arguments can't be cached: concurrent callers share one run and a cached value can't replay a mutation; take `&T` or an owned value")
                                .with_span(&pt.ty),
                        );
                        (None, false)
                    }
                    Type::Reference(r) => (Some((*r.elem).clone()), matches!(*r.elem, Type::ImplTrait(_))),
                    Type::ImplTrait(_) => (None, true),
                    _ => (None, false),
                };
                if let Some((ident, mutability)) = ident {
                    args.push(Arg { ident, mutability, ty: (*pt.ty).clone(), referent, is_impl });
                }
            }
        }
    }
    let ret = match &sig.output {
        ReturnType::Default => Ret::Plain(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => {
            let mut borrows = Borrows(None);
            borrows.visit_type(ty);
            if let Some(span) = borrows.0 {
                errors.push(
                    Error::custom("a cached function must return an owned value (it is stored and handed to many callers): return e.g. `String` instead of `&str`, or a concrete type instead of `impl Trait`")
                        .with_span(&span),
                );
            }
            if is_result(ty) { Ret::Result((**ty).clone()) } else { Ret::Plain((**ty).clone()) }
        }
    };
    let generic = sig.generics.params.iter().any(|p| !matches!(p, syn::GenericParam::Lifetime(_)))
        || args.iter().any(|a| a.is_impl);
    if generic && !has_get_key {
        errors.push(
            Error::custom("a generic cached function needs `get_key`: its default key would depend on the type parameters; add `get_key = |…| …` returning something `Display`")
                .with_span(&sig.ident),
        );
    }
    errors.finish_with(Sig { has_self, args, ret, generic })
}

/// `Result<…>` by its last path segment (`std::result::Result`, `io::Result`, `anyhow::Result`).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Group(g) => is_result(&g.elem),
        Type::Paren(p) => is_result(&p.elem),
        _ => false,
    }
}

fn compact(t: &impl ToTokens) -> String {
    t.to_token_stream().to_string().chars().filter(|c| !c.is_whitespace()).collect()
}

/// Checks a closure option (`get_key`, predicates) against the arguments: one parameter
/// per argument (not `self`), each the argument by reference.
pub fn check_closure(option: &str, expr: &syn::Expr, sig: &Sig) -> darling::Result<()> {
    let syn::Expr::Closure(c) = expr else {
        return Ok(()); // a path to a function: the type checker speaks for it
    };
    let wanted: Vec<String> = sig
        .args
        .iter()
        .map(|a| {
            let by_ref: TokenStream = match &a.referent {
                Some(_) => a.ty.to_token_stream(),
                None => {
                    let ty = &a.ty;
                    quote::quote!(&#ty)
                }
            };
            format!("{}: {}", a.ident, by_ref.to_string().replace("& ", "&"))
        })
        .collect();
    let example = format!("`{option} = |{}| …`", wanted.join(", "));
    if c.inputs.len() != sig.args.len() {
        let what = if sig.args.is_empty() {
            "the function has no arguments (besides `self`), so write `|| …`".to_owned()
        } else {
            format!("it takes the function's {} argument(s) by reference: write {example}", sig.args.len())
        };
        return Err(Error::custom(format!("`{option}` has {} parameter(s), but {what}", c.inputs.len())).with_span(&c.inputs_end));
    }
    let mut errors = Error::accumulator();
    for (input, arg) in c.inputs.iter().zip(&sig.args) {
        if let Pat::Type(pt) = input {
            let expected: Type = match &arg.referent {
                Some(_) => arg.ty.clone(),
                None => {
                    let ty = &arg.ty;
                    syn::parse_quote!(&#ty)
                }
            };
            if compact(&*pt.ty) != compact(&expected) {
                errors.push(
                    Error::custom(format!(
                        "`{option}` gets the argument `{}` by reference, as `{}`: write {example}",
                        arg.ident,
                        expected.to_token_stream().to_string().replace("& ", "&")
                    ))
                    .with_span(&pt.ty),
                );
            }
        }
    }
    errors.finish()
}
