//! The request plan of a layer ([`Shared`]): what every service of one layer shares (its
//! store handle, its resolved route settings, the user's key, bypass and tags functions),
//! and for one request, the settings and key it is cached under, or why it passes through.

use std::sync::Arc;

use http::request::Parts;

use super::key;
use super::policy;
use super::reason::NotCacheable;
use super::routes::Resolved;
use super::settings::Settings;
use crate::cache::Cache;

/// The user's key function.
pub(crate) type KeyFn = Arc<dyn Fn(&Parts) -> String + Send + Sync>;
/// The user's bypass predicate.
pub(crate) type BypassFn = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;
/// The user's tags function.
pub(crate) type TagsFn = Arc<dyn Fn(&Parts) -> Vec<String> + Send + Sync>;

/// What every service of one layer shares: its store handle and its resolved options.
pub(crate) struct Shared {
    pub cache: Cache,
    pub rules: Resolved,
    pub key: Option<KeyFn>,
    pub bypass: Option<BypassFn>,
    pub tags: Option<TagsFn>,
    /// The token of the purge endpoint (`None`: off).
    pub purge: Option<Arc<[u8]>>,
}

impl Shared {
    /// The settings and key of a request that the layer caches, or why it passes through.
    pub fn plan(&self, parts: &Parts) -> Result<(&Arc<Settings>, String), NotCacheable> {
        let settings = self.rules.for_path(parts.uri.path());
        if let Some(reason) = policy::request_bypass(parts, settings) {
            return Err(reason);
        }
        if self.bypass.as_ref().is_some_and(|f| f(parts)) {
            return Err(NotCacheable::BypassPredicate);
        }
        let custom = self.key.as_ref().map(|f| f(parts));
        let variant = key::Variant {
            query: &settings.allow_query,
            varies: &settings.varies,
            reflected: settings.reflected_keyed,
            custom: custom.as_deref(),
        };
        let key = key::request_key(parts, &variant).ok_or(NotCacheable::Host)?;
        Ok((settings, key))
    }
}
