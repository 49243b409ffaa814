//! The message store and retry queue behind a trait; SQLite is the embedded default.
//!
//! The store records what the MSH decided — it holds no protocol logic (no XML, no
//! signatures). Its job is durability and bookkeeping:
//!
//! * outbound messages move SUBMITTED → SENDING → ACKNOWLEDGED | WAITING_FOR_RETRY → SENDING …
//!   → FAILED; inbound messages move RECEIVED → DELIVERED; every transition is an [`Event`] row;
//! * a sender *leases* due work ([`MessageStore::lease_due`]); a crashed sender's lease expires
//!   and the work is leased again, which later also lets several nodes share one database;
//! * duplicate detection on the partner's MessageId happens in the same transaction that
//!   records the inbound message ([`MessageStore::record_received`]);
//! * payload and wire bytes live in files of the [`Spool`], written and synced before the row
//!   that points to them is committed — [`FileRef`] can only be made by the spool, so a row can
//!   never point at bytes that were not synced;
//! * a future returned by a write method resolves only after the commit that holds the write is
//!   durable: that is the moment the gateway may answer 202 to a backend or send a receipt.
//!
//! The trait has no SQLite-only semantics (no rowid tricks, no reliance on a single process):
//! a PostgreSQL implementation maps leases to `FOR UPDATE SKIP LOCKED` and the duplicate key to
//! `INSERT … ON CONFLICT`. See `docs/store.md`.

mod spool;
mod sqlite;

pub use spool::{FileRef, Spool, SpoolReader, DEFAULT_INLINE_MAX};
pub use sqlite::{BackupReport, SqliteStore, WriterHold, WriterStats};

use std::fmt;
use std::str::FromStr;

use futures_util::future::BoxFuture;
use time::{Duration, OffsetDateTime};

use crate::ebms::codes::EbmsCode;

/// Result of every store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong, and whose fault it is (the caller's request, or the store's backend).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No message (or outbox item) with that id.
    #[error("no such record: {0}")]
    NotFound(String),
    /// The requested transition is not allowed from the current state.
    #[error("message {id} is {state}: cannot {action}")]
    InvalidTransition {
        id: StoreId,
        state: State,
        action: &'static str,
    },
    /// The caller no longer holds the lease (it expired and someone else took the work).
    #[error("lease on {what} is not held by {owner}")]
    LeaseLost { what: String, owner: String },
    /// Write-once data (wire bytes, a receipt) was already recorded.
    #[error("{0} already recorded")]
    AlreadyRecorded(String),
    /// A uniqueness rule was broken (e.g. an outbound MessageId submitted twice without the
    /// same idempotency key).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A streamed payload exceeded the caller's limit; the partial file was removed.
    #[error("payload exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// Spool file I/O.
    #[error("spool I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The database backend failed.
    #[error("database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The batch holding this write could not be committed; nothing of it is durable.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The database was written by a newer version of as4gw.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// A stored value could not be read back (hand-edited database, or a bug).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// The store was closed (or its writer thread is gone).
    #[error("store closed")]
    Closed,
}

/// Why the store cannot take writes at the moment: a condition of the machine, not of the
/// request, that goes away when an operator frees space or makes the disk writable again. The
/// callers answer "try again later" (REST 503 with `Retry-After`, AS4 EBMS:0202 without a
/// receipt) instead of an internal error, so backends and partners resend and nothing is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// ENOSPC / EDQUOT / SQLITE_FULL.
    DiskFull,
    /// EROFS / SQLITE_READONLY.
    ReadOnly,
    /// SQLITE_IOERR / SQLITE_CANTOPEN on a write: the disk refuses writes for another reason.
    WriteFailed,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unavailable::DiskFull => "the message store's disk is full",
            Unavailable::ReadOnly => "the message store's disk is read-only",
            Unavailable::WriteFailed => "the message store cannot write to its disk",
        })
    }
}

fn io_unavailable(e: &std::io::Error) -> Option<Unavailable> {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => return Some(Unavailable::DiskFull),
        ErrorKind::ReadOnlyFilesystem => return Some(Unavailable::ReadOnly),
        _ => {}
    }
    // A reader's error wrapped by the spool: look inside.
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<std::io::Error>())
        .and_then(io_unavailable)
}

/// SQLite's messages for the primary codes (`sqlite3_errstr`), as they reach a commit error.
fn sqlite_text_unavailable(s: &str) -> Option<Unavailable> {
    if s.contains("database or disk is full") {
        Some(Unavailable::DiskFull)
    } else if s.contains("readonly database") {
        Some(Unavailable::ReadOnly)
    } else if s.contains("disk I/O error") || s.contains("unable to open database file") {
        Some(Unavailable::WriteFailed)
    } else {
        None
    }
}

impl StoreError {
    /// `Some` when the store failed because its disk cannot take writes (full, read-only,
    /// refusing): nothing of the request was committed and a later retry can succeed.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            StoreError::Io(e) => io_unavailable(e),
            StoreError::Backend(b) => {
                if let Some(e) = b.downcast_ref::<rusqlite::Error>() {
                    match e.sqlite_error_code() {
                        Some(rusqlite::ErrorCode::DiskFull) => Some(Unavailable::DiskFull),
                        Some(rusqlite::ErrorCode::ReadOnly) => Some(Unavailable::ReadOnly),
                        Some(
                            rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::CannotOpen,
                        ) => Some(Unavailable::WriteFailed),
                        _ => None,
                    }
                } else if let Some(e) = b.downcast_ref::<std::io::Error>() {
                    io_unavailable(e)
                } else {
                    None
                }
            }
            StoreError::Commit(s) => sqlite_text_unavailable(s),
            _ => None,
        }
    }
}

/// The store's own id for a message. Distinct from the ebMS MessageId: the same partner
/// MessageId may legitimately appear twice (outside the duplicate window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId(pub i64);

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Id of a notification/delivery outbox item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboxId(pub i64);

/// Which pipeline a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// C1 backend → partner.
    Outbound,
    /// Partner → C4 backend.
    Inbound,
}

impl Direction {
    /// Stored and API form.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "OUT",
            Direction::Inbound => "IN",
        }
    }
}

impl FromStr for Direction {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "OUT" => Ok(Direction::Outbound),
            "IN" => Ok(Direction::Inbound),
            _ => Err(StoreError::Corrupt(format!("direction {s:?}"))),
        }
    }
}

/// Message states. The names (`as_str`) are part of the API (REST, webhooks, operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Outbound: accepted from the backend, durable, not yet sent.
    Submitted,
    /// Outbound: leased by a sender; an attempt is in progress.
    Sending,
    /// Outbound: an attempt failed in a way that is safe to retry; see `next_attempt_at`.
    WaitingForRetry,
    /// Outbound: a valid receipt came back. Final.
    Acknowledged,
    /// Outbound: gave up (EBMS code and detail recorded). Final.
    Failed,
    /// Inbound: recorded (and receipted); not yet handed to the backend.
    Received,
    /// Inbound: the backend took it. Final.
    Delivered,
}

impl State {
    /// Every state, outbound first.
    pub const ALL: &'static [State] = &[
        State::Submitted,
        State::Sending,
        State::WaitingForRetry,
        State::Acknowledged,
        State::Failed,
        State::Received,
        State::Delivered,
    ];

    /// Stored and API form, e.g. `WAITING_FOR_RETRY`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Submitted => "SUBMITTED",
            State::Sending => "SENDING",
            State::WaitingForRetry => "WAITING_FOR_RETRY",
            State::Acknowledged => "ACKNOWLEDGED",
            State::Failed => "FAILED",
            State::Received => "RECEIVED",
            State::Delivered => "DELIVERED",
        }
    }

    /// Final states: nothing more will happen; only these are pruned.
    pub fn is_final(self) -> bool {
        matches!(self, State::Acknowledged | State::Failed | State::Delivered)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        State::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("state {s:?}")))
    }
}

/// One payload part: its identity in the message and the spooled bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The part's reference in the message (e.g. `cid:…`), as the MSH names it.
    pub part_id: String,
    /// MIME type as declared.
    pub mime_type: String,
    /// The synced file holding the bytes.
    pub file: FileRef,
}

/// An outbound submission from a backend.
#[derive(Debug, Clone, Default)]
pub struct NewOutbound {
    /// The ebMS MessageId this gateway assigned; reused by every retry.
    pub message_id: String,
    pub conversation_id: String,
    /// The P-Mode the submission matched.
    pub pmode_id: String,
    pub ref_to_message_id: Option<String>,
    /// The backend's idempotency key: a second submission with the same key returns the first
    /// message instead of creating a new one (safe client retries of the REST call).
    pub idempotency_key: Option<String>,
    /// Message properties (name, value), kept for filtering and for packing.
    pub properties: Vec<(String, String)>,
    pub payloads: Vec<Payload>,
    /// Earliest first attempt; `None` = now.
    pub not_before: Option<OffsetDateTime>,
    /// The ebMS header as the MSH built it (opaque here): what every retry packs again.
    pub header: Option<String>,
}

/// Answer to [`MessageStore::submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub id: StoreId,
    /// `false` when the idempotency key matched an earlier submission (nothing was written).
    pub created: bool,
}

/// How a send attempt ended, as the MSH decided.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A valid receipt: SENDING → ACKNOWLEDGED; the signed receipt bytes are kept as
    /// non-repudiation evidence.
    Acknowledged { receipt: Option<Vec<u8>> },
    /// SENDING → WAITING_FOR_RETRY until `next_attempt_at`.
    Retry {
        next_attempt_at: OffsetDateTime,
        code: Option<EbmsCode>,
        detail: String,
    },
    /// SENDING → FAILED. Final.
    Failed { code: EbmsCode, detail: String },
}

/// An inbound user message the MSH accepted (security and P-Mode checks already passed).
#[derive(Debug, Clone, Default)]
pub struct NewInbound {
    /// The partner's MessageId: the duplicate-detection key.
    pub message_id: String,
    pub conversation_id: String,
    pub pmode_id: String,
    pub ref_to_message_id: Option<String>,
    pub properties: Vec<(String, String)>,
    pub payloads: Vec<Payload>,
    /// The partner's ebMS header (opaque here), for the backend API.
    pub header: Option<String>,
    /// The signed receipt answered for it, kept in the same transaction as the message (one
    /// commit before the answer instead of two); not stored for a duplicate.
    pub receipt: Option<Vec<u8>>,
}

/// Answer to [`MessageStore::record_received`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Recorded as a new message in RECEIVED.
    New(StoreId),
    /// Same MessageId seen within the window: nothing new was stored and nothing will be
    /// delivered; the MSH re-sends the receipt of `of` ([`MessageStore::receipt`]).
    Duplicate { of: StoreId },
}

/// A holder of a lease and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until: OffsetDateTime,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: StoreId,
    pub direction: Direction,
    pub message_id: String,
    pub conversation_id: String,
    pub pmode_id: String,
    pub ref_to_message_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub state: State,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Send attempts started so far (outbound).
    pub attempts: u32,
    /// When the next attempt is due (outbound, SUBMITTED / WAITING_FOR_RETRY).
    pub next_attempt_at: Option<OffsetDateTime>,
    pub lease: Option<Lease>,
    /// The packed wire bytes, once recorded; every retry resends exactly these.
    pub wire: Option<FileRef>,
    pub last_code: Option<EbmsCode>,
    pub last_detail: Option<String>,
    pub properties: Vec<(String, String)>,
    pub payloads: Vec<Payload>,
    /// The ebMS header (eb:Messaging XML) recorded with the message, opaque to the store.
    pub header: Option<String>,
    /// When the retention purge removed the payload and wire contents (metadata, receipts and
    /// history stay until the metadata limit); `None` while they are kept.
    pub payloads_purged_at: Option<OffsetDateTime>,
}

/// One transition (or, with `from == Some(to)`, a note such as "duplicate received").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub message: StoreId,
    pub at: OffsetDateTime,
    /// `None` for the first event (creation).
    pub from: Option<State>,
    pub to: State,
    pub detail: String,
    pub code: Option<EbmsCode>,
}

/// Stored signed receipt (sent for inbound, received for outbound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub at: OffsetDateTime,
    pub bytes: Vec<u8>,
}

/// Filters for [`MessageStore::list`]; all set fields must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub direction: Option<Direction>,
    pub state: Option<State>,
    pub pmode_id: Option<String>,
    pub conversation_id: Option<String>,
    /// A message property (name, value) the message must carry.
    pub property: Option<(String, String)>,
    /// `created_at >= created_from`.
    pub created_from: Option<OffsetDateTime>,
    /// `created_at < created_before`.
    pub created_before: Option<OffsetDateTime>,
}

/// Opaque pagination cursor (keyset, so pages stay stable while rows are added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(i64);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl FromStr for Cursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        s.strip_prefix('c')
            .and_then(|n| n.parse::<i64>().ok())
            .map(Cursor)
            .ok_or_else(|| StoreError::Conflict(format!("bad cursor {s:?}")))
    }
}

/// One page of [`MessageStore::list`], newest first.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<MessageRecord>,
    /// Pass to the next call; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A webhook push to make (status notification or inbound delivery).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewNotification {
    pub message: Option<StoreId>,
    /// E.g. `delivery`, `status`; the backend room gives it meaning.
    pub kind: String,
    /// Which webhook (a name from the configuration, not necessarily a URL).
    pub target: String,
    pub body: Vec<u8>,
}

/// A leased outbox item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: OutboxId,
    pub message: Option<StoreId>,
    pub kind: String,
    pub target: String,
    pub body: Vec<u8>,
    /// Attempts started so far, including this one.
    pub attempts: u32,
    pub lease: Lease,
    pub last_error: Option<String>,
}

/// What [`MessageStore::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub messages: u64,
    pub outbox: u64,
    pub duplicate_keys: u64,
    pub files: u64,
}

/// One P-Mode's retention as the store applies it (`None` = keep for ever). The store knows no
/// P-Modes: the caller turns the P-Mode set in force into these rules on every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRule {
    pub pmode_id: String,
    pub payload_days: Option<u32>,
    pub metadata_days: Option<u32>,
}

/// How [`MessageStore::purge`] works through the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeOptions {
    /// Messages per write transaction: small, so that submissions and receipts queued behind a
    /// purge wait one short batch, never the whole run.
    pub batch: usize,
    /// Count what would go, change nothing.
    pub dry_run: bool,
}

impl Default for PurgeOptions {
    fn default() -> Self {
        PurgeOptions {
            batch: 100,
            dry_run: false,
        }
    }
}

/// What [`MessageStore::purge`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeReport {
    /// Messages whose payload and wire files were removed (metadata kept).
    pub payload_messages: u64,
    /// Messages removed with their events, receipts, properties and outbox rows.
    pub messages: u64,
    /// Spool files removed.
    pub files: u64,
    /// Bytes of those files, as recorded.
    pub bytes: u64,
    /// Write transactions used.
    pub batches: u64,
}

/// Messages of one direction in one state (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCount {
    pub direction: Direction,
    pub state: State,
    pub count: u64,
    /// The oldest `created_at` among them.
    pub oldest_created: Option<OffsetDateTime>,
    /// The oldest `updated_at` (longest time in this state) among them.
    pub oldest_updated: Option<OffsetDateTime>,
}

/// What [`MessageStore::stats`] reports: read at scrape time by the metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// One entry per (direction, state) that has messages.
    pub by_state: Vec<StateCount>,
    /// Bytes the store occupies: database files plus the spooled payload and wire files.
    pub bytes: u64,
    /// Durable commits since the store was opened (each is a sync of the log); 0 for a store
    /// that does not count them.
    pub commits: u64,
    /// Write requests since the store was opened; `write_requests / commits` is how many
    /// requests share one sync (group commit).
    pub write_requests: u64,
}

/// A message that has been in its state since `since` (see [`MessageStore::stuck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckMessage {
    pub id: StoreId,
    pub direction: Direction,
    pub state: State,
    pub message_id: String,
    pub conversation_id: String,
    pub pmode_id: String,
    /// Last state change.
    pub since: OffsetDateTime,
}

/// Everything the MSH pipelines need from persistence. Object-safe (`Arc<dyn MessageStore>`);
/// every method returns a `Send` future that never blocks the runtime. Write methods resolve
/// only after their commit is durable. Time is passed in (`now`), never read by the store, so
/// the MSH and the tests decide the clock.
pub trait MessageStore: Send + Sync {
    /// The spool where payload and wire files are written before they are referenced.
    fn spool(&self) -> &Spool;

    /// New outbound message → SUBMITTED (or the earlier one, when the idempotency key matches).
    fn submit(&self, now: OffsetDateTime, msg: NewOutbound) -> BoxFuture<'_, Result<Submitted>>;

    /// [`MessageStore::submit`], and when the message is new and due now, its first attempt
    /// leased to `owner` (→ SENDING, as [`MessageStore::lease_due`] would) in the same commit:
    /// a sender with a free slot starts the attempt at once, without a second commit and a
    /// read of the record. The default only submits (`None`: the scheduler leases it).
    fn submit_leased(
        &self,
        now: OffsetDateTime,
        msg: NewOutbound,
        owner: &str,
        lease_for: Duration,
    ) -> BoxFuture<'_, Result<(Submitted, Option<MessageRecord>)>> {
        let _ = (owner, lease_for);
        Box::pin(async move { Ok((self.submit(now, msg).await?, None)) })
    }

    /// Lease up to `max` outbound messages whose next attempt is due (SUBMITTED or
    /// WAITING_FOR_RETRY with `next_attempt_at <= now`, or SENDING whose lease expired) →
    /// SENDING, attempts + 1, lease `owner` until `now + lease_for`.
    fn lease_due(
        &self,
        now: OffsetDateTime,
        owner: &str,
        max: usize,
        lease_for: Duration,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>>>;

    /// Record the packed wire bytes (write-once: retries resend identical bytes).
    fn record_wire(
        &self,
        id: StoreId,
        owner: &str,
        now: OffsetDateTime,
        wire: FileRef,
    ) -> BoxFuture<'_, Result<()>>;

    /// End a send attempt held under `owner`'s lease: → ACKNOWLEDGED, WAITING_FOR_RETRY or
    /// FAILED; `notify` is enqueued in the same transaction (transactional outbox).
    fn finish_attempt(
        &self,
        id: StoreId,
        owner: &str,
        now: OffsetDateTime,
        outcome: Outcome,
        notify: Option<NewNotification>,
    ) -> BoxFuture<'_, Result<()>>;

    /// [`MessageStore::record_wire`] and [`MessageStore::finish_attempt`] as one step: for a
    /// small wire message packed in this attempt and sent before it was recorded, so the
    /// attempt costs one commit less. Safe because packing is reproducible where a receipt
    /// looks (the signed references: ids, digests), so a crash before this commit only makes
    /// the next attempt pack and send equal references again. The default runs the two steps.
    fn finish_attempt_with_wire(
        &self,
        id: StoreId,
        owner: &str,
        now: OffsetDateTime,
        wire: FileRef,
        outcome: Outcome,
        notify: Option<NewNotification>,
    ) -> BoxFuture<'_, Result<()>> {
        let owner = owner.to_string();
        Box::pin(async move {
            self.record_wire(id, &owner, now, wire).await?;
            self.finish_attempt(id, &owner, now, outcome, notify).await
        })
    }

    /// Inbound message → RECEIVED, unless the same MessageId was recorded within `window`
    /// before `now` (→ `Duplicate`, noted as an event on the original, `notify` dropped).
    fn record_received(
        &self,
        now: OffsetDateTime,
        msg: NewInbound,
        window: Duration,
        notify: Option<NewNotification>,
    ) -> BoxFuture<'_, Result<Received>>;

    /// RECEIVED → DELIVERED (the backend took the message).
    fn mark_delivered(
        &self,
        id: StoreId,
        now: OffsetDateTime,
        detail: &str,
    ) -> BoxFuture<'_, Result<()>>;

    /// Keep the signed receipt bytes of a message (write-once).
    fn store_receipt(
        &self,
        id: StoreId,
        now: OffsetDateTime,
        bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<()>>;

    /// The stored receipt of a message, if any.
    fn receipt(&self, id: StoreId) -> BoxFuture<'_, Result<Option<Receipt>>>;

    /// One message by store id.
    fn get(&self, id: StoreId) -> BoxFuture<'_, Result<Option<MessageRecord>>>;

    /// The newest message with this ebMS MessageId in that direction.
    fn get_by_message_id(
        &self,
        direction: Direction,
        message_id: &str,
    ) -> BoxFuture<'_, Result<Option<MessageRecord>>>;

    /// All events of a message, oldest first.
    fn events(&self, id: StoreId) -> BoxFuture<'_, Result<Vec<Event>>>;

    /// Messages matching `filter`, newest first, `limit` per page, after `cursor`.
    fn list(
        &self,
        filter: Filter,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page>>;

    /// Add a webhook push to the outbox.
    fn enqueue(&self, now: OffsetDateTime, n: NewNotification) -> BoxFuture<'_, Result<OutboxId>>;

    /// Lease up to `max` due outbox items (pending, due, no live lease).
    fn lease_outbox(
        &self,
        now: OffsetDateTime,
        owner: &str,
        max: usize,
        lease_for: Duration,
    ) -> BoxFuture<'_, Result<Vec<OutboxItem>>>;

    /// The push succeeded.
    fn outbox_done(
        &self,
        id: OutboxId,
        owner: &str,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<()>>;

    /// The push succeeded and, for an inbound delivery (`delivered` = its message and the
    /// event detail), the message goes RECEIVED → DELIVERED in the same transaction: one commit
    /// per push instead of two. Answers whether the message changed state (it may already have
    /// been acknowledged through the API, which is fine). The default runs the two steps.
    fn outbox_done_delivered(
        &self,
        id: OutboxId,
        owner: &str,
        now: OffsetDateTime,
        delivered: Option<(StoreId, String)>,
    ) -> BoxFuture<'_, Result<bool>> {
        let owner = owner.to_string();
        Box::pin(async move {
            self.outbox_done(id, &owner, now).await?;
            match delivered {
                None => Ok(false),
                Some((m, detail)) => match self.mark_delivered(m, now, &detail).await {
                    Ok(()) => Ok(true),
                    Err(StoreError::InvalidTransition { .. }) => Ok(false),
                    Err(e) => Err(e),
                },
            }
        })
    }

    /// Notified after every commit that added outbox items, so the webhook pusher wakes at
    /// once instead of at its next poll. `None`: the store cannot tell; the pusher polls.
    fn outbox_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// The push failed: retry at `next_attempt_at`, or give up (dead letter) with `None`.
    fn outbox_retry(
        &self,
        id: OutboxId,
        owner: &str,
        now: OffsetDateTime,
        next_attempt_at: Option<OffsetDateTime>,
        error: &str,
    ) -> BoxFuture<'_, Result<()>>;

    /// Retention: remove final messages last changed before `before` (with events, receipts,
    /// files), finished outbox items and duplicate keys older than `before`. Choose
    /// `before <= now - duplicate window`, or duplicates may be delivered again.
    fn prune(&self, before: OffsetDateTime) -> BoxFuture<'_, Result<PruneReport>>;

    /// Retention per P-Mode at `now`: payload and wire files of final messages older than
    /// `payload_days` (inbound: only DELIVERED, i.e. acknowledged or fetched by the backend),
    /// then final messages older than `metadata_days` with everything hanging off them and
    /// their duplicate keys. Works in batches of `opts.batch` messages per transaction; files
    /// are removed after the commit that forgets them. Messages of P-Modes without a rule are
    /// kept. The default refuses, so a store that does not implement it never claims it purged.
    fn purge(
        &self,
        now: OffsetDateTime,
        rules: Vec<RetentionRule>,
        opts: PurgeOptions,
    ) -> BoxFuture<'_, Result<PurgeReport>> {
        let _ = (now, rules, opts);
        Box::pin(async {
            Err(StoreError::Backend(
                "this store does not implement purge".into(),
            ))
        })
    }

    /// Read-only counts for metrics: messages per direction and state with the oldest
    /// timestamps, and the bytes on disk. The default answers that the store cannot tell.
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats>> {
        Box::pin(async {
            Err(StoreError::Backend(
                "stats are not supported by this store".into(),
            ))
        })
    }

    /// Read-only: up to `limit` messages in `state` whose last change is older than
    /// `changed_before`, oldest first (the loud-failure checker's "stuck" query).
    fn stuck(
        &self,
        state: State,
        changed_before: OffsetDateTime,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<StuckMessage>>> {
        let _ = (state, changed_before, limit);
        Box::pin(async {
            Err(StoreError::Backend(
                "stuck queries are not supported by this store".into(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_api_names() {
        let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "SUBMITTED",
                "SENDING",
                "WAITING_FOR_RETRY",
                "ACKNOWLEDGED",
                "FAILED",
                "RECEIVED",
                "DELIVERED"
            ]
        );
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().ok(), Some(*s));
        }
        assert!("sending".parse::<State>().is_err());
        let finals: Vec<State> = State::ALL
            .iter()
            .copied()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [State::Acknowledged, State::Failed, State::Delivered]
        );
    }

    #[test]
    fn cursor_round_trips_and_rejects_junk() {
        let c: Cursor = "c42".parse().expect("cursor");
        assert_eq!(c.to_string(), "c42");
        for bad in ["", "c", "42", "cx", "c1 ", "d42"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_file_names_cannot_escape_the_spool() {
        let sha = [0u8; 32];
        assert!(FileRef::from_stored("0123abcd.bin".into(), 5, &sha).is_ok());
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            "",
            ".hidden",
            "a\\b",
            "x\0y",
        ] {
            assert!(
                FileRef::from_stored(bad.into(), 5, &sha).is_err(),
                "{bad:?}"
            );
        }
        assert!(FileRef::from_stored("ok.bin".into(), -1, &sha).is_err());
        assert!(FileRef::from_stored("ok.bin".into(), 1, &sha[..31]).is_err());
    }
}
