//! The attribute's options: parsed by darling, then checked as a whole in [`build`].

use darling::util::SpannedValue;
use darling::{Error, FromMeta};
use proc_macro2::Span;
use syn::spanned::Spanned;

use crate::duration::{self, Span as Dur};

/// A duration as written: a string or an integer number of seconds.
#[derive(Debug, Clone)]
pub struct DurationLit {
    text: String,
    span: Span,
}

impl FromMeta for DurationLit {
    fn from_value(lit: &syn::Lit) -> darling::Result<Self> {
        match lit {
            syn::Lit::Str(s) => Ok(DurationLit { text: s.value(), span: s.span() }),
            syn::Lit::Int(i) => Ok(DurationLit { text: i.base10_digits().to_owned(), span: i.span() }),
            other => Err(Error::custom(format!("expected a duration: {}", duration::HINT)).with_span(other)),
        }
    }

    fn from_expr(expr: &syn::Expr) -> darling::Result<Self> {
        match expr {
            syn::Expr::Lit(l) => Self::from_value(&l.lit),
            syn::Expr::Group(g) => Self::from_expr(&g.expr),
            syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => {
                let inner = Self::from_expr(&u.expr)?;
                Ok(DurationLit { text: format!("-{}", inner.text), span: expr.span() })
            }
            other => Err(Error::custom(format!("expected a duration literal: {}", duration::HINT)).with_span(other)),
        }
    }
}

/// The options as darling reads them, before they are checked together.
#[derive(Debug, FromMeta)]
pub struct RawOptions {
    max_age: Option<DurationLit>,
    swr: Option<SpannedValue<bool>>,
    stale_max_age: Option<DurationLit>,
    name: Option<SpannedValue<String>>,
    group: Option<SpannedValue<String>>,
    base: Option<SpannedValue<String>>,
    get_key: Option<syn::Expr>,
    integrity: Option<SpannedValue<String>>,
    should_bypass_cache: Option<syn::Expr>,
    should_invalidate_cache: Option<syn::Expr>,
    #[darling(rename = "crate")]
    krate: Option<syn::Path>,
}

/// How long a stale entry may be served (`swr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    Off,
    For(u64),
    Forever,
}

/// The checked options: one value, built once, that expansion reads.
pub struct Options {
    pub max_age_ms: u64,
    pub stale: Stale,
    pub name: String,
    pub group: String,
    pub base: String,
    pub get_key: Option<syn::Expr>,
    pub integrity: Option<String>,
    pub bypass: Option<syn::Expr>,
    pub invalidate: Option<syn::Expr>,
    pub krate: syn::Path,
}

fn parse_duration(lit: &DurationLit, option: &str, allow_forever: bool) -> darling::Result<Dur> {
    duration::parse(&lit.text, allow_forever)
        .map_err(|msg| Error::custom(format!("`{option}`: {msg}")).with_span(&lit.span))
}

fn check_segment(value: &SpannedValue<String>, option: &str, allow_slash: bool) -> darling::Result<String> {
    let s = value.as_str();
    let ok = !s.is_empty()
        && s.split('/').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        && (allow_slash || !s.contains('/'));
    if ok {
        Ok(s.to_owned())
    } else {
        let allowed = if allow_slash {
            "letters, digits, `_` and `-`, in parts separated by `/`"
        } else {
            "letters, digits, `_` and `-`"
        };
        let fixed: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || (allow_slash && c == '/') { c } else { '_' }).collect();
        let fixed = if fixed.is_empty() { "my_name".to_owned() } else { fixed };
        Err(Error::custom(format!("`{option}` may only contain {allowed}: write `{option} = \"{fixed}\"`"))
            .with_span(&value.span()))
    }
}

impl RawOptions {
    /// Checks the options together; `fn_name` is the default `name`.
    pub fn build(self, fn_name: &str) -> darling::Result<Options> {
        let mut errors = Error::accumulator();

        let max_age_ms = match &self.max_age {
            None => 1000,
            Some(lit) => match errors.handle(parse_duration(lit, "max_age", false)) {
                Some(Dur::Millis(ms)) => ms,
                _ => 1000,
            },
        };
        let swr = self.swr.as_ref().is_some_and(|s| **s);
        let stale = match (&self.stale_max_age, swr) {
            (None, true) => Stale::Forever,
            (None, false) => Stale::Off,
            (Some(lit), true) => match errors.handle(parse_duration(lit, "stale_max_age", true)) {
                Some(Dur::Millis(ms)) => Stale::For(ms),
                _ => Stale::Forever,
            },
            (Some(lit), false) => {
                errors.push(
                    Error::custom("`stale_max_age` only applies with stale-while-revalidate: add `swr`, or remove `stale_max_age`")
                        .with_span(&lit.span),
                );
                Stale::Off
            }
        };
        let name = match &self.name {
            Some(n) => errors.handle(check_segment(n, "name", false)).unwrap_or_default(),
            None => fn_name.trim_start_matches("r#").to_owned(),
        };
        let group = match &self.group {
            Some(g) => errors.handle(check_segment(g, "group", true)).unwrap_or_default(),
            None => "functions".to_owned(),
        };
        let base = match &self.base {
            Some(b) if b.trim().is_empty() => {
                errors.push(Error::custom("`base` names a mount and can't be empty: write `base = \"cache\"`").with_span(&b.span()));
                String::new()
            }
            Some(b) => b.as_str().to_owned(),
            None => "cache".to_owned(),
        };
        if let Some(i) = &self.integrity
            && i.is_empty()
        {
            errors.push(
                Error::custom("`integrity` can't be empty: write a version string such as `integrity = \"v2\"`, or remove it")
                    .with_span(&i.span()),
            );
        }
        let krate = self.krate.unwrap_or_else(|| syn::parse_quote!(::larder));

        errors.finish_with(Options {
            max_age_ms,
            stale,
            name,
            group,
            base,
            get_key: self.get_key,
            integrity: self.integrity.map(|i| i.as_str().to_owned()),
            bypass: self.should_bypass_cache,
            invalidate: self.should_invalidate_cache,
            krate,
        })
    }
}
