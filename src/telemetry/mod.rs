//! The telemetry room: logs, spans, metrics and loud failures.
//!
//! * [`log`]: the subscriber (text or JSON lines), `RUST_LOG` or `[log] level`;
//! * [`span`]: a span per message stage carrying `message_id`, `conversation_id`, `pmode`,
//!   and stage timers feeding `as4gw_stage_seconds`;
//! * [`metrics`]: the Prometheus families behind `GET /metrics` (backend listener);
//! * [`alerts`]: retries exhausted, failing webhooks, expiring certificates, stuck messages —
//!   logged, counted and (if configured) posted to an operator webhook; on by default.
//!
//! One process is one gateway, and the points that count (MSH, webhook pusher, alerter) live
//! in different rooms; a process-wide instance ([`global`]) spares threading a handle through
//! every constructor, the same way `tracing` has one dispatcher. Two gateways in one test
//! process share it, so tests that assert on values run `as4gw serve` processes.
//!
//! Nothing here logs secrets: spans and alerts carry ids, names and subjects only. See
//! `docs/operations.md`.

pub mod alerts;
pub mod log;
pub mod metrics;
pub mod span;

use std::sync::OnceLock;

use crate::config::Config;
use crate::pki::cert::Certificate;
use crate::pmode::set::PModeSet;
use crate::store::{Direction, MessageRecord};

pub use alerts::{Alert, AlertKind, AlertSettings, Alerter, Severity};
pub use log::{LogFormat, LogSettings};
pub use metrics::{CertInfo, Metrics};
pub use span::{message_span, pending_span, record_ids, stage_span, Stage, StageTimer};

/// Metrics and the alerter of this process.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    pub alerts: Alerter,
}

/// The process-wide telemetry.
pub fn global() -> &'static Telemetry {
    static T: OnceLock<Telemetry> = OnceLock::new();
    T.get_or_init(Telemetry::default)
}

/// An outbound message ended FAILED after its last resend went unanswered: error log, the
/// `as4gw_retries_exhausted_total` counter, an alert.
pub fn retries_exhausted(rec: &MessageRecord, detail: &str) {
    let t = global();
    t.metrics.retries_exhausted();
    t.alerts.raise(Alert::new(
        AlertKind::RetriesExhausted,
        Severity::Error,
        vec![rec.message_id.clone()],
        format!(
            "message {} (P-Mode {}) FAILED after {} attempt(s), retries exhausted: {detail}",
            rec.message_id, rec.pmode_id, rec.attempts
        ),
    ));
}

/// A webhook push failed (`dead`: given up). Counts it and raises an alert when the failures
/// in a row reach `[alerts] webhook-failures`, and when an item is given up.
pub fn webhook_failed(backend: &str, message_id: Option<&str>, error: &str, dead: bool) {
    let t = global();
    let in_a_row = t.metrics.webhook_failed(backend);
    let threshold = i64::from(t.alerts.settings().webhook_failures.max(1));
    let ids: Vec<String> = message_id.map(str::to_string).into_iter().collect();
    if in_a_row == threshold {
        t.alerts.raise(Alert::new(
            AlertKind::WebhookFailing,
            Severity::Error,
            ids.clone(),
            format!(
                "the webhook of backend {backend} failed {in_a_row} times in a row (last: {error}); \
                 check the backend's endpoint"
            ),
        ));
    }
    if dead {
        t.alerts.raise(Alert::new(
            AlertKind::WebhookFailing,
            Severity::Error,
            ids,
            format!(
                "a push to the webhook of backend {backend} was given up (DEAD in the outbox; \
                 the message stays readable through the API): {error}"
            ),
        ));
    }
}

/// A webhook push succeeded: the failure streak of `backend` ends.
pub fn webhook_ok(backend: &str) {
    global().metrics.webhook_ok(backend);
}

/// Records that a message entered a state, and the end-to-end time when it reached its goal
/// (OUT: ACKNOWLEDGED; IN: DELIVERED) from `created_at`.
pub fn message_state(
    direction: Direction,
    state: crate::store::State,
    created_at: Option<time::OffsetDateTime>,
) {
    let m = &global().metrics;
    m.message_state(direction, state);
    let goal = matches!(
        (direction, state),
        (Direction::Outbound, crate::store::State::Acknowledged)
            | (Direction::Inbound, crate::store::State::Delivered)
    );
    if let (true, Some(t0)) = (goal, created_at) {
        let secs = (time::OffsetDateTime::now_utc() - t0).as_seconds_f64();
        m.observe_end_to_end(direction, secs.max(0.0));
    }
}

fn cert_info(name: String, der: &[u8]) -> Option<CertInfo> {
    let c = Certificate::from_der(der).ok()?;
    Some(CertInfo {
        name,
        subject: c.subject().to_string(),
        not_after: c.not_after(),
    })
}

/// Every certificate the gateway depends on: its own (TLS, both key sets), the trust anchors
/// of the configuration and of the P-Modes, and the partners' certificates in the P-Modes.
pub fn certificates(cfg: &Config, set: &PModeSet) -> Vec<CertInfo> {
    let mut v: Vec<CertInfo> = Vec::new();
    let mut add = |name: String, der: &[u8]| {
        if der.is_empty() || v.iter().any(|c| c.name == name) {
            return;
        }
        if let Some(c) = cert_info(name, der) {
            v.push(c);
        }
    };
    add("own/tls".into(), &cfg.as4.tls_cert.der);
    for (suite, k) in [
        ("edelivery-1_15", &cfg.keys_115),
        ("edelivery-2_0", &cfg.keys_20),
    ] {
        if let Some(k) = k {
            add(format!("own/{suite}/signing"), &k.signing_cert.der);
            add(format!("own/{suite}/encryption"), &k.encryption_cert.der);
        }
    }
    for (i, a) in cfg.trust_anchors.iter().enumerate() {
        add(format!("anchor/{i}"), &a.der);
    }
    for p in set.pmodes() {
        for (role, party) in [("initiator", &p.initiator), ("responder", &p.responder)] {
            if let Some(c) = &party.signing_cert {
                add(format!("pmode/{}/{role}/signing", p.id), &c.der);
            }
            if let Some(c) = &party.encryption_cert {
                add(format!("pmode/{}/{role}/encryption", p.id), &c.der);
            }
        }
        for (i, a) in p.security.trust_anchors.iter().enumerate() {
            add(format!("pmode/{}/anchor/{i}", p.id), &a.der);
        }
    }
    v
}
