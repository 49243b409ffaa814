//! The contract between the backend room (REST API, webhooks) and the MSH: what a backend
//! submits, what it gets back, and why a submission can be refused.
//!
//! Everything here is checked *before* anything is queued: a refused submission leaves no
//! trace in the store (issue "Backend hand-off": "refused before anything is queued").

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::store::{FileRef, StoreId};

/// A party as a backend names it. Unset fields are taken from the P-Mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyRef {
    pub id: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub id_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A message property (`eb:MessageProperties/eb:Property`), e.g. originalSender, finalRecipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyIn {
    pub name: String,
    pub value: String,
    /// The errata `type` attribute (e.g. `urn:oasis:names:tc:ebcore:partyid-type:unregistered`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub prop_type: Option<String>,
}

/// One payload of a submission, already spooled to disk by the backend room.
#[derive(Debug, Clone)]
pub struct PayloadIn {
    /// The part name the backend used in its multipart upload; becomes the Content-ID's local
    /// part when free, and the name under which the payload is downloaded on the other side.
    pub part_name: String,
    /// MIME type of the (uncompressed) payload; becomes the `MimeType` part property.
    pub mime_type: String,
    /// Further part properties (name, value), e.g. `CharacterSet`.
    pub properties: Vec<(String, String)>,
    /// The spooled, synced bytes.
    pub file: FileRef,
}

/// What a backend submits (`POST /api/v1/messages`, metadata part plus payload parts).
#[derive(Debug, Clone, Default)]
pub struct SubmitRequest {
    /// Select the P-Mode by id, or leave empty and give service/action/parties.
    pub pmode_id: Option<String>,
    pub service: Option<String>,
    pub service_type: Option<String>,
    pub action: Option<String>,
    pub from: Option<PartyRef>,
    pub to: Option<PartyRef>,
    pub conversation_id: Option<String>,
    pub ref_to_message_id: Option<String>,
    /// A backend-chosen MessageId (must be a unique RFC 2822 `left@right` id); generated if absent.
    pub message_id: Option<String>,
    /// `Idempotency-Key` header: a retried submission returns the first message.
    pub idempotency_key: Option<String>,
    pub properties: Vec<PropertyIn>,
    pub payloads: Vec<PayloadIn>,
    /// The backend (by name) that submitted, for authorisation checks and routing of replies.
    pub backend: Option<String>,
}

/// The answer to an accepted submission (HTTP 202): durable when returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResult {
    #[serde(skip)]
    pub store_id: Option<StoreId>,
    pub message_id: String,
    pub conversation_id: String,
    pub pmode_id: String,
    /// `SUBMITTED` (or the current state of the earlier message for a repeated idempotency key).
    pub state: String,
    /// `false` when an earlier submission with the same idempotency key was returned.
    pub created: bool,
}

/// Why a submission was refused. Each variant names the offending field so the REST room can
/// build an RFC 9457 problem document (`/errors/...` type, 4xx status, `field`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// A field is malformed (`field` is a JSON pointer-like path such as `properties/0/value`).
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// No P-Mode with this id, or none matching service/action/parties.
    #[error("no P-Mode matches: {0}")]
    UnknownPmode(String),
    /// More than one P-Mode matches; the backend must name one.
    #[error("more than one P-Mode matches: {0}")]
    AmbiguousPmode(String),
    /// A message property the P-Mode requires is missing (or has the wrong type).
    #[error("required message property {name} missing or invalid: {reason}")]
    MissingProperty { name: String, reason: String },
    /// A payload is not allowed by the P-Mode's payload profile (type, size, count).
    #[error("payload {part}: {reason}")]
    PayloadNotAllowed { part: String, reason: String },
    /// The backend may not use this P-Mode or these originalSender/finalRecipient values.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The MessageId was already used by another submission.
    #[error("message id {0} already used")]
    DuplicateMessageId(String),
    /// Internal failure (store); nothing was acknowledged.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store cannot take writes right now (disk full, read-only); nothing was
    /// acknowledged and the same submission can be repeated later.
    #[error("{0}")]
    Unavailable(String),
}

impl SubmitError {
    /// The HTTP status the REST room answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            SubmitError::Invalid { .. }
            | SubmitError::MissingProperty { .. }
            | SubmitError::PayloadNotAllowed { .. } => 422,
            SubmitError::UnknownPmode(_) => 422,
            SubmitError::AmbiguousPmode(_) => 409,
            SubmitError::DuplicateMessageId(_) => 409,
            SubmitError::Forbidden(_) => 403,
            SubmitError::Internal(_) => 500,
            SubmitError::Unavailable(_) => 503,
        }
    }
}

/// The MSH's submission entry point as the backend room sees it.
pub trait Submitter: Send + Sync {
    /// Validates against the P-Modes and records the message durably (SUBMITTED) before
    /// resolving: the caller may answer 202 as soon as this returns `Ok`.
    fn submit(&self, req: SubmitRequest) -> BoxFuture<'_, Result<SubmitResult, SubmitError>>;
}

/// Message records as the MSH has just recorded them — an outbound message's final outcome
/// (with its `status` notification), an inbound message (with its `delivery` notification) —
/// so the webhook pusher builds the push from memory instead of reading the record back
/// (issue 8, fourth round: that read and its blocking-thread hop were ~5 % of each gateway's
/// CPU). Each record is what `MessageStore::get` answers right after that commit; the
/// fidelity is checked against the SQLite store by `backend::webhook` tests.
///
/// Process-local and bounded (entries and bytes, oldest dropped first): after a restart, for an
/// evicted entry or when the pusher got to an item first, it reads the store as before. A
/// record is taken once; later pushes of the same item (retries) read the store.
#[derive(Debug, Default)]
pub struct RecentRecords {
    inner: std::sync::Mutex<Recent>,
}

/// A record kept, with its UserMessage when the MSH had it parsed (the pusher's view then
/// does not parse the header again).
type Kept = (
    crate::store::MessageRecord,
    Option<crate::ebms::UserMessage>,
);

#[derive(Debug, Default)]
struct Recent {
    map: std::collections::HashMap<StoreId, (Kept, usize)>,
    order: std::collections::VecDeque<StoreId>,
    bytes: usize,
}

impl RecentRecords {
    /// At most this many records are kept…
    pub const MAX_RECORDS: usize = 1024;
    /// …and about this many bytes (headers and inline payloads).
    pub const MAX_BYTES: usize = 4 * 1024 * 1024;

    /// Keeps `rec` for the pusher; `user` is its header's UserMessage, if parsed already.
    pub fn put(&self, rec: crate::store::MessageRecord, user: Option<crate::ebms::UserMessage>) {
        let size = 512
            + rec.header.as_ref().map_or(0, String::len)
            + rec
                .payloads
                .iter()
                .filter_map(|p| p.file.inline_bytes())
                .map(<[u8]>::len)
                .sum::<usize>();
        if size > Self::MAX_BYTES / 4 {
            return;
        }
        let Ok(mut r) = self.inner.lock() else {
            return;
        };
        while r.order.len() >= Self::MAX_RECORDS || r.bytes + size > Self::MAX_BYTES {
            let Some(old) = r.order.pop_front() else {
                break;
            };
            if let Some((_, n)) = r.map.remove(&old) {
                r.bytes -= n;
            }
        }
        let id = rec.id;
        if let Some((_, n)) = r.map.insert(id, ((rec, user), size)) {
            r.bytes -= n;
            // Kept again (rare): its older place in `order` would evict the new record early.
            r.order.retain(|x| *x != id);
        }
        r.bytes += size;
        // Ids whose record was taken stay in `order` until they come up: it is bounded by
        // MAX_RECORDS all the same.
        r.order.push_back(id);
    }

    /// The record kept for `id`, if any (removed: a record is handed out once).
    pub fn take(
        &self,
        id: StoreId,
    ) -> Option<(
        crate::store::MessageRecord,
        Option<crate::ebms::UserMessage>,
    )> {
        let mut r = self.inner.lock().ok()?;
        let (kept, n) = r.map.remove(&id)?;
        r.bytes -= n;
        Some(kept)
    }

    /// Records kept (for tests).
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |r| r.map.len())
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
