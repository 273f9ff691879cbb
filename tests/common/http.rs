//! The HTTP harness: an axum server on a free loopback port, a hyper client, replies as
//! the tests read them, and the layer and responses the tests start from.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use larder::Runtime;
use larder::http::CacheLayer;

use super::Runs;

/// A handler that counts its runs and answers what `f` makes of the run number.
pub fn counted<R, F>(runs: &Runs, f: F) -> MethodRouter
where
    F: Fn(usize) -> R + Clone + Send + Sync + 'static,
    R: IntoResponse,
{
    let runs = runs.clone();
    get(move || {
        let (runs, f) = (runs.clone(), f.clone());
        async move { f(runs.hit()).into_response() }
    })
}

/// A handler that counts its runs and answers what `f` makes of the run number and the request head.
pub fn counted_head<R, F>(runs: &Runs, f: F) -> MethodRouter
where
    F: Fn(usize, Parts) -> R + Clone + Send + Sync + 'static,
    R: IntoResponse,
{
    let runs = runs.clone();
    get(move |head: Parts| {
        let (runs, f) = (runs.clone(), f.clone());
        async move { f(runs.hit(), head).into_response() }
    })
}

/// A handler that counts its runs and answers what the future `f` makes of the run number.
pub fn counted_async<R, F, Fut>(runs: &Runs, f: F) -> MethodRouter
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    let runs = runs.clone();
    get(move || {
        let (runs, f) = (runs.clone(), f.clone());
        async move { f(runs.hit()).await.into_response() }
    })
}

/// A counted handler: 200 `good` with `headers` on its first run, `status` `down` on every later one.
pub fn good_then_failing(runs: &Runs, headers: &'static [(&'static str, &'static str)], status: u16) -> MethodRouter {
    counted(runs, move |n| if n == 1 { response(200, headers, "good") } else { response(status, &[], "down") })
}

pub struct Server {
    pub addr: SocketAddr,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

pub async fn serve(app: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { addr, client: Client::builder(TokioExecutor::new()).build_http() }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("<none>")
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }
}

impl Server {
    pub fn uri(&self, path: &str) -> Uri {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::builder().method(method).uri(self.uri(path));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let res = self.client.request(req.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
        let (head, body) = res.into_parts();
        Reply { status: head.status, headers: head.headers, body: body.collect().await.unwrap().to_bytes() }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[]).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers).await
    }

    /// Sends `n` GETs of `path` at once; their replies.
    pub async fn get_concurrently(&self, path: &str, n: usize) -> Vec<Reply> {
        futures::future::join_all((0..n).map(|_| self.get(path))).await
    }

    /// GETs `path` until it is no longer `STALE` (10 s at most), checking each stale body; that reply.
    pub async fn get_until_refreshed(&self, path: &str, stale_body: &str) -> Reply {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(path).await;
            if r.x_cache() != "STALE" || tokio::time::Instant::now() > deadline {
                break r;
            }
            assert_eq!(r.text(), stale_body);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn layer(rt: &Runtime) -> CacheLayer {
    CacheLayer::new().runtime(rt.clone()).max_age(Duration::from_secs(60))
}

pub fn response(status: u16, headers: &[(&'static str, &'static str)], body: impl Into<Body>) -> Response {
    let mut res = Response::new(body.into());
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    for (n, v) in headers {
        res.headers_mut().append(*n, HeaderValue::from_static(v));
    }
    res
}

impl Server {
    /// Sends `head` (a request head as written on the wire, without its final blank line;
    /// `Connection: close` is added) and reads the whole reply: for requests a client
    /// library will not write (an absolute-form target, a `Host` that is not UTF-8).
    pub async fn raw(&self, head: &[u8]) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(head).await.unwrap();
        stream.write_all(b"\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a reply head");
        let head = std::str::from_utf8(&bytes[..split]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse::<u16>().unwrap();
        let mut headers = HeaderMap::new();
        for line in lines {
            let (n, v) = line.split_once(':').unwrap();
            headers.append(
                axum::http::HeaderName::from_bytes(n.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(v.trim()).unwrap(),
            );
        }
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: Bytes::copy_from_slice(&bytes[split + 4..]),
        }
    }
}
