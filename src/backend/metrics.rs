//! `GET /metrics` on the backend listener: the Prometheus exposition of
//! [`crate::telemetry::metrics`].
//!
//! Not part of the REST API v1 (not in the OpenAPI document). Like the API it needs a bearer
//! token by default — any backend's, or the scrape-only `[metrics] token-sha256` — because the
//! numbers tell an outsider about traffic and partners. `[metrics] public = true` opens it for
//! a scraper on the same host (the listener is loopback in the demo configuration).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::auth::{authenticate, token_digest};
use super::problem::{Problem, ProblemType};
use super::AppState;
use crate::telemetry::metrics::CONTENT_TYPE;
use crate::telemetry::CertInfo;

/// The certificates to report, asked at every scrape (follows P-Mode reloads).
pub type CertSource = Arc<dyn Fn() -> Vec<CertInfo> + Send + Sync>;

/// How `/metrics` is served.
#[derive(Clone)]
pub struct MetricsEndpoint {
    /// No token needed.
    pub public: bool,
    /// sha256 of a scrape-only token.
    pub token_sha256: Option<[u8; 32]>,
    pub certs: CertSource,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

fn scrape_token_matches(headers: &HeaderMap, digest: &[u8; 32]) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return false;
    };
    bool::from(token_digest(token).ct_eq(digest))
}

pub(crate) async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(ep) = state.metrics.clone() else {
        return Problem::new(ProblemType::NotFound, "metrics are not enabled").into_response();
    };
    if !ep.public {
        let scraper = ep
            .token_sha256
            .as_ref()
            .is_some_and(|d| scrape_token_matches(&headers, d));
        if !scraper {
            if let Err(reason) = authenticate(&state.backends, &headers) {
                tracing::warn!(path = "/metrics", reason, "metrics: authentication failed");
                return Problem::new(ProblemType::Unauthorized, reason)
                    .field("Authorization")
                    .into_response();
            }
        }
    }
    let body = crate::telemetry::global()
        .metrics
        .render(
            Some(state.store.as_ref()),
            &(ep.certs)(),
            OffsetDateTime::now_utc(),
        )
        .await;
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}
