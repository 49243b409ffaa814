//! Prometheus metrics (`GET /metrics`, OpenMetrics text format).
//!
//! Two kinds of values:
//!
//! * counters and histograms updated where things happen (the MSH, the webhook pusher, the
//!   alerter): they count since the process started, as Prometheus expects (`rate()` copes
//!   with restarts);
//! * gauges read at scrape time: queue depth and age, messages per state and store size come
//!   from the store ([`MessageStore::stats`]), certificate days to expiry from the configured
//!   certificates. Reading them when scraped means they cannot go stale and cost nothing
//!   between scrapes.
//!
//! Every family is listed in `docs/operations.md` ("Metrics") and drawn by
//! `ops/grafana-dashboard.json`.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use super::span::Stage;
use crate::store::{Direction, MessageStore, State};

/// Content type of the exposition ([`Metrics::render`]).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirState {
    pub direction: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirLabel {
    pub direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub direction: String,
    pub ebms_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    pub kind: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertLabel {
    pub cert: String,
    pub subject: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;
type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A certificate whose expiry is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Where it is used, e.g. `own/tls`, `own/edelivery-2_0/signing`,
    /// `pmode/oots-red-blue/responder/encryption`.
    pub name: String,
    pub subject: String,
    pub not_after: OffsetDateTime,
}

impl CertInfo {
    /// Days left at `now` (negative once expired).
    pub fn days_left(&self, now: OffsetDateTime) -> f64 {
        (self.not_after - now).as_seconds_f64() / 86_400.0
    }
}

fn stage_histogram() -> Histogram {
    // 1 ms … ~65 s: packing a large payload takes seconds, a POST waits for the partner.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn e2e_histogram() -> Histogram {
    // 10 ms … ~45 min: retries stretch the end-to-end time of a message to minutes.
    Histogram::new(exponential_buckets(0.01, 2.0, 19))
}

/// The gateway's metrics. One per process ([`super::global`]).
pub struct Metrics {
    registry: Registry,
    messages: Family<DirState, Counter>,
    send_attempts: Counter,
    send_retries: Counter,
    retries_exhausted: Counter,
    failures: Family<CodeLabel, Counter>,
    duplicates: Counter,
    webhook_pushes: Family<BackendLabel, Counter>,
    webhook_failures: Family<BackendLabel, Counter>,
    webhook_consecutive: Family<BackendLabel, Gauge>,
    alerts: Family<AlertLabel, Counter>,
    alert_webhook_failures: Counter,
    stage_seconds: HistFamily<StageLabel>,
    end_to_end_seconds: HistFamily<DirLabel>,
    stuck: Family<DirState, Gauge>,
    // Read at scrape time.
    stored: Family<DirState, Gauge>,
    queue_depth: Family<DirLabel, Gauge>,
    queue_oldest: Family<DirLabel, F64Gauge>,
    store_bytes: Gauge,
    store_commits: Counter,
    store_write_requests: Counter,
    store_errors: Counter,
    cert_days: Family<CertLabel, F64Gauge>,
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("as4gw");
        let m = Metrics {
            messages: Family::default(),
            send_attempts: Counter::default(),
            send_retries: Counter::default(),
            retries_exhausted: Counter::default(),
            failures: Family::default(),
            duplicates: Counter::default(),
            webhook_pushes: Family::default(),
            webhook_failures: Family::default(),
            webhook_consecutive: Family::default(),
            alerts: Family::default(),
            alert_webhook_failures: Counter::default(),
            stage_seconds: Family::new_with_constructor(stage_histogram as fn() -> Histogram),
            end_to_end_seconds: Family::new_with_constructor(e2e_histogram as fn() -> Histogram),
            stuck: Family::default(),
            stored: Family::default(),
            queue_depth: Family::default(),
            queue_oldest: Family::default(),
            store_bytes: Gauge::default(),
            store_commits: Counter::default(),
            store_write_requests: Counter::default(),
            store_errors: Counter::default(),
            cert_days: Family::default(),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        // Counter names get `_total` from the encoder (OpenMetrics).
        r.register(
            "messages",
            "Messages that entered a state, by direction (OUT, IN) and state",
            m.messages.clone(),
        );
        r.register(
            "send_attempts",
            "Outbound send attempts (HTTPS POSTs to partners), first attempts and retries",
            m.send_attempts.clone(),
        );
        r.register(
            "send_retries",
            "Outbound send attempts after the first one (reception awareness resends)",
            m.send_retries.clone(),
        );
        r.register(
            "retries_exhausted",
            "Outbound messages FAILED because every resend of the P-Mode went unanswered",
            m.retries_exhausted.clone(),
        );
        r.register(
            "failures",
            "Failures by EBMS code: outbound messages FAILED, inbound messages refused",
            m.failures.clone(),
        );
        r.register(
            "duplicates",
            "Inbound messages recognised as duplicates (answered with the first receipt)",
            m.duplicates.clone(),
        );
        r.register(
            "webhook_pushes",
            "Webhook pushes answered 2xx, by backend",
            m.webhook_pushes.clone(),
        );
        r.register(
            "webhook_failures",
            "Failed webhook pushes (each failed attempt), by backend",
            m.webhook_failures.clone(),
        );
        r.register(
            "webhook_consecutive_failures",
            "Failed webhook pushes in a row, by backend (0 after a success)",
            m.webhook_consecutive.clone(),
        );
        r.register(
            "alerts",
            "Loud failures raised, by kind and severity",
            m.alerts.clone(),
        );
        r.register(
            "alert_webhook_failures",
            "Operator notifications that could not be posted to [alerts] webhook",
            m.alert_webhook_failures.clone(),
        );
        r.register(
            "stage_seconds",
            "Duration of one message stage (submit, sign_encrypt, send, receipt, receive, verify_decrypt, store, deliver, webhook_push)",
            m.stage_seconds.clone(),
        );
        r.register(
            "end_to_end_seconds",
            "OUT: submission to ACKNOWLEDGED; IN: receipt to DELIVERED",
            m.end_to_end_seconds.clone(),
        );
        r.register(
            "stuck_messages",
            "Messages longer than the stuck threshold in a non-final state (last check)",
            m.stuck.clone(),
        );
        r.register(
            "messages_stored",
            "Messages in the store now, by direction and state",
            m.stored.clone(),
        );
        r.register(
            "queue_depth",
            "Messages waiting: OUT = SUBMITTED, SENDING, WAITING_FOR_RETRY; IN = RECEIVED",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_oldest_age_seconds",
            "Age of the oldest waiting message (0 when none waits)",
            m.queue_oldest.clone(),
        );
        r.register(
            "store_bytes",
            "Bytes of the store: database files and spooled payload and wire files",
            m.store_bytes.clone(),
        );
        r.register(
            "store_commits",
            "Durable commits of the store (each a sync of its log) since the gateway started",
            m.store_commits.clone(),
        );
        r.register(
            "store_write_requests",
            "Write requests of the store since the gateway started; per commit: how many share a sync",
            m.store_write_requests.clone(),
        );
        r.register(
            "store_scrape_errors",
            "Scrapes whose store statistics could not be read",
            m.store_errors.clone(),
        );
        r.register(
            "certificate_expiry_days",
            "Days until a configured certificate expires (own keys, TLS, anchors, P-Mode partners)",
            m.cert_days.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// A message entered `state`.
    pub fn message_state(&self, direction: Direction, state: State) {
        self.messages
            .get_or_create(&DirState {
                direction: direction.as_str().into(),
                state: state.as_str().into(),
            })
            .inc();
    }

    /// A send attempt started (`attempt` counts from 1).
    pub fn send_attempt(&self, attempt: u32) {
        self.send_attempts.inc();
        if attempt > 1 {
            self.send_retries.inc();
        }
    }

    pub fn retries_exhausted(&self) {
        self.retries_exhausted.inc();
    }

    /// A failure with its EBMS code (`EBMS:0301`…), or `none` when no code applies.
    pub fn failure(&self, direction: Direction, ebms_code: &str) {
        self.failures
            .get_or_create(&CodeLabel {
                direction: direction.as_str().into(),
                ebms_code: ebms_code.into(),
            })
            .inc();
    }

    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    /// A webhook push succeeded.
    pub fn webhook_ok(&self, backend: &str) {
        let l = BackendLabel {
            backend: backend.into(),
        };
        self.webhook_pushes.get_or_create(&l).inc();
        self.webhook_consecutive.get_or_create(&l).set(0);
    }

    /// A webhook push failed; returns the failures in a row so far.
    pub fn webhook_failed(&self, backend: &str) -> i64 {
        let l = BackendLabel {
            backend: backend.into(),
        };
        self.webhook_failures.get_or_create(&l).inc();
        self.webhook_consecutive.get_or_create(&l).inc() + 1
    }

    pub fn alert(&self, kind: &str, severity: &str) {
        self.alerts
            .get_or_create(&AlertLabel {
                kind: kind.into(),
                severity: severity.into(),
            })
            .inc();
    }

    pub fn alert_webhook_failed(&self) {
        self.alert_webhook_failures.inc();
    }

    pub fn observe_stage(&self, stage: Stage, seconds: f64) {
        self.stage_seconds
            .get_or_create(&StageLabel {
                stage: stage.as_str().into(),
            })
            .observe(seconds);
    }

    pub fn observe_end_to_end(&self, direction: Direction, seconds: f64) {
        self.end_to_end_seconds
            .get_or_create(&DirLabel {
                direction: direction.as_str().into(),
            })
            .observe(seconds);
    }

    /// Sets the stuck counts found by the checker (states not listed become 0).
    pub fn set_stuck(&self, counts: &[(Direction, State, usize)]) {
        self.stuck.clear();
        for (d, s, n) in counts {
            self.stuck
                .get_or_create(&DirState {
                    direction: d.as_str().into(),
                    state: s.as_str().into(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Sets the certificate gauges.
    pub fn set_certificates(&self, certs: &[CertInfo], now: OffsetDateTime) {
        self.cert_days.clear();
        for c in certs {
            self.cert_days
                .get_or_create(&CertLabel {
                    cert: c.name.clone(),
                    subject: c.subject.clone(),
                })
                .set(c.days_left(now));
        }
    }

    /// The exposition of what is recorded now, without reading the store (tests, tools).
    pub fn registry_text(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The exposition: reads the store's statistics and the certificates, then encodes every
    /// family. Store errors are counted and logged; the rest is still served.
    pub async fn render(
        &self,
        store: Option<&dyn MessageStore>,
        certs: &[CertInfo],
        now: OffsetDateTime,
    ) -> String {
        let stats = match store {
            Some(s) => match s.stats().await {
                Ok(st) => Some(st),
                Err(e) => {
                    self.store_errors.inc();
                    tracing::warn!(error = %e, "metrics: store statistics unavailable");
                    None
                }
            },
            None => None,
        };
        // One scrape at a time sets the scrape-time gauges and encodes them together.
        let _guard = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(st) = stats {
            self.stored.clear();
            let mut depth = [
                (Direction::Outbound, 0i64, None),
                (Direction::Inbound, 0, None),
            ];
            for c in &st.by_state {
                self.stored
                    .get_or_create(&DirState {
                        direction: c.direction.as_str().into(),
                        state: c.state.as_str().into(),
                    })
                    .set(i64::try_from(c.count).unwrap_or(i64::MAX));
                let waiting = matches!(
                    c.state,
                    State::Submitted | State::Sending | State::WaitingForRetry | State::Received
                );
                if waiting {
                    let slot = if c.direction == Direction::Outbound {
                        &mut depth[0]
                    } else {
                        &mut depth[1]
                    };
                    slot.1 += i64::try_from(c.count).unwrap_or(i64::MAX);
                    slot.2 = match (slot.2, c.oldest_created) {
                        (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            for (d, n, oldest) in depth {
                let l = DirLabel {
                    direction: d.as_str().into(),
                };
                self.queue_depth.get_or_create(&l).set(n);
                let age = oldest.map_or(0.0, |t| (now - t).as_seconds_f64().max(0.0));
                self.queue_oldest.get_or_create(&l).set(age);
            }
            self.store_bytes
                .set(i64::try_from(st.bytes).unwrap_or(i64::MAX));
            // The store counts; the exposition's counters follow it (never backwards).
            for (c, now) in [
                (&self.store_commits, st.commits),
                (&self.store_write_requests, st.write_requests),
            ] {
                c.inc_by(now.saturating_sub(c.get()));
            }
        }
        self.set_certificates(certs, now);
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewOutbound, SqliteStore};

    /// An exposition with a sample in every family (empty families are not encoded).
    async fn every_family() -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).await.expect("store");
        store
            .submit(
                OffsetDateTime::now_utc(),
                NewOutbound {
                    message_id: "m@test".into(),
                    ..NewOutbound::default()
                },
            )
            .await
            .expect("submit");
        let m = Metrics::new();
        m.message_state(Direction::Outbound, State::Submitted);
        m.send_attempt(2);
        m.retries_exhausted();
        m.failure(Direction::Inbound, "EBMS:0101");
        m.duplicate();
        m.webhook_ok("b");
        m.webhook_failed("b");
        m.alert("message_stuck", "warning");
        m.alert_webhook_failed();
        m.observe_stage(Stage::Send, 0.1);
        m.observe_end_to_end(Direction::Outbound, 1.0);
        m.set_stuck(&[(Direction::Inbound, State::Received, 1)]);
        let now = OffsetDateTime::now_utc();
        let cert = CertInfo {
            name: "own/tls".into(),
            subject: "CN=x".into(),
            not_after: now,
        };
        let text = m.render(Some(&store), &[cert], now).await;
        store.close().await.expect("close");
        text
    }

    /// Every `as4gw_*` family the shipped dashboard queries exists (no panel silently empty).
    #[tokio::test]
    async fn the_dashboard_queries_only_existing_families() {
        let text = every_family().await;
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/grafana-dashboard.json");
        let dash = std::fs::read_to_string(&path).expect("ops/grafana-dashboard.json");
        let v: serde_json::Value = serde_json::from_str(&dash).expect("dashboard is JSON");
        let mut names = Vec::new();
        for p in v["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().expect("targets") {
                let expr = t["expr"].as_str().expect("expr");
                let mut rest = expr;
                while let Some(i) = rest.find("as4gw_") {
                    let tail = &rest[i..];
                    let end = tail
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(tail.len());
                    names.push(tail[..end].to_string());
                    rest = &tail[end..];
                }
            }
        }
        assert!(names.len() >= 15, "{names:?}");
        for n in names {
            let family = ["_bucket", "_count", "_sum", "_total"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(&n);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "dashboard queries {n}, no family {family}"
            );
        }
    }

    #[tokio::test]
    async fn scrape_time_gauges_come_from_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).await.expect("store");
        let t0 = OffsetDateTime::now_utc() - time::Duration::minutes(5);
        for i in 0..2 {
            store
                .submit(
                    t0,
                    NewOutbound {
                        message_id: format!("m{i}@test"),
                        conversation_id: "c".into(),
                        pmode_id: "p".into(),
                        ..NewOutbound::default()
                    },
                )
                .await
                .expect("submit");
        }
        let m = Metrics::new();
        let certs = [CertInfo {
            name: "own/tls".into(),
            subject: "CN=x".into(),
            not_after: t0 + time::Duration::days(20),
        }];
        let now = OffsetDateTime::now_utc();
        let text = m.render(Some(&store), &certs, now).await;
        assert!(
            text.contains("as4gw_queue_depth{direction=\"OUT\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("as4gw_messages_stored{direction=\"OUT\",state=\"SUBMITTED\"} 2\n"),
            "{text}"
        );
        let age = text
            .lines()
            .find_map(|l| l.strip_prefix("as4gw_queue_oldest_age_seconds{direction=\"OUT\"} "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("oldest age");
        assert!((299.0..400.0).contains(&age), "{age}");
        let days = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("as4gw_certificate_expiry_days{cert=\"own/tls\",subject=\"CN=x\"} ")
            })
            .and_then(|v| v.parse::<f64>().ok())
            .expect("cert days");
        assert!((19.9..20.0).contains(&days), "{days}");
        let bytes = text
            .lines()
            .find_map(|l| l.strip_prefix("as4gw_store_bytes "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("store bytes");
        assert!(bytes > 0.0, "{bytes}");
        // Two submissions, each a write request; at most two commits for them.
        let counter = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("as4gw_{name}_total ")))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        let (commits, requests) = (counter("store_commits"), counter("store_write_requests"));
        assert!(requests >= 2, "{requests} write requests");
        assert!((1..=requests).contains(&commits), "{commits} commits");
        // A second scrape does not count them again.
        let again = m.render(Some(&store), &certs, now).await;
        assert!(
            again.contains(&format!("as4gw_store_write_requests_total {requests}\n")),
            "{again}"
        );
        assert!(text.ends_with("# EOF\n"));
        store.close().await.expect("close");
    }
}
