//! Red and blue back to back, in process, manual clock.

use std::sync::atomic::Ordering;

use as4gw::ebms::codes::EbmsCode;
use as4gw::msh::api::Submitter;
use as4gw::store::{Direction, Filter, MessageStore, State};
use time::Duration;

use super::harness::*;

async fn payload_bytes(store: &as4gw::store::SqliteStore, mid: &str) -> Vec<(String, Vec<u8>)> {
    let rec = store
        .get_by_message_id(Direction::Inbound, mid)
        .await
        .expect("get")
        .expect("received");
    let mut out = Vec::new();
    for p in rec.payloads {
        let b = store
            .spool()
            .read_all(&p.file)
            .await
            .expect("payload")
            .to_vec();
        out.push((p.mime_type, b));
    }
    out
}

/// One exchange `from` → `to` on `pmode`/`action`; checks states, receipt, delivered bytes.
async fn exchange(
    w: &World,
    red_sends: bool,
    pmode: &str,
    action: &str,
    payloads: Vec<(&str, &str, Vec<u8>)>,
) {
    let (tx, rx) = if red_sends {
        (&w.red, &w.blue)
    } else {
        (&w.blue, &w.red)
    };
    let req = request(&tx.store, pmode, action, &payloads).await;
    let res = tx
        .msh
        .submit(req)
        .await
        .unwrap_or_else(|e| panic!("{pmode}: {e}"));
    assert!(res.created);
    assert_eq!(res.state, "SUBMITTED");
    assert_eq!(tx.msh.run_once().await, 1);
    let out = tx
        .store
        .get_by_message_id(Direction::Outbound, &res.message_id)
        .await
        .expect("get")
        .expect("outbound");
    assert_eq!(
        out.state,
        State::Acknowledged,
        "{pmode}: {:?} {:?}",
        out.last_code,
        out.last_detail
    );
    assert_eq!(out.attempts, 1);
    let receipt = tx
        .store
        .receipt(out.id)
        .await
        .expect("receipt")
        .expect("kept");
    assert!(String::from_utf8_lossy(&receipt.bytes).contains("NonRepudiationInformation"));
    let got = payload_bytes(&rx.store, &res.message_id).await;
    let want: Vec<(String, Vec<u8>)> = payloads
        .iter()
        .map(|(_, mt, b)| (mt.to_string(), b.clone()))
        .collect();
    assert_eq!(
        got, want,
        "{pmode}: delivered bytes and types, in PartInfo order"
    );
    let inrec = rx
        .store
        .get_by_message_id(Direction::Inbound, &res.message_id)
        .await
        .expect("get")
        .expect("in");
    assert_eq!(inrec.state, State::Received);
    assert_eq!(inrec.conversation_id, res.conversation_id);
    assert!(inrec.properties.iter().any(|(n, _)| n == "finalRecipient"));
    // The sender's wire file holds what went out: compressed legs carry gzip parts.
    let wire = out.wire.expect("wire recorded");
    let bytes = tx.store.spool().read_all(&wire).await.expect("wire");
    let compressed = String::from_utf8_lossy(&bytes).contains("MimeType=\"application/gzip\"");
    let leg_compresses = action != "ExecuteQueryResponse";
    assert_eq!(compressed, leg_compresses, "{pmode} {action}");
}

#[tokio::test]
async fn both_suites_both_directions_one_and_several_payloads() {
    let w = World::new(2).await;
    for (red_sends, pmode) in [
        (true, "oots-red-blue"),
        (true, "oots-v2-red-blue"),
        (false, "oots-blue-red"),
        (false, "oots-v2-blue-red"),
    ] {
        // compressed leg, one payload
        exchange(
            &w,
            red_sends,
            pmode,
            "ExecuteQueryRequest",
            vec![("request", "application/x-ebrs+xml", regrep(50))],
        )
        .await;
        // uncompressed leg (XML attachments digested after C14N, digest §12.1), several payloads
        exchange(
            &w,
            red_sends,
            pmode,
            "ExecuteQueryResponse",
            vec![
                ("response", "application/x-ebrs+xml", regrep(10)),
                ("evidence", "application/pdf", binary(70_000, 1)),
                ("evidence2", "application/xml", b"<a>x</a>".to_vec()),
            ],
        )
        .await;
        // compressed leg, several payloads
        exchange(
            &w,
            red_sends,
            pmode,
            "ExceptionResponse",
            vec![
                ("error", "application/x-ebrs+xml", regrep(3)),
                ("blob", "application/pdf", binary(5_000, 2)),
            ],
        )
        .await;
    }
    // Every inbound message has its delivery notification in the outbox.
    let items = w
        .blue
        .store
        .lease_outbox(w.clock_now(), "test", 100, Duration::minutes(1))
        .await
        .expect("outbox");
    assert_eq!(items.iter().filter(|i| i.kind == "delivery").count(), 6);
}

impl World {
    pub fn clock_now(&self) -> time::OffsetDateTime {
        use as4gw::msh::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn duplicate_is_receipted_again_and_never_stored_twice() {
    let w = World::new(2).await;
    let req = request(
        &w.red.store,
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("r", "application/x-ebrs+xml", regrep(5))],
    )
    .await;
    let res = w.red.msh.submit(req).await.expect("submit");
    w.red.msh.run_once().await;
    let wire = w.net.seen.lock().expect("lock")[0].clone();
    let ct = as4gw::msh::outbound::wire_content_type(&res.message_id).expect("ct");
    let first = {
        let rec = w
            .blue
            .store
            .get_by_message_id(Direction::Inbound, &res.message_id)
            .await
            .expect("get")
            .expect("in");
        w.blue
            .store
            .receipt(rec.id)
            .await
            .expect("r")
            .expect("receipt")
            .bytes
    };
    for _ in 0..2 {
        let r = w
            .blue
            .msh
            .receive(
                Some(&ct),
                futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(
                    wire.clone(),
                ))]),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, first, "the stored receipt, byte for byte");
    }
    let page = w
        .blue
        .store
        .list(
            Filter {
                direction: Some(Direction::Inbound),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1, "stored once");
    let events = w.blue.store.events(page.items[0].id).await.expect("events");
    assert!(
        events.iter().any(|e| e.detail.contains("duplicate")),
        "{events:?}"
    );
    let items = w
        .blue
        .store
        .lease_outbox(w.clock_now(), "t", 10, Duration::minutes(1))
        .await
        .expect("outbox");
    assert_eq!(items.len(), 1, "delivered (notified) once");
}

#[tokio::test]
async fn receiver_down_then_up_arrives_once_with_identical_bytes() {
    let w = World::new(2).await;
    let req = request(
        &w.red.store,
        "oots-v2-red-blue",
        "ExecuteQueryRequest",
        &[("r", "application/x-ebrs+xml", regrep(5))],
    )
    .await;
    let res = w.red.msh.submit(req).await.expect("submit");
    w.net.down.store(true, Ordering::SeqCst);
    w.red.msh.run_once().await;
    let rec = w
        .red
        .store
        .get_by_message_id(Direction::Outbound, &res.message_id)
        .await
        .expect("g")
        .expect("r");
    assert_eq!(rec.state, State::WaitingForRetry);
    assert_eq!(rec.last_code, Some(EbmsCode::ConnectionFailure));
    let wire1 = rec.wire.clone().expect("wire packed once");
    // not due yet
    assert_eq!(w.red.msh.run_once().await, 0);
    w.clock.advance(Duration::minutes(1));
    w.net.down.store(false, Ordering::SeqCst);
    // A first resend that reaches blue but whose answer is lost is also eliminated there.
    assert_eq!(w.red.msh.run_once().await, 1);
    let rec = w
        .red
        .store
        .get_by_message_id(Direction::Outbound, &res.message_id)
        .await
        .expect("g")
        .expect("r");
    assert_eq!(rec.state, State::Acknowledged);
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.wire, Some(wire1));
    assert!(w
        .blue
        .store
        .get_by_message_id(Direction::Inbound, &res.message_id)
        .await
        .expect("g")
        .is_some());
}

/// A small wire message is recorded with the attempt's outcome, after the POST (one commit
/// less). A crash between the POST and that commit leaves the message unrecorded: the next
/// attempt packs it again (new content key, new security-header ids) and the receiver answers
/// the duplicate with its first receipt. That receipt must still acknowledge what the second
/// packing signed: the signed references (header wsu:Id, the Body's fixed id, the digests)
/// are the same. Both suites.
#[tokio::test]
async fn packed_again_after_a_crash_before_recording_the_first_receipt_still_matches() {
    for pmode in ["oots-red-blue", "oots-v2-red-blue"] {
        let w = World::new(2).await;
        let req = request(
            &w.red.store,
            pmode,
            "ExecuteQueryRequest",
            &[("r", "application/x-ebrs+xml", regrep(5))],
        )
        .await;
        let res = w.red.msh.submit(req).await.expect("submit");
        assert_eq!(w.red.msh.run_once().await, 1);
        let rec = w
            .red
            .store
            .get_by_message_id(Direction::Outbound, &res.message_id)
            .await
            .expect("g")
            .expect("r");
        assert_eq!(rec.state, State::Acknowledged, "{pmode}");
        let first_wire = w.net.seen.lock().expect("lock")[0].clone();
        // The crash: red's last commit (wire bytes, receipt, ACKNOWLEDGED) never happened.
        {
            let db = rusqlite::Connection::open(w.red.store.db_path()).expect("db");
            db.execute_batch(&format!(
                "DELETE FROM wire_inline WHERE message = {id}; DELETE FROM receipts WHERE message = {id}; \
                 DELETE FROM outbox WHERE message = {id}; \
                 UPDATE messages SET state = 'SENDING', lease_owner = 'crashed', lease_until = 0, \
                 wire_file = NULL, wire_size = NULL, wire_sha256 = NULL WHERE id = {id};",
                id = rec.id.0
            ))
            .expect("roll back to before the commit");
        }
        assert_eq!(w.red.msh.run_once().await, 1, "the expired lease is taken");
        let second_wire = w.net.seen.lock().expect("lock")[1].clone();
        assert_ne!(first_wire, second_wire, "{pmode}: packed again, not resent");
        let rec = w
            .red
            .store
            .get_by_message_id(Direction::Outbound, &res.message_id)
            .await
            .expect("g")
            .expect("r");
        assert_eq!(
            rec.state,
            State::Acknowledged,
            "{pmode}: {:?} {:?}",
            rec.last_code,
            rec.last_detail
        );
        assert_eq!(rec.attempts, 2);
        assert!(rec.wire.is_some(), "recorded with the outcome");
        let inbound = w
            .blue
            .store
            .list(
                Filter {
                    direction: Some(Direction::Inbound),
                    ..Default::default()
                },
                None,
                10,
            )
            .await
            .expect("list");
        assert_eq!(inbound.items.len(), 1, "{pmode}: delivered once");
    }
}

#[tokio::test]
async fn retries_exhausted_fail_with_missing_receipt() {
    let w = World::new(2).await;
    let req = request(
        &w.red.store,
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("r", "application/x-ebrs+xml", regrep(5))],
    )
    .await;
    let res = w.red.msh.submit(req).await.expect("submit");
    w.net.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(w.red.msh.run_once().await, 1);
        w.clock.advance(Duration::minutes(1));
    }
    assert_eq!(w.red.msh.run_once().await, 0, "nothing left to send");
    let rec = w
        .red
        .store
        .get_by_message_id(Direction::Outbound, &res.message_id)
        .await
        .expect("g")
        .expect("r");
    assert_eq!(rec.state, State::Failed);
    assert_eq!(rec.last_code, Some(EbmsCode::MissingReceipt));
    assert_eq!(rec.attempts, 3, "first send + 2 resends");
    assert_eq!(w.net.posts.load(Ordering::SeqCst), 3);
    let items = w
        .red
        .store
        .lease_outbox(w.clock_now(), "t", 10, Duration::minutes(1))
        .await
        .expect("o");
    assert!(items
        .iter()
        .any(|i| i.kind == "status" && String::from_utf8_lossy(&i.body).contains("EBMS:0301")));
}

#[tokio::test]
async fn test_service_is_receipted_and_never_delivered() {
    let w = World::new(2).await;
    let req = request(
        &w.red.store,
        "ebms-test-red-blue",
        "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/test",
        &[("ping", "text/plain", b"ping".to_vec())],
    )
    .await;
    let res = w.red.msh.submit(req).await.expect("submit");
    w.red.msh.run_once().await;
    let out = w
        .red
        .store
        .get_by_message_id(Direction::Outbound, &res.message_id)
        .await
        .expect("g")
        .expect("r");
    assert_eq!(out.state, State::Acknowledged, "{:?}", out.last_detail);
    let inr = w
        .blue
        .store
        .get_by_message_id(Direction::Inbound, &res.message_id)
        .await
        .expect("g")
        .expect("in");
    assert_eq!(
        inr.state,
        State::Delivered,
        "marked, never handed to a backend"
    );
    let items = w
        .blue
        .store
        .lease_outbox(w.clock_now(), "t", 10, Duration::minutes(1))
        .await
        .expect("o");
    assert!(items.is_empty(), "no delivery notification: {items:?}");
}

#[tokio::test]
async fn refused_submissions_leave_no_trace() {
    use as4gw::msh::api::SubmitError;
    let w = World::new(2).await;
    let mut req = request(
        &w.red.store,
        "oots-v2-red-blue",
        "ExecuteQueryRequest",
        &[("r", "application/x-ebrs+xml", regrep(1))],
    )
    .await;
    req.properties.retain(|p| p.name != "ExchangeId");
    assert!(matches!(
        w.red.msh.submit(req).await,
        Err(SubmitError::MissingProperty { .. })
    ));
    let req = request(
        &w.red.store,
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("r", "image/gif", vec![1])],
    )
    .await;
    assert!(matches!(
        w.red.msh.submit(req).await,
        Err(SubmitError::PayloadNotAllowed { .. })
    ));
    let req = request(&w.red.store, "no-such-pmode", "ExecuteQueryRequest", &[]).await;
    assert!(matches!(
        w.red.msh.submit(req).await,
        Err(SubmitError::UnknownPmode(_))
    ));
    let mut req = request(
        &w.red.store,
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("r", "application/x-ebrs+xml", regrep(1))],
    )
    .await;
    req.backend = Some("oots".into());
    req.pmode_id = Some("oots-blue-red".into());
    assert!(
        w.red.msh.submit(req).await.is_err(),
        "red cannot send blue's P-Mode"
    );
    let mut req = request(
        &w.red.store,
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("r", "application/x-ebrs+xml", regrep(1))],
    )
    .await;
    req.message_id = Some("fixed-1@red_gw".into());
    w.red.msh.submit(req).await.expect("first");
    let mut req = request(
        &w.red.store,
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("r", "application/x-ebrs+xml", regrep(1))],
    )
    .await;
    req.message_id = Some("fixed-1@red_gw".into());
    assert!(matches!(
        w.red.msh.submit(req).await,
        Err(SubmitError::DuplicateMessageId(_))
    ));
    let page = w
        .red
        .store
        .list(Filter::default(), None, 10)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
}

/// Inbound messages go to the backend whose `allowed-final-recipients` names their
/// finalRecipient (and which may use the P-Mode), else to the P-Mode's `backend`.
#[tokio::test]
async fn inbound_is_routed_to_the_backend_of_its_final_recipient() {
    const BILLING: &str = "urn:oots:blue:billing";
    let w = World::new_with(2, |side, s| {
        if side == "blue" {
            // Names the recipient but may not use the inbound P-Mode: skipped (it could not
            // read the message through the API).
            let mut stranger = s.backends[0].clone();
            stranger.name = "stranger".into();
            stranger.allowed_final_recipients = vec![BILLING.into()];
            let mut b = s.backends[0].clone();
            b.name = "billing".into();
            b.allowed_final_recipients = vec![BILLING.into()];
            b.allowed_pmodes.push("oots-red-blue".into());
            s.backends.push(stranger);
            s.backends.push(b);
        }
    })
    .await;
    let mut sent = Vec::new();
    for recipient in [BILLING, "urn:oots:blue:recipient"] {
        let mut req = request(
            &w.red.store,
            "oots-red-blue",
            "ExecuteQueryResponse",
            &[("regrep", "application/x-ebrs+xml", regrep(3))],
        )
        .await;
        for p in &mut req.properties {
            if p.name == "finalRecipient" {
                p.value = recipient.into();
            }
        }
        sent.push(w.red.msh.submit(req).await.expect("submit").message_id);
    }
    assert_eq!(w.red.msh.run_once().await, 2);
    let items = w
        .blue
        .store
        .lease_outbox(
            as4gw::msh::Clock::now(w.clock.as_ref()) + Duration::days(1),
            "test",
            100,
            Duration::minutes(1),
        )
        .await
        .expect("outbox");
    let mut targets = Vec::new();
    for mid in &sent {
        let rec = w
            .blue
            .store
            .get_by_message_id(Direction::Inbound, mid)
            .await
            .expect("get")
            .expect("received");
        let t: Vec<&str> = items
            .iter()
            .filter(|i| i.kind == "delivery" && i.message == Some(rec.id))
            .map(|i| i.target.as_str())
            .collect();
        targets.push(t);
    }
    assert_eq!(targets, vec![vec!["billing"], vec!["oots"]]);
}

/// The records the MSH keeps for the webhook pusher (`Msh::recent`, so a push needs no read
/// of the store) are what the store answers after the commit: the pusher builds the same view
/// and streams the same payloads from either (issue 8, fourth round).
#[tokio::test]
async fn records_kept_for_the_pusher_are_what_the_store_answers() {
    use as4gw::backend::model::{message_view, message_view_of};
    // The store's record: the view parses its header.
    let view = |r: &as4gw::store::MessageRecord| {
        serde_json::to_value(message_view(r)).expect("view as JSON")
    };
    // A kept record: the view takes the UserMessage the MSH had parsed.
    let kept_view = |(r, user): &(
        as4gw::store::MessageRecord,
        Option<as4gw::ebms::UserMessage>,
    )| {
        assert!(user.is_some(), "kept with its parsed UserMessage");
        serde_json::to_value(message_view_of(r, user.clone())).expect("view as JSON")
    };
    let w = World::new(2).await;
    // ACKNOWLEDGED on red, RECEIVED on blue, two payloads (one above the inline size).
    let req = request(
        &w.red.store,
        "oots-v2-red-blue",
        "ExecuteQueryResponse",
        &[
            ("response", "application/x-ebrs+xml", regrep(10)),
            ("evidence", "application/pdf", binary(70_000, 1)),
        ],
    )
    .await;
    let res = w.red.msh.submit(req).await.expect("submit");
    assert_eq!(w.red.msh.run_once().await, 1);
    let out = w
        .red
        .store
        .get_by_message_id(Direction::Outbound, &res.message_id)
        .await
        .expect("get")
        .expect("outbound");
    assert_eq!(out.state, State::Acknowledged);
    let kept = w
        .red
        .msh
        .recent()
        .take(out.id)
        .expect("kept for the status push");
    assert_eq!(kept_view(&kept), view(&out));
    assert_eq!(view(&kept.0), view(&out));
    assert_eq!(kept.0.payloads, out.payloads);
    assert!(w.red.msh.recent().take(out.id).is_none(), "handed out once");
    let inrec = w
        .blue
        .store
        .get_by_message_id(Direction::Inbound, &res.message_id)
        .await
        .expect("get")
        .expect("inbound");
    let kept = w
        .blue
        .msh
        .recent()
        .take(inrec.id)
        .expect("kept for the delivery push");
    assert_eq!(kept_view(&kept), view(&inrec));
    assert_eq!(view(&kept.0), view(&inrec));
    assert_eq!(kept.0.payloads, inrec.payloads);
    // FAILED (EBMS:0301) after the resends; the retries before are not notified, not kept.
    let req = request(
        &w.red.store,
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("r", "application/x-ebrs+xml", regrep(5))],
    )
    .await;
    let res = w.red.msh.submit(req).await.expect("submit");
    w.net.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(w.red.msh.run_once().await, 1);
        w.clock.advance(Duration::minutes(1));
    }
    let failed = w
        .red
        .store
        .get_by_message_id(Direction::Outbound, &res.message_id)
        .await
        .expect("get")
        .expect("outbound");
    assert_eq!(failed.state, State::Failed);
    assert_eq!(
        w.red.msh.recent().len(),
        1,
        "only the final outcome is kept"
    );
    let kept = w.red.msh.recent().take(failed.id).expect("kept");
    assert_eq!(kept_view(&kept), view(&failed));
}

/// Waits (real time, at most 20 s) until the outbound message `mid` of `side` is ACKNOWLEDGED.
async fn until_acknowledged(side: &Side, mid: &str) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let rec = side
            .store
            .get_by_message_id(Direction::Outbound, mid)
            .await
            .expect("get")
            .expect("outbound");
        if rec.state == State::Acknowledged {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "{mid} still {:?} ({:?})",
            rec.state,
            rec.last_detail
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The scheduler asks the store for due messages when some may be there (start, a submission
/// stored without a free slot, all slots filled, the poll), not after every attempt: each ask
/// is a write request, and it held every free slot while it ran (issue 8). Messages submitted
/// while no slot is free are still sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_asks_for_due_messages_only_when_some_may_be_due() {
    let w = World::new_with(2, |name, s| {
        // No poll during the test: what the scheduler asks for comes from its own rules.
        s.poll = std::time::Duration::from_secs(3600);
        if name == "red" {
            s.concurrency = 2;
        }
    })
    .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(std::sync::Arc::clone(&w.red.msh).run_scheduler(stop_rx));
    let submit = |n: usize| {
        let w = &w;
        async move {
            let req = request(
                &w.red.store,
                "oots-v2-red-blue",
                "ExecuteQueryResponse",
                &[("r", "application/x-ebrs+xml", regrep(n))],
            )
            .await;
            w.red.msh.submit(req).await.expect("submit").message_id
        }
    };
    // The first message: the scheduler's lease at start is behind it.
    let first = submit(1).await;
    until_acknowledged(&w.red, &first).await;
    let before = w.red.store.writer_stats().jobs;
    // One at a time: each takes a free slot, so each is two write requests (stored leased,
    // attempt ended). Asking after every attempt made it three.
    const N: u64 = 12;
    for i in 0..N {
        let mid = submit(2 + i as usize).await;
        until_acknowledged(&w.red, &mid).await;
    }
    let jobs = w.red.store.writer_stats().jobs - before;
    assert!(
        jobs <= 2 * N + 1,
        "{jobs} write requests for {N} messages sent one at a time"
    );
    // Six at once on two slots: four are stored without a slot and leased when slots free up.
    let mut mids = Vec::new();
    for i in 0..6 {
        mids.push(submit(20 + i).await);
    }
    for mid in &mids {
        until_acknowledged(&w.red, mid).await;
    }
    let _ = stop_tx.send(true);
    scheduler.await.expect("scheduler stops");
}

/// Outbox rows in `side`'s store (a read-only connection next to the running store).
fn outbox_rows(side: &Side) -> i64 {
    rusqlite::Connection::open_with_flags(
        side.store.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("db")
    .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
    .expect("count")
}

/// A backend without a webhook polls the API: its messages get no outbox item (it would only
/// have been written, leased and settled as "nothing to push"), with a webhook they do.
#[tokio::test]
async fn no_push_items_for_backends_that_poll() {
    for webhook in [false, true] {
        let w = World::new_with(2, |_, s| {
            if !webhook {
                for b in &mut s.backends {
                    b.webhook = None;
                }
            }
        })
        .await;
        let req = request(
            &w.red.store,
            "oots-v2-red-blue",
            "ExecuteQueryResponse",
            &[("r", "application/x-ebrs+xml", regrep(3))],
        )
        .await;
        let res = w.red.msh.submit(req).await.expect("submit");
        assert_eq!(w.red.msh.run_once().await, 1);
        let out = w
            .red
            .store
            .get_by_message_id(Direction::Outbound, &res.message_id)
            .await
            .expect("get")
            .expect("outbound");
        assert_eq!(out.state, State::Acknowledged);
        let inbound = w
            .blue
            .store
            .get_by_message_id(Direction::Inbound, &res.message_id)
            .await
            .expect("get")
            .expect("inbound");
        assert_eq!(
            inbound.state,
            State::Received,
            "the backend takes it by polling"
        );
        let want = i64::from(webhook);
        assert_eq!(outbox_rows(&w.red), want, "status item, webhook {webhook}");
        assert_eq!(
            outbox_rows(&w.blue),
            want,
            "delivery item, webhook {webhook}"
        );
    }
}
