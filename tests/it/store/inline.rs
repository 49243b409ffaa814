//! Small payloads and wire messages inline in the database (issue 8): no spool file, durable
//! with the row's commit, gone with the retention purge; migration 4 upgrades older stores.

use as4gw::store::{
    MessageStore, NewOutbound, Outcome, Payload, PurgeOptions, RetentionRule, SqliteStore,
    DEFAULT_INLINE_MAX,
};
use time::Duration;

use super::{open_temp, t};

/// Migrations in this build (`schema_version` after opening).
const LATEST: i64 = 11;

fn spool_files(s: &SqliteStore) -> usize {
    std::fs::read_dir(s.spool().dir())
        .expect("spool dir")
        .filter(|e| e.as_ref().map(|e| e.path().is_file()).unwrap_or(false))
        .count()
}

fn count(dir: &std::path::Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(dir.join("store.db")).expect("db");
    c.query_row(sql, [], |r| r.get(0)).expect("count")
}

async fn submit_and_ack(s: &SqliteStore, mid: &str, payload: &[u8], wire: &[u8]) {
    let file = s.spool().put_bytes(payload).await.expect("spool payload");
    let msg = NewOutbound {
        message_id: mid.into(),
        conversation_id: "c".into(),
        pmode_id: "p".into(),
        payloads: vec![Payload {
            part_id: "cid:p1".into(),
            mime_type: "application/xml".into(),
            file,
        }],
        header: Some("h".into()),
        ..Default::default()
    };
    let id = s.submit(t(0), msg).await.expect("submit").id;
    let leased = s
        .lease_due(t(1), "owner", 10, Duration::minutes(5))
        .await
        .expect("lease");
    assert!(leased.iter().any(|r| r.id == id));
    let wire = s.spool().put_bytes(wire).await.expect("spool wire");
    s.record_wire(id, "owner", t(2), wire).await.expect("wire");
    let receipt = Some(b"receipt".to_vec());
    s.finish_attempt(id, "owner", t(3), Outcome::Acknowledged { receipt }, None)
        .await
        .expect("ack");
}

#[tokio::test]
async fn small_contents_live_in_the_row_and_survive_a_reopen() {
    let (dir, s) = open_temp().await;
    assert_eq!(s.spool().inline_max(), DEFAULT_INLINE_MAX);
    let payload = vec![b'p'; 4096];
    let wire = vec![b'w'; 9000];
    submit_and_ack(&s, "m1", &payload, &wire).await;
    assert_eq!(
        spool_files(&s),
        0,
        "a small message must not create spool files"
    );
    s.close().await.expect("close");
    drop(s);

    let s = SqliteStore::open(dir.path()).await.expect("reopen");
    let rec = s
        .get_by_message_id(as4gw::store::Direction::Outbound, "m1")
        .await
        .expect("get")
        .expect("stored");
    let f = &rec.payloads[0].file;
    assert!(f.is_inline());
    assert_eq!(f.size(), 4096);
    assert_eq!(
        &s.spool().read_all(f).await.expect("read")[..],
        &payload[..]
    );
    assert!(s.spool().verify(f).await.expect("verify"));
    let w = rec.wire.expect("wire");
    assert!(w.is_inline());
    assert_eq!(&s.spool().read_all(&w).await.expect("read")[..], &wire[..]);
}

#[tokio::test]
async fn the_threshold_is_inclusive_and_larger_contents_stream_to_files() {
    let (_dir, s) = open_temp().await;
    let max = s.spool().inline_max() as usize;
    let at = s
        .spool()
        .put_stream(&vec![1u8; max][..], u64::MAX)
        .await
        .expect("at max");
    assert!(at.is_inline());
    let above = s
        .spool()
        .put_stream(&vec![2u8; max + 1][..], u64::MAX)
        .await
        .expect("above max");
    assert!(!above.is_inline());
    assert!(s.spool().path(&above).exists());
    assert!(s.spool().verify(&above).await.expect("verify"));
    assert_eq!(
        s.spool().read_all(&above).await.expect("read").len(),
        max + 1
    );
    // The size limit still applies to inline contents.
    let err = s.spool().put_stream(&[3u8; 10][..], 5).await;
    assert!(matches!(err, Err(as4gw::store::StoreError::TooLarge(5))));
    // inline-max = 0: every content in its own file, as before issue 8.
    let dir0 = tempfile::tempdir().expect("tempdir");
    let s0 = SqliteStore::open_with(dir0.path(), 0).await.expect("open");
    let f = s0.spool().put_bytes(b"x").await.expect("put");
    assert!(!f.is_inline());
    assert!(s0.spool().path(&f).exists());
}

#[tokio::test]
async fn the_retention_purge_removes_inline_payloads_and_wire_bytes() {
    let (dir, s) = open_temp().await;
    submit_and_ack(&s, "m1", &[b'p'; 2000], &[b'w'; 3000]).await;
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM payloads WHERE data IS NOT NULL"
        ),
        1
    );
    let rules = vec![RetentionRule {
        pmode_id: "p".into(),
        payload_days: Some(1),
        metadata_days: Some(30),
    }];
    let r = s
        .purge(t(2 * 86_400), rules, PurgeOptions::default())
        .await
        .expect("purge");
    assert_eq!(r.payload_messages, 1);
    assert_eq!(r.files, 0, "inline contents are no files");
    assert_eq!(r.bytes, 5000);
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM payloads WHERE data IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM messages WHERE wire_data IS NOT NULL OR wire_file IS NOT NULL"
        ),
        0
    );
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM wire_inline"), 0);
    let rec = s
        .get_by_message_id(as4gw::store::Direction::Outbound, "m1")
        .await
        .expect("get")
        .expect("metadata kept");
    assert!(!rec.payloads[0].file.is_inline());
    assert!(rec.wire.is_none());
}

#[tokio::test]
async fn migrations_upgrade_a_version_3_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = SqliteStore::open_with(dir.path(), 0).await.expect("open");
        submit_and_ack(&s, "old", b"old payload", b"old wire").await;
        s.close().await.expect("close");
    }
    // Take the store back to schema 3 (what a release before issue 8 left behind).
    {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).expect("db");
        c.execute_batch(
            "UPDATE messages SET header = (SELECT header FROM message_header WHERE message = messages.id); \
             DROP TABLE message_header; DROP TABLE wire_inline; \
             CREATE INDEX messages_message_id ON messages (message_id); \
             CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state <> 'PENDING'; \
             ALTER TABLE payloads DROP COLUMN data; ALTER TABLE messages DROP COLUMN wire_data; \
             CREATE INDEX properties_name_value ON properties (name, value); \
             CREATE INDEX inbound_seen_at ON inbound_seen (seen_at); \
             UPDATE schema_version SET version = 3;",
        )
        .expect("downgrade");
    }
    let s = SqliteStore::open(dir.path()).await.expect("migrate");
    assert_eq!(
        count(dir.path(), "SELECT max(version) FROM schema_version"),
        LATEST
    );
    let old = s
        .get_by_message_id(as4gw::store::Direction::Outbound, "old")
        .await
        .expect("get")
        .expect("old message");
    assert!(!old.payloads[0].file.is_inline());
    assert_eq!(
        &s.spool()
            .read_all(&old.payloads[0].file)
            .await
            .expect("read")[..],
        b"old payload"
    );
    submit_and_ack(&s, "new", b"new payload", b"new wire").await;
    let new = s
        .get_by_message_id(as4gw::store::Direction::Outbound, "new")
        .await
        .expect("get")
        .expect("new message");
    assert!(new.payloads[0].file.is_inline());
}

/// Migration 5 moves inline wire bytes out of the message row (issue 8): a version-4 store
/// with the bytes in `messages.wire_data` comes back with them in `wire_inline`, unchanged.
#[tokio::test]
async fn migration_5_moves_inline_wire_bytes_out_of_the_message_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = SqliteStore::open(dir.path()).await.expect("open");
        submit_and_ack(&s, "v4", b"v4 payload", b"v4 wire bytes").await;
        s.close().await.expect("close");
    }
    // Take the store back to schema 4: the wire bytes in the row, no wire_inline table.
    {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).expect("db");
        c.execute_batch(
            "UPDATE messages SET wire_data = (SELECT data FROM wire_inline WHERE message = messages.id); \
             UPDATE messages SET header = (SELECT header FROM message_header WHERE message = messages.id); \
             DROP TABLE message_header; DROP TABLE wire_inline; \
             CREATE INDEX messages_message_id ON messages (message_id); \
             CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state <> 'PENDING'; \
             CREATE INDEX properties_name_value ON properties (name, value); \
             CREATE INDEX inbound_seen_at ON inbound_seen (seen_at); \
             UPDATE schema_version SET version = 4;",
        )
        .expect("downgrade");
    }
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM messages WHERE wire_data IS NOT NULL"
        ),
        1
    );
    let s = SqliteStore::open(dir.path()).await.expect("migrate");
    assert_eq!(
        count(dir.path(), "SELECT max(version) FROM schema_version"),
        LATEST
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM messages WHERE wire_data IS NOT NULL"
        ),
        0
    );
    let rec = s
        .get_by_message_id(as4gw::store::Direction::Outbound, "v4")
        .await
        .expect("get")
        .expect("v4 message");
    let wire = rec.wire.expect("wire recorded");
    assert!(wire.is_inline());
    assert_eq!(
        &s.spool().read_all(&wire).await.expect("read")[..],
        b"v4 wire bytes"
    );
}

/// Migration 6 moves the ebMS header out of the message row (issue 8): a version-5 store with
/// the header in `messages.header` comes back with it in `message_header`, unchanged.
#[tokio::test]
async fn migration_6_moves_the_header_out_of_the_message_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let header = {
        let s = SqliteStore::open(dir.path()).await.expect("open");
        submit_and_ack(&s, "v5", b"v5 payload", b"v5 wire bytes").await;
        let rec = s
            .get_by_message_id(as4gw::store::Direction::Outbound, "v5")
            .await
            .expect("get")
            .expect("v5 message");
        s.close().await.expect("close");
        rec.header
    };
    assert!(header.is_some(), "the test message has a header");
    {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).expect("db");
        c.execute_batch(
            "UPDATE messages SET header = (SELECT header FROM message_header WHERE message = messages.id); \
             DROP TABLE message_header; \
             CREATE INDEX messages_message_id ON messages (message_id); \
             CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state <> 'PENDING'; \
             CREATE INDEX properties_name_value ON properties (name, value); \
             CREATE INDEX inbound_seen_at ON inbound_seen (seen_at); \
             UPDATE schema_version SET version = 5;",
        )
        .expect("downgrade");
    }
    let s = SqliteStore::open(dir.path()).await.expect("migrate");
    assert_eq!(
        count(dir.path(), "SELECT max(version) FROM schema_version"),
        LATEST
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM messages WHERE header IS NOT NULL"
        ),
        0
    );
    let rec = s
        .get_by_message_id(as4gw::store::Direction::Outbound, "v5")
        .await
        .expect("get")
        .expect("v5 message");
    assert_eq!(rec.header, header);
}

#[tokio::test]
async fn migrations_8_and_9_keep_properties_and_duplicate_keys_and_find_inbound_messages() {
    use as4gw::store::{Filter, NewInbound, Received};
    let dir = tempfile::tempdir().expect("tempdir");
    let window = Duration::days(7);
    let (out_id, in_id) = {
        let s = SqliteStore::open(dir.path()).await.expect("open");
        let out = NewOutbound {
            message_id: "v7-out".into(),
            conversation_id: "c".into(),
            pmode_id: "p".into(),
            properties: vec![
                ("originalSender".into(), "a".into()),
                ("ExchangeId".into(), "x-1".into()),
            ],
            ..Default::default()
        };
        let out_id = s.submit(t(0), out).await.expect("submit").id;
        let inb = NewInbound {
            message_id: "v7-in@partner".into(),
            conversation_id: "c".into(),
            pmode_id: "p".into(),
            properties: vec![("ExchangeId".into(), "x-2".into())],
            ..Default::default()
        };
        let Received::New(in_id) = s
            .record_received(t(1), inb, window, None)
            .await
            .expect("receive")
        else {
            panic!("new message expected");
        };
        s.close().await.expect("close");
        (out_id, in_id)
    };
    // Take the store back to schema 7: rowid tables with their primary-key indexes and the
    // two indexes migration 8 dropped.
    {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).expect("db");
        c.execute_batch(
            "CREATE TABLE p7 (message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE, \
               seq INTEGER NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (message, seq)); \
             INSERT INTO p7 SELECT message, seq, name, value FROM properties; \
             DROP TABLE properties; ALTER TABLE p7 RENAME TO properties; \
             CREATE INDEX properties_name_value ON properties (name, value); \
             CREATE TABLE s7 (message_id TEXT PRIMARY KEY, message INTEGER NOT NULL, seen_at INTEGER NOT NULL); \
             INSERT INTO s7 SELECT message_id, message, seen_at FROM inbound_seen; \
             DROP TABLE inbound_seen; ALTER TABLE s7 RENAME TO inbound_seen; \
             CREATE INDEX inbound_seen_at ON inbound_seen (seen_at); \
             CREATE INDEX messages_in_message_id ON messages (message_id) WHERE direction = 'IN'; \
             CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state <> 'PENDING'; \
             UPDATE schema_version SET version = 7;",
        )
        .expect("downgrade");
    }
    let s = SqliteStore::open(dir.path()).await.expect("migrate");
    assert_eq!(
        count(dir.path(), "SELECT max(version) FROM schema_version"),
        LATEST
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('properties_name_value', 'inbound_seen_at')"
        ),
        0
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('properties', 'inbound_seen') AND sql LIKE '%WITHOUT ROWID'"
        ),
        2
    );
    let rec = s.get(out_id).await.expect("get").expect("outbound");
    assert_eq!(
        rec.properties,
        vec![
            ("originalSender".to_string(), "a".to_string()),
            ("ExchangeId".to_string(), "x-1".to_string())
        ]
    );
    for (value, id) in [("x-1", out_id), ("x-2", in_id)] {
        let page = s
            .list(
                Filter {
                    property: Some(("ExchangeId".into(), value.into())),
                    ..Filter::default()
                },
                None,
                10,
            )
            .await
            .expect("list");
        assert_eq!(
            page.items.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![id],
            "property filter {value}"
        );
    }
    // An inbound message is found through its duplicate key (migration 9).
    let found = s
        .get_by_message_id(as4gw::store::Direction::Inbound, "v7-in@partner")
        .await
        .expect("get")
        .map(|r| r.id);
    assert_eq!(found, Some(in_id));
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('messages_in_message_id', 'outbox_finished')"
        ),
        0
    );
    // The duplicate key survived the rebuild.
    let again = NewInbound {
        message_id: "v7-in@partner".into(),
        conversation_id: "c".into(),
        pmode_id: "p".into(),
        ..Default::default()
    };
    assert_eq!(
        s.record_received(t(2), again, window, None)
            .await
            .expect("receive again"),
        Received::Duplicate { of: in_id }
    );
}

#[tokio::test]
async fn migration_9_restores_the_key_of_an_inbound_message_that_lost_it() {
    use as4gw::store::{Direction, NewInbound, Received};
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let s = SqliteStore::open(dir.path()).await.expect("open");
        let inb = NewInbound {
            message_id: "keyless@partner".into(),
            ..Default::default()
        };
        let Received::New(id) = s
            .record_received(t(0), inb, Duration::days(1), None)
            .await
            .expect("receive")
        else {
            panic!("new message expected");
        };
        s.close().await.expect("close");
        id
    };
    // A schema-8 store whose `prune` removed the key of a message still stored.
    {
        let c = rusqlite::Connection::open(dir.path().join("store.db")).expect("db");
        c.execute_batch(
            "DELETE FROM inbound_seen; \
             CREATE INDEX messages_in_message_id ON messages (message_id) WHERE direction = 'IN'; \
             CREATE INDEX outbox_finished ON outbox (updated_at) WHERE state <> 'PENDING'; \
             UPDATE schema_version SET version = 8;",
        )
        .expect("downgrade");
    }
    let s = SqliteStore::open(dir.path()).await.expect("migrate");
    let found = s
        .get_by_message_id(Direction::Inbound, "keyless@partner")
        .await
        .expect("get")
        .map(|r| r.id);
    assert_eq!(found, Some(id));
    assert!(s
        .get_by_message_id(Direction::Outbound, "keyless@partner")
        .await
        .expect("get")
        .is_none());
}
