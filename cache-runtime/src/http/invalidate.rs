//! Invalidation by unsafe requests (RFC 9111 §4.4): a request whose method is not `GET`,
//! `HEAD`, `OPTIONS` or `TRACE` (an unknown one like `M-SEARCH` included), answered 2xx or
//! 3xx, invalidates its target URI and the URIs in the response's `Location` and
//! `Content-Location` when they have the request's origin (another origin's entries are
//! never touched: that would let one site purge another's). Entries are found by path, every
//! host, method and variant of it.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Uri};

use super::key;

/// What an unsafe request targets: its authority (if it has one the key trusts) and path.
pub(crate) struct Target {
    authority: Option<String>,
    path: String,
}

impl Target {
    pub fn of<B>(req: &Request<B>) -> Target {
        let (parts, ()) = {
            let mut head = Request::new(());
            *head.uri_mut() = req.uri().clone();
            if let Some(host) = req.headers().get(header::HOST) {
                head.headers_mut().insert(header::HOST, host.clone());
            }
            head.into_parts()
        };
        Target { authority: key::authority(&parts).map(str::to_ascii_lowercase), path: parts.uri.path().to_owned() }
    }

    /// The paths whose entries the response invalidates: the target's, and the
    /// same-origin `Location` and `Content-Location`.
    pub fn paths(&self, headers: &HeaderMap) -> Vec<String> {
        let mut paths = vec![self.path.clone()];
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            for value in headers.get_all(name) {
                if let Some(path) = self.same_origin(value)
                    && !paths.contains(&path)
                {
                    paths.push(path);
                }
            }
        }
        paths
    }

    /// The path of a URI reference (RFC 3986 §5) resolved against the target, if it has the
    /// target's origin.
    fn same_origin(&self, value: &HeaderValue) -> Option<String> {
        let text = value.to_str().ok()?.trim();
        let text = text.split('#').next()?;
        if text.starts_with("//") || text.contains("://") {
            let uri: Uri =
                if text.starts_with("//") { format!("http:{text}").parse().ok()? } else { text.parse().ok()? };
            if !matches!(uri.scheme_str(), Some("http" | "https")) {
                return None;
            }
            let authority = uri.authority()?.as_str().to_ascii_lowercase();
            return (self.authority.as_deref() == Some(authority.as_str())).then(|| normalised(uri.path()));
        }
        let path = text.split('?').next()?;
        if path.starts_with('/') {
            return Some(normalised(path));
        }
        if path.is_empty() || path.contains(':') {
            return None;
        }
        let base = self.path.rsplit_once('/').map_or("", |(dir, _)| dir);
        Some(normalised(&format!("{base}/{path}")))
    }
}

/// A path without `.` and `..` segments (RFC 3986 §5.2.4).
fn normalised(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, s) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *s {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(uri: &str, host: &str, location: &str) -> Vec<String> {
        let req = Request::post(uri).header("host", host).body(()).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
        Target::of(&req).paths(&h)
    }

    #[test]
    fn same_origin_locations_resolve_and_other_origins_are_left_alone() {
        assert_eq!(paths("/a/b", "h.test", "/c?x=1"), ["/a/b", "/c"]);
        assert_eq!(paths("/a/b", "h.test", "d"), ["/a/b", "/a/d"]);
        assert_eq!(paths("/a/b", "h.test", "../e/./f"), ["/a/b", "/e/f"]);
        assert_eq!(paths("/a/b", "h.test", "http://H.test/g"), ["/a/b", "/g"]);
        assert_eq!(paths("/a/b", "h.test", "//h.test/g"), ["/a/b", "/g"]);
        assert_eq!(paths("/a/b", "h.test", "https://other.test/g"), ["/a/b"]);
        assert_eq!(paths("/a/b", "h.test", "mailto:x@h.test"), ["/a/b"]);
        assert_eq!(paths("http://h.test/a", "evil.test", "http://evil.test/x"), ["/a"]);
    }
}
