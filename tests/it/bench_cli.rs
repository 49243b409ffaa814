//! `as4gw bench`: a short run per suite (two real `serve` processes). Checks the JSON shape and
//! that every message was acknowledged at the sender and delivered at the receiver; no timing
//! assertions (shared CI machines).

use std::process::Command;

use serde_json::Value;

use crate::support::as4gw_bin;

fn bench(suite: &str) -> Value {
    let out = Command::new(as4gw_bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "bench",
            "--suite",
            suite,
            "--payload-size",
            "4096",
            "--messages",
            "20",
            "--concurrency",
            "4",
            "--timeout-secs",
            "240",
            "--json",
        ])
        .output()
        .expect("run as4gw bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "as4gw bench {suite} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON object on stdout")
}

fn check(v: &Value, suite: &str) {
    assert_eq!(v["suite"], suite);
    assert_eq!(v["messages"], 20);
    assert_eq!(v["acknowledged"], 20, "{v}");
    assert_eq!(v["delivered"], 20, "{v}");
    assert_eq!(v["failed"], 0, "{v}");
    for k in [
        "msgs_per_sec",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "ceiling_msgs_per_sec",
        "ratio",
        "wire_bytes_per_msg",
        "elapsed_s",
    ] {
        assert!(v[k].is_number(), "{k} missing or not a number: {v}");
    }
    for k in ["peak_rss_mb", "cpu_ms_per_msg", "idle_rss_mb", "startup_ms"] {
        assert!(v[k]["sender"].is_number(), "{k}.sender: {v}");
        assert!(v[k]["receiver"].is_number(), "{k}.receiver: {v}");
    }
    assert!(
        v["ceiling_msgs_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
        "{v}"
    );
    assert!(v["machine"]["nproc"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert!(v["machine"]["loadavg_start"].is_string(), "{v}");
}

#[test]
fn bench_runs_both_suites_and_reports_json() {
    for suite in ["edelivery-1.15", "edelivery-2.0"] {
        let v = bench(suite);
        check(&v, suite);
    }
}
