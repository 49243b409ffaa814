//! SQLite implementation: one writer thread with group commit, readers on their own
//! connections, WAL with `synchronous=FULL`.
//!
//! Why one writer: SQLite allows one writer at a time anyway; a dedicated thread that drains
//! every queued request into one transaction pays one WAL fsync per *batch* instead of per
//! request, and keeps blocking SQLite calls off the tokio runtime. Each request runs in its own
//! SAVEPOINT, so a request that fails (e.g. a conflict) is rolled back alone while the rest of
//! the batch commits. A caller's future resolves only after the batch's COMMIT returned, i.e.
//! after the WAL was fsynced (`synchronous=FULL`): the acknowledgement rule.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use futures_util::future::BoxFuture;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};
use time::{Duration, OffsetDateTime};
use tokio::sync::{mpsc, oneshot};

use super::spool::{sync_dir, FileRef, Spool, INLINE_NAME};
use super::{
    Cursor, Direction, Event, Filter, Lease, MessageRecord, MessageStore, NewInbound,
    NewNotification, NewOutbound, OutboxId, OutboxItem, Outcome, Page, Payload, PruneReport,
    PurgeOptions, PurgeReport, Receipt, Received, Result, RetentionRule, State, StateCount,
    StoreError, StoreId, StoreStats, StuckMessage, Submitted,
};
use crate::ebms::codes::EbmsCode;

/// Most requests in one transaction: bounds the latency of the first request in a batch.
const MAX_BATCH: usize = 512;
/// Queued requests before `send` waits (back-pressure on submitters).
const QUEUE: usize = 4096;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 32;

/// WAL pages between automatic checkpoints (SQLite's default is 1,000). A checkpoint copies
/// the newest version of every page in the WAL into the database file and syncs it; the pages
/// every commit touches (table and index leaves of the messages in flight) are copied once per
/// checkpoint however often they were committed, so rarer checkpoints write less. 8,192 pages
/// = a WAL of up to 32 MiB before it is reused.
const WAL_AUTOCHECKPOINT: i64 = 8192;
/// `PRAGMA mmap_size` of every connection (see [`open_connection`]).
const MMAP_SIZE: i64 = 256 << 20;
/// Database file name inside the store directory.
pub const DB_FILE: &str = "store.db";
/// Spool directory name inside the store directory.
pub const SPOOL_DIR: &str = "spool";

/// Migrations, in order; `schema_version` holds how many were applied. Never edit a released
/// entry — append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE messages (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    direction         TEXT    NOT NULL CHECK (direction IN ('OUT', 'IN')),
    message_id        TEXT    NOT NULL,
    conversation_id   TEXT    NOT NULL,
    pmode_id          TEXT    NOT NULL,
    ref_to_message_id TEXT,
    idempotency_key   TEXT,
    state             TEXT    NOT NULL CHECK (state IN ('SUBMITTED', 'SENDING', 'WAITING_FOR_RETRY',
                                     'ACKNOWLEDGED', 'FAILED', 'RECEIVED', 'DELIVERED')),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    lease_owner       TEXT,
    lease_until       INTEGER,
    wire_file         TEXT,
    wire_size         INTEGER,
    wire_sha256       BLOB,
    last_code         TEXT,
    last_detail       TEXT
);
CREATE UNIQUE INDEX messages_idempotency ON messages (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX messages_out_message_id ON messages (message_id) WHERE direction = 'OUT';
CREATE INDEX messages_message_id ON messages (message_id);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE state IN ('SUBMITTED', 'WAITING_FOR_RETRY');
CREATE INDEX messages_lease ON messages (lease_until) WHERE state = 'SENDING';
CREATE INDEX messages_state ON messages (state, updated_at);
CREATE INDEX messages_conversation ON messages (conversation_id);
CREATE INDEX messages_created ON messages (created_at);

CREATE TABLE payloads (
    message   INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    part_id   TEXT    NOT NULL,
    mime_type TEXT    NOT NULL,
    file      TEXT    NOT NULL,
    size      INTEGER NOT NULL,
    sha256    BLOB    NOT NULL,
    PRIMARY KEY (message, seq)
);

CREATE TABLE properties (
    message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (message, seq)
);
CREATE INDEX properties_name_value ON properties (name, value);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message    INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    ebms_code  TEXT
);
CREATE INDEX events_message ON events (message, id);

CREATE TABLE receipts (
    message INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    bytes   BLOB    NOT NULL
);

-- Duplicate detection: one row per partner MessageId, pointing at the newest message that
-- carried it. The primary key is the unique key; the window is checked against seen_at.
CREATE TABLE inbound_seen (
    message_id TEXT    PRIMARY KEY,
    message    INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);
CREATE INDEX inbound_seen_at ON inbound_seen (seen_at);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message         INTEGER REFERENCES messages (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('PENDING', 'DONE', 'DEAD')),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'PENDING';
CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state <> 'PENDING';
"#,
    // 2: the ebMS header (eb:Messaging as the MSH wrote or received it), opaque to the store: the
    // MSH packs retries from it and the API shows parties, service, action and typed properties.
    r#"
ALTER TABLE messages ADD COLUMN header TEXT;
"#,
    // 3: retention. When the payload and wire files of a message were purged (its metadata
    // stays until the metadata retention); NULL = files present.
    r#"
ALTER TABLE messages ADD COLUMN payloads_purged_at INTEGER;
"#,
    // 4: small payloads and wire messages inline (issue 8): the bytes live in the row, committed
    // with it, instead of a spool file; `file` / `wire_file` then hold `inline`. NULL = in the
    // spool file named by `file` / `wire_file` (or purged).
    r#"
ALTER TABLE payloads ADD COLUMN data BLOB;
ALTER TABLE messages ADD COLUMN wire_data BLOB;
"#,
    // 5: inline wire bytes in a table of their own (issue 8): in the message row every state
    // change (lease, attempt outcome) rewrote the ~10 KB row with its overflow pages. The
    // column `messages.wire_data` stays, always NULL from here on.
    r#"
CREATE TABLE wire_inline (
    message INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    data    BLOB    NOT NULL
);
INSERT INTO wire_inline (message, data) SELECT id, wire_data FROM messages WHERE wire_data IS NOT NULL;
UPDATE messages SET wire_data = NULL WHERE wire_data IS NOT NULL;
"#,
    // 6: the ebMS header in a table of its own (issue 8). Written once, read with the record,
    // it made the message row ~2 KB: one row per 4 KiB page, so every state change (lease,
    // attempt outcome, delivery) wrote a whole page to the WAL for that message alone. Without
    // it the rows of the messages in flight share pages, and a group commit writes each page
    // once for all of them. The column `messages.header` stays, always NULL from here on.
    r#"
CREATE TABLE message_header (
    message INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    header  TEXT    NOT NULL
);
INSERT INTO message_header (message, header) SELECT id, header FROM messages WHERE header IS NOT NULL;
UPDATE messages SET header = NULL WHERE header IS NOT NULL;
"#,
    // 7: one MessageId index entry per message (issue 8). `messages_message_id` covered both
    // directions, so an outbound message had two entries (with the unique one), each on a
    // random leaf page (MessageIds are UUIDs): a page of WAL per entry and commit. Now the
    // outbound ones are only in the unique index, the inbound ones in this one.
    r#"
DROP INDEX messages_message_id;
CREATE INDEX messages_in_message_id ON messages (message_id) WHERE direction = 'IN';
"#,
    // 8: fewer b-trees written per message (issue 8, fourth round; counted with
    // benches/wal_pages.py on the WAL of a running bench, 2.0, 32 in flight).
    // * `properties_name_value` served no query: the property filter of `list` is a correlated
    //   EXISTS that SQLite runs on the primary key (message, seq) (EXPLAIN QUERY PLAN), yet
    //   every message wrote 3.3 (sender) / 3.8 (receiver) WAL pages into it: a random leaf
    //   for an ExchangeId (a UUID) and the tail of each group of equal values, which splits
    //   in the middle of the tree.
    // * `properties` and `inbound_seen` WITHOUT ROWID: their primary key was a second b-tree
    //   next to the table; now the table is that b-tree.
    // * `inbound_seen_at` only served `prune`'s deletion of old keys, a maintenance batch
    //   that may scan the keys instead of every message writing a page.
    r#"
DROP INDEX properties_name_value;
CREATE TABLE properties_new (
    message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (message, seq)
) WITHOUT ROWID;
INSERT INTO properties_new (message, seq, name, value) SELECT message, seq, name, value FROM properties;
DROP TABLE properties;
ALTER TABLE properties_new RENAME TO properties;
DROP INDEX inbound_seen_at;
CREATE TABLE inbound_seen_new (
    message_id TEXT    PRIMARY KEY,
    message    INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO inbound_seen_new (message_id, message, seen_at) SELECT message_id, message, seen_at FROM inbound_seen;
DROP TABLE inbound_seen;
ALTER TABLE inbound_seen_new RENAME TO inbound_seen;
"#,
    // 9: one MessageId key per inbound message instead of two (issue 8, fourth round): the
    // duplicate key `inbound_seen` (primary key: the partner's MessageId, pointing at the newest
    // message that carried it) also serves `get_by_message_id` for inbound messages, so
    // `messages_in_message_id` goes: it was a second random leaf page per received message.
    // `prune` now keeps the key of a message still stored; keys pruned before are restored here
    // (seen when the message was created, long outside any duplicate window). And
    // `outbox_finished` only served `prune`'s deletion of finished pushes (a maintenance
    // batch that may scan), yet every finished push wrote to it.
    r#"
INSERT OR IGNORE INTO inbound_seen (message_id, message, seen_at)
    SELECT message_id, max(id), min(created_at) FROM messages WHERE direction = 'IN' GROUP BY message_id;
DROP INDEX messages_in_message_id;
DROP INDEX outbox_finished;
"#,
    // 10: the retention purge finds a message's rows in constant time (operators: a purge of
    // N messages scanned the whole outbox N times). Deleting a message cascades to its
    // `outbox` rows, and SQLite looks a child row up by its foreign key column, which had no
    // index. Outbox rows are written in message order, so the index grows at its right edge
    // (no random page per message). `IF NOT EXISTS`: harmless on stores that had it.
    r#"
CREATE INDEX IF NOT EXISTS outbox_message ON outbox (message);
"#,
    // 11: an OOTS exchange is found by its `ExchangeId` without reading every message (the
    // backends' `GET /oots/exchanges/{id}`, polled while a citizen waits: `list` walked all
    // messages newest first with a correlated lookup each, so one call cost a full scan of a
    // store with months of traffic). Partial: only the one ExchangeId row of a v2.0 message
    // is indexed (a random UUID leaf, ~1 WAL page per message), not the other properties
    // that migration 8 stopped indexing. The literal must stay equal to
    // `INDEXED_PROPERTY`: SQLite uses a partial index only for a query that names the same
    // literal.
    r#"
CREATE INDEX IF NOT EXISTS properties_exchange_id ON properties (value) WHERE name = 'ExchangeId';
"#,
];

/// The one message property with an index (migration 11): `list` filters on it through the
/// index, on any other property by a correlated lookup per message. The OOTS `ExchangeId`
/// (`crate::oots::PROP_EXCHANGE_ID`; a unit test keeps them equal).
pub const INDEXED_PROPERTY: &str = "ExchangeId";

/// A write request: runs on the writer thread inside the batch transaction (`None` when the
/// transaction could not even begin) and returns what to do once the commit outcome is known.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Completion + Send>;
type Completion = Box<dyn FnOnce(std::result::Result<(), &str>) + Send>;

/// Counters of the writer thread (tests and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (= durable syncs).
    pub commits: u64,
    /// Write requests handled.
    pub jobs: u64,
    /// Largest batch so far.
    pub largest_batch: u64,
}

/// What [`SqliteStore::backup`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Spool files copied.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    jobs: AtomicU64,
    largest_batch: AtomicU64,
}

struct Inner {
    tx: RwLock<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    db_path: PathBuf,
    spool: Spool,
    counters: Arc<Counters>,
    /// Notified after commits that enqueued webhook pushes ([`MessageStore::outbox_signal`]).
    outbox: Arc<tokio::sync::Notify>,
    /// Leases of outbox items (id → owner, until), in memory: a webhook push needs no commit
    /// before it starts, and after a crash every pending item is due at once (pushes are
    /// at-least-once anyway). The lock is held across the read that picks items, so a reader
    /// snapshot from before an item's DONE commit cannot pick it once its lease is gone.
    outbox_leases: Mutex<std::collections::HashMap<i64, (String, i64)>>,
}

/// The embedded store: `<dir>/store.db` plus `<dir>/spool/`. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// Blocks the writer thread until dropped (tests: make requests queue up deterministically).
#[doc(hidden)]
pub struct WriterHold {
    release: Option<std::sync::mpsc::Sender<()>>,
}

impl Drop for WriterHold {
    fn drop(&mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        backend(e)
    }
}

/// Stored time: microseconds since the Unix epoch (PostgreSQL's `timestamptz` precision).
fn ts(t: OffsetDateTime) -> i64 {
    let us = t.unix_timestamp_nanos() / 1000;
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

fn from_ts(us: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {us}")))
}

fn code_from(s: Option<String>) -> Result<Option<EbmsCode>> {
    s.map(|s| {
        s.parse::<EbmsCode>()
            .map_err(|()| StoreError::Corrupt(format!("EBMS code {s:?}")))
    })
    .transpose()
}

fn limit_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // rusqlite caches 16 statements by default; a message's life uses more than that, and a
    // statement prepared again costs more than running it (issue 8 profile).
    conn.set_prepared_statement_cache_capacity(256);
    // Reads of the database file through a memory map instead of a pread per page: in WAL mode
    // every commit of the writer empties the readers' page caches, so a busy gateway re-read
    // its pages with a system call each (issue 8: ~250 preads per message). Writes still go
    // through the WAL with its fsync; SQLite maps at most this much.
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    // Every write request runs in a savepoint of the batch transaction; SQLite copies the pages
    // a savepoint changes into a sub-journal, by default a temporary file (issue 8 profile:
    // ~5 % of the sender's CPU in `subjournalPageIfRequired`). Memory is enough: a batch is
    // bounded, and durability comes from the WAL, not from the sub-journal.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: Option<i64> =
        tx.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?;
    let current = current.unwrap_or(0);
    let supported = limit_i64(MIGRATIONS.len());
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [limit_i64(i + 1)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Open (creating if needed) the store in `dir`, run migrations and start the writer.
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&dir))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Blocking variant of [`SqliteStore::open`] (start-up code outside the runtime).
    pub fn open_blocking(dir: &Path) -> Result<Self> {
        Self::open_blocking_with(dir, super::spool::DEFAULT_INLINE_MAX)
    }

    /// [`SqliteStore::open`] keeping contents of at most `inline_max` bytes in the database
    /// (`[store] inline-max`; 0 = every payload and wire message in its own spool file).
    pub async fn open_with(dir: impl AsRef<Path>, inline_max: u64) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking_with(&dir, inline_max))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Blocking variant of [`SqliteStore::open_with`].
    pub fn open_blocking_with(dir: &Path, inline_max: u64) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut spool = Spool::open(dir.join(SPOOL_DIR))?;
        spool.set_inline_max(inline_max);
        let db_path = dir.join(DB_FILE);
        let mut conn = open_connection(&db_path)?;
        let mode: String = conn
            .prepare_cached("PRAGMA journal_mode = WAL")?
            .query_row([], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "journal_mode {mode}, expected wal"
            )));
        }
        // FULL: in WAL mode every COMMIT fsyncs the WAL, so a committed batch survives a power
        // cut, not only a process kill (NORMAL would sync only at checkpoints).
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
        migrate(&mut conn)?;
        // The database and WAL files' directory entries must be durable too.
        sync_dir(dir)?;

        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let writer = std::thread::Builder::new()
            .name("as4gw-store-writer".into())
            .spawn(move || writer_loop(conn, rx, &c))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                tx: RwLock::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                readers: Mutex::new(Vec::new()),
                db_path,
                spool,
                counters,
                outbox: Arc::new(tokio::sync::Notify::new()),
                outbox_leases: Mutex::new(std::collections::HashMap::new()),
            }),
        })
    }

    /// Path of the database file (backups: `VACUUM INTO`, see `docs/store.md`).
    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    /// Ends a send attempt ([`MessageStore::finish_attempt`]), recording `wire` first in the
    /// same transaction when given ([`MessageStore::finish_attempt_with_wire`]).
    async fn finish(
        &self,
        id: StoreId,
        owner: String,
        now: OffsetDateTime,
        wire: Option<FileRef>,
        outcome: Outcome,
        notify: Option<NewNotification>,
    ) -> Result<()> {
        let signal = notify.is_some();
        let r = self
            .write(move |c| {
                finish_tx(
                    c,
                    id,
                    &owner,
                    ts(now),
                    wire.as_ref(),
                    &outcome,
                    notify.as_ref(),
                )
            })
            .await;
        if r.is_ok() && signal {
            self.inner.outbox.notify_one();
        }
        r
    }

    /// Ends a push of outbox item `id` held under `owner`'s (in-memory) lease: `f` records the
    /// end, and the lease goes only after that commit (see `Inner::outbox_leases`).
    async fn outbox_end<T, F>(&self, id: OutboxId, owner: String, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T> + Send + 'static,
    {
        let lost = || StoreError::LeaseLost {
            what: format!("outbox {}", id.0),
            owner: owner.clone(),
        };
        let held = {
            let leases = self.inner.outbox_leases.lock().map_err(|_| lost())?;
            leases.get(&id.0).is_some_and(|(o, _)| *o == owner)
        };
        if !held {
            return Err(lost());
        }
        let in_tx = owner.clone();
        let r = self.write(move |c| f(c, &in_tx)).await;
        if r.is_ok() {
            if let Ok(mut leases) = self.inner.outbox_leases.lock() {
                if leases.get(&id.0).is_some_and(|(o, _)| *o == owner) {
                    leases.remove(&id.0);
                }
            }
        }
        r
    }

    /// Writer counters.
    pub fn writer_stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        WriterStats {
            commits: c.commits.load(Ordering::SeqCst),
            jobs: c.jobs.load(Ordering::SeqCst),
            largest_batch: c.largest_batch.load(Ordering::SeqCst),
        }
    }

    /// Write requests waiting for the writer thread.
    pub fn queued_writes(&self) -> usize {
        match self.inner.tx.read() {
            Ok(g) => g
                .as_ref()
                .map(|tx| tx.max_capacity() - tx.capacity())
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Stop the writer after the queued requests and wait for it; later writes fail `Closed`.
    pub async fn close(&self) -> Result<()> {
        if let Ok(mut g) = self.inner.tx.write() {
            g.take();
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut g| g.take());
        if let Some(h) = handle {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|_| StoreError::Closed)?
                .map_err(|_| StoreError::Closed)?;
        }
        if let Ok(mut r) = self.inner.readers.lock() {
            r.clear();
        }
        Ok(())
    }

    /// Online backup into the empty or new directory `dest`: a consistent snapshot of the
    /// database (`VACUUM INTO`, readers and the writer keep going), then a copy of exactly the
    /// spool files that snapshot references. Files are written before their rows commit, so
    /// every file the snapshot names exists — unless `prune` removed it meanwhile: don't run
    /// both at once (the copy then fails with `NotFound`). `dest` gets the same layout as a
    /// store directory and can be opened with [`SqliteStore::open`].
    pub async fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        let dest = dest.as_ref().to_path_buf();
        let db_path = self.inner.db_path.clone();
        let spool = self.inner.spool.clone();
        tokio::task::spawn_blocking(move || {
            let dest_spool = dest.join(SPOOL_DIR);
            std::fs::create_dir_all(&dest_spool)?;
            let dest_db = dest.join(DB_FILE);
            let conn = open_connection(&db_path)?;
            let dest_str = dest_db.to_str().ok_or_else(|| StoreError::Conflict("backup path is not UTF-8".into()))?;
            conn.prepare_cached("VACUUM INTO ?1")?.execute( [dest_str])?;
            drop(conn);
            let snap = open_connection(&dest_db)?;
            let names = snap
                .prepare("SELECT file FROM payloads WHERE data IS NULL UNION SELECT wire_file FROM messages WHERE wire_file IS NOT NULL AND id NOT IN (SELECT message FROM wire_inline)")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(snap);
            let mut report = BackupReport::default();
            for name in names {
                // Names come from our own database; still, only spool-made names are copied.
                FileRef::from_stored(name.clone(), 0, &[0u8; 32])?;
                if name == INLINE_NAME {
                    // Purged inline content: nothing on disk (and nothing in the row).
                    continue;
                }
                let target = dest_spool.join(&name);
                let bytes = std::fs::copy(spool.dir().join(&name), &target).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        StoreError::NotFound(format!("spool file {name} (pruned during backup?)"))
                    } else {
                        e.into()
                    }
                })?;
                std::fs::File::open(&target)?.sync_all()?;
                report.files += 1;
                report.bytes += bytes;
            }
            std::fs::File::open(&dest_db)?.sync_all()?;
            sync_dir(&dest_spool)?;
            sync_dir(&dest)?;
            Ok(report)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// Make the writer thread wait (inside a transaction) until the returned guard is dropped.
    #[doc(hidden)]
    pub async fn hold_writer(&self) -> Result<WriterHold> {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let job: Job = Box::new(move |_conn| {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            Box::new(|_| {})
        });
        self.sender()?
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        started_rx.await.map_err(|_| StoreError::Closed)?;
        Ok(WriterHold {
            release: Some(release_tx),
        })
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>> {
        self.inner
            .tx
            .read()
            .ok()
            .and_then(|g| g.clone())
            .ok_or(StoreError::Closed)
    }

    /// Run `f` in the next batch; resolve after the batch committed durably.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                Some(conn) => in_savepoint(conn, f),
                None => Err(StoreError::Commit("could not begin transaction".into())),
            };
            Box::new(move |commit: std::result::Result<(), &str>| {
                let r = match commit {
                    Ok(()) => outcome,
                    // A failed request was rolled back on its own; report its own error.
                    Err(_) if outcome.is_err() => outcome,
                    Err(e) => Err(StoreError::Commit(e.to_string())),
                };
                let _ = tx.send(r);
            })
        });
        self.sender()?
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run `f` on a read connection in the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut v| v.pop());
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = open_connection(&inner.db_path)?;
                    c.pragma_update(None, "query_only", "ON")?;
                    c
                }
            };
            // One read transaction for all statements of `f`: one snapshot, and one look at
            // the WAL index instead of one per statement.
            let r = match run_cached(&conn, "BEGIN") {
                Ok(()) => {
                    let r = f(&conn);
                    if run_cached(&conn, "COMMIT").is_err() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    r
                }
                Err(e) => Err(e),
            };
            if let Ok(mut v) = inner.readers.lock() {
                if v.len() < MAX_IDLE_READERS {
                    v.push(conn);
                }
            }
            r
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// Run one parameterless statement through the statement cache.
fn run_cached(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    run_cached(conn, "SAVEPOINT req")?;
    match f(conn) {
        Ok(v) => {
            run_cached(conn, "RELEASE req")?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO req; RELEASE req")?;
            Err(e)
        }
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Job>, counters: &Counters) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        let begun = run_cached(&conn, "BEGIN IMMEDIATE");
        let conn_ref = begun.is_ok().then_some(&conn);
        let mut completions: Vec<Completion> = batch.drain(..).map(|job| job(conn_ref)).collect();
        // Requests that arrived while these ran join the same commit instead of waiting for it
        // and paying a commit of their own: each commit rewrites the shared pages (table and
        // index leaves, the WAL header) and syncs, so fuller batches mean fewer bytes and
        // syncs per message, at no added latency (nothing waits for more to arrive).
        while completions.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => completions.push(job(conn_ref)),
                Err(_) => break,
            }
        }
        let n = completions.len() as u64;
        let commit = match begun {
            Ok(()) => match run_cached(&conn, "COMMIT") {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e.to_string())
                }
            },
            Err(e) => Err(e.to_string()),
        };
        if commit.is_ok() {
            counters.commits.fetch_add(1, Ordering::SeqCst);
        }
        counters.jobs.fetch_add(n, Ordering::SeqCst);
        counters.largest_batch.fetch_max(n, Ordering::SeqCst);
        for c in completions {
            c(commit.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row access (shared by the writer and the readers)

const MESSAGE_COLUMNS: &str = "id, direction, message_id, conversation_id, pmode_id, ref_to_message_id, \
    idempotency_key, state, created_at, updated_at, attempts, next_attempt_at, lease_owner, lease_until, \
    wire_file, wire_size, wire_sha256, last_code, last_detail, \
    (SELECT header FROM message_header WHERE message_header.message = messages.id), \
    (SELECT data FROM wire_inline WHERE wire_inline.message = messages.id), payloads_purged_at";

fn load_message(conn: &Connection, id: i64) -> Result<Option<MessageRecord>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1");
    let row = conn
        .prepare_cached(&sql)?
        .query_row([id], |r| {
            Ok((
                (
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                ),
                (
                    r.get::<_, i64>(10)?,
                    r.get::<_, Option<i64>>(11)?,
                    r.get::<_, Option<String>>(12)?,
                    r.get::<_, Option<i64>>(13)?,
                    r.get::<_, Option<String>>(14)?,
                    r.get::<_, Option<i64>>(15)?,
                    r.get::<_, Option<Vec<u8>>>(16)?,
                    r.get::<_, Option<String>>(17)?,
                    r.get::<_, Option<String>>(18)?,
                    r.get::<_, Option<String>>(19)?,
                ),
                r.get::<_, Option<Vec<u8>>>(20)?,
                r.get::<_, Option<i64>>(21)?,
            ))
        })
        .optional()?;
    let Some((a, b, wire_data, purged)) = row else {
        return Ok(None);
    };
    let (
        id,
        direction,
        message_id,
        conversation_id,
        pmode_id,
        ref_to,
        idem,
        state,
        created,
        updated,
    ) = a;
    let (
        attempts,
        next,
        lease_owner,
        lease_until,
        wire_file,
        wire_size,
        wire_sha,
        last_code,
        last_detail,
        header,
    ) = b;
    let lease = match (lease_owner, lease_until) {
        (Some(owner), Some(until)) => Some(Lease {
            owner,
            until: from_ts(until)?,
        }),
        _ => None,
    };
    let wire =
        match (wire_file, wire_size, wire_sha) {
            (Some(_), Some(s), Some(h)) if wire_data.is_some() => Some(
                FileRef::from_stored_inline(s, &h, wire_data.unwrap_or_default())?,
            ),
            (Some(f), Some(s), Some(h)) => Some(FileRef::from_stored(f, s, &h)?),
            _ => None,
        };
    let mut props =
        conn.prepare_cached("SELECT name, value FROM properties WHERE message = ?1 ORDER BY seq")?;
    let properties = props
        .query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut pls = conn
        .prepare_cached("SELECT part_id, mime_type, file, size, sha256, data FROM payloads WHERE message = ?1 ORDER BY seq")?;
    let rows = pls
        .query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
                r.get::<_, Option<Vec<u8>>>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let payloads = rows
        .into_iter()
        .map(|(part_id, mime_type, file, size, sha, data)| {
            Ok(Payload {
                part_id,
                mime_type,
                file: match data {
                    Some(d) => FileRef::from_stored_inline(size, &sha, d)?,
                    None => FileRef::from_stored(file, size, &sha)?,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(MessageRecord {
        id: StoreId(id),
        direction: direction.parse()?,
        message_id,
        conversation_id,
        pmode_id,
        ref_to_message_id: ref_to,
        idempotency_key: idem,
        state: state.parse()?,
        created_at: from_ts(created)?,
        updated_at: from_ts(updated)?,
        attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::Corrupt(format!("attempts {attempts}")))?,
        next_attempt_at: next.map(from_ts).transpose()?,
        lease,
        wire,
        last_code: code_from(last_code)?,
        last_detail,
        properties,
        payloads,
        header,
        payloads_purged_at: purged.map(from_ts).transpose()?,
    }))
}

/// The ebMS header of a new message, in its own table (migration 6).
fn insert_header(conn: &Connection, id: i64, header: Option<&str>) -> Result<()> {
    if let Some(h) = header {
        conn.prepare_cached("INSERT INTO message_header (message, header) VALUES (?1, ?2)")?
            .execute(params![id, h])?;
    }
    Ok(())
}

fn insert_event(
    conn: &Connection,
    id: i64,
    at: i64,
    from: Option<State>,
    to: State,
    detail: &str,
    code: Option<EbmsCode>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (message, at, from_state, to_state, detail, ebms_code) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, at, from.map(State::as_str), to.as_str(), detail, code.map(EbmsCode::code)])?;
    Ok(())
}

fn insert_parts(
    conn: &Connection,
    id: i64,
    properties: &[(String, String)],
    payloads: &[Payload],
) -> Result<()> {
    let mut p = conn.prepare_cached(
        "INSERT INTO properties (message, seq, name, value) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (seq, (name, value)) in properties.iter().enumerate() {
        p.execute(params![id, limit_i64(seq), name, value])?;
    }
    let mut p = conn.prepare_cached(
        "INSERT INTO payloads (message, seq, part_id, mime_type, file, size, sha256, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (seq, pl) in payloads.iter().enumerate() {
        let size =
            i64::try_from(pl.file.size()).map_err(|_| StoreError::TooLarge(i64::MAX as u64))?;
        p.execute(params![
            id,
            limit_i64(seq),
            pl.part_id,
            pl.mime_type,
            pl.file.name(),
            size,
            &pl.file.sha256()[..],
            pl.file.inline_bytes()
        ])?;
    }
    Ok(())
}

fn insert_notification(conn: &Connection, now: i64, n: &NewNotification) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO outbox (message, kind, target, body, state, created_at, updated_at, next_attempt_at) \
         VALUES (?1, ?2, ?3, ?4, 'PENDING', ?5, ?5, ?5)",
    )?
    .execute(params![n.message.map(|m| m.0), n.kind, n.target, n.body, now])?;
    Ok(conn.last_insert_rowid())
}

/// Direction, state and lease owner of a message, or `NotFound`.
fn message_head(conn: &Connection, id: StoreId) -> Result<(Direction, State, Option<String>)> {
    let row = conn
        .prepare_cached("SELECT direction, state, lease_owner FROM messages WHERE id = ?1")?
        .query_row([id.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()?;
    let (d, s, o) = row.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    Ok((d.parse()?, s.parse()?, o))
}

/// The caller must hold the lease of an outbound message in SENDING. An expired lease that no
/// one else took is still honoured: re-leasing, not expiry, is what transfers the work.
fn check_sending_lease(
    conn: &Connection,
    id: StoreId,
    owner: &str,
    action: &'static str,
) -> Result<()> {
    check_sending_lease_wire(conn, id, owner, action).map(|_| ())
}

/// [`check_sending_lease`], reading in the same statement whether wire bytes are recorded.
fn check_sending_lease_wire(
    conn: &Connection,
    id: StoreId,
    owner: &str,
    action: &'static str,
) -> Result<bool> {
    let row = conn
        .prepare_cached(
            "SELECT direction, state, lease_owner, wire_file IS NOT NULL FROM messages WHERE id = ?1",
        )?
        .query_row([id.0], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })
        .optional()?;
    let (d, st, lease_owner, recorded) = row.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let (direction, state): (Direction, State) = (d.parse()?, st.parse()?);
    if direction != Direction::Outbound || state != State::Sending {
        return Err(StoreError::InvalidTransition { id, state, action });
    }
    if lease_owner.as_deref() != Some(owner) {
        return Err(StoreError::LeaseLost {
            what: id.to_string(),
            owner: owner.to_string(),
        });
    }
    Ok(recorded)
}

fn submit_tx(conn: &Connection, now: i64, m: &NewOutbound) -> Result<Submitted> {
    submit_with(conn, now, m, None).map(|(s, _)| s)
}

/// [`submit_tx`]; with `lease` = (owner, until) a new message due now is inserted in SENDING
/// under that lease (its first attempt, as [`lease_one`] would make it), with both events, and
/// its record is built from what was written: one UPDATE and the read-back of the row, its
/// properties and payloads less per submission (issue 8, fourth round).
fn submit_with(
    conn: &Connection,
    now: i64,
    m: &NewOutbound,
    lease: Option<(&str, i64)>,
) -> Result<(Submitted, Option<MessageRecord>)> {
    if let Some(key) = &m.idempotency_key {
        let existing: Option<i64> = conn
            .prepare_cached("SELECT id FROM messages WHERE idempotency_key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        if let Some(id) = existing {
            return Ok((
                Submitted {
                    id: StoreId(id),
                    created: false,
                },
                None,
            ));
        }
    }
    let taken: Option<i64> = conn
        .prepare_cached("SELECT id FROM messages WHERE direction = 'OUT' AND message_id = ?1")?
        .query_row([&m.message_id], |r| r.get(0))
        .optional()?;
    if let Some(other) = taken {
        return Err(StoreError::Conflict(format!(
            "outbound MessageId {} already used by #{other}",
            m.message_id
        )));
    }
    let due = m.not_before.map(ts).unwrap_or(now);
    let lease = lease.filter(|_| due <= now);
    let (state, attempts, owner, until) = match lease {
        Some((owner, until)) => (State::Sending, 1, Some(owner), Some(until)),
        None => (State::Submitted, 0, None, None),
    };
    conn.prepare_cached(
        "INSERT INTO messages (direction, message_id, conversation_id, pmode_id, ref_to_message_id, idempotency_key, \
         state, created_at, updated_at, next_attempt_at, attempts, lease_owner, lease_until) \
         VALUES ('OUT', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        m.message_id,
        m.conversation_id,
        m.pmode_id,
        m.ref_to_message_id,
        m.idempotency_key,
        state.as_str(),
        now,
        due,
        attempts,
        owner,
        until
    ])?;
    let id = conn.last_insert_rowid();
    insert_header(conn, id, m.header.as_deref())?;
    insert_parts(conn, id, &m.properties, &m.payloads)?;
    insert_event(conn, id, now, None, State::Submitted, "submitted", None)?;
    let submitted = Submitted {
        id: StoreId(id),
        created: true,
    };
    let (Some(owner), Some(until)) = (owner, until) else {
        return Ok((submitted, None));
    };
    let detail = format!("attempt 1 leased by {owner}");
    insert_event(
        conn,
        id,
        now,
        Some(State::Submitted),
        State::Sending,
        &detail,
        None,
    )?;
    let record = MessageRecord {
        id: StoreId(id),
        direction: Direction::Outbound,
        message_id: m.message_id.clone(),
        conversation_id: m.conversation_id.clone(),
        pmode_id: m.pmode_id.clone(),
        ref_to_message_id: m.ref_to_message_id.clone(),
        idempotency_key: m.idempotency_key.clone(),
        state: State::Sending,
        created_at: from_ts(now)?,
        updated_at: from_ts(now)?,
        attempts: 1,
        next_attempt_at: Some(from_ts(due)?),
        lease: Some(Lease {
            owner: owner.to_string(),
            until: from_ts(until)?,
        }),
        wire: None,
        last_code: None,
        last_detail: None,
        properties: m.properties.clone(),
        payloads: m.payloads.clone(),
        header: m.header.clone(),
        payloads_purged_at: None,
    };
    Ok((submitted, Some(record)))
}

/// The messages `lease_due` takes, in two statements that each read a partial index up to the
/// limit: first expired leases (`messages_lease`: SENDING by `lease_until`; usually none, and
/// taken first so a steady backlog of due messages cannot starve them), then due messages
/// (`messages_due`: SUBMITTED / WAITING_FOR_RETRY by `next_attempt_at`, oldest first). It was
/// one `OR` over both: with no `ANALYZE` statistics SQLite's planner chose `messages_state`
/// and read *every* waiting message, then sorted, on the writer thread at every lease, so a
/// backlog of retries after a partner's outage slowed every write of the gateway in proportion
/// to its size. `INDEXED BY` keeps the plans: a migration that drops an index fails these
/// statements (and the tests) instead of silently scanning.
const LEASE_EXPIRED_SQL: &str = "SELECT id, state, lease_owner, attempts FROM messages \
     INDEXED BY messages_lease \
     WHERE state = 'SENDING' AND lease_until <= ?1 AND direction = 'OUT' \
     ORDER BY lease_until, id LIMIT (SELECT ?2)";
/// See [`LEASE_EXPIRED_SQL`].
const LEASE_DUE_SQL: &str = "SELECT id, state, lease_owner, attempts FROM messages \
     INDEXED BY messages_due \
     WHERE state IN ('SUBMITTED', 'WAITING_FOR_RETRY') AND next_attempt_at <= ?1 \
       AND direction = 'OUT' \
     ORDER BY next_attempt_at, id LIMIT (SELECT ?2)";

// Every `LIMIT` with a bound value is written `LIMIT (SELECT ?n)`: SQLite's planner looks at
// a plain `LIMIT ?n` value, so each new value expired the cached statement and it was compiled
// again on every call (issue 8 profile: ~7 % of the sender's CPU in `sqlite3Reprepare`).
fn lease_due_tx(
    conn: &Connection,
    now: i64,
    owner: &str,
    max: usize,
    until: i64,
) -> Result<Vec<MessageRecord>> {
    let mut candidates: Vec<(i64, String, Option<String>, i64)> = Vec::new();
    for sql in [LEASE_EXPIRED_SQL, LEASE_DUE_SQL] {
        let room = max.saturating_sub(candidates.len());
        if room == 0 {
            break;
        }
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![now, limit_i64(room)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            candidates.push(row?);
        }
    }
    let mut out = Vec::with_capacity(candidates.len());
    for (id, state, old_owner, attempts) in candidates {
        let from: State = state.parse()?;
        if let Some(rec) = lease_one(conn, id, from, old_owner, attempts, owner, until, now)? {
            out.push(rec);
        }
    }
    Ok(out)
}

/// One message → SENDING under `owner`'s lease (attempts + 1), with its event; the record.
#[allow(clippy::too_many_arguments)]
fn lease_one(
    conn: &Connection,
    id: i64,
    from: State,
    old_owner: Option<String>,
    attempts: i64,
    owner: &str,
    until: i64,
    now: i64,
) -> Result<Option<MessageRecord>> {
    conn.prepare_cached(
        "UPDATE messages SET state = 'SENDING', attempts = attempts + 1, lease_owner = ?2, lease_until = ?3, \
         updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, owner, until, now])?;
    let attempt = attempts + 1;
    let detail = match (from, old_owner) {
        (State::Sending, Some(old)) => {
            format!("lease of {old} expired; attempt {attempt} leased by {owner}")
        }
        _ => format!("attempt {attempt} leased by {owner}"),
    };
    insert_event(conn, id, now, Some(from), State::Sending, &detail, None)?;
    load_message(conn, id)
}

/// [`submit_tx`], with the first attempt leased to `owner` in the same transaction when the
/// message is new and due now.
fn submit_leased_tx(
    conn: &Connection,
    now: i64,
    m: &NewOutbound,
    owner: &str,
    until: i64,
) -> Result<(Submitted, Option<MessageRecord>)> {
    submit_with(conn, now, m, Some((owner, until)))
}

fn record_wire_tx(
    conn: &Connection,
    id: StoreId,
    owner: &str,
    now: i64,
    wire: &FileRef,
) -> Result<()> {
    let recorded = check_sending_lease_wire(conn, id, owner, "record wire bytes")?;
    write_wire(conn, id, now, wire, recorded, true)
}

/// The wire bytes of `id` (a message whose lease was checked; `recorded`: it has wire bytes
/// already), write-once; with `update_row` false the caller sets the `wire_*` columns itself
/// (in its own UPDATE of the row).
fn write_wire(
    conn: &Connection,
    id: StoreId,
    now: i64,
    wire: &FileRef,
    recorded: bool,
    update_row: bool,
) -> Result<()> {
    if recorded {
        return Err(StoreError::AlreadyRecorded(format!("wire bytes of {id}")));
    }
    if update_row {
        let size = wire_size(wire)?;
        conn.prepare_cached("UPDATE messages SET wire_file = ?2, wire_size = ?3, wire_sha256 = ?4, updated_at = ?5 WHERE id = ?1")?.execute(
            params![id.0, wire.name(), size, &wire.sha256()[..], now],
        )?;
    }
    if let Some(data) = wire.inline_bytes() {
        conn.prepare_cached("INSERT INTO wire_inline (message, data) VALUES (?1, ?2)")?
            .execute(params![id.0, data])?;
    }
    let detail = format!(
        "wire bytes recorded: {} bytes, sha256 {}",
        wire.size(),
        wire.sha256_hex()
    );
    insert_event(
        conn,
        id.0,
        now,
        Some(State::Sending),
        State::Sending,
        &detail,
        None,
    )
}

fn wire_size(wire: &FileRef) -> Result<i64> {
    i64::try_from(wire.size()).map_err(|_| StoreError::TooLarge(i64::MAX as u64))
}

/// Ends an attempt; with `wire`, records it first (same events, same checks as
/// [`record_wire_tx`]) and writes its columns in the outcome's UPDATE of the row: one lease
/// check and one UPDATE instead of two each (issue 8, fourth round).
fn finish_tx(
    conn: &Connection,
    id: StoreId,
    owner: &str,
    now: i64,
    wire: Option<&FileRef>,
    outcome: &Outcome,
    notify: Option<&NewNotification>,
) -> Result<()> {
    match wire {
        Some(w) => {
            let recorded = check_sending_lease_wire(conn, id, owner, "finish an attempt")?;
            write_wire(conn, id, now, w, recorded, false)?;
        }
        None => check_sending_lease(conn, id, owner, "finish an attempt")?,
    }
    let (to, next, code, detail) = match outcome {
        Outcome::Acknowledged { receipt } => {
            if let Some(bytes) = receipt {
                insert_receipt(conn, id, now, bytes)?;
            }
            (
                State::Acknowledged,
                None,
                None,
                "receipt received".to_string(),
            )
        }
        Outcome::Retry {
            next_attempt_at,
            code,
            detail,
        } => (
            State::WaitingForRetry,
            Some(ts(*next_attempt_at)),
            *code,
            detail.clone(),
        ),
        Outcome::Failed { code, detail } => (State::Failed, None, Some(*code), detail.clone()),
    };
    match wire {
        Some(w) => conn
            .prepare_cached(
                "UPDATE messages SET state = ?2, next_attempt_at = ?3, lease_owner = NULL, lease_until = NULL, \
                 last_code = ?4, last_detail = ?5, updated_at = ?6, wire_file = ?7, wire_size = ?8, \
                 wire_sha256 = ?9 WHERE id = ?1",
            )?
            .execute(params![
                id.0,
                to.as_str(),
                next,
                code.map(EbmsCode::code),
                detail,
                now,
                w.name(),
                wire_size(w)?,
                &w.sha256()[..]
            ])?,
        None => conn
            .prepare_cached(
                "UPDATE messages SET state = ?2, next_attempt_at = ?3, lease_owner = NULL, lease_until = NULL, \
                 last_code = ?4, last_detail = ?5, updated_at = ?6 WHERE id = ?1",
            )?
            .execute(params![id.0, to.as_str(), next, code.map(EbmsCode::code), detail, now])?,
    };
    insert_event(conn, id.0, now, Some(State::Sending), to, &detail, code)?;
    if let Some(n) = notify {
        insert_notification(conn, now, n)?;
    }
    Ok(())
}

/// Receipt bytes, write-once: the primary key refuses a second one (no read before).
fn insert_receipt(conn: &Connection, id: StoreId, now: i64, bytes: &[u8]) -> Result<()> {
    let r = conn
        .prepare_cached("INSERT INTO receipts (message, at, bytes) VALUES (?1, ?2, ?3)")?
        .execute(params![id.0, now, bytes]);
    match r {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Err(StoreError::AlreadyRecorded(format!("receipt of {id}")))
        }
        Err(e) => Err(e.into()),
    }
}

fn record_received_tx(
    conn: &Connection,
    now: i64,
    m: &NewInbound,
    window: Duration,
    notify: Option<&NewNotification>,
) -> Result<Received> {
    let window_us = i64::try_from(window.whole_microseconds()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(window_us);
    let seen: Option<(i64, i64)> = conn
        .prepare_cached("SELECT message, seen_at FROM inbound_seen WHERE message_id = ?1")?
        .query_row([&m.message_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((orig, seen_at)) = seen {
        if seen_at >= cutoff {
            // Note the duplicate on the original (if retention has not removed it yet).
            let state: Option<String> = conn
                .prepare_cached("SELECT state FROM messages WHERE id = ?1")?
                .query_row([orig], |r| r.get(0))
                .optional()?;
            if let Some(state) = state {
                let st: State = state.parse()?;
                insert_event(
                    conn,
                    orig,
                    now,
                    Some(st),
                    st,
                    "duplicate received; not delivered again",
                    None,
                )?;
            }
            return Ok(Received::Duplicate { of: StoreId(orig) });
        }
    }
    conn.prepare_cached(
        "INSERT INTO messages (direction, message_id, conversation_id, pmode_id, ref_to_message_id, state, \
         created_at, updated_at) VALUES ('IN', ?1, ?2, ?3, ?4, 'RECEIVED', ?5, ?5)",
    )?
    .execute(params![m.message_id, m.conversation_id, m.pmode_id, m.ref_to_message_id, now])?;
    let id = conn.last_insert_rowid();
    insert_header(conn, id, m.header.as_deref())?;
    insert_parts(conn, id, &m.properties, &m.payloads)?;
    insert_event(conn, id, now, None, State::Received, "received", None)?;
    if let Some(r) = &m.receipt {
        insert_receipt(conn, StoreId(id), now, r)?;
    }
    conn.prepare_cached(
        "INSERT INTO inbound_seen (message_id, message, seen_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (message_id) DO UPDATE SET message = excluded.message, seen_at = excluded.seen_at",
    )?
    .execute(params![m.message_id, id, now])?;
    if let Some(n) = notify {
        let n = NewNotification {
            message: n.message.or(Some(StoreId(id))),
            ..n.clone()
        };
        insert_notification(conn, now, &n)?;
    }
    Ok(Received::New(StoreId(id)))
}

fn mark_delivered_tx(conn: &Connection, id: StoreId, now: i64, detail: &str) -> Result<()> {
    let (direction, state, _) = message_head(conn, id)?;
    if direction != Direction::Inbound || state != State::Received {
        return Err(StoreError::InvalidTransition {
            id,
            state,
            action: "mark delivered",
        });
    }
    set_delivered(conn, id, now, detail)
}

/// RECEIVED → DELIVERED for a message the caller found inbound and RECEIVED.
fn set_delivered(conn: &Connection, id: StoreId, now: i64, detail: &str) -> Result<()> {
    conn.prepare_cached("UPDATE messages SET state = 'DELIVERED', updated_at = ?2 WHERE id = ?1")?
        .execute(params![id.0, now])?;
    insert_event(
        conn,
        id.0,
        now,
        Some(State::Received),
        State::Delivered,
        detail,
        None,
    )
}

fn lease_outbox_read(
    conn: &Connection,
    leases: &mut std::collections::HashMap<i64, (String, i64)>,
    now: i64,
    owner: &str,
    max: usize,
    until: i64,
) -> Result<Vec<OutboxItem>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, message, kind, target, body, attempts, last_error FROM outbox \
         WHERE state = 'PENDING' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id",
    )?;
    let mut rows = stmt.query([now])?;
    let mut out = Vec::new();
    while out.len() < max {
        let Some(r) = rows.next()? else { break };
        let id: i64 = r.get(0)?;
        if leases.get(&id).is_some_and(|(_, u)| *u > now) {
            continue;
        }
        let attempts: i64 = r.get(5)?;
        out.push(OutboxItem {
            id: OutboxId(id),
            message: r.get::<_, Option<i64>>(1)?.map(StoreId),
            kind: r.get(2)?,
            target: r.get(3)?,
            body: r.get(4)?,
            // This push is one more attempt than the recorded ones (counted when it ends).
            attempts: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
            lease: Lease {
                owner: owner.to_string(),
                until: from_ts(until)?,
            },
            last_error: r.get(6)?,
        });
        leases.insert(id, (owner.to_string(), until));
    }
    Ok(out)
}

/// A push held under `owner`'s lease succeeded: the item is DONE.
fn outbox_done_tx(conn: &Connection, id: OutboxId, owner: &str, now: i64) -> Result<()> {
    // One statement on the usual path; the state is read only to say why nothing changed.
    let n = conn
        .prepare_cached(
            "UPDATE outbox SET state = 'DONE', attempts = attempts + 1, updated_at = ?2 \
             WHERE id = ?1 AND state = 'PENDING'",
        )?
        .execute(params![id.0, now])?;
    if n == 0 {
        check_outbox_pending(conn, id, owner)?;
        return Err(StoreError::Corrupt(format!("outbox {} not updated", id.0)));
    }
    Ok(())
}

/// The item must still be PENDING (its lease is checked in memory, [`SqliteStore::outbox_end`]).
fn check_outbox_pending(conn: &Connection, id: OutboxId, owner: &str) -> Result<()> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM outbox WHERE id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    let state = state.ok_or_else(|| StoreError::NotFound(format!("outbox {}", id.0)))?;
    if state != "PENDING" {
        return Err(StoreError::LeaseLost {
            what: format!("outbox {}", id.0),
            owner: owner.to_string(),
        });
    }
    Ok(())
}

fn prune_tx(conn: &Connection, before: i64) -> Result<(PruneReport, Vec<String>)> {
    let ids = conn
        .prepare(
            "SELECT id FROM messages WHERE state IN ('ACKNOWLEDGED', 'FAILED', 'DELIVERED') AND updated_at < ?1",
        )?
        .query_map([before], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut files = Vec::new();
    for id in &ids {
        let mut q = conn.prepare_cached("SELECT file FROM payloads WHERE message = ?1")?;
        for f in q.query_map([id], |r| r.get::<_, String>(0))? {
            files.push(f?);
        }
        let wire: Option<String> = conn
            .prepare_cached("SELECT wire_file FROM messages WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        files.extend(wire);
        // Cascades to payloads, properties, events, receipts and outbox rows.
        conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?
            .execute([id])?;
    }
    let outbox = conn
        .prepare_cached("DELETE FROM outbox WHERE state IN ('DONE', 'DEAD') AND updated_at < ?1")?
        .execute([before])?;
    // A key stays while its message does: it is how `get_by_message_id` finds an inbound
    // message (migration 9).
    let seen = conn
        .prepare_cached(
            "DELETE FROM inbound_seen WHERE seen_at < ?1 \
             AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.id = inbound_seen.message)",
        )?
        .execute([before])?;
    // Only names the spool itself could have made are ever removed; inline content goes with
    // its row.
    let files = files
        .into_iter()
        .filter(|f| f != INLINE_NAME && FileRef::from_stored(f.clone(), 0, &[0u8; 32]).is_ok())
        .collect();
    Ok((
        PruneReport {
            messages: ids.len() as u64,
            outbox: outbox as u64,
            duplicate_keys: seen as u64,
            files: 0,
        },
        files,
    ))
}

/// Which retention step a batch performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PurgeKind {
    Payloads,
    Metadata,
}

/// Spool file names and recorded bytes still present for message `id`.
fn message_files(conn: &Connection, id: i64) -> Result<(Vec<String>, u64)> {
    let purged: Option<i64> = conn
        .prepare_cached("SELECT payloads_purged_at FROM messages WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let mut files = Vec::new();
    let mut bytes = 0u64;
    if purged.is_some() {
        return Ok((files, bytes));
    }
    let mut q = conn.prepare_cached("SELECT file, size FROM payloads WHERE message = ?1")?;
    for f in q.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (f, size) = f?;
        if f != INLINE_NAME {
            files.push(f);
        }
        bytes += u64::try_from(size).unwrap_or(0);
    }
    let (wire, size): (Option<String>, Option<i64>) = conn
        .prepare_cached("SELECT wire_file, wire_size FROM messages WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if let Some(w) = wire {
        if w != INLINE_NAME {
            files.push(w);
        }
        bytes += size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
    }
    Ok((files, bytes))
}

/// Final states whose payloads may go: outbound ACKNOWLEDGED / FAILED; inbound only DELIVERED,
/// so a payload the backend has not taken yet is never purged. One keyset walk each (see
/// [`PurgeCursor`]).
const PURGEABLE_STATES: [&str; 3] = ["ACKNOWLEDGED", "DELIVERED", "FAILED"];

/// Where a purge run is: the next terminal state to walk and the last (`updated_at`, `id`)
/// handled in it. Each batch reads `messages_state` from there in index order and stops at the
/// batch size. Without it every batch read every old terminal message again (those already
/// purged of payloads stay in the range) and sorted them by id: a first purge of a large store
/// cost a pass over all candidates per batch of 500.
#[derive(Debug, Clone, Copy)]
struct PurgeCursor {
    state: usize,
    after: (i64, i64),
}

impl PurgeCursor {
    fn start() -> Self {
        PurgeCursor {
            state: 0,
            after: (i64::MIN, i64::MIN),
        }
    }

    fn done(&self) -> bool {
        self.state >= PURGEABLE_STATES.len()
    }
}

/// [`purge_page`]'s statement: one state's candidates after (`updated_at`, `id`), in the order
/// of `messages_state`, up to the limit.
fn purge_page_sql(kind: PurgeKind) -> String {
    let extra = match kind {
        PurgeKind::Payloads => " AND payloads_purged_at IS NULL",
        PurgeKind::Metadata => "",
    };
    format!(
        "SELECT id, updated_at FROM messages INDEXED BY messages_state \
         WHERE state = ?1 AND updated_at < ?2 AND (updated_at, id) > (?3, ?4) \
         AND pmode_id = ?5{extra} ORDER BY updated_at, id LIMIT (SELECT ?6)"
    )
}

/// One batch's candidates from `cursor`, and the cursor after them.
fn purge_page(
    conn: &Connection,
    kind: PurgeKind,
    pmode: &str,
    before: i64,
    batch: usize,
    mut cursor: PurgeCursor,
) -> Result<(Vec<i64>, PurgeCursor)> {
    let sql = purge_page_sql(kind);
    let mut ids = Vec::new();
    while !cursor.done() && ids.len() < batch {
        let room = batch - ids.len();
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(
                params![
                    PURGEABLE_STATES[cursor.state],
                    before,
                    cursor.after.0,
                    cursor.after.1,
                    pmode,
                    limit_i64(room)
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if let Some(&(id, updated)) = rows.last() {
            cursor.after = (updated, id);
        }
        if rows.len() < room {
            cursor = PurgeCursor {
                state: cursor.state + 1,
                ..PurgeCursor::start()
            };
        }
        ids.extend(rows.into_iter().map(|(id, _)| id));
    }
    Ok((ids, cursor))
}

/// One retention batch: at most `batch` messages of `pmode` changed before `before`. Returns
/// the messages handled, the files to remove after the commit, their bytes and the cursor for the next batch.
fn purge_batch_tx(
    conn: &Connection,
    kind: PurgeKind,
    pmode: &str,
    before: i64,
    now: i64,
    batch: usize,
    cursor: PurgeCursor,
) -> Result<(u64, Vec<String>, u64, PurgeCursor)> {
    let (ids, cursor) = purge_page(conn, kind, pmode, before, batch, cursor)?;
    let mut files = Vec::new();
    let mut bytes = 0u64;
    for id in &ids {
        let (f, b) = message_files(conn, *id)?;
        files.extend(f);
        bytes += b;
        match kind {
            PurgeKind::Payloads => {
                conn.prepare_cached(
                    "UPDATE messages SET payloads_purged_at = ?2, wire_file = NULL, wire_size = NULL, \
                     wire_sha256 = NULL WHERE id = ?1",
                )?
                .execute(params![id, now])?;
                conn.prepare_cached("DELETE FROM wire_inline WHERE message = ?1")?
                    .execute([id])?;
                // Inline payloads are purged with the files.
                conn.prepare_cached(
                    "UPDATE payloads SET data = NULL WHERE message = ?1 AND data IS NOT NULL",
                )?
                .execute([id])?;
            }
            PurgeKind::Metadata => {
                // The duplicate key goes with the message (retention >= the window, checked when
                // the P-Mode is loaded).
                // By its key (the partner's MessageId), not a scan for `message` (no index:
                // it would cost every received message a page).
                conn.prepare_cached(
                    "DELETE FROM inbound_seen WHERE message_id = \
                     (SELECT message_id FROM messages WHERE id = ?1) AND message = ?1",
                )?
                .execute([id])?;
                // Cascades to payloads, properties, events, receipts and outbox rows.
                conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                    .execute([id])?;
            }
        }
    }
    // Only names the spool itself could have made are ever removed; inline content goes with
    // its row.
    let files = files
        .into_iter()
        .filter(|f| f != INLINE_NAME && FileRef::from_stored(f.clone(), 0, &[0u8; 32]).is_ok())
        .collect();
    Ok((ids.len() as u64, files, bytes, cursor))
}

/// Dry run: what [`purge_batch_tx`] would handle over all batches.
fn purge_count(
    conn: &Connection,
    kind: PurgeKind,
    pmode: &str,
    before: i64,
) -> Result<(u64, u64, u64)> {
    // The same pages as the purge itself, so the count is what a run would handle.
    let mut cursor = PurgeCursor::start();
    let (mut n, mut files, mut bytes) = (0u64, 0u64, 0u64);
    while !cursor.done() {
        let (ids, next) = purge_page(conn, kind, pmode, before, 1024, cursor)?;
        cursor = next;
        n += ids.len() as u64;
        for id in &ids {
            let (f, b) = message_files(conn, *id)?;
            files += f.len() as u64;
            bytes += b;
        }
    }
    Ok((n, files, bytes))
}

/// `now - days`, in stored time.
fn days_before(now: OffsetDateTime, days: u32) -> i64 {
    ts(now - Duration::days(i64::from(days)))
}

impl SqliteStore {
    /// SQLite pages in use by the database file (`PRAGMA page_count`) and free pages among
    /// them: what "the store stays flat" is measured with.
    pub async fn page_counts(&self) -> Result<(u64, u64)> {
        self.read(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let free: i64 = c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            Ok((
                u64::try_from(pages).unwrap_or(0),
                u64::try_from(free).unwrap_or(0),
            ))
        })
        .await
    }
}

/// The query of one `list` page: SQL and its arguments.
fn list_query(filter: &Filter, cursor: Option<Cursor>, limit: usize) -> (String, Vec<Value>) {
    let mut sql = String::from("SELECT id FROM messages m WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut push = |sql: &mut String, clause: &str, v: Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(d) = filter.direction {
        push(
            &mut sql,
            " AND direction = ?",
            Value::Text(d.as_str().into()),
        );
    }
    if let Some(s) = filter.state {
        push(&mut sql, " AND state = ?", Value::Text(s.as_str().into()));
    }
    if let Some(p) = &filter.pmode_id {
        push(&mut sql, " AND pmode_id = ?", Value::Text(p.clone()));
    }
    if let Some(c) = &filter.conversation_id {
        push(&mut sql, " AND conversation_id = ?", Value::Text(c.clone()));
    }
    if let Some((name, value)) = &filter.property {
        if name == INDEXED_PROPERTY {
            // The name as a literal, so that SQLite may use the partial index (migration 11).
            push(
                &mut sql,
                &format!(
                    " AND m.id IN (SELECT message FROM properties \
                     WHERE name = '{INDEXED_PROPERTY}' AND value = ?)"
                ),
                Value::Text(value.clone()),
            );
        } else {
            push(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM properties p WHERE p.message = m.id AND p.name = ?",
                Value::Text(name.clone()),
            );
            push(&mut sql, " AND p.value = ?)", Value::Text(value.clone()));
        }
    }
    if let Some(t) = filter.created_from {
        push(&mut sql, " AND created_at >= ?", Value::Integer(ts(t)));
    }
    if let Some(t) = filter.created_before {
        push(&mut sql, " AND created_at < ?", Value::Integer(ts(t)));
    }
    if let Some(Cursor(c)) = cursor {
        push(&mut sql, " AND id < ?", Value::Integer(c));
    }
    let limit = limit.max(1);
    push(
        &mut sql,
        " ORDER BY id DESC LIMIT (SELECT ?)",
        Value::Integer(limit_i64(limit).saturating_add(1)),
    );
    (sql, args)
}

fn list_tx(
    conn: &Connection,
    filter: &Filter,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<Page> {
    let (sql, args) = list_query(filter, cursor, limit);
    let limit = limit.max(1);
    let ids = conn
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = ids.len() > limit;
    let mut items = Vec::with_capacity(limit);
    for id in ids.into_iter().take(limit) {
        if let Some(rec) = load_message(conn, id)? {
            items.push(rec);
        }
    }
    let next = if more {
        items.last().map(|r| Cursor(r.id.0))
    } else {
        None
    };
    Ok(Page { items, next })
}

fn lease_until(now: OffsetDateTime, lease_for: Duration) -> i64 {
    ts(now).saturating_add(i64::try_from(lease_for.whole_microseconds()).unwrap_or(i64::MAX))
}

impl MessageStore for SqliteStore {
    fn spool(&self) -> &Spool {
        &self.inner.spool
    }

    fn submit(&self, now: OffsetDateTime, msg: NewOutbound) -> BoxFuture<'_, Result<Submitted>> {
        Box::pin(self.write(move |c| submit_tx(c, ts(now), &msg)))
    }

    fn submit_leased(
        &self,
        now: OffsetDateTime,
        msg: NewOutbound,
        owner: &str,
        lease_for: Duration,
    ) -> BoxFuture<'_, Result<(Submitted, Option<MessageRecord>)>> {
        let owner = owner.to_string();
        let until = lease_until(now, lease_for);
        Box::pin(self.write(move |c| submit_leased_tx(c, ts(now), &msg, &owner, until)))
    }

    fn lease_due(
        &self,
        now: OffsetDateTime,
        owner: &str,
        max: usize,
        lease_for: Duration,
    ) -> BoxFuture<'_, Result<Vec<MessageRecord>>> {
        let owner = owner.to_string();
        let until = lease_until(now, lease_for);
        Box::pin(self.write(move |c| lease_due_tx(c, ts(now), &owner, max, until)))
    }

    fn record_wire(
        &self,
        id: StoreId,
        owner: &str,
        now: OffsetDateTime,
        wire: FileRef,
    ) -> BoxFuture<'_, Result<()>> {
        let owner = owner.to_string();
        Box::pin(self.write(move |c| record_wire_tx(c, id, &owner, ts(now), &wire)))
    }

    fn finish_attempt_with_wire(
        &self,
        id: StoreId,
        owner: &str,
        now: OffsetDateTime,
        wire: FileRef,
        outcome: Outcome,
        notify: Option<NewNotification>,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.finish(id, owner.to_string(), now, Some(wire), outcome, notify))
    }

    fn finish_attempt(
        &self,
        id: StoreId,
        owner: &str,
        now: OffsetDateTime,
        outcome: Outcome,
        notify: Option<NewNotification>,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.finish(id, owner.to_string(), now, None, outcome, notify))
    }

    fn record_received(
        &self,
        now: OffsetDateTime,
        msg: NewInbound,
        window: Duration,
        notify: Option<NewNotification>,
    ) -> BoxFuture<'_, Result<Received>> {
        let signal = notify.is_some();
        Box::pin(async move {
            let r = self
                .write(move |c| record_received_tx(c, ts(now), &msg, window, notify.as_ref()))
                .await;
            if matches!(r, Ok(Received::New(_))) && signal {
                self.inner.outbox.notify_one();
            }
            r
        })
    }

    fn mark_delivered(
        &self,
        id: StoreId,
        now: OffsetDateTime,
        detail: &str,
    ) -> BoxFuture<'_, Result<()>> {
        let detail = detail.to_string();
        Box::pin(self.write(move |c| mark_delivered_tx(c, id, ts(now), &detail)))
    }

    fn store_receipt(
        &self,
        id: StoreId,
        now: OffsetDateTime,
        bytes: Vec<u8>,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write(move |c| {
            message_head(c, id)?;
            insert_receipt(c, id, ts(now), &bytes)
        }))
    }

    fn receipt(&self, id: StoreId) -> BoxFuture<'_, Result<Option<Receipt>>> {
        Box::pin(self.read(move |c| {
            let row: Option<(i64, Vec<u8>)> = c
                .prepare_cached("SELECT at, bytes FROM receipts WHERE message = ?1")?
                .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(at, bytes)| {
                Ok(Receipt {
                    at: from_ts(at)?,
                    bytes,
                })
            })
            .transpose()
        }))
    }

    fn get(&self, id: StoreId) -> BoxFuture<'_, Result<Option<MessageRecord>>> {
        Box::pin(self.read(move |c| load_message(c, id.0)))
    }

    fn get_by_message_id(
        &self,
        direction: Direction,
        message_id: &str,
    ) -> BoxFuture<'_, Result<Option<MessageRecord>>> {
        let message_id = message_id.to_string();
        Box::pin(self.read(move |c| {
            // Outbound: the direction is a literal so that SQLite uses the partial unique index.
            let sql = match direction {
                Direction::Outbound => {
                    "SELECT id FROM messages WHERE direction = 'OUT' AND message_id = ?1 ORDER BY id DESC LIMIT 1"
                }
                // The duplicate key points at the newest message that carried the MessageId
                // (migration 9: the only index of inbound MessageIds).
                Direction::Inbound => {
                    "SELECT m.id FROM inbound_seen s JOIN messages m ON m.id = s.message \
                     WHERE s.message_id = ?1 AND m.direction = 'IN'"
                }
            };
            let id: Option<i64> = c
                .prepare_cached(sql)?
                .query_row(params![message_id], |r| r.get(0))
                .optional()?;
            match id {
                Some(id) => load_message(c, id),
                None => Ok(None),
            }
        }))
    }

    fn events(&self, id: StoreId) -> BoxFuture<'_, Result<Vec<Event>>> {
        Box::pin(self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT id, at, from_state, to_state, detail, ebms_code FROM events WHERE message = ?1 ORDER BY id",
                )?
                .query_map([id.0], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(eid, at, from, to, detail, code)| {
                    Ok(Event {
                        id: eid,
                        message: id,
                        at: from_ts(at)?,
                        from: from.map(|s| s.parse()).transpose()?,
                        to: to.parse()?,
                        detail,
                        code: code_from(code)?,
                    })
                })
                .collect()
        }))
    }

    fn list(
        &self,
        filter: Filter,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Page>> {
        Box::pin(self.read(move |c| list_tx(c, &filter, cursor, limit)))
    }

    fn enqueue(&self, now: OffsetDateTime, n: NewNotification) -> BoxFuture<'_, Result<OutboxId>> {
        Box::pin(async move {
            let r = self
                .write(move |c| insert_notification(c, ts(now), &n).map(OutboxId))
                .await;
            if r.is_ok() {
                self.inner.outbox.notify_one();
            }
            r
        })
    }

    fn lease_outbox(
        &self,
        now: OffsetDateTime,
        owner: &str,
        max: usize,
        lease_for: Duration,
    ) -> BoxFuture<'_, Result<Vec<OutboxItem>>> {
        let owner = owner.to_string();
        let until = lease_until(now, lease_for);
        let inner = self.inner.clone();
        Box::pin(self.read(move |c| {
            let mut leases = inner
                .outbox_leases
                .lock()
                .map_err(|_| StoreError::Corrupt("outbox lease table poisoned".into()))?;
            lease_outbox_read(c, &mut leases, ts(now), &owner, max, until)
        }))
    }

    fn outbox_done(
        &self,
        id: OutboxId,
        owner: &str,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.outbox_end(id, owner.to_string(), move |c, owner| {
            outbox_done_tx(c, id, owner, ts(now))
        }))
    }

    fn outbox_done_delivered(
        &self,
        id: OutboxId,
        owner: &str,
        now: OffsetDateTime,
        delivered: Option<(StoreId, String)>,
    ) -> BoxFuture<'_, Result<bool>> {
        Box::pin(self.outbox_end(id, owner.to_string(), move |c, owner| {
            outbox_done_tx(c, id, owner, ts(now))?;
            let Some((m, detail)) = delivered else {
                return Ok(false);
            };
            // Already acknowledged through the API meanwhile (or not an inbound message):
            // the push still counts as done.
            match message_head(c, m)? {
                (Direction::Inbound, State::Received, _) => {
                    set_delivered(c, m, ts(now), &detail)?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }))
    }

    fn outbox_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(Arc::clone(&self.inner.outbox))
    }

    fn outbox_retry(
        &self,
        id: OutboxId,
        owner: &str,
        now: OffsetDateTime,
        next_attempt_at: Option<OffsetDateTime>,
        error: &str,
    ) -> BoxFuture<'_, Result<()>> {
        let error = error.to_string();
        Box::pin(self.outbox_end(id, owner.to_string(), move |c, owner| {
            check_outbox_pending(c, id, owner)?;
            let (state, next) = match next_attempt_at {
                Some(t) => ("PENDING", Some(ts(t))),
                None => ("DEAD", None),
            };
            c.execute(
                "UPDATE outbox SET state = ?2, next_attempt_at = coalesce(?3, next_attempt_at), \
                 attempts = attempts + 1, last_error = ?4, updated_at = ?5 WHERE id = ?1",
                params![id.0, state, next, error, ts(now)],
            )?;
            Ok(())
        }))
    }

    fn prune(&self, before: OffsetDateTime) -> BoxFuture<'_, Result<PruneReport>> {
        Box::pin(async move {
            let (mut report, files) = self.write(move |c| prune_tx(c, ts(before))).await?;
            // Files go only after the commit: a crash in between leaves orphans, never rows
            // pointing at missing bytes.
            let spool = self.inner.spool.clone();
            report.files = tokio::task::spawn_blocking(move || spool.remove_files(&files))
                .await
                .map_err(|_| StoreError::Closed)??;
            Ok(report)
        })
    }

    fn purge(
        &self,
        now: OffsetDateTime,
        rules: Vec<RetentionRule>,
        opts: PurgeOptions,
    ) -> BoxFuture<'_, Result<PurgeReport>> {
        Box::pin(async move {
            let mut report = PurgeReport::default();
            let batch = opts.batch.max(1);
            // Payloads first: a message past both limits loses its files in the metadata step
            // anyway, and counting it once there keeps the report honest.
            let steps = [PurgeKind::Payloads, PurgeKind::Metadata];
            for kind in steps {
                for rule in &rules {
                    let days = match kind {
                        PurgeKind::Payloads => rule.payload_days,
                        PurgeKind::Metadata => rule.metadata_days,
                    };
                    let Some(days) = days else { continue };
                    let before = days_before(now, days);
                    let pmode = rule.pmode_id.clone();
                    if opts.dry_run {
                        let (n, f, b) = self
                            .read(move |c| purge_count(c, kind, &pmode, before))
                            .await?;
                        match kind {
                            PurgeKind::Payloads => report.payload_messages += n,
                            PurgeKind::Metadata => report.messages += n,
                        }
                        report.files += f;
                        report.bytes += b;
                        continue;
                    }
                    let mut cursor = PurgeCursor::start();
                    loop {
                        let p = pmode.clone();
                        let (n, files, bytes, next) = self
                            .write(move |c| {
                                purge_batch_tx(c, kind, &p, before, ts(now), batch, cursor)
                            })
                            .await?;
                        cursor = next;
                        report.batches += 1;
                        match kind {
                            PurgeKind::Payloads => report.payload_messages += n,
                            PurgeKind::Metadata => report.messages += n,
                        }
                        report.bytes += bytes;
                        let spool = self.inner.spool.clone();
                        report.files +=
                            tokio::task::spawn_blocking(move || spool.remove_files(&files))
                                .await
                                .map_err(|_| StoreError::Closed)??;
                        if cursor.done() {
                            break;
                        }
                        // Let queued traffic take the writer before the next batch.
                        tokio::task::yield_now().await;
                    }
                }
            }
            Ok(report)
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats>> {
        let db = self.inner.db_path.clone();
        Box::pin(async move {
            let mut st = self.read(move |c| stats_tx(c, &db)).await?;
            let w = self.writer_stats();
            st.commits = w.commits;
            st.write_requests = w.jobs;
            Ok(st)
        })
    }

    fn stuck(
        &self,
        state: State,
        changed_before: OffsetDateTime,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<StuckMessage>>> {
        Box::pin(self.read(move |c| stuck_tx(c, state, ts(changed_before), limit)))
    }
}

/// Counts per (direction, state) (the `messages_state` index covers it) and the bytes on
/// disk: the database with its WAL, plus the spooled files as recorded (cheaper than walking
/// the spool directory at every scrape).
fn stats_tx(c: &Connection, db: &Path) -> Result<StoreStats> {
    let rows = c
        .prepare_cached(
            "SELECT direction, state, COUNT(*), MIN(created_at), MIN(updated_at) FROM messages GROUP BY direction, state",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut by_state = Vec::with_capacity(rows.len());
    for (d, st, n, created, updated) in rows {
        by_state.push(StateCount {
            direction: d.parse()?,
            state: st.parse()?,
            count: u64::try_from(n).unwrap_or(0),
            oldest_created: created.map(from_ts).transpose()?,
            oldest_updated: updated.map(from_ts).transpose()?,
        });
    }
    let spooled: i64 = c.query_row(
        "SELECT (SELECT COALESCE(SUM(size), 0) FROM payloads) + (SELECT COALESCE(SUM(wire_size), 0) FROM messages)",
        [],
        |r| r.get(0),
    )?;
    let mut bytes = u64::try_from(spooled).unwrap_or(0);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(m) = std::fs::metadata(PathBuf::from(p)) {
            bytes += m.len();
        }
    }
    Ok(StoreStats {
        by_state,
        bytes,
        ..StoreStats::default()
    })
}

fn stuck_tx(c: &Connection, state: State, before: i64, limit: usize) -> Result<Vec<StuckMessage>> {
    let rows = c
        .prepare_cached(
            "SELECT id, direction, message_id, conversation_id, pmode_id, updated_at FROM messages \
             WHERE state = ?1 AND updated_at < ?2 ORDER BY updated_at LIMIT (SELECT ?3)",
        )?
        .query_map(params![state.as_str(), before, limit_i64(limit)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(id, d, mid, conv, pmode, at)| {
            Ok(StuckMessage {
                id: StoreId(id),
                direction: d.parse()?,
                state,
                message_id: mid,
                conversation_id: conv,
                pmode_id: pmode,
                since: from_ts(at)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lease_due` reads the two partial indexes, never all messages of a state: the plans of
    /// its statements on a migrated database.
    #[test]
    fn lease_due_reads_the_partial_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_blocking(dir.path()).expect("store");
        let conn = open_connection(store.db_path()).expect("connection");
        for (sql, index) in [
            (
                LEASE_EXPIRED_SQL,
                "USING INDEX messages_lease (lease_until<?)",
            ),
            (
                LEASE_DUE_SQL,
                "USING INDEX messages_due (next_attempt_at<?)",
            ),
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("the statement prepares with its index")
                .query_map(params![0, 10], |r| r.get::<_, String>(3))
                .expect("plan")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            let plan = plan.join("\n");
            assert!(plan.contains(index), "{plan}");
            // Read in index order up to the limit: no scan, no sort of every candidate.
            assert!(!plan.contains("messages_state"), "{plan}");
            assert!(!plan.contains("SCAN messages"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    /// A purge batch reads one state's range of `messages_state` from its cursor in index
    /// order up to the batch size: no sort, so no pass over every candidate per batch.
    #[test]
    fn purge_batches_walk_messages_state_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_blocking(dir.path()).expect("store");
        let conn = open_connection(store.db_path()).expect("connection");
        for kind in [PurgeKind::Payloads, PurgeKind::Metadata] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", purge_page_sql(kind)))
                .expect("the statement prepares with its index")
                .query_map(params!["DELIVERED", 0, 0, 0, "p", 10], |r| {
                    r.get::<_, String>(3)
                })
                .expect("plan")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            let plan = plan.join("\n");
            assert!(
                plan.contains("USING INDEX messages_state (state=?"),
                "{plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    /// The bundled SQLite carries the options of `.cargo/config.toml` (LIBSQLITE3_FLAGS): a
    /// build that lost them (another workspace, a packager's own flags) still works but takes
    /// a process-wide mutex per SQLite allocation (issue 8), so it should not pass unnoticed.
    #[test]
    fn the_bundled_sqlite_has_the_recommended_options() {
        let conn = Connection::open_in_memory().expect("db");
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .expect("pragma")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("options");
        for wanted in [
            "DEFAULT_MEMSTATUS=0",
            "LIKE_DOESNT_MATCH_BLOBS",
            "OMIT_SHARED_CACHE",
            "USE_ALLOCA",
        ] {
            assert!(
                options.iter().any(|o| o == wanted),
                "{wanted} missing from {options:?}"
            );
        }
    }

    #[test]
    fn the_indexed_property_is_the_oots_exchange_id() {
        assert_eq!(INDEXED_PROPERTY, crate::oots::PROP_EXCHANGE_ID);
        assert!(MIGRATIONS
            .iter()
            .any(|m| m.contains(&format!("WHERE name = '{INDEXED_PROPERTY}'"))));
    }

    /// The plan of a `list` page by ExchangeId, on a migrated database: through the partial
    /// index, not a walk over every message.
    #[test]
    fn an_exchange_is_listed_through_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_blocking(dir.path()).expect("store");
        drop(store);
        let conn = open_connection(&dir.path().join(DB_FILE)).expect("db");
        let plan = |filter: Filter| {
            let (sql, args) = list_query(&filter, Some(Cursor(1_000)), 100);
            conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan")
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<rusqlite::Result<Vec<_>>>()
                .expect("plan rows")
                .join("; ")
        };
        let by_exchange = plan(Filter {
            property: Some((
                INDEXED_PROPERTY.into(),
                "b7c4e5b2-1f7e-4f47-9a51-6f8d1c0e2a33".into(),
            )),
            ..Filter::default()
        });
        assert!(
            by_exchange.contains("INDEX properties_exchange_id"),
            "{by_exchange}"
        );
        // Any other property: still the correlated lookup (no index, by design).
        let other = plan(Filter {
            property: Some(("originalSender".into(), "x".into())),
            ..Filter::default()
        });
        assert!(!other.contains("properties_exchange_id"), "{other}");
    }
}
