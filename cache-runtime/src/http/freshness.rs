//! A response's freshness, computed once when it is stored (RFC 9111 §4.2), so that a hit
//! reads two numbers and parses nothing: the directives of its `Cache-Control` (or of the
//! targeted field meant for the layer, RFC 9213), its freshness lifetime, and its age when
//! it arrived.

use std::time::UNIX_EPOCH;

use http::header::{self, HeaderMap, HeaderName};

use super::settings::TARGETED_FIELDS;

/// The largest age a cache sends or counts (RFC 9111 §1.2.2: 2^31 s).
pub(crate) const MAX_AGE_SECS: u64 = 1 << 31;

/// The directives of a response's cache-control field that decide storing and reuse.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Directives {
    pub no_store: bool,
    pub must_understand: bool,
    pub public: bool,
    pub private: bool,
    pub no_cache: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub s_maxage: Option<u64>,
    pub max_age: Option<u64>,
    /// A malformed `s-maxage`/`max-age`: treated as stale (RFC 9111 §4.2.1).
    pub invalid_age: bool,
    /// `stale-while-revalidate=N` (RFC 5861 §3), s; a malformed one is ignored.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (RFC 5861 §4), s; a malformed one is ignored.
    pub stale_if_error: Option<u64>,
}

impl Directives {
    /// The directives the layer obeys: those of the first targeted field present
    /// (`Larder-Cache-Control`, `CDN-Cache-Control`), else of `Cache-Control`. Stricter
    /// than RFC 9213 on purpose: `no-store` and `private` in `Cache-Control` still hold.
    pub fn of(headers: &HeaderMap) -> Directives {
        let cc = Directives::parse(headers, &header::CACHE_CONTROL);
        for name in TARGETED_FIELDS {
            let name = HeaderName::from_static(name);
            if headers.contains_key(&name) {
                let mut targeted = Directives::parse(headers, &name);
                targeted.no_store |= cc.no_store;
                targeted.private |= cc.private;
                return targeted;
            }
        }
        cc
    }

    /// A directive given more than once counts at its first occurrence (RFC 9111 §4.2.1
    /// allows that or treating the response as stale), across field lines too.
    fn parse(headers: &HeaderMap, name: &HeaderName) -> Directives {
        let mut d = Directives::default();
        for value in headers.get_all(name) {
            let Ok(value) = value.to_str() else {
                // Unreadable: the safe reading.
                d.no_store = true;
                continue;
            };
            for directive in value.split(',') {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let mut seconds = || match arg.and_then(parse_seconds) {
                    Some(s) => Some(s),
                    None => {
                        d.invalid_age = true;
                        None
                    }
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "must-understand" => d.must_understand = true,
                    "public" => d.public = true,
                    "private" => d.private = true,
                    "no-cache" => d.no_cache = true,
                    "must-revalidate" => d.must_revalidate = true,
                    "proxy-revalidate" => d.proxy_revalidate = true,
                    "s-maxage" => {
                        let s = seconds();
                        d.s_maxage = d.s_maxage.or(s);
                    }
                    "max-age" => {
                        let s = seconds();
                        d.max_age = d.max_age.or(s);
                    }
                    "stale-while-revalidate" => {
                        d.stale_while_revalidate = d.stale_while_revalidate.or(arg.and_then(parse_seconds));
                    }
                    "stale-if-error" => {
                        d.stale_if_error = d.stale_if_error.or(arg.and_then(parse_seconds));
                    }
                    _ => {}
                }
            }
        }
        d
    }
}

/// `delta-seconds` (RFC 9111 §1.2.2): digits only, capped at 2^31.
fn parse_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().map_or(MAX_AGE_SECS, |n| n.min(MAX_AGE_SECS)))
}

/// How long a response is fresh, and how old it already was when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetime {
    /// The freshness lifetime, ms.
    pub lifetime_ms: u64,
    /// Whether it came from the response (`s-maxage`, `max-age`, `Expires`) rather than
    /// the layer's heuristic.
    pub explicit: bool,
    /// The corrected initial age (RFC 9111 §4.2.3), s.
    pub initial_age: u64,
    /// Never to be served stale, not under `swr` nor `grace`: `must-revalidate`,
    /// `proxy-revalidate` or `s-maxage` (RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10).
    pub never_stale: bool,
    /// How long past its freshness the response itself lets a cache serve it while it
    /// revalidates in the background (`stale-while-revalidate`), ms; 0 when never stale.
    pub stale_ms: u64,
    /// How long past its freshness the response itself lets a cache serve it when the
    /// handler fails (`stale-if-error`), ms; 0 when never stale.
    pub if_error_ms: u64,
}

impl Lifetime {
    /// How long it stays fresh from now, ms (zero when it arrived stale).
    pub fn remaining_ms(&self) -> u64 {
        self.lifetime_ms.saturating_sub(self.initial_age.saturating_mul(1000))
    }
}

/// The freshness lifetime of a response arriving at `now_ms` (RFC 9111 §4.2.1: `s-maxage`,
/// else `max-age`, else `Expires` − `Date`; an invalid `Expires` means stale), else the
/// layer's heuristic `heuristic_ms`; `None` when there is neither. Its initial age counts
/// the response's `Age` and how far its `Date` lies behind `now_ms`.
pub(crate) fn lifetime(
    headers: &HeaderMap,
    d: &Directives,
    now_ms: u64,
    heuristic_ms: Option<u64>,
) -> Option<Lifetime> {
    let now_s = now_ms / 1000;
    let date = http_date(headers, &header::DATE);
    let initial_age = initial_age(headers, date, now_s);
    let explicit = if d.invalid_age {
        Some(0)
    } else if let Some(s) = d.s_maxage.or(d.max_age) {
        Some(s.saturating_mul(1000))
    } else if headers.contains_key(header::EXPIRES) {
        let expires = http_date(headers, &header::EXPIRES).and_then(|e| e.ok());
        Some(match expires {
            Some(expires) => expires.saturating_sub(date.and_then(|d| d.ok()).unwrap_or(now_s)).saturating_mul(1000),
            None => 0,
        })
    } else {
        None
    };
    let never_stale = d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some();
    let window = |s: Option<u64>| if never_stale { 0 } else { s.unwrap_or(0).saturating_mul(1000) };
    let (stale_ms, if_error_ms) = (window(d.stale_while_revalidate), window(d.stale_if_error));
    let (lifetime_ms, explicit) = match explicit {
        Some(lifetime_ms) => (lifetime_ms, true),
        None => (heuristic_ms?, false),
    };
    Some(Lifetime { lifetime_ms, explicit, initial_age, never_stale, stale_ms, if_error_ms })
}

/// The corrected initial age, s: the larger of the response's `Age` and its apparent age
/// (`now` − `Date`). An `Age` that is not delta-seconds is ignored.
fn initial_age(headers: &HeaderMap, date: Option<Result<u64, ()>>, now_s: u64) -> u64 {
    // RFC 9111 §5.1: of a list, the first member counts; an invalid value is ignored.
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| parse_seconds(s.split(',').next().unwrap_or("").trim()))
        .unwrap_or(0);
    let apparent = date.and_then(|d| d.ok()).map_or(0, |d| now_s.saturating_sub(d));
    age.max(apparent).min(MAX_AGE_SECS)
}

/// A date header: absent (`None`), unreadable (`Some(Err)`), or s since the epoch.
fn http_date(headers: &HeaderMap, name: &HeaderName) -> Option<Result<u64, ()>> {
    let v = headers.get(name)?;
    Some(
        v.to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
            .map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
            .ok_or(()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn life(pairs: &[(&'static str, &str)], now_ms: u64, heuristic: Option<u64>) -> Option<Lifetime> {
        let h = headers(pairs);
        lifetime(&h, &Directives::of(&h), now_ms, heuristic)
    }

    #[test]
    fn s_maxage_over_max_age_over_expires_over_the_heuristic() {
        let now = 1_000_000_000_000;
        let date = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_millis(now));
        let expires = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_millis(now + 30_000));
        let l = |p: &[(&'static str, &str)]| life(p, now, Some(9_000)).map(|l| (l.lifetime_ms, l.explicit));
        assert_eq!(l(&[("cache-control", "max-age=5, s-maxage=10")]), Some((10_000, true)));
        assert_eq!(l(&[("cache-control", "public, max-age=\"7\"")]), Some((7_000, true)));
        assert_eq!(l(&[("expires", &expires), ("date", &date)]), Some((30_000, true)));
        assert_eq!(l(&[("expires", "0")]), Some((0, true)), "an invalid Expires is stale");
        assert_eq!(l(&[("cache-control", "max-age=soon")]), Some((0, true)));
        assert_eq!(l(&[]), Some((9_000, false)));
        assert_eq!(life(&[], now, None), None);
    }

    #[test]
    fn the_initial_age_counts_age_and_date_and_saturates() {
        let now = 1_000_000_000_000;
        let l = life(&[("cache-control", "max-age=3600"), ("age", "7200")], now, None).unwrap();
        assert_eq!((l.initial_age, l.remaining_ms()), (7200, 0));
        let l = life(&[("cache-control", "max-age=60"), ("age", "18446744073709551615")], now, None).unwrap();
        assert_eq!((l.initial_age, l.remaining_ms()), (MAX_AGE_SECS, 0));
        let old = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_millis(now - 50_000));
        let l = life(&[("cache-control", "max-age=60"), ("date", &old)], now, None).unwrap();
        assert_eq!(l.remaining_ms(), 10_000);
    }

    #[test]
    fn stale_windows_come_from_the_response_unless_it_may_never_be_served_stale() {
        let now = 1_000_000_000_000;
        let w = |p: &[(&'static str, &str)]| life(p, now, None).map(|l| (l.stale_ms, l.if_error_ms));
        assert_eq!(
            w(&[("cache-control", "max-age=5, stale-while-revalidate=30, stale-if-error=600")]),
            Some((30_000, 600_000))
        );
        assert_eq!(
            w(&[("cache-control", "max-age=5, stale-while-revalidate=soon")]),
            Some((0, 0)),
            "malformed: ignored"
        );
        assert_eq!(
            life(&[("cache-control", "max-age=5, stale-while-revalidate=soon")], now, None).unwrap().lifetime_ms,
            5_000
        );
        assert_eq!(
            w(&[("cache-control", "max-age=5, must-revalidate, stale-while-revalidate=30, stale-if-error=60")]),
            Some((0, 0))
        );
        assert_eq!(w(&[("cache-control", "s-maxage=5, stale-if-error=60")]), Some((0, 0)));
    }

    #[test]
    fn a_directive_given_twice_counts_at_its_first_occurrence() {
        let d = Directives::of(&headers(&[("cache-control", "max-age=3600, max-age=1")]));
        assert_eq!(d.max_age, Some(3600));
        let d = Directives::of(&headers(&[("cache-control", "max-age=1"), ("cache-control", "max-age=3600")]));
        assert_eq!(d.max_age, Some(1));
        let d = Directives::of(&headers(&[("cache-control", "max-age=x, max-age=3600")]));
        assert!(d.invalid_age, "a malformed first occurrence makes the response stale");
    }

    #[test]
    fn a_targeted_field_wins_but_cannot_lift_no_store_or_private() {
        let d = Directives::of(&headers(&[("cache-control", "max-age=5"), ("cdn-cache-control", "max-age=50")]));
        assert_eq!(d.max_age, Some(50));
        let d = Directives::of(&headers(&[
            ("cache-control", "max-age=5"),
            ("cdn-cache-control", "max-age=50"),
            ("larder-cache-control", "max-age=500"),
        ]));
        assert_eq!(d.max_age, Some(500));
        let d = Directives::of(&headers(&[("cache-control", "private"), ("larder-cache-control", "max-age=50")]));
        assert!(d.private);
    }
}
