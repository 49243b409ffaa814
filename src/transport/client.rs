//! The HTTPS client that POSTs AS4 messages to partners.
//!
//! Built on hyper-util's pooled (legacy) client with our own connector over tokio-rustls
//! rather than reqwest: the connector returns typed errors (refused / resolve / TLS /
//! timeout), which is what the MSH needs to decide on EBMS:0005 and on retries; the pool is
//! tunable per partner; no proxy is picked up from the environment; and no second HTTP stack
//! is compiled. One POST per AS4 message, the signal comes back in the response (digest §2.2).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::body::{OutboundBody, OutboundBodyError};

/// Client timeouts and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Name resolution + TCP connect + TLS handshake.
    pub connect_timeout: Duration,
    /// Longest time without upload progress (the partner stopped reading). A total timeout
    /// would have to grow with the message size; a stall timeout does not.
    pub upload_stall_timeout: Duration,
    /// From the end of the upload to the complete response (status, headers, body): the
    /// partner's processing time for the signal.
    pub response_timeout: Duration,
    /// Largest accepted response body. AS4 signals (receipt, error) are small.
    pub max_response_bytes: usize,
    /// Concurrent requests per partner (`host:port`) at most; more wait their turn.
    pub max_concurrent_per_partner: usize,
    /// Idle keep-alive connections are closed after this.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per partner.
    pub pool_max_idle_per_partner: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(15),
            upload_stall_timeout: Duration::from_secs(60),
            response_timeout: Duration::from_secs(120),
            max_response_bytes: 4 * 1024 * 1024,
            max_concurrent_per_partner: 4,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_partner: 4,
        }
    }
}

/// Where in the exchange a timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutStage {
    /// Resolve, TCP connect or TLS handshake: nothing was sent.
    Connect,
    /// The partner stopped reading the request.
    Upload,
    /// The request was sent; no (complete) response in time.
    Response,
}

/// The error classes the MSH maps to EBMS codes and retry decisions (see
/// `docs/transport.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Our configuration (bad URL, unsupported scheme): no retry will help.
    Config,
    /// Reading the local body file failed.
    LocalIo,
    /// Name resolution failed.
    Resolve,
    /// The partner's host refused the TCP connection.
    ConnectionRefused,
    /// Other TCP connect failures (unreachable, reset).
    Connect,
    /// TLS handshake or record failure (untrusted certificate, no common version/suite,
    /// client certificate refused).
    Tls,
    Timeout,
    /// The connection broke or the partner spoke broken HTTP during the exchange.
    Protocol,
    /// The response was larger than allowed.
    ResponseTooLarge,
    /// A complete response with a non-success status (only from
    /// [`TransportResponse::error_for_status`]).
    HttpStatus,
}

/// A failed exchange. Each variant says whether the partner may have received the request
/// ([`TransportError::may_have_been_delivered`]) so the MSH can tell a safe resend from one
/// that relies on the partner's duplicate detection.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid endpoint URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid request header: {0}")]
    InvalidHeader(String),
    #[error("reading the request body: {0}")]
    Body(#[source] io::Error),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("connection to {partner} refused")]
    ConnectionRefused { partner: String },
    #[error("cannot connect to {partner}: {source}")]
    Connect {
        partner: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS failure with {partner} ({}): {detail}", if *.after_handshake { "after handshake" } else { "handshake" })]
    Tls {
        partner: String,
        /// The rustls error when there is one (not for a peer that just closed).
        rustls: Option<rustls::Error>,
        detail: String,
        /// True when the failure came after a completed handshake (e.g. TLS 1.3, where
        /// the server rejects a missing client certificate after the client finished).
        after_handshake: bool,
    },
    #[error("{partner}: timed out ({stage:?}) after {after:?}")]
    Timeout {
        partner: String,
        stage: TimeoutStage,
        after: Duration,
    },
    #[error("HTTP exchange with {partner} failed: {source}")]
    Protocol {
        partner: String,
        #[source]
        source: super::BoxError,
    },
    #[error("response from {partner} larger than {limit} bytes")]
    ResponseTooLarge { partner: String, limit: usize },
    #[error("{partner} answered HTTP {status}")]
    HttpStatus {
        partner: String,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

impl TransportError {
    /// The class of the error.
    pub fn class(&self) -> ErrorClass {
        match self {
            TransportError::InvalidUrl { .. } | TransportError::InvalidHeader(_) => {
                ErrorClass::Config
            }
            TransportError::Body(_) => ErrorClass::LocalIo,
            TransportError::Resolve { .. } => ErrorClass::Resolve,
            TransportError::ConnectionRefused { .. } => ErrorClass::ConnectionRefused,
            TransportError::Connect { .. } => ErrorClass::Connect,
            TransportError::Tls { .. } => ErrorClass::Tls,
            TransportError::Timeout { .. } => ErrorClass::Timeout,
            TransportError::Protocol { .. } => ErrorClass::Protocol,
            TransportError::ResponseTooLarge { .. } => ErrorClass::ResponseTooLarge,
            TransportError::HttpStatus { .. } => ErrorClass::HttpStatus,
        }
    }

    /// Whether the partner may have received (and processed) the request. `false` means a
    /// resend cannot produce a duplicate; `true` means a resend relies on the partner's
    /// duplicate elimination (as AS4 reception awareness retries do anyway).
    pub fn may_have_been_delivered(&self) -> bool {
        match self {
            TransportError::InvalidUrl { .. }
            | TransportError::InvalidHeader(_)
            | TransportError::Resolve { .. }
            | TransportError::ConnectionRefused { .. }
            | TransportError::Connect { .. } => false,
            // The body was cut short: the partner never saw a complete message.
            TransportError::Body(_) => false,
            TransportError::Tls {
                after_handshake, ..
            } => *after_handshake,
            TransportError::Timeout { stage, .. } => *stage == TimeoutStage::Response,
            TransportError::Protocol { .. }
            | TransportError::ResponseTooLarge { .. }
            | TransportError::HttpStatus { .. } => true,
        }
    }

    /// Whether trying again later can plausibly succeed without anyone changing
    /// configuration: network trouble, timeouts, HTTP 408/429/5xx. TLS failures and 4xx are
    /// usually configuration mismatches; they are reported as not transient (the MSH may
    /// still retry per its P-Mode).
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Resolve { .. }
            | TransportError::ConnectionRefused { .. }
            | TransportError::Connect { .. }
            | TransportError::Timeout { .. }
            | TransportError::Protocol { .. } => true,
            TransportError::HttpStatus { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            TransportError::InvalidUrl { .. }
            | TransportError::InvalidHeader(_)
            | TransportError::Body(_)
            | TransportError::Tls { .. }
            | TransportError::ResponseTooLarge { .. } => false,
        }
    }
}

/// A complete response: status, headers and the (bounded) body.
#[derive(Debug, Clone)]
pub struct TransportResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `host:port` the request went to.
    pub partner: String,
}

impl TransportResponse {
    /// Turns a non-2xx response into [`TransportError::HttpStatus`] (keeping the body: an
    /// AS4 error signal often comes with HTTP 4xx/5xx and should still be read, digest §12).
    pub fn error_for_status(self) -> Result<TransportResponse, TransportError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(TransportError::HttpStatus {
                partner: self.partner,
                status: self.status,
                headers: self.headers,
                body: self.body,
            })
        }
    }

    /// The `Content-Type` header, if present and ASCII.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
    }
}

// ---------------------------------------------------------------------------------------------
// Connector

/// Errors of our connector; found again in hyper's error chain to classify failures.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("bad URI: {0}")]
    BadUri(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("connect: {0}")]
    Tcp(io::Error),
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
}

/// A TLS connection as hyper-util's pool wants it.
struct TlsConn(TlsStream<TcpStream>);

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[derive(Clone)]
struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
    opened: Arc<AtomicU64>,
}

/// Host without IPv6 brackets, port defaulting to 443.
fn host_port(uri: &Uri) -> Result<(String, u16), String> {
    let host = uri.host().ok_or_else(|| "no host".to_string())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host.to_string(), uri.port_u16().unwrap_or(443)))
}

impl TlsConnector {
    async fn connect(self, uri: Uri) -> Result<TokioIo<TlsConn>, ConnectError> {
        let (host, port) = host_port(&uri).map_err(ConnectError::BadUri)?;
        // SNI from the URL host; for an IP address rustls verifies the IP SAN and sends no SNI.
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| ConnectError::BadUri(format!("{host}: {e}")))?;
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|source| ConnectError::Resolve {
                host: host.clone(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or(ConnectError::Tcp(last))?;
        let _ = tcp.set_nodelay(true);
        self.opened.fetch_add(1, Ordering::Relaxed);
        let tls = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(ConnectError::Tls)?;
        Ok(TokioIo::new(TlsConn(tls)))
    }
}

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsConn>;
    type Error = ConnectError;
    type Future =
        Pin<Box<dyn Future<Output = Result<TokioIo<TlsConn>, ConnectError>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, this.connect(uri))
                .await
                .map_err(|_| ConnectError::Timeout(timeout))?
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Client

/// The pooled HTTPS client for one TLS configuration (trust anchors + optional client
/// certificate). Cheap to share (`Arc`); create one per distinct partner TLS setting.
pub struct HttpsClient {
    inner: Client<TlsConnector, OutboundBody>,
    settings: ClientSettings,
    partners: Mutex<HashMap<String, Arc<Semaphore>>>,
    opened: Arc<AtomicU64>,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("settings", &self.settings)
            .field("connections_opened", &self.connections_opened())
            .finish_non_exhaustive()
    }
}

fn invalid_url(url: &str, reason: impl Into<String>) -> TransportError {
    TransportError::InvalidUrl {
        url: url.to_string(),
        reason: reason.into(),
    }
}

impl HttpsClient {
    /// A client using `tls` (from [`ClientTls::build`](super::tls::ClientTls::build)).
    pub fn new(tls: Arc<rustls::ClientConfig>, settings: ClientSettings) -> HttpsClient {
        let opened = Arc::new(AtomicU64::new(0));
        let connector = TlsConnector {
            tls: tokio_rustls::TlsConnector::from(tls),
            timeout: settings.connect_timeout,
            opened: opened.clone(),
        };
        let inner = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_partner)
            .http1_max_buf_size(64 * 1024)
            .build(connector);
        HttpsClient {
            inner,
            settings,
            partners: Mutex::new(HashMap::new()),
            opened,
        }
    }

    /// TCP connections opened so far (keep-alive reuse shows as fewer connections than
    /// requests).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn partner_slots(&self, partner: &str) -> Arc<Semaphore> {
        let mut map = match self.partners.lock() {
            Ok(m) => m,
            // A panic while holding the lock left the map intact; keep going.
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(partner.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.settings.max_concurrent_per_partner.max(1),
                ))
            })
            .clone()
    }

    /// POSTs `body` with `content_type` to the https `url` and returns the complete
    /// response, whatever its status (see [`TransportResponse::error_for_status`]).
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: OutboundBody,
    ) -> Result<TransportResponse, TransportError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .map_err(|e| TransportError::InvalidHeader(format!("Content-Type: {e}")))?,
        );
        self.post_with_headers(url, headers, body).await
    }

    /// Like [`post`](Self::post) with arbitrary headers (`Content-Type` among them; AS4 may
    /// add `SOAPAction`-like or `Content-Transfer-Encoding` headers).
    pub async fn post_with_headers(
        &self,
        url: &str,
        headers: HeaderMap,
        mut body: OutboundBody,
    ) -> Result<TransportResponse, TransportError> {
        let uri: Uri = url.parse().map_err(|e| invalid_url(url, format!("{e}")))?;
        if uri.scheme_str() != Some("https") {
            // AS4 exchanges MUST be TLS protected (digest §3.3).
            return Err(invalid_url(url, "only https is allowed"));
        }
        let (host, port) = host_port(&uri).map_err(|r| invalid_url(url, r))?;
        let partner = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let slots = self.partner_slots(&partner);
        let _permit = slots
            .acquire_owned()
            .await
            .map_err(|e| TransportError::InvalidHeader(format!("semaphore closed: {e}")))?;

        let total = body.len();
        let mut progress = body.watch_progress();
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(body)
            .map_err(|e| invalid_url(url, e.to_string()))?;
        *req.headers_mut() = headers;
        req.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(total));
        if !req.headers().contains_key(USER_AGENT) {
            req.headers_mut().insert(
                USER_AGENT,
                HeaderValue::from_static(concat!("as4gw/", env!("CARGO_PKG_VERSION"))),
            );
        }

        let s = &self.settings;
        let fut = self.inner.request(req);
        tokio::pin!(fut);
        // Phase 1: while uploading, only a stall ends the wait. Phase 2: once the body has
        // been handed over (or dropped by hyper), the response timeout runs.
        let mut response_deadline: Option<Instant> = None;
        let response = loop {
            if response_deadline.is_none() && *progress.borrow() >= total {
                response_deadline = Some(Instant::now() + s.response_timeout);
            }
            if let Some(deadline) = response_deadline {
                match tokio::time::timeout_at(deadline, &mut fut).await {
                    Ok(r) => break r,
                    Err(_) => {
                        return Err(TransportError::Timeout {
                            partner,
                            stage: TimeoutStage::Response,
                            after: s.response_timeout,
                        })
                    }
                }
            }
            tokio::select! {
                r = &mut fut => break r,
                changed = progress.changed() => {
                    if changed.is_err() {
                        // Body dropped (sent, or the connection failed): wait for the outcome.
                        response_deadline = Some(Instant::now() + s.response_timeout);
                    }
                }
                () = tokio::time::sleep(s.upload_stall_timeout) => {
                    let stage = if self.opened.load(Ordering::Relaxed) == 0 && *progress.borrow() == 0 {
                        TimeoutStage::Connect
                    } else {
                        TimeoutStage::Upload
                    };
                    return Err(TransportError::Timeout { partner, stage, after: s.upload_stall_timeout });
                }
            }
        };
        let response = response.map_err(|e| classify(&e, &partner))?;
        let (parts, incoming) = response.into_parts();
        let deadline = response_deadline.unwrap_or_else(|| Instant::now() + s.response_timeout);
        let collected = tokio::time::timeout_at(
            deadline,
            Limited::new(incoming, s.max_response_bytes).collect(),
        )
        .await
        .map_err(|_| TransportError::Timeout {
            partner: partner.clone(),
            stage: TimeoutStage::Response,
            after: s.response_timeout,
        })?;
        let body = match collected {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return Err(TransportError::ResponseTooLarge {
                        partner,
                        limit: s.max_response_bytes,
                    });
                }
                return Err(classify_dyn(e.as_ref(), &partner, true)
                    .unwrap_or(TransportError::Protocol { partner, source: e }));
            }
        };
        Ok(TransportResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            partner,
        })
    }
}

fn copy_io(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

fn tls_error(partner: &str, io: &io::Error, after_handshake: bool) -> TransportError {
    let rustls = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    TransportError::Tls {
        partner: partner.to_string(),
        detail: match &rustls {
            Some(r) => r.to_string(),
            None => io.to_string(),
        },
        rustls,
        after_handshake,
    }
}

/// Finds our connector's error or a TLS error in an error chain.
fn classify_dyn(
    err: &(dyn StdError + 'static),
    partner: &str,
    after_handshake: bool,
) -> Option<TransportError> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<ConnectError>() {
            return Some(match c {
                ConnectError::BadUri(r) => TransportError::InvalidUrl {
                    url: partner.to_string(),
                    reason: r.clone(),
                },
                ConnectError::Resolve { host, source } => TransportError::Resolve {
                    host: host.clone(),
                    source: copy_io(source),
                },
                ConnectError::Tcp(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
                    TransportError::ConnectionRefused {
                        partner: partner.to_string(),
                    }
                }
                ConnectError::Tcp(io) => TransportError::Connect {
                    partner: partner.to_string(),
                    source: copy_io(io),
                },
                ConnectError::Tls(io) => tls_error(partner, io, false),
                ConnectError::Timeout(after) => TransportError::Timeout {
                    partner: partner.to_string(),
                    stage: TimeoutStage::Connect,
                    after: *after,
                },
            });
        }
        if let Some(b) = e.downcast_ref::<OutboundBodyError>() {
            return Some(TransportError::Body(copy_io(&b.0)));
        }
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(TransportError::Tls {
                partner: partner.to_string(),
                rustls: Some(r.clone()),
                detail: r.to_string(),
                after_handshake,
            });
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io
                .get_ref()
                .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
            {
                return Some(tls_error(partner, io, after_handshake));
            }
        }
        cur = e.source();
    }
    None
}

fn classify(err: &hyper_util::client::legacy::Error, partner: &str) -> TransportError {
    classify_dyn(err, partner, true).unwrap_or_else(|| TransportError::Protocol {
        partner: partner.to_string(),
        source: err.to_string().into(),
    })
}
