//! SIGKILL of either gateway at random moments while backends submit at concurrency: every
//! accepted submission ends ACKNOWLEDGED at red and is delivered exactly once to blue's
//! backend (counted by MessageId on the webhook receiver, which deduplicates repeated pushes
//! of the same outbox item as the webhook contract says).
//!
//! CI: 200 messages, 3 kills. `AS4GW_LONG_TESTS=1`: 2,000 messages, 20 kills. The RNG seed
//! is printed (and taken from `AS4GW_FAULT_SEED` when set) so a failing run can be repeated.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use as4gw::store::{Direction, Filter, MessageStore, SqliteStore};
use rand::{Rng, SeedableRng};

use super::{long_tests, set_webhook, CountingBackend};
use crate::msh::e2e::{meta, pair, Gateway};
use crate::msh::harness::regrep;

/// Inbound rows per MessageId in a (stopped) gateway's store.
fn stored_inbound(store: &std::path::Path) -> HashMap<String, usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let s = SqliteStore::open(store).await.expect("open store");
        let mut n: HashMap<String, usize> = HashMap::new();
        let mut cursor = None;
        loop {
            let page = s
                .list(
                    Filter {
                        direction: Some(Direction::Inbound),
                        ..Default::default()
                    },
                    cursor,
                    500,
                )
                .await
                .expect("list");
            for m in page.items {
                *n.entry(m.message_id).or_default() += 1;
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        s.close().await.expect("close");
        n
    })
}

#[test]
fn sigkill_either_gateway_under_load_loses_nothing_delivers_once() {
    let (total, kills) = if long_tests() { (2000, 20) } else { (200, 3) };
    let seed: u64 = std::env::var("AS4GW_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("crash test: {total} messages, {kills} kills, seed {seed} (AS4GW_FAULT_SEED={seed} repeats it)");
    let ctx = format!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let t0 = Instant::now();

    let dir = tempfile::tempdir().expect("tempdir");
    // Long retry budget; short leases so a killed process's work is taken over in seconds.
    let (red, mut blue) = pair(dir.path(), 1000, "1s", 3);
    let backend = CountingBackend::start("blue-demo-token");
    set_webhook(&blue, &backend.url());
    blue.extra_args = vec!["--webhook-lease-secs".into(), "3".into()];
    let mut red = red;
    red.extra_args = vec!["--webhook-lease-secs".into(), "3".into()];
    red.start();
    blue.start();
    let api_port = red.api;
    let token = red.token;
    let gws = Arc::new(Mutex::new([red, blue]));

    // Kill moments: random points of the progress (accepted + delivered, 0 … 2 × total), so
    // kills land while submitting, sending and pushing; each followed by a random delay.
    let mut at: Vec<usize> = (0..kills)
        .map(|_| rng.random_range(total / 10..total * 19 / 10))
        .collect();
    at.sort_unstable();
    let delays: Vec<u64> = (0..kills).map(|_| rng.random_range(0..400)).collect();

    // Submitters: 8 threads, each retrying its submission (same Idempotency-Key) until 202.
    let next = Arc::new(AtomicUsize::new(0));
    let accepted: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let mut threads = Vec::new();
    for _ in 0..8 {
        let (next, accepted) = (Arc::clone(&next), Arc::clone(&accepted));
        let ctx = ctx.clone();
        threads.push(std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= total {
                return;
            }
            let m = meta(
                if i % 2 == 0 {
                    "oots-red-blue"
                } else {
                    "oots-v2-red-blue"
                },
                "ExecuteQueryResponse",
                &[("doc", "application/x-ebrs+xml", regrep(i % 7 + 1))],
            );
            let key = format!("crash-{i}");
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                match submit(api_port, token, &m, &key) {
                    Ok((202, v)) => {
                        let mid = v["messageId"].as_str().expect("mid").to_string();
                        accepted.lock().expect("lock").push((i, mid));
                        break;
                    }
                    // A gateway being killed or starting may answer 5xx: repeat, same key.
                    Ok((st, _)) if st >= 500 => {
                        assert!(Instant::now() < deadline, "{ctx}: red kept answering {st}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Ok((st, v)) => panic!("{ctx}: submission {i} refused: {st} {v}"),
                    Err(_) => {
                        assert!(Instant::now() < deadline, "{ctx}: red never answered");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }));
    }
    // The killer: alternating red / blue.
    let mut done_kills = 0usize;
    for (k, (&point, &delay)) in at.iter().zip(&delays).enumerate() {
        let stall = Instant::now() + Duration::from_secs(300);
        while accepted.lock().expect("lock").len() + backend.delivered() < point {
            assert!(Instant::now() < stall, "{ctx}: no progress before kill {k}");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay));
        let mut g = gws.lock().expect("lock");
        let gw: &mut Gateway = &mut g[k % 2];
        gw.kill9();
        done_kills += 1;
        gw.start();
    }
    for t in threads {
        t.join().expect("submitter");
    }
    let accepted = accepted.lock().expect("lock").clone();
    let mut g = gws.lock().expect("lock");
    let [red, blue] = &mut *g;
    let by_index: BTreeSet<usize> = accepted.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        by_index.len(),
        total,
        "{ctx}: every submission answered 202"
    );
    let mids: BTreeSet<String> = accepted.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(
        mids.len(),
        total,
        "{ctx}: one MessageId per idempotency key"
    );
    let submitted = t0.elapsed();

    // Every accepted submission ends ACKNOWLEDGED on red.
    let end = Instant::now() + Duration::from_secs(if long_tests() { 1800 } else { 300 });
    let mut pending: Vec<&String> = mids.iter().collect();
    while !pending.is_empty() {
        pending.retain(|mid| {
            red.message("OUT", mid).is_none_or(|v| {
                assert_ne!(v["state"], "FAILED", "{ctx}: {v}");
                v["state"] != "ACKNOWLEDGED"
            })
        });
        assert!(
            Instant::now() < end,
            "{ctx}: {} messages not acknowledged, e.g. {:?}",
            pending.len(),
            pending.first()
        );
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    // Every one delivered to blue's backend; then a little time for repeated pushes.
    let d = backend.wait_for(mids.iter(), Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(3));
    let d2 = backend.snapshot();
    assert!(red.stop() && blue.stop(), "{ctx}: clean exit");
    let stored = stored_inbound(&blue.store);
    let lost: Vec<&String> = mids.iter().filter(|m| d2.distinct(m) == 0).collect();
    let twice: Vec<&String> = mids.iter().filter(|m| d2.distinct(m) > 1).collect();
    let stored_twice = stored.values().filter(|&&n| n > 1).count();
    let unexpected = d2.by_message.keys().filter(|m| !mids.contains(*m)).count();
    eprintln!(
        "crash test ({ctx}): {} accepted, {done_kills} SIGKILLs, {} delivered to the backend, lost {}, delivered twice {}, \
         repeated pushes of one item {}, stored twice on blue {stored_twice}; submitted in {:.1} s, all delivered after {:.1} s",
        mids.len(),
        d2.by_message.len(),
        lost.len(),
        twice.len(),
        d2.repeated_pushes(),
        submitted.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
    );
    let _ = d;
    assert!(lost.is_empty(), "{ctx}: lost {lost:?}");
    assert!(twice.is_empty(), "{ctx}: delivered twice {twice:?}");
    assert_eq!(stored_twice, 0, "{ctx}: stored twice on blue");
    assert_eq!(unexpected, 0, "{ctx}: deliveries nobody submitted");
    assert_eq!(d2.bad_signature, 0);
    assert_eq!(done_kills, kills);
}

/// `POST /api/v1/messages` with an Idempotency-Key (the blocking client of the e2e tests).
fn submit(
    port: u16,
    token: &str,
    sub: &crate::msh::e2e::Submission,
    key: &str,
) -> std::io::Result<(u16, serde_json::Value)> {
    let (ct, body) = crate::msh::e2e::multipart(sub);
    let (st, _, b) = crate::msh::e2e::http_with(
        port,
        "POST",
        "/api/v1/messages",
        token,
        &ct,
        &[("Idempotency-Key", key)],
        &body,
    )?;
    Ok((
        st,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    ))
}
