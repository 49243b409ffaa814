//! Sends every case of `conformance/hostile/cases/` to one `as4gw serve` process (the corpus
//! configuration `conformance/hostile/gateway.toml`) over HTTPS with mutual TLS, and checks per
//! case the HTTP status, the EBMS code of the returned signal (or the receipt, or the bare SOAP
//! Fault), the error detail where the case pins one; afterwards that `/api/v1/health` is still
//! 200, the process is alive, its peak RSS stayed under the bound, and that exactly the
//! accepted MessageIds are stored, each once (replays included).
//!
//! RSS bound: 64 MiB (env `AS4GW_HOSTILE_RSS_MB` to change). An idle gateway is ~18 MB and a
//! 1 GiB payload streams through in ~16 MiB (README, Performance); the largest case body is
//! ~1.2 MiB. A gateway that buffered the 256 MiB gzip bomb, the 1 MiB attribute or the
//! 100,000-deep nesting as a tree in memory would go far above 64 MiB, a bounded one does not.

use std::collections::BTreeMap;
use std::path::PathBuf;

use as4gw::ebms::model::Signal;
use as4gw::ebms::soap::parse_envelope;

use super::gen::{corpus_dir, CaseMeta};
use super::server::{client, post, serve, vm_hwm_kib, BLUE_TOKEN};
use crate::msh::e2e::{http, pct};

pub struct Case {
    pub name: String,
    pub meta: CaseMeta,
    pub body: Vec<u8>,
}

/// Every case, in name order.
pub fn load_cases() -> Vec<Case> {
    let dir: PathBuf = corpus_dir().join("cases");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let t = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("toml");
            let meta: CaseMeta = toml::from_str(&t).unwrap_or_else(|e| panic!("{name}.toml: {e}"));
            let body = std::fs::read(dir.join(format!("{name}.body")))
                .unwrap_or_else(|e| panic!("{name}.body: {e}"));
            Case { name, meta, body }
        })
        .collect()
}

/// What came back: `"receipt"`, the EBMS code, `"soap-fault"` (a Fault without ebMS error) or
/// `"none"` (no SOAP envelope; the body is returned as the detail); plus the error detail.
pub fn outcome(body: &[u8]) -> (String, String) {
    let Ok(env) = parse_envelope(body) else {
        return (
            "none".into(),
            String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        );
    };
    let fault = env.fault.is_some();
    let Some(m) = env.messaging else {
        return (
            if fault {
                "soap-fault"
            } else {
                "other: no eb:Messaging"
            }
            .into(),
            String::new(),
        );
    };
    match m.messaging.signal_messages.first().map(|s| &s.signal) {
        Some(Signal::Receipt(_)) => ("receipt".into(), String::new()),
        Some(Signal::Errors(e)) => (
            e[0].error_code.as_str().to_string(),
            e[0].error_detail.clone().unwrap_or_default(),
        ),
        _ => ("other: no signal".into(), String::new()),
    }
}

/// Inbound messages stored under `mid` (0 or 1: the API answers by MessageId).
fn stored(api: u16, mid: &str) -> u32 {
    match http(
        api,
        "GET",
        &format!("/api/v1/messages/{}?direction=IN", pct(mid)),
        BLUE_TOKEN,
        "text/plain",
        b"",
    ) {
        Ok((200, _)) => 1,
        Ok((404, _)) => 0,
        other => panic!("GET message {mid}: {other:?}"),
    }
}

/// Every inbound MessageId the gateway holds.
fn all_inbound(api: u16) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/messages?direction=IN&limit=500&cursor={}", pct(c)),
            None => "/api/v1/messages?direction=IN&limit=500".to_string(),
        };
        let (st, b) = http(api, "GET", &q, BLUE_TOKEN, "text/plain", b"").expect("list");
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
        let v: serde_json::Value = serde_json::from_slice(&b).expect("json");
        for i in v["items"].as_array().into_iter().flatten() {
            ids.push(i["messageId"].as_str().unwrap_or_default().to_string());
        }
        match v["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

#[test]
fn corpus_against_a_running_gateway() {
    let cases = load_cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let bound_mb: u64 = std::env::var("AS4GW_HOSTILE_RSS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gw = serve(dir.path(), "gateway.toml", "warn", |t| t);
    let idle_kib = vm_hwm_kib(gw.pid());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let c = client(true);
    let url = gw.url();
    let mut rows = Vec::new();
    let mut mismatches = Vec::new();
    for case in &cases {
        let m = &case.meta;
        let got = rt.block_on(post(&c, &url, m.content_type.as_deref(), case.body.clone()));
        let (status, code, detail) = match &got {
            Ok((st, b)) => {
                let (code, detail) = outcome(b);
                (*st, code, detail)
            }
            Err(e) => (0, format!("transport error: {e}"), String::new()),
        };
        let mut why = Vec::new();
        let reset = status == 0 && code.contains("error writing a body");
        if reset && m.allow_upload_reset {
            rows.push(format!("{:<44} closed during upload (allowed)", case.name));
            continue;
        }
        if status != m.expect_status {
            why.push(format!("HTTP {status} (want {})", m.expect_status));
        }
        if code != m.expect {
            why.push(format!("{code} (want {})", m.expect));
        }
        if let Some(d) = &m.expect_detail {
            if !detail.contains(d.as_str()) {
                why.push(format!("detail {detail:?} lacks {d:?}"));
            }
        }
        rows.push(format!(
            "{:<44} {:>3} {:<10} {}",
            case.name,
            status,
            code,
            detail.chars().take(400).collect::<String>()
        ));
        if !why.is_empty() {
            mismatches.push(format!("{:<44} {}", case.name, why.join("; ")));
        }
        // the gateway must survive every single case
        if !gw.alive() {
            mismatches.push(format!("{:<44} the gateway process died", case.name));
            break;
        }
    }
    // delivered counts: per case, and nothing else stored
    let mut expected: BTreeMap<String, u32> = BTreeMap::new();
    for case in &cases {
        if let (Some(mid), Some(n)) = (&case.meta.message_id, case.meta.delivered) {
            let e = expected.entry(mid.clone()).or_insert(0);
            *e = (*e).max(n);
        }
    }
    if gw.alive() {
        for (mid, want) in &expected {
            let got = stored(gw.api, mid);
            if got != *want {
                mismatches.push(format!("{mid:<44} stored {got} times (want {want})"));
            }
        }
        let all = all_inbound(gw.api);
        let accepted: Vec<&String> = expected
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(m, _)| m)
            .collect();
        if all.len() != accepted.len() {
            mismatches.push(format!(
                "inbound store holds {} messages {:?}, want exactly the {} accepted",
                all.len(),
                all,
                accepted.len()
            ));
        }
    }
    let (hst, hbody) = gw.health();
    let peak_kib = vm_hwm_kib(gw.pid());
    eprintln!("{}", rows.join("\n"));
    eprintln!(
        "hostile corpus: {} cases, {} mismatches; health {hst}; VmHWM idle {} KiB, peak {} KiB (bound {bound_mb} MiB)",
        cases.len(),
        mismatches.len(),
        idle_kib,
        peak_kib
    );
    if hst != 200 {
        mismatches.push(format!(
            "health after the corpus: HTTP {hst} {}",
            String::from_utf8_lossy(&hbody)
        ));
    }
    if peak_kib == 0 || peak_kib > bound_mb * 1024 {
        mismatches.push(format!("peak RSS {peak_kib} KiB, bound {bound_mb} MiB"));
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}\n--- gateway log tail ---\n{}",
        mismatches.len(),
        mismatches.join("\n"),
        gw.log_text()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The corpus is what the README promises: enough cases in every category, small on disk.
#[test]
fn corpus_shape() {
    let cases = load_cases();
    let count = |a: &str| cases.iter().filter(|c| c.meta.attack == a).count();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    assert!(count("wrapping") >= 10, "wrapping: {}", count("wrapping"));
    for a in [
        "mime",
        "xml",
        "ebms",
        "security",
        "certificate",
        "compression",
        "size",
        "replay",
    ] {
        assert!(count(a) >= 1, "no {a} case");
    }
    let total: u64 = walk(&corpus_dir());
    assert!(total < 5 * 1024 * 1024, "corpus is {total} bytes on disk");
}

fn walk(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
