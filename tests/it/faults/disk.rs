//! The store's disk full or unwritable. Each gateway runs in a private mount namespace
//! (`unshare -m`) whose store directory is a 16 MiB tmpfs; the test fills it from inside that
//! namespace (`nsenter -t PID -m`), which nothing else on the machine can see.
//!
//! * red's disk full: submissions are refused with 503, an RFC 9457 problem naming the cause
//!   and `Retry-After`; the messages accepted before are kept and sent once space is back;
//! * blue's disk full: blue answers red's pushes with EBMS:0202 (no receipt for what it could
//!   not store, digest §5 "[ED115] §3.3.2"), red retries, and the message is delivered once
//!   when blue has space again;
//! * red's spool read-only (a read-only bind mount): 503 again, then accepted after remount.
//!
//! Needs root (or CAP_SYS_ADMIN) for `unshare -m` and `mount`: without them the test fails
//! and says so (it never skips).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{set_webhook, CountingBackend};
use crate::msh::e2e::{http_with, meta, multipart, pair, Gateway};
use crate::msh::harness::{binary, regrep};

/// Shell script run by `unshare -m sh -c`: mount the tmpfs on the store directory (`$0`),
/// then become the gateway (`$@`), so the gateway's pid is the namespace's.
const MOUNT_THEN_EXEC: &str = "mount -t tmpfs -o size=16m tmpfs \"$0\" && exec \"$@\"";

fn require_namespaces(dir: &std::path::Path) {
    let probe = dir.join("probe");
    std::fs::create_dir_all(&probe).expect("probe dir");
    let out = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o size=1m tmpfs \"$0\" && umount \"$0\"",
        ])
        .arg(&probe)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the disk-full test needs `unshare -m` and `mount -t tmpfs` (root or CAP_SYS_ADMIN); \
             they failed here: {} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            panic!("the disk-full test needs the util-linux `unshare` and `nsenter` tools: {e}")
        }
    }
}

/// Runs `script` with `sh -c` inside the gateway's mount namespace.
fn in_ns(gw: &Gateway, script: &str) -> String {
    let pid = gw.pid().expect("gateway running");
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "sh", "-c", script])
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "{script}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fill(gw: &Gateway) {
    let d = gw.store.display();
    // Big blocks first, then page-sized ones down to the last free page.
    in_ns(
        gw,
        &format!(
            "dd if=/dev/zero of={d}/filler1 bs=1M 2>/dev/null; dd if=/dev/zero of={d}/filler2 bs=4k 2>/dev/null; true"
        ),
    );
    let df = in_ns(gw, &format!("df -k {d} | tail -1"));
    let avail: u64 = df
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .expect("df");
    assert_eq!(avail, 0, "tmpfs full: {df}");
}

fn free(gw: &Gateway) {
    let d = gw.store.display();
    in_ns(gw, &format!("rm -f {d}/filler1 {d}/filler2"));
}

fn submission(i: usize) -> crate::msh::e2e::Submission {
    meta(
        "oots-red-blue",
        "ExecuteQueryResponse",
        &[
            ("doc", "application/x-ebrs+xml", regrep(i + 1)),
            // Submission 40 meets a read-only spool: it must be larger than `[store]
            // inline-max` to need the spool (smaller ones live in the database, issue 8).
            (
                "evidence",
                "application/pdf",
                binary(if i == 40 { 100_000 } else { 20_000 + i }, i as u8),
            ),
        ],
    )
}

/// Submits; returns status, lower-cased headers and the JSON body.
fn submit(gw: &Gateway, i: usize) -> (u16, Vec<(String, String)>, Value) {
    let (ct, body) = multipart(&submission(i));
    let (st, h, b) = http_with(
        gw.api,
        "POST",
        "/api/v1/messages",
        gw.token,
        &ct,
        &[],
        &body,
    )
    .expect("submit");
    (st, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn accepted(gw: &Gateway, i: usize) -> String {
    let (st, _, v) = submit(gw, i);
    assert_eq!(st, 202, "{v}");
    v["messageId"].as_str().expect("mid").to_string()
}

/// A refusal for lack of disk: 503, problem JSON with the cause, Retry-After.
fn assert_refused(gw: &Gateway, i: usize, cause: &str) {
    let (st, h, v) = submit(gw, i);
    assert_eq!(st, 503, "{v}");
    let header = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(header("content-type"), Some("application/problem+json"));
    assert!(
        header("retry-after")
            .and_then(|v| v.parse::<u32>().ok())
            .is_some(),
        "Retry-After: {h:?}"
    );
    assert_eq!(v["type"], "/errors/store-unavailable", "{v}");
    assert_eq!(v["status"], 503);
    let detail = v["detail"].as_str().unwrap_or("");
    eprintln!(
        "refused: 503, Retry-After {:?}: {detail}",
        header("retry-after")
    );
    assert!(
        detail.contains(cause),
        "detail names the cause ({cause}): {v}"
    );
}

fn wait_acked(gw: &Gateway, mids: &[String]) {
    for mid in mids {
        let v = gw.wait_state("OUT", mid, Duration::from_secs(120), |v| {
            v["state"] == "ACKNOWLEDGED" || v["state"] == "FAILED"
        });
        assert_eq!(v["state"], "ACKNOWLEDGED", "{v}");
    }
}

#[test]
fn store_disk_full_or_read_only_refuses_with_503_keeps_everything_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    require_namespaces(dir.path());
    let (mut red, mut blue) = pair(dir.path(), 1000, "1s", 3);
    let backend = CountingBackend::start("blue-demo-token");
    set_webhook(&blue, &backend.url());
    for gw in [&mut red, &mut blue] {
        std::fs::create_dir_all(&gw.store).expect("store dir");
        gw.prefix = vec![
            "unshare".into(),
            "-m".into(),
            "sh".into(),
            "-c".into(),
            MOUNT_THEN_EXEC.into(),
            gw.store.display().to_string(),
        ];
    }
    red.start();
    let mut all: Vec<String> = Vec::new();

    // 1. Red's disk full while blue is down: what was accepted before stays, new work is 503.
    let before: Vec<String> = (0..5).map(|i| accepted(&red, i)).collect();
    for mid in &before {
        red.wait_state("OUT", mid, Duration::from_secs(60), |v| {
            v["state"] == "WAITING_FOR_RETRY"
        });
    }
    fill(&red);
    for i in 10..13 {
        assert_refused(&red, i, "disk is full");
    }
    assert!(red.running(), "red survives a full disk");
    for mid in &before {
        let v = red.message("OUT", mid).expect("still there");
        assert_ne!(v["state"], "FAILED", "{v}");
    }
    blue.start();
    // Blue is up, red's disk still full: whatever red manages, nothing is lost meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    free(&red);
    wait_acked(&red, &before);
    let after = accepted(&red, 20);
    wait_acked(&red, std::slice::from_ref(&after));
    all.extend(before.iter().cloned());
    all.push(after);

    // 2. Blue's disk full: red's pushes are answered EBMS:0202, no receipt, retried.
    fill(&blue);
    let to_full = accepted(&red, 30);
    let v = red.wait_state("OUT", &to_full, Duration::from_secs(60), |v| {
        v["lastCode"] == "EBMS:0202"
    });
    eprintln!(
        "blue full: red's attempt answered {} ({})",
        v["lastCode"], v["lastDetail"]
    );
    assert_eq!(v["hasReceipt"], false, "{v}");
    assert_ne!(v["state"], "ACKNOWLEDGED", "{v}");
    assert!(blue.running(), "blue survives a full disk");
    free(&blue);
    wait_acked(&red, std::slice::from_ref(&to_full));
    all.push(to_full);

    // 3. Red's spool read-only (bind mount remounted ro), then writable again.
    let spool = red.store.join("spool");
    let s = spool.display();
    in_ns(
        &red,
        &format!("mount --bind {s} {s} && mount -o remount,bind,ro {s}"),
    );
    assert_refused(&red, 40, "read-only");
    assert!(red.running(), "red survives a read-only spool");
    in_ns(&red, &format!("umount {s}"));
    let after_ro = accepted(&red, 41);
    wait_acked(&red, std::slice::from_ref(&after_ro));
    all.push(after_ro);

    // Every accepted message delivered exactly once to blue's backend.
    let d = backend.wait_for(all.iter(), Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let d = {
        let later = backend.snapshot();
        assert_eq!(later.by_message.len(), d.by_message.len());
        later
    };
    for mid in &all {
        assert_eq!(
            d.distinct(mid),
            1,
            "{mid} delivered once: {:?}",
            d.by_message.get(mid)
        );
    }
    assert_eq!(
        d.by_message.len(),
        all.len(),
        "nothing delivered that was refused"
    );
    assert_eq!(d.bad_signature, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !(red.running() && blue.running()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(red.stop() && blue.stop(), "clean exit");
    for gw in [&red, &blue] {
        let log = std::fs::read_to_string(gw.log_path()).unwrap_or_default();
        assert!(!log.contains("panicked"), "{}: {log}", gw.name);
    }
}

/// The store's classification of "cannot write" on real errors: ENOSPC from `/dev/full`,
/// SQLITE_FULL from a database at its page limit, SQLITE_READONLY from a read-only
/// connection, and the text of a failed COMMIT; other errors stay internal.
#[test]
fn store_errors_for_full_and_read_only_disks_are_classified_as_unavailable() {
    use std::io::Write;

    use as4gw::store::{StoreError, Unavailable};

    let enospc = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .and_then(|mut f| f.write_all(b"x").and_then(|()| f.flush()))
        .expect_err("/dev/full refuses writes");
    assert_eq!(
        StoreError::Io(enospc).unavailable(),
        Some(Unavailable::DiskFull)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("x.db");
    let c = rusqlite::Connection::open(&db).expect("open");
    c.execute_batch("CREATE TABLE t (b BLOB); PRAGMA max_page_count = 8;")
        .expect("setup");
    let full = (0..100)
        .find_map(|_| c.execute("INSERT INTO t VALUES (zeroblob(4000))", []).err())
        .expect("SQLITE_FULL at the page limit");
    let full_text = full.to_string();
    assert_eq!(
        StoreError::Backend(Box::new(full)).unavailable(),
        Some(Unavailable::DiskFull)
    );
    assert_eq!(
        StoreError::Commit(full_text).unavailable(),
        Some(Unavailable::DiskFull)
    );

    let ro = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open ro");
    let e = ro
        .execute("DELETE FROM t", [])
        .expect_err("read-only connection");
    assert_eq!(
        StoreError::Backend(Box::new(e)).unavailable(),
        Some(Unavailable::ReadOnly)
    );

    assert_eq!(StoreError::Closed.unavailable(), None);
    assert_eq!(StoreError::Conflict("x".into()).unavailable(), None);
    assert_eq!(
        StoreError::Io(std::io::Error::other("boom")).unavailable(),
        None
    );
}
