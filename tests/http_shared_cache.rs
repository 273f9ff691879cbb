//! The layer as a shared cache (RFC 9111), over real HTTP on loopback: keys an attacker
//! cannot steer, freshness, invalidation, statuses, Vary, targeted fields, tags and purge,
//! and a handler that panics. One test per rule; every test has its own runtime and a
//! manual clock, and counts handler runs to tell hits from misses.
#![cfg(feature = "http")]

mod common;

use common::http::{counted, counted_async, counted_head, good_then_failing, layer, response, serve};
use common::{Gate, Runs, runtime, within};

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use larder::http::{CacheLayer, ReflectedHeaders};

fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
}

// ---------------------------------------------------------------------------------------
// Keys (RFC 9112 §3.2, §3.3)

/// What the handler believes the authority is: the request target's, else `Host`.
fn authority_echo(runs: &Runs) -> axum::routing::MethodRouter {
    counted_head(runs, |_, head| {
        let host = head.headers.get("host").map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        format!("for {}", head.uri.authority().map(|a| a.to_string()).or(host).unwrap_or_default())
    })
}

#[tokio::test]
async fn an_absolute_form_target_is_keyed_by_its_authority_not_by_host() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let s = serve(Router::new().route("/page", authority_echo(&runs)).layer(layer(&rt))).await;
    let poison = s.raw(b"GET http://evil.test/page HTTP/1.1\r\nHost: victim.test").await;
    assert_eq!((poison.x_cache(), poison.text().as_str()), ("MISS", "for evil.test"));
    let victim = s.get_with("/page", &[("host", "victim.test")]).await;
    assert_eq!(
        (victim.x_cache(), victim.text().as_str()),
        ("MISS", "for victim.test"),
        "the victim's entry is its own"
    );
    let evil = s.get_with("/page", &[("host", "evil.test")]).await;
    assert_eq!((evil.x_cache(), evil.text().as_str()), ("HIT", "for evil.test"));
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn a_request_without_a_usable_host_is_not_cached() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let s = serve(Router::new().route("/page", authority_echo(&runs)).layer(layer(&rt))).await;
    for _ in 0..2 {
        let bad = s.raw(b"GET /page HTTP/1.1\r\nHost: caf\xe9.test").await;
        assert_eq!(bad.x_cache(), "BYPASS", "a Host that is not UTF-8");
        let none = s.raw(b"GET /page HTTP/1.0").await;
        assert_eq!(none.x_cache(), "BYPASS", "no Host");
    }
    assert_eq!(runs.get(), 4);
    let good = s.get_with("/page", &[("host", "caf.test")]).await;
    assert_eq!((good.x_cache(), good.text().as_str()), ("MISS", "for caf.test"));
}

fn query_echo(runs: &Runs) -> axum::routing::MethodRouter {
    counted_head(runs, |_, head| format!("query {}", head.uri.query().unwrap_or("")))
}

#[tokio::test]
async fn repeated_allowed_query_parameters_keep_their_order_in_the_key() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let s = serve(Router::new().route("/q", query_echo(&runs)).layer(layer(&rt).allow_query(["page"]))).await;
    assert_eq!(s.get("/q?page=2&page=1").await.text(), "query page=2&page=1");
    let other = s.get("/q?page=1&page=2").await;
    assert_eq!((other.x_cache(), other.text().as_str()), ("MISS", "query page=1&page=2"));
    assert_eq!(s.get("/q?page=2&x=9&page=1").await.x_cache(), "HIT");
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn allow_every_query_keys_every_parameter_by_name_and_order() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let s = serve(Router::new().route("/q", query_echo(&runs)).layer(layer(&rt).allow_every_query())).await;
    let first = s.get("/q?b=1&a=2&a=3").await;
    assert_eq!((first.x_cache(), first.text().as_str()), ("MISS", "query b=1&a=2&a=3"), "the handler sees them all");
    assert_eq!(s.get("/q?a=2&a=3&b=1").await.x_cache(), "HIT", "names sorted");
    assert_eq!(s.get("/q?a=3&a=2&b=1").await.x_cache(), "MISS", "repeated values in order");
    assert_eq!(s.get("/q?a=2&a=3&b=1&c=0").await.x_cache(), "MISS");
    assert_eq!(runs.get(), 3);
}

// ---------------------------------------------------------------------------------------
// Poisoning through reflected headers

fn forwarded_echo(runs: &Runs) -> axum::routing::MethodRouter {
    counted_head(runs, |_, head| {
        let host = head.headers.get("x-forwarded-host").map_or("self", |v| v.to_str().unwrap()).to_owned();
        format!("<script src=\"https://{host}/app.js\">")
    })
}

#[tokio::test]
async fn requests_with_commonly_reflected_headers_bypass_by_default() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let s = serve(Router::new().route("/", forwarded_echo(&runs)).layer(layer(&rt))).await;
    for name in [
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "forwarded",
        "x-host",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
    ] {
        assert_eq!(s.get_with("/", &[(name, "evil.test")]).await.x_cache(), "BYPASS", "{name}");
    }
    let clean = s.get("/").await;
    assert_eq!((clean.x_cache(), clean.text().as_str()), ("MISS", "<script src=\"https://self/app.js\">"));
}

#[tokio::test]
async fn behind_a_trusted_proxy_reflected_headers_are_keyed_in_one_call() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let cache = layer(&rt).reflected_headers(ReflectedHeaders::Key);
    let s = serve(Router::new().route("/", forwarded_echo(&runs)).layer(cache)).await;
    let proxied = [("x-forwarded-host", "www.test")];
    assert_eq!(s.get_with("/", &proxied).await.x_cache(), "MISS");
    assert_eq!(s.get_with("/", &proxied).await.x_cache(), "HIT");
    let evil = s.get_with("/", &[("x-forwarded-host", "evil.test")]).await;
    assert_eq!((evil.x_cache(), evil.text().as_str()), ("MISS", "<script src=\"https://evil.test/app.js\">"));
    let victim = s.get_with("/", &proxied).await;
    assert_eq!((victim.x_cache(), victim.text().as_str()), ("HIT", "<script src=\"https://www.test/app.js\">"));
    assert_eq!(s.get("/").await.x_cache(), "MISS", "without the header: its own entry");
}

// ---------------------------------------------------------------------------------------
// Freshness (RFC 9111 §4.2)

#[tokio::test]
async fn the_age_a_response_arrives_with_counts_toward_its_current_age() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route(
            "/old",
            counted(&runs, |n| response(200, &[("cache-control", "max-age=3600"), ("age", "7200")], n.to_string())),
        )
        .route(
            "/aged",
            counted(&runs, |n| response(200, &[("cache-control", "max-age=60"), ("age", "30")], n.to_string())),
        )
        .layer(layer(&rt));
    let s = serve(app).await;
    for _ in 0..2 {
        assert_eq!(s.get("/old").await.x_cache(), "BYPASS", "stale on arrival");
    }
    assert_eq!(s.get("/aged").await.header("age"), Some("30"));
    clock.advance(Duration::from_secs(20));
    let hit = s.get("/aged").await;
    assert_eq!((hit.x_cache(), hit.header("age")), ("HIT", Some("50")));
    clock.advance(Duration::from_secs(11));
    assert_eq!(s.get("/aged").await.x_cache(), "MISS", "fresh for 60 s of age, not 60 s in the cache");
    assert_eq!(runs.get(), 4);
}

#[tokio::test]
async fn expires_is_honoured_without_max_age_and_an_invalid_one_is_stale() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let now = clock.now_ms();
    let (date, expires) = (http_date(now), http_date(now + 30_000));
    let app = Router::new()
        .route(
            "/expires",
            counted(&runs, move |n| {
                let mut res = response(200, &[], n.to_string());
                res.headers_mut().insert("date", date.parse().unwrap());
                res.headers_mut().insert("expires", expires.parse().unwrap());
                res
            }),
        )
        .route("/zero", counted(&runs, |n| response(200, &[("expires", "0")], n.to_string())))
        .layer(layer(&rt).max_age(Duration::from_secs(3600)));
    let s = serve(app).await;
    assert_eq!(s.get("/expires").await.x_cache(), "MISS");
    clock.advance(Duration::from_secs(29));
    assert_eq!(s.get("/expires").await.x_cache(), "HIT");
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        s.get("/expires").await.x_cache(),
        "BYPASS",
        "past its Expires (not the layer's max_age): stale on arrival"
    );
    for _ in 0..2 {
        assert_eq!(s.get("/zero").await.x_cache(), "BYPASS", "`Expires: 0` is already stale");
    }
    assert_eq!(runs.get(), 4);
}

#[tokio::test]
async fn the_layer_max_age_is_a_heuristic_that_can_be_off_while_explicit_freshness_is_still_stored() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/explicit", counted(&runs, |n| response(200, &[("cache-control", "max-age=10")], n.to_string())))
        .route("/plain", counted(&runs, |n| n.to_string()))
        .layer(layer(&rt).max_age(Duration::ZERO));
    let s = serve(app).await;
    assert_eq!(s.get("/explicit").await.x_cache(), "MISS");
    clock.advance(Duration::from_secs(9));
    assert_eq!(s.get("/explicit").await.x_cache(), "HIT");
    for _ in 0..2 {
        assert_eq!(s.get("/plain").await.x_cache(), "BYPASS", "no explicit freshness, no heuristic");
    }
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn an_enormous_age_saturates_instead_of_overflowing() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route(
            "/max",
            counted(&runs, |n| {
                response(200, &[("cache-control", "max-age=60"), ("age", "18446744073709551615")], n.to_string())
            }),
        )
        .route(
            "/big",
            counted(&runs, |n| {
                response(200, &[("cache-control", "max-age=99999999999"), ("age", "2147483000")], n.to_string())
            }),
        )
        .layer(layer(&rt));
    let s = serve(app).await;
    assert_eq!(s.get("/max").await.x_cache(), "BYPASS");
    assert_eq!(s.get("/big").await.x_cache(), "MISS");
    clock.advance(Duration::from_secs(600));
    let hit = s.get("/big").await;
    assert_eq!((hit.x_cache(), hit.header("age")), ("HIT", Some("2147483600")), "max-age capped at 2^31 s");
}

// ---------------------------------------------------------------------------------------
// A handler that panics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_answers_500_and_does_not_tear_down_the_coalesced_requests() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let gate = Gate::new();
    let g = gate.clone();
    let handler = counted_async(&runs, move |_| {
        let g = g.clone();
        async move {
            g.wait().await;
            if true {
                panic!("the handler failed");
            }
            "never"
        }
    });
    let s = Arc::new(serve(Router::new().route("/boom", handler).layer(layer(&rt))).await);
    let replies = tokio::spawn({
        let s = Arc::clone(&s);
        async move { s.get_concurrently("/boom", 10).await }
    });
    runs.reached(1).await;
    gate.open();
    let replies = within("the ten replies", replies).await.unwrap();
    for r in &replies {
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(s.get("/boom").await.status, StatusCode::INTERNAL_SERVER_ERROR, "nothing was stored");
}

// ---------------------------------------------------------------------------------------
// Invalidation (RFC 9111 §4.4)

#[tokio::test]
async fn unsafe_methods_answered_2xx_or_3xx_invalidate_the_uri_and_same_origin_locations() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let r = runs.clone();
    let handler = any(move |method: Method, uri: Uri| {
        let r = r.clone();
        async move {
            if method == Method::GET {
                return format!("{} #{}", uri.path(), r.hit()).into_response();
            }
            match uri.path() {
                "/a" => (StatusCode::SEE_OTHER, [("location", "/b"), ("content-location", "http://other.test/c")])
                    .into_response(),
                "/c" if method.as_str() == "M-SEARCH" => StatusCode::OK.into_response(),
                _ => StatusCode::BAD_REQUEST.into_response(),
            }
        }
    });
    let s = serve(Router::new().route("/{p}", handler).layer(layer(&rt))).await;
    let host = [("host", "site.test")];
    for p in ["/a", "/b", "/c", "/d"] {
        assert_eq!(s.get_with(p, &host).await.x_cache(), "MISS");
    }
    assert_eq!(s.send(Method::POST, "/a", &host).await.status, StatusCode::SEE_OTHER);
    assert_eq!(s.get_with("/a", &host).await.x_cache(), "MISS", "the target");
    assert_eq!(s.get_with("/b", &host).await.x_cache(), "MISS", "the same-origin Location");
    assert_eq!(s.get_with("/c", &host).await.x_cache(), "HIT", "another origin's Content-Location");
    s.send(Method::from_bytes(b"M-SEARCH").unwrap(), "/c", &host).await;
    assert_eq!(s.get_with("/c", &host).await.x_cache(), "MISS", "an unknown method answered 200");
    s.send(Method::OPTIONS, "/d", &host).await;
    s.send(Method::DELETE, "/d", &host).await;
    assert_eq!(s.get_with("/d", &host).await.x_cache(), "HIT", "OPTIONS, and a DELETE answered 400, leave it");
    assert_eq!(runs.get(), 7);
}

// ---------------------------------------------------------------------------------------
// Statuses

#[tokio::test]
async fn with_explicit_freshness_any_allowed_status_is_stored_and_5xx_only_when_listed() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let fresh = [("cache-control", "max-age=60")];
    let app = |cache: CacheLayer| {
        Router::new()
            .route("/302", counted(&runs, move |n| response(302, &fresh, n.to_string())))
            .route("/503", counted(&runs, move |n| response(503, &fresh, n.to_string())))
            .route("/404", counted(&runs, |n| response(404, &[], n.to_string())))
            .layer(cache)
    };
    let s = serve(app(layer(&rt))).await;
    assert_eq!(s.get("/302").await.x_cache(), "MISS");
    assert_eq!(s.get("/302").await.x_cache(), "HIT");
    for _ in 0..2 {
        let r = s.get("/503").await;
        assert_eq!((r.status.as_u16(), r.x_cache()), (503, "BYPASS"), "errors are not shared unless listed");
    }
    let (rt2, _clock) = runtime();
    let listed = serve(app(layer(&rt2).statuses([200, 503]).heuristic_statuses([200]))).await;
    assert_eq!(listed.get("/503").await.x_cache(), "MISS");
    let r = listed.get("/503").await;
    assert_eq!((r.status.as_u16(), r.x_cache()), (503, "HIT"));
    for _ in 0..2 {
        assert_eq!(listed.get("/404").await.x_cache(), "BYPASS", "not in heuristic_statuses");
    }
    assert_eq!(listed.get("/302").await.x_cache(), "BYPASS", "not in statuses");
}

// ---------------------------------------------------------------------------------------
// Vary and content codings (RFC 9111 §4.1)

#[tokio::test]
async fn a_content_encoded_response_without_vary_is_still_keyed_by_the_accepted_codings() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let handler = counted_head(&runs, |_, head| {
        let gzip = head.headers.get("accept-encoding").is_some_and(|v| v.to_str().unwrap().contains("gzip"));
        if gzip { ([("content-encoding", "gzip")], "GZIPPED").into_response() } else { "plain".into_response() }
    });
    let s = serve(Router::new().route("/e", handler).layer(layer(&rt))).await;
    let gz = s.get_with("/e", &[("accept-encoding", "gzip")]).await;
    assert_eq!((gz.x_cache(), gz.header("content-encoding"), gz.header("vary")), ("MISS", Some("gzip"), None));
    let plain = s.get("/e").await;
    assert_eq!((plain.x_cache(), plain.text().as_str()), ("MISS", "plain"), "identity never gets the gzip body");
    let gz = s.get_with("/e", &[("accept-encoding", "GZIP ")]).await;
    assert_eq!((gz.x_cache(), gz.text().as_str()), ("HIT", "GZIPPED"));
    assert_eq!(s.get_with("/e", &[("accept-encoding", "gzip;q=0")]).await.text(), "plain", "q=0 refuses a coding");
    assert_eq!(runs.get(), 2);
}

// ---------------------------------------------------------------------------------------
// Targeted cache-control fields (RFC 9213)

#[tokio::test]
async fn a_targeted_field_wins_over_cache_control_for_the_layer_and_is_not_forwarded() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route(
            "/larder",
            counted(&runs, |n| {
                response(
                    200,
                    &[
                        ("cache-control", "no-cache"),
                        ("cdn-cache-control", "max-age=5"),
                        ("larder-cache-control", "max-age=60"),
                    ],
                    n.to_string(),
                )
            }),
        )
        .route(
            "/private",
            counted(&runs, |n| {
                response(200, &[("cache-control", "private"), ("cdn-cache-control", "max-age=60")], n.to_string())
            }),
        )
        .layer(layer(&rt));
    let s = serve(app).await;
    let miss = s.get("/larder").await;
    assert_eq!((miss.x_cache(), miss.header("cache-control")), ("MISS", Some("no-cache")), "browsers still revalidate");
    assert_eq!((miss.header("cdn-cache-control"), miss.header("larder-cache-control")), (None, None));
    clock.advance(Duration::from_secs(59));
    let hit = s.get("/larder").await;
    assert_eq!((hit.x_cache(), hit.header("larder-cache-control")), ("HIT", None));
    for _ in 0..2 {
        assert_eq!(
            s.get("/private").await.x_cache(),
            "BYPASS",
            "a targeted field cannot make a private response shared"
        );
    }
    assert_eq!(runs.get(), 3);
}

// ---------------------------------------------------------------------------------------
// Tags and purge

#[tokio::test]
async fn a_surrogate_key_header_tags_the_entry_and_is_stripped_before_the_client() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let cache = layer(&rt);
    let store = cache.store();
    let app = Router::new()
        .route("/p/1", counted(&runs, |n| response(200, &[("surrogate-key", "product-1 catalog")], n.to_string())))
        .route("/p/2", counted(&runs, |n| response(200, &[("surrogate-key", "product-2,catalog")], n.to_string())))
        .layer(cache);
    let s = serve(app).await;
    for p in ["/p/1", "/p/2"] {
        let r = s.get(p).await;
        assert_eq!((r.x_cache(), r.header("surrogate-key")), ("MISS", None));
        assert_eq!(s.get(p).await.header("surrogate-key"), None);
    }
    store.invalidate_tag("product-1").await;
    assert_eq!(s.get("/p/1").await.x_cache(), "MISS");
    assert_eq!(s.get("/p/2").await.x_cache(), "HIT");
    store.invalidate_tag("catalog").await;
    assert_eq!(s.get("/p/1").await.x_cache(), "MISS");
    assert_eq!(s.get("/p/2").await.x_cache(), "MISS");
    assert_eq!(runs.get(), 5);
}

#[tokio::test]
async fn the_purge_endpoint_is_off_by_default_and_needs_the_bearer_token() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let r = runs.clone();
    let handler = any(move |method: Method| {
        let r = r.clone();
        async move {
            let n = r.hit();
            (StatusCode::OK, [("surrogate-key", "news")], format!("{method} #{n}"))
        }
    });
    let app =
        |cache: CacheLayer| Router::new().route("/news", handler.clone()).route("/other", handler.clone()).layer(cache);
    let closed = serve(app(layer(&rt))).await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let r = closed.send(purge.clone(), "/news", &[("authorization", "Bearer anything")]).await;
    assert_eq!(r.text(), "PURGE #1", "without a token PURGE is the handler's");

    let (rt, _clock) = runtime();
    let open = serve(app(layer(&rt).purge_token("s3cret"))).await;
    for p in ["/news", "/other"] {
        assert_eq!(open.get(p).await.x_cache(), "MISS");
    }
    for auth in [&[][..], &[("authorization", "Bearer s3cre")], &[("authorization", "s3cret")]] {
        let r = open.send(purge.clone(), "/news", auth).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert_eq!(open.get("/news").await.x_cache(), "HIT", "a refused purge purged nothing");
    let ok = open.send(purge.clone(), "/news", &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(open.get("/news").await.x_cache(), "MISS");
    assert_eq!(open.get("/other").await.x_cache(), "HIT");
    let by_tag = [("authorization", "Bearer s3cret"), ("surrogate-key", "news")];
    assert_eq!(open.send(purge, "/", &by_tag).await.status, StatusCode::OK);
    assert_eq!(open.get("/other").await.x_cache(), "MISS", "purged by its tag");
    assert_eq!(runs.get(), 5, "the handler never saw a PURGE with a token set");
}

// ---------------------------------------------------------------------------------------
// Never served stale (RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10)

#[tokio::test]
async fn must_revalidate_proxy_revalidate_and_s_maxage_are_never_served_stale_under_swr() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let mut app = Router::new();
    for (path, cc) in
        [("/must", "max-age=10, must-revalidate"), ("/proxy", "max-age=10, proxy-revalidate"), ("/s", "s-maxage=10")]
    {
        app = app.route(path, counted(&runs, move |n| response(200, &[("cache-control", cc)], format!("edition {n}"))));
    }
    let s = serve(app.layer(layer(&rt).swr())).await;
    for path in ["/must", "/proxy", "/s"] {
        let first = s.get(path).await.text();
        clock.advance(Duration::from_secs(11));
        let next = s.get(path).await;
        assert_ne!(next.x_cache(), "STALE", "{path}");
        assert_ne!(next.text(), first, "{path}: a fresh response, not the stale one");
    }
    assert_eq!(runs.get(), 6);
}

#[tokio::test]
async fn must_revalidate_is_never_served_stale_under_grace_the_error_answers() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/flaky", good_then_failing(&runs, &[("cache-control", "max-age=10, must-revalidate")], 503))
        .layer(layer(&rt).grace(Duration::from_secs(3600)));
    let s = serve(app).await;
    assert_eq!(s.get("/flaky").await.text(), "good");
    clock.advance(Duration::from_secs(11));
    for _ in 0..2 {
        let r = s.get("/flaky").await;
        assert_eq!((r.status, r.text().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "down"));
    }
}

// ---------------------------------------------------------------------------------------
// Stale windows a response gives itself (RFC 5861)

#[tokio::test]
async fn a_response_stale_while_revalidate_is_served_stale_while_it_refreshes_and_only_within_its_window() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let cc = "max-age=10, stale-while-revalidate=30";
    let app = Router::new()
        .route("/news", counted(&runs, move |n| response(200, &[("cache-control", cc)], format!("edition {n}"))));
    // The layer itself has no `swr`: the response's directive is what allows it.
    let s = serve(app.layer(layer(&rt))).await;
    assert_eq!(s.get("/news").await.text(), "edition 1");
    clock.advance(Duration::from_secs(11));
    let stale = s.get("/news").await;
    assert_eq!((stale.x_cache(), stale.text().as_str()), ("STALE", "edition 1"));
    // The refresh runs in the background; until it has stored its response, the stale one answers.
    let fresh = s.get_until_refreshed("/news", "edition 1").await;
    assert_eq!((fresh.x_cache(), fresh.text().as_str()), ("HIT", "edition 2"));
    assert_eq!(runs.get(), 2, "one background refresh");
    // Past max-age + stale-while-revalidate, the request waits for the handler.
    clock.advance(Duration::from_secs(41));
    let late = s.get("/news").await;
    assert_eq!((late.x_cache(), late.text().as_str()), ("MISS", "edition 3"));
}

#[tokio::test]
async fn a_response_stale_if_error_answers_for_a_failing_handler_only_within_its_window() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/flaky", good_then_failing(&runs, &[("cache-control", "max-age=10, stale-if-error=60")], 503));
    // The layer itself has no `grace`.
    let s = serve(app.layer(layer(&rt))).await;
    assert_eq!(s.get("/flaky").await.text(), "good");
    clock.advance(Duration::from_secs(11));
    let graced = s.get("/flaky").await;
    assert_eq!((graced.status, graced.x_cache(), graced.text().as_str()), (StatusCode::OK, "STALE", "good"));
    assert_eq!(runs.get(), 2, "the handler ran and failed");
    // Past max-age + stale-if-error, the 5xx reaches the client as it is.
    clock.advance(Duration::from_secs(60));
    let failed = s.get("/flaky").await;
    assert_eq!((failed.status, failed.text().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "down"));
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn a_response_that_must_revalidate_ignores_its_own_stale_windows() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let cc: &'static [_] =
        &[("cache-control", "max-age=10, must-revalidate, stale-while-revalidate=30, stale-if-error=60")];
    let app = Router::new().route("/strict", good_then_failing(&runs, cc, 503));
    let s = serve(app.layer(layer(&rt))).await;
    assert_eq!(s.get("/strict").await.text(), "good");
    clock.advance(Duration::from_secs(11));
    let r = s.get("/strict").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::SERVICE_UNAVAILABLE, "down"));
}
