//! kill -9 test: a child process (this test binary, re-executed) submits records and prints
//! each id only after its future resolved, i.e. after the commit was reported durable. The
//! parent SIGKILLs it mid-stream, reopens the store and checks that every printed id is there
//! with its payload file intact.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use as4gw::store::{MessageStore, NewOutbound, Payload, SqliteStore, State, StoreId};

use super::t;

const DIR_ENV: &str = "AS4GW_STORE_CRASH_DIR";
const RUN_ENV: &str = "AS4GW_STORE_CRASH_RUN";
const KILLS: u32 = 6;
const WRITERS: u32 = 8;

/// One acknowledged record as printed by the child.
struct Ack {
    id: i64,
    message_id: String,
    sha256: String,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut it = line.strip_prefix("ACK ")?.split(' ');
    let id = it.next()?.parse().ok()?;
    let message_id = it.next()?.to_string();
    let sha256 = it.next()?.to_string();
    Some(Ack {
        id,
        message_id,
        sha256,
    })
}

/// Deterministic pseudo-random payload of 1..=16 KiB.
fn payload(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = 1 + (x % 16_384) as usize;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// The child: does nothing unless started by the parent test with the environment set.
#[test]
fn child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let run: u64 = std::env::var(RUN_ENV)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = SqliteStore::open(&dir).await.expect("child opens store");
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..u64::from(WRITERS) {
            let store = store.clone();
            tasks.spawn(async move {
                for i in 0u64.. {
                    let message_id = format!("r{run}-w{w}-{i}@crash");
                    let bytes = payload((run << 40) | (w << 32) | i);
                    let file = store.spool().write_bytes(&bytes).await.expect("spool");
                    let msg = NewOutbound {
                        message_id: message_id.clone(),
                        conversation_id: "crash".into(),
                        pmode_id: "crash".into(),
                        payloads: vec![Payload {
                            part_id: "cid:p".into(),
                            mime_type: "application/octet-stream".into(),
                            file: file.clone(),
                        }],
                        ..Default::default()
                    };
                    let sub = store.submit(t(0), msg).await.expect("submit");
                    // Printed only now: the commit holding this record is durable.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {} {} {}", sub.id.0, message_id, file.sha256_hex())
                        .expect("stdout");
                    out.flush().expect("flush");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
}

#[test]
fn kill_9_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    // `it::store::crash` → `store::crash::child`
    let module = module_path!()
        .split_once("::")
        .map(|(_, m)| m)
        .unwrap_or(module_path!());
    let filter = format!("{module}::child");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut acked: Vec<Ack> = Vec::new();
    for run in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                filter.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, dir.path())
            .env(RUN_ENV, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a varying number of acknowledgements, so the kill lands at different
        // points of the write/commit cycle. Counting lines, not time: no timing assumption.
        let target = 40 + 37 * run as usize;
        let mut this_run = 0;
        for line in lines.by_ref() {
            let line = line.expect("read child stdout");
            if let Some(a) = parse_ack(&line) {
                acked.push(a);
                this_run += 1;
                if this_run >= target {
                    break;
                }
            }
        }
        child.kill().expect("SIGKILL child"); // SIGKILL on Unix
                                              // Lines already written before the kill were acknowledged too.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(a) = parse_ack(&line) {
                acked.push(a);
                this_run += 1;
            }
        }
        child.wait().expect("reap child");
        assert!(
            this_run >= target,
            "run {run}: child stopped by itself after {this_run} acks"
        );

        // Reopen (WAL recovery) and check everything acknowledged so far.
        let lost = rt.block_on(async {
            let store = SqliteStore::open(dir.path())
                .await
                .expect("reopen after kill");
            let mut lost = Vec::new();
            for a in &acked {
                let rec = store.get(StoreId(a.id)).await.expect("get");
                let ok = match &rec {
                    Some(r) => {
                        r.message_id == a.message_id
                            && r.state == State::Submitted
                            && r.payloads.len() == 1
                            && r.payloads[0].file.sha256_hex() == a.sha256
                            && store
                                .spool()
                                .verify(&r.payloads[0].file)
                                .await
                                .expect("verify")
                    }
                    None => false,
                };
                if !ok {
                    lost.push(a.id);
                }
            }
            store.close().await.expect("close");
            lost
        });
        assert!(
            lost.is_empty(),
            "run {run}: acknowledged but lost or damaged: {lost:?}"
        );
    }
    let mut ids: Vec<i64> = acked.iter().map(|a| a.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), acked.len(), "store ids are unique");
    eprintln!(
        "crash test: {KILLS} kills, {} records acknowledged, 0 lost",
        acked.len()
    );
}
