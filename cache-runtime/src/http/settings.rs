//! The options of the layer that a route can change ([`RouteRule`]), and what they resolve
//! to for one route ([`Settings`]).

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use super::key::QueryKeys;
use super::reflected::{REFLECTED, ReflectedHeaders};
use crate::options::{Options, option_setters};

/// The statuses stored without explicit freshness by default (the heuristically cacheable
/// ones of RFC 9110 §15.1), as long as [`statuses`](RouteRule::statuses) allows them too.
pub const HEURISTIC_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The response header whose members (space- or comma-separated) become an entry's tags
/// by default.
pub const DEFAULT_TAG_HEADER: &str = "surrogate-key";

/// The targeted cache-control fields (RFC 9213) the layer obeys over `Cache-Control`, the
/// first present winning: larder's own, then the CDN one.
pub const TARGETED_FIELDS: [&str; 2] = ["larder-cache-control", "cdn-cache-control"];

/// The largest body stored by default: 8 MiB.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// The most variants of one URL kept under secondary keys by default.
pub(crate) const DEFAULT_MAX_VARIANTS: usize = 16;

/// The `stale-while-revalidate` sent for an unbounded `swr` window: one year.
const FOREVER_SECS: u64 = 365 * 24 * 3600;

/// Options for the requests of one route: every field left unset keeps the value of the
/// layer (which keeps the defaults).
///
/// A rule holds an [`Options`] (the caching options, with their setters: `max_age`,
/// `swr`, `stale_max_age`, `grace`, `grace_backoff`, `timeout`, `hard_timeout`, `tag`,
/// `tags`) and the options of HTTP alone (`varies`, `allow_query`, `statuses`, `max_body`,
/// `send_cache_control`, …). For a response, `max_age` is the heuristic freshness of one
/// that carries no explicit freshness (`s-maxage`, `max-age`, `Expires`); `max_age` of zero
/// turns the heuristic off (such responses are then not stored) and leaves the others
/// stored; `grace` answers while the handler answers 5xx or
/// fails; `hard_timeout` answers `504 Gateway Timeout`; tags add up, the layer's and the
/// route's.
///
/// ```
/// # use cache_runtime as larder;
/// use std::time::Duration;
/// use larder::http::RouteRule;
/// let blog = RouteRule::new().max_age(Duration::from_secs(3600)).swr().tag("blog");
/// let drafts = RouteRule::off();
/// ```
#[derive(Debug, Clone, Default)]
pub struct RouteRule {
    pub(crate) cache: Option<bool>,
    pub(crate) options: Options,
    pub(crate) varies: Option<Vec<HeaderName>>,
    pub(crate) allow_query: Option<QueryKeys>,
    pub(crate) statuses: Option<Vec<u16>>,
    pub(crate) heuristic_statuses: Option<Vec<u16>>,
    pub(crate) max_body: Option<usize>,
    pub(crate) max_variants: Option<usize>,
    pub(crate) send_cache_control: Option<bool>,
    pub(crate) reflected: Option<ReflectedHeaders>,
    pub(crate) tag_header: Option<Option<HeaderName>>,
    pub(crate) forward_cache_fields: Option<bool>,
}

/// The setters of the options of HTTP alone, for every builder that holds a [`RouteRule`]
/// (reached through `$rule`, a method giving `&mut RouteRule`): the rule itself and the layer.
macro_rules! route_setters {
    ($rule:ident) => {
        /// The request headers whose values make part of the key (default: none), their
        /// values normalised (list members trimmed; lowercase for `Accept*`). A response
        /// whose `Vary` names other headers (but `Accept-Encoding`, always keyed) is stored
        /// under a secondary key of their values, up to `max_variants` per URL; one naming
        /// `Cookie` or `Authorization` only when they are listed here. The origin's `Vary`
        /// reaches clients as it was. List `authorization` or `cookie` here to cache
        /// requests carrying them, one entry per value.
        ///
        /// # Panics
        ///
        /// If a name is not a valid header name.
        pub fn varies<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, names: I) -> Self {
            self.$rule().varies = Some($crate::http::settings::header_names(names));
            self
        }

        /// The query parameters that make part of the key (default: none). The handler of a
        /// cached request sees only these; the others are removed from its URI, so that no
        /// response can depend on a parameter that is not in its key.
        /// Parameters are keyed by name; a repeated one keeps the order of its values.
        pub fn allow_query<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
            let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
            names.sort();
            names.dedup();
            self.$rule().allow_query = Some($crate::http::key::QueryKeys::Names(names));
            self
        }

        /// Every query parameter makes part of the key and reaches the handler (by name;
        /// a repeated one keeps the order of its values).
        pub fn allow_every_query(mut self) -> Self {
            self.$rule().allow_query = Some($crate::http::key::QueryKeys::All);
            self
        }

        /// The statuses that may be stored when the response gives its freshness
        /// (`s-maxage`, `max-age`, `Expires`) (default: every final status but 206, 304
        /// and the 5xx). List a 5xx to store it when it says how long it is fresh.
        pub fn statuses<I: IntoIterator<Item = u16>>(mut self, statuses: I) -> Self {
            self.$rule().statuses = Some(statuses.into_iter().collect());
            self
        }

        /// The statuses stored without explicit freshness, for the layer's `max_age`
        /// (default [`HEURISTIC_STATUSES`](crate::http::HEURISTIC_STATUSES)); `statuses`
        /// must allow them too.
        pub fn heuristic_statuses<I: IntoIterator<Item = u16>>(mut self, statuses: I) -> Self {
            self.$rule().heuristic_statuses = Some(statuses.into_iter().collect());
            self
        }

        /// What requests carrying headers apps commonly reflect into responses
        /// (`X-Forwarded-Host`, `Forwarded`, `X-Original-URL`, …) do: pass through
        /// uncached ([`ReflectedHeaders::Bypass`](crate::http::ReflectedHeaders), the
        /// default) or have their values in the key (`Key`, for a deployment behind a
        /// proxy that sets them).
        pub fn reflected_headers(mut self, policy: $crate::http::ReflectedHeaders) -> Self {
            self.$rule().reflected = Some(policy);
            self
        }

        /// The response header whose members (space- or comma-separated) become the
        /// entry's tags (default `Surrogate-Key`; `None`: no header is read). It is
        /// removed before the client unless `forward_cache_fields(true)`.
        pub fn tag_header(mut self, name: Option<&str>) -> Self {
            let name = name.map(|n| {
                ::http::HeaderName::from_bytes(n.trim().to_ascii_lowercase().as_bytes())
                    .unwrap_or_else(|_| panic!("`tag_header`: {n:?} is not a valid header name"))
            });
            self.$rule().tag_header = Some(name);
            self
        }

        /// Whether the fields meant for the layer alone (the tag header,
        /// `Larder-Cache-Control`, `CDN-Cache-Control`) reach clients (default: no).
        pub fn forward_cache_fields(mut self, on: bool) -> Self {
            self.$rule().forward_cache_fields = Some(on);
            self
        }

        /// The largest body stored, in bytes (default 8 MiB). A larger body passes through,
        /// buffered no further than this.
        pub fn max_body(mut self, bytes: usize) -> Self {
            self.$rule().max_body = Some(bytes);
            self
        }

        /// The most variants of one URL kept when its responses' `Vary` nominates request
        /// headers that `varies` does not list (a secondary key, RFC 9111 §4.1) (default
        /// 16). A response that would make one more is not stored.
        pub fn max_variants(mut self, variants: usize) -> Self {
            self.$rule().max_variants = Some(variants);
            self
        }

        /// Whether a stored response without its own `Cache-Control` gets
        /// `s-maxage=…` (and `stale-while-revalidate=…` with `swr`) (default: yes).
        pub fn send_cache_control(mut self, on: bool) -> Self {
            self.$rule().send_cache_control = Some(on);
            self
        }
    };
}
pub(crate) use route_setters;

/// Header names for `varies`: trimmed, lowercase, sorted, without repeats.
pub(crate) fn header_names<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = names
        .into_iter()
        .map(|n| {
            let n = n.as_ref();
            HeaderName::from_bytes(n.trim().to_ascii_lowercase().as_bytes())
                .unwrap_or_else(|_| panic!("`varies`: {n:?} is not a valid header name"))
        })
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

impl RouteRule {
    /// A rule that changes nothing (set what it changes with the other methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// A rule that turns caching off: requests pass through, nothing is read or stored
    /// (Nitro's `cache: false`).
    pub fn off() -> Self {
        Self::new().cache(false)
    }

    /// Whether responses of the route are cached at all.
    pub fn cache(mut self, on: bool) -> Self {
        self.cache = Some(on);
        self
    }

    option_setters!(options_mut);
    route_setters!(rule_mut);

    fn options_mut(&mut self) -> &mut Options {
        &mut self.options
    }

    fn rule_mut(&mut self) -> &mut RouteRule {
        self
    }

    /// `self` where set, else `under`; tags add up.
    pub(crate) fn over(&self, under: &RouteRule) -> RouteRule {
        RouteRule {
            cache: self.cache.or(under.cache),
            options: self.options.over(&under.options),
            varies: self.varies.clone().or_else(|| under.varies.clone()),
            allow_query: self.allow_query.clone().or_else(|| under.allow_query.clone()),
            statuses: self.statuses.clone().or_else(|| under.statuses.clone()),
            heuristic_statuses: self.heuristic_statuses.clone().or_else(|| under.heuristic_statuses.clone()),
            max_body: self.max_body.or(under.max_body),
            max_variants: self.max_variants.or(under.max_variants),
            send_cache_control: self.send_cache_control.or(under.send_cache_control),
            reflected: self.reflected.or(under.reflected),
            tag_header: self.tag_header.clone().or_else(|| under.tag_header.clone()),
            forward_cache_fields: self.forward_cache_fields.or(under.forward_cache_fields),
        }
    }
}

/// What one route's requests are cached with: a [`RouteRule`] over the layer's, with
/// every default filled in and the per-route constants computed once.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub cache: bool,
    /// The heuristic freshness of responses without explicit freshness, ms (`None`: off).
    pub heuristic_ms: Option<u64>,
    /// The call options (their `max_age` never zero: every response decides its own storage).
    pub options: Options,
    pub varies: Vec<HeaderName>,
    pub allow_query: QueryKeys,
    /// `None`: every final status but 206, 304 and the 5xx.
    pub statuses: Option<Vec<u16>>,
    pub heuristic_statuses: Vec<u16>,
    pub max_body: usize,
    pub max_variants: usize,
    /// The `Cache-Control` given to a stored response without one (`send_cache_control`).
    pub cache_control: Option<HeaderValue>,
    /// Whether requests with `Authorization` / `Cookie` may be cached (listed in `varies`).
    pub varies_authorization: bool,
    pub varies_cookie: bool,
    pub reflected: ReflectedHeaders,
    /// The reflected headers that are keyed (empty when they bypass).
    pub reflected_keyed: &'static [HeaderName],
    pub tag_header: Option<HeaderName>,
    pub forward_cache_fields: bool,
}

impl Settings {
    pub fn resolve(rule: &RouteRule) -> Settings {
        let mut options = rule.options.clone();
        let max_age = options.max_age_or_default();
        if max_age.is_zero() {
            options = options.max_age(Duration::from_millis(1));
        }
        let swr = options.is_swr();
        let varies = rule.varies.clone().unwrap_or_default();
        let cache_control = (rule.send_cache_control.unwrap_or(true) && !max_age.is_zero()).then(|| {
            let mut cc = format!("s-maxage={}", max_age.as_secs());
            if swr {
                let stale = options.stale_max_age.map_or(FOREVER_SECS, |d| d.as_secs());
                cc.push_str(&format!(", stale-while-revalidate={stale}"));
            }
            HeaderValue::from_str(&cc).expect("digits and ASCII")
        });
        let reflected = rule.reflected.unwrap_or_default();
        Settings {
            cache: rule.cache.unwrap_or(true),
            heuristic_ms: (!max_age.is_zero()).then(|| max_age.as_millis().min(u128::from(u64::MAX)) as u64),
            options,
            varies_authorization: varies.contains(&http::header::AUTHORIZATION),
            varies_cookie: varies.contains(&http::header::COOKIE),
            varies,
            allow_query: rule.allow_query.clone().unwrap_or_default(),
            statuses: rule.statuses.clone(),
            heuristic_statuses: rule.heuristic_statuses.clone().unwrap_or_else(|| HEURISTIC_STATUSES.to_vec()),
            max_body: rule.max_body.unwrap_or(DEFAULT_MAX_BODY),
            max_variants: rule.max_variants.unwrap_or(DEFAULT_MAX_VARIANTS),
            cache_control,
            reflected,
            reflected_keyed: if reflected == ReflectedHeaders::Key { &REFLECTED } else { &[] },
            tag_header: rule.tag_header.clone().unwrap_or_else(|| Some(HeaderName::from_static(DEFAULT_TAG_HEADER))),
            forward_cache_fields: rule.forward_cache_fields.unwrap_or(false),
        }
    }

    /// Whether a response of `status` may be stored, with explicit freshness or without.
    pub fn stores_status(&self, status: StatusCode, explicit: bool) -> bool {
        let code = status.as_u16();
        let allowed = match &self.statuses {
            Some(list) => list.contains(&code),
            None => !status.is_informational() && !status.is_server_error() && code != 206 && code != 304,
        };
        allowed && (explicit || self.heuristic_statuses.contains(&code))
    }
}
