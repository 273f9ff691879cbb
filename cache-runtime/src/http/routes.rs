//! Route rules: glob patterns over request paths, each mapped to a [`RouteRule`]; the most
//! specific matching pattern decides a request's options.

use std::fmt;
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};

use super::settings::{RouteRule, Settings};

/// Route rules (Nitro's `routeRules`): glob patterns over request paths mapped to options.
///
/// Patterns match the path only (no query). `*` matches within one segment, `**` any
/// number of segments, `?`, `[a-z]` and `{a,b}` as usual; a pattern ending in `/**` also
/// matches its base (`/blog/**` matches `/blog`). For a request, the most specific
/// matching pattern wins: more literal segments first (`/blog/drafts/**` over `/blog/**`),
/// then more segments without `**` (`/blog/*` over `/blog/**`), then more literal
/// characters; among equals, the rule added last. Its options apply over the layer's;
/// paths that no pattern matches use the layer's options. A catch-all
/// `.rule("/**", RouteRule::off())` caches only the routes listed.
///
/// ```
/// # use cache_runtime as larder;
/// use std::time::Duration;
/// use larder::http::{RouteRule, RouteRules};
/// let rules = RouteRules::new()
///     .rule("/blog/**", RouteRule::new().max_age(Duration::from_secs(3600)).swr())
///     .rule("/blog/drafts/**", RouteRule::off())
///     .rule("/api/*/stars", RouteRule::new().max_age(Duration::from_secs(60)).tag("stars"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RouteRules {
    rules: Vec<(PathGlob, RouteRule)>,
}

impl RouteRules {
    /// No rules: every path uses the layer's options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule.
    ///
    /// # Panics
    ///
    /// If `pattern` is not a valid glob or does not start with `/` (like an invalid route
    /// in `axum::Router::route`): rules are written by the programmer, at start.
    pub fn rule(mut self, pattern: &str, rule: RouteRule) -> Self {
        let glob = PathGlob::new(pattern).unwrap_or_else(|e| panic!("{e}"));
        self.rules.push((glob, rule));
        self
    }

    /// Every rule over `base` (the layer's options), most specific first.
    pub(crate) fn resolve(&self, base: &RouteRule) -> Resolved {
        let mut rules: Vec<(usize, &PathGlob, &RouteRule)> =
            self.rules.iter().enumerate().map(|(i, (g, r))| (i, g, r)).collect();
        rules.sort_by(|a, b| b.1.specificity.cmp(&a.1.specificity).then(b.0.cmp(&a.0)));
        Resolved {
            fallback: Arc::new(Settings::resolve(base)),
            rules: rules.into_iter().map(|(_, g, r)| (g.clone(), Arc::new(Settings::resolve(&r.over(base))))).collect(),
        }
    }
}

/// The rules of a layer, resolved against its options.
#[derive(Debug)]
pub(crate) struct Resolved {
    fallback: Arc<Settings>,
    rules: Vec<(PathGlob, Arc<Settings>)>,
}

impl Resolved {
    /// The settings of a request path.
    #[inline]
    pub fn for_path(&self, path: &str) -> &Arc<Settings> {
        self.rules.iter().find(|(g, _)| g.is_match(path)).map_or(&self.fallback, |(_, s)| s)
    }
}

/// A pattern that is not a valid path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidGlob {
    pattern: String,
    reason: String,
}

impl fmt::Display for InvalidGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid path glob {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for InvalidGlob {}

/// A glob over request paths.
#[derive(Debug, Clone)]
pub(crate) struct PathGlob {
    pattern: String,
    matcher: GlobMatcher,
    /// For `…/**`: the base path `…`, which the pattern covers too.
    base: Option<GlobMatcher>,
    /// (literal segments, segments without `**`, literal characters).
    specificity: (usize, usize, usize),
}

const META: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

impl PathGlob {
    pub fn new(pattern: &str) -> Result<PathGlob, InvalidGlob> {
        let invalid = |reason: String| InvalidGlob { pattern: pattern.to_owned(), reason };
        if !pattern.starts_with('/') {
            return Err(invalid("a path glob starts with `/` (`/blog/**`)".into()));
        }
        let compile = |p: &str| {
            GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| invalid(e.kind().to_string()))
        };
        let matcher = compile(pattern)?;
        let base = match pattern.strip_suffix("/**") {
            Some("") => Some(compile("/")?),
            Some(base) => Some(compile(base)?),
            None => None,
        };
        let segments: Vec<&str> = pattern[1..].split('/').collect();
        let literal = segments.iter().filter(|s| !s.contains(META)).count();
        let bounded = segments.iter().filter(|s| !s.contains("**")).count();
        let chars = pattern.chars().filter(|c| !META.contains(c)).count();
        Ok(PathGlob { pattern: pattern.to_owned(), matcher, base, specificity: (literal, bounded, chars) })
    }

    #[inline]
    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path) || self.base.as_ref().is_some_and(|b| b.is_match(path))
    }

    /// The literal segments the glob starts with (every path it matches starts with them).
    pub fn literal_segments(&self) -> Vec<&str> {
        self.pattern[1..].split('/').take_while(|s| !s.contains(META)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn globs_match_paths_by_segment() {
        let g = PathGlob::new("/blog/**").unwrap();
        assert!(g.is_match("/blog") && g.is_match("/blog/") && g.is_match("/blog/a/b"));
        assert!(!g.is_match("/blogs") && !g.is_match("/x/blog/a"));
        let s = PathGlob::new("/api/*/stars").unwrap();
        assert!(s.is_match("/api/rust/stars"));
        assert!(!s.is_match("/api/a/b/stars") && !s.is_match("/api/rust/stars/x"));
        assert!(PathGlob::new("/**").unwrap().is_match("/"));
        assert!(PathGlob::new("blog").is_err());
        assert!(PathGlob::new("/a/[").is_err());
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let rules = RouteRules::new()
            .rule("/**", RouteRule::new().max_age(Duration::from_secs(1)))
            .rule("/blog/**", RouteRule::new().max_age(Duration::from_secs(2)))
            .rule("/blog/*", RouteRule::new().max_age(Duration::from_secs(3)))
            .rule("/blog/drafts/**", RouteRule::off())
            .rule("/api/*/stars", RouteRule::new().max_age(Duration::from_secs(5)));
        let r = rules.resolve(&RouteRule::new().max_age(Duration::from_secs(9)));
        let age = |p: &str| r.for_path(p).heuristic_ms.unwrap() / 1000;
        assert_eq!(age("/"), 1);
        assert_eq!(age("/blog"), 2);
        assert_eq!(age("/blog/a/b"), 2);
        assert_eq!(age("/blog/a"), 3);
        assert!(!r.for_path("/blog/drafts/x").cache);
        assert!(!r.for_path("/blog/drafts").cache);
        assert!(r.for_path("/blog/a").cache);
        assert_eq!(age("/api/x/stars"), 5);
        let none = RouteRules::new().resolve(&RouteRule::new().max_age(Duration::from_secs(9)));
        assert_eq!(none.for_path("/x").heuristic_ms, Some(9_000));
    }

    #[test]
    fn literal_segments_bound_the_glob() {
        assert_eq!(PathGlob::new("/blog/**").unwrap().literal_segments(), vec!["blog"]);
        assert_eq!(PathGlob::new("/api/*/stars").unwrap().literal_segments(), vec!["api"]);
        assert_eq!(PathGlob::new("/a/b").unwrap().literal_segments(), vec!["a", "b"]);
        assert!(PathGlob::new("/**").unwrap().literal_segments().is_empty());
    }
}
