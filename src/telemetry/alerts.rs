//! Loud failures: retries exhausted, a webhook that keeps failing, a certificate close to
//! expiry, a message stuck in a state. Each one is (1) a log event at warn or error with the
//! message ids, (2) a metric (`as4gw_alerts_total{kind,severity}` plus the kind's own family),
//! and (3) when `[alerts] webhook` is configured, a JSON POST to the operator's endpoint. All
//! on by default: an operator who configured nothing still sees them in the log and metrics.
//!
//! Retries exhausted and webhook failures are raised where they happen (MSH, pusher); expiry
//! and stuck messages by the periodic [`spawn_checker`]. The checker raises a stuck message
//! once per (message, state, since) and a certificate once per `repeat` period, so a
//! notification endpoint is not flooded every interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use super::metrics::CertInfo;
use crate::store::{Direction, MessageStore, State};

/// Kinds of loud failures (the `kind` label and JSON field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    RetriesExhausted,
    WebhookFailing,
    CertificateExpiring,
    MessageStuck,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::RetriesExhausted => "retries_exhausted",
            AlertKind::WebhookFailing => "webhook_failing",
            AlertKind::CertificateExpiring => "certificate_expiring",
            AlertKind::MessageStuck => "message_stuck",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One loud failure. The JSON form is the body of the operator notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub severity: Severity,
    /// The ebMS MessageIds concerned (empty for a certificate).
    pub message_ids: Vec<String>,
    /// What happened and what to do, for a person.
    pub text: String,
    /// The gateway's party id (which gateway raised it).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// RFC 3339.
    pub at: String,
}

impl Alert {
    pub fn new(
        kind: AlertKind,
        severity: Severity,
        message_ids: Vec<String>,
        text: String,
    ) -> Alert {
        Alert {
            kind,
            severity,
            message_ids,
            text,
            gateway: String::new(),
            at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    }
}

/// `[alerts]` in `as4gw.toml`; the defaults are what runs when nothing is configured.
#[derive(Clone, PartialEq, Eq)]
pub struct AlertSettings {
    /// Operator notification endpoint (http or https); `None` = log and metrics only.
    pub webhook: Option<String>,
    /// Period of the expiry and stuck checks.
    pub check_interval: Duration,
    /// Warn when a certificate expires within this many days.
    pub certificate_warn_days: u32,
    /// A message in a non-final state unchanged for longer than this is stuck.
    pub stuck_after: Duration,
    /// Per-state overrides of `stuck_after` (e.g. a polling backend: RECEIVED for hours).
    pub stuck_after_state: Vec<(State, Duration)>,
    /// Webhook pushes failing this many times in a row raise an alert.
    pub webhook_failures: u32,
    /// A certificate alert is repeated after this long while the condition holds.
    pub repeat: Duration,
    /// Our party id, put into notifications.
    pub gateway: String,
    /// HMAC-SHA256 key: notifications carry `X-As4gw-Signature` like backend webhooks.
    pub webhook_key: Option<Vec<u8>>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            webhook: None,
            check_interval: Duration::from_secs(60),
            certificate_warn_days: 30,
            stuck_after: Duration::from_secs(15 * 60),
            stuck_after_state: Vec::new(),
            webhook_failures: 3,
            repeat: Duration::from_secs(24 * 3600),
            gateway: String::new(),
            webhook_key: None,
        }
    }
}

impl std::fmt::Debug for AlertSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key is a secret: its presence only.
        f.debug_struct("AlertSettings")
            .field("webhook", &self.webhook)
            .field("check_interval", &self.check_interval)
            .field("certificate_warn_days", &self.certificate_warn_days)
            .field("stuck_after", &self.stuck_after)
            .field("stuck_after_state", &self.stuck_after_state)
            .field("webhook_failures", &self.webhook_failures)
            .field("repeat", &self.repeat)
            .field("gateway", &self.gateway)
            .field(
                "webhook_key",
                &self.webhook_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AlertSettings {
    /// The stuck threshold of `state`.
    pub fn stuck_after_for(&self, state: State) -> Duration {
        self.stuck_after_state
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(self.stuck_after, |(_, d)| *d)
    }
}

/// Raises alerts: logs, counts, notifies.
#[derive(Debug, Default)]
pub struct Alerter {
    settings: Mutex<AlertSettings>,
    client: Mutex<Option<reqwest::Client>>,
    /// Dedup keys → when last raised.
    raised: Mutex<HashMap<String, OffsetDateTime>>,
}

impl Alerter {
    /// Replaces the settings (at `serve` start).
    pub fn configure(&self, s: AlertSettings) {
        if let Ok(mut g) = self.settings.lock() {
            *g = s;
        }
    }

    pub fn settings(&self) -> AlertSettings {
        self.settings.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Raises `alert` now.
    pub fn raise(&self, mut alert: Alert) {
        let settings = self.settings();
        alert.gateway = settings.gateway.clone();
        let ids = alert.message_ids.join(",");
        let (kind, sev) = (alert.kind.as_str(), alert.severity.as_str());
        match alert.severity {
            Severity::Error => {
                tracing::error!(alert = kind, severity = sev, message_ids = %ids, "{}", alert.text)
            }
            Severity::Warning => {
                tracing::warn!(alert = kind, severity = sev, message_ids = %ids, "{}", alert.text)
            }
        }
        super::global().metrics.alert(kind, sev);
        let Some(url) = settings.webhook else { return };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(client) = self.client() else { return };
        let body = serde_json::to_vec(&alert).unwrap_or_default();
        let mut req = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(key) = &settings.webhook_key {
            let t = OffsetDateTime::now_utc().unix_timestamp();
            req = req.header(SIGNATURE_HEADER, signature(key, t, &body));
        }
        handle.spawn(async move {
            let r = req.body(body).send().await;
            let failed = match r {
                Ok(resp) if resp.status().is_success() => None,
                Ok(resp) => Some(format!("answered {}", resp.status().as_u16())),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = failed {
                super::global().metrics.alert_webhook_failed();
                tracing::warn!(alert = alert.kind.as_str(), error = %why, "operator notification could not be posted");
            }
        });
    }

    /// Raises `alert` unless the same `key` was raised within `every` (`None` = only once).
    pub fn raise_once(&self, key: &str, every: Option<Duration>, alert: Alert) {
        let now = OffsetDateTime::now_utc();
        {
            let Ok(mut raised) = self.raised.lock() else {
                return;
            };
            if let Some(last) = raised.get(key) {
                let due = every.is_some_and(|e| now - *last >= e);
                if !due {
                    return;
                }
            }
            raised.insert(key.to_string(), now);
        }
        self.raise(alert);
    }

    fn client(&self) -> Option<reqwest::Client> {
        let mut g = self.client.lock().ok()?;
        if g.is_none() {
            *g = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .ok();
        }
        g.clone()
    }
}

/// Signature header of notifications (same scheme as the backend webhooks).
pub const SIGNATURE_HEADER: &str = "x-as4gw-signature";

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(key, t "." body)>`, what backend webhooks carry, so
/// one verifier serves both (`as4gw::backend::webhook::verify`).
pub fn signature(key: &[u8], t: i64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// The non-final states a message can get stuck in.
const WAITING: &[(Direction, State)] = &[
    (Direction::Outbound, State::Submitted),
    (Direction::Outbound, State::Sending),
    (Direction::Outbound, State::WaitingForRetry),
    (Direction::Inbound, State::Received),
];

/// Most stuck messages listed per state and check.
const STUCK_LIMIT: usize = 1000;

/// One run of the periodic checks: certificates within the warning window, stuck messages.
pub async fn check_once(store: &dyn MessageStore, certs: &[CertInfo], now: OffsetDateTime) {
    let t = super::global();
    let s = t.alerts.settings();
    t.metrics.set_certificates(certs, now);
    for c in certs {
        let days = c.days_left(now);
        if days < f64::from(s.certificate_warn_days) {
            let (severity, text) = if days <= 0.0 {
                (
                    Severity::Error,
                    format!(
                        "certificate {} ({}) expired on {}: renew it and roll the key",
                        c.name,
                        c.subject,
                        c.not_after.date()
                    ),
                )
            } else {
                (
                    if days < 7.0 {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    format!(
                        "certificate {} ({}) expires in {:.0} days on {}: renew it and roll the key",
                        c.name,
                        c.subject,
                        days.floor(),
                        c.not_after.date()
                    ),
                )
            };
            t.alerts.raise_once(
                &format!("cert:{}:{}", c.name, c.not_after.unix_timestamp()),
                Some(s.repeat),
                Alert::new(AlertKind::CertificateExpiring, severity, Vec::new(), text),
            );
        }
    }
    let mut counts = Vec::new();
    for (dir, state) in WAITING {
        let after = s.stuck_after_for(*state);
        let Ok(after_t) = time::Duration::try_from(after) else {
            continue;
        };
        match store.stuck(*state, now - after_t, STUCK_LIMIT).await {
            Ok(list) => {
                counts.push((*dir, *state, list.len()));
                for m in list {
                    let span = super::span::message_span(
                        super::span::Stage::Store,
                        &m.message_id,
                        &m.conversation_id,
                        &m.pmode_id,
                    );
                    let _e = span.enter();
                    t.alerts.raise_once(
                        &format!(
                            "stuck:{}:{}:{}",
                            m.id.0,
                            state.as_str(),
                            m.since.unix_timestamp()
                        ),
                        None,
                        Alert::new(
                            AlertKind::MessageStuck,
                            Severity::Warning,
                            vec![m.message_id.clone()],
                            format!(
                                "{} message {} has been {} since {} (longer than {}s)",
                                dir.as_str(),
                                m.message_id,
                                state.as_str(),
                                m.since,
                                after.as_secs()
                            ),
                        ),
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, state = state.as_str(), "stuck check: store query failed")
            }
        }
    }
    t.metrics.set_stuck(&counts);
}

/// Runs [`check_once`] every `[alerts] check-interval` until `shutdown` completes;
/// `certs` lists the certificates to watch (called each time: P-Mode reloads are followed).
pub fn spawn_checker(
    store: Arc<dyn MessageStore>,
    certs: Arc<dyn Fn() -> Vec<CertInfo> + Send + Sync>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            let interval = super::global().alerts.settings().check_interval;
            check_once(store.as_ref(), &certs(), OffsetDateTime::now_utc()).await;
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
    })
}
