//! The backend's webhook is down for an hour of *simulated* time (a `ManualClock` drives the
//! pusher's due times, leases and signature timestamps): every push fails with "connection
//! refused", the back-off grows but stays bounded, nothing is given up within the hour, and
//! when the endpoint comes back every message is pushed successfully exactly once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use as4gw::backend::webhook::delivery_notification;
use as4gw::backend::{spawn_webhook_pusher, WebhookSettings};
use as4gw::msh::{Clock, ManualClock};
use as4gw::store::{MessageStore, SqliteStore, State};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use time::{Duration, OffsetDateTime};

use crate::backend::{inbound, test_backends, RED_TOKEN};
use crate::msh::e2e::free_port;

/// What the backend saw: (MessageId, delivery id, signature valid at the simulated time).
#[derive(Default)]
struct Seen {
    pushes: Mutex<Vec<(String, String, bool)>>,
}

struct Hook {
    seen: Arc<Seen>,
    clock: Arc<ManualClock>,
    key: Vec<u8>,
}

async fn hook(
    axum::extract::State(h): axum::extract::State<Arc<Hook>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let ok = as4gw::backend::webhook::verify(
        &h.key,
        &get("x-as4gw-signature"),
        &body,
        h.clock.now().unix_timestamp(),
        300,
    );
    h.seen.pushes.lock().expect("lock").push((
        get("x-as4gw-message-id"),
        get("x-as4gw-delivery"),
        ok,
    ));
    if ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

fn us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Waits until the pusher has dealt with everything due at the clock's `now` (no PENDING
/// item due or leased), then returns the next due time of a PENDING item, if any.
fn settle(db: &rusqlite::Connection, now: OffsetDateTime) -> Option<i64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let busy: i64 = db
            .query_row(
                "SELECT count(*) FROM outbox WHERE state = 'PENDING' \
                 AND (next_attempt_at <= ?1 OR lease_owner IS NOT NULL)",
                [us(now)],
                |r| r.get(0),
            )
            .expect("query");
        if busy == 0 {
            return db
                .query_row(
                    "SELECT min(next_attempt_at) FROM outbox WHERE state = 'PENDING'",
                    [],
                    |r| r.get::<_, Option<i64>>(0),
                )
                .expect("query");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pusher made no progress at simulated {now}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_for_a_simulated_hour_then_every_push_completes_once() {
    const N: usize = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let mut ids = Vec::new();
    for i in 0..N {
        let mid = format!("hour-{i}@blue.test");
        let id = inbound(
            &store,
            &mid,
            &[("request", "application/xml", b"<q/>".as_slice())],
            Some(delivery_notification("red", None)),
        )
        .await;
        ids.push((mid, id));
    }
    // Nothing listens on the port for the first simulated hour (connection refused).
    let port = free_port();
    let start = OffsetDateTime::now_utc() + Duration::seconds(1);
    let clock = Arc::new(ManualClock::new(start));
    // The production schedule (attempts, base, cap); only the clock and the idle poll differ.
    let settings = WebhookSettings {
        owner: "hour-pusher".into(),
        poll_interval: std::time::Duration::from_millis(5),
        request_timeout: std::time::Duration::from_secs(10),
        clock: Arc::clone(&clock) as Arc<dyn Clock>,
        ..WebhookSettings::default()
    };
    let schedule = settings.clone();
    let stats = Arc::clone(&settings.stats);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pusher = spawn_webhook_pusher(
        Arc::clone(&store) as Arc<dyn MessageStore>,
        test_backends(Some(format!("http://127.0.0.1:{port}/hook"))),
        settings,
        async {
            let _ = stop_rx.await;
        },
    );
    let db = rusqlite::Connection::open_with_flags(
        store.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("db");

    // The hour of failures, jumping from one due time to the next.
    let hour_end = start + Duration::hours(1);
    let cap = schedule.backoff_max.whole_microseconds() as i64;
    let mut longest_gap = 0i64;
    let db_ref = &db;
    let clock_ref = &clock;
    let drive = |until: OffsetDateTime, longest_gap: &mut i64| -> Option<i64> {
        loop {
            let now = clock_ref.now();
            let next = settle(db_ref, now)?;
            if next > us(until) {
                return Some(next);
            }
            *longest_gap = (*longest_gap).max(next - us(now));
            clock_ref.advance(Duration::microseconds(next - us(now)));
        }
    };
    let next_after_hour = tokio::task::block_in_place(|| drive(hour_end, &mut longest_gap))
        .expect("items still pending after the hour");
    // Expected attempts within the hour: the schedule's own back-off, summed.
    let mut expected = 0u32;
    let mut t = Duration::ZERO;
    while t <= Duration::hours(1) {
        expected += 1;
        t += schedule.backoff(expected);
    }
    let attempts: Vec<(i64, String)> = db
        .prepare("SELECT attempts, state FROM outbox ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    eprintln!(
        "webhook down 1 h (simulated): {N} items, {expected} attempts each, longest gap {} s, next attempt {} s after the hour",
        longest_gap / 1_000_000,
        (next_after_hour - us(hour_end)) / 1_000_000
    );
    assert_eq!(attempts.len(), N);
    for (a, st) in &attempts {
        assert_eq!(st, "PENDING", "nothing abandoned within the hour");
        assert_eq!(*a, i64::from(expected), "attempts follow the back-off");
    }
    assert!(
        expected < schedule.max_attempts,
        "default keeps retrying past an hour"
    );
    assert_eq!(stats.dead.load(Ordering::SeqCst), 0);
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 0);
    assert_eq!(
        stats.retried.load(Ordering::SeqCst),
        (N as u64) * u64::from(expected)
    );
    assert!(longest_gap <= cap, "back-off bounded by backoff_max");

    // The endpoint comes back.
    clock.advance(Duration::microseconds(us(hour_end) - us(clock.now())).max(Duration::ZERO));
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(Arc::new(Hook {
            seen: Arc::clone(&seen),
            clock: Arc::clone(&clock),
            key: as4gw::backend::auth::token_digest(RED_TOKEN).to_vec(),
        }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the webhook port again");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let back = clock.now();
    let mut gap_after = 0i64;
    let rest = tokio::task::block_in_place(|| drive(back + Duration::days(30), &mut gap_after));
    assert_eq!(rest, None, "every item settled");
    assert!(
        clock.now() <= back + schedule.backoff_max,
        "pushes resumed within backoff_max of the endpoint's return: {}",
        clock.now() - back
    );
    let _ = stop_tx.send(());
    pusher.await.expect("pusher stops");

    let pushes = seen.pushes.lock().expect("lock").clone();
    let mut per_mid: HashMap<&str, usize> = HashMap::new();
    for (mid, _, ok) in &pushes {
        assert!(ok, "signature valid at the simulated time");
        *per_mid.entry(mid.as_str()).or_default() += 1;
    }
    for (mid, id) in &ids {
        assert_eq!(per_mid.get(mid.as_str()), Some(&1), "{mid} pushed once");
        let rec = store.get(*id).await.expect("get").expect("message");
        assert_eq!(rec.state, State::Delivered, "{mid}");
    }
    assert_eq!(pushes.len(), N);
    assert_eq!(stats.delivered.load(Ordering::SeqCst), N as u64);
    assert_eq!(stats.dead.load(Ordering::SeqCst), 0);
}
