//! The secondary key (RFC 9111 §4.1). A response whose `Vary` nominates request headers the
//! primary key does not already hold (`varies`, `Accept-Encoding`) is stored under the
//! primary key + a hash of those headers' normalised values (`key::secondary`). The layer
//! cannot know a URL's `Vary` before its first response, so the primary key holds a record
//! of it ([`Varies`], `Held::Varies`): the nominated names and the variants stored, at most
//! the route's `max_variants` (past it, a new variant is not stored). A request finds the
//! record at its primary key and its own variant at the secondary key its headers give.
//!
//! `Vary: *` is never stored, and `Cookie` or `Authorization` only when the route's
//! `varies` lists them (they are then in the primary key already).

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::reason::NotCacheable;
use super::settings::Settings;

/// How long a URL's record of its `Vary` is kept (each variant keeps its own freshness).
pub(crate) const RECORD_FOR: Duration = Duration::from_secs(24 * 3600);

/// What the primary key of a URL whose responses vary holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Varies {
    /// The nominated request headers: lowercase, sorted, without repeats.
    #[serde(serialize_with = "names_out", deserialize_with = "names_in")]
    pub vary: Vec<HeaderName>,
    /// The variants stored (their hashes).
    pub variants: Vec<u64>,
}

impl Varies {
    /// `self` (if it nominates `vary`) or a new record, with `variant` in it; `None` when
    /// it is a new variant past `max` of them.
    pub fn with(self, vary: Vec<HeaderName>, variant: u64, max: usize) -> Option<Varies> {
        let mut record = if self.vary == vary { self } else { Varies { vary, variants: Vec::new() } };
        if !record.variants.contains(&variant) {
            if record.variants.len() >= max {
                return None;
            }
            record.variants.push(variant);
        }
        Some(record)
    }

    /// What it weighs in a memory tier bounded by bytes.
    pub fn weight(&self) -> usize {
        size_of::<Varies>() + self.vary.iter().map(|n| n.as_str().len() + 32).sum::<usize>() + 8 * self.variants.len()
    }
}

fn names_out<S: Serializer>(names: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(names.iter().map(HeaderName::as_str))
}

fn names_in<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<HeaderName>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names.iter().map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(serde::de::Error::custom)).collect()
}

/// The request headers a response's `Vary` nominates beyond those the primary key holds
/// (lowercase, sorted, without repeats; empty: none), or why it may not be stored.
pub(crate) fn nominated(headers: &HeaderMap, settings: &Settings) -> Result<Vec<HeaderName>, NotCacheable> {
    let mut names = Vec::new();
    for value in headers.get_all(header::VARY) {
        let Ok(value) = value.to_str() else {
            return Err(NotCacheable::VaryUnreadable);
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err(NotCacheable::VaryAll);
            }
            let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else {
                return Err(NotCacheable::VaryUnreadable);
            };
            // The accepted codings and the `varies` headers are in the primary key.
            if name == header::ACCEPT_ENCODING || settings.varies.contains(&name) {
                continue;
            }
            if name == header::COOKIE || name == header::AUTHORIZATION {
                return Err(NotCacheable::VaryUnlisted);
            }
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::settings::RouteRule;
    use http::HeaderValue;

    fn vary(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(header::VARY, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn vary_nominates_what_the_primary_key_lacks() {
        let s = Settings::resolve(&RouteRule::new().varies(["Accept"]));
        let got = nominated(&vary("Accept-Language, accept, Accept-Encoding, accept-language, X-Mode"), &s);
        assert_eq!(got, Ok(vec![header::ACCEPT_LANGUAGE, HeaderName::from_static("x-mode")]));
        assert_eq!(nominated(&vary("*"), &s), Err(NotCacheable::VaryAll));
        assert_eq!(nominated(&vary("Cookie"), &s), Err(NotCacheable::VaryUnlisted));
        let cookie = Settings::resolve(&RouteRule::new().varies(["Cookie"]));
        assert_eq!(nominated(&vary("Cookie"), &cookie), Ok(vec![]), "keyed by the route already");
    }

    #[test]
    fn a_record_takes_new_variants_up_to_its_bound() {
        let names = vec![header::ACCEPT_LANGUAGE];
        let r = Varies { vary: names.clone(), variants: vec![] }.with(names.clone(), 1, 2).unwrap();
        let r = r.with(names.clone(), 2, 2).unwrap();
        assert_eq!(r.clone().with(names.clone(), 1, 2).map(|r| r.variants), Some(vec![1, 2]), "known: kept");
        assert!(r.clone().with(names, 3, 2).is_none(), "a third variant is past the bound");
        let other = r.with(vec![header::ACCEPT], 3, 2).unwrap();
        assert_eq!(other.variants, vec![3], "another Vary starts a new record");
    }
}
