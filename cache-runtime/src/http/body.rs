//! The response body of the layer, and reading a handler's body up to `max_body`.

use super::reason::NotCacheable;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response through the layer: a replayed body from the cache, or the
    /// handler's own body passed through untouched (behind whatever part of it was read
    /// while deciding whether to store it).
    pub struct CacheBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        Full { data: Option<Bytes> },
        Handler { #[pin] body: B },
        Tee { #[pin] body: B, copy: Option<Copy> },
        Resumed { read: VecDeque<Frame<Bytes>>, failed: Option<B::Error>, rest: Pin<Box<B>> },
    }
}

/// What a tee keeps of a body of unknown length as it passes: its bytes so far (no more
/// than `max`), and what to do with the whole body once it has passed complete.
pub(crate) struct Copy {
    buf: BytesMut,
    max: usize,
    done: Box<dyn FnOnce(Bytes) + Send>,
}

impl<B: Body> CacheBody<B> {
    /// The handler's body passed on untouched as it comes (never held back), copied as it
    /// passes; when it ends complete, without trailers and within `max` bytes, `done` gets
    /// the copy. Past `max`, on an error or when dropped early, the copy is abandoned.
    pub(crate) fn tee(self, max: usize, done: Box<dyn FnOnce(Bytes) + Send>) -> Self {
        match self.kind {
            Kind::Handler { body } => {
                CacheBody { kind: Kind::Tee { body, copy: Some(Copy { buf: BytesMut::new(), max, done }) } }
            }
            kind => CacheBody { kind },
        }
    }

    /// A complete body.
    /// Whether the body is being copied for the cache as it streams.
    pub(crate) fn is_copied(&self) -> bool {
        matches!(self.kind, Kind::Tee { .. })
    }

    pub(crate) fn full(data: Bytes) -> Self {
        CacheBody { kind: Kind::Full { data: (!data.is_empty()).then_some(data) } }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        CacheBody { kind: Kind::Full { data: None } }
    }

    /// The handler's body, untouched.
    pub(crate) fn handler(body: B) -> Self {
        CacheBody { kind: Kind::Handler { body } }
    }

    /// The frames already read from the handler's body, then its failure if it failed,
    /// then the rest of it.
    fn resumed(read: VecDeque<Frame<Bytes>>, failed: Option<B::Error>, rest: Pin<Box<B>>) -> Self {
        CacheBody { kind: Kind::Resumed { read, failed, rest } }
    }
}

impl<B> std::fmt::Debug for CacheBody<B>
where
    B: Body,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Full { .. } => "cached",
            Kind::Handler { .. } => "handler",
            Kind::Tee { .. } => "handler (copied)",
            Kind::Resumed { .. } => "handler (resumed)",
        };
        f.debug_tuple("CacheBody").field(&kind).finish()
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Handler { body } => body.poll_frame(cx),
            KindProj::Tee { body, copy } => {
                let polled = body.poll_frame(cx);
                match &polled {
                    Poll::Pending => {}
                    Poll::Ready(Some(Ok(frame))) => match (frame.data_ref(), copy.as_mut()) {
                        (Some(data), Some(c)) if c.buf.len() + data.len() <= c.max => c.buf.extend_from_slice(data),
                        _ => *copy = None,
                    },
                    Poll::Ready(Some(Err(_))) => *copy = None,
                    Poll::Ready(None) => {
                        if let Some(c) = copy.take() {
                            (c.done)(c.buf.freeze());
                        }
                    }
                }
                polled
            }
            KindProj::Resumed { read, failed, rest } => {
                if let Some(frame) = read.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(e) = failed.take() {
                    return Poll::Ready(Some(Err(e)));
                }
                rest.as_mut().poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Handler { body } | Kind::Tee { body, .. } => body.is_end_stream(),
            Kind::Resumed { read, failed, rest } => read.is_empty() && failed.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Handler { body } | Kind::Tee { body, .. } => body.size_hint(),
            Kind::Resumed { read, failed, rest } => {
                let buffered: u64 = read.iter().filter_map(|f| f.data_ref()).map(|d| d.len() as u64).sum();
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(buffered));
                if failed.is_none()
                    && let Some(upper) = rest.upper()
                {
                    hint.set_upper(upper.saturating_add(buffered));
                }
                hint
            }
        }
    }
}

/// A handler's body, read.
pub(crate) enum Read<B: Body> {
    /// Complete, at most `max_body` bytes, without trailers: it can be stored.
    Complete(Bytes),
    /// Not storable: the body to pass on (nothing lost), and why.
    PassOn(CacheBody<B>, NotRead),
}

/// Why a body was not read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotRead {
    /// Of unknown length (a stream), or known to be longer than `max_body`: not read at all.
    Unbounded,
    /// Longer than `max_body` after all.
    TooLong,
    /// It has trailers.
    Trailers,
    /// Reading it failed (the error is replayed to whoever reads the body passed on).
    Failed,
}

impl NotRead {
    pub fn reason(self) -> NotCacheable {
        match self {
            NotRead::Unbounded => NotCacheable::BodyUnbounded,
            NotRead::TooLong => NotCacheable::BodyTooLong,
            NotRead::Trailers => NotCacheable::BodyTrailers,
            NotRead::Failed => NotCacheable::BodyFailed,
        }
    }
}

/// Reads `body` if it can be stored: its length is known (a body of unknown length is a
/// stream and is never buffered) and at most `max_body`. Reads no further than `max_body`
/// bytes either way.
pub(crate) async fn read<B>(body: B, max_body: usize) -> Read<B>
where
    B: Body<Data = Bytes>,
{
    let hint = body.size_hint();
    match hint.exact() {
        Some(len) if len <= max_body as u64 => {}
        _ => return Read::PassOn(CacheBody::handler(body), NotRead::Unbounded),
    }
    let mut body = Box::pin(body);
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut len = 0usize;
    loop {
        match poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            None => break,
            Some(Ok(frame)) => {
                let Some(data) = frame.data_ref() else {
                    // Trailers are not stored: pass the response on as it is.
                    frames.push_back(frame);
                    return Read::PassOn(CacheBody::resumed(frames, None, body), NotRead::Trailers);
                };
                len += data.len();
                frames.push_back(frame);
                if len > max_body {
                    return Read::PassOn(CacheBody::resumed(frames, None, body), NotRead::TooLong);
                }
            }
            Some(Err(e)) => {
                return Read::PassOn(CacheBody::resumed(frames, Some(e), body), NotRead::Failed);
            }
        }
    }
    let data = match frames.len() {
        0 => Bytes::new(),
        1 => frames.pop_front().and_then(|f| f.into_data().ok()).unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(len);
            for f in frames {
                if let Ok(d) = f.into_data() {
                    all.extend_from_slice(&d);
                }
            }
            all.freeze()
        }
    };
    Read::Complete(data)
}
