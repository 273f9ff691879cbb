//! HTTP throughput and latency over loopback: a cached GET answered by larder's layer from
//! L1, against the same axum app serving the same bytes from a `static` without the layer,
//! and against the uncached handler that takes 5 ms; and a GET the layer revalidates on
//! every use (`no-cache` with an `ETag`: the handler answers `304`, the stored body goes
//! out) against a full miss through the layer (`no-cache` without a validator: the handler
//! makes the body every time).
//!
//! ```sh
//! cargo bench --bench http --features http
//! HTTP_BENCH_REQUESTS=50000 HTTP_BENCH_CONCURRENCY=64 cargo bench --bench http --features http
//! ```
//!
//! One process: three axum servers on `127.0.0.1:0` (one per contender) and a hyper client
//! with keep-alive connections, all on one multi-threaded tokio runtime; client and server
//! share the machine's cores, alike for every contender. `CONCURRENCY` client tasks send
//! requests back to back until `REQUESTS` are done; each request's latency is recorded.
//! Contenders run in alternating rounds; throughputs and ratios are medians over rounds,
//! ratios taken within a round (so that a slow stretch of a shared machine hits all alike).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use larder::http::CacheLayer;

/// The response body of every contender: 1 KiB of JSON-ish text.
static PAYLOAD: &[u8] = &[b'x'; 1024];

static CACHED_RUNS: AtomicUsize = AtomicUsize::new(0);

async fn cached_handler() -> impl IntoResponse {
    CACHED_RUNS.fetch_add(1, Ordering::Relaxed);
    ([(header::CONTENT_TYPE, "application/json")], Bytes::from_static(PAYLOAD))
}

async fn static_handler() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], Bytes::from_static(PAYLOAD))
}

async fn slow_handler() -> impl IntoResponse {
    tokio::time::sleep(Duration::from_millis(5)).await;
    ([(header::CONTENT_TYPE, "application/json")], Bytes::from_static(PAYLOAD))
}

static REVALIDATIONS: AtomicUsize = AtomicUsize::new(0);

async fn validated_handler(headers: axum::http::HeaderMap) -> axum::response::Response {
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v == "\"v1\"") {
        REVALIDATIONS.fetch_add(1, Ordering::Relaxed);
        return (axum::http::StatusCode::NOT_MODIFIED, [(header::ETAG, "\"v1\"")]).into_response();
    }
    ([(header::CACHE_CONTROL, "no-cache"), (header::ETAG, "\"v1\"")], Bytes::from_static(PAYLOAD)).into_response()
}

async fn unvalidated_handler() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Bytes::from_static(PAYLOAD))
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/data")
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn get_once(client: &HttpClient, uri: &hyper::Uri) -> (u16, Option<String>, usize) {
    let res = client.get(uri.clone()).await.expect("request");
    let status = res.status().as_u16();
    let x_cache = res.headers().get("x-cache").map(|v| v.to_str().unwrap().to_owned());
    let len = res.into_body().collect().await.expect("body").to_bytes().len();
    (status, x_cache, len)
}

struct Round {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Round {
    fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

async fn load(client: &HttpClient, uri: &str, requests: usize, concurrency: usize) -> Round {
    let uri: hyper::Uri = uri.parse().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, uri, next) = (client.clone(), uri.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(requests / concurrency + 1);
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let t = Instant::now();
                    let (status, _, len) = get_once(&client, &uri).await;
                    latencies.push(t.elapsed());
                    assert_eq!((status, len), (200, PAYLOAD.len()));
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Round { requests, elapsed, latencies }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let requests = env("HTTP_BENCH_REQUESTS", if quick { 500 } else { 10_000 });
    let slow_requests = env("HTTP_BENCH_SLOW_REQUESTS", if quick { 200 } else { 2_000 });
    let concurrency = env("HTTP_BENCH_CONCURRENCY", 32);
    let rounds = env("HTTP_BENCH_ROUNDS", if quick { 1 } else { 9 });

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cache_rt = larder::Runtime::builder().build();
        let layer = CacheLayer::new().runtime(cache_rt).max_age(Duration::from_secs(3600));
        let cached = serve(Router::new().route("/data", get(cached_handler)).layer(layer)).await;
        let plain = serve(Router::new().route("/data", get(static_handler))).await;
        let slow = serve(Router::new().route("/data", get(slow_handler))).await;
        let through = || CacheLayer::new().runtime(larder::Runtime::builder().build());
        let revalidated = serve(Router::new().route("/data", get(validated_handler)).layer(through())).await;
        let missed = serve(Router::new().route("/data", get(unvalidated_handler)).layer(through())).await;
        let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(concurrency).build_http();

        // Warm up: fill the cache and open the connections.
        let (_, x_cache, _) = get_once(&client, &cached.parse().unwrap()).await;
        assert_eq!(x_cache.as_deref(), Some("MISS"));
        let (_, x_cache, _) = get_once(&client, &cached.parse().unwrap()).await;
        assert_eq!(x_cache.as_deref(), Some("HIT"));
        for uri in [&cached, &plain, &revalidated, &missed] {
            load(&client, uri, concurrency * 20, concurrency).await;
        }

        // Rounds alternate the contenders, so that a slow stretch of the machine (other
        // builds, noisy neighbours) hits them alike; ratios are taken within each round.
        let mut all: [Vec<Round>; 5] = Default::default();
        for _ in 0..rounds {
            let contenders = [
                (&cached, requests),
                (&plain, requests),
                (&slow, slow_requests),
                (&revalidated, requests),
                (&missed, requests),
            ];
            for (i, (uri, n)) in contenders.into_iter().enumerate() {
                all[i].push(load(&client, uri, n, concurrency).await);
            }
        }
        assert_eq!(CACHED_RUNS.load(Ordering::Relaxed), 1, "every measured request was a hit");
        assert!(REVALIDATIONS.load(Ordering::Relaxed) > 0, "the handler answered 304s");

        println!("http: {concurrency} concurrent keep-alive clients, 1 KiB body, {rounds} alternating round(s); median of rounds");
        println!("{:<50} {:>10} {:>10} {:>12}", "contender", "p50", "p99", "req/s");
        let names = [
            "larder layer, cached GET (L1 hit)",
            "same app, static bytes, no layer",
            "same app, 5 ms handler, no layer",
            "larder layer, revalidated GET (304 from handler)",
            "larder layer, full miss (200 from handler)",
        ];
        for (name, rounds) in names.iter().zip(&all) {
            let mut latencies: Vec<Duration> = rounds.iter().flat_map(|r| r.latencies.iter().copied()).collect();
            latencies.sort_unstable();
            let pooled = Round { requests: latencies.len(), elapsed: Duration::ZERO, latencies };
            println!(
                "{name:<50} {:>8.1}µs {:>8.1}µs {:>12.0}",
                pooled.percentile(0.50).as_secs_f64() * 1e6,
                pooled.percentile(0.99).as_secs_f64() * 1e6,
                median(rounds.iter().map(Round::throughput).collect())
            );
        }
        let ratio = |a: usize, b: usize| median(all[a].iter().zip(&all[b]).map(|(x, y)| x.throughput() / y.throughput()).collect());
        println!("cached / static throughput:   {:.2}x (target: at least 0.80x)", ratio(0, 1));
        println!("cached / uncached throughput: {:.1}x", ratio(0, 2));
        println!("revalidated / full miss throughput: {:.2}x", ratio(3, 4));
    });
}
