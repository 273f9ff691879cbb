//! The options of one `set`/`get_or_set` call: the attribute's options as a builder, each
//! one either set or left to the layer or default below it (so an HTTP route can overlay
//! the options of its layer).

use std::time::Duration;

use crate::entry::{Policy, Window};

/// The options of one `set`/`get_or_set`: the attribute's options, as a builder.
///
/// Each option is either set or left unset; an unset option takes the value of the layer
/// below (an HTTP route's options overlay its layer's) or the default: fresh for 1 s, no
/// `swr`, no `grace`, a grace back-off of 10 s, no timeouts, no tags, no integrity.
///
/// ```
/// # use cache_runtime as larder;
/// use std::time::Duration;
/// let opts = larder::Options::new()
///     .max_age(Duration::from_secs(60))
///     .swr()
///     .grace(Duration::from_secs(3600))
///     .tag("users");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub(crate) max_age: Option<Duration>,
    pub(crate) swr: Option<bool>,
    pub(crate) stale_max_age: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) grace_backoff: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) refresh_ahead: Option<f64>,
    pub(crate) tags: Vec<String>,
    pub(crate) integrity: Option<String>,
}

/// The default `max_age`: 1 s.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);
/// The default `grace_backoff`: 10 s.
pub(crate) const DEFAULT_GRACE_BACKOFF: Duration = Duration::from_secs(10);

/// The setters of the options, for every builder that holds an [`Options`] (reached
/// through `$options`, a method giving `&mut Options`): `Options` itself, an HTTP route's
/// rule and the HTTP layer. One definition, so that the three never drift apart.
macro_rules! option_setters {
    ($options:ident) => {
        /// How long an entry is fresh. Zero: never store. For HTTP responses, the freshness
        /// of a response that carries neither `s-maxage` nor `max-age`.
        pub fn max_age(mut self, d: ::std::time::Duration) -> Self {
            self.$options().max_age = Some(d);
            self
        }
        /// Stale-while-revalidate: past its freshness, an entry is answered at once and
        /// refreshed in the background (for ever, unless bounded with `stale_max_age`).
        pub fn swr(mut self) -> Self {
            self.$options().swr = Some(true);
            self
        }
        /// Stale-while-revalidate for at most this long past `max_age` (implies `swr`).
        pub fn stale_max_age(mut self, d: ::std::time::Duration) -> Self {
            let o = self.$options();
            o.swr = Some(true);
            o.stale_max_age = Some(d);
            self
        }
        /// Fail-safe: when the factory fails (for HTTP, when the handler answers 5xx or
        /// fails), answer with an entry at most this long past `max_age`.
        pub fn grace(mut self, d: ::std::time::Duration) -> Self {
            self.$options().grace = Some(d);
            self
        }
        /// After a failure answered from grace, don't call the factory again for this long
        /// (default 10 s).
        pub fn grace_backoff(mut self, d: ::std::time::Duration) -> Self {
            self.$options().grace_backoff = Some(d);
            self
        }
        /// Soft timeout: with a value usable under `swr` or `grace`, answer with it when the
        /// factory takes longer than this; the factory goes on and its result is stored.
        pub fn timeout(mut self, d: ::std::time::Duration) -> Self {
            self.$options().timeout = Some(d);
            self
        }
        /// Hard timeout: give up after this long with `Error::Timeout` (for HTTP, answer
        /// `504 Gateway Timeout`).
        pub fn hard_timeout(mut self, d: ::std::time::Duration) -> Self {
            self.$options().hard_timeout = Some(d);
            self
        }
        /// Refresh ahead: a hit on an entry past this part of `max_age` (between 0 and 1,
        /// such as `0.8`) answers at once and starts one background refresh, so that the
        /// callers of a hot key never see it stale or missing. Values outside (0, 1) turn
        /// it off.
        pub fn refresh_ahead(mut self, fraction: f64) -> Self {
            self.$options().refresh_ahead = Some(fraction);
            self
        }
        /// Adds a tag (tags add up: an HTTP layer's and its route's).
        pub fn tag(mut self, tag: impl Into<String>) -> Self {
            self.$options().tags.push(tag.into());
            self
        }
        /// Adds tags.
        pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
            self.$options().tags.extend(tags.into_iter().map(Into::into));
            self
        }
    };
}
#[cfg_attr(not(feature = "http"), allow(unused_imports))] // the HTTP layer's builders use it too
pub(crate) use option_setters;

impl Options {
    /// No option set: every one takes its default.
    pub fn new() -> Self {
        Self::default()
    }

    option_setters!(options_mut);

    /// An integrity string: entries stored under another one are misses.
    pub fn integrity(mut self, integrity: impl Into<String>) -> Self {
        self.integrity = Some(integrity.into());
        self
    }

    fn options_mut(&mut self) -> &mut Options {
        self
    }

    /// These options over `under`: what is set here wins, the rest is `under`'s; tags add up.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn over(&self, under: &Options) -> Options {
        Options {
            max_age: self.max_age.or(under.max_age),
            swr: self.swr.or(under.swr),
            stale_max_age: self.stale_max_age.or(under.stale_max_age),
            grace: self.grace.or(under.grace),
            grace_backoff: self.grace_backoff.or(under.grace_backoff),
            timeout: self.timeout.or(under.timeout),
            hard_timeout: self.hard_timeout.or(under.hard_timeout),
            refresh_ahead: self.refresh_ahead.or(under.refresh_ahead),
            tags: under.tags.iter().chain(&self.tags).cloned().collect(),
            integrity: self.integrity.clone().or_else(|| under.integrity.clone()),
        }
    }

    /// `max_age`, or its default.
    pub(crate) fn max_age_or_default(&self) -> Duration {
        self.max_age.unwrap_or(DEFAULT_MAX_AGE)
    }

    /// Whether stale-while-revalidate is on.
    pub(crate) fn is_swr(&self) -> bool {
        self.swr.unwrap_or(false) || self.stale_max_age.is_some()
    }

    /// `grace_backoff`, or its default.
    pub(crate) fn grace_backoff_or_default(&self) -> Duration {
        self.grace_backoff.unwrap_or(DEFAULT_GRACE_BACKOFF)
    }

    /// The freshness policy these options give.
    pub(crate) fn policy(&self) -> Policy {
        Policy {
            max_age_ms: ms(self.max_age_or_default()),
            stale: match (self.is_swr(), self.stale_max_age) {
                (false, _) => Window::None,
                (true, None) => Window::Forever,
                (true, Some(d)) => Window::For(ms(d)),
            },
            grace: self.grace.map_or(Window::None, |d| Window::For(ms(d))),
            refresh_ahead_permille: match self.refresh_ahead {
                Some(f) if f > 0.0 && f < 1.0 => ((f * 1000.0).round() as u16).clamp(1, 999),
                _ => 0,
            },
        }
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}
