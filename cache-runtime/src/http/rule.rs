//! The options of the layer that a route can change ([`RouteRule`]), and what they resolve
//! to for one route ([`Settings`]).

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use crate::options::Options;

/// The statuses stored by default: 200, 203, 301, 308.
pub const DEFAULT_STATUSES: [u16; 4] = [200, 203, 301, 308];

/// The largest body stored by default: 8 MiB.
pub const DEFAULT_MAX_BODY: usize = 8 * 1024 * 1024;

/// The `stale-while-revalidate` sent for an unbounded `swr` window: one year.
const FOREVER_SECS: u64 = 365 * 24 * 3600;

/// Options for the requests of one route: every field left unset keeps the value of the
/// layer (which keeps the defaults of SPEC §2 and §8).
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
    pub(crate) max_age: Option<Duration>,
    pub(crate) swr: Option<bool>,
    pub(crate) stale_max_age: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) grace_backoff: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) tags: Vec<String>,
    pub(crate) varies: Option<Vec<HeaderName>>,
    pub(crate) allow_query: Option<Vec<String>>,
    pub(crate) statuses: Option<Vec<u16>>,
    pub(crate) max_body: Option<usize>,
    pub(crate) send_cache_control: Option<bool>,
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

    /// How long a response is fresh when it carries neither `s-maxage` nor `max-age`
    /// (default 1 s). Zero: never store.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }

    /// Stale-while-revalidate: past its freshness, a response is answered at once and
    /// refreshed in the background (for ever, unless bounded with
    /// [`stale_max_age`](Self::stale_max_age)).
    pub fn swr(mut self) -> Self {
        self.swr = Some(true);
        self
    }

    /// Stale-while-revalidate for at most this long past freshness (implies `swr`).
    pub fn stale_max_age(mut self, d: Duration) -> Self {
        self.swr = Some(true);
        self.stale_max_age = Some(d);
        self
    }

    /// Fail-safe: while the handler answers 5xx (or fails), a response at most this long
    /// past its freshness is answered instead.
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace = Some(d);
        self
    }

    /// After a failure answered from grace, don't call the handler again for this long
    /// (default 10 s).
    pub fn grace_backoff(mut self, d: Duration) -> Self {
        self.grace_backoff = Some(d);
        self
    }

    /// Soft timeout: with a response usable under `swr` or `grace`, answer with it when the
    /// handler takes longer than this; the handler goes on and its response is stored.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Hard timeout: abandon the handler after this long and answer `504 Gateway Timeout`.
    pub fn hard_timeout(mut self, d: Duration) -> Self {
        self.hard_timeout = Some(d);
        self
    }

    /// Adds a tag to the stored responses (tags add up: the layer's and the route's).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds tags to the stored responses.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// The request headers whose values make part of the key (default: none). A response
    /// whose `Vary` names any other header is not stored; replayed responses carry a
    /// `Vary` listing these. List `authorization` or `cookie` here to cache requests
    /// carrying them, one entry per value.
    ///
    /// # Panics
    ///
    /// If a name is not a valid header name.
    pub fn varies<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, names: I) -> Self {
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
        self.varies = Some(names);
        self
    }

    /// The query parameters that make part of the key (default: none). The handler of a
    /// cached request sees only these; the others are removed from its URI, so that no
    /// response can depend on a parameter that is not in its key.
    pub fn allow_query<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        names.sort();
        names.dedup();
        self.allow_query = Some(names);
        self
    }

    /// The statuses that are stored (default 200, 203, 301, 308).
    pub fn statuses<I: IntoIterator<Item = u16>>(mut self, statuses: I) -> Self {
        self.statuses = Some(statuses.into_iter().collect());
        self
    }

    /// The largest body stored, in bytes (default 8 MiB). A larger body passes through,
    /// buffered no further than this.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// Whether a stored response without its own `Cache-Control` gets
    /// `s-maxage=…` (and `stale-while-revalidate=…` with `swr`) (default: yes).
    pub fn send_cache_control(mut self, on: bool) -> Self {
        self.send_cache_control = Some(on);
        self
    }

    /// `self` where set, else `under`; tags add up.
    pub(crate) fn over(&self, under: &RouteRule) -> RouteRule {
        RouteRule {
            cache: self.cache.or(under.cache),
            max_age: self.max_age.or(under.max_age),
            swr: self.swr.or(under.swr),
            stale_max_age: self.stale_max_age.or(under.stale_max_age),
            grace: self.grace.or(under.grace),
            grace_backoff: self.grace_backoff.or(under.grace_backoff),
            timeout: self.timeout.or(under.timeout),
            hard_timeout: self.hard_timeout.or(under.hard_timeout),
            tags: under.tags.iter().chain(&self.tags).cloned().collect(),
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
        let max_age = rule.max_age.unwrap_or(Duration::from_secs(1));
        let swr = rule.swr.unwrap_or(false) || rule.stale_max_age.is_some();
        let mut options = Options::new().max_age(max_age).tags(rule.tags.iter().cloned());
        if swr {
            options = match rule.stale_max_age {
                Some(d) => options.stale_max_age(d),
                None => options.swr(),
            };
        }
        if let Some(d) = rule.grace {
            options = options.grace(d);
        }
        if let Some(d) = rule.grace_backoff {
            options = options.grace_backoff(d);
        }
        if let Some(d) = rule.timeout {
            options = options.timeout(d);
        }
        if let Some(d) = rule.hard_timeout {
            options = options.hard_timeout(d);
        }
        let varies = rule.varies.clone().unwrap_or_default();
        let cache_control = rule.send_cache_control.unwrap_or(true).then(|| {
            let mut cc = format!("s-maxage={}", max_age.as_secs());
            if swr {
                let stale = rule.stale_max_age.map_or(FOREVER_SECS, |d| d.as_secs());
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
