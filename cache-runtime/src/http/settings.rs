//! The options of the layer that a route can change ([`RouteRule`]), and what they resolve
//! to for one route ([`Settings`]).

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use crate::options::{Options, option_setters};

/// The statuses stored by default: 200, 203, 301, 308.
pub const DEFAULT_STATUSES: [u16; 4] = [200, 203, 301, 308];

/// The largest body stored by default: 8 MiB.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// The `stale-while-revalidate` sent for an unbounded `swr` window: one year.
const FOREVER_SECS: u64 = 365 * 24 * 3600;

/// Options for the requests of one route: every field left unset keeps the value of the
/// layer (which keeps the defaults).
///
/// A rule holds an [`Options`] (the caching options, with their setters: `max_age`,
/// `swr`, `stale_max_age`, `grace`, `grace_backoff`, `timeout`, `hard_timeout`, `tag`,
/// `tags`) and the options of HTTP alone (`varies`, `allow_query`, `statuses`, `max_body`,
/// `send_cache_control`). For a response, `max_age` is the freshness of one that carries
/// neither `s-maxage` nor `max-age`; `grace` answers while the handler answers 5xx or
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
    pub(crate) allow_query: Option<Vec<String>>,
    pub(crate) statuses: Option<Vec<u16>>,
    pub(crate) max_body: Option<usize>,
    pub(crate) send_cache_control: Option<bool>,
}

/// The setters of the options of HTTP alone, for every builder that holds a [`RouteRule`]
/// (reached through `$rule`, a method giving `&mut RouteRule`): the rule itself and the layer.
macro_rules! route_setters {
    ($rule:ident) => {
        /// The request headers whose values make part of the key (default: none). A response
        /// whose `Vary` names any other header is not stored; replayed responses carry a
        /// `Vary` listing these. List `authorization` or `cookie` here to cache requests
        /// carrying them, one entry per value.
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
        pub fn allow_query<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
            let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
            names.sort();
            names.dedup();
            self.$rule().allow_query = Some(names);
            self
        }

        /// The statuses that are stored (default 200, 203, 301, 308).
        pub fn statuses<I: IntoIterator<Item = u16>>(mut self, statuses: I) -> Self {
            self.$rule().statuses = Some(statuses.into_iter().collect());
            self
        }

        /// The largest body stored, in bytes (default 8 MiB). A larger body passes through,
        /// buffered no further than this.
        pub fn max_body(mut self, bytes: usize) -> Self {
            self.$rule().max_body = Some(bytes);
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
            max_body: self.max_body.or(under.max_body),
            send_cache_control: self.send_cache_control.or(under.send_cache_control),
        }
    }
}

/// What one route's requests are cached with: a [`RouteRule`] over the layer's, with
/// every default filled in and the per-route constants computed once.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub cache: bool,
    pub max_age: Duration,
    pub options: Options,
    pub varies: Vec<HeaderName>,
    pub allow_query: Vec<String>,
    pub statuses: Vec<u16>,
    pub max_body: usize,
    /// The `Cache-Control` given to a stored response without one (`send_cache_control`).
    pub cache_control: Option<HeaderValue>,
    /// The `Vary` of replayed responses (the `varies` list).
    pub vary: Option<HeaderValue>,
    /// Whether requests with `Authorization` / `Cookie` may be cached (listed in `varies`).
    pub varies_authorization: bool,
    pub varies_cookie: bool,
}

impl Settings {
    pub fn resolve(rule: &RouteRule) -> Settings {
        let options = rule.options.clone();
        let max_age = options.max_age_or_default();
        let swr = options.is_swr();
        let varies = rule.varies.clone().unwrap_or_default();
        let cache_control = rule.send_cache_control.unwrap_or(true).then(|| {
            let mut cc = format!("s-maxage={}", max_age.as_secs());
            if swr {
                let stale = options.stale_max_age.map_or(FOREVER_SECS, |d| d.as_secs());
                cc.push_str(&format!(", stale-while-revalidate={stale}"));
            }
            HeaderValue::from_str(&cc).expect("digits and ASCII")
        });
        let vary = (!varies.is_empty()).then(|| {
            let names: Vec<&str> = varies.iter().map(HeaderName::as_str).collect();
            HeaderValue::from_str(&names.join(", ")).expect("header names are valid values")
        });
        Settings {
            cache: rule.cache.unwrap_or(true),
            max_age,
            options,
            varies_authorization: varies.contains(&http::header::AUTHORIZATION),
            varies_cookie: varies.contains(&http::header::COOKIE),
            varies,
            allow_query: rule.allow_query.clone().unwrap_or_default(),
            statuses: rule.statuses.clone().unwrap_or_else(|| DEFAULT_STATUSES.to_vec()),
            max_body: rule.max_body.unwrap_or(DEFAULT_MAX_BODY),
            cache_control,
            vary,
        }
    }

    /// Whether `status` is stored.
    pub fn stores_status(&self, status: StatusCode) -> bool {
        self.statuses.contains(&status.as_u16())
    }
}
