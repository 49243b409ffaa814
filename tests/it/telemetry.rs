//! Observability and loud failures, against real `as4gw serve` processes (each process has its
//! own metrics, so counts are exact): `GET /metrics` after traffic between red and blue over
//! HTTPS, JSON logs whose lines about a message carry its ids, and one test per loud failure
//! (retries exhausted, webhook failing, certificate expiring, message stuck), each asserting
//! the log event, the metric and the operator notification received by a local server.
//! No timed assertions: polling with generous deadlines only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::msh::e2e::{http, meta, pair, Gateway};
use crate::support::as4gw_bin;

const PMODE: &str = "oots-red-blue";
/// Not an OOTS request (those are judged by the receiving gateway): plain delivery.
const ACTION: &str = "ExecuteQueryResponse";
const SCRAPE_TOKEN: &str = "prometheus-scrape-token";

/// A running `as4gw serve` with JSON logs in a file; killed when dropped.
struct Proc {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn start(g: &Gateway, dir: &Path, rust_log: &str) -> Proc {
        let log = dir.join(format!("{}.json.log", g.name));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(as4gw_bin())
            .args(["serve", "--config"])
            .arg(&g.config)
            .args(["--poll-ms", "200", "--log-format", "json"])
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn as4gw serve");
        let mut p = Proc {
            name: g.name,
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, _)) = http(g.api, "GET", "/api/v1/health", g.token, "text/plain", b"") {
                return p;
            }
            if let Some(Ok(Some(st))) = p.child.as_mut().map(Child::try_wait) {
                panic!("{} exited at start: {st}\n{}", p.name, p.log_text());
            }
            assert!(Instant::now() < deadline, "{} did not come up", p.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every log line as JSON (panics on a line that is not JSON).
    fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: log line is not JSON ({e}): {l}", self.name))
            })
            .collect()
    }

    /// SIGTERM and wait (the log is complete afterwards).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !matches!(c.try_wait(), Ok(Some(_))) {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Appends TOML to a gateway's configuration.
fn configure(g: &Gateway, extra: &str) {
    let mut text = std::fs::read_to_string(&g.config).expect("config");
    text.push('\n');
    text.push_str(extra);
    text.push('\n');
    std::fs::write(&g.config, text).expect("write config");
}

/// A local HTTP server collecting the JSON bodies POSTed to it (the operator's endpoint).
struct AlertSink {
    port: u16,
    got: Arc<Mutex<Vec<Value>>>,
}

impl AlertSink {
    fn start() -> AlertSink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let g = Arc::clone(&g);
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().expect("clone"));
                    let mut len = 0usize;
                    let mut signature = None;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            if k.eq_ignore_ascii_case("x-as4gw-signature") {
                                signature = Some(v.trim().to_string());
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(mut v) = serde_json::from_slice::<Value>(&body) {
                        // Kept beside the body for the signature check.
                        v["_signature"] = signature.map_or(Value::Null, Value::String);
                        v["_body"] = Value::String(String::from_utf8_lossy(&body).into_owned());
                        g.lock().expect("lock").push(v);
                    }
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                });
            }
        });
        AlertSink { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }

    /// Waits for a notification of `kind` that satisfies `ok`.
    fn wait(&self, kind: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(v) = self
                .got
                .lock()
                .expect("lock")
                .iter()
                .find(|v| v["kind"] == kind && ok(v))
            {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} notification; got {:?}",
                self.got.lock().expect("lock")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `GET /metrics` with a bearer token (or none): status and body.
fn scrape(g: &Gateway, token: &str) -> (u16, String) {
    let (st, b) = http(g.api, "GET", "/metrics", token, "text/plain", b"").expect("GET /metrics");
    (st, String::from_utf8_lossy(&b).into_owned())
}

/// The value of the sample `name{…}` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        let (n, rest) = match head.find('{') {
            Some(i) => (&head[..i], &head[i..]),
            None => (head, ""),
        };
        if n != name {
            return None;
        }
        labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.parse().ok())?
    })
}

fn must(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{text}"))
}

/// Polls `/metrics` until `ok` holds for the exposition.
fn wait_metrics(g: &Gateway, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (st, text) = scrape(g, g.token);
        assert_eq!(st, 200, "{text}");
        if ok(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {what} never held:\n{text}",
            g.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn payload() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![(
        "doc",
        "application/x-ebrs+xml",
        b"<?xml version=\"1.0\"?><query:QueryResponse xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\"/>".to_vec(),
    )]
}

fn submit(g: &Gateway) -> String {
    let (st, res) = g
        .submit(&meta(PMODE, ACTION, &payload()), None)
        .expect("submit");
    assert_eq!(st, 202, "{res}");
    res["messageId"].as_str().expect("messageId").to_string()
}

fn ack(g: &Gateway, mid: &str) {
    let (st, b) = http(
        g.api,
        "POST",
        &format!("/api/v1/messages/{}/ack", crate::msh::e2e::pct(mid)),
        g.token,
        "application/json",
        b"",
    )
    .expect("ack");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
}

/// The ids a log line carries: its own fields merged with those of its spans.
fn line_ids(line: &Value) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for s in line["spans"].as_array().into_iter().flatten() {
        if let Some(o) = s.as_object() {
            m.extend(o.clone());
        }
    }
    if let Some(o) = line["span"].as_object() {
        m.extend(o.clone());
    }
    m
}

/// Log lines mentioning `mid` anywhere.
fn lines_about<'a>(lines: &'a [Value], mid: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l.to_string().contains(mid))
        .collect()
}

/// Lines of an alert event (`alert = kind`) that name `mid` in `message_ids`.
fn alert_lines<'a>(lines: &'a [Value], kind: &str, mid: Option<&str>) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["fields"]["alert"] == kind)
        .filter(|l| {
            mid.is_none_or(|m| {
                l["fields"]["message_ids"]
                    .as_str()
                    .is_some_and(|s| s.contains(m))
            })
        })
        .collect()
}

fn wait_log(p: &Proc, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = p.log_lines();
        if ok(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no log line for {what}:\n{}",
            p.name,
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_families_after_traffic_between_two_gateways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (red, blue) = pair(dir.path(), 2, "1s", 30);
    let digest = crate::backend::sha256_hex(SCRAPE_TOKEN.as_bytes());
    configure(&red, &format!("[metrics]\ntoken-sha256 = \"{digest}\""));
    configure(&blue, "[metrics]\npublic = true");
    let _red_p = Proc::start(&red, dir.path(), "info");
    let _blue_p = Proc::start(&blue, dir.path(), "info");

    // Access: red needs a token (a backend's or the scrape-only one), blue is public.
    assert_eq!(scrape(&red, "").0, 401);
    assert_eq!(scrape(&red, "wrong-token").0, 401);
    assert_eq!(scrape(&red, SCRAPE_TOKEN).0, 200);
    let (st, text) = scrape(&blue, "");
    assert_eq!(st, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text: {text}");

    const N: usize = 3;
    let mids: Vec<String> = (0..N).map(|_| submit(&red)).collect();
    for mid in &mids {
        let v = red.wait_state("OUT", mid, Duration::from_secs(120), |v| {
            v["state"] == "ACKNOWLEDGED" || v["state"] == "FAILED"
        });
        assert_eq!(v["state"], "ACKNOWLEDGED", "{v}");
        assert!(blue.message("IN", mid).is_some(), "{mid} not on blue");
    }
    ack(&blue, &mids[0]);

    let n = N as f64;
    let red_m = wait_metrics(&red, "3 ACKNOWLEDGED", |t| {
        sample(
            t,
            "as4gw_messages_total",
            &[("direction", "OUT"), ("state", "ACKNOWLEDGED")],
        ) == Some(n)
    });
    for (state, want) in [("SUBMITTED", n), ("SENDING", n), ("ACKNOWLEDGED", n)] {
        assert_eq!(
            must(
                &red_m,
                "as4gw_messages_total",
                &[("direction", "OUT"), ("state", state)]
            ),
            want,
            "{state}"
        );
    }
    assert_eq!(must(&red_m, "as4gw_send_attempts_total", &[]), n);
    assert_eq!(must(&red_m, "as4gw_send_retries_total", &[]), 0.0);
    assert_eq!(must(&red_m, "as4gw_retries_exhausted_total", &[]), 0.0);
    assert_eq!(
        must(
            &red_m,
            "as4gw_messages_stored",
            &[("direction", "OUT"), ("state", "ACKNOWLEDGED")]
        ),
        n
    );
    assert_eq!(
        must(&red_m, "as4gw_queue_depth", &[("direction", "OUT")]),
        0.0
    );
    assert_eq!(
        must(
            &red_m,
            "as4gw_queue_oldest_age_seconds",
            &[("direction", "OUT")]
        ),
        0.0
    );
    for stage in ["submit", "sign_encrypt", "send", "receipt"] {
        assert_eq!(
            must(&red_m, "as4gw_stage_seconds_count", &[("stage", stage)]),
            n,
            "stage {stage}"
        );
        assert!(must(&red_m, "as4gw_stage_seconds_sum", &[("stage", stage)]) > 0.0);
    }
    assert_eq!(
        must(
            &red_m,
            "as4gw_end_to_end_seconds_count",
            &[("direction", "OUT")]
        ),
        n
    );
    let e2e = must(
        &red_m,
        "as4gw_end_to_end_seconds_sum",
        &[("direction", "OUT")],
    );
    assert!(e2e > 0.0 && e2e < 3.0 * 120.0, "{e2e}");
    let bytes = must(&red_m, "as4gw_store_bytes", &[]);
    assert!(bytes > 4096.0, "store bytes {bytes}");
    // The demo certificates: TLS, both key sets, anchors and the P-Modes' partner certificates.
    for cert in [
        "own/tls",
        "own/edelivery-1_15/signing",
        "own/edelivery-2_0/encryption",
        "anchor/0",
    ] {
        let days = must(&red_m, "as4gw_certificate_expiry_days", &[("cert", cert)]);
        assert!(days > 30.0, "{cert}: {days}");
    }
    let partner = must(
        &red_m,
        "as4gw_certificate_expiry_days",
        &[("cert", "pmode/oots-red-blue/responder/encryption")],
    );
    assert!(partner > 30.0, "{partner}");
    assert_eq!(
        sample(&red_m, "as4gw_failures_total", &[("direction", "OUT")]),
        None,
        "no failure on the happy path"
    );

    // Blue: received three, one acknowledged (DELIVERED); its backend's webhook port is closed.
    let blue_m = wait_metrics(&blue, "a failed webhook push", |t| {
        sample(t, "as4gw_webhook_failures_total", &[("backend", "oots")]).is_some_and(|v| v >= 1.0)
    });
    assert_eq!(
        must(
            &blue_m,
            "as4gw_messages_total",
            &[("direction", "IN"), ("state", "RECEIVED")]
        ),
        n
    );
    assert_eq!(
        must(
            &blue_m,
            "as4gw_messages_total",
            &[("direction", "IN"), ("state", "DELIVERED")]
        ),
        1.0
    );
    for stage in ["receive", "verify_decrypt", "store"] {
        assert_eq!(
            must(&blue_m, "as4gw_stage_seconds_count", &[("stage", stage)]),
            n,
            "stage {stage}"
        );
    }
    assert!(
        must(
            &blue_m,
            "as4gw_stage_seconds_count",
            &[("stage", "webhook_push")]
        ) >= 1.0
    );
    assert_eq!(
        must(&blue_m, "as4gw_queue_depth", &[("direction", "IN")]),
        n - 1.0
    );
    assert!(
        must(
            &blue_m,
            "as4gw_queue_oldest_age_seconds",
            &[("direction", "IN")]
        ) > 0.0
    );
    assert_eq!(
        must(
            &blue_m,
            "as4gw_messages_stored",
            &[("direction", "IN"), ("state", "RECEIVED")]
        ),
        n - 1.0
    );
    assert_eq!(
        must(
            &blue_m,
            "as4gw_end_to_end_seconds_count",
            &[("direction", "IN")]
        ),
        1.0
    );
    assert!(
        must(
            &blue_m,
            "as4gw_webhook_consecutive_failures",
            &[("backend", "oots")]
        ) >= 1.0
    );
    assert!(must(&blue_m, "as4gw_store_bytes", &[]) > 4096.0);
}

#[test]
fn json_log_lines_about_a_message_carry_its_ids_and_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (red, blue) = pair(dir.path(), 2, "1s", 30);
    let filter = "info,as4gw=debug";
    let mut red_p = Proc::start(&red, dir.path(), filter);
    let mut blue_p = Proc::start(&blue, dir.path(), filter);
    let mid = submit(&red);
    let v = red.wait_state("OUT", &mid, Duration::from_secs(120), |v| {
        v["state"] == "ACKNOWLEDGED" || v["state"] == "FAILED"
    });
    assert_eq!(v["state"], "ACKNOWLEDGED", "{v}");
    let conv = v["conversationId"]
        .as_str()
        .expect("conversationId")
        .to_string();
    // Blue's webhook port is closed: at least one failed push about this message.
    wait_log(&blue_p, "a failed webhook push", |l| {
        l.iter().any(|x| {
            x["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("webhook push failed"))
        })
    });
    ack(&blue, &mid);
    red_p.stop();
    blue_p.stop();

    let mut stages = std::collections::BTreeSet::new();
    let mut about = 0;
    for p in [&red_p, &blue_p] {
        let text = p.log_text();
        for secret in ["red-demo-token", "blue-demo-token", "PRIVATE KEY"] {
            assert!(
                !text.contains(secret),
                "{}: the log shows {secret:?}",
                p.name
            );
        }
        let lines = p.log_lines();
        assert!(!lines.is_empty(), "{}: empty log", p.name);
        for l in lines_about(&lines, &mid) {
            let ids = line_ids(l);
            assert_eq!(
                ids.get("message_id").and_then(Value::as_str),
                Some(mid.as_str()),
                "{}: {l}",
                p.name
            );
            assert_eq!(
                ids.get("conversation_id").and_then(Value::as_str),
                Some(conv.as_str()),
                "{}: {l}",
                p.name
            );
            assert_eq!(
                ids.get("pmode").and_then(Value::as_str),
                Some(PMODE),
                "{}: {l}",
                p.name
            );
            for s in l["spans"].as_array().into_iter().flatten() {
                if let Some(st) = s["stage"].as_str() {
                    stages.insert(st.to_string());
                }
            }
            about += 1;
        }
        // A line inside a message span names the message: no line with half the ids.
        for l in &lines {
            let ids = line_ids(l);
            if ids.contains_key("message_id") {
                for k in ["conversation_id", "pmode"] {
                    assert!(ids.contains_key(k), "{}: {k} missing: {l}", p.name);
                }
            }
        }
    }
    assert!(about >= 6, "only {about} lines about {mid}");
    for st in [
        "submit",
        "send",
        "store",
        "receive",
        "deliver",
        "webhook_push",
    ] {
        assert!(stages.contains(st), "no line in stage {st}: {stages:?}");
    }
}

#[test]
fn retries_exhausted_is_logged_counted_and_notified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = AlertSink::start();
    // One resend a second apart, and blue never started: its AS4 port is closed.
    let (red, _blue) = pair(dir.path(), 1, "1s", 30);
    let key = "operator-alert-hmac-key-0123456789";
    std::fs::write(dir.path().join("alerts.key"), key).expect("key file");
    configure(
        &red,
        &format!(
            "[alerts]\nwebhook = \"{}\"\nwebhook-secret = {{ file = \"alerts.key\" }}",
            sink.url()
        ),
    );
    let red_p = Proc::start(&red, dir.path(), "warn");
    let mid = submit(&red);
    let v = red.wait_state("OUT", &mid, Duration::from_secs(120), |v| {
        v["state"] == "FAILED"
    });
    assert_eq!(v["lastCode"], "EBMS:0301", "{v}");

    let n = sink.wait("retries_exhausted", |a| a["message_ids"][0] == mid.as_str());
    assert_eq!(n["severity"], "error", "{n}");
    assert_eq!(n["gateway"], "red_gw", "{n}");
    assert!(
        n["text"]
            .as_str()
            .is_some_and(|t| t.contains(&mid) && t.contains("retries exhausted")),
        "{n}"
    );
    // Signed like the backend webhooks: the backend's verifier accepts it, a wrong key does not.
    let sig = n["_signature"].as_str().expect("X-As4gw-Signature");
    let body = n["_body"].as_str().expect("body").as_bytes();
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        as4gw::backend::webhook::verify(key.as_bytes(), sig, body, t, 300),
        "{sig}"
    );
    assert!(!as4gw::backend::webhook::verify(
        b"another-key-0123456789",
        sig,
        body,
        t,
        300
    ));

    let lines = wait_log(&red_p, "retries_exhausted", |l| {
        !alert_lines(l, "retries_exhausted", Some(&mid)).is_empty()
    });
    let l = alert_lines(&lines, "retries_exhausted", Some(&mid))[0];
    assert_eq!(l["level"], "ERROR", "{l}");
    assert_eq!(
        line_ids(l).get("message_id").and_then(Value::as_str),
        Some(mid.as_str()),
        "{l}"
    );

    let m = wait_metrics(&red, "retries exhausted", |t| {
        sample(t, "as4gw_retries_exhausted_total", &[]) == Some(1.0)
    });
    assert_eq!(must(&m, "as4gw_send_attempts_total", &[]), 2.0);
    assert_eq!(must(&m, "as4gw_send_retries_total", &[]), 1.0);
    assert_eq!(
        must(
            &m,
            "as4gw_failures_total",
            &[("direction", "OUT"), ("ebms_code", "EBMS:0301")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &m,
            "as4gw_messages_total",
            &[("direction", "OUT"), ("state", "FAILED")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &m,
            "as4gw_alerts_total",
            &[("kind", "retries_exhausted"), ("severity", "error")]
        ),
        1.0
    );
}

#[test]
fn a_webhook_failing_in_a_row_is_logged_counted_and_notified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = AlertSink::start();
    // One resend a second later, then the message FAILs, and its status push goes to the backend's webhook,
    // whose port is closed (pair()); the second failure in a row raises the alert.
    let (red, _blue) = pair(dir.path(), 1, "1s", 30);
    configure(
        &red,
        &format!(
            "[alerts]\nwebhook = \"{}\"\nwebhook-failures = 2",
            sink.url()
        ),
    );
    let red_p = Proc::start(&red, dir.path(), "warn");
    let mid = submit(&red);
    red.wait_state("OUT", &mid, Duration::from_secs(120), |v| {
        v["state"] == "FAILED"
    });

    let n = sink.wait("webhook_failing", |a| a["message_ids"][0] == mid.as_str());
    assert_eq!(n["severity"], "error", "{n}");
    let text = n["text"].as_str().unwrap_or_default();
    assert!(text.contains("backend oots failed 2 times in a row"), "{n}");

    let lines = wait_log(&red_p, "webhook_failing", |l| {
        !alert_lines(l, "webhook_failing", Some(&mid)).is_empty()
    });
    let l = alert_lines(&lines, "webhook_failing", Some(&mid))[0];
    assert_eq!(l["level"], "ERROR", "{l}");
    assert_eq!(
        line_ids(l).get("message_id").and_then(Value::as_str),
        Some(mid.as_str()),
        "{l}"
    );

    let m = wait_metrics(&red, "two webhook failures", |t| {
        sample(t, "as4gw_webhook_failures_total", &[("backend", "oots")]).is_some_and(|v| v >= 2.0)
    });
    assert!(
        must(
            &m,
            "as4gw_webhook_consecutive_failures",
            &[("backend", "oots")]
        ) >= 2.0
    );
    assert_eq!(
        must(
            &m,
            "as4gw_alerts_total",
            &[("kind", "webhook_failing"), ("severity", "error")]
        ),
        1.0,
        "raised once per streak, not per failure"
    );
}

#[test]
fn a_certificate_expiring_in_ten_days_is_logged_counted_and_notified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = AlertSink::start();
    let (red, _blue) = pair(dir.path(), 1, "1s", 30);
    // A TLS certificate made now, valid ten more days.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "red expiring TLS");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(10);
    let cert = params.self_signed(&key).expect("cert");
    let (cert_file, key_file) = (
        dir.path().join("tls-short.pem"),
        dir.path().join("tls-short.key"),
    );
    std::fs::write(&cert_file, cert.pem()).expect("cert file");
    std::fs::write(&key_file, key.serialize_pem()).expect("key file");
    let text = std::fs::read_to_string(&red.config).expect("config");
    let repo = env!("CARGO_MANIFEST_DIR");
    let text = text
        .replace(
            &format!("{repo}/certs/demo/red/tls.cert.pem"),
            &cert_file.display().to_string(),
        )
        .replace(
            &format!("{repo}/certs/demo/red/tls.key.pem"),
            &key_file.display().to_string(),
        );
    assert!(
        text.contains("tls-short.pem") && text.contains("tls-short.key"),
        "{text}"
    );
    std::fs::write(&red.config, text).expect("config");
    configure(
        &red,
        &format!(
            "[alerts]\nwebhook = \"{}\"\ncheck-interval = \"1s\"",
            sink.url()
        ),
    );
    let red_p = Proc::start(&red, dir.path(), "warn");

    let n = sink.wait("certificate_expiring", |a| {
        a["text"].as_str().is_some_and(|t| t.contains("own/tls"))
    });
    assert_eq!(n["severity"], "warning", "{n}");
    assert!(
        n["text"]
            .as_str()
            .is_some_and(|t| t.contains("red expiring TLS") && t.contains("expires in 9 days")),
        "{n}"
    );
    assert_eq!(n["message_ids"], serde_json::json!([]), "{n}");

    let lines = wait_log(&red_p, "certificate_expiring", |l| {
        !alert_lines(l, "certificate_expiring", None).is_empty()
    });
    let l = alert_lines(&lines, "certificate_expiring", None)[0];
    assert_eq!(l["level"], "WARN", "{l}");
    assert!(
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("own/tls")),
        "{l}"
    );

    let (st, m) = scrape(&red, red.token);
    assert_eq!(st, 200);
    let days = must(
        &m,
        "as4gw_certificate_expiry_days",
        &[("cert", "own/tls"), ("subject", "CN=red expiring TLS")],
    );
    assert!(days > 9.0 && days <= 10.0, "{days}");
    // The demo certificates are years away from expiry: only the short one alerts.
    assert_eq!(
        must(
            &m,
            "as4gw_alerts_total",
            &[("kind", "certificate_expiring"), ("severity", "warning")]
        ),
        1.0,
        "raised once, not at every check"
    );
}

#[test]
fn a_message_stuck_in_a_state_is_logged_counted_and_notified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = AlertSink::start();
    // The partner is down and the next resend is an hour away: WAITING_FOR_RETRY for an hour,
    // far beyond the tiny threshold.
    let (red, _blue) = pair(dir.path(), 3, "1h", 30);
    configure(
        &red,
        &format!(
            "[alerts]\nwebhook = \"{}\"\ncheck-interval = \"1s\"\nstuck-after = \"2s\"",
            sink.url()
        ),
    );
    let red_p = Proc::start(&red, dir.path(), "warn");
    let mid = submit(&red);
    red.wait_state("OUT", &mid, Duration::from_secs(120), |v| {
        v["state"] == "WAITING_FOR_RETRY"
    });

    let n = sink.wait("message_stuck", |a| a["message_ids"][0] == mid.as_str());
    assert_eq!(n["severity"], "warning", "{n}");
    assert!(
        n["text"]
            .as_str()
            .is_some_and(|t| t.contains("WAITING_FOR_RETRY")),
        "{n}"
    );

    let lines = wait_log(&red_p, "message_stuck", |l| {
        !alert_lines(l, "message_stuck", Some(&mid)).is_empty()
    });
    let l = alert_lines(&lines, "message_stuck", Some(&mid))[0];
    assert_eq!(l["level"], "WARN", "{l}");
    let ids = line_ids(l);
    assert_eq!(
        ids.get("message_id").and_then(Value::as_str),
        Some(mid.as_str()),
        "{l}"
    );
    assert_eq!(ids.get("pmode").and_then(Value::as_str), Some(PMODE), "{l}");

    let m = wait_metrics(&red, "one stuck message", |t| {
        sample(
            t,
            "as4gw_stuck_messages",
            &[("direction", "OUT"), ("state", "WAITING_FOR_RETRY")],
        ) == Some(1.0)
    });
    assert_eq!(
        must(
            &m,
            "as4gw_alerts_total",
            &[("kind", "message_stuck"), ("severity", "warning")]
        ),
        1.0,
        "raised once per message and state"
    );
    assert_eq!(must(&m, "as4gw_queue_depth", &[("direction", "OUT")]), 1.0);
    assert!(
        must(
            &m,
            "as4gw_queue_oldest_age_seconds",
            &[("direction", "OUT")]
        ) >= 2.0
    );
}
