//! The attribute's options: parsed by darling, then checked as a whole in [`build`].

use darling::{Error, FromMeta};
use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;

use crate::duration::{self, Span as Dur};
use crate::option_names;

/// The option's name as written (`stale_max_age` in `stale_max_age = "1h"`).
fn option_name(meta: &syn::Meta) -> String {
    option_names::name_of(meta.path())
}

/// The value of `option = value`, or an error saying how to write one.
fn value_of<'m>(meta: &'m syn::Meta, example: &str) -> darling::Result<&'m syn::Expr> {
    match meta {
        syn::Meta::NameValue(nv) => Ok(&nv.value),
        _ => {
            let option = option_name(meta);
            Err(Error::custom(format!("`{option}` needs a value: write `{option} = {example}`"))
                .with_span(&meta.path()))
        }
    }
}

/// A duration as written: a string or an integer number of seconds.
#[derive(Debug, Clone)]
pub struct DurationLit {
    /// The text of the duration (`-` included for a negative number).
    text: String,
    /// Written as a string literal (so a fix-it is quoted too).
    quoted: bool,
    /// The value as written.
    span: Span,
    /// The option's name, where an error about the option as a whole points.
    name_span: Span,
}

impl DurationLit {
    fn read(option: &str, expr: &syn::Expr) -> darling::Result<(String, bool, Span)> {
        match expr {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Ok((s.value(), true, s.span())),
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => Ok((i.base10_digits().to_owned(), false, i.span())),
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => Err(Error::custom(format!(
                "`{option}` takes whole seconds or a duration string: write `{option} = \"{}s\"`",
                f.base10_digits()
            ))
            .with_span(f)),
            syn::Expr::Group(g) => Self::read(option, &g.expr),
            syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => {
                let (text, quoted, _) = Self::read(option, &u.expr)?;
                Ok((format!("-{text}"), quoted, u.op.span()))
            }
            other => Err(Error::custom(format!(
                "`{option}` is read at compile time, so it must be written out: write e.g. `{option} = \"10m\"` or `{option} = 600`"
            ))
            .with_span(other)),
        }
    }
}

impl FromMeta for DurationLit {
    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        let option = option_name(meta);
        let expr = value_of(meta, "\"1h\"")?;
        let (text, quoted, span) = Self::read(&option, expr)?;
        Ok(DurationLit { text, quoted, span, name_span: meta.path().span() })
    }
}

/// A flag: `swr`, `swr = true` or `swr = false`.
#[derive(Debug, Clone, Copy)]
pub struct Flag(bool);

impl FromMeta for Flag {
    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        let option = option_name(meta);
        let wrong = |at: &dyn ToTokens| {
            Error::custom(format!("`{option}` is a flag: write `{option}` to turn it on, or `{option} = false`"))
                .with_span(&at.to_token_stream())
        };
        match meta {
            syn::Meta::Path(_) => Ok(Flag(true)),
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(b), .. }) => Ok(Flag(b.value)),
                other => Err(wrong(other)),
            },
            syn::Meta::List(l) => Err(wrong(&l.path)),
        }
    }
}

/// A fraction strictly between 0 and 1 (`refresh_ahead = 0.8`), in thousandths.
#[derive(Debug, Clone, Copy)]
pub struct Fraction(u16);

impl FromMeta for Fraction {
    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        let option = option_name(meta);
        let wrong = |at: &dyn ToTokens| {
            Error::custom(format!(
                "`{option}` is the part of `max_age` after which a hit starts a background refresh: \
                 a number between 0 and 1, such as `{option} = 0.8`"
            ))
            .with_span(&at.to_token_stream())
        };
        let value = value_of(meta, "0.8")?;
        let number = match value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(f) if f > 0.0 && f < 1.0 => Ok(Fraction(((f * 1000.0).round() as u16).clamp(1, 999))),
            _ => Err(wrong(value)),
        }
    }
}

/// A string option (`name = "…"`) and where it was written.
#[derive(Debug, Clone)]
pub struct Text {
    value: String,
    span: Span,
}

impl FromMeta for Text {
    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        let option = option_name(meta);
        match value_of(meta, "\"…\"")? {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Ok(Text { value: s.value(), span: s.span() }),
            other => {
                let quoted = match other {
                    syn::Expr::Path(_) | syn::Expr::Lit(_) => other.to_token_stream().to_string().replace(' ', ""),
                    _ => "…".to_owned(),
                };
                Err(Error::custom(format!("`{option}` takes a string literal: write `{option} = \"{quoted}\"`"))
                    .with_span(other))
            }
        }
    }
}

/// `crate = path`: where generated code finds larder.
#[derive(Debug, Clone)]
pub struct CratePath(syn::Path);

impl FromMeta for CratePath {
    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        match value_of(meta, "::larder")? {
            syn::Expr::Path(p) if p.qself.is_none() => Ok(CratePath(p.path.clone())),
            other => Err(Error::custom("`crate` takes the path larder is known by: write e.g. `crate = ::larder`")
                .with_span(other)),
        }
    }
}

/// A closure (or a path to a function) over the arguments; never code inside a string.
#[derive(Debug, Clone)]
pub struct Closure(syn::Expr);

impl FromMeta for Closure {
    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        let option = option_name(meta);
        match value_of(meta, "|…| …")? {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Err(Error::custom(format!(
                "`{option}` takes the closure itself, not a string: write `{option} = {}`",
                s.value()
            ))
            .with_span(s)),
            other => Ok(Closure(other.clone())),
        }
    }
}

/// `tags = ["a", "b"]` (string literals) or `tags = |args…| vec![…]` (a closure).
#[derive(Debug, Clone)]
pub enum TagsOpt {
    Static(Vec<String>),
    Dynamic(syn::Expr),
}

impl FromMeta for TagsOpt {
    fn from_meta(meta: &syn::Meta) -> darling::Result<Self> {
        let wrong = |at: &dyn ToTokens| {
            Error::custom(
                "`tags` takes string literals or a closure over the arguments: write `tags = [\"users\"]` or `tags = |id: &u64| vec![format!(\"user:{id}\")]`",
            )
            .with_span(&at.to_token_stream())
        };
        match value_of(meta, "[\"…\"]")? {
            syn::Expr::Array(a) => {
                let mut tags = Vec::new();
                for e in &a.elems {
                    match e {
                        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) if !s.value().is_empty() => {
                            tags.push(s.value())
                        }
                        other => return Err(wrong(other)),
                    }
                }
                Ok(TagsOpt::Static(tags))
            }
            e @ (syn::Expr::Closure(_) | syn::Expr::Path(_)) => Ok(TagsOpt::Dynamic(e.clone())),
            other => Err(wrong(other)),
        }
    }
}

/// The options as darling reads them, before they are checked together. Every field is
/// also listed in [`OPTIONS`](crate::option_names::OPTIONS).
#[derive(Debug, FromMeta)]
pub struct RawOptions {
    max_age: Option<DurationLit>,
    swr: Option<Flag>,
    stale_max_age: Option<DurationLit>,
    name: Option<Text>,
    group: Option<Text>,
    base: Option<Text>,
    get_key: Option<Closure>,
    integrity: Option<Text>,
    should_bypass_cache: Option<Closure>,
    should_invalidate_cache: Option<Closure>,
    tags: Option<TagsOpt>,
    grace: Option<DurationLit>,
    grace_backoff: Option<DurationLit>,
    timeout: Option<DurationLit>,
    hard_timeout: Option<DurationLit>,
    refresh_ahead: Option<Fraction>,
    result: Option<Flag>,
    #[darling(rename = "crate")]
    krate: Option<CratePath>,
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
    pub tags: Option<TagsOpt>,
    /// Fail-safe window past `max_age`.
    pub grace_ms: Option<u64>,
    pub grace_backoff_ms: u64,
    pub timeout_ms: Option<u64>,
    /// With where it was written (a non-`Result` function can't have it).
    pub hard_timeout: Option<(u64, Span)>,
    /// Refresh ahead, in thousandths of `max_age` (0: off).
    pub refresh_ahead_permille: u16,
    /// `result = true`: the return type is a `Result` whatever its name (an alias);
    /// `result = false`: cache it as a plain value even if it is one.
    pub result: Option<bool>,
    pub krate: syn::Path,
}

fn parse_duration(lit: &DurationLit, option: &str, allow_forever: bool) -> darling::Result<Dur> {
    duration::parse(&lit.text, allow_forever).map_err(|bad| {
        Error::custom(duration::message(bad, option, &lit.text, lit.quoted, allow_forever)).with_span(&lit.span)
    })
}

use cache_keyspace::{is_segment, segment_fix};

fn check_segment(value: &Text, option: &str, allow_slash: bool, fallback: &str) -> darling::Result<String> {
    let s = value.value.as_str();
    if is_segment(s, allow_slash) {
        return Ok(s.to_owned());
    }
    let allowed = if allow_slash {
        "letters, digits, `_` and `-`, in parts separated by `/`"
    } else {
        "letters, digits, `_` and `-`"
    };
    let fixed = segment_fix(s, allow_slash, fallback);
    Err(Error::custom(format!("`{option}` may only contain {allowed}: write `{option} = \"{fixed}\"`"))
        .with_span(&value.span))
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
        let swr = self.swr.is_some_and(|Flag(on)| on);
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
                        .with_span(&lit.name_span),
                );
                Stale::Off
            }
        };
        let fn_name = fn_name.trim_start_matches("r#");
        let name = match &self.name {
            Some(n) => errors.handle(check_segment(n, "name", false, fn_name)).unwrap_or_default(),
            None => fn_name.to_owned(),
        };
        let group = match &self.group {
            Some(g) => errors.handle(check_segment(g, "group", true, "functions")).unwrap_or_default(),
            None => "functions".to_owned(),
        };
        let base = match &self.base {
            Some(b) if b.value.trim().is_empty() => {
                errors.push(
                    Error::custom("`base` names a mount and can't be empty: write `base = \"cache\"`")
                        .with_span(&b.span),
                );
                String::new()
            }
            Some(b) => b.value.clone(),
            None => "cache".to_owned(),
        };
        if let Some(i) = &self.integrity
            && i.value.is_empty()
        {
            errors.push(
                Error::custom(
                    "`integrity` can't be empty: write a version string such as `integrity = \"v2\"`, or remove it",
                )
                .with_span(&i.span),
            );
        }
        let krate = self.krate.map_or_else(|| syn::parse_quote!(::larder), |CratePath(p)| p);
        let mut millis = |lit: &Option<DurationLit>, option: &str| -> Option<u64> {
            lit.as_ref().and_then(|l| match errors.handle(parse_duration(l, option, false)) {
                Some(Dur::Millis(ms)) => Some(ms),
                _ => None,
            })
        };
        let grace_ms = millis(&self.grace, "grace");
        let grace_backoff_ms = millis(&self.grace_backoff, "grace_backoff").unwrap_or(10_000);
        let timeout_ms = millis(&self.timeout, "timeout");
        let hard_timeout =
            millis(&self.hard_timeout, "hard_timeout").zip(self.hard_timeout.as_ref().map(|l| l.name_span));
        if let Some(lit) = &self.grace_backoff
            && self.grace.is_none()
        {
            errors.push(
                Error::custom(
                    "`grace_backoff` only applies with fail-safe: add `grace = \"…\"`, or remove `grace_backoff`",
                )
                .with_span(&lit.name_span),
            );
        }
        if let Some(lit) = &self.timeout
            && !swr
            && self.grace.is_none()
        {
            errors.push(
                Error::custom("`timeout` answers with a stale value when the body is slow, so it needs one to answer with: add `swr` or `grace = \"…\"`")
                    .with_span(&lit.name_span),
            );
        }

        errors.finish_with(Options {
            max_age_ms,
            stale,
            name,
            group,
            base,
            get_key: self.get_key.map(|Closure(e)| e),
            integrity: self.integrity.map(|i| i.value),
            bypass: self.should_bypass_cache.map(|Closure(e)| e),
            invalidate: self.should_invalidate_cache.map(|Closure(e)| e),
            tags: self.tags,
            grace_ms,
            grace_backoff_ms,
            timeout_ms,
            hard_timeout,
            refresh_ahead_permille: self.refresh_ahead.map_or(0, |Fraction(p)| p),
            result: self.result.map(|Flag(on)| on),
            krate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darling::ast::NestedMeta;

    fn build(tokens: proc_macro2::TokenStream) -> Result<Options, String> {
        let metas = NestedMeta::parse_meta_list(tokens).map_err(|e| e.to_string())?;
        // As the user sees it: the message, without darling's location suffix.
        let shown = |e: Error| syn::Error::from(e).to_string();
        let raw = RawOptions::from_list(&metas).map_err(shown)?;
        raw.build("gh_stars").map_err(shown)
    }

    #[test]
    fn the_spec_example_builds() {
        let o = build(quote::quote!(
            max_age = "1h",
            swr,
            stale_max_age = "1d",
            group = "github",
            get_key = |repo: &str| repo.to_owned()
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.max_age_ms, 3_600_000);
        assert_eq!(o.stale, Stale::For(86_400_000));
        assert_eq!((o.name.as_str(), o.group.as_str(), o.base.as_str()), ("gh_stars", "github", "cache"));
        assert!(o.get_key.is_some());
    }

    #[test]
    fn refresh_ahead_is_a_fraction_of_max_age() {
        assert_eq!(build(quote::quote!(refresh_ahead = 0.8)).map(|o| o.refresh_ahead_permille), Ok(800));
        assert_eq!(build(quote::quote!(max_age = "1m")).map(|o| o.refresh_ahead_permille), Ok(0));
        for bad in [
            quote::quote!(refresh_ahead = 1.0),
            quote::quote!(refresh_ahead = 0.0),
            quote::quote!(refresh_ahead = "0.8"),
        ] {
            assert!(build(bad).err().is_some_and(|e| e.contains("a number between 0 and 1")));
        }
    }

    #[test]
    fn swr_is_a_flag_that_can_be_turned_off() {
        assert_eq!(build(quote::quote!(swr)).map(|o| o.stale), Ok(Stale::Forever));
        assert_eq!(build(quote::quote!(swr = false)).map(|o| o.stale), Ok(Stale::Off));
        assert_eq!(
            build(quote::quote!(swr = "yes")).err().as_deref(),
            Some("`swr` is a flag: write `swr` to turn it on, or `swr = false`")
        );
    }

    #[test]
    fn option_values_in_the_wrong_form_are_told_the_right_one() {
        let err = |t| build(t).err().unwrap_or_default();
        assert_eq!(err(quote::quote!(max_age)), "`max_age` needs a value: write `max_age = \"1h\"`");
        assert_eq!(
            err(quote::quote!(max_age = 2.5)),
            "`max_age` takes whole seconds or a duration string: write `max_age = \"2.5s\"`"
        );
        assert_eq!(err(quote::quote!(max_age = -5)), "`max_age` can't be negative: write `max_age = 5`");
        assert!(err(quote::quote!(max_age = TTL)).starts_with("`max_age` is read at compile time"));
        assert_eq!(err(quote::quote!(name = profile)), "`name` takes a string literal: write `name = \"profile\"`");
        assert_eq!(
            err(quote::quote!(get_key = "|id: &u64| *id")),
            "`get_key` takes the closure itself, not a string: write `get_key = |id: &u64| *id`"
        );
        assert_eq!(
            err(quote::quote!(crate = 5)),
            "`crate` takes the path larder is known by: write e.g. `crate = ::larder`"
        );
        assert!(
            err(quote::quote!(stale_max_age = "1h"))
                .starts_with("`stale_max_age` only applies with stale-while-revalidate")
        );
    }

    /// Every option that `option_names` lets through is one that `RawOptions` reads.
    #[test]
    fn every_listed_option_is_one_that_raw_options_reads() {
        let values = quote::quote!(
            max_age = "1m",
            swr,
            stale_max_age = "1h",
            name = "n",
            group = "g",
            base = "b",
            get_key = |x: &u64| *x,
            integrity = "v1",
            should_bypass_cache = |x: &u64| *x == 0,
            should_invalidate_cache = |x: &u64| *x == 0,
            tags = ["t"],
            grace = "1h",
            grace_backoff = "1m",
            timeout = "1s",
            hard_timeout = "5s",
            refresh_ahead = 0.8,
            result,
            crate = ::larder
        );
        let given = NestedMeta::parse_meta_list(values).unwrap();
        assert_eq!(given.len(), option_names::OPTIONS.len());
        let mut errors = Error::accumulator();
        let kept = option_names::screen(given, &mut errors);
        assert!(errors.finish().is_ok());
        if let Err(e) = RawOptions::from_list(&kept) {
            panic!("RawOptions rejects a listed option: {e}");
        }
    }
}
