//! The HTTP layer over real HTTP: an axum server on a loopback port, a hyper client, one rule per
//! test. Every test has its own runtime (and a manual clock), and counts handler runs to
//! tell hits from misses.
#![cfg(feature = "http")]

mod common;

use common::http::{counted, counted_async, counted_head, good_then_failing, layer, response, serve};
use common::{Runs, runtime};

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use larder::http::{CacheLayer, PutError, RouteRule, RouteRules};

// ---------------------------------------------------------------------------------------
// Storing and replaying

#[tokio::test]
async fn a_get_is_stored_once_and_replayed_with_x_cache_and_age() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new().route("/hello", counted(&runs, |n| format!("hello #{n}"))).layer(layer(&rt));
    let s = serve(app).await;

    let miss = s.get("/hello").await;
    assert_eq!((miss.status, miss.x_cache(), miss.text().as_str()), (StatusCode::OK, "MISS", "hello #1"));
    assert_eq!(miss.header("age"), Some("0"));
    clock.advance(Duration::from_secs(5));
    let hit = s.get("/hello").await;
    assert_eq!((hit.status, hit.x_cache(), hit.text().as_str()), (StatusCode::OK, "HIT", "hello #1"));
    assert_eq!(hit.header("age"), Some("5"));
    assert_eq!(hit.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(runs.get(), 1, "the handler ran once");
}

#[tokio::test]
async fn only_get_and_head_are_cached_other_methods_pass_through() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let r = runs.clone();
    let app = Router::new()
        .route(
            "/thing",
            any(move || {
                let r = r.clone();
                async move { format!("run {}", r.hit()) }
            }),
        )
        .layer(layer(&rt));
    let s = serve(app).await;
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS] {
        for _ in 0..2 {
            let reply = s.send(method.clone(), "/thing", &[]).await;
            assert_eq!(reply.x_cache(), "BYPASS", "{method}");
        }
    }
    assert_eq!(runs.get(), 10, "every non-GET/HEAD request ran the handler");
}

#[tokio::test]
async fn range_requests_pass_through_and_store_nothing() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new().route("/r", counted(&runs, |n| format!("body {n}"))).layer(layer(&rt));
    let s = serve(app).await;
    for _ in 0..2 {
        assert_eq!(s.get_with("/r", &[("range", "bytes=0-1")]).await.x_cache(), "BYPASS");
    }
    assert_eq!(runs.get(), 2);
    assert_eq!(s.get("/r").await.x_cache(), "MISS", "a Range request stored nothing");
}

#[tokio::test]
async fn head_has_its_own_key() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new().route("/h", counted(&runs, |_| "twelve bytes")).layer(layer(&rt));
    let s = serve(app).await;

    let head = s.send(Method::HEAD, "/h", &[]).await;
    assert_eq!((head.x_cache(), head.body.len()), ("MISS", 0));
    assert_eq!(head.header("content-length"), Some("12"));
    assert_eq!(s.send(Method::HEAD, "/h", &[]).await.x_cache(), "HIT");
    assert_eq!(runs.get(), 1);

    let get = s.get("/h").await;
    assert_eq!((get.x_cache(), get.text().as_str()), ("MISS", "twelve bytes"), "GET is not answered from HEAD's entry");
    assert_eq!(runs.get(), 2);
    let get = s.get("/h").await;
    assert_eq!((get.x_cache(), get.text().as_str()), ("HIT", "twelve bytes"));
    let head = s.send(Method::HEAD, "/h", &[]).await;
    assert_eq!((head.x_cache(), head.body.len()), ("HIT", 0), "HEAD is not answered from GET's entry with a body");
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn the_host_is_part_of_the_key() {
    let (rt, _clock) = runtime();
    let app = Router::new()
        .route("/who", get(|headers: HeaderMap| async move { format!("for {}", headers["host"].to_str().unwrap()) }))
        .route_layer(layer(&rt));
    let s = serve(app).await;
    let a = s.get_with("/who", &[("host", "a.test")]).await;
    let b = s.get_with("/who", &[("host", "b.test")]).await;
    assert_eq!((a.x_cache(), a.text().as_str()), ("MISS", "for a.test"));
    assert_eq!((b.x_cache(), b.text().as_str()), ("MISS", "for b.test"));
    let a = s.get_with("/who", &[("host", "A.TEST")]).await;
    assert_eq!((a.x_cache(), a.text().as_str()), ("HIT", "for a.test"), "hosts compare case-insensitively");
}

#[tokio::test]
async fn query_parameters_outside_allow_query_neither_create_entries_nor_reach_the_key() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let handler = counted_head(&runs, |_, head| format!("query: {}", head.uri.query().unwrap_or("")));
    let cache = layer(&rt).allow_query(["page"]);
    let store = cache.store();
    let s = serve(Router::new().route("/q", handler).layer(cache)).await;

    let first = s.get("/q?page=1&utm_source=mail").await;
    assert_eq!(
        (first.x_cache(), first.text().as_str()),
        ("MISS", "query: page=1"),
        "the handler never sees utm_source"
    );
    let same = s.get("/q?utm_source=web&page=1").await;
    assert_eq!((same.x_cache(), same.text().as_str()), ("HIT", "query: page=1"));
    assert_eq!(s.get("/q?page=2").await.x_cache(), "MISS");
    let bare = s.get("/q?utm_source=x&fbclid=y").await;
    assert_eq!((bare.x_cache(), bare.text().as_str()), ("MISS", "query: "));
    assert_eq!(s.get("/q").await.x_cache(), "HIT", "no allowed parameter: the same entry as no query");
    assert_eq!(runs.get(), 3);
    assert_eq!(store.keys().await.len(), 3, "{:?}", store.keys().await);
}

#[tokio::test]
async fn allowed_query_parameters_are_sorted_in_the_key() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new().route("/s", counted(&runs, |n| n.to_string())).layer(layer(&rt).allow_query(["a", "b"]));
    let s = serve(app).await;
    assert_eq!(s.get("/s?a=1&b=2").await.x_cache(), "MISS");
    assert_eq!(s.get("/s?b=2&a=1").await.x_cache(), "HIT");
    assert_eq!(runs.get(), 1);
}

// ---------------------------------------------------------------------------------------
// What is never stored

#[tokio::test]
async fn requests_with_authorization_or_cookie_pass_through() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let handler = counted_head(&runs, |_, head| {
        let headers = head.headers;
        let who = headers.get("authorization").or(headers.get("cookie")).map_or("anonymous", |v| v.to_str().unwrap());
        format!("hello {who}")
    });
    let s = serve(Router::new().route("/me", handler).layer(layer(&rt))).await;
    for _ in 0..2 {
        let r = s.get_with("/me", &[("authorization", "Bearer alice")]).await;
        assert_eq!((r.x_cache(), r.text().as_str()), ("BYPASS", "hello Bearer alice"));
        let r = s.get_with("/me", &[("cookie", "session=bob")]).await;
        assert_eq!((r.x_cache(), r.text().as_str()), ("BYPASS", "hello session=bob"));
    }
    assert_eq!(runs.get(), 4);
    let anonymous = s.get("/me").await;
    assert_eq!((anonymous.x_cache(), anonymous.text().as_str()), ("MISS", "hello anonymous"));
}

#[tokio::test]
async fn authorization_listed_in_varies_is_cached_per_value() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let handler = counted_head(&runs, |_, head| format!("hello {}", head.headers["authorization"].to_str().unwrap()));
    let s = serve(Router::new().route("/me", handler).layer(layer(&rt).varies(["Authorization"]))).await;
    assert_eq!(s.get_with("/me", &[("authorization", "alice")]).await.x_cache(), "MISS");
    let alice = s.get_with("/me", &[("authorization", "alice")]).await;
    assert_eq!((alice.x_cache(), alice.text().as_str()), ("HIT", "hello alice"));
    assert_eq!(alice.header("vary"), None, "no Vary is added to a response that had none");
    let bob = s.get_with("/me", &[("authorization", "bob")]).await;
    assert_eq!((bob.x_cache(), bob.text().as_str()), ("MISS", "hello bob"));
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn responses_with_set_cookie_are_never_stored_and_reach_the_client_intact() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route(
            "/login",
            counted(&runs, |n| response(200, &[("set-cookie", "session=s3cr3t; HttpOnly")], format!("welcome {n}"))),
        )
        .layer(layer(&rt));
    let s = serve(app).await;
    for n in 1..=2 {
        let r = s.get("/login").await;
        assert_eq!((r.x_cache(), r.text()), ("BYPASS", format!("welcome {n}")));
        assert_eq!(r.header("set-cookie"), Some("session=s3cr3t; HttpOnly"));
    }
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn a_response_that_may_not_be_stored_is_not_shared_with_concurrent_requests() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let handler = counted_async(&runs, |n| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cookie = HeaderValue::from_str(&format!("session={n}")).unwrap();
        ([(header::SET_COOKIE, cookie)], format!("session {n}"))
    });
    let s = serve(Router::new().route("/session", handler).layer(layer(&rt))).await;
    let replies = s.get_concurrently("/session", 4).await;
    let mut cookies: Vec<&str> = replies.iter().map(|r| r.header("set-cookie").unwrap()).collect();
    cookies.sort();
    cookies.dedup();
    assert_eq!(cookies.len(), 4, "every client got its own session: {cookies:?}");
    assert_eq!(runs.get(), 4);
}

#[tokio::test]
async fn no_store_private_and_no_cache_responses_are_not_stored() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/no-store", counted(&runs, |_| response(200, &[("cache-control", "no-store")], "a")))
        .route("/private", counted(&runs, |_| response(200, &[("cache-control", "private, max-age=60")], "b")))
        .route("/no-cache", counted(&runs, |_| response(200, &[("cache-control", "public, no-cache")], "c")))
        .layer(layer(&rt));
    let s = serve(app).await;
    for (path, body, cc) in [
        ("/no-store", "a", "no-store"),
        ("/private", "b", "private, max-age=60"),
        ("/no-cache", "c", "public, no-cache"),
    ] {
        for _ in 0..2 {
            let r = s.get(path).await;
            assert_eq!(
                (r.x_cache(), r.text().as_str(), r.header("cache-control")),
                ("BYPASS", body, Some(cc)),
                "{path}"
            );
        }
    }
    assert_eq!(runs.get(), 6);
}

#[tokio::test]
async fn vary_star_is_not_stored_and_vary_outside_varies_makes_a_secondary_key() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let lang = |runs: &Runs| {
        counted_head(runs, |_, head| {
            let lang = head.headers.get("accept-language").map_or("en", |v| v.to_str().unwrap()).to_owned();
            ([(header::VARY, "Accept-Language")], format!("lang {lang}"))
        })
    };
    let rules = RouteRules::new().rule("/varied", RouteRule::new().varies(["accept-language"]));
    let app = Router::new()
        .route("/star", counted(&runs, |_| response(200, &[("vary", "*")], "star")))
        .route("/outside", lang(&runs))
        .route("/varied", lang(&runs))
        .layer(layer(&rt).routes(rules));
    let s = serve(app).await;
    for _ in 0..2 {
        assert_eq!(s.get("/star").await.x_cache(), "BYPASS");
    }
    assert_eq!(s.get("/outside").await.x_cache(), "MISS");
    assert_eq!(s.get("/outside").await.x_cache(), "HIT", "stored under a secondary key (tests/http_vary.rs)");
    assert_eq!(runs.get(), 3);
    assert_eq!(s.get_with("/varied", &[("accept-language", "fr")]).await.x_cache(), "MISS");
    let fr = s.get_with("/varied", &[("accept-language", "fr")]).await;
    assert_eq!((fr.x_cache(), fr.text().as_str(), fr.header("vary")), ("HIT", "lang fr", Some("Accept-Language")));
    let de = s.get_with("/varied", &[("accept-language", "de")]).await;
    assert_eq!((de.x_cache(), de.text().as_str()), ("MISS", "lang de"));
    assert_eq!(runs.get(), 5);
}

#[tokio::test]
async fn without_explicit_freshness_only_heuristically_cacheable_statuses_are_stored() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let mut app = Router::new();
    for status in [302u16, 307, 404, 500, 301, 308] {
        app = app.route(
            &format!("/{status}"),
            counted(&runs, move |_| response(status, &[("location", "/elsewhere")], format!("status {status}"))),
        );
    }
    let s = serve(app.layer(layer(&rt))).await;
    for status in [302u16, 307, 500] {
        for _ in 0..2 {
            let r = s.get(&format!("/{status}")).await;
            assert_eq!((r.status.as_u16(), r.x_cache(), r.text()), (status, "BYPASS", format!("status {status}")));
        }
    }
    assert_eq!(runs.get(), 6);
    for status in [404u16, 301, 308] {
        assert_eq!(s.get(&format!("/{status}")).await.x_cache(), "MISS");
        let r = s.get(&format!("/{status}")).await;
        assert_eq!((r.status.as_u16(), r.x_cache(), r.header("location")), (status, "HIT", Some("/elsewhere")));
    }
    assert_eq!(runs.get(), 9);
}

#[tokio::test]
async fn bodies_over_max_body_pass_through_intact() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let big: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let big_clone = big.clone();
    let app = Router::new()
        .route("/big", counted(&runs, move |_| big_clone.clone()))
        .route("/small", counted(&runs, |_| vec![1u8; 1024]))
        .layer(layer(&rt).max_body(1024));
    let s = serve(app).await;
    for _ in 0..2 {
        let r = s.get("/big").await;
        assert_eq!(r.x_cache(), "BYPASS");
        assert_eq!(&r.body[..], &big[..]);
    }
    assert_eq!(runs.get(), 2);
    assert_eq!(s.get("/small").await.x_cache(), "MISS");
    let small = s.get("/small").await;
    assert_eq!((small.x_cache(), small.body.len()), ("HIT", 1024), "max_body is inclusive");
}

#[tokio::test]
async fn hop_by_hop_headers_are_never_stored() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let hop = [
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-authenticate", "Basic"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("x-kept", "yes"),
    ];
    let app = Router::new().route("/hop", counted(&runs, move |_| response(200, &hop, "hop"))).layer(layer(&rt));
    let s = serve(app).await;
    s.get("/hop").await;
    let hit = s.get("/hop").await;
    assert_eq!(hit.x_cache(), "HIT");
    for name in ["x-hop", "keep-alive", "proxy-authenticate", "te", "trailer"] {
        assert!(hit.header(name).is_none(), "{name} was replayed: {:?}", hit.headers);
    }
    assert_eq!(hit.header("x-kept"), Some("yes"));
}

#[tokio::test]
async fn binary_bodies_round_trip_byte_for_byte() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend((0..=255u8).cycle().take(10_000).map(|b| b ^ 0x5a));
    png.extend_from_slice(b"\0\xff\xfe\r\n");
    let image = png.clone();
    let app = Router::new()
        .route("/image.png", counted(&runs, move |_| ([(header::CONTENT_TYPE, "image/png")], image.clone())))
        .layer(layer(&rt));
    let s = serve(app).await;
    let miss = s.get("/image.png").await;
    let hit = s.get("/image.png").await;
    assert_eq!((miss.x_cache(), hit.x_cache()), ("MISS", "HIT"));
    assert_eq!(&miss.body[..], &png[..]);
    assert_eq!(&hit.body[..], &png[..]);
    assert_eq!(hit.header("content-type"), Some("image/png"));
    assert_eq!(hit.header("content-length"), Some(png.len().to_string().as_str()));
}

// ---------------------------------------------------------------------------------------
// Freshness

#[tokio::test]
async fn s_maxage_wins_over_max_age_which_wins_over_the_layer_max_age() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route(
            "/s",
            counted(&runs, |n| response(200, &[("cache-control", "max-age=50, s-maxage=10")], format!("s{n}"))),
        )
        .route("/m", counted(&runs, |n| response(200, &[("cache-control", "max-age=20")], format!("m{n}"))))
        .route("/d", counted(&runs, |n| format!("d{n}")))
        .layer(CacheLayer::new().runtime(rt.clone()).max_age(Duration::from_secs(100)));
    let s = serve(app).await;
    for p in ["/s", "/m", "/d"] {
        assert_eq!(s.get(p).await.x_cache(), "MISS");
    }
    let status = async |p: &str| s.get(p).await.x_cache().to_owned();
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        (status("/s").await, status("/m").await, status("/d").await),
        ("MISS".into(), "HIT".into(), "HIT".into())
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!((status("/m").await, status("/d").await), ("MISS".into(), "HIT".into()));
    clock.advance(Duration::from_secs(80));
    assert_eq!(status("/d").await, "MISS");
}

#[tokio::test]
async fn stored_responses_without_cache_control_get_s_maxage_and_stale_while_revalidate() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let rules = RouteRules::new().rule("/quiet", RouteRule::new().send_cache_control(false));
    let app = Router::new()
        .route("/plain", counted(&runs, |_| "plain"))
        .route("/own", counted(&runs, |_| response(200, &[("cache-control", "public, max-age=30")], "own")))
        .route("/quiet", counted(&runs, |_| "quiet"))
        .layer(
            CacheLayer::new()
                .runtime(rt.clone())
                .max_age(Duration::from_secs(10))
                .stale_max_age(Duration::from_secs(60))
                .routes(rules),
        );
    let s = serve(app).await;
    for _ in 0..2 {
        assert_eq!(s.get("/plain").await.header("cache-control"), Some("s-maxage=10, stale-while-revalidate=60"));
        assert_eq!(s.get("/own").await.header("cache-control"), Some("public, max-age=30"));
        assert_eq!(s.get("/quiet").await.header("cache-control"), None);
    }
}

// ---------------------------------------------------------------------------------------
// Validators and 304

#[tokio::test]
async fn replayed_responses_carry_an_etag_and_answer_if_none_match_with_304() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/weak", counted(&runs, |_| "same bytes"))
        .route("/strong", counted(&runs, |_| response(200, &[("etag", "\"v1\"")], "v1")))
        .layer(layer(&rt));
    let s = serve(app).await;

    let first = s.get_with("/weak", &[("if-none-match", "*")]).await;
    assert_eq!(
        (first.status, first.x_cache()),
        (StatusCode::NOT_MODIFIED, "MISS"),
        "`*` matches the response just made"
    );
    let full = s.get("/weak").await;
    let etag = full.header("etag").unwrap().to_owned();
    assert!(etag.starts_with("W/\""), "a weak ETag from the body hash: {etag}");
    assert_eq!(full.text(), "same bytes");

    let strong_form = etag.trim_start_matches("W/").to_owned();
    let list = format!("\"nope\", {etag}");
    for inm in [etag.as_str(), strong_form.as_str(), list.as_str(), "*"] {
        let r = s.get_with("/weak", &[("if-none-match", inm)]).await;
        assert_eq!((r.status, r.x_cache(), r.body.len()), (StatusCode::NOT_MODIFIED, "HIT", 0), "If-None-Match: {inm}");
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert!(r.header("age").is_some());
    }
    let other = s.get_with("/weak", &[("if-none-match", "\"nope\", W/\"other\"")]).await;
    assert_eq!((other.status, other.text().as_str()), (StatusCode::OK, "same bytes"));

    let strong = s.get("/strong").await;
    assert_eq!(strong.header("etag"), Some("\"v1\""), "the handler's ETag is kept");
    let r = s.get_with("/strong", &[("if-none-match", "W/\"v1\"")]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED, "weak comparison");
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn if_modified_since_is_answered_with_304() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route(
            "/dated",
            counted(&runs, |_| response(200, &[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")], "old")),
        )
        .route("/undated", counted(&runs, |_| "new"))
        .layer(layer(&rt));
    let s = serve(app).await;
    s.get("/dated").await;
    let same = s.get_with("/dated", &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]).await;
    assert_eq!(
        (same.status, same.header("last-modified")),
        (StatusCode::NOT_MODIFIED, Some("Sun, 06 Nov 1994 08:49:37 GMT"))
    );
    let rfc850 = s.get_with("/dated", &[("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT")]).await;
    assert_eq!(rfc850.status, StatusCode::NOT_MODIFIED, "obsolete date formats are read too");
    let earlier = s.get_with("/dated", &[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")]).await;
    assert_eq!((earlier.status, earlier.text().as_str()), (StatusCode::OK, "old"));
    let with_inm = s
        .get_with("/dated", &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"), ("if-none-match", "\"x\"")])
        .await;
    assert_eq!(with_inm.status, StatusCode::OK, "If-None-Match wins over If-Modified-Since");

    // Without Last-Modified, the time it was stored stands for it.
    s.get("/undated").await;
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
    let r = s.get_with("/undated", &[("if-modified-since", &later)]).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    let before = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
    assert_eq!(s.get_with("/undated", &[("if-modified-since", &before)]).await.status, StatusCode::OK);
    assert_eq!(runs.get(), 2);
}

// ---------------------------------------------------------------------------------------
// Single-flight, swr, grace, timeouts

#[tokio::test]
async fn concurrent_misses_run_the_handler_once() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let handler = counted_async(&runs, |n| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        format!("slow {n}")
    });
    let s = serve(Router::new().route("/slow", handler).layer(layer(&rt))).await;
    let replies = s.get_concurrently("/slow", 16).await;
    assert_eq!(runs.get(), 1, "16 concurrent misses, one handler run");
    // Requests that joined the run answer MISS; any that came after it (a slow machine) HIT.
    assert!(replies.iter().all(|r| r.text() == "slow 1" && ["MISS", "HIT"].contains(&r.x_cache())));
    assert!(replies.iter().filter(|r| r.x_cache() == "MISS").count() > 1, "requests waited on the same run");
}

#[tokio::test]
async fn swr_serves_stale_and_refreshes_in_the_background() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/news", counted(&runs, |n| format!("edition {n}")))
        .layer(CacheLayer::new().runtime(rt.clone()).max_age(Duration::from_secs(10)).swr());
    let s = serve(app).await;
    assert_eq!(s.get("/news").await.text(), "edition 1");
    clock.advance(Duration::from_secs(11));
    let stale = s.get("/news").await;
    assert_eq!((stale.x_cache(), stale.text().as_str(), stale.header("age")), ("STALE", "edition 1", Some("11")));
    // The refresh runs in the background; until it has stored its response, the stale one answers.
    let fresh = s.get_until_refreshed("/news", "edition 1").await;
    assert_eq!((fresh.x_cache(), fresh.text().as_str()), ("HIT", "edition 2"));
    assert_eq!(runs.get(), 2, "one background refresh, however many stale answers");
}

#[tokio::test]
async fn grace_serves_the_old_response_while_the_handler_answers_5xx() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/flaky", good_then_failing(&runs, &[], 503))
        .layer(layer(&rt).max_age(Duration::from_secs(10)).grace(Duration::from_secs(3600)));
    let s = serve(app).await;
    assert_eq!(s.get("/flaky").await.text(), "good");
    clock.advance(Duration::from_secs(11));
    let graced = s.get("/flaky").await;
    assert_eq!((graced.status, graced.x_cache(), graced.text().as_str()), (StatusCode::OK, "STALE", "good"));
    assert_eq!(runs.get(), 2, "the handler ran and failed");
    let backed_off = s.get("/flaky").await;
    assert_eq!((backed_off.x_cache(), backed_off.text().as_str()), ("STALE", "good"));
    assert_eq!(runs.get(), 2, "within grace_backoff the failing handler is not called again");

    // Past max_age + grace, the 5xx reaches the client as it is.
    clock.advance(Duration::from_secs(3600));
    let failed = s.get("/flaky").await;
    assert_eq!(
        (failed.status, failed.x_cache(), failed.text().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "BYPASS", "down")
    );
}

#[tokio::test]
async fn without_grace_a_5xx_reaches_the_client_and_nothing_is_stored() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let app = Router::new()
        .route("/flaky", good_then_failing(&runs, &[], 500))
        .layer(layer(&rt).max_age(Duration::from_secs(10)));
    let s = serve(app).await;
    assert_eq!(s.get("/flaky").await.text(), "good");
    clock.advance(Duration::from_secs(11));
    let failed = s.get("/flaky").await;
    assert_eq!(
        (failed.status, failed.x_cache(), failed.text().as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "BYPASS", "down")
    );
    assert_eq!(s.get("/flaky").await.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(runs.get(), 3);
}

#[tokio::test]
async fn hard_timeout_answers_504() {
    let (rt, _clock) = runtime();
    let app = Router::new()
        .route(
            "/stuck",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .layer(layer(&rt).hard_timeout(Duration::from_millis(100)));
    let s = serve(app).await;
    assert_eq!(s.get("/stuck").await.status, StatusCode::GATEWAY_TIMEOUT);
}

// ---------------------------------------------------------------------------------------
// Route rules

#[tokio::test]
async fn route_rules_pick_the_most_specific_glob_and_cache_false_turns_a_subtree_off() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let rules = RouteRules::new()
        .rule("/blog/**", RouteRule::new().max_age(Duration::from_secs(100)))
        .rule("/blog/drafts/**", RouteRule::off())
        .rule("/api/*/stars", RouteRule::new().max_age(Duration::from_secs(5)));
    let app = Router::new()
        .route("/blog/{slug}", counted(&runs, |n| n.to_string()))
        .route("/blog/drafts/{slug}", counted(&runs, |n| n.to_string()))
        .route("/api/{repo}/stars", counted(&runs, |n| n.to_string()))
        .route("/other", counted(&runs, |n| n.to_string()))
        .layer(CacheLayer::new().runtime(rt.clone()).max_age(Duration::from_secs(1000)).routes(rules));
    let s = serve(app).await;
    for p in ["/blog/hello", "/api/rust/stars", "/other"] {
        assert_eq!(s.get(p).await.x_cache(), "MISS");
        assert_eq!(s.get(p).await.x_cache(), "HIT");
    }
    for _ in 0..2 {
        assert_eq!(s.get("/blog/drafts/secret").await.x_cache(), "BYPASS");
    }
    clock.advance(Duration::from_secs(6));
    assert_eq!(s.get("/api/rust/stars").await.x_cache(), "MISS", "5 s under /api/*/stars");
    assert_eq!(s.get("/blog/hello").await.x_cache(), "HIT", "100 s under /blog/**");
    clock.advance(Duration::from_secs(100));
    assert_eq!(s.get("/blog/hello").await.x_cache(), "MISS");
    assert_eq!(s.get("/other").await.x_cache(), "HIT", "the layer's 1000 s");
}

// ---------------------------------------------------------------------------------------
// Invalidation

#[tokio::test]
async fn a_successful_write_invalidates_the_get_and_head_entries_of_its_path() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let items = counted(&runs, |n| format!("items v{n}"))
        .post(|body: String| async move { if body == "ok" { StatusCode::CREATED } else { StatusCode::BAD_REQUEST } })
        .delete(|| async { StatusCode::NO_CONTENT });
    let app = Router::new().route("/items", items).route("/other", counted(&runs, |_| "other")).layer(layer(&rt));
    let s = serve(app).await;
    let post = async |body: &'static str| {
        let req = Request::post(s.uri("/items")).body(Full::new(Bytes::from(body))).unwrap();
        s.client.request(req).await.unwrap().status()
    };
    s.get("/items").await;
    s.send(Method::HEAD, "/items", &[]).await;
    s.get("/other").await;
    assert_eq!(post("nope").await, StatusCode::BAD_REQUEST);
    assert_eq!(s.get("/items").await.x_cache(), "HIT", "a failed write invalidates nothing");
    assert_eq!(post("ok").await, StatusCode::CREATED);
    let after = s.get("/items").await;
    assert_eq!((after.x_cache(), after.text().as_str()), ("MISS", "items v4"));
    assert_eq!(s.send(Method::HEAD, "/items", &[]).await.x_cache(), "MISS");
    assert_eq!(s.get("/other").await.x_cache(), "HIT", "other paths keep their entries");
    assert_eq!(s.send(Method::DELETE, "/items", &[]).await.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get("/items").await.x_cache(), "MISS");
}

#[tokio::test]
async fn invalidation_by_path_glob() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let cache = layer(&rt);
    let store = cache.store();
    let app = Router::new()
        .route("/blog", counted(&runs, |_| "index"))
        .route("/blog/{a}", counted(&runs, |_| "post"))
        .route("/blog/{a}/{b}", counted(&runs, |_| "deep"))
        .route("/news/{a}", counted(&runs, |_| "news"))
        .layer(cache);
    let s = serve(app).await;
    let paths = ["/blog", "/blog/a", "/blog/b/c", "/blog/a%20b", "/news/x"];
    for p in paths {
        assert_eq!(s.get(p).await.x_cache(), "MISS", "{p}");
    }
    assert_eq!(store.invalidate_path("/blog/*").await.unwrap(), 2, "/blog/a and /blog/a%20b");
    assert_eq!(s.get("/blog/a").await.x_cache(), "MISS");
    assert_eq!(s.get("/blog/b/c").await.x_cache(), "HIT");
    assert_eq!(store.invalidate_path("/blog/**").await.unwrap(), 3, "/blog, /blog/a (stored again), /blog/b/c");
    for p in paths {
        let expected = if p.starts_with("/news") { "HIT" } else { "MISS" };
        assert_eq!(s.get(p).await.x_cache(), expected, "{p}");
    }
    assert!(store.invalidate_path("blog").await.is_err());
}

#[tokio::test]
async fn invalidation_by_tag() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let rules = RouteRules::new().rule("/blog/**", RouteRule::new().tag("blog"));
    let cache = layer(&rt).routes(rules).tags_with(|parts| vec![format!("path:{}", parts.uri.path())]);
    let store = cache.store();
    let app = Router::new()
        .route("/blog/{a}", counted(&runs, |_| "post"))
        .route("/news", counted(&runs, |_| "news"))
        .layer(cache);
    let s = serve(app).await;
    for p in ["/blog/a", "/blog/b", "/news"] {
        s.get(p).await;
    }
    rt.scope(larder::invalidate_tag("blog")).await;
    assert_eq!(s.get("/blog/a").await.x_cache(), "MISS");
    assert_eq!(s.get("/blog/b").await.x_cache(), "MISS");
    assert_eq!(s.get("/news").await.x_cache(), "HIT");
    store.invalidate_tag("path:/news").await;
    assert_eq!(s.get("/news").await.x_cache(), "MISS");
    assert_eq!(s.get("/blog/a").await.x_cache(), "HIT");
}

#[tokio::test]
async fn cloudflare_style_match_put_and_delete_share_the_layer_store() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let cache = layer(&rt);
    let store = cache.store();
    let app = Router::new().route("/cf", counted(&runs, |n| format!("handler {n}"))).layer(cache);
    let s = serve(app).await;
    let req = Request::get(s.uri("/cf")).body(()).unwrap();

    assert!(store.r#match(&req).await.is_none());
    let put =
        Response::builder().header("cache-control", "max-age=5").body(Full::new(Bytes::from("put by hand"))).unwrap();
    store.put(&req, put).await.unwrap();
    let via_http = s.get("/cf").await;
    assert_eq!((via_http.x_cache(), via_http.text().as_str()), ("HIT", "put by hand"));
    assert_eq!(runs.get(), 0, "the handler never ran");
    let matched = store.r#match(&req).await.unwrap();
    assert_eq!(matched.headers()["x-cache"], "HIT");
    assert_eq!(matched.into_body().collect().await.unwrap().to_bytes(), "put by hand");

    clock.advance(Duration::from_secs(6));
    assert!(store.r#match(&req).await.is_none(), "put honoured the response's max-age");
    assert_eq!(s.get("/cf").await.text(), "handler 1");
    assert!(store.r#match(&req).await.is_some(), "match sees what the layer stored");
    assert!(store.delete(&req).await);
    assert!(store.r#match(&req).await.is_none());
    assert_eq!(s.get("/cf").await.text(), "handler 2");

    let cookie = Response::builder().header("set-cookie", "a=1").body(Full::new(Bytes::from("x"))).unwrap();
    assert!(matches!(store.put(&req, cookie).await, Err(PutError::NotCacheable(_))));
    let post = Request::post(s.uri("/cf")).body(()).unwrap();
    let ok = Response::new(Full::new(Bytes::from("x")));
    assert_eq!(store.put(&post, ok).await, Err(PutError::Method));
}

// ---------------------------------------------------------------------------------------
// Key function and bypass predicate

#[tokio::test]
async fn the_key_function_splits_entries_and_the_bypass_predicate_skips_the_cache() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let cache = layer(&rt)
        .key(|parts| parts.headers.get("x-tenant").map_or("", |v| v.to_str().unwrap_or("")).to_owned())
        .bypass(|parts| parts.headers.contains_key("x-preview"));
    let app = Router::new().route("/t", counted(&runs, |n| n.to_string())).layer(cache);
    let s = serve(app).await;
    assert_eq!(s.get_with("/t", &[("x-tenant", "a")]).await.x_cache(), "MISS");
    assert_eq!(s.get_with("/t", &[("x-tenant", "a")]).await.x_cache(), "HIT");
    assert_eq!(s.get_with("/t", &[("x-tenant", "b")]).await.x_cache(), "MISS");
    assert_eq!(s.get_with("/t", &[("x-tenant", "a"), ("x-preview", "1")]).await.x_cache(), "BYPASS");
    assert_eq!(runs.get(), 3);
}

/// A body of announced length that fails after its first chunk.
struct Failing(u8);

impl hyper::body::Body for Failing {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0 += 1;
        std::task::Poll::Ready(Some(match self.0 {
            1 => Ok(hyper::body::Frame::data(Bytes::from_static(b"half"))),
            _ => Err(std::io::Error::other("upstream reset")),
        }))
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(8)
    }
}

#[tokio::test]
async fn put_refuses_what_the_layer_would_not_store_and_says_why() {
    let (rt, _clock) = runtime();
    let store = layer(&rt).max_body(16).store();
    let req = Request::get("http://example.test/put").body(()).unwrap();
    let failing = store.put(&req, Response::new(Failing(0))).await;
    assert_eq!(failing, Err(PutError::Body("upstream reset".into())));
    let big = Response::new(Full::new(Bytes::from(vec![0u8; 17])));
    assert!(matches!(store.put(&req, big).await, Err(PutError::NotCacheable(_))));
    let private = Response::builder().header("cache-control", "private").body(Full::new(Bytes::new())).unwrap();
    assert!(matches!(store.put(&req, private).await, Err(PutError::NotCacheable(_))));
    let authorized = Request::get("http://example.test/put").header("authorization", "x").body(()).unwrap();
    let ok = Response::new(Full::new(Bytes::from("ok")));
    assert!(matches!(store.put(&authorized, ok).await, Err(PutError::NotCacheable(_))));
    assert!(store.keys().await.is_empty());
    store.put(&req, Response::new(Full::new(Bytes::from("ok")))).await.unwrap();
    assert_eq!(store.keys().await, vec![store.storage_key(&req).unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_with_an_old_response_gets_it_after_the_soft_timeout() {
    let (rt, clock) = runtime();
    let runs = Runs::default();
    let gate = common::Gate::new();
    let g = gate.clone();
    let handler = counted_async(&runs, move |n| {
        let g = g.clone();
        async move {
            if n > 1 {
                g.wait().await;
            }
            format!("page v{n}")
        }
    });
    let app = Router::new().route("/page", handler).layer(
        layer(&rt).max_age(Duration::from_secs(10)).grace(Duration::from_secs(3600)).timeout(Duration::from_millis(50)),
    );
    let s = serve(app).await;
    assert_eq!(s.get("/page").await.text(), "page v1");
    clock.advance(Duration::from_secs(11));
    // The handler hangs (the gate stays closed): every request must still answer.
    let replies = common::within("every request answers", s.get_concurrently("/page", 4)).await;
    for reply in &replies {
        assert_eq!((reply.status, reply.text().as_str()), (StatusCode::OK, "page v1"));
    }
    assert_eq!(runs.get(), 2, "one handler run for all of them");
    gate.open();
}

#[tokio::test]
async fn a_handler_tags_its_response_and_cannot_make_a_private_one_shared() {
    let (rt, _clock) = runtime();
    let runs = Runs::default();
    let (r1, r2) = (runs.clone(), runs.clone());
    let app = Router::new()
        .route(
            "/product/{id}",
            get(move |axum::extract::Path(id): axum::extract::Path<u32>| {
                r1.hit();
                async move {
                    larder::this_entry::tag(format!("product:{id}"));
                    format!("product {id}")
                }
            }),
        )
        .route(
            "/me",
            get(move || {
                r2.hit();
                async move {
                    // The body asks for a long life, but the response is private.
                    larder::this_entry::max_age(Duration::from_secs(3600));
                    response(200, &[("cache-control", "private")], "mine")
                }
            }),
        )
        .layer(layer(&rt));
    let s = serve(app).await;
    assert_eq!(s.get("/product/1").await.x_cache(), "MISS");
    assert_eq!(s.get("/product/2").await.x_cache(), "MISS");
    assert_eq!(s.get("/product/1").await.x_cache(), "HIT");
    rt.scope(larder::invalidate_tag("product:1")).await;
    assert_eq!(s.get("/product/1").await.x_cache(), "MISS", "the handler's tag reached its entry");
    assert_eq!(s.get("/product/2").await.x_cache(), "HIT");
    s.get("/me").await;
    let runs_before = runs.get();
    s.get("/me").await;
    assert_eq!(runs.get(), runs_before + 1, "a private response is never stored, whatever the body says");
}
