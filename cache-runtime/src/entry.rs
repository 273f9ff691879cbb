//! Entries and the one place that decides freshness.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A cache entry as stored in L2 stores, as JSON:
/// `{"value": …, "mtime": <ms>, "expires": <ms>, "integrity": "<hex>", "tags": [..], "born": <µs>}`.
///
/// `mtime` is when the value was produced; `expires` is `mtime + max_age` (informative:
/// freshness is decided from `mtime` and the caller's [`Policy`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<V> {
    /// The cached value.
    pub value: V,
    /// When the value was produced, in ms since the Unix epoch.
    pub mtime: u64,
    /// `mtime + max_age`, in ms since the Unix epoch.
    pub expires: u64,
    /// The integrity of the code that produced it (32 hex digits).
    pub integrity: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When the run that produced it began, as an order stamp (microseconds since the
    /// Unix epoch; see [`Clock::order_stamp`](crate::Clock::order_stamp)). An invalidation
    /// stamped at or after it covers the entry, even if the entry was written later.
    /// `0` (entries written before it existed): `mtime` is used.
    #[serde(default)]
    pub born: u64,
}

/// How long past `max_age` a stale value may be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Not at all.
    None,
    /// For this many milliseconds.
    For(u64),
    /// Without end (only a bounded store keeps such entries).
    Forever,
}

impl Window {
    #[inline]
    const fn covers(self, past_max_age: u64) -> bool {
        match self {
            Window::None => false,
            Window::For(ms) => past_max_age <= ms,
            Window::Forever => true,
        }
    }
}

/// Where an entry stands for a given policy at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// `age <= max_age` and not expired by hand: a hit.
    Fresh,
    /// Past `max_age` (or expired by hand) but inside the `swr` window: served at once,
    /// refreshed in the background.
    Stale,
    /// Nothing to serve as a hit or stale (it may still be usable under `grace`).
    Expired,
}

/// The time rules of one cached function (or one `get_or_set` call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long an entry is fresh, in milliseconds. `0`: never store.
    pub max_age_ms: u64,
    /// The stale-while-revalidate window; [`Window::None`] when `swr` is off.
    pub stale: Window,
    /// Fail-safe: how long past `max_age` a value may answer for a failing body.
    pub grace: Window,
    /// Refresh ahead, in thousandths of `max_age` (`0`: off): a hit on an entry at least
    /// this far into its freshness still answers at once, and starts one background
    /// refresh, so that the callers of a hot key never see it stale or missing.
    pub refresh_ahead_permille: u16,
}

impl Policy {
    /// Whether a fresh entry produced at `mtime` is due for a refresh ahead of its expiry
    /// at `now` (see [`refresh_ahead_permille`](Self::refresh_ahead_permille)).
    #[inline]
    pub const fn refresh_due(&self, mtime: u64, now: u64) -> bool {
        self.refresh_ahead_permille != 0
            && (now.saturating_sub(mtime) as u128) * 1000
                >= self.max_age_ms as u128 * self.refresh_ahead_permille as u128
    }

    /// A policy with only `max_age`.
    pub const fn max_age(max_age: Duration) -> Policy {
        Policy {
            max_age_ms: max_age.as_millis() as u64,
            stale: Window::None,
            grace: Window::None,
            refresh_ahead_permille: 0,
        }
    }

    /// Whether entries are stored at all (`max_age > 0`).
    #[inline]
    pub const fn stores(&self) -> bool {
        self.max_age_ms > 0
    }

    /// The one freshness rule: the freshness of an entry produced at `mtime`, read at `now`.
    /// `expired` is set by `NAME_expire`/`expire_tag`: such an entry is never fresh.
    #[inline]
    pub const fn freshness(&self, mtime: u64, expired: bool, now: u64) -> Freshness {
        let age = now.saturating_sub(mtime);
        if age <= self.max_age_ms && !expired {
            return Freshness::Fresh;
        }
        if self.stale.covers(age.saturating_sub(self.max_age_ms)) { Freshness::Stale } else { Freshness::Expired }
    }

    /// Whether an entry produced at `mtime` may answer for a failing body.
    #[inline]
    pub const fn within_grace(&self, mtime: u64, now: u64) -> bool {
        self.grace.covers(now.saturating_sub(mtime).saturating_sub(self.max_age_ms))
    }

    /// How long a store keeps an entry. `None`: no TTL (only a bounded store
    /// may keep such an entry).
    pub const fn store_ttl_ms(&self) -> Option<u64> {
        let extra = match (self.stale, self.grace) {
            (Window::Forever, _) | (_, Window::Forever) => return None,
            (Window::For(a), Window::For(b)) => {
                if a > b {
                    a
                } else {
                    b
                }
            }
            (Window::For(a), Window::None) | (Window::None, Window::For(a)) => a,
            (Window::None, Window::None) => 0,
        };
        Some(self.max_age_ms.saturating_add(extra))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy =
        Policy { max_age_ms: 1000, stale: Window::For(500), grace: Window::None, refresh_ahead_permille: 0 };

    #[test]
    fn fresh_up_to_max_age_inclusive() {
        assert_eq!(P.freshness(0, false, 1000), Freshness::Fresh);
        assert_eq!(P.freshness(0, false, 1001), Freshness::Stale);
    }

    #[test]
    fn stale_window_is_bounded() {
        assert_eq!(P.freshness(0, false, 1500), Freshness::Stale);
        assert_eq!(P.freshness(0, false, 1501), Freshness::Expired);
    }

    #[test]
    fn expired_by_hand_is_never_fresh() {
        assert_eq!(P.freshness(0, true, 10), Freshness::Stale);
        let no_swr = Policy::max_age(Duration::from_secs(1));
        assert_eq!(no_swr.freshness(0, true, 10), Freshness::Expired);
    }

    #[test]
    fn store_ttl_follows_the_larger_window() {
        assert_eq!(P.store_ttl_ms(), Some(1500));
        let g = Policy { grace: Window::For(9000), ..P };
        assert_eq!(g.store_ttl_ms(), Some(10_000));
        let f = Policy { stale: Window::Forever, ..P };
        assert_eq!(f.store_ttl_ms(), None);
    }
}
