//! The spec of a cached function: the `static FnSpec` every generated item starts with
//! (prefix, prefix id, mount, integrity, policy, tags, timeouts).

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::options::{Options, Stale, TagsOpt};

/// The `static __LARDER_SPEC` item, and the prefix of the function's keys.
pub(crate) fn gen_spec(opts: &Options, func: &syn::ItemFn, p: &TokenStream) -> (TokenStream, String) {
    let group = &opts.group;
    let name = &opts.name;
    // The same prefix and id the runtime computes (both from `cache-keyspace`).
    let prefix = cache_keyspace::prefix(group, name);
    let prefix_id = Literal::u128_suffixed(cache_keyspace::prefix_id(&prefix));
    let base = &opts.base;
    let integrity = Literal::u128_suffixed(integrity(opts, func));
    let max_age = opts.max_age_ms;
    let stale = match opts.stale {
        Stale::Off => quote!(#p::Window::None),
        Stale::For(ms) => quote!(#p::Window::For(#ms)),
        Stale::Forever => quote!(#p::Window::Forever),
    };
    let grace = match opts.grace_ms {
        Some(ms) => quote!(#p::Window::For(#ms)),
        None => quote!(#p::Window::None),
    };
    let static_tags: Vec<&String> = match &opts.tags {
        Some(TagsOpt::Static(t)) => t.iter().collect(),
        _ => Vec::new(),
    };
    let grace_backoff = opts.grace_backoff_ms;
    let some_ms = |v: Option<u64>| match v {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    let timeout = some_ms(opts.timeout_ms);
    let hard_timeout = some_ms(opts.hard_timeout.map(|(ms, _)| ms));
    let refresh_ahead = opts.refresh_ahead_permille;
    let spec = quote! {
        static __LARDER_SPEC: #p::FnSpec = #p::FnSpec {
            group: #p::Cow::Borrowed(#group),
            name: #p::Cow::Borrowed(#name),
            prefix: #p::Cow::Borrowed(#prefix),
            prefix_id: #prefix_id,
            id_mask: ::std::sync::OnceLock::new(),
            mount: #p::Cow::Borrowed(#base),
            mount_hint: #p::MountHint::new(),
            integrity: #integrity,
            policy: #p::Policy {
                max_age_ms: #max_age,
                stale: #stale,
                grace: #grace,
                refresh_ahead_permille: #refresh_ahead,
            },
            tags: #p::Cow::Borrowed(&[#(#p::Cow::Borrowed(#static_tags)),*]),
            grace_backoff_ms: #grace_backoff,
            timeout_ms: #timeout,
            hard_timeout_ms: #hard_timeout,
        };
    };
    (spec, prefix)
}

/// The integrity: xxh3-128 of the function's tokens and the options that change results
/// (not `name`, `group`, `base`), or of `integrity = "…"` when given.
fn integrity(opts: &Options, func: &syn::ItemFn) -> u128 {
    let text = match &opts.integrity {
        Some(given) => format!("integrity:{given}"),
        None => {
            let sig = &func.sig;
            let block = &func.block;
            let get_key = opts.get_key.as_ref().map(|e| quote!(#e).to_string()).unwrap_or_default();
            let tags = match &opts.tags {
                Some(TagsOpt::Static(t)) => t.join(","),
                Some(TagsOpt::Dynamic(e)) => quote!(#e).to_string(),
                None => String::new(),
            };
            format!(
                "{}\nmax_age={}\nstale={:?}\nget_key={}\ntags={}\ngrace={:?}",
                quote!(#sig #block),
                opts.max_age_ms,
                opts.stale,
                get_key,
                tags,
                opts.grace_ms
            )
        }
    };
    xxhash_rust::xxh3::xxh3_128(text.as_bytes())
}
