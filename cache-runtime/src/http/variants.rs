//! Where a run's response lands beyond the entry the cache stores from the run's answer:
//! its revalidation copy (`validation.rs`), and, when its `Vary` nominates request headers
//! the primary key lacks (`vary.rs`), the variant under its secondary key and the URL's
//! record of its `Vary` under the primary key. Everything lands with the run's ticket.

use std::time::Duration;

use http::HeaderMap;

use super::key;
use super::reason::NotCacheable;
use super::response::{CachedResponse, Held};
use super::settings::Settings;
use super::validation;
use super::vary::{self, Varies};
use crate::cache::Cache;
use crate::call::helpers::Landing;
use crate::options::Options;

/// A response stored as one variant of its URL.
pub(crate) struct Variant {
    /// The secondary key, raw.
    key: String,
    /// The URL's record, with this variant in it.
    record: Varies,
}

/// The variant a response to the request with headers `asked` is stored as, when its
/// `Vary` nominates request headers the primary key (raw) lacks (`None`: it is stored as
/// it is; a `Vary` that may not be stored is refused by `policy`); or, for a new variant
/// past the route's `max_variants`, why it is not stored.
pub(crate) async fn variant_of(
    cache: &Cache,
    primary: &str,
    asked: &HeaderMap,
    headers: &HeaderMap,
    settings: &Settings,
) -> Result<Option<Variant>, NotCacheable> {
    let names = match vary::nominated(headers, settings) {
        Ok(names) if !names.is_empty() => names,
        _ => return Ok(None),
    };
    let (key, variant) = key::secondary(primary, &names, asked);
    let known = match cache.get::<Held>(primary).await {
        Some(Held::Varies(record)) => record,
        _ => Varies::default(),
    };
    let record = known.with(names, variant, settings.max_variants).ok_or(NotCacheable::VaryVariants)?;
    Ok(Some(Variant { key, record }))
}

/// Stores what a run for the key `own` (raw) got, but what `own` itself holds, which it
/// returns: the revalidation copy and, under a variant, the variant and the URL's record
/// at `primary`. `options` carry the response's freshness and tags.
pub(crate) async fn land(
    cache: &Cache,
    own: &str,
    primary: &str,
    variant: Option<Variant>,
    options: &Options,
    stored: CachedResponse,
    landing: Landing<Held>,
) -> Held {
    let Some(Variant { key, record }) = variant else {
        validation::keep(cache, own, options, &stored, landing).await;
        return Held::Stored(stored);
    };
    validation::keep(cache, &key, options, &stored, landing).await;
    if key != own {
        hold(cache, &key, Held::Stored(stored.clone()), options, landing).await;
    }
    if own == primary {
        return Held::Varies(record);
    }
    hold(cache, primary, Held::Varies(record), options, landing).await;
    Held::Stored(stored)
}

/// Stores `held` under `raw` with `options` (a record of `Vary` for
/// [`RECORD_FOR`](vary::RECORD_FOR)), unless it is not kept (one to revalidate before each
/// use lives only as its revalidation copy).
pub(crate) async fn hold(cache: &Cache, raw: &str, held: Held, options: &Options, landing: Landing<Held>) {
    let options = match &held {
        Held::Varies(_) => options.clone().max_age(vary::RECORD_FOR),
        Held::Stored(r) if r.max_age_ms() != Some(0) => options.clone(),
        _ => return,
    };
    cache.set_weighed(raw, held, &options, landing).await;
}

/// `options` with the freshness of `stored`, keeping it through its own stale windows.
pub(crate) fn fresh_for(options: Options, stored: &CachedResponse) -> Options {
    let options = match stored.max_age_ms() {
        Some(ms) => options.max_age(Duration::from_millis(ms)),
        None => options,
    };
    kept_through_windows(options, stored)
}

/// `options` that keep `stored` through its own `stale-while-revalidate` and
/// `stale-if-error` windows: when storing, a longer `grace` only lengthens how long the
/// entry is kept (what a later request may serve is decided by that request's options,
/// widened by the same windows).
pub(crate) fn kept_through_windows(options: Options, stored: &CachedResponse) -> Options {
    match stored.stale_windows().longest_ms() {
        0 => options,
        past => {
            let past = Duration::from_millis(past);
            let grace = options.grace.map_or(past, |route| route.max(past));
            options.grace(grace)
        }
    }
}
