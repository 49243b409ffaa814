//! The HTTPS client that POSTs AS4 messages to partners.
//!
//! Built on hyper's connection-level HTTP/1.1 client with our own connector (tokio-rustls)
//! and our own per-partner pool, rather than reqwest or hyper-util's legacy client:
//! * the connect step returns typed errors (resolve / refused / TLS / timeout) instead of
//!   errors to dig out of a boxed chain — what the MSH needs for EBMS:0005 and retries;
//! * the pool and the concurrency limit are one per-partner structure: a connection goes back
//!   to the pool synchronously when its exchange is complete, so back-to-back messages reuse
//!   it deterministically (the legacy pool returns it from a background task, which races);
//! * no proxy is picked up from the environment, and no second HTTP stack is compiled.
//!
//! One POST per AS4 message; the signal comes back in the response (digest §2.2).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
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
    /// Idle keep-alive connections older than this are not reused (servers usually close
    /// theirs sooner).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per partner (at most `max_concurrent_per_partner` are ever
    /// open at once anyway).
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
    #[error("TLS failure with {partner} ({}): {detail}", if *.request_sent { "request sent" } else { "request not sent" })]
    Tls {
        partner: String,
        /// The rustls error when there is one (not for a peer that just closed).
        rustls: Option<rustls::Error>,
        detail: String,
        /// False when the request had not been written yet: a failed handshake, or (TLS 1.3)
        /// the server's rejection of the client certificate arriving right after the
        /// client finished its side of the handshake.
        request_sent: bool,
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
    #[error("{} answered HTTP {status}", .response.partner)]
    HttpStatus {
        status: StatusCode,
        /// The whole response: an error signal may be in its body.
        response: Box<TransportResponse>,
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
            TransportError::Tls { request_sent, .. } => *request_sent,
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
                status: self.status,
                response: Box::new(self),
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

/// Failures of the connect step (resolve, TCP, TLS handshake), typed from the start.
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

impl ConnectError {
    fn into_transport(self, partner: &str) -> TransportError {
        match self {
            ConnectError::BadUri(reason) => TransportError::InvalidUrl {
                url: partner.to_string(),
                reason,
            },
            ConnectError::Resolve { host, source } => TransportError::Resolve { host, source },
            ConnectError::Tcp(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
                TransportError::ConnectionRefused {
                    partner: partner.to_string(),
                }
            }
            ConnectError::Tcp(source) => TransportError::Connect {
                partner: partner.to_string(),
                source,
            },
            ConnectError::Tls(io) => tls_error(partner, &io, false),
            ConnectError::Timeout(after) => TransportError::Timeout {
                partner: partner.to_string(),
                stage: TimeoutStage::Connect,
                after,
            },
        }
    }
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

/// The TLS stream with a memory of its first TLS error. hyper may end a connection whose
/// read failed while it was idle without reporting that error anywhere (TLS 1.3: the server
/// rejects our client certificate after our side of the handshake finished, and its alert
/// arrives before the request is written), so the cause is kept here for classification.
struct RecordingIo {
    inner: TlsStream<TcpStream>,
    tls_error: Arc<Mutex<Option<rustls::Error>>>,
}

impl RecordingIo {
    fn record<T>(&self, r: &io::Result<T>) {
        if let Err(e) = r {
            if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                let mut slot = self.tls_error.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    *slot = Some(t.clone());
                }
            }
        }
    }
}

impl AsyncRead for RecordingIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        this.record(&r);
        Poll::Ready(r)
    }
}

impl AsyncWrite for RecordingIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.inner).poll_write(cx, buf));
        this.record(&r);
        Poll::Ready(r)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.inner).poll_flush(cx));
        this.record(&r);
        Poll::Ready(r)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs));
        this.record(&r);
        Poll::Ready(r)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

async fn connect_tls(
    tls: &tokio_rustls::TlsConnector,
    host: &str,
    port: u16,
    opened: &AtomicU64,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    // SNI from the URL host; for an IP address rustls checks the IP SAN and sends no SNI.
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|e| ConnectError::BadUri(format!("{host}: {e}")))?;
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ConnectError::Resolve {
            host: host.to_string(),
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
    opened.fetch_add(1, Ordering::Relaxed);
    let tls = tls
        .connect(server_name, tcp)
        .await
        .map_err(ConnectError::Tls)?;
    Ok(tls)
}

// ---------------------------------------------------------------------------------------------
// Client

/// A client connection: the request handle and the task driving the socket (its result
/// says why a connection died, e.g. the TLS alert of a server refusing our certificate).
struct Conn {
    sender: SendRequest<OutboundBody>,
    task: JoinHandle<Result<(), hyper::Error>>,
    tls_error: Arc<Mutex<Option<rustls::Error>>>,
}

impl Conn {
    /// Why the connection failed, once its task has ended (bounded wait: it is closing).
    async fn failure(self, partner: &str, request_sent: bool) -> Option<TransportError> {
        let Conn {
            sender,
            task,
            tls_error,
        } = self;
        drop(sender);
        let joined = tokio::time::timeout(Duration::from_secs(5), task).await;
        let recorded = tls_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(r) = recorded {
            return Some(TransportError::Tls {
                partner: partner.to_string(),
                detail: r.to_string(),
                rustls: Some(r),
                request_sent,
            });
        }
        match joined {
            Ok(Ok(Err(e))) => Some(classify_dyn(&e, partner, request_sent).unwrap_or(
                TransportError::Protocol {
                    partner: partner.to_string(),
                    source: Box::new(e),
                },
            )),
            _ => None,
        }
    }
}

/// An idle keep-alive connection.
struct Idle {
    conn: Conn,
    since: Instant,
}

/// Per partner (`host:port`): the concurrency limit and the idle connections.
struct Partner {
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
}

impl Partner {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding the lock leaves a plain Vec intact; keep going.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pooled HTTPS client for one TLS configuration (trust anchors + optional client
/// certificate). Share it (`Arc`); create one per distinct partner TLS setting.
pub struct HttpsClient {
    tls: tokio_rustls::TlsConnector,
    settings: ClientSettings,
    partners: Mutex<HashMap<String, Arc<Partner>>>,
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

/// What came of handing the request to a connection.
enum Outcome {
    Response(http::Response<Incoming>),
    /// The connection refused it before writing a byte; the request comes back.
    Unsent(Box<Request<OutboundBody>>),
    /// The exchange failed after (part of) the request was written.
    Failed(hyper::Error),
}

/// Classifies a failed exchange: from hyper's error, else from the connection task's error
/// (where, for example, a TLS alert ends up), else as a protocol failure.
async fn exchange_failure(conn: Conn, err: hyper::Error, partner: &str) -> TransportError {
    if let Some(t) = classify_dyn(&err, partner, true) {
        return t;
    }
    match conn.failure(partner, true).await {
        Some(t @ TransportError::Tls { .. }) | Some(t @ TransportError::Body(_)) => t,
        _ => TransportError::Protocol {
            partner: partner.to_string(),
            source: Box::new(err),
        },
    }
}

impl HttpsClient {
    /// A client using `tls` (from [`ClientTls::build`](super::tls::ClientTls::build)).
    pub fn new(tls: Arc<rustls::ClientConfig>, settings: ClientSettings) -> HttpsClient {
        HttpsClient {
            tls: tokio_rustls::TlsConnector::from(tls),
            settings,
            partners: Mutex::new(HashMap::new()),
            opened: Arc::new(AtomicU64::new(0)),
        }
    }

    /// TCP connections opened so far (keep-alive reuse shows as fewer connections than
    /// requests).
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn partner(&self, key: &str) -> Arc<Partner> {
        let mut map = self.partners.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Partner {
                    slots: Arc::new(Semaphore::new(
                        self.settings.max_concurrent_per_partner.max(1),
                    )),
                    idle: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }

    /// A ready idle connection of the partner, if any (most recently used first).
    async fn checkout(&self, partner: &Partner) -> Option<Conn> {
        loop {
            let next = partner.idle().pop();
            let mut idle = next?;
            if idle.since.elapsed() > self.settings.pool_idle_timeout
                || idle.conn.sender.is_closed()
            {
                continue;
            }
            // Ready means the previous exchange is fully done and the connection is open.
            if let Ok(Ok(())) =
                tokio::time::timeout(self.settings.connect_timeout, idle.conn.sender.ready()).await
            {
                return Some(idle.conn);
            }
        }
    }

    fn checkin(&self, partner: &Partner, conn: Conn) {
        let mut idle = partner.idle();
        if idle.len() < self.settings.pool_max_idle_per_partner && !conn.sender.is_closed() {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self, host: &str, port: u16, partner: &str) -> Result<Conn, TransportError> {
        let t = self.settings.connect_timeout;
        let stream = tokio::time::timeout(t, connect_tls(&self.tls, host, port, &self.opened))
            .await
            .map_err(|_| ConnectError::Timeout(t))
            .and_then(|r| r)
            .map_err(|e| e.into_transport(partner))?;
        let tls_error = Arc::new(Mutex::new(None));
        let io = TokioIo::new(RecordingIo {
            inner: stream,
            tls_error: tls_error.clone(),
        });
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(64 * 1024)
            .handshake(io)
            .await
            .map_err(|e| TransportError::Protocol {
                partner: partner.to_string(),
                source: Box::new(e),
            })?;
        let task = tokio::spawn(conn);
        Ok(Conn {
            sender,
            task,
            tls_error,
        })
    }

    /// Sends on a pooled connection if there is one, else (or when the pooled one turns out
    /// closed before the request was written) on a fresh connection.
    async fn send(
        &self,
        partner: &Partner,
        (host, port, key): (&str, u16, &str),
        req: Request<OutboundBody>,
        progress: &mut watch::Receiver<u64>,
        total: u64,
        response_deadline: &mut Option<Instant>,
    ) -> Result<(Conn, http::Response<Incoming>), TransportError> {
        let req = match self.checkout(partner).await {
            Some(mut conn) => {
                match self
                    .exchange(&mut conn, req, progress, total, key, response_deadline)
                    .await?
                {
                    Outcome::Response(r) => return Ok((conn, r)),
                    Outcome::Failed(e) => return Err(exchange_failure(conn, e, key).await),
                    // The partner closed the idle connection just now: the request comes back
                    // unsent and goes out once more on a fresh connection.
                    Outcome::Unsent(req) => *req,
                }
            }
            None => req,
        };
        let mut conn = self.connect(host, port, key).await?;
        match self
            .exchange(&mut conn, req, progress, total, key, response_deadline)
            .await?
        {
            Outcome::Response(r) => Ok((conn, r)),
            Outcome::Failed(e) => Err(exchange_failure(conn, e, key).await),
            Outcome::Unsent(_) => {
                Err(conn
                    .failure(key, false)
                    .await
                    .unwrap_or_else(|| TransportError::Protocol {
                        partner: key.to_string(),
                        source: "connection closed before the request was sent".into(),
                    }))
            }
        }
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

    /// Like [`post`](Self::post) with arbitrary headers (`Content-Type` among them).
    /// `Host`, `Content-Length` and (unless given) `User-Agent` are set here.
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
        let key = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let host_header = if port == 443 {
            key.trim_end_matches(":443").to_string()
        } else {
            key.clone()
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();

        let total = body.len();
        let progress = body.watch_progress();
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .body(body)
            .map_err(|e| invalid_url(url, e.to_string()))?;
        *req.headers_mut() = headers;
        let h = req.headers_mut();
        h.insert(
            HOST,
            HeaderValue::from_str(&host_header).map_err(|e| invalid_url(url, e.to_string()))?,
        );
        h.insert(CONTENT_LENGTH, HeaderValue::from(total));
        if !h.contains_key(USER_AGENT) {
            h.insert(
                USER_AGENT,
                HeaderValue::from_static(concat!("as4gw/", env!("CARGO_PKG_VERSION"))),
            );
        }

        let partner = self.partner(&key);
        let _permit = partner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| TransportError::InvalidHeader(format!("semaphore closed: {e}")))?;

        let mut progress = progress;
        let mut response_deadline = None;
        let (conn, response) = self
            .send(
                &partner,
                (&host, port, &key),
                req,
                &mut progress,
                total,
                &mut response_deadline,
            )
            .await?;

        let s = &self.settings;
        let (parts, incoming) = response.into_parts();
        let deadline = response_deadline.unwrap_or_else(|| Instant::now() + s.response_timeout);
        let collected = tokio::time::timeout_at(
            deadline,
            Limited::new(incoming, s.max_response_bytes).collect(),
        )
        .await
        .map_err(|_| TransportError::Timeout {
            partner: key.clone(),
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
                        partner: key,
                        limit: s.max_response_bytes,
                    });
                }
                return Err(classify_dyn(e.as_ref(), &key, true).unwrap_or(
                    TransportError::Protocol {
                        partner: key,
                        source: e,
                    },
                ));
            }
        };
        // Complete exchange: the connection may carry the next message.
        self.checkin(&partner, conn);
        Ok(TransportResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            partner: key,
        })
    }

    /// Sends the request and waits for the response head. While uploading only a stall ends
    /// the wait; once the body has been handed over (or dropped by hyper) the response
    /// timeout runs, and its deadline is left in `response_deadline` for the body read.
    async fn exchange(
        &self,
        conn: &mut Conn,
        req: Request<OutboundBody>,
        progress: &mut watch::Receiver<u64>,
        total: u64,
        partner: &str,
        response_deadline: &mut Option<Instant>,
    ) -> Result<Outcome, TransportError> {
        let s = &self.settings;
        let fut = conn.sender.try_send_request(req);
        tokio::pin!(fut);
        let result = loop {
            if response_deadline.is_none() && *progress.borrow() >= total {
                *response_deadline = Some(Instant::now() + s.response_timeout);
            }
            if let Some(deadline) = *response_deadline {
                match tokio::time::timeout_at(deadline, &mut fut).await {
                    Ok(r) => break r,
                    Err(_) => {
                        return Err(TransportError::Timeout {
                            partner: partner.to_string(),
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
                        // Body dropped (sent, or the connection failed): await the outcome.
                        *response_deadline = Some(Instant::now() + s.response_timeout);
                    }
                }
                () = tokio::time::sleep(s.upload_stall_timeout) => {
                    return Err(TransportError::Timeout {
                        partner: partner.to_string(),
                        stage: TimeoutStage::Upload,
                        after: s.upload_stall_timeout,
                    });
                }
            }
        };
        match result {
            Ok(resp) => Ok(Outcome::Response(resp)),
            Err(mut e) => match e.take_message() {
                Some(req) => Ok(Outcome::Unsent(Box::new(req))),
                None => Ok(Outcome::Failed(e.into_error())),
            },
        }
    }
}

fn tls_error(partner: &str, io: &io::Error, request_sent: bool) -> TransportError {
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
        request_sent,
    }
}

/// After the handshake: finds a TLS error or a local body error in an error chain.
fn classify_dyn(
    err: &(dyn StdError + 'static),
    partner: &str,
    request_sent: bool,
) -> Option<TransportError> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(b) = e.downcast_ref::<OutboundBodyError>() {
            return Some(TransportError::Body(io::Error::new(
                b.0.kind(),
                b.0.to_string(),
            )));
        }
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(TransportError::Tls {
                partner: partner.to_string(),
                rustls: Some(r.clone()),
                detail: r.to_string(),
                request_sent,
            });
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io
                .get_ref()
                .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
            {
                return Some(tls_error(partner, io, request_sent));
            }
        }
        cur = e.source();
    }
    None
}
