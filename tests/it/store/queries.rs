//! Listing, pagination, retention, the spool, schema migrations.

use std::collections::HashSet;

use as4gw::store::{
    Cursor, Direction, Filter, MessageStore, NewInbound, Outcome, Received, SqliteStore, State,
    StoreError, StoreId,
};
use aws_lc_rs::digest;
use time::Duration;
use tokio::io::AsyncReadExt;

use super::{open_temp, outbound, t};

#[tokio::test]
async fn filters_and_cursor_pagination() {
    let (_dir, s) = open_temp().await;
    let mut out_ids = Vec::new();
    for i in 0..25i64 {
        let mut m = outbound(&s, &format!("p{i}")).await;
        m.pmode_id = if i % 2 == 0 {
            "even".into()
        } else {
            "odd".into()
        };
        m.conversation_id = format!("conv-{}", i % 5);
        m.properties = vec![
            ("finalRecipient".into(), format!("r{}", i % 3)),
            ("originalSender".into(), "C1".into()),
        ];
        out_ids.push(s.submit(t(i * 10), m).await.expect("submit").id);
    }
    for i in 0..3i64 {
        let msg = NewInbound {
            message_id: format!("in{i}"),
            conversation_id: "conv-0".into(),
            pmode_id: "even".into(),
            ..Default::default()
        };
        s.record_received(t(1000 + i), msg, Duration::days(1), None)
            .await
            .expect("receive");
    }

    // Pagination: newest first, no overlap, no gaps, stable cursor.
    let f = Filter {
        direction: Some(Direction::Outbound),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = s.list(f.clone(), cursor, 10).await.expect("list");
        pages += 1;
        seen.extend(page.items.iter().map(|r| r.id));
        match page.next {
            // The cursor survives a round trip through its text form (REST query parameter).
            Some(c) => cursor = Some(c.to_string().parse().expect("cursor parses")),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected = out_ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    assert!("x12".parse::<Cursor>().is_err());

    let count = |f: Filter| {
        let s = s.clone();
        async move { s.list(f, None, 1000).await.expect("list").items.len() }
    };
    assert_eq!(count(Filter::default()).await, 28);
    assert_eq!(
        count(Filter {
            direction: Some(Direction::Inbound),
            ..Default::default()
        })
        .await,
        3
    );
    assert_eq!(
        count(Filter {
            pmode_id: Some("even".into()),
            ..Default::default()
        })
        .await,
        13 + 3
    );
    assert_eq!(
        count(Filter {
            pmode_id: Some("even".into()),
            direction: Some(Direction::Outbound),
            ..Default::default()
        })
        .await,
        13
    );
    assert_eq!(
        count(Filter {
            conversation_id: Some("conv-0".into()),
            ..Default::default()
        })
        .await,
        5 + 3
    );
    let prop = Filter {
        property: Some(("finalRecipient".into(), "r1".into())),
        ..Default::default()
    };
    let with_prop = s.list(prop, None, 100).await.expect("list").items;
    assert_eq!(with_prop.len(), 8);
    assert!(with_prop.iter().all(|r| r
        .properties
        .contains(&("finalRecipient".to_string(), "r1".to_string()))));
    // A property name with another property's value does not match.
    assert_eq!(
        count(Filter {
            property: Some(("finalRecipient".into(), "C1".into())),
            ..Default::default()
        })
        .await,
        0
    );
    // Time range [t(50), t(100)) = submissions 5..=9.
    let range = Filter {
        created_from: Some(t(50)),
        created_before: Some(t(100)),
        ..Default::default()
    };
    let ids: Vec<StoreId> = s
        .list(range, None, 100)
        .await
        .expect("list")
        .items
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids,
        out_ids[5..10].iter().rev().copied().collect::<Vec<_>>()
    );
    // State filter.
    s.lease_due(t(10_000), "a", 4, Duration::seconds(60))
        .await
        .expect("lease");
    assert_eq!(
        count(Filter {
            state: Some(State::Sending),
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        count(Filter {
            state: Some(State::Received),
            ..Default::default()
        })
        .await,
        3
    );
    // Combined with pagination.
    let combo = Filter {
        state: Some(State::Submitted),
        pmode_id: Some("odd".into()),
        ..Default::default()
    };
    let p1 = s.list(combo.clone(), None, 5).await.expect("list");
    let p2 = s.list(combo.clone(), p1.next, 5).await.expect("list");
    let all: HashSet<StoreId> = p1.items.iter().chain(&p2.items).map(|r| r.id).collect();
    assert_eq!(all.len(), p1.items.len() + p2.items.len());
    assert_eq!(all.len(), count(combo).await);
}

#[tokio::test]
async fn prune_removes_old_final_messages_and_their_files_only() {
    let (_dir, s) = open_temp().await;
    let lease = Duration::seconds(60);
    // Old acknowledged (with wire bytes and a receipt), old failed, old still pending.
    let acked = s
        .submit(t(0), outbound(&s, "acked").await)
        .await
        .expect("submit")
        .id;
    let failed = s
        .submit(t(0), outbound(&s, "failed").await)
        .await
        .expect("submit")
        .id;
    s.lease_due(t(0), "a", 2, lease).await.expect("lease");
    let wire = s.spool().write_bytes(b"wire").await.expect("spool");
    s.record_wire(acked, "a", t(1), wire.clone())
        .await
        .expect("wire");
    s.finish_attempt(
        acked,
        "a",
        t(2),
        Outcome::Acknowledged {
            receipt: Some(b"r".to_vec()),
        },
        None,
    )
    .await
    .expect("ack");
    let fail = Outcome::Failed {
        code: as4gw::ebms::codes::EbmsCode::DeliveryFailure,
        detail: "no".into(),
    };
    s.finish_attempt(failed, "a", t(2), fail, None)
        .await
        .expect("fail");
    let pending = s
        .submit(t(3), outbound(&s, "pending").await)
        .await
        .expect("submit")
        .id;
    // Old delivered inbound, and a recent delivered inbound.
    let Received::New(old_in) = s
        .record_received(
            t(0),
            NewInbound {
                message_id: "in-old".into(),
                ..Default::default()
            },
            Duration::days(1),
            None,
        )
        .await
        .expect("in")
    else {
        panic!("new")
    };
    s.mark_delivered(old_in, t(5), "ok")
        .await
        .expect("delivered");
    let Received::New(new_in) = s
        .record_received(
            t(5000),
            NewInbound {
                message_id: "in-new".into(),
                ..Default::default()
            },
            Duration::days(1),
            None,
        )
        .await
        .expect("in")
    else {
        panic!("new")
    };
    s.mark_delivered(new_in, t(5001), "ok")
        .await
        .expect("delivered");
    let acked_rec = s.get(acked).await.expect("get").expect("present");
    let pending_rec = s.get(pending).await.expect("get").expect("present");

    let report = s.prune(t(1000)).await.expect("prune");
    assert_eq!(report.messages, 3, "{report:?}");
    assert_eq!(report.duplicate_keys, 1, "{report:?}");
    assert_eq!(
        report.files, 3,
        "two payloads and one wire file: {report:?}"
    );
    assert!(s.get(acked).await.expect("get").is_none());
    assert!(s.get(failed).await.expect("get").is_none());
    assert!(s.get(old_in).await.expect("get").is_none());
    assert!(s.events(acked).await.expect("events").is_empty());
    assert!(s.receipt(acked).await.expect("receipt").is_none());
    assert!(!s.spool().path(&acked_rec.payloads[0].file).exists());
    assert!(!s.spool().path(&wire).exists());
    // Not final, or too recent: kept, with their files.
    assert_eq!(
        s.get(pending).await.expect("get").map(|r| r.state),
        Some(State::Submitted)
    );
    assert!(s
        .spool()
        .verify(&pending_rec.payloads[0].file)
        .await
        .expect("verify"));
    assert!(s.get(new_in).await.expect("get").is_some());
    // The pruned inbound MessageId is no longer a duplicate; the recent one still is.
    let w = Duration::days(365);
    let again = s.record_received(
        t(6000),
        NewInbound {
            message_id: "in-old".into(),
            ..Default::default()
        },
        w,
        None,
    );
    assert!(matches!(again.await.expect("in"), Received::New(_)));
    let again = s.record_received(
        t(6000),
        NewInbound {
            message_id: "in-new".into(),
            ..Default::default()
        },
        w,
        None,
    );
    assert_eq!(again.await.expect("in"), Received::Duplicate { of: new_in });
}

/// A reader that yields `len` pseudo-random bytes in odd-sized chunks, never holding them all.
struct Noise {
    left: u64,
    state: u64,
}

impl tokio::io::AsyncRead for Noise {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left).min(77_777) as usize;
        for _ in 0..n {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            buf.put_slice(&[(self.state >> 24) as u8]);
        }
        self.left -= n as u64;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn spool_streams_with_size_and_sha256() {
    let (_dir, s) = open_temp().await;
    let len = 3 * 1024 * 1024 + 17;
    let f = s
        .spool()
        .write_stream(
            Noise {
                left: len,
                state: 42,
            },
            u64::MAX,
        )
        .await
        .expect("spool");
    assert_eq!(f.size(), len);
    // Recompute independently.
    let mut expected = Vec::new();
    Noise {
        left: len,
        state: 42,
    }
    .read_to_end(&mut expected)
    .await
    .expect("read");
    assert_eq!(
        f.sha256().as_slice(),
        digest::digest(&digest::SHA256, &expected).as_ref()
    );
    assert!(s.spool().verify(&f).await.expect("verify"));
    let mut back = Vec::new();
    s.spool()
        .open_file(&f)
        .await
        .expect("open")
        .read_to_end(&mut back)
        .await
        .expect("read");
    assert_eq!(back, expected);

    // Tampering is detected.
    std::fs::write(s.spool().path(&f), b"tampered").expect("write");
    assert!(!s.spool().verify(&f).await.expect("verify"));

    // Over the limit: error, and no file left behind.
    let before = std::fs::read_dir(s.spool().dir()).expect("dir").count();
    let err = s
        .spool()
        .write_stream(
            Noise {
                left: 1000,
                state: 1,
            },
            999,
        )
        .await;
    assert!(matches!(err, Err(StoreError::TooLarge(999))));
    assert_eq!(
        std::fs::read_dir(s.spool().dir()).expect("dir").count(),
        before
    );
    // Exactly at the limit is fine.
    assert_eq!(
        s.spool()
            .write_stream(
                Noise {
                    left: 999,
                    state: 1
                },
                999
            )
            .await
            .expect("spool")
            .size(),
        999
    );
}

#[tokio::test]
async fn schema_version_is_recorded_and_newer_schemas_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteStore::open(dir.path()).await.expect("open");
    let id = s
        .submit(t(0), outbound(&s, "persist").await)
        .await
        .expect("submit")
        .id;
    s.close().await.expect("close");
    assert!(matches!(
        s.submit(t(0), outbound(&s, "late").await).await,
        Err(StoreError::Closed)
    ));

    let db = rusqlite::Connection::open(dir.path().join("store.db")).expect("sqlite");
    let v: i64 = db
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, 11, "every migration applied");
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");

    // Reopening runs no migration twice and keeps the data.
    let s = SqliteStore::open(dir.path()).await.expect("reopen");
    assert_eq!(
        s.get(id).await.expect("get").map(|r| r.message_id),
        Some("persist".to_string())
    );
    s.close().await.expect("close");

    db.execute("UPDATE schema_version SET version = 99", [])
        .expect("bump");
    drop(db);
    assert!(matches!(
        SqliteStore::open(dir.path()).await,
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported: 11
        })
    ));
}

#[tokio::test]
async fn online_backup_opens_as_a_store_with_intact_files() {
    let (_dir, s) = open_temp().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.submit(t(i), outbound(&s, &format!("b{i}")).await)
                .await
                .expect("submit")
                .id,
        );
    }
    s.lease_due(t(10), "a", 1, Duration::seconds(60))
        .await
        .expect("lease");
    let wire = s.spool().write_bytes(b"wire bytes").await.expect("spool");
    s.record_wire(ids[0], "a", t(11), wire).await.expect("wire");
    // An orphan (spooled, never referenced) is not copied.
    s.spool().write_bytes(b"orphan").await.expect("spool");

    let dest = tempfile::tempdir().expect("tempdir");
    let report = s.backup(dest.path().join("bk")).await.expect("backup");
    assert_eq!(report.files, 6, "five payloads and one wire file");
    let b = SqliteStore::open(dest.path().join("bk"))
        .await
        .expect("open backup");
    for id in &ids {
        let rec = b.get(*id).await.expect("get").expect("present in backup");
        assert!(b
            .spool()
            .verify(&rec.payloads[0].file)
            .await
            .expect("verify"));
    }
    let rec0 = b.get(ids[0]).await.expect("get").expect("present");
    assert_eq!(rec0.state, State::Sending);
    assert!(b
        .spool()
        .verify(rec0.wire.as_ref().expect("wire"))
        .await
        .expect("verify"));
    assert_eq!(std::fs::read_dir(b.spool().dir()).expect("dir").count(), 6);
}

#[tokio::test]
async fn prune_keeps_the_duplicate_key_of_a_message_still_stored() {
    let (_dir, s) = open_temp().await;
    let Received::New(id) = s
        .record_received(
            t(0),
            NewInbound {
                message_id: "undelivered@partner".into(),
                ..Default::default()
            },
            Duration::days(1),
            None,
        )
        .await
        .expect("in")
    else {
        panic!("new")
    };
    // Not delivered: the message stays, and so does its key, however old.
    let report = s.prune(t(100_000)).await.expect("prune");
    assert_eq!(
        (report.messages, report.duplicate_keys),
        (0, 0),
        "{report:?}"
    );
    let found = s
        .get_by_message_id(Direction::Inbound, "undelivered@partner")
        .await
        .expect("get")
        .map(|r| r.id);
    assert_eq!(found, Some(id));
    // Delivered and old: both go.
    s.mark_delivered(id, t(1), "ok").await.expect("delivered");
    let report = s.prune(t(100_000)).await.expect("prune");
    assert_eq!(
        (report.messages, report.duplicate_keys),
        (1, 1),
        "{report:?}"
    );
    assert!(s
        .get_by_message_id(Direction::Inbound, "undelivered@partner")
        .await
        .expect("get")
        .is_none());
}
