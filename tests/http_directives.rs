//! The layer and the less common directives and fields of RFC 9111, over real HTTP on
//! loopback: what a request asks (`no-store`, `only-if-cached`, preconditions meant for the
//! origin), `must-understand`, `public` and the heuristic, and how `Age` is read. One test
//! per rule; every test has its own runtime and a manual clock, and counts handler runs to
//! tell hits from misses.
#![cfg(feature = "http")]

mod common;

use common::http::{counted, layer, response, serve};
use common::{Runs, runtime};

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;

fn editions(runs: &Runs, headers: &'static [(&'static str, &'static str)]) -> axum::routing::MethodRouter {
    counted(runs, move |n| response(200, headers, format!("edition {n}")))
}

#[tokio::test]
async fn preconditions_only_the_origin_can_evaluate_go_to_the_handler_as_they_came() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route(
            "/doc",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                match headers.get("if-match") {
                    Some(tag) if tag != "\"v1\"" => response(412, &[], "precondition failed"),
                    _ => response(200, &[("cache-control", "max-age=60"), ("etag", "\"v1\"")], "doc"),
                }
            }),
        )
        .route("/counted", editions(&runs, &[("cache-control", "max-age=60")]));
    let s = serve(app.layer(layer(&rt))).await;
    assert_eq!(s.get("/doc").await.x_cache(), "MISS");
    assert_eq!(s.get("/doc").await.x_cache(), "HIT");
    let refused = s.get_with("/doc", &[("if-match", "\"v0\"")]).await;
    assert_eq!((refused.status, refused.x_cache()), (StatusCode::PRECONDITION_FAILED, "BYPASS"), "not the stored 200");
    s.get("/counted").await;
    let since = s.get_with("/counted", &[("if-unmodified-since", "Tue, 01 Dec 2026 10:00:00 GMT")]).await;
    assert_eq!((since.x_cache(), since.text().as_str()), ("BYPASS", "edition 2"), "the handler saw it");
}

#[tokio::test]
async fn a_request_with_no_store_is_answered_but_nothing_answering_it_is_stored() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new().route("/p", editions(&runs, &[("cache-control", "max-age=60")]));
    let s = serve(app.layer(layer(&rt))).await;
    let first = s.get_with("/p", &[("cache-control", "no-store")]).await;
    assert_eq!((first.x_cache(), first.text().as_str()), ("BYPASS", "edition 1"));
    let next = s.get("/p").await;
    assert_eq!((next.x_cache(), next.text().as_str()), ("MISS", "edition 2"), "the first response was not stored");
    let stored = s.get_with("/p", &[("cache-control", "no-store")]).await;
    assert_eq!((stored.x_cache(), stored.text().as_str()), ("HIT", "edition 2"), "a stored response may answer it");
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn only_if_cached_is_answered_from_the_cache_or_504_without_calling_the_handler() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new().route("/o", editions(&runs, &[("cache-control", "max-age=60")]));
    let s = serve(app.layer(layer(&rt))).await;
    let cold = s.get_with("/o", &[("cache-control", "only-if-cached")]).await;
    assert_eq!(cold.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(runs.get(), 0, "the handler was not asked");
    s.get("/o").await;
    let warm = s.get_with("/o", &[("cache-control", "max-stale, only-if-cached")]).await;
    assert_eq!((warm.status, warm.x_cache(), warm.text().as_str()), (StatusCode::OK, "HIT", "edition 1"));
}

#[tokio::test]
async fn must_understand_lets_a_status_the_layer_understands_be_stored_despite_no_store() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/ok", editions(&runs, &[("cache-control", "max-age=60, no-store, must-understand")]))
        .route(
            "/partial",
            counted(&runs, |n| {
                response(299, &[("cache-control", "max-age=60, no-store, must-understand")], n.to_string())
            }),
        );
    let s = serve(app.layer(layer(&rt))).await;
    s.get("/ok").await;
    assert_eq!(s.get("/ok").await.x_cache(), "HIT");
    s.get("/partial").await;
    assert_eq!(s.get("/partial").await.x_cache(), "BYPASS", "a status it does not understand: no-store holds");
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn public_lets_the_heuristic_apply_to_a_status_not_cacheable_by_default() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/moved", counted(&runs, |n| response(302, &[("location", "/elsewhere")], n.to_string())))
        .route(
            "/public",
            counted(&runs, |n| {
                response(302, &[("location", "/elsewhere"), ("cache-control", "public")], n.to_string())
            }),
        );
    let s = serve(app.layer(layer(&rt))).await;
    s.get("/moved").await;
    assert_eq!(s.get("/moved").await.x_cache(), "BYPASS", "302 is not heuristically cacheable");
    s.get("/public").await;
    assert_eq!(s.get("/public").await.x_cache(), "HIT", "public: the layer's heuristic applies");
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn of_a_list_of_ages_the_first_counts_and_an_invalid_age_is_ignored() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/list", editions(&runs, &[("cache-control", "max-age=60"), ("age", "30, 90")]))
        .route("/junk", editions(&runs, &[("cache-control", "max-age=60"), ("age", "soon")]));
    let s = serve(app.layer(layer(&rt))).await;
    assert_eq!(s.get("/list").await.header("age"), Some("30"));
    assert_eq!(s.get("/junk").await.header("age"), Some("0"));
    clock.advance(Duration::from_secs(20));
    let (list, junk) = (s.get("/list").await, s.get("/junk").await);
    assert_eq!((list.x_cache(), list.header("age")), ("HIT", Some("50")));
    assert_eq!((junk.x_cache(), junk.header("age")), ("HIT", Some("20")));
    assert_eq!(runs.get(), 2);
}
