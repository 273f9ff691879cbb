//! What a cached HTTP response costs to judge, larder's way against `http-cache-semantics`
//! (2.x, the Rust port of the policy library most JavaScript HTTP caches use), for one
//! typical GET and its stored 200 (`Cache-Control: public, max-age=3600`, `ETag`, `Date`,
//! five more headers, a 1 KiB body).
//!
//! - `larder_layer_hit`: a whole hit through larder's tower service, in process: key,
//!   lookup, freshness (two numbers decided when the response was stored), the replayed
//!   response with `Age` and `x-cache`. The request is cloned per iteration (the service
//!   takes it by value); `request_clone` is that clone alone.
//! - `hcs_before_request`: `CachePolicy::before_request` alone, the check a cache built on
//!   the crate makes on every hit (it re-reads the stored and the new request's headers)
//!   and the response headers it hands back: no key, no lookup, no body.
//! - `hcs_new`: `CachePolicy::new`, the crate's storing decision (once per miss).
//!
//! ```sh
//! cargo bench --bench http_policy --features http
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt as _;
use http_body_util::Full;
use http_cache_semantics::{BeforeRequest, CachePolicy};
use larder::http::CacheLayer;
use tower::{Layer as _, Service as _, ServiceExt as _};

static PAYLOAD: &[u8] = &[b'x'; 1024];

fn request() -> Request<Full<Bytes>> {
    Request::builder()
        .uri("http://shop.test/products/42")
        .header(header::HOST, "shop.test")
        .header(header::USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0")
        .header(header::ACCEPT, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .header(header::ACCEPT_LANGUAGE, "en-US,en;q=0.5")
        .header(header::ACCEPT_ENCODING, "gzip, deflate, br")
        .header(header::CONNECTION, "keep-alive")
        .body(Full::new(Bytes::new()))
        .expect("a request")
}

fn response() -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(PAYLOAD)));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    h.insert(header::ETAG, HeaderValue::from_static("\"a1b2c3\""));
    h.insert(header::DATE, HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())).expect("a date"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::LAST_MODIFIED, HeaderValue::from_static("Tue, 01 Dec 2026 10:00:00 GMT"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert("x-request-id", HeaderValue::from_static("5f0c7a9e"));
    h.insert(header::SERVER, HeaderValue::from_static("origin"));
    res
}

fn policy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let larder_rt = larder::Runtime::builder().build();
    let handler = tower::service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, Infallible>(response()) });
    let mut svc = CacheLayer::new().runtime(larder_rt).max_age(Duration::from_secs(60)).layer(handler);
    let first = rt.block_on(svc.ready()).expect("ready").call(request());
    let first = rt.block_on(first).expect("a response");
    assert_eq!(first.headers()["x-cache"], "MISS");
    let hit = svc.call(request()).now_or_never().expect("a hit answers at once").expect("a response");
    assert_eq!(hit.headers()["x-cache"], "HIT");

    let (req, res) = (request(), response());
    let stored = CachePolicy::new(&req, &res);
    assert!(stored.is_storable());
    assert!(matches!(stored.before_request(&req, SystemTime::now()), BeforeRequest::Fresh(_)));

    let mut g = c.benchmark_group("http_policy");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.bench_function("larder_layer_hit", |b| {
        b.iter(|| {
            let res = svc.call(req.clone()).now_or_never().expect("a hit answers at once");
            black_box(res.expect("a response"))
        })
    });
    g.bench_function("request_clone", |b| b.iter(|| black_box(req.clone())));
    g.bench_function("hcs_before_request", |b| {
        b.iter(|| match stored.before_request(black_box(&req), SystemTime::now()) {
            BeforeRequest::Fresh(parts) => black_box(parts),
            BeforeRequest::Stale { .. } => unreachable!("fresh for an hour"),
        })
    });
    g.bench_function("hcs_new", |b| b.iter(|| black_box(CachePolicy::new(black_box(&req), black_box(&res)))));
    g.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
