//! The backend room: the REST API v1 that backends (C1/C4) use to submit and fetch messages,
//! the webhook pusher that announces inbound messages and outbound outcomes, and the admin CLI
//! on top of the API (`as4gw messages …`, in `src/cli/messages.rs`).
//!
//! No protocol logic lives here. A submission is streamed to the spool part by part (never held
//! in memory), handed to the MSH through [`crate::msh::api::Submitter`], and answered 202 only
//! when the submitter has recorded it durably. Everything a backend reads comes from the
//! [`crate::store::MessageStore`]; the ebMS header kept with each message is parsed only to
//! *show* parties, service/action and typed properties.
//!
//! * [`router`] builds the axum router (every route needs a bearer token, see [`auth`]);
//!   `as4gw serve` mounts it on the `[api]` listener.
//! * [`openapi`] is the OpenAPI 3.1 document of exactly that router (also served at
//!   `GET /api/v1/openapi.json` and committed as `docs/openapi.json`).
//! * [`webhook::spawn_webhook_pusher`] drains the store's notification outbox.
//!
//! Errors are RFC 9457 problem documents ([`problem`]). See `docs/backend.md`.

pub mod auth;
mod handlers;
pub mod metrics;
pub mod model;
pub mod oots;
pub mod problem;
mod submit;
pub mod webhook;

use std::sync::{Arc, OnceLock};

use axum::Router;
use futures_util::future::BoxFuture;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{BackendAccess, Caller};
pub use model::HealthCheck;
pub use oots::OotsSettings;
pub use problem::{Problem, ProblemType};
pub use webhook::{spawn_webhook_pusher, WebhookSettings, WebhookStats};

use crate::msh::api::Submitter;
use crate::pmode::Registry;
use crate::store::MessageStore;

/// Size limits of the submission endpoint. They bound disk use per request; memory use does
/// not depend on them (payloads are streamed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// One payload, bytes.
    pub max_payload_size: u64,
    /// Payload parts per submission.
    pub max_payloads: usize,
    /// The JSON `metadata` part, bytes.
    pub max_metadata_size: u64,
}

impl Default for ApiLimits {
    /// 1 GiB per payload (OOTS evidences are far smaller; the P-Mode's payload profile is the
    /// real bound and the MSH enforces it), 32 payloads, 1 MiB of metadata.
    fn default() -> Self {
        ApiLimits {
            max_payload_size: 1 << 30,
            max_payloads: 32,
            max_metadata_size: 1 << 20,
        }
    }
}

/// Something that can tell whether the gateway is ready (P-Modes loaded, sender running, …).
/// The store is always checked by the health route itself.
pub trait Readiness: Send + Sync {
    fn check(&self) -> BoxFuture<'_, Vec<HealthCheck>>;
}

/// A probe that has nothing to report (ready once the store answers).
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOnly;

impl Readiness for StoreOnly {
    fn check(&self) -> BoxFuture<'_, Vec<HealthCheck>> {
        Box::pin(async { Vec::new() })
    }
}

/// Which backend an inbound P-Mode delivers to (`backend = "…"` in the P-Mode), so a backend
/// can read the inbound messages routed to it without listing inbound P-Modes.
pub type InboundRoutes = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Everything the handlers need. Cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<dyn MessageStore>,
    pub(crate) submitter: Arc<dyn Submitter>,
    pub(crate) backends: Arc<[Arc<BackendAccess>]>,
    pub(crate) readiness: Arc<dyn Readiness>,
    pub(crate) routes: Option<InboundRoutes>,
    pub(crate) limits: ApiLimits,
    /// The P-Mode set, for the OOTS helper API's choice of P-Mode and Content-IDs.
    pub(crate) registry: Option<Arc<Registry>>,
    /// Timeouts and clock of the OOTS exchange view.
    pub(crate) oots: Arc<OotsSettings>,
    /// `GET /metrics`; `None` = not served.
    pub(crate) metrics: Option<Arc<metrics::MetricsEndpoint>>,
}

impl AppState {
    /// State over a store, the MSH's submitter and the configured backends.
    pub fn new(
        store: Arc<dyn MessageStore>,
        submitter: Arc<dyn Submitter>,
        backends: Vec<BackendAccess>,
    ) -> AppState {
        AppState {
            store,
            submitter,
            backends: backends.into_iter().map(Arc::new).collect(),
            readiness: Arc::new(StoreOnly),
            routes: None,
            limits: ApiLimits::default(),
            registry: None,
            oots: Arc::new(OotsSettings::default()),
            metrics: None,
        }
    }

    /// Serves `GET /metrics` (Prometheus) with this access rule.
    pub fn with_metrics(mut self, m: metrics::MetricsEndpoint) -> Self {
        self.metrics = Some(Arc::new(m));
        self
    }

    /// Adds a readiness probe (reported by `GET /api/v1/health`).
    pub fn with_readiness(mut self, r: Arc<dyn Readiness>) -> Self {
        self.readiness = r;
        self
    }

    /// Sets the submission limits.
    pub fn with_limits(mut self, l: ApiLimits) -> Self {
        self.limits = l;
        self
    }

    /// Routes inbound messages to backends with a function of the P-Mode id.
    pub fn with_inbound_routes(mut self, f: InboundRoutes) -> Self {
        self.routes = Some(f);
        self
    }

    /// OOTS timeouts (T1/T2/T3) and the clock of the exchange view.
    pub fn with_oots(mut self, s: OotsSettings) -> Self {
        self.oots = Arc::new(s);
        self
    }

    /// Routes inbound messages by the `backend` of the current P-Mode set (follows reloads);
    /// the OOTS helper API picks its P-Modes from the same set.
    pub fn with_pmode_registry(mut self, reg: Arc<Registry>) -> Self {
        self.registry = Some(Arc::clone(&reg));
        self.with_inbound_routes(Arc::new(move |id: &str| {
            reg.current().get(id).and_then(|p| p.backend.clone())
        }))
    }

    /// The backend an inbound P-Mode delivers to.
    pub(crate) fn routed_to(&self, pmode_id: &str) -> Option<String> {
        self.routes.as_ref().and_then(|f| f(pmode_id))
    }
}

/// Adds the bearer scheme and makes it required for every operation.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A backend's token; the gateway stores its SHA-256 (`token-sha256`).",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "as4gw backend API",
        version = "1",
        description = "Submit messages to AS4 partners and fetch what partners sent. Every call needs `Authorization: Bearer <token>`. Errors are RFC 9457 problem documents (`application/problem+json`). See docs/backend.md.",
        license(name = "EUPL-1.2", identifier = "EUPL-1.2")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "messages", description = "Submission, status, payloads, receipts, acknowledgement"),
        (name = "oots", description = "OOTS evidence exchange helper: requests, responses, exceptions, exchange view"),
        (name = "service", description = "Health and this document")
    )
)]
struct ApiDoc;

/// The routes, with their OpenAPI operations (one place, so the document cannot drift).
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(handlers::submit, handlers::list_messages))
        .routes(routes!(handlers::get_message))
        .routes(routes!(handlers::get_payload))
        .routes(routes!(handlers::get_receipt))
        .routes(routes!(handlers::ack_message))
        .routes(routes!(oots::send_request))
        .routes(routes!(oots::send_response))
        .routes(routes!(oots::send_exception))
        .routes(routes!(oots::get_exchange))
        .routes(routes!(handlers::health))
        .routes(routes!(handlers::openapi_json))
}

/// The OpenAPI document of [`router`].
pub fn openapi() -> OpenApiDoc {
    let (_, doc) = api_router().split_for_parts();
    doc
}

/// [`openapi`] as pretty JSON with a final newline: what is served and what
/// `docs/openapi.json` holds.
pub fn openapi_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut s = openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    })
}

/// The REST API v1 router. Mount it at the root of the backend listener.
pub fn router(state: AppState) -> Router {
    let (r, _) = api_router().split_for_parts();
    r.route("/metrics", axum::routing::get(metrics::scrape))
        .fallback(handlers::not_found)
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}
