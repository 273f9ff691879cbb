//! The layer as a shared cache, over real HTTP on loopback: what it does with a response
//! over time and size (RFC 9111 §4.3 validation, bodies of unknown length). One test per rule; every test has its own runtime and a
//! manual clock, and counts handler runs to tell hits from misses.
#![cfg(feature = "http")]

mod common;

use common::http::{counted, counted_head, layer, serve};
use common::{Gate, Runs, runtime, until, within};

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures::StreamExt as _;

// ---------------------------------------------------------------------------------------
// Bodies of unknown length

/// A handler streaming `chunks` chunks of `size` bytes, the first at once, the others
/// after `gate` opens.
fn streamed(runs: &Runs, gate: &Gate, chunks: usize, size: usize) -> axum::routing::MethodRouter {
    let gate = gate.clone();
    counted(runs, move |n| {
        let g = gate.clone();
        let stream = futures::stream::iter(0..chunks).then(move |i| {
            let g = g.clone();
            async move {
                if i > 0 {
                    g.wait().await;
                }
                Ok::<_, std::io::Error>(bytes::Bytes::from(format!("{n}").repeat(size)))
            }
        });
        axum::body::Body::from_stream(stream)
    })
}

#[tokio::test]
async fn a_body_of_unknown_length_streams_to_the_client_and_is_stored_when_complete() {
    use http_body_util::BodyExt as _;
    let (rt, _clock) = runtime();
    let (runs, gate) = (Runs::default(), Gate::new());
    let cache = layer(&rt).max_body(100);
    let store = cache.store();
    let app = Router::new()
        .route("/stream", streamed(&runs, &gate, 3, 10))
        .route("/big", streamed(&runs, &gate, 3, 40))
        .layer(cache);
    let s = serve(app).await;
    let res = s.client.request(axum::http::Request::get(s.uri("/stream")).body(Default::default()).unwrap()).await;
    let mut body = res.unwrap().into_body();
    let first = within("the first chunk, before the rest exists", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "1".repeat(10), "the client's stream is not held back");
    gate.open();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "1".repeat(20));
    until("the copy stored", async || !store.keys().await.is_empty()).await;
    let hit = s.get("/stream").await;
    assert_eq!((hit.x_cache(), hit.text()), ("HIT", "1".repeat(30)));
    assert_eq!(hit.header("content-length"), Some("30"));

    for n in [2, 3] {
        let big = s.get("/big").await;
        assert_eq!(big.text(), n.to_string().repeat(120), "past max_body: intact, not stored");
    }
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn an_invalidation_while_a_body_streams_keeps_its_copy_out() {
    use http_body_util::BodyExt as _;
    let (rt, _clock) = runtime();
    let (runs, gate) = (Runs::default(), Gate::new());
    let app =
        Router::new().route("/stream", streamed(&runs, &gate, 2, 10).post(|| async { "changed" })).layer(layer(&rt));
    let s = serve(app).await;
    let res = s.client.request(axum::http::Request::get(s.uri("/stream")).body(Default::default()).unwrap()).await;
    let mut body = res.unwrap().into_body();
    let first = within("the first chunk", body.frame()).await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "1".repeat(10));
    let post = s.send(axum::http::Method::POST, "/stream", &[]).await;
    assert_eq!(post.text(), "changed", "the URI is invalidated while its body streams");
    gate.open();
    assert_eq!(body.collect().await.unwrap().to_bytes(), "1".repeat(10));
    let after = s.get("/stream").await;
    assert_ne!(after.x_cache(), "HIT");
    assert_eq!(after.text(), "2".repeat(20), "the handler ran again: the old body is not served");
    assert_eq!(runs.get(), 2);
}

// ---------------------------------------------------------------------------------------
// Validation (RFC 9111 §4.3)

/// A handler with `ETag: "v1"` and `cache_control`, answering `304` (with `on_304` as its
/// `Cache-Control` and a new header) to a request that names its tag; counts the full
/// bodies it made.
fn validated(
    runs: &Runs,
    bodies: &Runs,
    cache_control: &'static str,
    on_304: &'static str,
) -> axum::routing::MethodRouter {
    let bodies = bodies.clone();
    counted_head(runs, move |_, head| {
        if head.headers.get("if-none-match").is_some_and(|v| v == "\"v1\"") {
            return (StatusCode::NOT_MODIFIED, [("etag", "\"v1\""), ("cache-control", on_304), ("x-checked", "yes")])
                .into_response();
        }
        let n = bodies.hit();
        ([("etag", "\"v1\""), ("cache-control", cache_control)], format!("body #{n}")).into_response()
    })
}

#[tokio::test]
async fn a_stale_response_with_a_validator_is_revalidated_and_a_304_refreshes_it() {
    let (rt, clock) = runtime();
    let (runs, bodies) = (Runs::default(), Runs::default());
    let s =
        serve(Router::new().route("/v", validated(&runs, &bodies, "max-age=10", "max-age=20")).layer(layer(&rt))).await;
    assert_eq!(s.get("/v").await.text(), "body #1");
    clock.advance(Duration::from_secs(11));
    let revalidated = s.get("/v").await;
    assert_eq!(
        (revalidated.status, revalidated.text().as_str(), revalidated.header("x-checked")),
        (StatusCode::OK, "body #1", Some("yes")),
        "the stored body, with the 304's headers"
    );
    assert_eq!(revalidated.header("cache-control"), Some("max-age=20"));
    clock.advance(Duration::from_secs(15));
    assert_eq!(s.get("/v").await.x_cache(), "HIT", "fresh for the 304's max-age");
    assert_eq!((runs.get(), bodies.get()), (2, 1));
}

#[tokio::test]
async fn no_cache_responses_with_a_validator_are_stored_and_revalidated_on_every_use() {
    let (rt, _clock) = runtime();
    let (runs, bodies) = (Runs::default(), Runs::default());
    let s = serve(Router::new().route("/n", validated(&runs, &bodies, "no-cache", "no-cache")).layer(layer(&rt))).await;
    assert_eq!(s.get("/n").await.text(), "body #1");
    for _ in 0..2 {
        let r = s.get("/n").await;
        assert_eq!((r.status, r.text().as_str(), r.header("x-checked")), (StatusCode::OK, "body #1", Some("yes")));
    }
    assert_eq!((runs.get(), bodies.get()), (3, 1), "every use asked the handler, which made one body");
}

// ---------------------------------------------------------------------------------------
// A client's conditional request on a miss (RFC 9111 §4.3.2)

/// A handler with `ETag: "v1"` and `extra` headers; counts its runs and the requests that
/// came with preconditions.
fn tagged(
    runs: &Runs,
    conditional: &Runs,
    extra: &'static [(&'static str, &'static str)],
) -> axum::routing::MethodRouter {
    let conditional = conditional.clone();
    counted_head(runs, move |n, head| {
        if head.headers.contains_key("if-none-match") || head.headers.contains_key("if-modified-since") {
            conditional.hit();
        }
        let mut res = format!("body #{n}").into_response();
        res.headers_mut().insert("etag", "\"v1\"".parse().unwrap());
        for (name, value) in extra {
            res.headers_mut().append(*name, value.parse().unwrap());
        }
        res
    })
}

#[tokio::test]
async fn a_conditional_request_on_a_miss_fetches_the_full_response_for_the_cache_and_gets_a_304() {
    let (rt, _clock) = runtime();
    let (runs, conditional) = (Runs::default(), Runs::default());
    let s = serve(
        Router::new().route("/c", tagged(&runs, &conditional, &[("cache-control", "max-age=60")])).layer(layer(&rt)),
    )
    .await;
    let first = s.get_with("/c", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!((first.status, first.x_cache(), first.text().as_str()), (StatusCode::NOT_MODIFIED, "MISS", ""));
    assert_eq!(conditional.get(), 0, "the handler was asked for the whole response, to store it for everyone");
    let plain = s.get("/c").await;
    assert_eq!((plain.status, plain.x_cache(), plain.text().as_str()), (StatusCode::OK, "HIT", "body #1"));
    assert_eq!(runs.get(), 1);
}

#[tokio::test]
async fn a_conditional_request_whose_response_is_not_stored_gets_the_304_the_handler_would_give() {
    let (rt, _clock) = runtime();
    let (runs, conditional) = (Runs::default(), Runs::default());
    let app = Router::new()
        .route("/private", tagged(&runs, &conditional, &[("cache-control", "no-store")]))
        .route("/cookie", tagged(&runs, &conditional, &[("set-cookie", "a=1")]))
        .layer(layer(&rt));
    let s = serve(app).await;
    let current = s.get_with("/private", &[("if-none-match", "W/\"v1\"")]).await;
    assert_eq!((current.status, current.x_cache()), (StatusCode::NOT_MODIFIED, "BYPASS"));
    assert_eq!(current.header("etag"), Some("\"v1\""));
    let changed = s.get_with("/private", &[("if-none-match", "\"v0\"")]).await;
    assert_eq!((changed.status, changed.text().as_str()), (StatusCode::OK, "body #2"));
    let cookie = s.get_with("/cookie", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(
        (cookie.status, cookie.header("set-cookie")),
        (StatusCode::OK, Some("a=1")),
        "its cookie is not dropped"
    );
    assert_eq!(runs.get(), 3);
}
