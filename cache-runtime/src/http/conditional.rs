//! Conditional requests (RFC 9110 §13): `If-None-Match` and `If-Modified-Since` answered
//! with `304 Not Modified` from a stored response.

use std::time::UNIX_EPOCH;

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, StatusCode};

/// The preconditions of a request that a stored response can answer.
#[derive(Debug, Default)]
pub(crate) struct Conditional {
    if_none_match: Vec<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
}

impl Conditional {
    /// Reads the preconditions and removes them from `headers`, so that the handler
    /// produces a complete response to store.
    pub fn take(headers: &mut HeaderMap) -> Conditional {
        let c = Conditional::read(headers);
        if !c.if_none_match.is_empty() {
            headers.remove(IF_NONE_MATCH);
        }
        if c.if_modified_since.is_some() {
            headers.remove(IF_MODIFIED_SINCE);
        }
        c
    }

    /// Reads the preconditions.
    pub fn read(headers: &HeaderMap) -> Conditional {
        let mut ims = headers.get_all(IF_MODIFIED_SINCE).iter();
        // A field with more than one member is ignored (RFC 9110 §13.1.3).
        let if_modified_since = match (ims.next(), ims.next()) {
            (Some(v), None) => Some(v.clone()),
            _ => None,
        };
        Conditional { if_none_match: headers.get_all(IF_NONE_MATCH).iter().cloned().collect(), if_modified_since }
    }

    /// Whether a `GET`/`HEAD` answered by a stored response of `status`, `etag` and last
    /// modification time `last_modified` (s since the epoch) gets `304 Not Modified`.
    ///
    /// RFC 9110 §13.2.2: preconditions apply only to a 2xx response; `If-None-Match` is
    /// evaluated first (weak comparison, `*` matching any current representation) and,
    /// when present, `If-Modified-Since` is ignored.
    pub fn not_modified(&self, status: StatusCode, etag: Option<&HeaderValue>, last_modified: u64) -> bool {
        if !status.is_success() {
            return false;
        }
        if !self.if_none_match.is_empty() {
            let current = etag.and_then(|e| entity_tag(e.as_bytes())).map(|(tag, _)| tag);
            return self.if_none_match.iter().any(|list| matches_any(list.as_bytes(), current));
        }
        let Some(since) = self.if_modified_since.as_ref().and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Ok(since) = httpdate::parse_http_date(since) else {
            return false;
        };
        let since = since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        last_modified <= since
    }
}

/// Whether the `If-None-Match` list `list` has `*` or an entity tag whose opaque tag equals
/// `current` (weak comparison: `W/` is ignored on both sides).
fn matches_any(list: &[u8], current: Option<&[u8]>) -> bool {
    let mut rest = list;
    loop {
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return false;
        }
        if rest[0] == b'*' {
            return true;
        }
        let Some((tag, len)) = entity_tag(rest) else {
            return false;
        };
        if current == Some(tag) {
            return true;
        }
        rest = &rest[len..];
    }
}

/// Parses `[W/]"opaque"` at the start of `s`: the opaque tag (with its quotes) and the
/// length read.
fn entity_tag(s: &[u8]) -> Option<(&[u8], usize)> {
    let start = if s.starts_with(b"W/") { 2 } else { 0 };
    if s.get(start) != Some(&b'"') {
        return None;
    }
    let end = s[start + 1..].iter().position(|&b| b == b'"')? + start + 1;
    Some((&s[start..=end], end + 1))
}

/// Whether `value` is a well-formed entity tag.
pub(crate) fn is_entity_tag(value: &HeaderValue) -> bool {
    entity_tag(value.as_bytes()).is_some_and(|(_, len)| len == value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(values: &[&str]) -> Conditional {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        Conditional::read(&h)
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison_and_reads_lists() {
        let strong = HeaderValue::from_static("\"abc\"");
        let weak = HeaderValue::from_static("W/\"abc\"");
        let ok = StatusCode::OK;
        assert!(inm(&["\"abc\""]).not_modified(ok, Some(&strong), 0));
        assert!(inm(&["W/\"abc\""]).not_modified(ok, Some(&strong), 0));
        assert!(inm(&["\"abc\""]).not_modified(ok, Some(&weak), 0));
        assert!(inm(&["\"x\", W/\"abc\""]).not_modified(ok, Some(&weak), 0));
        assert!(inm(&["\"x\"", "\"abc\""]).not_modified(ok, Some(&weak), 0));
        assert!(!inm(&["\"x\",\"y\""]).not_modified(ok, Some(&weak), 0));
        assert!(inm(&["*"]).not_modified(ok, None, 0));
        assert!(!inm(&["\"abc\""]).not_modified(ok, None, 0));
        assert!(!inm(&["\"abc\""]).not_modified(StatusCode::MOVED_PERMANENTLY, Some(&strong), 0));
        assert!(inm(&["\"a,b\", \"abc\""]).not_modified(ok, Some(&strong), 0), "commas inside a tag");
    }

    #[test]
    fn if_modified_since_compares_seconds_and_yields_to_if_none_match() {
        let mut h = HeaderMap::new();
        h.insert(IF_MODIFIED_SINCE, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        let t = 784111777;
        let c = Conditional::read(&h);
        assert!(c.not_modified(StatusCode::OK, None, t));
        assert!(c.not_modified(StatusCode::OK, None, t - 1));
        assert!(!c.not_modified(StatusCode::OK, None, t + 1));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"nope\""));
        assert!(!Conditional::read(&h).not_modified(StatusCode::OK, Some(&HeaderValue::from_static("\"x\"")), t));
        let mut bad = HeaderMap::new();
        bad.insert(IF_MODIFIED_SINCE, HeaderValue::from_static("yesterday"));
        assert!(!Conditional::read(&bad).not_modified(StatusCode::OK, None, 0));
    }
}
