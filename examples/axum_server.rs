//! A small axum API behind larder's HTTP cache.
//!
//! ```sh
//! cargo run --example axum_server --features http      # listens on 127.0.0.1:3000 (PORT to change)
//! curl -i localhost:3000/stats/rust-lang/rust           # MISS (≈300 ms), then HIT
//! curl -i -H 'If-None-Match: <its etag>' localhost:3000/stats/rust-lang/rust   # 304
//! curl -i localhost:3000/blog/hello                     # cached for an hour, tagged `blog`
//! curl -i localhost:3000/blog/drafts/next               # never cached (route rule)
//! curl -i -H 'Cookie: session=alice' localhost:3000/me  # never cached (user-specific)
//! curl -i -X POST 'localhost:3000/admin/invalidate?path=/blog/**'
//! curl -i -X POST 'localhost:3000/admin/invalidate?tag=blog'
//! ```
//!
//! - `/stats/{owner}/{repo}`: a slow (300 ms) upstream, cached 10 s with `swr`: after 10 s
//!   the stored response answers at once (`x-cache: STALE`) while one background run
//!   refreshes it.
//! - `/blog/**`: a route rule: fresh for an hour, tagged `blog`; `/blog/drafts/**` is off.
//! - `/me`: reads the session cookie and sets one. The layer never stores it: the request
//!   carries `Cookie`, and the response carries `Set-Cookie` (either alone is enough).
//! - `POST /admin/invalidate?path=GLOB` or `?tag=TAG`: drops entries by path glob or tag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use larder::http::{CacheLayer, ResponseCache, RouteRule, RouteRules};

static UPSTREAM_CALLS: AtomicU64 = AtomicU64::new(0);

async fn stats(Path((owner, repo)): Path<(String, String)>) -> impl IntoResponse {
    // A slow upstream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = UPSTREAM_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let body = format!("{{\"repo\":\"{owner}/{repo}\",\"stars\":{},\"upstream_call\":{call}}}\n", 100_000 + call);
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn blog(Path(slug): Path<String>) -> String {
    format!("<h1>{slug}</h1>\n")
}

async fn draft(Path(slug): Path<String>) -> String {
    format!("<h1>draft: {slug}</h1>\n")
}

async fn me(headers: HeaderMap) -> impl IntoResponse {
    let session = headers.get(header::COOKIE).and_then(|c| c.to_str().ok()).unwrap_or("none").to_owned();
    ([(header::SET_COOKIE, "seen=1; HttpOnly")], format!("your session: {session}\n"))
}

async fn invalidate(State(store): State<ResponseCache>, Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    if let Some(glob) = q.get("path") {
        return match store.invalidate_path(glob).await {
            Ok(n) => (StatusCode::OK, format!("invalidated {n} entries under {glob}\n")),
            Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
    }
    if let Some(tag) = q.get("tag") {
        store.invalidate_tag(tag).await;
        return (StatusCode::OK, format!("invalidated tag {tag}\n"));
    }
    (StatusCode::BAD_REQUEST, "give ?path=GLOB or ?tag=TAG\n".to_owned())
}

#[tokio::main]
async fn main() {
    let cache = CacheLayer::new().max_age(Duration::from_secs(10)).swr().routes(
        RouteRules::new()
            .rule("/blog/**", RouteRule::new().max_age(Duration::from_secs(3600)).tag("blog"))
            .rule("/blog/drafts/**", RouteRule::off())
            .rule("/admin/**", RouteRule::off()),
    );
    let store = cache.store();

    let app = Router::new()
        .route("/stats/{owner}/{repo}", get(stats))
        .route("/blog/{slug}", get(blog))
        .route("/blog/drafts/{slug}", get(draft))
        .route("/me", get(me))
        .route("/admin/invalidate", post(invalidate))
        .with_state(store)
        .layer(cache);

    let port = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3000u16);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("the port is free");
    println!("listening on http://{}", listener.local_addr().unwrap());
    println!("try: curl -i localhost:{port}/stats/rust-lang/rust   (twice: MISS, then HIT)");
    axum::serve(listener, app).await.unwrap();
}
