//! The one I/O seam of the outbound pipeline: POST the spooled wire file, get the synchronous
//! answer (digest §2.2: one HTTP POST per message, the signal in the response). Production uses
//! [`HttpsTransport`] over the transport room's `HttpsClient`; the in-process tests wire two
//! MSHs back to back through an in-memory implementation.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::transport::{ErrorClass, HttpsClient, OutboundBody, TransportError};

/// One AS4 POST: the partner's URL and the spooled wire file (identical on every retry).
#[derive(Debug, Clone)]
pub struct WireRequest {
    pub url: String,
    pub content_type: String,
    pub file: PathBuf,
    /// The wire bytes when the store keeps them inline (small messages, issue 8); `file` does
    /// not exist then.
    pub inline: Option<Bytes>,
}

impl WireRequest {
    /// The whole wire message, from memory or from the spooled file.
    pub async fn read_body(&self) -> std::io::Result<Bytes> {
        match &self.inline {
            Some(b) => Ok(b.clone()),
            None => Ok(Bytes::from(tokio::fs::read(&self.file).await?)),
        }
    }
}

/// The partner's complete answer, whatever the status.
#[derive(Debug, Clone)]
pub struct WireResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Why no answer came back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Our configuration is wrong (URL, header): retrying cannot help.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading our own wire file failed.
    #[error("local I/O: {0}")]
    Local(String),
    /// Network trouble, TLS, timeouts: EBMS:0005 ConnectionFailure, retried per P-Mode.
    #[error("{detail}")]
    Network {
        detail: String,
        may_have_been_delivered: bool,
    },
}

/// Sends one wire file.
pub trait Transport: Send + Sync {
    fn post(&self, req: WireRequest) -> BoxFuture<'_, Result<WireResponse, SendError>>;
}

/// [`Transport`] over the transport room's pooled HTTPS client.
pub struct HttpsTransport {
    client: HttpsClient,
}

impl HttpsTransport {
    pub fn new(client: HttpsClient) -> Self {
        HttpsTransport { client }
    }
}

fn classify(e: TransportError) -> SendError {
    match e.class() {
        ErrorClass::Config => SendError::Config(e.to_string()),
        ErrorClass::LocalIo => SendError::Local(e.to_string()),
        _ => SendError::Network {
            may_have_been_delivered: e.may_have_been_delivered(),
            detail: e.to_string(),
        },
    }
}

impl Transport for HttpsTransport {
    fn post(&self, req: WireRequest) -> BoxFuture<'_, Result<WireResponse, SendError>> {
        Box::pin(async move {
            let body = match &req.inline {
                Some(b) => OutboundBody::from_bytes(b.clone()),
                None => OutboundBody::from_file(&req.file)
                    .await
                    .map_err(|e| SendError::Local(format!("{}: {e}", req.file.display())))?,
            };
            let r = self
                .client
                .post(&req.url, &req.content_type, body)
                .await
                .map_err(classify)?;
            Ok(WireResponse {
                status: r.status.as_u16(),
                content_type: r.content_type().map(str::to_string),
                body: r.body,
            })
        })
    }
}
