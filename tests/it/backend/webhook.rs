//! Webhooks: a receiver that fails the first pushes, then succeeds. Every message arrives
//! exactly once with a valid signature; failing pushes are retried; a push that never succeeds
//! ends DEAD in the outbox (visible), never silently dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use as4gw::backend::webhook::{delivery_notification, status_notification, KIND_DELIVERY};
use as4gw::backend::{spawn_webhook_pusher, WebhookSettings};
use as4gw::ebms::EbmsCode;
use as4gw::store::{Direction, MessageStore, NewOutbound, Outcome, State};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use super::*;

#[derive(Debug, Clone)]
struct Push {
    path: String,
    event: String,
    delivery: String,
    message_id: Option<String>,
    signature_ok: bool,
    answered: u16,
    metadata: Option<Value>,
    parts: Vec<(String, String, Vec<u8>)>,
    json: Option<Value>,
}

#[derive(Default)]
struct Receiver {
    pushes: Mutex<Vec<Push>>,
    /// How many pushes to /hook fail before it starts answering 200.
    fail_first: AtomicUsize,
    key: Vec<u8>,
}

/// Independent verification: HMAC-SHA256(key, t "." body) with the RustCrypto crates.
fn verify_signature(key: &[u8], header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for kv in header.split(',') {
        match kv.split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

async fn parse_multipart(
    content_type: &str,
    body: Bytes,
) -> (Option<Value>, Vec<(String, String, Vec<u8>)>) {
    let boundary = multer::parse_boundary(content_type).expect("boundary");
    let mut mp = multer::Multipart::new(
        futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) }),
        boundary,
    );
    let mut meta = None;
    let mut parts = Vec::new();
    while let Some(f) = mp.next_field().await.expect("field") {
        let name = f.name().unwrap_or("").to_string();
        let ct = f.content_type().map(|m| m.to_string()).unwrap_or_default();
        let bytes = f.bytes().await.expect("bytes").to_vec();
        if name == "metadata" {
            meta = Some(serde_json::from_slice(&bytes).expect("metadata JSON"));
        } else {
            parts.push((name, ct, bytes));
        }
    }
    (meta, parts)
}

async fn hook(
    axum::extract::State(r): axum::extract::State<Arc<Receiver>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let signature_ok = verify_signature(&r.key, &h("x-as4gw-signature").unwrap_or_default(), &body);
    let ct = h("content-type").unwrap_or_default();
    let (metadata, parts, json) = if ct.starts_with("multipart/form-data") {
        let (m, p) = parse_multipart(&ct, body.clone()).await;
        (m, p, None)
    } else {
        (None, Vec::new(), serde_json::from_slice(&body).ok())
    };
    let path = uri.path().to_string();
    let answered = if path == "/dead" {
        503
    } else if r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        500
    } else if signature_ok {
        200
    } else {
        401
    };
    r.pushes.lock().expect("lock").push(Push {
        path,
        event: h("x-as4gw-event").unwrap_or_default(),
        delivery: h("x-as4gw-delivery").unwrap_or_default(),
        message_id: h("x-as4gw-message-id"),
        signature_ok,
        answered,
        metadata,
        parts,
        json,
    });
    StatusCode::from_u16(answered).expect("status")
}

/// Serves `app` on a free loopback port (the backend's webhook receiver).
async fn listen(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// Starts the pusher over `store`; it stops when the returned sender is used (or dropped).
fn start_pusher(
    store: &Arc<SqliteStore>,
    backends: Vec<as4gw::backend::BackendAccess>,
    settings: WebhookSettings,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pusher = spawn_webhook_pusher(
        Arc::clone(store) as Arc<dyn MessageStore>,
        backends,
        settings,
        async {
            let _ = stop_rx.await;
        },
    );
    (stop_tx, pusher)
}

/// An outbound message driven to a final state the way the MSH will, with its notification.
async fn outbound_final(store: &SqliteStore, message_id: &str, outcome: Outcome) -> StoreId {
    let now = time::OffsetDateTime::now_utc();
    let s = store
        .submit(
            now,
            NewOutbound {
                message_id: message_id.into(),
                conversation_id: "c".into(),
                pmode_id: PM_MAIN.into(),
                ..Default::default()
            },
        )
        .await
        .expect("submit");
    let leased = store
        .lease_due(now, "msh", 10, time::Duration::minutes(5))
        .await
        .expect("lease");
    assert!(leased.iter().any(|r| r.id == s.id));
    store
        .finish_attempt(
            s.id,
            "msh",
            now,
            outcome,
            Some(status_notification("red", s.id)),
        )
        .await
        .expect("finish");
    s.id
}

#[tokio::test]
async fn pushes_are_retried_until_2xx_signed_delivered_once_and_dead_letters_stay_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));

    let receiver = Arc::new(Receiver {
        fail_first: AtomicUsize::new(3),
        key: as4gw::backend::auth::token_digest(RED_TOKEN).to_vec(),
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .route("/dead", axum::routing::post(hook))
        .with_state(Arc::clone(&receiver));
    let addr = listen(app).await;

    // Three inbound deliveries, two outbound outcomes, one push to a webhook that never works.
    let pdf: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut inbound_ids = Vec::new();
    for i in 0..3 {
        let mid = format!("hook-{i}@blue.test");
        let payloads: Vec<(&str, &str, &[u8])> = if i == 1 {
            vec![
                ("request", "application/xml", b"<q/>".as_slice()),
                ("evidence", "application/pdf", pdf.as_slice()),
            ]
        } else {
            vec![("request", "application/xml", b"<q/>".as_slice())]
        };
        inbound_ids.push((
            mid.clone(),
            inbound(
                &store,
                &mid,
                &payloads,
                Some(delivery_notification("red", None)),
            )
            .await,
        ));
    }
    outbound_final(
        &store,
        "acked@red.test",
        Outcome::Acknowledged {
            receipt: Some(b"<r/>".to_vec()),
        },
    )
    .await;
    outbound_final(
        &store,
        "failed@red.test",
        Outcome::Failed {
            code: EbmsCode::ConnectionFailure,
            detail: "partner unreachable".into(),
        },
    )
    .await;
    store
        .enqueue(
            time::OffsetDateTime::now_utc(),
            as4gw::store::NewNotification {
                message: None,
                kind: "custom".into(),
                target: "deadend".into(),
                body: br#"{"hello":"world"}"#.to_vec(),
            },
        )
        .await
        .expect("enqueue");

    let mut backends = test_backends(Some(format!("http://{addr}/hook")));
    backends.push(
        BackendAccess::with_token("deadend", "dead-token").webhook(format!("http://{addr}/dead")),
    );
    let settings = WebhookSettings {
        owner: "test-pusher".into(),
        batch: 2,
        poll_interval: std::time::Duration::from_millis(20),
        request_timeout: std::time::Duration::from_secs(30),
        max_attempts: 4,
        // No waiting between attempts in the test: retries are due at once.
        backoff_base: time::Duration::ZERO,
        backoff_max: time::Duration::ZERO,
        ..WebhookSettings::default()
    };
    let stats = Arc::clone(&settings.stats);
    let (stop_tx, pusher) = start_pusher(&store, backends, settings);

    // Wait for the outcome (a progress condition, not a timing assertion; the bound only
    // turns a hang into a failure).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while stats.delivered.load(Ordering::SeqCst) < 5 || stats.dead.load(Ordering::SeqCst) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "pusher made no progress: {stats:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(());
    pusher.await.expect("pusher stops");

    let pushes = receiver.pushes.lock().expect("lock").clone();
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 5);
    assert_eq!(stats.dead.load(Ordering::SeqCst), 1);
    // 3 failures on /hook and 3 on /dead were retried; the 4th /dead attempt gave up.
    assert_eq!(stats.retried.load(Ordering::SeqCst), 6);
    assert!(
        pushes.iter().all(|p| p.signature_ok || p.path == "/dead"),
        "{pushes:?}"
    );

    let hook_pushes: Vec<&Push> = pushes.iter().filter(|p| p.path == "/hook").collect();
    assert_eq!(hook_pushes.iter().filter(|p| p.answered == 500).count(), 3);
    let ok: Vec<&Push> = hook_pushes
        .iter()
        .copied()
        .filter(|p| p.answered == 200)
        .collect();
    assert_eq!(ok.len(), 5, "each notification accepted exactly once");
    let mut deliveries: Vec<&str> = ok.iter().map(|p| p.delivery.as_str()).collect();
    deliveries.sort();
    deliveries.dedup();
    assert_eq!(deliveries.len(), 5, "distinct outbox items");
    // A failed push is retried with the same delivery id.
    for failed in hook_pushes.iter().filter(|p| p.answered == 500) {
        assert!(
            ok.iter().any(|p| p.delivery == failed.delivery),
            "{failed:?} never retried"
        );
    }

    // Inbound deliveries: metadata + payload parts, bytes intact; the message is DELIVERED.
    for (mid, id) in &inbound_ids {
        let got: Vec<&Push> = ok
            .iter()
            .copied()
            .filter(|p| p.message_id.as_deref() == Some(mid.as_str()))
            .collect();
        assert_eq!(got.len(), 1, "{mid} delivered once");
        let p = got[0];
        assert_eq!(p.event, KIND_DELIVERY);
        let meta = p.metadata.as_ref().expect("metadata part");
        assert_eq!(meta["event"], "delivery");
        assert_eq!(meta["message"]["messageId"], mid.as_str());
        assert_eq!(meta["message"]["direction"], "IN");
        assert_eq!(p.parts[0].0, "request");
        assert_eq!(p.parts[0].1, "application/xml");
        assert_eq!(p.parts[0].2, b"<q/>");
        if mid == "hook-1@blue.test" {
            assert_eq!(p.parts.len(), 2);
            assert_eq!(p.parts[1].0, "evidence");
            assert_eq!(p.parts[1].1, "application/pdf");
            assert_eq!(sha256_hex(&p.parts[1].2), sha256_hex(&pdf));
            assert_eq!(meta["message"]["payloads"][1]["sha256"], sha256_hex(&pdf));
        }
        let rec = store.get(*id).await.expect("get").expect("message");
        assert_eq!(rec.state, State::Delivered, "{mid}");
    }

    // Status notifications carry the final state and the EBMS code.
    let status = |mid: &str| -> Value {
        let p: Vec<&Push> = ok
            .iter()
            .copied()
            .filter(|p| p.message_id.as_deref() == Some(mid))
            .collect();
        assert_eq!(p.len(), 1, "{mid}");
        assert_eq!(p[0].event, "status");
        p[0].json.clone().expect("json body")
    };
    let a = status("acked@red.test");
    assert_eq!(a["event"], "status");
    assert_eq!(a["message"]["state"], "ACKNOWLEDGED");
    let f = status("failed@red.test");
    assert_eq!(f["message"]["state"], "FAILED");
    assert_eq!(f["message"]["lastCode"], "EBMS:0005");
    assert_eq!(f["message"]["lastDetail"], "partner unreachable");

    // The dead push: 4 attempts, then DEAD in the outbox with its last error — kept, visible.
    assert_eq!(pushes.iter().filter(|p| p.path == "/dead").count(), 4);
    let db = rusqlite::Connection::open_with_flags(
        store.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("db");
    let rows: Vec<(String, String, i64, Option<String>)> = db
        .prepare("SELECT target, state, attempts, last_error FROM outbox ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), 6);
    let dead: Vec<_> = rows.iter().filter(|r| r.1 == "DEAD").collect();
    assert_eq!(dead.len(), 1, "{rows:?}");
    assert_eq!(dead[0].0, "deadend");
    assert_eq!(dead[0].2, 4);
    assert!(
        dead[0].3.as_deref().unwrap_or("").contains("503"),
        "{dead:?}"
    );
    assert_eq!(rows.iter().filter(|r| r.1 == "DONE").count(), 5, "{rows:?}");
    let _ = Direction::Inbound;
}

#[test]
fn signature_helpers_agree_with_an_independent_hmac() {
    let key = b"k3y";
    let header = as4gw::backend::webhook::sign(key, 1_700_000_000, b"{\"a\":1}");
    assert!(verify_signature(key, &header, b"{\"a\":1}"));
    assert!(!verify_signature(key, &header, b"{\"a\":2}"));
    assert!(as4gw::backend::webhook::verify(
        key,
        &header,
        b"{\"a\":1}",
        1_700_000_100,
        300
    ));
    assert!(
        !as4gw::backend::webhook::verify(key, &header, b"{\"a\":1}", 1_700_001_000, 300),
        "too old"
    );
    assert!(!as4gw::backend::webhook::verify(
        b"other",
        &header,
        b"{\"a\":1}",
        1_700_000_000,
        300
    ));
}

/// A receiver that holds the first request until released.
struct Gate {
    arrived: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    count: AtomicUsize,
}

async fn gated(
    axum::extract::State(g): axum::extract::State<Arc<Gate>>,
    _body: Bytes,
) -> StatusCode {
    g.count.fetch_add(1, Ordering::SeqCst);
    if let Some(tx) = g.arrived.lock().expect("lock").take() {
        let _ = tx.send(());
    }
    if let Some(rx) = g.release.lock().await.take() {
        let _ = rx.await;
    }
    StatusCode::OK
}

#[tokio::test]
async fn shutdown_finishes_the_push_in_progress_and_releases_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel();
    let gate = Arc::new(Gate {
        arrived: Mutex::new(Some(arrived_tx)),
        release: tokio::sync::Mutex::new(Some(release_rx)),
        count: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(gated))
        .with_state(Arc::clone(&gate));
    let addr = listen(app).await;

    for i in 0..3 {
        inbound(
            &store,
            &format!("gate-{i}@blue.test"),
            &[],
            Some(delivery_notification("red", None)),
        )
        .await;
    }
    // One push at a time, so "the push in progress" is one push and the rest are released.
    let settings = WebhookSettings {
        batch: 3,
        concurrency: 1,
        ..WebhookSettings::default()
    };
    let stats = Arc::clone(&settings.stats);
    let (stop_tx, pusher) = start_pusher(
        &store,
        test_backends(Some(format!("http://{addr}/hook"))),
        settings,
    );
    arrived_rx.await.expect("first push arrives");
    let _ = stop_tx.send(());
    // Let the shutdown watcher run (current-thread runtime: it was woken before us).
    tokio::task::yield_now().await;
    let _ = release_tx.send(());
    pusher.await.expect("pusher stops");

    assert_eq!(
        gate.count.load(Ordering::SeqCst),
        1,
        "no push after the shutdown"
    );
    assert_eq!(
        stats.delivered.load(Ordering::SeqCst),
        1,
        "the push in progress completed"
    );
    let db = rusqlite::Connection::open_with_flags(
        store.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("db");
    let states: Vec<(String, Option<String>)> = db
        .prepare("SELECT state, lease_owner FROM outbox ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        states,
        vec![
            ("DONE".to_string(), None),
            ("PENDING".to_string(), None),
            ("PENDING".to_string(), None)
        ],
        "the unpushed items are released, not left leased"
    );
}

/// A receiver that holds every push of a message whose id starts with `slow` until released,
/// and answers the others at once.
struct SlowOne {
    arrived: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// No permits until the test releases the slow push.
    release: tokio::sync::Semaphore,
    fast: AtomicUsize,
}

async fn slow_one(
    axum::extract::State(g): axum::extract::State<Arc<SlowOne>>,
    headers: HeaderMap,
    _body: Bytes,
) -> StatusCode {
    let mid = headers
        .get("x-as4gw-message-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if mid.starts_with("slow") {
        if let Some(tx) = g.arrived.lock().expect("lock").take() {
            let _ = tx.send(());
        }
        let _ = g.release.acquire().await;
    } else {
        g.fast.fetch_add(1, Ordering::SeqCst);
    }
    StatusCode::OK
}

/// Pushes enqueued while another push hangs go out at once: the pusher is a pipeline, not a
/// sequence of rounds that each wait for their slowest push (one hanging backend held back
/// every push to every backend for up to its request timeout).
#[tokio::test]
async fn a_slow_push_does_not_hold_back_the_pushes_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel();
    let gate = Arc::new(SlowOne {
        arrived: Mutex::new(Some(arrived_tx)),
        release: tokio::sync::Semaphore::new(0),
        fast: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(slow_one))
        .with_state(Arc::clone(&gate));
    let addr = listen(app).await;

    inbound(
        &store,
        "slow-0@blue.test",
        &[],
        Some(delivery_notification("red", None)),
    )
    .await;
    let settings = WebhookSettings {
        concurrency: 4,
        ..WebhookSettings::default()
    };
    let stats = Arc::clone(&settings.stats);
    let (stop_tx, pusher) = start_pusher(
        &store,
        test_backends(Some(format!("http://{addr}/hook"))),
        settings,
    );
    tokio::time::timeout(std::time::Duration::from_secs(20), arrived_rx)
        .await
        .expect("the slow push arrives")
        .expect("arrived");

    // Enqueued while the slow push hangs.
    for i in 0..3 {
        inbound(
            &store,
            &format!("fast-{i}@blue.test"),
            &[],
            Some(delivery_notification("red", None)),
        )
        .await;
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while stats.delivered.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        gate.fast.load(Ordering::SeqCst),
        3,
        "the three later pushes were made while the slow one still hung"
    );
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 3);

    gate.release.add_permits(1);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while stats.delivered.load(Ordering::SeqCst) < 4 && std::time::Instant::now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        stats.delivered.load(Ordering::SeqCst),
        4,
        "the slow push completes too"
    );
    let _ = stop_tx.send(());
    pusher.await.expect("pusher stops");
}
