//! The async driver of both pipelines: the only place in `msh` that touches the store, the
//! spool, the clock and the transport. The decisions it executes are in [`super::outbound`]
//! and [`super::inbound`].
//!
//! Durability (architecture "Durability rules"): a submission resolves only after
//! `store.submit` committed; a receipt is answered only after `record_received` committed; the
//! wire file is spooled and synced before `record_wire`, and every retry POSTs that file
//! unchanged (digest §2.8: same MessageId, identical signed bytes).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;
use time::OffsetDateTime;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::{Backend, Config, Limits};
use crate::ebms::codes::EbmsCode;
use crate::ebms::model::{Messaging, UserMessage};
use crate::mime::{
    spool_scratch, MimeLimits, MimeReader, MimeWriter, Part as MimePart, PartBody, SpooledMessage,
};
use crate::pmode::model::{PMode, PartyId};
use crate::pmode::registry::Registry;
use crate::security::crypto::AwsLc;
use crate::security::sign::ENCRYPTED_PART_TYPE;
use crate::security::{InboundPolicy, Part, PartSource, Receiver, SignedReference};
use crate::store::{
    Direction, FileRef, MessageRecord, MessageStore, NewInbound, NewNotification, Outcome, Payload,
    Received, State, StoreError,
};
use crate::telemetry::{self, Stage, StageTimer};
use crate::transport::BoxError;

use super::api::{RecentRecords, SubmitError, SubmitRequest, SubmitResult, Submitter};
use super::clock::Clock;
use super::compress::{decompress_error, DecompressError, GunzipLimited};
use super::edm;
use super::inbound::{self, InboundCtx};
use super::keys::{suite_of, Keyring};
use super::outbound::{
    judge_response, judge_send_error, next_outcome, pack_files_parsed, prepare_submission,
    sent_references, wire_content_type, wire_ids, PackData, PackError, Verdict,
};
use super::signals::{error_envelope, Refusal, SOAP_CONTENT_TYPE};
use super::transport::{Transport, WireRequest};

/// Knobs of one MSH instance.
#[derive(Debug, Clone)]
pub struct MshSettings {
    /// This gateway's party (From of what it sends; MessageId domain).
    pub own_party: PartyId,
    pub limits: Limits,
    pub backends: Vec<Backend>,
    /// How long a send attempt may hold a message before another sender may take it over.
    /// Must exceed the longest send (upload + response timeout).
    pub lease_for: time::Duration,
    /// Scheduler poll period when nothing woke it (retries becoming due).
    pub poll: std::time::Duration,
    /// Concurrent send attempts.
    pub concurrency: usize,
    /// Lease owner prefix (a UUID is appended per process).
    pub node: String,
}

impl MshSettings {
    pub fn from_config(cfg: &Config) -> Self {
        MshSettings {
            own_party: cfg.party.clone(),
            limits: cfg.limits,
            backends: cfg.backends.clone(),
            lease_for: time::Duration::minutes(10),
            poll: std::time::Duration::from_secs(1),
            concurrency: cfg.send_concurrency,
            node: cfg.party.id.clone(),
        }
    }
}

/// The HTTP answer of the inbound pipeline.
#[derive(Debug, Clone)]
pub struct InboundReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The EBMS code reported, if the message was refused.
    pub code: Option<EbmsCode>,
}

/// One message service handler.
pub struct Msh {
    store: Arc<dyn MessageStore>,
    pmodes: Arc<Registry>,
    /// Swapped whole on a reload (SIGHUP); a message keeps the snapshot it started with.
    keys: std::sync::RwLock<Arc<Keyring>>,
    clock: Arc<dyn Clock>,
    transport: Arc<dyn Transport>,
    settings: MshSettings,
    owner: String,
    wake: Notify,
    /// While [`Msh::run_scheduler`] runs: where a submission whose first attempt the store
    /// leased at once ([`MessageStore::submit_leased`]) is handed to the scheduler.
    direct: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Direct>>>,
    /// Attempts running or reserved (at most `settings.concurrency`).
    in_flight: AtomicUsize,
    /// Records just recorded with a webhook notification, for the pusher.
    recent: Arc<RecentRecords>,
}

/// A submission's first attempt handed to the scheduler: the leased record, with its header as
/// built (not parsed back from its stored text; issue 8: ~2 % of a sender's CPU). Attempts the
/// scheduler leases itself parse the stored header.
type Direct = (MessageRecord, Option<Messaging>);

/// Gives back an attempt slot of [`Msh::in_flight`] when the attempt ends (or never started).
struct Slot<'a>(&'a AtomicUsize);

impl Slot<'_> {
    /// The slot goes with a record handed to the scheduler, whose attempt gives it back.
    fn hand_over(self) {
        std::mem::forget(self);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Msh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msh").field("owner", &self.owner).finish()
    }
}

fn json_body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap_or_default()
}

impl Msh {
    pub fn new(
        store: Arc<dyn MessageStore>,
        pmodes: Arc<Registry>,
        keys: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        transport: Arc<dyn Transport>,
        settings: MshSettings,
    ) -> Arc<Msh> {
        let owner = format!("{}-{}", settings.node, uuid::Uuid::new_v4().simple());
        Arc::new(Msh {
            store,
            pmodes,
            keys: std::sync::RwLock::new(keys),
            clock,
            transport,
            settings,
            owner,
            wake: Notify::new(),
            direct: std::sync::Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            recent: Arc::new(RecentRecords::default()),
        })
    }

    /// Whether notifications for `backend` are pushed (it has a webhook): only then is a
    /// record kept in [`Msh::recent`].
    fn pushes_to(&self, backend: &str) -> bool {
        self.settings
            .backends
            .iter()
            .any(|b| b.name == backend && b.webhook.is_some())
    }

    /// The records this MSH has just recorded with a webhook notification: hand it to the
    /// webhook pusher (`WebhookSettings::recent`) so it need not read them back.
    pub fn recent(&self) -> Arc<RecentRecords> {
        Arc::clone(&self.recent)
    }

    pub fn store(&self) -> &Arc<dyn MessageStore> {
        &self.store
    }

    /// The keys in force (a snapshot: keep it for the life of one message).
    pub fn keys(&self) -> Arc<Keyring> {
        match self.keys.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Puts a new keyring in force (key rollover without restart, `docs/lifecycle.md`).
    /// Messages already being packed or verified finish with the keys they started with.
    pub fn replace_keys(&self, keys: Arc<Keyring>) {
        match self.keys.write() {
            Ok(mut g) => *g = keys,
            Err(p) => *p.into_inner() = keys,
        }
    }

    pub fn settings(&self) -> &MshSettings {
        &self.settings
    }

    fn domain(&self) -> &str {
        &self.settings.own_party.id
    }

    fn refuse(&self, r: Refusal) -> InboundReply {
        telemetry::global()
            .metrics
            .failure(Direction::Inbound, r.code.map_or("none", |c| c.code()));
        tracing::info!(code = ?r.code.map(|c| c.code()), detail = %r.detail, "inbound message refused");
        InboundReply {
            status: r.side.http_status(),
            content_type: SOAP_CONTENT_TYPE,
            body: error_envelope(&r, self.domain(), self.clock.now()),
            code: r.code,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Inbound

    /// The AS4 endpoint: one request body (streamed) in, the synchronous signal out.
    pub async fn receive<'s, S, B, E>(&self, content_type: Option<&str>, body: S) -> InboundReply
    where
        S: Stream<Item = Result<B, E>> + Send + 's,
        B: Into<Bytes> + 's,
        E: Into<BoxError> + 's,
    {
        // The ids are recorded on the span once the header is verified.
        let span = telemetry::pending_span(Stage::Receive);
        let _timer = StageTimer::start(Stage::Receive);
        self.receive_in_span(content_type, body)
            .instrument(span)
            .await
    }

    async fn receive_in_span<'s, S, B, E>(
        &self,
        content_type: Option<&str>,
        body: S,
    ) -> InboundReply
    where
        S: Stream<Item = Result<B, E>> + Send + 's,
        B: Into<Bytes> + 's,
        E: Into<BoxError> + 's,
    {
        let Some(ct) = content_type else {
            return self.refuse(Refusal::peer(
                EbmsCode::MimeInconsistency,
                "no Content-Type",
                None,
            ));
        };
        let l = &self.settings.limits;
        let limits = MimeLimits {
            max_parts: l.max_parts as usize,
            max_part_bytes: l.max_part_size,
            max_total_bytes: l.max_message_size,
            ..MimeLimits::default()
        };
        let mime_refusal = |e: crate::mime::MimeError| {
            if e.is_peer_fault() {
                Refusal::peer(e.ebms_code(), e.to_string(), None)
            } else {
                Refusal::ours(e.to_string(), None)
            }
        };
        let mut reader = match MimeReader::new(ct, body, limits) {
            Ok(r) => r,
            Err(e) => return self.refuse(mime_refusal(e)),
        };
        // The parts stream into a private directory of the spool (a name no FileRef can have);
        // whatever happens, it is removed before answering.
        let work = self.store.spool().dir().join(format!(
            ".in-{}",
            crate::ebms::model::random_uuid().simple()
        ));
        // Parts the size of an inline payload stay in memory; larger ones go to unsynced
        // scratch files (the durable copy is made by the spool once the message is accepted).
        let memory_max = self.store.spool().inline_max();
        let msg = match spool_scratch(&mut reader, &work, memory_max).await {
            Ok(m) => m,
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&work).await;
                return self.refuse(mime_refusal(e));
            }
        };
        drop(reader);
        // The directory exists only if a part went to a file (a small message has none): no
        // blocking-pool hop to remove nothing (issue 8, fourth round).
        let on_disk = msg.payloads.iter().any(|p| p.data.is_none());
        let reply = self.receive_spooled(msg).await;
        if on_disk || work.exists() {
            let _ = tokio::fs::remove_dir_all(&work).await;
        }
        reply
    }

    async fn receive_spooled(&self, msg: SpooledMessage) -> InboundReply {
        let parts: Vec<Part> = msg
            .payloads
            .into_iter()
            .map(|p| Part {
                content_id: p.headers.content_id.clone().unwrap_or_default(),
                mime_type: p
                    .headers
                    .media_type()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                source: match p.data {
                    Some(d) => PartSource::Memory(d.to_vec()),
                    None => PartSource::File {
                        path: p.path,
                        size: p.size,
                        sha256: Some(p.sha256),
                    },
                },
            })
            .collect();
        let set = self.pmodes.current();
        let keys = self.keys();
        let domain = self.domain().to_string();
        let max_decompressed = self.settings.limits.max_decompressed_size;
        let xml_limits = crate::xml::Limits {
            max_depth: self.settings.limits.max_xml_depth,
            max_nodes: self.settings.limits.max_xml_nodes,
            ..crate::xml::Limits::default()
        };
        let now = self.clock.now();
        let root = msg.root.body;
        let verify_span = telemetry::stage_span(Stage::Verify);
        let verify_timer = StageTimer::start(Stage::Verify);
        let small = root.len() as u64 + parts.iter().map(part_len).sum::<u64>() <= INLINE_WORK_MAX
            && parts
                .iter()
                .all(|p| matches!(p.source, PartSource::Memory(_)));
        let job = move || {
            let _in_span = verify_span.enter();
            let (trust, partners) = keys.trust_for(&set);
            let ctx = InboundCtx {
                crypto: &AwsLc,
                pmodes: &set,
                keys: &keys,
                trust: &trust,
                partners: &partners,
                own_domain: &domain,
                max_decompressed,
                xml_limits,
                now,
            };
            inbound::process(&ctx, &root, parts)
        };
        // Decryption of large parts is seconds of CPU and file I/O: off the async workers. A
        // small message in memory is a fraction of a millisecond of CPU: on this worker, which
        // saves two thread hand-overs per message (issue 8, fourth round).
        let processed = if small {
            Ok(job())
        } else {
            tokio::task::spawn_blocking(job).await
        };
        drop(verify_timer);
        if let Ok(Ok(acc)) = &processed {
            telemetry::record_ids(
                &tracing::Span::current(),
                acc.user.message_info.message_id.as_str(),
                &acc.user.collaboration_info.conversation_id,
                &acc.pmode.id,
            );
        }
        match processed {
            Err(e) => self.refuse(Refusal::ours(format!("inbound processing: {e}"), None)),
            Ok(Err(r)) => {
                // Refused before the P-Mode and conversation were known: the MessageId, if
                // the header got that far, and empty conversation and P-Mode.
                if let Some(mid) = &r.ref_to {
                    telemetry::record_ids(&tracing::Span::current(), mid.as_str(), "", "");
                }
                self.refuse(r)
            }
            Ok(Ok(acc)) => self.accept(acc, now).await,
        }
    }

    /// The verified payloads into the store's spool: gunzipped (bounded: EBMS:0303) or copied.
    async fn spool_payloads(&self, acc: &inbound::Accepted) -> Result<Vec<Payload>, Refusal> {
        let mid = acc.user.message_info.message_id.clone();
        let spool = self.store.spool().clone();
        let max = self.settings.limits.max_decompressed_size;
        let items: Vec<_> = acc
            .payloads
            .iter()
            .map(|p| {
                (
                    p.content_id.clone(),
                    p.mime_type.clone(),
                    p.source.clone(),
                    p.compressed,
                )
            })
            .collect();
        let inline_lim = spool.inline_max().min(INLINE_WORK_MAX).min(max);
        if let Some(out) = spool_in_memory(&spool, &items, inline_lim) {
            return Ok(out);
        }
        let m2 = mid.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut out: Vec<Payload> = Vec::new();
            let undo = |out: &[Payload]| {
                for p in out {
                    let _ = std::fs::remove_file(spool.path(&p.file));
                }
            };
            for (cid, mime_type, source, compressed) in items {
                let reader: Box<dyn std::io::Read> = match &source {
                    PartSource::Memory(d) => Box::new(std::io::Cursor::new(d.clone())),
                    PartSource::File { path, .. } => match std::fs::File::open(path) {
                        Ok(f) => Box::new(std::io::BufReader::with_capacity(256 * 1024, f)),
                        Err(e) => {
                            undo(&out);
                            return Err(Refusal::ours(format!("payload cid:{cid}: {e}"), Some(m2)));
                        }
                    },
                };
                let size_in = match &source {
                    PartSource::Memory(d) => d.len() as u64,
                    PartSource::File { size, .. } => *size,
                };
                let written = if compressed {
                    spool.put_sync(GunzipLimited::new(reader, size_in, max), max)
                } else {
                    spool.put_sync(reader, u64::MAX)
                };
                match written {
                    Ok(file) => out.push(Payload {
                        part_id: format!("cid:{cid}"),
                        mime_type,
                        file,
                    }),
                    Err(e) => {
                        undo(&out);
                        let bad = match &e {
                            StoreError::TooLarge(m) => Some(DecompressError::TooLarge(*m)),
                            StoreError::Io(io) => decompress_error(io).cloned(),
                            _ => None,
                        };
                        return Err(match bad {
                            Some(d) if compressed => Refusal::peer(
                                EbmsCode::DecompressionFailure,
                                format!("cid:{cid}: {d}"),
                                Some(m2),
                            ),
                            _ => Refusal::ours(format!("spooling a payload: {e}"), Some(m2)),
                        });
                    }
                }
            }
            Ok(out)
        })
        .await;
        match r {
            Ok(r) => r,
            Err(e) => Err(Refusal::ours(
                format!("spooling the payloads: {e}"),
                Some(mid),
            )),
        }
    }

    async fn accept(&self, acc: inbound::Accepted, now: OffsetDateTime) -> InboundReply {
        let mid = acc.user.message_info.message_id.clone();
        let ours = |d: String| Refusal::ours(d, Some(mid.clone()));
        let spool = self.store.spool();
        let payloads = match self.spool_payloads(&acc).await {
            Ok(p) => p,
            Err(r) => return self.refuse(r),
        };
        let files: Vec<FileRef> = payloads.iter().map(|p| p.file.clone()).collect();
        let user = &acc.user;
        let properties: Vec<(String, String)> = user
            .message_properties
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        // OOTS (docs/oots.md "Inbound flow at C3"): a request breaking the OOTS rules is
        // answered by the gateway and never delivered.
        let broken = if !acc.test_service
            && edm::is_oots_request(&acc.pmode, &user.collaboration_info.action)
        {
            self.judge_oots(&acc, &payloads).await
        } else {
            None
        };
        let delivery = NewNotification {
            message: None,
            kind: "delivery".into(),
            target: route_inbound(&self.settings.backends, &acc.pmode, &properties),
            body: json_body(serde_json::json!({
                "message_id": mid.as_str(),
                "conversation_id": user.collaboration_info.conversation_id,
                "pmode_id": acc.pmode.id,
                "action": user.collaboration_info.action,
                "properties": properties.iter().map(|(n, v)| serde_json::json!({"name": n, "value": v})).collect::<Vec<_>>(),
            })),
        };
        // A backend without a webhook polls the API: an outbox item for it would only be
        // written, leased and settled as "nothing to push" (two write requests per message).
        let notify = (!acc.test_service && broken.is_none())
            .then(|| delivery.clone())
            .filter(|n| self.pushes_to(&n.target));
        let new = NewInbound {
            message_id: mid.as_str().to_string(),
            conversation_id: user.collaboration_info.conversation_id.clone(),
            pmode_id: acc.pmode.id.clone(),
            ref_to_message_id: user
                .message_info
                .ref_to_message_id
                .as_ref()
                .map(|r| r.as_str().to_string()),
            properties,
            payloads,
            header: Some(acc.header_xml.clone()),
            receipt: Some(acc.receipt.clone()),
        };
        // The record as the store will answer it, for the delivery push (see RecentRecords).
        let snapshot = notify.as_ref().map(|_| received_record(&new, now));
        let window = time::Duration::try_from(acc.pmode.reception_awareness.duplicate_window)
            .unwrap_or(time::Duration::days(7));
        let store_span = telemetry::stage_span(Stage::Store);
        let recorded = {
            let _t = StageTimer::start(Stage::Store);
            self.store
                .record_received(now, new, window, notify)
                .instrument(store_span.clone())
                .await
        };
        let _in_store = store_span.enter();
        match &recorded {
            Ok(Received::New(id)) => {
                if let Some(mut r) = snapshot {
                    r.id = *id;
                    self.recent.put(r, Some(acc.user.clone()));
                }
                telemetry::message_state(Direction::Inbound, State::Received, None);
                tracing::info!(
                    test_service = acc.test_service,
                    "message RECEIVED (recorded durably; the receipt is answered next)"
                );
            }
            Ok(Received::Duplicate { .. }) => {
                telemetry::global().metrics.duplicate();
                tracing::info!(
                    "duplicate received: the first receipt is sent again, nothing is delivered"
                );
            }
            Err(_) => {}
        }
        drop(_in_store);
        let receipt = match recorded {
            // The receipt was stored in the same transaction as the message.
            Ok(Received::New(id)) => {
                if acc.test_service {
                    if let Err(e) = self
                        .store
                        .mark_delivered(
                            id,
                            now,
                            "ebMS test service: answered with a receipt, never delivered (digest §2.4)",
                        )
                        .await
                    {
                        tracing::warn!(%e, "marking a test message");
                    } else {
                        telemetry::message_state(Direction::Inbound, State::Delivered, None);
                    }
                }
                if let Some(b) = broken {
                    self.answer_broken(id, &acc, b, now, delivery).await;
                }
                acc.receipt
            }
            Ok(Received::Duplicate { of }) => {
                // Never delivered twice; the first receipt again (digest §2.8).
                for f in &files {
                    let _ = tokio::fs::remove_file(spool.path(f)).await;
                }
                match self.store.receipt(of).await {
                    Ok(Some(r)) => r.bytes,
                    Ok(None) => {
                        match self.store.store_receipt(of, now, acc.receipt.clone()).await {
                            Ok(()) => acc.receipt,
                            Err(StoreError::AlreadyRecorded(_)) => {
                                match self.store.receipt(of).await {
                                    Ok(Some(r)) => r.bytes,
                                    _ => return self.refuse(ours("receipt vanished".into())),
                                }
                            }
                            Err(e) => {
                                return self.refuse(ours(format!("storing the receipt: {e}")))
                            }
                        }
                    }
                    Err(e) => return self.refuse(ours(format!("reading the receipt: {e}"))),
                }
            }
            Err(e) => {
                for f in &files {
                    let _ = tokio::fs::remove_file(spool.path(f)).await;
                }
                return self.refuse(ours(format!("recording the message: {e}")));
            }
        };
        InboundReply {
            status: 200,
            content_type: SOAP_CONTENT_TYPE,
            body: receipt,
            code: None,
        }
    }

    /// Reads the first payload (bounded) and judges an OOTS request by the OOTS rules.
    async fn judge_oots(
        &self,
        acc: &inbound::Accepted,
        payloads: &[Payload],
    ) -> Option<edm::BrokenRequest> {
        let first = payloads.first()?;
        if first.file.size() > edm::MAX_REGREP {
            return None;
        }
        let bytes = self.store.spool().read_all(&first.file).await.ok()?;
        let header = acc.header_xml.clone();
        tokio::task::spawn_blocking(move || edm::judge_request(&header, &bytes))
            .await
            .ok()
            .flatten()
    }

    /// Answers a broken OOTS request with EDM:ERR:0003 through this gateway's own submission
    /// path and marks the request DELIVERED. If the answer cannot be queued, the request is
    /// delivered to the backend after all (which may answer it itself).
    async fn answer_broken(
        &self,
        id: crate::store::StoreId,
        acc: &inbound::Accepted,
        b: edm::BrokenRequest,
        now: OffsetDateTime,
        delivery: NewNotification,
    ) {
        let mid = acc.user.message_info.message_id.as_str().to_string();
        let set = self.pmodes.current();
        let peer = acc
            .user
            .party_info
            .from
            .party_ids
            .first()
            .map(|p| p.value.as_str())
            .unwrap_or_default();
        let queued = match edm::answer_pmode(&set, &acc.pmode, &self.settings.own_party.id, peer) {
            None => Err(format!(
                "no OOTS P-Mode with an ExceptionResponse leg to {peer}"
            )),
            Some(pm) => {
                let v2 = edm::pmode_is_v2(pm);
                let ts = now
                    .to_offset(time::UtcOffset::UTC)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| now.unix_timestamp().to_string());
                let doc = edm::answer_document(&b, v2, &uuid::Uuid::new_v4().to_string(), &ts);
                match self.store.spool().put_bytes(&doc).await {
                    Err(e) => Err(format!("spooling the answer: {e}")),
                    Ok(file) => {
                        let req = edm::answer_submission(
                            &b,
                            pm,
                            &acc.user.collaboration_info.conversation_id,
                            file.clone(),
                        );
                        match self.submit(req).await {
                            Ok(r) => Ok(r.message_id),
                            Err(e) => {
                                if !matches!(e, SubmitError::Internal(_)) {
                                    let _ = self.store.spool().discard(&file).await;
                                }
                                Err(format!("submitting the answer: {e}"))
                            }
                        }
                    }
                }
            }
        };
        match queued {
            Ok(answer) => {
                tracing::info!(request = %mid, %answer, violations = b.violations.len(), "OOTS request answered with EDM:ERR:0003");
                let detail = format!("{} (answer {answer})", edm::ANSWERED_DETAIL);
                if let Err(e) = self.store.mark_delivered(id, now, &detail).await {
                    tracing::warn!(%e, "marking an answered OOTS request");
                }
            }
            Err(why) => {
                tracing::warn!(request = %mid, %why, "broken OOTS request not answered; delivering it");
                let n = NewNotification {
                    message: Some(id),
                    ..delivery
                };
                if let Err(e) = self.store.enqueue(now, n).await {
                    tracing::warn!(%e, "delivering an unanswered OOTS request");
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Outbound

    /// Leases what is due now and sends it (all attempts run to completion). For tests with a
    /// manual clock; the server uses [`Msh::run_scheduler`]. Returns the number of attempts.
    pub async fn run_once(&self) -> usize {
        let now = self.clock.now();
        let recs = match self
            .store
            .lease_due(now, &self.owner, 64, self.settings.lease_for)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%e, "lease_due");
                return 0;
            }
        };
        let n = recs.len();
        futures_util::future::join_all(recs.into_iter().map(|r| self.send_one(r, None))).await;
        n
    }

    /// Reserves up to `n` attempt slots; how many it got.
    fn reserve(&self, n: usize) -> usize {
        let cap = self.settings.concurrency;
        let mut got = 0;
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                got = n.min(cap.saturating_sub(cur));
                Some(cur + got)
            });
        got
    }

    /// Runs the attempt of a leased record on `tasks`; its slot (reserved) is given back when
    /// the attempt ends.
    fn spawn_attempt(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        rec: MessageRecord,
        messaging: Option<Messaging>,
    ) {
        let me = Arc::clone(self);
        tasks.spawn(async move {
            let _slot = Slot(&me.in_flight);
            me.send_one(rec, messaging).await
        });
    }

    /// The scheduler: leases due messages (woken by submissions, else every `poll`) and takes
    /// the submissions leased at once ([`MessageStore::submit_leased`]); runs at most
    /// `concurrency` attempts at once; on `stop` it leases nothing more and waits for the
    /// attempts in flight.
    pub async fn run_scheduler(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tasks: JoinSet<()> = JoinSet::new();
        let (direct_tx, mut direct) = tokio::sync::mpsc::unbounded_channel::<Direct>();
        if let Ok(mut d) = self.direct.lock() {
            *d = Some(direct_tx);
        }
        // Whether the store may hold due messages this scheduler has not leased: at start (a
        // restart's backlog), after a wake (a submission stored without a slot, a retry asked
        // for) and at every poll (retries and expired leases become due with time). It is not
        // set by an attempt that ends: asking the store then found nothing almost always, cost
        // a write request each time, and held every free slot while it ran, so submissions
        // arriving meanwhile were stored without one and leased by a second request (issue 8:
        // about half of them at 32 in flight).
        let mut backlog = true;
        let mut next_poll = tokio::time::Instant::now() + self.settings.poll;
        loop {
            if *stop.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            while let Ok((r, m)) = direct.try_recv() {
                self.spawn_attempt(&mut tasks, r, m);
            }
            if tokio::time::Instant::now() >= next_poll {
                backlog = true;
                next_poll = tokio::time::Instant::now() + self.settings.poll;
            }
            if backlog {
                let free = self.reserve(self.settings.concurrency);
                if free > 0 {
                    match self
                        .store
                        .lease_due(self.clock.now(), &self.owner, free, self.settings.lease_for)
                        .await
                    {
                        Ok(recs) => {
                            let leased = recs.len();
                            for r in recs {
                                self.spawn_attempt(&mut tasks, r, None);
                            }
                            self.in_flight.fetch_sub(free - leased, Ordering::SeqCst);
                            // All slots filled: more may be due, ask again when one frees up.
                            backlog = leased == free;
                        }
                        Err(e) => {
                            self.in_flight.fetch_sub(free, Ordering::SeqCst);
                            tracing::warn!(%e, "lease_due");
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.wake.notified() => backlog = true,
                _ = tokio::time::sleep_until(next_poll) => {}
                r = stop.changed() => { if r.is_err() { break; } }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                Some((r, m)) = direct.recv() => self.spawn_attempt(&mut tasks, r, m),
            }
        }
        // No more hand-overs; those already made (leased in the store) still run.
        if let Ok(mut d) = self.direct.lock() {
            *d = None;
        }
        direct.close();
        while let Some((r, m)) = direct.recv().await {
            self.spawn_attempt(&mut tasks, r, m);
        }
        while tasks.join_next().await.is_some() {}
    }

    /// A sender for a submission's first attempt when the scheduler runs and has a free slot
    /// (reserved: handing the record over, or dropping the [`Slot`], gives it back).
    fn direct_slot(&self) -> Option<(tokio::sync::mpsc::UnboundedSender<Direct>, Slot<'_>)> {
        let tx = self.direct.lock().ok()?.clone()?;
        (self.reserve(1) == 1).then(|| (tx, Slot(&self.in_flight)))
    }

    fn status_notification(
        &self,
        rec: &MessageRecord,
        pmode: Option<&PMode>,
        o: &Outcome,
    ) -> Option<NewNotification> {
        let (state, code, detail) = match o {
            Outcome::Acknowledged { .. } => ("ACKNOWLEDGED", None, String::new()),
            Outcome::Failed { code, detail } => ("FAILED", Some(code.code()), detail.clone()),
            Outcome::Retry { .. } => return None,
        };
        Some(NewNotification {
            message: Some(rec.id),
            kind: "status".into(),
            target: pmode
                .and_then(|p| p.backend.clone())
                .unwrap_or_else(|| "default".into()),
            body: json_body(serde_json::json!({
                "message_id": rec.message_id,
                "state": state,
                "code": code,
                "detail": detail,
            })),
        })
    }

    async fn finish(&self, rec: &MessageRecord, pmode: Option<&PMode>, outcome: Outcome) {
        self.finish_with(rec, pmode, outcome, None, None).await
    }

    /// [`Msh::finish`], recording `unrecorded` (a wire message packed and sent in this attempt
    /// but not yet recorded, see [`Msh::pack_timed`]) in the same commit; `user` is the stored
    /// header's UserMessage when parsed already (kept with the record for the pusher).
    async fn finish_with(
        &self,
        rec: &MessageRecord,
        pmode: Option<&PMode>,
        outcome: Outcome,
        unrecorded: Option<FileRef>,
        user: Option<&UserMessage>,
    ) {
        // As for deliveries: no outbox item for a backend that has no webhook.
        let notify = self
            .status_notification(rec, pmode, &outcome)
            .filter(|n| self.pushes_to(&n.target));
        let (state, code) = match &outcome {
            Outcome::Acknowledged { .. } => (State::Acknowledged, None),
            Outcome::Retry { code, .. } => (State::WaitingForRetry, *code),
            Outcome::Failed { code, .. } => (State::Failed, Some(*code)),
        };
        let summary = match &outcome {
            Outcome::Acknowledged { .. } => String::new(),
            Outcome::Retry {
                next_attempt_at,
                detail,
                ..
            } => format!("next attempt at {next_attempt_at}: {detail}"),
            Outcome::Failed { detail, .. } => detail.clone(),
        };
        let _t = StageTimer::start(Stage::Store);
        let store_span = telemetry::stage_span(Stage::Store);
        let now = self.clock.now();
        // The record as the store will answer it after this commit, for the status push
        // (see RecentRecords); only final outcomes are notified.
        let snapshot = notify.as_ref().map(|_| {
            let mut r = rec.clone();
            r.state = state;
            r.updated_at = store_time(now);
            r.next_attempt_at = None;
            r.lease = None;
            r.last_code = code;
            r.last_detail = Some(match &outcome {
                // What the store records as the detail of an acknowledgement.
                Outcome::Acknowledged { .. } => "receipt received".into(),
                Outcome::Retry { detail, .. } | Outcome::Failed { detail, .. } => detail.clone(),
            });
            if r.wire.is_none() {
                r.wire = unrecorded.clone();
            }
            r
        });
        let finishing = match unrecorded {
            Some(wire) => {
                self.store
                    .finish_attempt_with_wire(rec.id, &self.owner, now, wire, outcome, notify)
            }
            None => self
                .store
                .finish_attempt(rec.id, &self.owner, now, outcome, notify),
        };
        let finished = finishing.instrument(store_span.clone()).await;
        // The outcome is logged in the store stage: it is what was just recorded.
        let _in_store = store_span.enter();
        match finished {
            Err(e) => tracing::warn!(id = %rec.id, %e, "finishing a send attempt"),
            Ok(()) => {
                if let Some(r) = snapshot {
                    self.recent.put(r, user.cloned());
                }
                telemetry::message_state(Direction::Outbound, state, Some(rec.created_at));
                let code = code.map(|c| c.code());
                match state {
                    State::Acknowledged => {
                        tracing::info!(
                            attempt = rec.attempts,
                            "message ACKNOWLEDGED (receipt verified)"
                        )
                    }
                    State::Failed => {
                        telemetry::global()
                            .metrics
                            .failure(Direction::Outbound, code.unwrap_or("none"));
                        tracing::warn!(attempt = rec.attempts, code, detail = %summary, "message FAILED")
                    }
                    _ => {
                        tracing::info!(attempt = rec.attempts, code, detail = %summary, "message WAITING_FOR_RETRY")
                    }
                }
            }
        }
    }

    /// One attempt for a leased message, inside the span of its ids; `messaging` is its header
    /// when the submission handed it over as built.
    async fn send_one(&self, rec: MessageRecord, messaging: Option<Messaging>) {
        let span = telemetry::message_span(
            Stage::Send,
            &rec.message_id,
            &rec.conversation_id,
            &rec.pmode_id,
        );
        telemetry::global().metrics.send_attempt(rec.attempts);
        telemetry::global()
            .metrics
            .message_state(Direction::Outbound, State::Sending);
        self.send_attempt(rec, messaging).instrument(span).await
    }

    async fn send_attempt(&self, rec: MessageRecord, fresh: Option<Messaging>) {
        let set = self.pmodes.current();
        let Some(pmode) = set.get(&rec.pmode_id).cloned() else {
            let detail = format!("P-Mode {} is no longer configured", rec.pmode_id);
            return self
                .finish(
                    &rec,
                    None,
                    Outcome::Failed {
                        code: EbmsCode::ProcessingModeMismatch,
                        detail,
                    },
                )
                .await;
        };
        let fail = |detail: String| Outcome::Failed {
            code: EbmsCode::Other,
            detail,
        };
        // 1. the wire file: packed once, then reused by every attempt
        let content_type = match wire_content_type(&rec.message_id) {
            Ok(c) => c,
            Err(e) => return self.finish(&rec, Some(&pmode), fail(e.to_string())).await,
        };
        // The stored header, parsed once per attempt: packing and the receiver's URL both
        // read it (issue 8: it was parsed once for each). A first attempt handed over by the
        // submission has it as built.
        let messaging = match fresh {
            Some(m) => Some(Ok(m)),
            None => rec
                .header
                .as_deref()
                .map(|h| Messaging::parse(h.as_bytes()).map_err(|e| e.to_string())),
        };
        // What was signed: known from packing in this attempt, else read back from the wire.
        let (wire, packed_refs, unrecorded) = match &rec.wire {
            Some(w) => (w.clone(), None, None),
            None => match self.pack_timed(&rec, &pmode, messaging.as_ref()).await {
                Ok((w, refs, recorded)) => {
                    let unrecorded = (!recorded).then(|| w.clone());
                    (w, Some(refs), unrecorded)
                }
                Err(PackFailure::Final(d)) => {
                    return self.finish(&rec, Some(&pmode), fail(d)).await
                }
                Err(PackFailure::Transient(d)) => {
                    tracing::warn!(id = %rec.id, "packing: {d}");
                    let o = next_outcome(
                        Verdict::Retry {
                            code: None,
                            detail: d,
                        },
                        &pmode.reception_awareness.retry,
                        rec.attempts,
                        self.clock.now(),
                    );
                    if let Outcome::Failed { detail, .. } = &o {
                        telemetry::retries_exhausted(&rec, detail);
                    }
                    return self.finish(&rec, Some(&pmode), o).await;
                }
            },
        };
        let path = self.store.spool().path(&wire);
        let inline = wire.inline_shared();
        // 2. what was signed
        let sent = match packed_refs {
            Some(refs) => refs,
            None => match read_root(&path, inline.clone(), &content_type)
                .await
                .and_then(|s| sent_references(&s))
            {
                Ok(s) => s,
                Err(e) => {
                    return self
                        .finish(&rec, Some(&pmode), fail(format!("wire file: {e}")))
                        .await
                }
            },
        };
        // 3. the receiver
        let parsed_user = messaging
            .as_ref()
            .and_then(|m| m.as_ref().ok())
            .and_then(|m| m.user_message.as_ref());
        let receiver = parsed_user
            .and_then(|u| {
                pmode
                    .legs
                    .iter()
                    .find(|l| l.action == u.collaboration_info.action)
                    .cloned()
            })
            .map(|leg| pmode.sender_receiver(&leg).1.clone());
        let Some(url) = receiver.and_then(|r| r.endpoint) else {
            return self
                .finish_with(
                    &rec,
                    Some(&pmode),
                    fail("the receiver has no endpoint".into()),
                    unrecorded,
                    parsed_user,
                )
                .await;
        };
        // 4. POST and judge
        let resp = {
            let _t = StageTimer::start(Stage::Send);
            self.transport
                .post(WireRequest {
                    url,
                    content_type,
                    file: path,
                    inline,
                })
                .await
        };
        let now = self.clock.now();
        let verdict = match resp {
            Ok(r) => {
                let keys = self.keys();
                let (trust, partners) = keys.trust_for(&set);
                let rx = Receiver {
                    crypto: &AwsLc,
                    trust: &trust,
                    partners: &partners,
                    keys: &[],
                    at: now,
                    policy: InboundPolicy::for_suite(suite_of(pmode.security.suite)),
                };
                let _in_span = telemetry::stage_span(Stage::Receipt).entered();
                let _t = StageTimer::start(Stage::Receipt);
                judge_response(&rx, &r, &rec.message_id, &sent)
            }
            Err(e) => judge_send_error(&e),
        };
        tracing::debug!(id = %rec.id, mid = %rec.message_id, attempt = rec.attempts, ?verdict, "attempt");
        let retryable = matches!(verdict, Verdict::Retry { .. });
        let outcome = next_outcome(verdict, &pmode.reception_awareness.retry, rec.attempts, now);
        if let (true, Outcome::Failed { detail, .. }) = (retryable, &outcome) {
            telemetry::retries_exhausted(&rec, detail);
        }
        self.finish_with(&rec, Some(&pmode), outcome, unrecorded, parsed_user)
            .await;
    }

    /// [`Msh::pack`] in the sign/encrypt stage span, timed. Every later attempt resends the
    /// recorded bytes (write-once). Returns whether the wire message is recorded already:
    /// - a wire message in a spool file is recorded before it is sent (a crash must not leave
    ///   an unreferenced file behind);
    /// - a small (inline) one is recorded with the attempt's outcome, one commit less
    ///   ([`MessageStore::finish_attempt_with_wire`]). A crash after the POST then makes the
    ///   next attempt pack again: new content key and ids inside the security header, but the
    ///   same signed references (the header's wsu:Id, the Body's fixed id, the same digests),
    ///   so the receiver's first receipt, answered again to the duplicate, still acknowledges
    ///   them: `msh::e2e::crash_kill9_both_gateways_loses_nothing_and_duplicates_nothing`.
    async fn pack_timed(
        &self,
        rec: &MessageRecord,
        pmode: &PMode,
        messaging: Option<&Result<Messaging, String>>,
    ) -> Result<(FileRef, Vec<SignedReference>, bool), PackFailure> {
        let _t = StageTimer::start(Stage::Pack);
        let (file, refs) = self
            .pack(rec, pmode, messaging)
            .instrument(telemetry::stage_span(Stage::Pack))
            .await?;
        if file.is_inline() {
            return Ok((file, refs, false));
        }
        match self
            .store
            .record_wire(rec.id, &self.owner, self.clock.now(), file.clone())
            .await
        {
            Ok(()) => Ok((file, refs, true)),
            Err(e) => {
                let _ = self.store.spool().discard(&file).await;
                Err(PackFailure::Transient(format!(
                    "recording the wire file: {e}"
                )))
            }
        }
    }

    /// Packs the wire message ([`Msh::pack_timed`] records it); `messaging` is the stored
    /// header parsed (`None`: there is none).
    async fn pack(
        &self,
        rec: &MessageRecord,
        pmode: &PMode,
        messaging: Option<&Result<Messaging, String>>,
    ) -> Result<(FileRef, Vec<SignedReference>), PackFailure> {
        let (Some(header), Some(messaging)) = (rec.header.clone(), messaging) else {
            return Err(PackFailure::Final("no stored header".into()));
        };
        if self
            .keys()
            .signing_at(suite_of(pmode.security.suite), self.clock.now())
            .is_none()
        {
            return Err(PackFailure::Final(format!(
                "no signing key for {}",
                pmode.security.suite.name()
            )));
        }
        let spool = self.store.spool();
        // gzip, digests, signature and encryption stream between files in a private work
        // directory of the spool (removed afterwards), then the MIME writer streams the root
        // and the encrypted part files into the wire file.
        let work = spool.dir().join(format!(
            ".out-{}",
            crate::ebms::model::random_uuid().simple()
        ));
        let payloads = self.payload_paths(rec).await;
        let payloads = payloads?;
        // Only payloads in files get a work directory (`pack_streaming`); a small message is
        // packed in memory and has nothing to clean up (no blocking-pool hop per message).
        let uses_files = in_files(&payloads);
        let file = self
            .pack_streaming(rec, pmode, header, messaging.as_ref(), payloads, &work)
            .await;
        if uses_files {
            let _ = tokio::fs::remove_dir_all(&work).await;
        }
        file
    }

    /// The payloads for the packer: spool files by path, inline payloads from memory.
    async fn payload_paths(
        &self,
        rec: &MessageRecord,
    ) -> Result<Vec<(String, String, PackData)>, PackFailure> {
        let spool = self.store.spool();
        let mut payloads = Vec::new();
        for p in &rec.payloads {
            let cid = p
                .part_id
                .strip_prefix("cid:")
                .unwrap_or(&p.part_id)
                .to_string();
            if let Some(b) = p.file.inline_shared() {
                let data = PackData::Memory(b);
                payloads.push((cid, p.mime_type.clone(), data));
                continue;
            }
            let path = spool.path(&p.file);
            if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                return Err(PackFailure::Transient(format!(
                    "payload {}: {} missing",
                    p.part_id,
                    path.display()
                )));
            }
            let data = PackData::Spooled {
                path,
                sha256: *p.file.sha256(),
            };
            payloads.push((cid, p.mime_type.clone(), data));
        }
        Ok(payloads)
    }
}

impl Msh {
    async fn pack_streaming(
        &self,
        rec: &MessageRecord,
        pmode: &PMode,
        header: String,
        messaging: Result<&Messaging, &String>,
        payloads: Vec<(String, String, PackData)>,
        work: &std::path::Path,
    ) -> Result<(FileRef, Vec<SignedReference>), PackFailure> {
        let transient = |d: String| PackFailure::Transient(d);
        // Only payloads in files need the work directory (gzip and encryption output).
        if in_files(&payloads) {
            tokio::fs::create_dir_all(work)
                .await
                .map_err(|e| transient(format!("work directory: {e}")))?;
        }
        let keys = self.keys();
        let now = self.clock.now();
        // The partner's encryption certificate and our signing key are chosen for this moment:
        // the newest valid ones of their rollover lists.
        let chosen;
        let pm = if certificates_fixed(pmode) {
            pmode
        } else {
            chosen = pmode.with_certificates_at(now);
            &chosen
        };
        let messaging =
            messaging.map_err(|e| PackFailure::Final(PackError::Header(e.clone()).to_string()))?;
        let packed = if in_files(&payloads) {
            // Files: gzip and encryption are file I/O and seconds of CPU for a large payload.
            let m = messaging.clone();
            let pm = pm.clone();
            let w = work.to_path_buf();
            tokio::task::spawn_blocking(move || {
                pack_now(&keys, now, &header, &m, payloads, &pm, &w)
            })
            .await
            .map_err(|e| transient(format!("packing task: {e}")))??
        } else {
            // Every payload is in memory, so the message is small (inline in the store): its
            // packing is ~0.1 ms of CPU and no I/O, less than the hand-over to a blocking
            // thread and back (issue 8, fourth round).
            pack_now(&keys, now, &header, messaging, payloads, pm, work)?
        };
        let (b, root) = wire_ids(&rec.message_id);
        let references = packed.references;
        let mut writer = MimeWriter::with_boundary(&b, &root, packed.soap)
            .map_err(|e| PackFailure::Final(e.to_string()))?;
        for (cid, data) in &packed.parts {
            let body = match data {
                PackData::Memory(b) => PartBody::Bytes(b.clone()),
                PackData::File(path) | PackData::Spooled { path, .. } => PartBody::file(path)
                    .await
                    .map_err(|e| transient(format!("encrypted part {cid}: {e}")))?,
            };
            writer
                .add_part(cid, ENCRYPTED_PART_TYPE, body)
                .map_err(|e| PackFailure::Final(e.to_string()))?;
        }
        let spool = self.store.spool();
        let (mut tx, rx) = tokio::io::duplex(256 * 1024);
        let write = async move {
            let r = writer.write_to(&mut tx).await;
            drop(tx);
            r
        };
        // A small wire message stays inline: recorded in the same commit as its row, no file.
        let (written, file) = tokio::join!(write, spool.put_stream(rx, u64::MAX));
        let file = file.map_err(|e| transient(format!("spooling the wire file: {e}")))?;
        if let Err(e) = written {
            // The reader saw an early end: the file is incomplete.
            let _ = spool.discard(&file).await;
            return Err(transient(format!("writing the wire file: {e}")));
        }
        Ok((file, references))
    }
}

/// A time as the store keeps it (whole microseconds), so a record built in memory shows the
/// times a read of the store would.
fn store_time(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

/// The record of an inbound message as `MessageStore::get` answers it right after
/// `record_received` stored `new` at `now` (its id is set once known).
fn received_record(new: &NewInbound, now: OffsetDateTime) -> MessageRecord {
    let at = store_time(now);
    MessageRecord {
        id: crate::store::StoreId(0),
        direction: Direction::Inbound,
        message_id: new.message_id.clone(),
        conversation_id: new.conversation_id.clone(),
        pmode_id: new.pmode_id.clone(),
        ref_to_message_id: new.ref_to_message_id.clone(),
        idempotency_key: None,
        state: State::Received,
        created_at: at,
        updated_at: at,
        attempts: 0,
        next_attempt_at: None,
        lease: None,
        wire: None,
        last_code: None,
        last_detail: None,
        properties: new.properties.clone(),
        payloads: new.payloads.clone(),
        header: new.header.clone(),
        payloads_purged_at: None,
    }
}

/// Whether [`PMode::with_certificates_at`] gives the P-Mode unchanged at any time: no party
/// has a rollover list, at most the one encryption certificate chosen at load time. Then the
/// per-message clone of the P-Mode (every certificate's DER) and the parsing of its
/// certificates are skipped (issue 8, fourth round).
fn certificates_fixed(p: &PMode) -> bool {
    [&p.initiator, &p.responder]
        .iter()
        .all(|party| match party.encryption_certs.as_slice() {
            [] => true,
            [only] => party.encryption_cert.as_ref() == Some(only),
            _ => false,
        })
}

/// [`pack_files_parsed`] with the signing key in force at `now`, failures sorted into final
/// and transient ones.
fn pack_now(
    keys: &Keyring,
    now: OffsetDateTime,
    header: &str,
    messaging: &Messaging,
    payloads: Vec<(String, String, PackData)>,
    pm: &PMode,
    work: &std::path::Path,
) -> Result<super::outbound::PackedFiles, PackFailure> {
    let suite = suite_of(pm.security.suite);
    let signer = keys.signing_at(suite, now).ok_or_else(|| {
        PackFailure::Final(format!("no signing key for {}", pm.security.suite.name()))
    })?;
    pack_files_parsed(&AwsLc, header, messaging, payloads, pm, signer, work).map_err(|e| match e {
        PackError::Io(e) => PackFailure::Transient(format!("packing: {e}")),
        other => PackFailure::Final(other.to_string()),
    })
}

/// Messages (inbound: SOAP part and payloads) up to this size, held in memory, are processed
/// on the async worker that has them instead of a blocking thread: their CPU (~0.1–0.3 ms)
/// costs less than two thread hand-overs, and it is short enough not to hold up the other
/// tasks of the worker (issue 8, fourth round).
const INLINE_WORK_MAX: u64 = 64 * 1024;

fn part_len(p: &Part) -> u64 {
    match &p.source {
        PartSource::Memory(d) => d.len() as u64,
        PartSource::File { size, .. } => *size,
    }
}

/// The verified payloads of a small message into the store's spool without a blocking thread:
/// only when every one is in memory and, decompressed, at most `inline_lim` bytes, so it stays
/// inline in the store (no file is written). `None` otherwise, and also on any error: the
/// blocking path then does the work and reports the failure exactly as it always did.
fn spool_in_memory(
    spool: &crate::store::Spool,
    items: &[(String, String, PartSource, bool)],
    inline_lim: u64,
) -> Option<Vec<Payload>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(items.len());
    for (cid, mime_type, source, compressed) in items {
        let PartSource::Memory(d) = source else {
            return None;
        };
        if d.len() as u64 > inline_lim {
            return None;
        }
        let data = if *compressed {
            let mut buf = Vec::new();
            let gz = GunzipLimited::new(d.as_slice(), d.len() as u64, inline_lim);
            gz.take(inline_lim + 1).read_to_end(&mut buf).ok()?;
            if buf.len() as u64 > inline_lim {
                return None;
            }
            buf
        } else {
            d.clone()
        };
        // At most `inline_lim` (≤ the spool's inline maximum) bytes: kept inline, no I/O.
        let file = spool.put_sync(std::io::Cursor::new(data), u64::MAX).ok()?;
        out.push(Payload {
            part_id: format!("cid:{cid}"),
            mime_type: mime_type.clone(),
            file,
        });
    }
    Some(out)
}

/// Whether a payload of the packer is in a file (then packing needs a work directory).
fn in_files(payloads: &[(String, String, PackData)]) -> bool {
    payloads
        .iter()
        .any(|(_, _, d)| matches!(d, PackData::File(_) | PackData::Spooled { .. }))
}

/// The backend an inbound message is delivered to: the first configured backend (in
/// configuration order) whose `allowed-final-recipients` names the message's `finalRecipient`
/// and whose `allowed-pmodes` holds the message's P-Mode (so that it may also read the message
/// through the API); else the P-Mode's `backend`; else `default`.
pub fn route_inbound(
    backends: &[Backend],
    pmode: &PMode,
    properties: &[(String, String)],
) -> String {
    let recipient = properties
        .iter()
        .find(|(n, _)| n == crate::oots::PROP_FINAL_RECIPIENT)
        .map(|(_, v)| v.as_str());
    recipient
        .and_then(|r| {
            backends.iter().find(|b| {
                b.allowed_final_recipients.iter().any(|a| a == r)
                    && b.allowed_pmodes.iter().any(|p| p == &pmode.id)
            })
        })
        .map(|b| b.name.clone())
        .or_else(|| pmode.backend.clone())
        .unwrap_or_else(|| "default".into())
}

enum PackFailure {
    Final(String),
    Transient(String),
}

/// The SOAP part of a spooled wire file (the root comes first, digest §12.5; the payload
/// parts after it are not read).
async fn read_root(
    path: &std::path::Path,
    inline: Option<Bytes>,
    content_type: &str,
) -> Result<Vec<u8>, String> {
    let f: crate::store::SpoolReader = match inline {
        Some(b) => crate::store::SpoolReader::Inline(std::io::Cursor::new(b)),
        None => crate::store::SpoolReader::File(
            tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
    };
    let limits = MimeLimits {
        max_part_bytes: u64::MAX,
        max_total_bytes: u64::MAX,
        ..MimeLimits::default()
    };
    let mut r = MimeReader::from_async_read(content_type, f, limits).map_err(|e| e.to_string())?;
    match r.next_part().await.map_err(|e| e.to_string())? {
        Some(MimePart::Root(root)) => Ok(root.body.to_vec()),
        _ => Err("the SOAP part is not first".into()),
    }
}

impl Submitter for Msh {
    fn submit(&self, req: SubmitRequest) -> BoxFuture<'_, Result<SubmitResult, SubmitError>> {
        Box::pin(async move {
            let now = self.clock.now();
            let set = self.pmodes.current();
            let prepared = prepare_submission(
                &set,
                &self.settings.own_party,
                &self.settings.backends,
                &req,
                now,
            )?;
            let messaging = prepared.messaging;
            let mid = prepared.outbound.message_id.clone();
            let conv = prepared.outbound.conversation_id.clone();
            let pmode_id = prepared.pmode.id.clone();
            let span = telemetry::message_span(Stage::Submit, &mid, &conv, &pmode_id);
            let _timer = StageTimer::start(Stage::Submit);
            // With a free attempt slot the first attempt is leased in the submission's commit
            // and handed to the scheduler; otherwise the scheduler leases it when it can.
            let slot = self.direct_slot();
            let stored = match &slot {
                Some(_) => {
                    self.store
                        .submit_leased(now, prepared.outbound, &self.owner, self.settings.lease_for)
                        .instrument(span.clone())
                        .await
                }
                None => self
                    .store
                    .submit(now, prepared.outbound)
                    .instrument(span.clone())
                    .await
                    .map(|s| (s, None)),
            };
            let stored = stored.map(|(s, leased)| {
                match (leased, slot) {
                    (Some(rec), Some((tx, slot))) => {
                        // The slot goes with the record; if the scheduler just stopped, the
                        // lease expires and the message is leased again.
                        if tx.send((rec, Some(messaging))).is_ok() {
                            slot.hand_over();
                        }
                    }
                    _ => {
                        if s.created {
                            self.wake.notify_one();
                        }
                    }
                }
                s
            });
            match stored {
                Ok(s) if s.created => {
                    telemetry::message_state(Direction::Outbound, State::Submitted, None);
                    span.in_scope(|| tracing::info!("message SUBMITTED"));
                    Ok(SubmitResult {
                        store_id: Some(s.id),
                        message_id: mid,
                        conversation_id: conv,
                        pmode_id,
                        state: "SUBMITTED".into(),
                        created: true,
                    })
                }
                Ok(s) => {
                    let rec = self
                        .store
                        .get(s.id)
                        .await
                        .map_err(|e| SubmitError::Internal(e.to_string()))?
                        .ok_or_else(|| {
                            SubmitError::Internal("earlier submission vanished".into())
                        })?;
                    Ok(SubmitResult {
                        store_id: Some(s.id),
                        message_id: rec.message_id,
                        conversation_id: rec.conversation_id,
                        pmode_id: rec.pmode_id,
                        state: rec.state.as_str().into(),
                        created: false,
                    })
                }
                Err(StoreError::Conflict(_)) => Err(SubmitError::DuplicateMessageId(mid)),
                Err(e) => Err(match e.unavailable() {
                    Some(u) => SubmitError::Unavailable(format!(
                        "{u}; the submission was not stored, repeat it later ({e})"
                    )),
                    None => SubmitError::Internal(e.to_string()),
                }),
            }
        })
    }
}
