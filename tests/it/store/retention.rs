//! Retention (`MessageStore::purge`) with a simulated clock: payloads kept until the backend
//! took them, metadata after its own limit, and a store that stays flat under steady load.

use as4gw::store::{
    MessageStore, NewInbound, NewOutbound, Outcome, Payload, PurgeOptions, PurgeReport, Received,
    RetentionRule, SqliteStore, State, StoreId,
};
use futures_util::future::join_all;
use time::{Duration, OffsetDateTime};

use super::{open_temp, t};

const DAY: i64 = 86_400;

fn day(d: i64) -> OffsetDateTime {
    t(d * DAY)
}

fn rule(pmode: &str, payload_days: u32, metadata_days: u32) -> RetentionRule {
    RetentionRule {
        pmode_id: pmode.into(),
        payload_days: Some(payload_days),
        metadata_days: Some(metadata_days),
    }
}

async fn purge(s: &SqliteStore, now: OffsetDateTime, rules: &[RetentionRule]) -> PurgeReport {
    s.purge(now, rules.to_vec(), PurgeOptions::default())
        .await
        .expect("purge")
}

async fn dry(s: &SqliteStore, now: OffsetDateTime, rules: &[RetentionRule]) -> PurgeReport {
    s.purge(
        now,
        rules.to_vec(),
        PurgeOptions {
            batch: 100,
            dry_run: true,
        },
    )
    .await
    .expect("dry run")
}

async fn payload(s: &SqliteStore, bytes: &[u8]) -> Payload {
    Payload {
        part_id: "cid:p1".into(),
        mime_type: "application/pdf".into(),
        file: s.spool().write_bytes(bytes).await.expect("spool"),
    }
}

/// An outbound message on `pmode` acknowledged at `at` (wire file and signed receipt kept).
async fn acked_outbound(
    s: &SqliteStore,
    pmode: &str,
    mid: &str,
    at: OffsetDateTime,
    size: usize,
) -> StoreId {
    let msg = NewOutbound {
        message_id: mid.into(),
        conversation_id: "c".into(),
        pmode_id: pmode.into(),
        payloads: vec![payload(s, &vec![b'o'; size]).await],
        header: Some("h".repeat(600)),
        ..Default::default()
    };
    let id = s.submit(at, msg).await.expect("submit").id;
    id
}

async fn send_all(s: &SqliteStore, ids: &[StoreId], at: OffsetDateTime, size: usize) {
    let leased = s
        .lease_due(at, "owner", ids.len(), Duration::minutes(5))
        .await
        .expect("lease");
    assert_eq!(leased.len(), ids.len());
    join_all(ids.iter().map(|id| async move {
        let wire = s
            .spool()
            .write_bytes(&vec![b'w'; size])
            .await
            .expect("wire");
        s.record_wire(*id, "owner", at, wire)
            .await
            .expect("record wire");
        let receipt = Some(vec![b'r'; 1500]);
        s.finish_attempt(*id, "owner", at, Outcome::Acknowledged { receipt }, None)
            .await
            .expect("ack");
    }))
    .await;
}

async fn inbound(
    s: &SqliteStore,
    pmode: &str,
    mid: &str,
    at: OffsetDateTime,
    size: usize,
) -> StoreId {
    let msg = NewInbound {
        message_id: mid.into(),
        conversation_id: "c".into(),
        pmode_id: pmode.into(),
        payloads: vec![payload(s, &vec![b'i'; size]).await],
        header: Some("h".repeat(600)),
        ..Default::default()
    };
    match s
        .record_received(at, msg, Duration::days(2), None)
        .await
        .expect("receive")
    {
        Received::New(id) => id,
        Received::Duplicate { .. } => panic!("{mid}: unexpected duplicate"),
    }
}

fn present(s: &SqliteStore, f: &as4gw::store::FileRef) -> bool {
    s.spool().path(f).exists()
}

#[tokio::test]
async fn payloads_wait_for_the_backend_and_metadata_goes_after_its_own_limit() {
    let (_dir, s) = open_temp().await;
    let rules = [rule("p", 2, 10)];
    // Day 0: inbound A not yet taken by the backend, inbound B delivered, outbound C acknowledged,
    // and an old message of a P-Mode without retention.
    let a = inbound(&s, "p", "in-a", day(0), 100).await;
    let b = inbound(&s, "p", "in-b", day(0), 100).await;
    s.mark_delivered(b, day(0), "fetched")
        .await
        .expect("delivered");
    let c = acked_outbound(&s, "p", "out-c", day(0), 100).await;
    send_all(&s, &[c], day(0), 100).await;
    let other = inbound(&s, "keep", "in-other", day(0), 100).await;
    s.mark_delivered(other, day(0), "fetched")
        .await
        .expect("delivered");
    let rec = |id| {
        let s = s.clone();
        async move { s.get(id).await.expect("get") }
    };
    let (ra, rb, rc, ro) = (
        rec(a).await.expect("a"),
        rec(b).await.expect("b"),
        rec(c).await.expect("c"),
        rec(other).await.expect("other"),
    );

    // Day 1: within the payload limit, nothing goes.
    assert_eq!(
        purge(&s, day(1), &rules).await,
        PurgeReport {
            batches: 2,
            ..Default::default()
        }
    );

    // Day 3: B's and C's payloads (and C's wire file) go; A's stays — the backend has not
    // acknowledged it — and so does every row.
    let preview = dry(&s, day(3), &rules).await;
    let r = purge(&s, day(3), &rules).await;
    assert_eq!(
        (r.payload_messages, r.messages, r.files),
        (2, 0, 3),
        "{r:?}"
    );
    assert_eq!(r.bytes, 300, "{r:?}");
    assert_eq!(
        (preview.payload_messages, preview.files, preview.bytes),
        (r.payload_messages, r.files, r.bytes),
        "the dry run announced exactly what the purge did"
    );
    assert!(
        present(&s, &ra.payloads[0].file),
        "undelivered payload kept"
    );
    assert!(!present(&s, &rb.payloads[0].file));
    assert!(!present(&s, &rc.payloads[0].file));
    assert!(
        present(&s, &ro.payloads[0].file),
        "no rule for its P-Mode: kept"
    );
    assert_eq!(rec(a).await.map(|r| r.state), Some(State::Received));
    assert!(
        rec(b).await.is_some() && rec(c).await.is_some(),
        "metadata kept"
    );
    assert!(
        s.receipt(c).await.expect("receipt").is_some(),
        "receipt kept"
    );
    assert_eq!(purge(&s, day(3), &rules).await.files, 0, "purged once only");

    // A purge far in the future still keeps A's payload while the backend has not taken it.
    let r = dry(&s, day(400), &rules).await;
    assert_eq!(r.payload_messages, 0, "{r:?}");
    assert!(present(&s, &ra.payloads[0].file));

    // The backend acknowledges A on day 3: its payload goes two days later, not before.
    s.mark_delivered(a, day(3), "ack").await.expect("ack");
    assert_eq!(purge(&s, day(4), &rules).await.payload_messages, 0);
    assert!(present(&s, &ra.payloads[0].file));
    assert_eq!(purge(&s, day(6), &rules).await.payload_messages, 1);
    assert!(!present(&s, &ra.payloads[0].file));

    // Day 11: B and C (last changed day 0) are forgotten with events and receipts; A (day 3)
    // stays until day 13.
    let r = purge(&s, day(11), &rules).await;
    assert_eq!((r.messages, r.files), (2, 0), "{r:?}");
    assert!(rec(b).await.is_none() && rec(c).await.is_none());
    assert!(s.events(c).await.expect("events").is_empty());
    assert!(s.receipt(c).await.expect("receipt").is_none());
    assert!(rec(a).await.is_some());
    assert_eq!(purge(&s, day(14), &rules).await.messages, 1);
    assert!(rec(a).await.is_none());
    // Its duplicate key went with it: the same MessageId is a new message again.
    inbound(&s, "p", "in-a", day(14), 10).await;
    // The P-Mode without a rule keeps everything.
    assert!(rec(other).await.is_some());
    assert!(present(&s, &ro.payloads[0].file));
    s.close().await.expect("close");
}

/// Deleting a message cascades to its outbox rows, which SQLite finds by the foreign key
/// column: without an index (before migration 10) every deleted message scanned the whole
/// outbox, so a retention purge of N messages read the outbox N times.
#[tokio::test]
async fn the_purge_finds_a_messages_outbox_rows_by_index() {
    let (dir, s) = open_temp().await;
    s.close().await.expect("close");
    let c = rusqlite::Connection::open(dir.path().join("store.db")).expect("db");
    let mut st = c
        .prepare("EXPLAIN QUERY PLAN SELECT 1 FROM outbox WHERE message = 1")
        .expect("plan");
    let plan = st
        .query_map([], |r| r.get::<_, String>(3))
        .expect("rows")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("plan rows")
        .join("; ");
    assert!(plan.contains("INDEX outbox_message"), "{plan}");
}

#[tokio::test]
async fn small_batches_cover_everything() {
    let (_dir, s) = open_temp().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let id = inbound(&s, "p", &format!("m{i}"), day(0), 10).await;
        s.mark_delivered(id, day(0), "ok").await.expect("delivered");
        ids.push(id);
    }
    let r = s
        .purge(
            day(30),
            vec![rule("p", 1, 20)],
            PurgeOptions {
                batch: 4,
                dry_run: false,
            },
        )
        .await
        .expect("purge");
    assert_eq!(
        (r.payload_messages, r.messages, r.files),
        (25, 25, 25),
        "{r:?}"
    );
    // 25 in batches of 4: 7 per step (the last one short), two steps.
    assert_eq!(r.batches, 14, "{r:?}");
    for id in ids {
        assert!(s.get(id).await.expect("get").is_none());
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .expect("spool dir")
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// A steady stream over simulated days with the purge running daily: after the first
/// retention window the database's page count and the spool's size stop growing (SQLite
/// reuses the pages freed by deleted rows; the spool loses as many files as it gains).
#[tokio::test]
async fn store_size_stays_flat_under_steady_load() {
    let (_dir, s) = open_temp().await;
    let rules = [rule("p", 2, 5)];
    const DAYS: i64 = 24;
    const PER_DAY: usize = 8;
    const SIZE: usize = 4096;
    let mut pages = Vec::new();
    let mut spool = Vec::new();
    for d in 0..DAYS {
        let at = day(d) + Duration::hours(9);
        let out: Vec<StoreId> = join_all((0..PER_DAY).map(|i| {
            let s = &s;
            async move { acked_outbound(s, "p", &format!("o-{d}-{i}"), at, SIZE).await }
        }))
        .await;
        send_all(&s, &out, at, SIZE).await;
        let inb: Vec<StoreId> = join_all((0..PER_DAY).map(|i| {
            let s = &s;
            async move { inbound(s, "p", &format!("i-{d}-{i}"), at, SIZE).await }
        }))
        .await;
        join_all(inb.iter().map(|id| s.mark_delivered(*id, at, "fetched"))).await;
        purge(&s, day(d) + Duration::hours(23), &rules).await;
        let (p, _free) = s.page_counts().await.expect("pages");
        pages.push(p);
        spool.push(dir_size(s.spool().dir()));
    }
    let window = 6usize; // metadata limit + the day it is reached
    let early_max = *pages[..2 * window].iter().max().expect("days");
    let late_max = *pages[2 * window..].iter().max().expect("days");
    assert!(
        pages[DAYS as usize - 1] > pages[0],
        "the load must grow an unpurged store: {pages:?}"
    );
    // Without purging the same load adds ~8 pages a day (about 100 over the second half);
    // with it, B-tree reshuffling may still take a few pages, never a day's worth.
    assert!(
        late_max <= early_max + early_max / 10,
        "page count kept growing after the retention window: {pages:?}"
    );
    let last = pages[DAYS as usize - 1];
    let week_before = pages[DAYS as usize - 7];
    assert!(
        last <= week_before + week_before / 20,
        "page count still growing in the last week: {pages:?}"
    );
    let spool_early = *spool[..window].iter().max().expect("days");
    let spool_late = *spool[window..].iter().max().expect("days");
    assert!(spool_early > 0);
    assert!(spool_late <= spool_early, "spool kept growing: {spool:?}");
    // Only the last two days' payloads are left: two days × 8 out × (payload + wire) + 8 in.
    let expected = 2 * PER_DAY as u64 * 3 * SIZE as u64;
    assert_eq!(spool[DAYS as usize - 1], expected, "{spool:?}");
    s.close().await.expect("close");
}
