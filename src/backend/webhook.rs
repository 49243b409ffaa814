//! The webhook pusher: drains the store's notification outbox to the backends' webhook URLs.
//!
//! Delivery is *at least once*: an item is marked done only after the backend answered 2xx,
//! so a crash between the answer and `outbox_done` repeats the push (receivers deduplicate on
//! `X-As4gw-Delivery` or the MessageId). A push that fails is retried with exponential backoff;
//! after `max_attempts` the item becomes DEAD in the outbox — kept, logged at error level and
//! counted, never dropped silently. An inbound message whose delivery push succeeded is
//! DELIVERED; a dead push leaves it RECEIVED, so the backend still sees it when it polls.
//!
//! Item kinds (what the MSH enqueues, see [`delivery_notification`] / [`status_notification`]):
//!
//! * `delivery` — an inbound message: `multipart/form-data` with a `metadata` part (JSON
//!   `{"event":"delivery","message":<MessageView>,"notification":<item body>}`) and one part
//!   per payload, named by the payload name, streamed from the spool;
//! * `status` — an outbound outcome (ACKNOWLEDGED, FAILED with its EBMS code): JSON
//!   `{"event":"status","message":<MessageView>,"notification":<item body>}` built when pushed
//!   (`notification` is the JSON body the MSH enqueued, if any);
//! * anything else — the item body as `application/json`.
//!
//! Every push carries `X-As4gw-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, t "." body)>`
//! where the key is the backend's webhook key ([`BackendAccess::webhook_key`]). Large bodies are
//! signed by a first pass over the files and streamed by a second one, so memory stays flat.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use aws_lc_rs::hmac;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;
use tracing::Instrument;

use super::auth::BackendAccess;
use super::model::{message_view_of, payload_names, MessageView};
use crate::ebms::UserMessage;
use crate::msh::api::RecentRecords;
use crate::msh::clock::{Clock, SystemClock};
use crate::store::{
    Direction, MessageRecord, MessageStore, NewNotification, OutboxItem, State, StoreError, StoreId,
};

/// Signature header.
pub const SIGNATURE_HEADER: &str = "x-as4gw-signature";
/// Event kind header (`delivery`, `status`, …).
pub const EVENT_HEADER: &str = "x-as4gw-event";
/// Outbox item id: the same on every retry of one push (receiver-side deduplication).
pub const DELIVERY_HEADER: &str = "x-as4gw-delivery";
/// The ebMS MessageId the push is about.
pub const MESSAGE_ID_HEADER: &str = "x-as4gw-message-id";

/// Outbox kind of an inbound delivery.
pub const KIND_DELIVERY: &str = "delivery";
/// Outbox kind of an outbound status change.
pub const KIND_STATUS: &str = "status";

/// The notification the MSH enqueues (with `record_received`) for an inbound message routed
/// to `backend`. The pusher builds the body when it pushes.
pub fn delivery_notification(backend: &str, message: Option<StoreId>) -> NewNotification {
    NewNotification {
        message,
        kind: KIND_DELIVERY.into(),
        target: backend.into(),
        body: Vec::new(),
    }
}

/// The notification the MSH enqueues (with `finish_attempt`) when an outbound message of
/// `backend` is ACKNOWLEDGED or FAILED. The view is taken when pushed (final states do not
/// change afterwards).
pub fn status_notification(backend: &str, message: StoreId) -> NewNotification {
    NewNotification {
        message: Some(message),
        kind: KIND_STATUS.into(),
        target: backend.into(),
        body: Vec::new(),
    }
}

/// Counters for operators and tests.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Pushes answered 2xx (items done).
    pub delivered: AtomicU64,
    /// Failed attempts that will be retried.
    pub retried: AtomicU64,
    /// Items given up on (DEAD in the outbox).
    pub dead: AtomicU64,
}

/// Pusher settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Lease owner name (unique per process when several share a database).
    pub owner: String,
    /// Items leased in one store read (the next read comes when all of them have started and
    /// at most half of `concurrency` is busy).
    pub batch: usize,
    /// Pushes in flight at once (a backend takes deliveries in parallel; one push at a time,
    /// each followed by its own commit, capped a gateway at a few hundred messages per
    /// second — issue 8).
    pub concurrency: usize,
    /// Lease length: longer than the slowest push.
    pub lease_for: Duration,
    /// Sleep when the outbox has nothing due.
    pub poll_interval: std::time::Duration,
    /// Whole-request timeout of one push.
    pub request_timeout: std::time::Duration,
    /// Attempts before an item becomes DEAD.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub stats: Arc<WebhookStats>,
    /// Where due times, leases and signature timestamps come from: the system clock, or a
    /// `ManualClock` so tests can let an hour of back-off pass without waiting for it.
    pub clock: Arc<dyn Clock>,
    /// The records the MSH has just recorded ([`crate::msh::Msh::recent`]): a push takes its
    /// message from there instead of reading the store (issue 8). `None`: always read.
    pub recent: Option<Arc<RecentRecords>>,
}

impl Default for WebhookSettings {
    /// 12 attempts with 5 s … 1 h between them (about 5 hours in all) before DEAD. The lease
    /// (30 min) outlasts a whole batch of slow pushes (32 items leased, 16 at a time: 2 × 5
    /// min), so a lease does not expire under a push that is still running.
    fn default() -> Self {
        WebhookSettings {
            owner: format!("webhook-{}", uuid::Uuid::new_v4().simple()),
            batch: 32,
            concurrency: 16,
            lease_for: Duration::minutes(30),
            poll_interval: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(300),
            max_attempts: 12,
            backoff_base: Duration::seconds(5),
            backoff_max: Duration::hours(1),
            stats: Arc::new(WebhookStats::default()),
            clock: Arc::new(SystemClock),
            recent: None,
        }
    }
}

impl WebhookSettings {
    /// Delay before attempt `attempts + 1` after `attempts` failures.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(30);
        let d = self.backoff_base.saturating_mul(1i32 << shift);
        if d > self.backoff_max {
            self.backoff_max
        } else {
            d
        }
    }
}

/// Why one push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("backend {0:?} is not configured")]
    UnknownBackend(String),
    #[error("backend {0:?} has no webhook URL")]
    NoWebhook(String),
    #[error("message {0} no longer exists")]
    MessageGone(StoreId),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("spool file {0}: {1}")]
    File(String, std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("webhook answered {0}")]
    Status(u16),
}

impl PushError {
    /// Errors no retry can fix: dead at once.
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            PushError::UnknownBackend(_) | PushError::NoWebhook(_) | PushError::MessageGone(_)
        )
    }
}

/// `X-As4gw-Signature` value for `body` at unix time `t`: the same scheme as the operator
/// alerts, so it lives once, in the lower layer ([`crate::telemetry::alerts::signature`]).
pub fn sign(key: &[u8], t: i64, body: &[u8]) -> String {
    crate::telemetry::alerts::signature(key, t, body)
}

/// Checks a signature header against `body` (what a receiver does; used by the tests and
/// documented for backends). `tolerance` bounds the age of `t` against `now` (replay window).
pub fn verify(key: &[u8], header: &str, body: &[u8], now: i64, tolerance: i64) -> bool {
    let mut t: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for kv in header.split(',') {
        match kv.trim().split_once('=') {
            Some(("t", v)) => t = v.parse().ok(),
            Some(("v1", v)) => {
                if let Ok(s) = hex::decode(v) {
                    sigs.push(s);
                }
            }
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance {
        return false;
    }
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut msg = Vec::with_capacity(body.len() + 12);
    msg.extend_from_slice(t.to_string().as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    sigs.iter().any(|s| hmac::verify(&k, &msg, s).is_ok())
}

/// A backend the pusher pushes to, with its webhook URL parsed once (not once per push).
struct Target {
    access: Arc<BackendAccess>,
    /// `None` if the configured URL does not parse: the push then fails with reqwest's error.
    url: Option<reqwest::Url>,
}

impl Target {
    fn new(access: BackendAccess) -> Target {
        let url = access
            .webhook
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok());
        Target {
            access: Arc::new(access),
            url,
        }
    }
}

/// A push body: bytes and spool files, in order.
enum Segment {
    Bytes(Bytes),
    File(PathBuf),
}

struct PushBody {
    content_type: String,
    segments: Vec<Segment>,
    len: u64,
}

impl PushBody {
    fn json<T: Serialize>(v: &T) -> PushBody {
        let b = serde_json::to_vec(v).unwrap_or_default();
        PushBody {
            content_type: "application/json".into(),
            len: b.len() as u64,
            segments: vec![Segment::Bytes(b.into())],
        }
    }

    /// HMAC over `t.` and the body, reading the files once.
    async fn signature(&self, key: &[u8], t: i64) -> Result<String, PushError> {
        let k = hmac::Key::new(hmac::HMAC_SHA256, key);
        let mut ctx = hmac::Context::with_key(&k);
        ctx.update(t.to_string().as_bytes());
        ctx.update(b".");
        // Only a body with files needs the read buffer; a small push is all bytes (issue 8:
        // zeroing 256 KiB per push was ~0.7 % of a receiving gateway's CPU).
        let mut buf = Vec::new();
        for s in &self.segments {
            match s {
                Segment::Bytes(b) => ctx.update(b),
                Segment::File(p) => {
                    let name = p.display().to_string();
                    let mut f = tokio::fs::File::open(p)
                        .await
                        .map_err(|e| PushError::File(name.clone(), e))?;
                    buf.resize(256 * 1024, 0);
                    loop {
                        let n = f
                            .read(&mut buf)
                            .await
                            .map_err(|e| PushError::File(name.clone(), e))?;
                        if n == 0 {
                            break;
                        }
                        ctx.update(&buf[..n]);
                    }
                }
            }
        }
        Ok(format!("t={t},v1={}", hex::encode(ctx.sign().as_ref())))
    }

    /// A body without files as one buffer (a small push: the metadata and inline payloads),
    /// sent in one piece with its length; `Err(self)` when it has files to stream.
    fn into_bytes(self) -> Result<Bytes, PushBody> {
        if self.segments.iter().any(|s| matches!(s, Segment::File(_))) {
            return Err(self);
        }
        let mut segments = self.segments.into_iter();
        match (segments.next(), segments.len()) {
            (Some(Segment::Bytes(only)), 0) => Ok(only),
            (first, _) => {
                let mut all = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
                for s in first.into_iter().chain(segments) {
                    if let Segment::Bytes(b) = s {
                        all.extend_from_slice(&b);
                    }
                }
                Ok(Bytes::from(all))
            }
        }
    }

    /// The body as a stream (second pass over the files).
    fn stream(self) -> BoxStream<'static, Result<Bytes, std::io::Error>> {
        stream::iter(self.segments)
            .then(|s| async move {
                match s {
                    Segment::Bytes(b) => Ok::<_, std::io::Error>(
                        stream::once(async move { Ok::<_, std::io::Error>(b) }).boxed(),
                    ),
                    Segment::File(p) => {
                        let f = tokio::fs::File::open(p).await?;
                        Ok(ReaderStream::with_capacity(f, 256 * 1024).boxed())
                    }
                }
            })
            .try_flatten()
            .boxed()
    }
}

#[derive(Serialize)]
struct EventDoc<'a> {
    event: &'a str,
    message: &'a MessageView,
    /// The body the MSH enqueued with the item (its own summary), when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<serde_json::Value>,
}

/// The item body as JSON, if it is any.
fn notification_json(body: &[u8]) -> Option<serde_json::Value> {
    if body.is_empty() {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// Escapes a multipart header parameter value (quotes and backslashes).
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn delivery_body(
    store: &dyn MessageStore,
    rec: &MessageRecord,
    user: Option<UserMessage>,
    item: &OutboxItem,
) -> PushBody {
    let view = message_view_of(rec, user);
    let boundary = format!("as4gw-{}", crate::ebms::model::random_uuid().simple());
    let meta = serde_json::to_vec(&EventDoc {
        event: KIND_DELIVERY,
        message: &view,
        notification: notification_json(&item.body),
    })
    .unwrap_or_default();
    let mut segments = Vec::new();
    let push = |segments: &mut Vec<Segment>, b: Vec<u8>| segments.push(Segment::Bytes(b.into()));
    let mut head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n"
    )
    .into_bytes();
    head.extend_from_slice(&meta);
    head.extend_from_slice(b"\r\n");
    push(&mut segments, head);
    for (p, name) in rec.payloads.iter().zip(payload_names(&rec.payloads)) {
        let h = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"; filename=\"{n}\"\r\nContent-Type: {ct}\r\n\r\n",
            n = quoted(&name),
            ct = p.mime_type.replace(['\r', '\n'], " "),
        );
        push(&mut segments, h.into_bytes());
        segments.push(match p.file.inline_shared() {
            // Inline payloads (issue 8) are already in memory.
            Some(b) => Segment::Bytes(b),
            None => Segment::File(store.spool().path(&p.file)),
        });
        push(&mut segments, b"\r\n".to_vec());
    }
    push(&mut segments, format!("--{boundary}--\r\n").into_bytes());
    // Inline payloads are already counted as `Bytes` segments.
    let files: u64 = rec
        .payloads
        .iter()
        .filter(|p| !p.file.is_inline())
        .map(|p| p.file.size())
        .sum();
    let len = segments
        .iter()
        .map(|s| match s {
            Segment::Bytes(b) => b.len() as u64,
            Segment::File(_) => 0,
        })
        .sum::<u64>()
        + files;
    PushBody {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        segments,
        len,
    }
}

/// Builds and sends one push; `Ok` only on a 2xx answer.
async fn push_one(
    store: &dyn MessageStore,
    backends: &[Target],
    client: &reqwest::Client,
    item: &OutboxItem,
    now: OffsetDateTime,
    recent: Option<&RecentRecords>,
) -> Result<Option<MessageRecord>, PushError> {
    let target = backends
        .iter()
        .find(|b| b.access.name == item.target)
        .ok_or_else(|| PushError::UnknownBackend(item.target.clone()))?;
    let backend = &target.access;
    let url = backend
        .webhook
        .as_deref()
        .ok_or_else(|| PushError::NoWebhook(item.target.clone()))?;
    let (rec, user) = match item.message {
        Some(id) => match recent.and_then(|r| r.take(id)) {
            Some((r, user)) => (Some(r), user),
            None => (
                Some(store.get(id).await?.ok_or(PushError::MessageGone(id))?),
                None,
            ),
        },
        None => (None, None),
    };
    if let Some(r) = &rec {
        crate::telemetry::record_ids(
            &tracing::Span::current(),
            &r.message_id,
            &r.conversation_id,
            &r.pmode_id,
        );
    }
    let body = match (item.kind.as_str(), &rec) {
        (KIND_DELIVERY, Some(r)) => delivery_body(store, r, user, item),
        (KIND_STATUS, Some(r)) => PushBody::json(&EventDoc {
            event: KIND_STATUS,
            message: &message_view_of(r, user),
            notification: notification_json(&item.body),
        }),
        _ => PushBody {
            content_type: "application/json".into(),
            len: item.body.len() as u64,
            segments: vec![Segment::Bytes(Bytes::from(item.body.clone()))],
        },
    };
    let t = now.unix_timestamp();
    let sig = body.signature(backend.webhook_key(), t).await?;
    let mut req = match &target.url {
        Some(parsed) => client.post(parsed.clone()),
        None => client.post(url),
    }
    .header(reqwest::header::CONTENT_TYPE, body.content_type.clone())
    .header(reqwest::header::CONTENT_LENGTH, body.len)
    .header(SIGNATURE_HEADER, sig)
    .header(EVENT_HEADER, item.kind.clone())
    .header(DELIVERY_HEADER, item.id.0.to_string());
    if let Some(r) = &rec {
        req = req.header(MESSAGE_ID_HEADER, r.message_id.clone());
    }
    let body = match body.into_bytes() {
        Ok(bytes) => reqwest::Body::from(bytes),
        Err(streamed) => reqwest::Body::wrap_stream(streamed.stream()),
    };
    let resp = req.body(body).send().await?;
    let status = resp.status();
    // Drain (bounded by the client timeout) so the connection can be reused.
    let _ = resp.bytes().await;
    if status.is_success() {
        Ok(rec)
    } else {
        Err(PushError::Status(status.as_u16()))
    }
}

/// Records the outcome of one push (outbox bookkeeping, DELIVERED for inbound deliveries, in
/// one transaction).
async fn settle(
    store: &dyn MessageStore,
    s: &WebhookSettings,
    item: &OutboxItem,
    result: Result<Option<MessageRecord>, PushError>,
) -> Result<(), StoreError> {
    let now = s.clock.now();
    match result {
        Ok(rec) => {
            // The store moves the message to DELIVERED only if it is an inbound one still
            // RECEIVED (it may have been acknowledged through the API meanwhile).
            let delivered = rec
                .as_ref()
                .filter(|_| item.kind == KIND_DELIVERY)
                .map(|r| {
                    (
                        r.id,
                        format!("pushed to the webhook of backend {}", item.target),
                    )
                });
            let changed = store
                .outbox_done_delivered(item.id, &s.owner, now, delivered)
                .await?;
            s.stats.delivered.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::webhook_ok(&item.target);
            tracing::info!(target_backend = %item.target, kind = %item.kind, item = item.id.0, attempts = item.attempts, "webhook delivered");
            if let (true, Some(r)) = (changed, rec) {
                crate::telemetry::message_state(
                    Direction::Inbound,
                    State::Delivered,
                    Some(r.created_at),
                );
            }
        }
        // A backend without a webhook URL polls the API: nothing to push, nothing failed (no
        // error log, no DEAD item, no webhook_failing alert for a legitimate configuration).
        Err(PushError::NoWebhook(backend)) => {
            store.outbox_done(item.id, &s.owner, now).await?;
            tracing::debug!(target_backend = %backend, kind = %item.kind, item = item.id.0, "backend has no webhook: it polls the API");
        }
        Err(e) => {
            let error = e.to_string();
            let dead = e.is_permanent() || item.attempts >= s.max_attempts;
            let message_id = match item.message {
                Some(id) => store.get(id).await.ok().flatten().map(|r| r.message_id),
                None => None,
            };
            crate::telemetry::webhook_failed(&item.target, message_id.as_deref(), &error, dead);
            if dead {
                store
                    .outbox_retry(item.id, &s.owner, now, None, &error)
                    .await?;
                s.stats.dead.fetch_add(1, Ordering::Relaxed);
                tracing::error!(target_backend = %item.target, kind = %item.kind, item = item.id.0, attempts = item.attempts, error = %error, "webhook push given up: item is DEAD in the outbox");
            } else {
                let next = now + s.backoff(item.attempts);
                store
                    .outbox_retry(item.id, &s.owner, now, Some(next), &error)
                    .await?;
                s.stats.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target_backend = %item.target, kind = %item.kind, item = item.id.0, attempts = item.attempts, error = %error, "webhook push failed; will retry");
            }
        }
    }
    Ok(())
}

/// Pushes one leased item and settles it in the outbox, or hands its lease back when the
/// pusher is stopping (a push in progress is finished, never cut off halfway).
async fn push_leased(
    store: &dyn MessageStore,
    backends: &[Target],
    client: &reqwest::Client,
    s: &WebhookSettings,
    stop: &AtomicBool,
    item: OutboxItem,
) {
    if stop.load(Ordering::SeqCst) {
        // Hand the lease back so the item is due at once after a restart.
        let now = s.clock.now();
        if let Err(e) = store
            .outbox_retry(
                item.id,
                &s.owner,
                now,
                Some(now),
                "pusher stopped before pushing",
            )
            .await
        {
            tracing::warn!(item = item.id.0, error = %e, "could not release outbox item");
        }
        return;
    }
    let span = crate::telemetry::pending_span(crate::telemetry::Stage::Webhook);
    let timer = crate::telemetry::StageTimer::start(crate::telemetry::Stage::Webhook);
    let result = push_one(
        store,
        backends,
        client,
        &item,
        s.clock.now(),
        s.recent.as_deref(),
    )
    .instrument(span.clone())
    .await;
    drop(timer);
    if let Err(e) = settle(store, s, &item, result).instrument(span).await {
        // E.g. the lease expired during a slow push: the item is pushed again later (at least
        // once); the other pushes go on.
        tracing::error!(item = item.id.0, error = %e, "webhook pusher: outbox bookkeeping failed");
    }
}

/// Starts the pusher; it stops when `shutdown` completes, after the push in progress.
pub fn spawn_webhook_pusher(
    store: Arc<dyn MessageStore>,
    backends: Vec<BackendAccess>,
    settings: WebhookSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let backends: Vec<Target> = backends.into_iter().map(Target::new).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Woken by shutdown and by the store after every commit that enqueued a push.
    let wake = store
        .outbox_signal()
        .unwrap_or_else(|| Arc::new(Notify::new()));
    {
        let (stop, wake) = (Arc::clone(&stop), Arc::clone(&wake));
        tokio::spawn(async move {
            shutdown.await;
            stop.store(true, Ordering::SeqCst);
            wake.notify_one();
        });
    }
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .no_proxy()
            .timeout(settings.request_timeout)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhook pusher cannot build its HTTP client; not started");
                return;
            }
        };
        // A pipeline, not rounds: up to `concurrency` pushes in flight, each free slot filled
        // from a queue of leased items, the queue refilled (`batch` items in one read) once it
        // is empty and at most half the slots are busy. Rounds (lease a batch, push it all, lease the next) made every item
        // wait for the slowest push and commit of the round before it: one backend taking its
        // 5-minute timeout held back every push to every backend. Leasing per free slot
        // instead cost a store read per push (issue 8: -12 % msgs/s); one read per batch
        // does not.
        let settings = &settings;
        let (store, backends, client, stop_flag) = (store.as_ref(), &backends[..], &client, &*stop);
        let concurrency = settings.concurrency.max(1);
        let mut in_flight = futures_util::stream::FuturesUnordered::new();
        let mut queue: std::collections::VecDeque<OutboxItem> = std::collections::VecDeque::new();
        // The last lease found fewer due items than it asked for: lease again only when a commit
        // enqueued a push (`wake`) or at the next poll (items whose back-off has passed).
        let mut drained = false;
        let mut next_poll = tokio::time::Instant::now();
        // The queue is refilled when at most half the slots are busy: under load one read
        // then leases several items (a refill per started push cost a store read each).
        let low_water = concurrency / 2;
        while !stop.load(Ordering::SeqCst) {
            if queue.is_empty() && !drained && in_flight.len() <= low_water {
                let want = settings.batch.max(1);
                next_poll = tokio::time::Instant::now() + settings.poll_interval;
                match store
                    .lease_outbox(
                        settings.clock.now(),
                        &settings.owner,
                        want,
                        settings.lease_for,
                    )
                    .await
                {
                    Ok(items) => {
                        drained = items.len() < want;
                        queue.extend(items);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "webhook pusher: store error");
                        drained = true;
                    }
                }
            }
            while in_flight.len() < concurrency {
                let Some(item) = queue.pop_front() else { break };
                in_flight.push(push_leased(
                    store, backends, client, settings, stop_flag, item,
                ));
            }
            let refill = queue.is_empty() && in_flight.len() <= low_water;
            tokio::select! {
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                () = wake.notified(), if refill => drained = false,
                () = tokio::time::sleep_until(next_poll), if refill && drained => drained = false,
            }
        }
        // Pushes in progress finish; leased ones not started hand their lease back.
        for item in queue {
            in_flight.push(push_leased(
                store, backends, client, settings, stop_flag, item,
            ));
        }
        // Pushes in progress finish; leased ones not started hand their lease back.
        while in_flight.next().await.is_some() {}
        tracing::info!("webhook pusher stopped");
    })
}
