//! States, transitions, events, leases, duplicates, idempotency, outbox, group commit.

use std::sync::Arc;

use as4gw::ebms::codes::EbmsCode;
use as4gw::store::{
    Direction, Filter, MessageStore, NewInbound, NewNotification, Outcome, Received, SqliteStore,
    State, StoreError, StoreId,
};
use time::Duration;

use super::{open_temp, outbound, t};

const LEASE: Duration = Duration::seconds(60);

fn transitions(events: &[as4gw::store::Event]) -> Vec<(Option<State>, State)> {
    events.iter().map(|e| (e.from, e.to)).collect()
}

#[tokio::test]
async fn outbound_retry_then_acknowledged_with_every_event() {
    let (_dir, s) = open_temp().await;
    let mut msg = outbound(&s, "m1@as4gw").await;
    msg.not_before = Some(t(10));
    let sub = s.submit(t(0), msg).await.expect("submit");
    assert!(sub.created);
    let rec = s.get(sub.id).await.expect("get").expect("present");
    assert_eq!(rec.state, State::Submitted);
    assert_eq!(rec.direction, Direction::Outbound);
    assert_eq!(rec.payloads.len(), 1);
    assert!(s
        .spool()
        .verify(&rec.payloads[0].file)
        .await
        .expect("verify"));

    // Not due before `not_before`.
    assert!(s
        .lease_due(t(5), "node-a", 10, LEASE)
        .await
        .expect("lease")
        .is_empty());
    let leased = s
        .lease_due(t(10), "node-a", 10, LEASE)
        .await
        .expect("lease");
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].state, State::Sending);
    assert_eq!(leased[0].attempts, 1);
    assert_eq!(
        leased[0]
            .lease
            .as_ref()
            .map(|l| (l.owner.as_str(), l.until)),
        Some(("node-a", t(70)))
    );
    assert!(leased[0].wire.is_none());

    // Wire bytes are write-once.
    let wire = s
        .spool()
        .write_bytes(b"--boundary signed and encrypted--")
        .await
        .expect("spool wire");
    s.record_wire(sub.id, "node-a", t(11), wire.clone())
        .await
        .expect("record wire");
    let other = s
        .spool()
        .write_bytes(b"different bytes")
        .await
        .expect("spool");
    assert!(matches!(
        s.record_wire(sub.id, "node-a", t(11), other).await,
        Err(StoreError::AlreadyRecorded(_))
    ));

    let outcome = Outcome::Retry {
        next_attempt_at: t(100),
        code: Some(EbmsCode::ConnectionFailure),
        detail: "connect timeout".into(),
    };
    s.finish_attempt(sub.id, "node-a", t(12), outcome, None)
        .await
        .expect("retry");
    let rec = s.get(sub.id).await.expect("get").expect("present");
    assert_eq!(rec.state, State::WaitingForRetry);
    assert_eq!(rec.next_attempt_at, Some(t(100)));
    assert_eq!(rec.lease, None);
    assert_eq!(rec.last_code, Some(EbmsCode::ConnectionFailure));

    assert!(s
        .lease_due(t(99), "node-b", 10, LEASE)
        .await
        .expect("lease")
        .is_empty());
    let again = s
        .lease_due(t(100), "node-b", 10, LEASE)
        .await
        .expect("lease");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(
        again[0].wire.as_ref(),
        Some(&wire),
        "the retry resends the same wire bytes"
    );

    let notify = NewNotification {
        message: Some(sub.id),
        kind: "status".into(),
        target: "backend".into(),
        body: b"{\"state\":\"ACKNOWLEDGED\"}".to_vec(),
    };
    let receipt = b"<eb:Receipt>signed</eb:Receipt>".to_vec();
    let ack = Outcome::Acknowledged {
        receipt: Some(receipt.clone()),
    };
    s.finish_attempt(sub.id, "node-b", t(101), ack, Some(notify))
        .await
        .expect("ack");
    let rec = s.get(sub.id).await.expect("get").expect("present");
    assert_eq!(rec.state, State::Acknowledged);
    assert_eq!(
        rec.last_code, None,
        "the last outcome's code, not an earlier attempt's"
    );
    assert_eq!(
        s.receipt(sub.id).await.expect("receipt").map(|r| r.bytes),
        Some(receipt)
    );

    // A final state accepts no further attempt.
    let late = Outcome::Failed {
        code: EbmsCode::Other,
        detail: "late".into(),
    };
    assert!(matches!(
        s.finish_attempt(sub.id, "node-b", t(102), late, None).await,
        Err(StoreError::InvalidTransition {
            state: State::Acknowledged,
            ..
        })
    ));

    let events = s.events(sub.id).await.expect("events");
    assert_eq!(
        transitions(&events),
        vec![
            (None, State::Submitted),
            (Some(State::Submitted), State::Sending),
            (Some(State::Sending), State::Sending), // wire bytes recorded
            (Some(State::Sending), State::WaitingForRetry),
            (Some(State::WaitingForRetry), State::Sending),
            (Some(State::Sending), State::Acknowledged),
        ]
    );
    assert_eq!(events[3].code, Some(EbmsCode::ConnectionFailure));
    assert_eq!(events[3].detail, "connect timeout");
    assert_eq!(events[3].at, t(12));
    assert!(events[2].detail.contains(&wire.sha256_hex()));

    // The status notification was enqueued in the same transaction.
    let items = s
        .lease_outbox(t(101), "pusher", 10, LEASE)
        .await
        .expect("outbox");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].message, Some(sub.id));
    assert_eq!(items[0].kind, "status");
}

#[tokio::test]
async fn outbound_failed_keeps_ebms_code() {
    let (_dir, s) = open_temp().await;
    let id = s
        .submit(t(0), outbound(&s, "f1").await)
        .await
        .expect("submit")
        .id;
    s.lease_due(t(0), "a", 1, LEASE).await.expect("lease");
    let outcome = Outcome::Failed {
        code: EbmsCode::MissingReceipt,
        detail: "4 retries exhausted".into(),
    };
    s.finish_attempt(id, "a", t(1), outcome, None)
        .await
        .expect("fail");
    let rec = s.get(id).await.expect("get").expect("present");
    assert_eq!(rec.state, State::Failed);
    assert_eq!(rec.last_code, Some(EbmsCode::MissingReceipt));
    assert_eq!(rec.last_detail.as_deref(), Some("4 retries exhausted"));
    let events = s.events(id).await.expect("events");
    let last = events.last().expect("events");
    assert_eq!(
        (last.from, last.to, last.code),
        (
            Some(State::Sending),
            State::Failed,
            Some(EbmsCode::MissingReceipt)
        )
    );
    // FAILED is never leased again.
    assert!(s
        .lease_due(t(10_000), "a", 10, LEASE)
        .await
        .expect("lease")
        .is_empty());
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_the_old_owner_is_refused() {
    let (_dir, s) = open_temp().await;
    let id = s
        .submit(t(0), outbound(&s, "l1").await)
        .await
        .expect("submit")
        .id;
    assert_eq!(
        s.lease_due(t(0), "crashed-node", 10, LEASE)
            .await
            .expect("lease")
            .len(),
        1
    );
    // Live lease: nobody else gets it.
    assert!(s
        .lease_due(t(59), "node-b", 10, LEASE)
        .await
        .expect("lease")
        .is_empty());
    // Expired: picked up again.
    let taken = s
        .lease_due(t(60), "node-b", 10, LEASE)
        .await
        .expect("lease");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 2);
    assert_eq!(
        taken[0].lease.as_ref().map(|l| l.owner.as_str()),
        Some("node-b")
    );
    let events = s.events(id).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!((last.from, last.to), (Some(State::Sending), State::Sending));
    assert!(
        last.detail.contains("crashed-node") && last.detail.contains("expired"),
        "{}",
        last.detail
    );

    // The old owner comes back to life: refused, state untouched.
    let ack = Outcome::Acknowledged { receipt: None };
    assert!(matches!(
        s.finish_attempt(id, "crashed-node", t(61), ack.clone(), None)
            .await,
        Err(StoreError::LeaseLost { .. })
    ));
    let wire = s.spool().write_bytes(b"x").await.expect("spool");
    assert!(matches!(
        s.record_wire(id, "crashed-node", t(61), wire).await,
        Err(StoreError::LeaseLost { .. })
    ));
    s.finish_attempt(id, "node-b", t(62), ack, None)
        .await
        .expect("new owner acks");
    assert_eq!(
        s.get(id).await.expect("get").map(|r| r.state),
        Some(State::Acknowledged)
    );
}

#[tokio::test]
async fn lease_due_respects_max_and_order() {
    let (_dir, s) = open_temp().await;
    for i in 0..5 {
        let mut m = outbound(&s, &format!("q{i}")).await;
        m.not_before = Some(t(10 - i));
        s.submit(t(0), m).await.expect("submit");
    }
    let first = s.lease_due(t(20), "a", 2, LEASE).await.expect("lease");
    let ids: Vec<&str> = first.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(ids, ["q4", "q3"], "earliest due first");
    assert_eq!(
        s.lease_due(t(20), "a", 2, LEASE)
            .await
            .expect("lease")
            .len(),
        2
    );
    assert_eq!(
        s.lease_due(t(20), "a", 2, LEASE)
            .await
            .expect("lease")
            .len(),
        1
    );
    assert!(s
        .lease_due(t(20), "a", 2, LEASE)
        .await
        .expect("lease")
        .is_empty());
}

fn inbound(mid: &str) -> NewInbound {
    NewInbound {
        message_id: mid.into(),
        conversation_id: "conv-in".into(),
        pmode_id: "oots-response".into(),
        properties: vec![("originalSender".into(), "C1".into())],
        ..Default::default()
    }
}

fn delivery() -> NewNotification {
    NewNotification {
        message: None,
        kind: "delivery".into(),
        target: "backend".into(),
        body: b"{}".to_vec(),
    }
}

#[tokio::test]
async fn duplicate_within_window_is_recorded_once_and_delivered_once() {
    let (_dir, s) = open_temp().await;
    let window = Duration::hours(1);
    let first = s
        .record_received(t(0), inbound("dup@partner"), window, Some(delivery()))
        .await
        .expect("first");
    let Received::New(orig) = first else {
        panic!("first must be new: {first:?}")
    };
    let receipt = b"<Receipt for dup@partner/>".to_vec();
    s.store_receipt(orig, t(0), receipt.clone())
        .await
        .expect("receipt");
    assert!(matches!(
        s.store_receipt(orig, t(1), b"other".to_vec()).await,
        Err(StoreError::AlreadyRecorded(_))
    ));

    // The partner retries (same MessageId) within the window.
    let again = s
        .record_received(t(600), inbound("dup@partner"), window, Some(delivery()))
        .await
        .expect("again");
    assert_eq!(again, Received::Duplicate { of: orig });
    // The MSH re-sends the stored receipt, identical bytes.
    assert_eq!(
        s.receipt(orig).await.expect("receipt").map(|r| r.bytes),
        Some(receipt)
    );

    let inbound_filter = Filter {
        direction: Some(Direction::Inbound),
        ..Default::default()
    };
    assert_eq!(
        s.list(inbound_filter.clone(), None, 100)
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    // One delivery only.
    let deliveries = s
        .lease_outbox(t(700), "pusher", 10, LEASE)
        .await
        .expect("outbox");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].message, Some(orig));
    s.mark_delivered(orig, t(701), "webhook 200")
        .await
        .expect("delivered");
    assert!(matches!(
        s.mark_delivered(orig, t(702), "again").await,
        Err(StoreError::InvalidTransition {
            state: State::Delivered,
            ..
        })
    ));
    let events = s.events(orig).await.expect("events");
    assert_eq!(
        transitions(&events),
        vec![
            (None, State::Received),
            (Some(State::Received), State::Received),
            (Some(State::Received), State::Delivered)
        ]
    );
    assert!(events[1].detail.contains("duplicate"));

    // Outside the window the same MessageId is a new message.
    let later = s
        .record_received(t(600 + 3601), inbound("dup@partner"), window, None)
        .await
        .expect("later");
    let Received::New(newer) = later else {
        panic!("outside the window must be new: {later:?}")
    };
    assert_ne!(newer, orig);
    // …and the window now runs from the newer one.
    let dup2 = s
        .record_received(t(600 + 3700), inbound("dup@partner"), window, None)
        .await
        .expect("dup2");
    assert_eq!(dup2, Received::Duplicate { of: newer });
    let by_mid = s
        .get_by_message_id(Direction::Inbound, "dup@partner")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(by_mid.id, newer);
}

#[tokio::test]
async fn concurrent_duplicates_yield_exactly_one_new_message() {
    let (_dir, s) = open_temp().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.spawn(async move {
            s.record_received(t(0), inbound("race@partner"), Duration::days(7), None)
                .await
        });
    }
    let mut new = 0;
    let mut dups = 0;
    while let Some(r) = tasks.join_next().await {
        match r.expect("join").expect("record") {
            Received::New(_) => new += 1,
            Received::Duplicate { .. } => dups += 1,
        }
    }
    assert_eq!((new, dups), (1, 15));
}

#[tokio::test]
async fn idempotency_key_returns_the_first_submission() {
    let (_dir, s) = open_temp().await;
    let mut m = outbound(&s, "idem-1").await;
    m.idempotency_key = Some("backend-a:req-42".into());
    let first = s.submit(t(0), m.clone()).await.expect("first");
    assert!(first.created);
    // The backend retries its REST call; the gateway may have minted a new MessageId.
    let mut retry = m.clone();
    retry.message_id = "idem-1-bis".into();
    let second = s.submit(t(5), retry).await.expect("second");
    assert_eq!(
        second,
        as4gw::store::Submitted {
            id: first.id,
            created: false
        }
    );
    // Same MessageId without the key: a conflict, nothing written.
    let mut clash = m;
    clash.idempotency_key = Some("backend-a:req-43".into());
    assert!(matches!(
        s.submit(t(6), clash).await,
        Err(StoreError::Conflict(_))
    ));
    let all = s.list(Filter::default(), None, 10).await.expect("list");
    assert_eq!(all.items.len(), 1);
    assert_eq!(s.events(first.id).await.expect("events").len(), 1);
}

#[tokio::test]
async fn outbox_lease_done_retry_and_dead_letter() {
    let (_dir, s) = open_temp().await;
    let a = s.enqueue(t(0), delivery()).await.expect("enqueue");
    let b = s.enqueue(t(0), delivery()).await.expect("enqueue");
    let leased = s.lease_outbox(t(0), "p1", 10, LEASE).await.expect("lease");
    assert_eq!(leased.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a, b]);
    assert!(
        s.lease_outbox(t(1), "p2", 10, LEASE)
            .await
            .expect("lease")
            .is_empty(),
        "live leases"
    );
    assert!(matches!(
        s.outbox_done(a, "p2", t(2)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    s.outbox_done(a, "p1", t(2)).await.expect("done");
    s.outbox_retry(b, "p1", t(2), Some(t(120)), "HTTP 503")
        .await
        .expect("retry");
    assert!(s
        .lease_outbox(t(119), "p2", 10, LEASE)
        .await
        .expect("lease")
        .is_empty());
    let again = s
        .lease_outbox(t(120), "p2", 10, LEASE)
        .await
        .expect("lease");
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (b, 2));
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503"));
    // p2 crashes; its lease expires and p3 takes over.
    let taken = s
        .lease_outbox(t(180), "p3", 10, LEASE)
        .await
        .expect("lease");
    assert_eq!(taken.len(), 1);
    assert!(matches!(
        s.outbox_done(b, "p2", t(181)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    s.outbox_retry(b, "p3", t(181), None, "gave up")
        .await
        .expect("dead");
    assert!(s
        .lease_outbox(t(100_000), "p3", 10, LEASE)
        .await
        .expect("lease")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_share_commits_and_are_durable() {
    const N: usize = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteStore::open(dir.path()).await.expect("open");
    let mut msgs = Vec::with_capacity(N);
    for i in 0..N {
        msgs.push(outbound(&s, &format!("c{i}")).await);
    }
    // Hold the writer so that all N requests are queued before it drains them (deterministic
    // batching; no timing involved).
    let hold = s.hold_writer().await.expect("hold");
    let mut tasks = tokio::task::JoinSet::new();
    for m in msgs {
        let s = s.clone();
        tasks.spawn(async move { s.submit(t(0), m).await });
    }
    while s.queued_writes() < N {
        tokio::task::yield_now().await;
    }
    let before = s.writer_stats();
    drop(hold);
    let mut ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        ids.push(r.expect("join").expect("submit").id);
    }
    let after = s.writer_stats();
    let commits = after.commits - before.commits;
    assert!(
        commits <= 2,
        "{N} queued submissions took {commits} commits"
    );
    assert!(
        after.largest_batch >= N as u64,
        "largest batch {}",
        after.largest_batch
    );
    s.close().await.expect("close");

    // Durable: a fresh store sees all of them.
    let s2 = SqliteStore::open(dir.path()).await.expect("reopen");
    for id in ids {
        assert_eq!(
            s2.get(id).await.expect("get").map(|r| r.state),
            Some(State::Submitted)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_unsynchronised_submitters_all_land() {
    let (dir, s) = open_temp().await;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..32 {
        let s = s.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let m = outbound(&s, &format!("w{w}-{i}")).await;
                ids.push(s.submit(t(0), m).await.expect("submit").id);
            }
            ids
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("join"));
    }
    let stats = s.writer_stats();
    assert!(stats.commits <= stats.jobs);
    s.close().await.expect("close");
    let s2 = SqliteStore::open(dir.path()).await.expect("reopen");
    assert_eq!(all.len(), 320);
    for id in all {
        assert!(s2.get(id).await.expect("get").is_some(), "{id} lost");
    }
}

#[tokio::test]
async fn a_failing_request_does_not_spoil_its_batch() {
    let (_dir, s) = open_temp().await;
    s.submit(t(0), outbound(&s, "taken").await)
        .await
        .expect("submit");
    let clash = outbound(&s, "taken").await;
    let good = outbound(&s, "fresh").await;
    let hold = s.hold_writer().await.expect("hold");
    let (s1, s2) = (s.clone(), s.clone());
    let a = tokio::spawn(async move { s1.submit(t(1), clash).await });
    let b = tokio::spawn(async move { s2.submit(t(1), good).await });
    while s.queued_writes() < 2 {
        tokio::task::yield_now().await;
    }
    drop(hold);
    assert!(matches!(
        a.await.expect("join"),
        Err(StoreError::Conflict(_))
    ));
    let id = b.await.expect("join").expect("good submit").id;
    assert_eq!(
        s.get(id).await.expect("get").map(|r| r.message_id),
        Some("fresh".to_string())
    );
    assert_eq!(
        s.list(Filter::default(), None, 10)
            .await
            .expect("list")
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn usable_as_trait_object() {
    let (_dir, s) = open_temp().await;
    let m = outbound(&s, "dyn").await;
    let store: Arc<dyn MessageStore> = Arc::new(s);
    let id = store.submit(t(0), m).await.expect("submit").id;
    assert_eq!(store.get(id).await.expect("get").map(|r| r.id), Some(id));
    assert!(store.get(StoreId(9_999)).await.expect("get").is_none());
    assert!(matches!(
        store.mark_delivered(StoreId(9_999), t(0), "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .mark_delivered(id, t(0), "outbound cannot be delivered")
            .await,
        Err(StoreError::InvalidTransition { .. })
    ));
}

#[tokio::test]
async fn header_is_kept_verbatim_in_both_directions() {
    let (_dir, store) = open_temp().await;
    let header = "<eb:Messaging xmlns:eb=\"urn:x\">é &amp; 🦀</eb:Messaging>".to_string();
    let mut out = outbound(&store, "hdr-out@as4gw").await;
    out.header = Some(header.clone());
    let s = store.submit(t(0), out).await.expect("submit");
    let rec = store.get(s.id).await.expect("get").expect("present");
    assert_eq!(rec.header.as_deref(), Some(header.as_str()));

    let mut inb = inbound("hdr-in@partner");
    inb.header = Some(header.clone());
    let Received::New(id) = store
        .record_received(t(1), inb, Duration::days(1), None)
        .await
        .expect("record")
    else {
        panic!("first reception must be new")
    };
    let rec = store.get(id).await.expect("get").expect("present");
    assert_eq!(rec.header.as_deref(), Some(header.as_str()));
    // Without a header the field stays empty (old rows after migration 2 look the same).
    let s2 = store
        .submit(t(2), outbound(&store, "hdr-none@as4gw").await)
        .await
        .expect("submit");
    assert_eq!(
        store
            .get(s2.id)
            .await
            .expect("get")
            .expect("present")
            .header,
        None
    );
}

/// Outbox leases live in the process (issue 8: a push starts without a commit): after a
/// restart an item whose push was leased but never ended is due at once, not after its lease
/// (pushes are at-least-once; the backend deduplicates), and a lease's end is recorded: an
/// item done by its pusher is not handed out again.
#[tokio::test]
async fn outbox_leases_do_not_outlive_the_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = {
        let s = SqliteStore::open(dir.path()).await.expect("open");
        let a = s.enqueue(t(0), delivery()).await.expect("enqueue");
        let b = s.enqueue(t(0), delivery()).await.expect("enqueue");
        let leased = s.lease_outbox(t(0), "p1", 10, LEASE).await.expect("lease");
        assert_eq!(leased.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(leased[0].attempts, 1);
        s.outbox_done(b, "p1", t(1)).await.expect("done");
        s.close().await.expect("close");
        (a, b)
    };
    let s = SqliteStore::open(dir.path()).await.expect("reopen");
    let again = s.lease_outbox(t(2), "p2", 10, LEASE).await.expect("lease");
    assert_eq!(
        again.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![a],
        "a at once, b not again ({b:?} is done)"
    );
    assert_eq!(again[0].attempts, 1, "the unfinished push was not counted");
    assert!(matches!(
        s.outbox_done(a, "p1", t(3)).await,
        Err(StoreError::LeaseLost { .. })
    ));
    s.outbox_done(a, "p2", t(3)).await.expect("done");
}

#[tokio::test]
async fn submit_leased_returns_the_record_it_wrote() {
    let (_dir, s) = open_temp().await;
    let mut msg = outbound(&s, "leased@as4gw").await;
    msg.idempotency_key = Some("key-leased".into());
    msg.header = Some("<eb:Messaging/>".into());
    msg.properties.push(("ExchangeId".into(), "x-7".into()));
    let inline = s.spool().put_bytes(b"small").await.expect("inline");
    assert!(inline.is_inline());
    msg.payloads.push(as4gw::store::Payload {
        part_id: "cid:payload-2".into(),
        mime_type: "text/plain".into(),
        file: inline,
    });
    let (sub, rec) = s
        .submit_leased(t(5), msg.clone(), "node-a", LEASE)
        .await
        .expect("submit");
    assert!(sub.created);
    let rec = rec.expect("due now: leased");
    assert_eq!(rec.state, State::Sending);
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.lease.as_ref().map(|l| l.until), Some(t(5) + LEASE));
    // What it handed out is exactly what a read of the row gives.
    assert_eq!(Some(rec), s.get(sub.id).await.expect("get"));
    let ev = s.events(sub.id).await.expect("events");
    assert_eq!(
        transitions(&ev),
        vec![
            (None, State::Submitted),
            (Some(State::Submitted), State::Sending)
        ]
    );
    assert_eq!(ev[1].detail, "attempt 1 leased by node-a");
    // The lease is a real one: the due scan does not hand it out again, its owner finishes.
    assert!(s
        .lease_due(t(6), "node-b", 10, LEASE)
        .await
        .expect("lease")
        .is_empty());
    s.finish_attempt(
        sub.id,
        "node-a",
        t(7),
        Outcome::Acknowledged { receipt: None },
        None,
    )
    .await
    .expect("finish");

    // The same idempotency key: the first message, nothing leased.
    let (again, none) = s
        .submit_leased(t(8), msg, "node-a", LEASE)
        .await
        .expect("again");
    assert_eq!((again.id, again.created, none), (sub.id, false, None));

    // Not due yet: submitted only, left to the due scan.
    let mut later = outbound(&s, "later@as4gw").await;
    later.not_before = Some(t(100));
    let (sub, rec) = s
        .submit_leased(t(9), later, "node-a", LEASE)
        .await
        .expect("later");
    assert!(sub.created && rec.is_none());
    let rec = s.get(sub.id).await.expect("get").expect("present");
    assert_eq!(
        (rec.state, rec.attempts, rec.lease),
        (State::Submitted, 0, None)
    );
}
