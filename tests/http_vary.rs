//! The layer's secondary key (RFC 9111 §4.1), over real HTTP on loopback: responses whose
//! `Vary` nominates request headers the route does not key. Every test has its own runtime
//! and a manual clock, and counts handler runs to tell hits from misses.
#![cfg(feature = "http")]

mod common;

use common::http::{counted_head, layer, serve};
use common::{Runs, runtime};

use axum::Router;

/// A handler answering in the request's `Accept-Language` with `Vary: vary`; counts its runs.
fn by_language(runs: &Runs, vary: &'static str) -> axum::routing::MethodRouter {
    counted_head(runs, move |n, head| {
        let lang = head.headers.get("accept-language").map_or("none", |v| v.to_str().unwrap()).to_owned();
        ([("vary", vary), ("cache-control", "max-age=60")], format!("{lang} #{n}"))
    })
}

#[tokio::test]
async fn each_variant_of_a_vary_is_a_hit_for_its_own_request_only() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let s = serve(Router::new().route("/v", by_language(&runs, "Accept-Language")).layer(layer(&rt))).await;
    let de = s.get_with("/v", &[("accept-language", "de")]).await;
    assert_eq!((de.x_cache(), de.text().as_str()), ("MISS", "de #1"));
    assert_eq!(de.header("vary"), Some("Accept-Language"), "the origin's Vary, unchanged");
    let fr = s.get_with("/v", &[("accept-language", "fr")]).await;
    assert_eq!(fr.text(), "fr #2", "another variant: the handler runs, the German body is not served");
    for _ in 0..2 {
        let de = s.get_with("/v", &[("accept-language", " DE ")]).await;
        assert_eq!((de.x_cache(), de.text().as_str()), ("HIT", "de #1"), "normalised: trimmed, lowercase");
        let fr = s.get_with("/v", &[("accept-language", "fr")]).await;
        assert_eq!((fr.x_cache(), fr.text().as_str()), ("HIT", "fr #2"));
    }
    let none = s.get("/v").await;
    assert_eq!(none.text(), "none #3", "no Accept-Language is a variant of its own");
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn past_max_variants_a_new_variant_is_not_stored() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new().route("/v", by_language(&runs, "accept-language")).layer(layer(&rt).max_variants(2));
    let s = serve(app).await;
    for lang in ["a", "b", "c", "c"] {
        s.get_with("/v", &[("accept-language", lang)]).await;
    }
    assert_eq!(runs.get(), 4, "the third variant is past the bound: not stored, each request runs the handler");
    for (lang, n) in [("a", 1), ("b", 2)] {
        let r = s.get_with("/v", &[("accept-language", lang)]).await;
        assert_eq!((r.x_cache(), r.text()), ("HIT", format!("{lang} #{n}")), "the first two stay");
    }
    assert_eq!(runs.get(), 4);
}

#[tokio::test]
async fn vary_star_and_an_unlisted_cookie_are_never_stored() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/star", by_language(&runs, "*"))
        .route("/cookie", by_language(&runs, "Accept-Language, Cookie"))
        .layer(layer(&rt));
    let s = serve(app).await;
    for path in ["/star", "/star", "/cookie", "/cookie"] {
        let r = s.get_with(path, &[("accept-language", "de")]).await;
        assert_ne!(r.x_cache(), "HIT", "{path}");
    }
    assert_eq!(runs.get(), 4);
}

#[tokio::test]
async fn an_unsafe_request_drops_every_variant_of_its_uri() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app =
        Router::new().route("/v", by_language(&runs, "Accept-Language").post(|| async { "ok" })).layer(layer(&rt));
    let s = serve(app).await;
    for lang in ["de", "fr"] {
        s.get_with("/v", &[("accept-language", lang)]).await;
    }
    s.send(axum::http::Method::POST, "/v", &[]).await;
    for (lang, n) in [("de", 3), ("fr", 4)] {
        let r = s.get_with("/v", &[("accept-language", lang)]).await;
        assert_eq!(
            (r.x_cache(), r.text()),
            ("MISS", format!("{lang} #{n}")),
            "{lang}: dropped, the handler runs again"
        );
    }
}

#[tokio::test]
async fn the_request_that_ran_the_handler_gets_its_response_even_when_its_variant_is_gone_at_once() {
    // A memory tier of one entry: the URL's record of its Vary, stored last, evicts the
    // variant the run has just stored (as an invalidation between the two would remove it).
    let clock = larder::ManualClock::new();
    let rt = larder::Runtime::builder()
        .clock(larder::Clock::Manual(clock))
        .mount(larder::DEFAULT_HTTP_MOUNT, larder::Mount::memory(1))
        .build();
    let runs = Runs::default();
    let s = serve(Router::new().route("/v", by_language(&runs, "Accept-Language")).layer(layer(&rt))).await;
    for n in 1..=2 {
        let de = s.get_with("/v", &[("accept-language", "de")]).await;
        assert_eq!(
            (de.status.as_u16(), de.text()),
            (200, format!("de #{n}")),
            "the handler's own response, never a 502"
        );
    }
    assert_eq!(runs.get(), 2);
}
