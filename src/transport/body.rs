//! Bodies: a size- and idle-limited wrapper for inbound request bodies, and the outbound
//! request body streamed from memory or from a file.
//!
//! Neither collects: the gateway spools message bodies of up to a gigabyte to disk, so bodies
//! flow frame by frame and the limits are enforced as the bytes pass.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::BoxError;

/// Limits a handler applies to an inbound request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest accepted body in bytes (counted on the wire-decoded body, i.e. after chunked
    /// decoding).
    pub max_bytes: u64,
    /// Longest wait for the next body frame. A header read timeout alone does not stop a
    /// client that trickles a large body byte by byte (slowloris on the body).
    pub idle_timeout: Option<Duration>,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_bytes: 1 << 30,
            idle_timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// Why reading a limited inbound body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("no request body data for {after:?}")]
    IdleTimeout { after: Duration },
    #[error("reading the request body failed: {0}")]
    Read(#[source] BoxError),
}

impl BodyError {
    /// The HTTP status a handler should answer with (if it can still answer).
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::IdleTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A body wrapper that fails with [`BodyError::TooLarge`] as soon as more than `max_bytes`
/// have passed, and with [`BodyError::IdleTimeout`] when no frame arrives in time.
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    seen: u64,
    limits: BodyLimits,
    idle: Option<Pin<Box<Sleep>>>,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`. Must be called inside a tokio runtime when an idle timeout is set.
    pub fn new(inner: B, limits: BodyLimits) -> Self {
        let idle = limits.idle_timeout.map(|d| Box::pin(tokio::time::sleep(d)));
        LimitedBody {
            inner,
            seen: 0,
            limits,
            idle,
        }
    }

    /// Bytes of body data seen so far.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }
}

/// Wraps a request's body in a [`LimitedBody`], refusing at once when the declared
/// `Content-Length` already exceeds the limit (no byte of the body is read then).
pub fn limit_request<B>(
    req: http::Request<B>,
    limits: BodyLimits,
) -> Result<http::Request<LimitedBody<B>>, BodyError> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared {
        if len > limits.max_bytes {
            return Err(BodyError::TooLarge {
                limit: limits.max_bytes,
            });
        }
    }
    Ok(req.map(|b| LimitedBody::new(b, limits)))
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.seen > this.limits.max_bytes {
                        return Poll::Ready(Some(Err(BodyError::TooLarge {
                            limit: this.limits.max_bytes,
                        })));
                    }
                }
                if let (Some(sleep), Some(d)) = (this.idle.as_mut(), this.limits.idle_timeout) {
                    sleep.as_mut().reset(Instant::now() + d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Read(e.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if let (Some(sleep), Some(d)) = (this.idle.as_mut(), this.limits.idle_timeout) {
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(Err(BodyError::IdleTimeout { after: d })));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let max = self.limits.max_bytes.saturating_sub(self.seen);
        if hint.lower() > max {
            // Will fail when read; report what we will let through.
            return SizeHint::with_exact(max);
        }
        match hint.upper() {
            Some(u) if u <= max => {}
            _ => hint.set_upper(max),
        }
        hint
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound

/// Size of the chunks read from a file body.
const FILE_CHUNK: usize = 64 * 1024;

enum Source {
    Bytes(Option<Bytes>),
    File {
        file: tokio::fs::File,
        remaining: u64,
        buf: BytesMut,
    },
}

/// A failure producing the outbound body (the local file could not be read). Never the
/// partner's fault; the request was aborted before it was complete.
#[derive(Debug, thiserror::Error)]
#[error("reading the outbound body: {0}")]
pub struct OutboundBodyError(#[source] pub io::Error);

/// The body of an outbound POST: bytes in memory or a file streamed in 64 KiB chunks (the
/// spooled wire message; never loaded whole). The length is known up front, so the request
/// carries a `Content-Length` rather than chunked encoding.
pub struct OutboundBody {
    source: Source,
    len: u64,
    sent: u64,
    progress: Option<watch::Sender<u64>>,
}

impl std::fmt::Debug for OutboundBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundBody")
            .field("len", &self.len)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl OutboundBody {
    /// A body from memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let b: Bytes = bytes.into();
        OutboundBody {
            len: b.len() as u64,
            source: Source::Bytes(Some(b)),
            sent: 0,
            progress: None,
        }
    }

    /// A body streamed from a file; its length is taken when opening.
    pub async fn from_file(path: &Path) -> io::Result<Self> {
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        Ok(OutboundBody {
            source: Source::File {
                file,
                remaining: len,
                buf: BytesMut::new(),
            },
            len,
            sent: 0,
            progress: None,
        })
    }

    /// Length in bytes (the `Content-Length`).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reports the number of bytes handed to the connection so far, so the client can tell
    /// "upload stalled" from "waiting for the response".
    pub(crate) fn watch_progress(&mut self) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(self.sent);
        self.progress = Some(tx);
        rx
    }

    fn advance(&mut self, n: usize) {
        self.sent = self.sent.saturating_add(n as u64);
        if let Some(tx) = &self.progress {
            tx.send_replace(self.sent);
        }
    }
}

impl Body for OutboundBody {
    type Data = Bytes;
    type Error = OutboundBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OutboundBodyError>>> {
        let this = self.get_mut();
        let chunk = match &mut this.source {
            Source::Bytes(b) => match b.take() {
                Some(b) if !b.is_empty() => b,
                _ => return Poll::Ready(None),
            },
            Source::File {
                file,
                remaining,
                buf,
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = usize::try_from(*remaining)
                    .unwrap_or(FILE_CHUNK)
                    .min(FILE_CHUNK);
                buf.resize(want, 0);
                let mut rb = ReadBuf::new(&mut buf[..]);
                if let Err(e) = ready!(Pin::new(file).poll_read(cx, &mut rb)) {
                    return Poll::Ready(Some(Err(OutboundBodyError(e))));
                }
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(OutboundBodyError(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than when it was opened",
                    )))));
                }
                buf.truncate(n);
                *remaining -= n as u64;
                buf.split().freeze()
            }
        };
        this.advance(chunk.len());
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len.saturating_sub(self.sent))
    }
}
