//! What the attribute needs to know of the function's signature, checked once.

use darling::Error;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
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
    /// An `async fn`; a plain `fn` is a sync cached function.
    pub is_async: bool,
    pub has_self: bool,
    pub args: Vec<Arg>,
    pub ret: Ret,
}

/// A return type that borrows: where, and the owned type to return instead.
pub struct Borrowing {
    /// The first reference, `impl Trait` or lifetime.
    pub span: proc_macro2::Span,
    /// The type with every borrow replaced by an owned type, when there is an obvious one.
    pub owned: Option<Type>,
}

/// Finds what borrows in a return type, and rewrites it into an owned type.
#[derive(Default)]
struct Owning {
    span: Option<proc_macro2::Span>,
    unsure: bool,
}

impl VisitMut for Owning {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        match ty {
            Type::Reference(r) => {
                self.span.get_or_insert(r.and_token.span);
                let mut inner = (*r.elem).clone();
                self.visit_type_mut(&mut inner);
                *ty = to_owned_type(inner);
            }
            Type::ImplTrait(t) => {
                self.span.get_or_insert(t.impl_token.span);
                match concrete_for(t) {
                    Some(mut c) => {
                        self.visit_type_mut(&mut c);
                        *ty = c;
                    }
                    None => self.unsure = true,
                }
            }
            _ => syn::visit_mut::visit_type_mut(self, ty),
        }
    }

    fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
        if l.ident != "static" {
            self.span.get_or_insert(l.apostrophe);
            *l = syn::Lifetime::new("'static", l.span());
        }
    }
}

/// `<T as ToOwned>::Owned` for the usual unsized types; `T` itself otherwise.
fn to_owned_type(referent: Type) -> Type {
    let owned: Option<Type> = match &referent {
        Type::Slice(s) => {
            let elem = &s.elem;
            Some(syn::parse_quote!(Vec<#elem>))
        }
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last().map(|s| s.ident.to_string()).as_deref() {
            Some("str") => Some(syn::parse_quote!(String)),
            Some("Path") => Some(syn::parse_quote!(PathBuf)),
            Some("OsStr") => Some(syn::parse_quote!(OsString)),
            Some("CStr") => Some(syn::parse_quote!(CString)),
            _ => None,
        },
        _ => None,
    };
    owned.unwrap_or(referent)
}

/// A concrete type for a returned `impl Trait`, when one is obvious: `Vec<T>` for
/// `impl Iterator<Item = T>`, `String` for `impl Display`/`ToString`/`Into<String>`.
fn concrete_for(t: &syn::TypeImplTrait) -> Option<Type> {
    t.bounds.iter().find_map(|b| {
        let syn::TypeParamBound::Trait(tb) = b else {
            return None;
        };
        let last = tb.path.segments.last()?;
        match last.ident.to_string().as_str() {
            "Iterator" | "IntoIterator" | "ExactSizeIterator" | "DoubleEndedIterator" => {
                let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                    return None;
                };
                args.args.iter().find_map(|a| match a {
                    syn::GenericArgument::AssocType(at) if at.ident == "Item" => {
                        let item = &at.ty;
                        Some(syn::parse_quote!(Vec<#item>))
                    }
                    _ => None,
                })
            }
            "Display" | "ToString" => Some(syn::parse_quote!(String)),
            "Into" => {
                let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                    return None;
                };
                match args.args.first()? {
                    syn::GenericArgument::Type(t) => Some(t.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    })
}

/// Whether a return type borrows (a reference, `impl Trait`, a lifetime other than
/// `'static`), and what to return instead.
pub fn borrowing(ty: &Type) -> Option<Borrowing> {
    let mut owned = ty.clone();
    let mut v = Owning::default();
    v.visit_type_mut(&mut owned);
    let span = v.span?;
    Some(Borrowing { span, owned: (!v.unsure).then_some(owned) })
}

/// A type as a user would write it: `Vec<&str>`, not `Vec < & str >`.
pub fn type_text(t: &impl ToTokens) -> String {
    let raw = t.to_token_stream().to_string();
    let mut out = raw
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" ::", "::")
        .replace("& ", "&")
        .replace(" ;", ";")
        .replace("[ ", "[")
        .replace(" ]", "]")
        .replace("( ", "(")
        .replace(" )", ")");
    if out.starts_with("::") && !raw.starts_with("::") {
        out = out.trim_start_matches("::").to_owned();
    }
    out
}

/// Reads and checks the signature. Every problem is reported, each at its own span.
pub fn analyse(sig: &syn::Signature, has_get_key: bool) -> darling::Result<Sig> {
    let mut errors = Error::accumulator();
    if let Some(c) = &sig.constness {
        errors.push(
            Error::custom(format!(
                "a cached function can't be `const`, since a call reads and writes the cache at run time: write `fn {}` or `async fn {}`",
                sig.ident, sig.ident
            ))
            .with_span(c),
        );
    }
    let mut has_self = false;
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => match &r.kind {
                syn::ReceiverKind::Reference(_, _, None) => has_self = true,
                syn::ReceiverKind::Reference(_, _, Some(m)) => errors.push(
                    Error::custom(
                        "`&mut self` can't be shared between concurrent callers of a cached method: take `&self`",
                    )
                    .with_span(m),
                ),
                _ => errors.push(
                    Error::custom(
                        "a cached method must take `&self`: write `&self` (the receiver is not part of the key)",
                    )
                    .with_span(&r.self_token),
                ),
            },
            FnArg::Typed(pt) => {
                let ident = match &*pt.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some((p.ident.clone(), p.mutability)),
                    other => {
                        errors.push(
                            Error::custom(format!(
                                "`#[cached]` needs a name for each argument: write e.g. `arg: {}` and destructure it in the body (`let {} = arg;`)",
                                type_text(&pt.ty),
                                type_text(other)
                            ))
                            .with_span(other),
                        );
                        None
                    }
                };
                let (referent, is_impl) = match &*pt.ty {
                    Type::Reference(r) if let Some(m) = r.mutability => {
                        let name = pt.pat.to_token_stream();
                        let elem = type_text(&r.elem);
                        errors.push(
                            Error::custom(format!(
                                "`&mut` arguments can't be cached, since callers share one run and a cached result can't replay a mutation: take `{name}: &{elem}` or `{name}: {elem}`"
                            ))
                            .with_span(&m),
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
            if let Some(b) = borrowing(ty) {
                let instead = match &b.owned {
                    Some(owned) => format!("return `{}` instead of `{}`", type_text(owned), type_text(ty)),
                    None => format!("return a concrete, owned type instead of `{}`", type_text(ty)),
                };
                errors.push(
                    Error::custom(format!(
                        "a cached function must return an owned value, since the value is stored and handed to every caller: {instead}"
                    ))
                    .with_span(&b.span),
                );
            }
            if is_result(ty) { Ret::Result((**ty).clone()) } else { Ret::Plain((**ty).clone()) }
        }
    };
    let generic = sig.generics.params.iter().any(|p| !matches!(p, syn::GenericParam::Lifetime(_)))
        || args.iter().any(|a| a.is_impl);
    if generic && !has_get_key {
        let example = closure_example("get_key", &args);
        errors.push(
            Error::custom(format!(
                "a generic cached function needs `get_key`, since its default key can't tell apart calls with different type parameters: add {example} returning something `Display`"
            ))
            .with_span(&sig.ident),
        );
    }
    errors.finish_with(Sig { is_async: sig.asyncness.is_some(), has_self, args, ret })
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

/// The parameter type a closure option gets for an argument: the argument by reference
/// (`_` in place of an `impl Trait`, which a closure can't name).
fn param_type(arg: &Arg) -> Type {
    let ty = if arg.is_impl { replace_impl(&arg.ty) } else { arg.ty.clone() };
    match &arg.referent {
        Some(_) => ty,
        None => syn::parse_quote!(&#ty),
    }
}

fn replace_impl(ty: &Type) -> Type {
    struct Infer;
    impl VisitMut for Infer {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if matches!(ty, Type::ImplTrait(_)) {
                *ty = syn::parse_quote!(_);
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    let mut ty = ty.clone();
    Infer.visit_type_mut(&mut ty);
    ty
}

/// `` `get_key = |id: &u64, name: &str| …` ``: how to write a closure option for these arguments.
pub fn closure_example(option: &str, args: &[Arg]) -> String {
    let params: Vec<String> = args.iter().map(|a| format!("{}: {}", a.ident, type_text(&param_type(a)))).collect();
    format!("`{option} = |{}| …`", params.join(", "))
}

/// Whether a closure parameter's written type can be the expected one. Lenient where a
/// difference of spelling is not a difference of type: `_` matches anything, lifetimes are
/// ignored, and paths are compared by their last segment (`String` = `std::string::String`).
pub fn same_type(given: &Type, expected: &Type) -> bool {
    match (given, expected) {
        (Type::Group(g), e) => same_type(&g.elem, e),
        (g, Type::Group(e)) => same_type(g, &e.elem),
        (Type::Paren(g), e) => same_type(&g.elem, e),
        (g, Type::Paren(e)) => same_type(g, &e.elem),
        (Type::Infer(_), _) | (_, Type::Infer(_)) => true,
        (Type::Reference(g), Type::Reference(e)) => {
            g.mutability.is_some() == e.mutability.is_some() && same_type(&g.elem, &e.elem)
        }
        (Type::Reference(_), _) | (_, Type::Reference(_)) => false,
        (Type::Slice(g), Type::Slice(e)) => same_type(&g.elem, &e.elem),
        (Type::Array(g), Type::Array(e)) => same_type(&g.elem, &e.elem),
        (Type::Tuple(g), Type::Tuple(e)) => {
            g.elems.len() == e.elems.len() && g.elems.iter().zip(&e.elems).all(|(g, e)| same_type(g, e))
        }
        (Type::Path(g), Type::Path(e)) if g.qself.is_none() && e.qself.is_none() => {
            match (g.path.segments.last(), e.path.segments.last()) {
                (Some(g), Some(e)) => g.ident == e.ident && same_args(&g.arguments, &e.arguments),
                _ => false,
            }
        }
        (g, e) => without_lifetimes(g) == without_lifetimes(e),
    }
}

fn same_args(given: &syn::PathArguments, expected: &syn::PathArguments) -> bool {
    let types = |a: &syn::PathArguments| -> Vec<Type> {
        match a {
            syn::PathArguments::AngleBracketed(a) => a
                .args
                .iter()
                .filter_map(|a| match a {
                    syn::GenericArgument::Type(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let (g, e) = (types(given), types(expected));
    g.len() != e.len() || g.iter().zip(&e).all(|(g, e)| same_type(g, e))
}

fn without_lifetimes(t: &Type) -> String {
    struct Erase;
    impl VisitMut for Erase {
        fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
            *l = syn::Lifetime::new("'_", l.span());
        }
    }
    let mut t = t.clone();
    Erase.visit_type_mut(&mut t);
    type_text(&t).replace("'_ ", "").replace("'_", "")
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") }
}

/// Checks a closure option (`get_key`, predicates) against the arguments: one parameter
/// per argument (not `self`), each the argument by reference.
pub fn check_closure(option: &str, expr: &syn::Expr, fn_name: &syn::Ident, sig: &Sig) -> darling::Result<()> {
    let syn::Expr::Closure(c) = expr else {
        return Ok(()); // a path to a function: the type checker speaks for it
    };
    let example = closure_example(option, &sig.args);
    if c.inputs.len() != sig.args.len() {
        let has = if sig.args.is_empty() {
            format!("`{fn_name}` has no arguments (besides `self`)")
        } else {
            format!("`{fn_name}` has {}", plural(sig.args.len(), "argument"))
        };
        let at = match c.inputs.iter().nth(sig.args.len()) {
            Some(extra) => extra.span(),
            None => c.inputs_end.span,
        };
        return Err(Error::custom(format!(
            "`{option}` takes {}, but {has}: it gets each argument by reference, so write {example}",
            plural(c.inputs.len(), "parameter")
        ))
        .with_span(&at));
    }
    let mut errors = Error::accumulator();
    for (input, arg) in c.inputs.iter().zip(&sig.args) {
        if let Pat::Type(pt) = input {
            let expected = param_type(arg);
            if !same_type(&pt.ty, &expected) {
                errors.push(
                    Error::custom(format!(
                        "`{option}` gets the argument `{}` by reference, as `{}`, not `{}`: write {example}",
                        arg.ident,
                        type_text(&expected),
                        type_text(&pt.ty),
                    ))
                    .with_span(&pt.ty),
                );
            }
        }
    }
    errors.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn owned(ty: Type) -> Option<String> {
        borrowing(&ty).map(|b| b.owned.as_ref().map_or_else(|| "?".to_owned(), type_text))
    }

    #[test]
    fn owned_types_are_not_borrowing() {
        assert!(owned(parse_quote!(String)).is_none());
        assert!(owned(parse_quote!(Result<Vec<u64>, MyError>)).is_none());
        assert!(owned(parse_quote!(Cow<'static, str>)).is_none());
    }

    #[test]
    fn a_borrowing_return_type_gets_its_owned_twin() {
        assert_eq!(owned(parse_quote!(&str)).as_deref(), Some("String"));
        assert_eq!(owned(parse_quote!(&'a [u8])).as_deref(), Some("Vec<u8>"));
        assert_eq!(owned(parse_quote!(&Profile)).as_deref(), Some("Profile"));
        assert_eq!(owned(parse_quote!(&std::path::Path)).as_deref(), Some("PathBuf"));
        assert_eq!(owned(parse_quote!(Vec<&str>)).as_deref(), Some("Vec<String>"));
        assert_eq!(owned(parse_quote!(Result<&str, E>)).as_deref(), Some("Result<String, E>"));
        assert_eq!(owned(parse_quote!(Cow<'a, str>)).as_deref(), Some("Cow<'static, str>"));
        assert_eq!(owned(parse_quote!(impl Iterator<Item = u64>)).as_deref(), Some("Vec<u64>"));
        assert_eq!(owned(parse_quote!(impl std::fmt::Display)).as_deref(), Some("String"));
        assert_eq!(owned(parse_quote!(impl Into<Bytes>)).as_deref(), Some("Bytes"));
        assert_eq!(owned(parse_quote!(impl Future<Output = u64>)).as_deref(), Some("?"));
    }

    #[test]
    fn types_read_as_written() {
        assert_eq!(type_text(&parse_quote!(&'a str) as &Type), "&'a str");
        assert_eq!(
            type_text(&parse_quote!(std::collections::HashMap<String, Vec<u8>>) as &Type),
            "std::collections::HashMap<String, Vec<u8>>"
        );
        assert_eq!(
            type_text(&parse_quote!(::core::option::Option<(u8, u16)>) as &Type),
            "::core::option::Option<(u8, u16)>"
        );
        assert_eq!(type_text(&parse_quote!(&mut [u8; 4]) as &Type), "&mut [u8; 4]");
    }

    #[test]
    fn closure_parameter_types_compare_by_meaning() {
        let same = |a: Type, b: Type| same_type(&a, &b);
        assert!(same(parse_quote!(&u64), parse_quote!(&u64)));
        assert!(same(parse_quote!(&_), parse_quote!(&u64)));
        assert!(same(parse_quote!(_), parse_quote!(&u64)));
        assert!(same(parse_quote!(&str), parse_quote!(&'a str)));
        assert!(same(parse_quote!(&std::string::String), parse_quote!(&String)));
        assert!(same(parse_quote!(&Vec<_>), parse_quote!(&Vec<u64>)));
        assert!(same(parse_quote!(&(u8, String)), parse_quote!(&(u8, String))));
        assert!(!same(parse_quote!(u64), parse_quote!(&u64)));
        assert!(!same(parse_quote!(&&u64), parse_quote!(&u64)));
        assert!(!same(parse_quote!(&String), parse_quote!(&str)));
        assert!(!same(parse_quote!(&mut u64), parse_quote!(&u64)));
        assert!(!same(parse_quote!(&Vec<u32>), parse_quote!(&Vec<u64>)));
    }

    fn analysed(sig: syn::Signature) -> Sig {
        match analyse(&sig, true) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_example_closure_takes_every_argument_by_reference() {
        let sig =
            analysed(parse_quote!(async fn f(&self, id: u64, name: &str, tags: Vec<String>, v: impl Display) -> u64));
        assert_eq!(
            closure_example("get_key", &sig.args),
            "`get_key = |id: &u64, name: &str, tags: &Vec<String>, v: &_| …`"
        );
        let none = analysed(parse_quote!(async fn f() -> u64));
        assert_eq!(closure_example("should_bypass_cache", &none.args), "`should_bypass_cache = || …`");
    }

    fn closure_error(closure: syn::Expr, sig: syn::Signature) -> Option<String> {
        let s = analysed(sig.clone());
        check_closure("get_key", &closure, &sig.ident, &s).err().map(|e| e.to_string())
    }

    #[test]
    fn a_closure_with_the_wrong_parameters_is_told_what_to_write() {
        let sig: syn::Signature = parse_quote!(async fn title(id: u64, lang: &str) -> String);
        assert_eq!(closure_error(parse_quote!(|id: &u64, lang: &str| 1), sig.clone()), None);
        assert_eq!(closure_error(parse_quote!(|id, lang| 1), sig.clone()), None);
        assert_eq!(closure_error(parse_quote!(key_of), sig.clone()), None);
        assert_eq!(
            closure_error(parse_quote!(|id: &u64| 1), sig.clone()).as_deref(),
            Some(
                "`get_key` takes 1 parameter, but `title` has 2 arguments: it gets each argument by reference, so write `get_key = |id: &u64, lang: &str| …`"
            )
        );
        assert_eq!(
            closure_error(parse_quote!(|id: &u64, lang: String| 1), sig).as_deref(),
            Some(
                "`get_key` gets the argument `lang` by reference, as `&str`, not `String`: write `get_key = |id: &u64, lang: &str| …`"
            )
        );
        let none: syn::Signature = parse_quote!(async fn now() -> u64);
        assert!(
            closure_error(parse_quote!(|x: &u64| 1), none).unwrap().contains("`now` has no arguments (besides `self`)")
        );
    }

    fn signature_error(sig: syn::Signature, has_get_key: bool) -> String {
        match analyse(&sig, has_get_key) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn signature_misuse_is_answered_with_a_fix() {
        assert!(signature_error(parse_quote!(const fn f() -> u64), false).ends_with("write `fn f` or `async fn f`"));
        assert!(!analysed(parse_quote!(fn f() -> u64)).is_async);
        assert!(
            signature_error(parse_quote!(async fn f(v: &mut Vec<u8>) -> u64), false)
                .ends_with("take `v: &Vec<u8>` or `v: Vec<u8>`")
        );
        assert!(signature_error(parse_quote!(async fn f(&mut self) -> u64), false).ends_with("take `&self`"));
        assert!(
            signature_error(parse_quote!(async fn f((a, b): (u8, u8)) -> u64), false)
                .ends_with("(`let (a, b) = arg;`)")
        );
        assert!(
            signature_error(parse_quote!(async fn f(s: &str) -> &str), false)
                .ends_with("return `String` instead of `&str`")
        );
        assert!(
            signature_error(parse_quote!(async fn f<T: Display>(v: T) -> u64), false)
                .contains("add `get_key = |v: &T| …`")
        );
        assert!(analyse(&parse_quote!(async fn f<T: Display>(v: T) -> u64), true).is_ok());
    }
}
