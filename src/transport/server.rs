//! The accept loop: HTTPS (tokio-rustls) or plain HTTP (loopback backend API), HTTP/1.1 via
//! hyper, per-connection peer information, limits and graceful shutdown.
//!
//! hyper-util's connection types are driven directly (rather than a framework's `serve`)
//! because the handler needs the TLS session of its connection: the client certificate chain
//! is the partner's transport identity when client authentication is on (digest §3.3).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::tls::iana_name;
use super::BoxError;

/// Limits of the listener and of each connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Largest request head (request line + headers) in bytes; hyper answers 431 beyond it.
    /// hyper's floor is 8 KiB.
    pub max_header_bytes: usize,
    /// Time allowed to receive a complete request head, from the connection start and again
    /// for each keep-alive request (slowloris protection).
    pub header_read_timeout: Duration,
    /// Time allowed for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Open connections at most; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// HTTP/1.1 keep-alive (several POSTs on one connection).
    pub keep_alive: bool,
    /// After the shutdown signal, how long in-flight requests may run before their
    /// connections are dropped.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 512,
            keep_alive: true,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What the TLS layer established for a connection.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// `TLSv1_2` / `TLSv1_3`.
    pub protocol: Option<String>,
    /// IANA name of the negotiated cipher suite.
    pub cipher_suite: Option<String>,
    /// The SNI host name the client asked for.
    pub server_name: Option<String>,
    /// The client's certificate chain (leaf first), verified against the configured client
    /// trust anchors; `None` when client authentication is off or the client sent none
    /// (possible only in `optional` mode).
    pub client_certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// Who is on the other end of the connection a request came in on.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Unique per accepted connection in this process (requests on one keep-alive connection
    /// share it).
    pub connection_id: u64,
    pub remote_addr: SocketAddr,
    pub local_addr: SocketAddr,
    /// `None` on the plain-HTTP listener.
    pub tls: Option<TlsPeer>,
}

impl PeerInfo {
    /// The verified client certificate chain, if one was presented.
    pub fn client_certs(&self) -> Option<&[CertificateDer<'static>]> {
        self.tls
            .as_ref()
            .and_then(|t| t.client_certs.as_deref())
            .map(|v| v.as_slice())
    }

    /// The verified client leaf certificate, if one was presented.
    pub fn client_leaf(&self) -> Option<&CertificateDer<'static>> {
        self.client_certs().and_then(|c| c.first())
    }
}

/// Counters of a server, readable while it runs (metrics, tests).
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: AtomicU64,
    active: AtomicU64,
    handshake_failures: AtomicU64,
    requests: AtomicU64,
}

impl ServerStats {
    /// TCP connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Connections currently open.
    pub fn connections_active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
    /// TLS handshakes that failed or timed out.
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }
    /// Requests handed to the handler.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// How a server's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections still open when the grace period ran out, dropped mid-request.
    pub connections_aborted: usize,
}

/// A bound listener, HTTPS or plain HTTP, ready to [`serve`](Server::serve).
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ServerLimits,
    stats: Arc<ServerStats>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// The handler contract: one request and the peer of its connection in, one response out.
/// Errors are the handler's to turn into responses (for AS4, an ebMS error signal).
pub trait Handler<B>: Send + Sync + 'static {
    type Future: Future<Output = Response<B>> + Send + 'static;
    fn call(&self, req: Request<Incoming>, peer: PeerInfo) -> Self::Future;
}

impl<F, Fut, B> Handler<B> for F
where
    F: Fn(Request<Incoming>, PeerInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
{
    type Future = Fut;
    fn call(&self, req: Request<Incoming>, peer: PeerInfo) -> Fut {
        self(req, peer)
    }
}

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

impl Server {
    /// Binds an HTTPS listener (the AS4 endpoint facing partners).
    pub async fn bind_https(
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        limits: ServerLimits,
    ) -> io::Result<Server> {
        Ok(Self::from_listener(
            TcpListener::bind(addr).await?,
            Some(tls),
            limits,
        ))
    }

    /// Binds a plain-HTTP listener: only for the backend API on loopback (127.0.0.1 by
    /// default in the configuration); AS4 traffic is always TLS (digest §3.3).
    pub async fn bind_http(addr: SocketAddr, limits: ServerLimits) -> io::Result<Server> {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "plain-HTTP listener on a non-loopback address");
        }
        Ok(Self::from_listener(
            TcpListener::bind(addr).await?,
            None,
            limits,
        ))
    }

    /// Uses an already bound listener (TLS when `tls` is given).
    pub fn from_listener(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: ServerLimits,
    ) -> Server {
        Server {
            listener,
            tls: tls.map(TlsAcceptor::from),
            limits,
            stats: Arc::new(ServerStats::default()),
        }
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Shared counters of this server.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting (the listening socket is
    /// closed, so new connections are refused), lets in-flight requests finish (idle
    /// keep-alive connections are closed) and drops what is still open after
    /// [`ServerLimits::shutdown_grace`].
    pub async fn serve<H, B>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()> + Send,
    ) -> ShutdownReport
    where
        H: Handler<B>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Server {
            listener,
            tls,
            limits,
            stats,
        } = self;
        let handler = Arc::new(handler);
        let limits = Arc::new(limits);
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks: JoinSet<()> = JoinSet::new();
        tokio::pin!(shutdown);

        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = async {
                    // A closed semaphore cannot happen (we never close it).
                    let permit = slots.clone().acquire_owned().await.ok();
                    (permit, listener.accept().await)
                } => {
                    let (permit, result) = accepted;
                    match result {
                        Ok((tcp, remote_addr)) => {
                            stats.accepted.fetch_add(1, Ordering::Relaxed);
                            let conn = Conn {
                                id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
                                remote_addr,
                                tls: tls.clone(),
                                limits: limits.clone(),
                                stats: stats.clone(),
                                stop: stop_rx.clone(),
                            };
                            let handler = handler.clone();
                            tasks.spawn(async move {
                                let _permit = permit;
                                conn.run(tcp, handler).await;
                            });
                        }
                        Err(e) => {
                            // Typically EMFILE: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }

        drop(listener);
        stop_tx.send_replace(true);
        let drained = tokio::time::timeout(limits.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        let connections_aborted = if drained.is_err() {
            let n = tasks.len();
            tasks.shutdown().await;
            n
        } else {
            0
        };
        if connections_aborted > 0 {
            tracing::warn!(
                connections_aborted,
                "shutdown grace period over; connections dropped"
            );
        }
        ShutdownReport {
            connections_aborted,
        }
    }
}

struct Conn {
    id: u64,
    remote_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    limits: Arc<ServerLimits>,
    stats: Arc<ServerStats>,
    stop: watch::Receiver<bool>,
}

/// Decrements the active-connection gauge however the task ends.
struct ActiveGuard(Arc<ServerStats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means the server is gone: stop as well.
    let _ = rx.wait_for(|s| *s).await;
}

impl Conn {
    async fn run<H, B>(self, tcp: TcpStream, handler: Arc<H>)
    where
        H: Handler<B>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        let _guard = ActiveGuard(self.stats.clone());
        let _ = tcp.set_nodelay(true);
        let local_addr = match tcp.local_addr() {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "connection gone before serving");
                return;
            }
        };
        let mut peer = PeerInfo {
            connection_id: self.id,
            remote_addr: self.remote_addr,
            local_addr,
            tls: None,
        };
        match self.tls.clone() {
            None => self.serve_io(tcp, peer, handler).await,
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(tcp));
                let stream = tokio::select! {
                    r = handshake => r,
                    () = stopped(self.stop.clone()) => return,
                };
                let stream = match stream {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        self.stats
                            .handshake_failures
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(peer = %self.remote_addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        self.stats
                            .handshake_failures
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::info!(peer = %self.remote_addr, "TLS handshake timed out");
                        return;
                    }
                };
                let (_, session) = stream.get_ref();
                peer.tls = Some(TlsPeer {
                    protocol: session.protocol_version().map(|v| format!("{v:?}")),
                    cipher_suite: session.negotiated_cipher_suite().map(|s| iana_name(&s)),
                    server_name: session.server_name().map(str::to_string),
                    client_certs: session
                        .peer_certificates()
                        .map(|c| Arc::new(c.iter().map(|d| d.clone().into_owned()).collect())),
                });
                self.serve_io(stream, peer, handler).await;
            }
        }
    }

    async fn serve_io<I, H, B>(&self, io: I, peer: PeerInfo, handler: Arc<H>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler<B>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let stats = self.stats.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            let fut = handler.call(req, peer.clone());
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(self.limits.max_header_bytes.max(8192))
            .keep_alive(self.limits.keep_alive);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = stopped(self.stop.clone()) => {
                // Finish the request in flight (if any), then close.
                conn.as_mut().graceful_shutdown();
                conn.as_mut().await
            }
        };
        if let Err(e) = result {
            tracing::debug!(connection = self.id, error = %e, "connection ended with an error");
        }
    }
}

/// Completes on Ctrl-C or (on Unix) SIGTERM: the usual `shutdown` future for
/// [`Server::serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
