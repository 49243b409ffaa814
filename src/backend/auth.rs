//! Bearer-token authentication and per-backend authorisation.
//!
//! The configuration holds only SHA-256 digests of the tokens, so a leaked `as4gw.toml` does
//! not let anyone call the API. A presented token is hashed and compared with **every**
//! configured digest in constant time (`subtle`), without stopping at the first match, so the
//! response time does not tell which backend (or how many bytes of a digest) matched.
//!
//! Authorisation is by P-Mode: a backend submits only on its `allowed-pmodes`, and reads the
//! messages of those P-Modes plus the inbound messages whose P-Mode routes to it (`backend =
//! "<name>"` in the P-Mode). When configured, the originalSender / finalRecipient values a
//! backend may use (outbound) or see (inbound) are restricted too.
//!
//! Failed attempts are logged with the reason and the request path — never the token.

use std::sync::Arc;

use aws_lc_rs::digest;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq;

use super::problem::{Problem, ProblemType};
use super::AppState;
use crate::config::Backend;
use crate::store::{Direction, MessageRecord};

/// The `originalSender` message property (digest §3.5, four-corner model).
pub const ORIGINAL_SENDER: &str = "originalSender";
/// The `finalRecipient` message property.
pub const FINAL_RECIPIENT: &str = "finalRecipient";

/// A configured backend as the API sees it: its token digest, what it may do, and where its
/// webhook goes.
#[derive(Clone)]
pub struct BackendAccess {
    /// Name from `[[backend]] name`, also the outbox `target` of its notifications.
    pub name: String,
    token_sha256: [u8; 32],
    /// P-Mode ids this backend may submit on (and read).
    pub allowed_pmodes: Vec<String>,
    /// originalSender values it may submit with / read; empty = any.
    pub allowed_original_senders: Vec<String>,
    /// finalRecipient values it may address / receive for; empty = any.
    pub allowed_final_recipients: Vec<String>,
    /// Webhook URL; `None` = the backend polls.
    pub webhook: Option<String>,
    webhook_key: Vec<u8>,
}

impl std::fmt::Debug for BackendAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the digest nor the webhook key belong in logs.
        f.debug_struct("BackendAccess")
            .field("name", &self.name)
            .field("allowed_pmodes", &self.allowed_pmodes)
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

impl BackendAccess {
    /// A backend with this token digest. The webhook signing key defaults to the token digest
    /// itself: the backend can compute it (`sha256(token)`) and the gateway stores nothing
    /// more secret than it already has. Use [`BackendAccess::with_webhook_secret`] for a
    /// separate key.
    pub fn new(name: impl Into<String>, token_sha256: [u8; 32]) -> BackendAccess {
        BackendAccess {
            name: name.into(),
            token_sha256,
            allowed_pmodes: Vec::new(),
            allowed_original_senders: Vec::new(),
            allowed_final_recipients: Vec::new(),
            webhook: None,
            webhook_key: token_sha256.to_vec(),
        }
    }

    /// Convenience for tests and tools: a backend whose token is `token` (hashed here).
    pub fn with_token(name: impl Into<String>, token: &str) -> BackendAccess {
        BackendAccess::new(name, token_digest(token))
    }

    /// Sets the P-Modes it may use.
    pub fn allow_pmodes<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_pmodes = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Restricts originalSender values.
    pub fn allow_original_senders(mut self, v: Vec<String>) -> Self {
        self.allowed_original_senders = v;
        self
    }

    /// Restricts finalRecipient values.
    pub fn allow_final_recipients(mut self, v: Vec<String>) -> Self {
        self.allowed_final_recipients = v;
        self
    }

    /// Sets the webhook URL.
    pub fn webhook(mut self, url: impl Into<String>) -> Self {
        self.webhook = Some(url.into());
        self
    }

    /// Uses `secret` (instead of the token digest) as the HMAC key of webhook signatures.
    pub fn with_webhook_secret(mut self, secret: &[u8]) -> Self {
        self.webhook_key = secret.to_vec();
        self
    }

    /// The HMAC-SHA256 key of this backend's webhook signatures.
    pub fn webhook_key(&self) -> &[u8] {
        &self.webhook_key
    }

    /// Whether a submission on `pmode_id` with these message properties is allowed; the
    /// refusal names the field.
    pub fn check_submit(
        &self,
        pmode_id: Option<&str>,
        properties: &[(String, String)],
    ) -> Result<(), Problem> {
        if let Some(id) = pmode_id {
            if !self.allowed_pmodes.iter().any(|p| p == id) {
                return Err(Problem::new(
                    ProblemType::Forbidden,
                    format!("backend {} may not submit on P-Mode {id}", self.name),
                )
                .field("pmode"));
            }
        }
        for (name, allowed) in [
            (ORIGINAL_SENDER, &self.allowed_original_senders),
            (FINAL_RECIPIENT, &self.allowed_final_recipients),
        ] {
            if allowed.is_empty() {
                continue;
            }
            let (i, value) = match properties.iter().enumerate().find(|(_, (n, _))| n == name) {
                Some((i, (_, v))) => (i, v),
                None => {
                    return Err(Problem::new(
                        ProblemType::Forbidden,
                        format!("backend {} must name its {name}", self.name),
                    )
                    .field(format!("properties/{name}")))
                }
            };
            if !allowed.iter().any(|a| a == value) {
                return Err(Problem::new(
                    ProblemType::Forbidden,
                    format!("backend {} may not use {name} {value:?}", self.name),
                )
                .field(format!("properties/{i}/value")));
            }
        }
        Ok(())
    }

    /// Whether this backend may see `rec`. `routed_to` is the backend the message's P-Mode
    /// delivers to (inbound), if known.
    pub fn may_read(&self, rec: &MessageRecord, routed_to: Option<&str>) -> bool {
        let by_pmode = self.allowed_pmodes.contains(&rec.pmode_id)
            || (rec.direction == Direction::Inbound && routed_to == Some(self.name.as_str()));
        if !by_pmode {
            return false;
        }
        let (name, allowed) = match rec.direction {
            Direction::Outbound => (ORIGINAL_SENDER, &self.allowed_original_senders),
            Direction::Inbound => (FINAL_RECIPIENT, &self.allowed_final_recipients),
        };
        allowed.is_empty()
            || rec
                .properties
                .iter()
                .any(|(n, v)| n == name && allowed.iter().any(|a| a == v))
    }

    /// Constant-time comparison of a presented token's digest with this backend's.
    fn token_matches(&self, digest: &[u8; 32]) -> subtle::Choice {
        self.token_sha256.ct_eq(digest)
    }
}

impl From<&Backend> for BackendAccess {
    fn from(b: &Backend) -> BackendAccess {
        let mut a = BackendAccess::new(b.name.clone(), b.token_sha256)
            .allow_pmodes(b.allowed_pmodes.clone())
            .allow_original_senders(b.allowed_original_senders.clone())
            .allow_final_recipients(b.allowed_final_recipients.clone());
        if let Some(s) = &b.webhook_secret {
            a = a.with_webhook_secret(s.bytes());
        }
        a.webhook = b.webhook.clone();
        a
    }
}

/// SHA-256 of a token (what `token-sha256` holds).
pub fn token_digest(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Finds the backend whose token this is. Every backend is compared, always.
pub fn authenticate<'a>(
    backends: &'a [Arc<BackendAccess>],
    headers: &HeaderMap,
) -> Result<&'a Arc<BackendAccess>, &'static str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or("no Authorization header")?;
    let value = value
        .to_str()
        .map_err(|_| "Authorization header is not ASCII")?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or("Authorization header is not \"Bearer <token>\"")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("Authorization scheme is not Bearer");
    }
    let token = token.trim();
    if token.is_empty() {
        return Err("empty bearer token");
    }
    let presented = token_digest(token);
    let mut found: Option<&Arc<BackendAccess>> = None;
    for b in backends {
        // Evaluate every comparison; only the selection depends on the result.
        if bool::from(b.token_matches(&presented)) && found.is_none() {
            found = Some(b);
        }
    }
    found.ok_or("unknown bearer token")
}

/// The authenticated backend of a request. As an extractor it answers 401 (problem JSON)
/// before the handler runs, so no route can forget authentication.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<BackendAccess>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        match authenticate(&state.backends, &parts.headers) {
            Ok(b) => Ok(Caller(Arc::clone(b))),
            Err(reason) => {
                tracing::warn!(
                    method = %parts.method,
                    path = %parts.uri.path(),
                    reason,
                    "backend API: authentication failed"
                );
                Err(Problem::new(ProblemType::Unauthorized, reason).field("Authorization"))
            }
        }
    }
}

/// Logs a refused (403) attempt of an authenticated backend.
pub(crate) fn log_forbidden(caller: &BackendAccess, what: &str, p: &Problem) {
    tracing::warn!(backend = %caller.name, what, detail = %p.detail, "backend API: not allowed");
}
