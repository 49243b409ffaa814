//! The transport room: HTTPS server and client and their TLS configuration — bytes over
//! HTTP, no protocol logic (no XML, no ebMS). See `docs/transport.md`.
//!
//! * [`tls`]: TLS versions, cipher suites, client authentication, PEM loading
//!   (digest §3.3, §4.5).
//! * [`server`]: the accept loop with peer certificates, limits and graceful shutdown; also
//!   the plain-HTTP listener for the loopback backend API.
//! * [`client`]: the pooled HTTPS client with per-partner concurrency and typed, classified
//!   errors (for EBMS:0005 and retry decisions).
//! * [`body`]: the limited inbound body and the streamed outbound body.

pub mod body;
pub mod client;
pub mod server;
pub mod tls;

/// The boxed error type bodies and hyper use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use body::{
    limit_request, BodyError, BodyLimits, LimitedBody, OutboundBody, OutboundBodyError,
};
pub use client::{
    ClientSettings, ErrorClass, HttpsClient, TimeoutStage, TransportError, TransportResponse,
};
pub use server::{
    shutdown_signal, Handler, PeerInfo, Server, ServerLimits, ServerStats, ShutdownReport, TlsPeer,
};
pub use tls::{
    crypto_provider, ClientAuthMode, ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles,
    TlsConfigError, TlsProtocols, TlsVersion,
};
