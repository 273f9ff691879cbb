//! The names of the attribute's options, screened before darling reads their values: an
//! unknown name gets a did-you-mean, a name given twice gets "remove one", and darling
//! then sees each known option once.

use darling::Error;
use darling::ast::NestedMeta;

/// Every option `#[cached]` takes, as written by the user. Keep in step with
/// [`RawOptions`](crate::options::RawOptions): a field missing here is rejected as unknown.
pub const OPTIONS: &[&str] = &[
    "max_age",
    "swr",
    "stale_max_age",
    "name",
    "group",
    "base",
    "get_key",
    "integrity",
    "should_bypass_cache",
    "should_invalidate_cache",
    "tags",
    "grace",
    "grace_backoff",
    "timeout",
    "hard_timeout",
    "refresh_ahead",
    "result",
    "crate",
];

/// Names from other caching libraries, and their larder spelling.
const ALIASES: &[(&str, &str)] = &[
    ("ttl", "max_age"),
    ("time_to_live", "max_age"),
    ("maxage", "max_age"),
    ("max_age_secs", "max_age"),
    ("stale_while_revalidate", "swr"),
    ("eager_refresh", "refresh_ahead"),
    ("refresh_before_expiry", "refresh_ahead"),
    ("key", "get_key"),
    ("convert", "get_key"),
    ("namespace", "group"),
    ("prefix", "group"),
];

/// Keeps the options darling should read; pushes one error per unknown or repeated name.
pub fn screen(metas: Vec<NestedMeta>, errors: &mut darling::error::Accumulator) -> Vec<NestedMeta> {
    let mut seen: Vec<String> = Vec::new();
    let mut kept = Vec::with_capacity(metas.len());
    for nested in metas {
        let NestedMeta::Meta(meta) = &nested else {
            errors.push(
                Error::custom("`#[cached]` takes `option = value` pairs: write e.g. `#[cached(max_age = \"1h\")]`")
                    .with_span(&nested),
            );
            continue;
        };
        let name = name_of(meta.path());
        if !OPTIONS.contains(&name.as_str()) {
            errors.push(Error::custom(unknown_message(&name)).with_span(&meta.path()));
        } else if seen.contains(&name) {
            errors.push(Error::custom(format!("`{name}` is given twice: remove one of them")).with_span(&meta.path()));
        } else {
            seen.push(name);
            kept.push(nested);
        }
    }
    kept
}

/// An option's name as written: `max_age`, `crate`.
pub fn name_of(path: &syn::Path) -> String {
    let text = quote::ToTokens::to_token_stream(path).to_string();
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The message for an unknown option: the nearest valid one, or the list of them.
pub fn unknown_message(name: &str) -> String {
    match suggest(name) {
        Some(s) => format!("unknown option `{name}`: did you mean `{s}`?"),
        None => format!(
            "unknown option `{name}`: the options are {}",
            OPTIONS.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The option the user most likely meant: an alias from another library, or the nearest
/// name by edit distance (at most a third of its length, and at least one edit allowed).
pub fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase().replace('-', "_");
    if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == lower) {
        return Some(to);
    }
    OPTIONS
        .iter()
        .map(|o| (edit_distance(&lower, o), *o))
        .filter(|(d, o)| *d <= (o.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbours each count one.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metas(tokens: proc_macro2::TokenStream) -> Vec<NestedMeta> {
        NestedMeta::parse_meta_list(tokens).unwrap()
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("max_age", "max_age"), 0);
        assert_eq!(edit_distance("max_agee", "max_age"), 1);
        assert_eq!(edit_distance("max_aeg", "max_age"), 1);
        assert_eq!(edit_distance("", "swr"), 3);
        assert_eq!(edit_distance("grop", "group"), 1);
    }

    #[test]
    fn typos_and_other_libraries_names_get_a_suggestion() {
        assert_eq!(suggest("max_agee"), Some("max_age"));
        assert_eq!(suggest("maxAge"), Some("max_age"));
        assert_eq!(suggest("stale_max_ag"), Some("stale_max_age"));
        assert_eq!(suggest("sw"), Some("swr"));
        assert_eq!(suggest("ttl"), Some("max_age"));
        assert_eq!(suggest("key"), Some("get_key"));
        assert_eq!(suggest("should_bypass"), Some("should_bypass_cache"));
        assert_eq!(suggest("frobnicate"), None);
    }

    #[test]
    fn an_unknown_option_without_a_near_name_lists_the_options() {
        let msg = unknown_message("frobnicate");
        assert!(msg.starts_with("unknown option `frobnicate`: the options are `max_age`, `swr`"), "{msg}");
        assert_eq!(unknown_message("max_agee"), "unknown option `max_agee`: did you mean `max_age`?");
    }

    #[test]
    fn screening_drops_unknown_and_repeated_options_with_one_error_each() {
        let mut errors = Error::accumulator();
        let kept =
            screen(metas(quote::quote!(max_age = "1m", swr, max_agee = 3, max_age = "1h", crate = ::x)), &mut errors);
        let names: Vec<String> = kept
            .iter()
            .map(|m| match m {
                NestedMeta::Meta(m) => name_of(m.path()),
                NestedMeta::Lit(_) | NestedMeta::NameValueInvalidExpr(_) => unreachable!(),
            })
            .collect();
        assert_eq!(names, ["max_age", "swr", "crate"]);
        let errs = errors.into_inner();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].to_string().contains("did you mean `max_age`"));
        assert!(errs[1].to_string().contains("`max_age` is given twice"));
    }
}
