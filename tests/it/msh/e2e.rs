//! Two real `as4gw serve` processes (red, blue) over HTTPS with the demo certificates, on temp
//! copies of the demo configurations (free ports, temp stores, short test-only retry
//! schedules), driven through the real backend REST API v1 (multipart submissions with the
//! demo bearer tokens, `GET /api/v1/messages/{id}`, payload downloads). No timed assertions:
//! everything polls with generous deadlines.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use as4gw::store::{Direction, Filter, MessageStore, SqliteStore};
use serde_json::{json, Value};

use super::harness::{binary, copy_pmodes, regrep, repo};
use crate::support::as4gw_bin;

/// A port outside the kernel's ephemeral range (32768+ by default), so a gateway restarted
/// after SIGKILL does not find its port taken by some client connection's source port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 600) as u16 * 20;
    loop {
        let p = base + NEXT.fetch_add(1, Ordering::SeqCst) % 12_000;
        let p = if p >= 32_000 { p - 12_000 } else { p };
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A minimal blocking HTTP/1.1 client (one request per connection).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    ct: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    http_with(port, method, path, token, ct, &[], body).map(|(st, _, b)| (st, b))
}

/// Status, response headers (lower-cased names) and body.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// [`http`] with extra request headers; also returns the response head (lower-cased names).
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    ct: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: {ct}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok((status, headers, body))
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut b: &[u8]) -> std::io::Result<Vec<u8>> {
    let bad = || std::io::Error::other("bad chunked body");
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size_hex, 16).map_err(|_| bad())?;
        b = &b[eol + 2..];
        if n == 0 {
            return Ok(out);
        }
        if b.len() < n + 2 {
            return Err(bad());
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

/// Percent-encodes a path segment (everything outside `A-Z a-z 0-9 - . _ ~ @`).
pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-._~@".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

/// A submission: the `metadata` JSON and the payload parts (part name, MIME type, bytes).
pub struct Submission {
    pub meta: Value,
    pub parts: Vec<(String, String, Vec<u8>)>,
}

/// `multipart/form-data` body of a submission: `metadata` first, then one part per payload.
/// Returns the Content-Type (with the boundary) and the body.
pub fn multipart(sub: &Submission) -> (String, Vec<u8>) {
    let boundary = format!("as4gw-test-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&serde_json::to_vec(&sub.meta).expect("json"));
    body.extend_from_slice(b"\r\n");
    for (name, mt, data) in &sub.parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: {mt}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub struct Gateway {
    pub name: &'static str,
    pub config: PathBuf,
    pub api: u16,
    pub store: PathBuf,
    pub token: &'static str,
    log: PathBuf,
    lease_secs: u64,
    child: Option<Child>,
    /// Command the gateway is started under (e.g. `unshare -m sh -c …`), the binary and its
    /// arguments appended; empty = run the binary directly.
    pub prefix: Vec<String>,
    /// Extra `serve` arguments (hidden test flags such as `--response-timeout-secs`).
    pub extra_args: Vec<String>,
}

impl Gateway {
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let mut cmd = match self.prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(as4gw_bin());
                c
            }
            None => Command::new(as4gw_bin()),
        };
        let child = cmd
            .args(["serve", "--config"])
            .arg(&self.config)
            .args([
                "--lease-secs",
                &self.lease_secs.to_string(),
                "--poll-ms",
                "200",
            ])
            .args(&self.extra_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn as4gw serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, _)) = http(
                self.api,
                "GET",
                "/api/v1/health",
                self.token,
                "text/plain",
                b"",
            ) {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "{} exited at start: {st}; log {}:\n{}",
                        self.name,
                        self.log.display(),
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
            assert!(Instant::now() < deadline, "{} did not come up", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Process id while running (the prefix execs into the gateway, so it is the gateway's).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (false once it exited on its own).
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The log file (stderr of every start).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the graceful exit; returns whether it exited with success.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `POST /api/v1/messages` (multipart); the status and the JSON answer.
    pub fn submit(&self, sub: &Submission, idem: Option<&str>) -> std::io::Result<(u16, Value)> {
        let (ct, body) = multipart(sub);
        let headers: Vec<(&str, &str)> = idem.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        let (st, _, b) = http_with(
            self.api,
            "POST",
            "/api/v1/messages",
            self.token,
            &ct,
            &headers,
            &body,
        )?;
        Ok((st, serde_json::from_slice(&b).unwrap_or(Value::Null)))
    }

    /// `GET /api/v1/messages/{id}?direction=…` (`OUT` / `IN`); `None` unless 200.
    pub fn message(&self, dir: &str, mid: &str) -> Option<Value> {
        match http(
            self.api,
            "GET",
            &format!("/api/v1/messages/{}?direction={dir}", pct(mid)),
            self.token,
            "text/plain",
            b"",
        ) {
            Ok((200, b)) => serde_json::from_slice(&b).ok(),
            _ => None,
        }
    }

    /// `GET /api/v1/messages/{id}/payloads/{name}?direction=…`: the payload bytes.
    pub fn payload(&self, dir: &str, mid: &str, name: &str) -> Vec<u8> {
        let (st, b) = http(
            self.api,
            "GET",
            &format!(
                "/api/v1/messages/{}/payloads/{}?direction={dir}",
                pct(mid),
                pct(name)
            ),
            self.token,
            "text/plain",
            b"",
        )
        .expect("payload");
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
        b
    }

    /// Polls until the message's state satisfies `done`; returns the last view.
    pub fn wait_state(
        &self,
        dir: &str,
        mid: &str,
        deadline: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + deadline;
        loop {
            if let Some(v) = self.message(dir, mid) {
                if done(&v) {
                    return v;
                }
            }
            assert!(
                Instant::now() < end,
                "{}: {dir} {mid} did not reach the expected state: {:?}",
                self.name,
                self.message(dir, mid)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Red and blue configurations in `dir` (not started).
pub fn pair(dir: &Path, resends: u32, interval: &str, lease_secs: u64) -> (Gateway, Gateway) {
    let (red_as4, blue_as4, red_api, blue_api) =
        (free_port(), free_port(), free_port(), free_port());
    let red_url = format!("https://127.0.0.1:{red_as4}/as4");
    let blue_url = format!("https://127.0.0.1:{blue_as4}/as4");
    let pm = dir.join("pmodes");
    copy_pmodes(&pm, &red_url, &blue_url, resends, interval);
    let mk = |name: &'static str,
              file: &str,
              as4: u16,
              api: u16,
              demo_as4: &str,
              demo_api: &str,
              demo_webhook: &str,
              token: &'static str| {
        let text = std::fs::read_to_string(repo().join(file))
            .expect("config")
            .replace("\"certs/", &format!("\"{}/certs/", repo().display()))
            .replace(
                "pmodes = \"pmodes\"",
                &format!("pmodes = \"{}\"", pm.display()),
            )
            .replace(demo_as4, &format!("https://127.0.0.1:{as4}/as4"))
            .replace(demo_api, &format!("http://127.0.0.1:{api}"))
            .replace(
                &format!("path = \"data/{name}\""),
                &format!("path = \"{}\"", dir.join(name).display()),
            )
            // Nothing listens there (the port was free and is closed again): pushes fail
            // fast and inbound messages stay RECEIVED until the test acknowledges them.
            .replace(
                demo_webhook,
                &format!("http://127.0.0.1:{}/as4gw/inbound", free_port()),
            );
        assert!(!text.contains(demo_webhook), "webhook not replaced");
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, text).expect("write config");
        Gateway {
            name,
            config,
            api,
            store: dir.join(name),
            token,
            log: dir.join(format!("{name}.log")),
            lease_secs,
            child: None,
            prefix: Vec::new(),
            extra_args: Vec::new(),
        }
    };
    (
        mk(
            "red",
            "as4gw.toml",
            red_as4,
            red_api,
            "https://127.0.0.1:8443/as4",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8081/as4gw/inbound",
            "red-demo-token",
        ),
        mk(
            "blue",
            "as4gw-blue.toml",
            blue_as4,
            blue_api,
            "https://127.0.0.1:9443/as4",
            "http://127.0.0.1:9080",
            "http://127.0.0.1:9081/as4gw/inbound",
            "blue-demo-token",
        ),
    )
}

/// A submission on `pmode` with the properties its P-Mode wants and `payloads` (part name,
/// MIME type, bytes).
pub fn meta(pmode: &str, action: &str, payloads: &[(&str, &str, Vec<u8>)]) -> Submission {
    let mut props = vec![
        json!({"name": "originalSender", "value": "urn:oots:c1", "type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"}),
        json!({"name": "finalRecipient", "value": "urn:oots:c4", "type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"}),
    ];
    if pmode.contains("-v2-") {
        props.push(json!({"name": "ExchangeId", "value": uuid::Uuid::new_v4().to_string()}));
        props.push(json!({"name": "SpecificationId", "value": "oots-edm:v2.0"}));
    }
    Submission {
        meta: json!({
            "pmode": pmode,
            "action": action,
            "properties": props,
            "payloads": payloads.iter().map(|(n, t, _)| json!({"part": n, "mimeType": t})).collect::<Vec<_>>(),
        }),
        parts: payloads
            .iter()
            .map(|(n, t, b)| (n.to_string(), t.to_string(), b.clone()))
            .collect(),
    }
}

fn acked(v: &Value) -> bool {
    v["state"] == "ACKNOWLEDGED" || v["state"] == "FAILED"
}

#[test]
fn two_processes_exchange_both_ways_in_both_suites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut red, mut blue) = pair(dir.path(), 5, "1s", 30);
    red.start();
    blue.start();
    let cases = [
        (true, "oots-red-blue", "ExecuteQueryRequest"),
        (true, "oots-v2-red-blue", "ExecuteQueryResponse"),
        (false, "oots-blue-red", "ExceptionResponse"),
        (false, "oots-v2-blue-red", "ExecuteQueryRequest"),
    ];
    for (i, (red_sends, pmode, action)) in cases.into_iter().enumerate() {
        let (tx, rx) = if red_sends {
            (&red, &blue)
        } else {
            (&blue, &red)
        };
        // Two payloads (a compressed leg and an uncompressed one per suite), and one case with a
        // single payload: the acceptance asks for one and several, compressed and not.
        let mut payloads = vec![("doc", "application/x-ebrs+xml", regrep(20 + i))];
        if i != 3 {
            payloads.push(("evidence", "application/pdf", binary(100_000 + i, i as u8)));
        }
        let (st, res) = tx
            .submit(&meta(pmode, action, &payloads), None)
            .expect("submit");
        assert_eq!(st, 202, "{res}");
        let mid = res["messageId"].as_str().expect("mid").to_string();
        let v = tx.wait_state("OUT", &mid, Duration::from_secs(120), acked);
        assert_eq!(v["state"], "ACKNOWLEDGED", "{pmode}: {v}");
        assert_eq!(v["hasReceipt"], true, "{v}");
        let got = rx.message("IN", &mid).expect("received");
        assert_eq!(got["state"], "RECEIVED", "{got}");
        assert_eq!(got["pmodeId"], pmode);
        assert_eq!(
            got["payloads"].as_array().map(Vec::len),
            Some(payloads.len()),
            "{got}"
        );
        for (n, (name, mt, bytes)) in payloads.iter().enumerate() {
            assert_eq!(got["payloads"][n]["name"], *name, "{got}");
            assert_eq!(
                &rx.payload("IN", &mid, name),
                bytes,
                "{pmode} payload {name}"
            );
            assert_eq!(got["payloads"][n]["mimeType"], *mt);
        }
    }
    assert!(red.stop(), "red exits cleanly on SIGTERM");
    assert!(blue.stop(), "blue exits cleanly on SIGTERM");
}

fn inbound_count(store: &Path, mid: &str) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let s = SqliteStore::open(store).await.expect("open store");
        let mut n = 0;
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
            n += page.items.iter().filter(|m| m.message_id == mid).count();
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
fn receiver_down_when_sent_then_started_gets_it_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut red, mut blue) = pair(dir.path(), 60, "1s", 30);
    red.start();
    let (st, res) = red
        .submit(
            &meta(
                "oots-red-blue",
                "ExecuteQueryRequest",
                &[("doc", "application/x-ebrs+xml", regrep(5))],
            ),
            None,
        )
        .expect("submit");
    assert_eq!(st, 202);
    let mid = res["messageId"].as_str().expect("mid").to_string();
    let v = red.wait_state("OUT", &mid, Duration::from_secs(60), |v| {
        v["state"] == "WAITING_FOR_RETRY"
    });
    assert_eq!(v["lastCode"], "EBMS:0005");
    blue.start();
    let v = red.wait_state("OUT", &mid, Duration::from_secs(120), acked);
    assert_eq!(v["state"], "ACKNOWLEDGED", "{v}");
    assert!(v["attempts"].as_u64().expect("attempts") >= 2);
    assert!(red.stop() && blue.stop());
    assert_eq!(inbound_count(&blue.store, &mid), 1);
}

#[test]
fn receiver_down_for_good_fails_with_missing_receipt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut red, _blue) = pair(dir.path(), 2, "1s", 30);
    red.start();
    let (st, res) = red
        .submit(
            &meta(
                "oots-v2-red-blue",
                "ExecuteQueryRequest",
                &[("doc", "application/x-ebrs+xml", regrep(5))],
            ),
            None,
        )
        .expect("submit");
    assert_eq!(st, 202);
    let mid = res["messageId"].as_str().expect("mid").to_string();
    let v = red.wait_state("OUT", &mid, Duration::from_secs(120), |v| {
        v["state"] == "FAILED"
    });
    assert_eq!(v["lastCode"], "EBMS:0301", "{v}");
    assert_eq!(
        v["attempts"], 3,
        "first send + 2 resends (test-only schedule)"
    );
    assert!(red.stop());
}

/// Messages in the crash test (env `AS4GW_CRASH_MESSAGES` overrides, e.g. for slow CI).
fn crash_messages() -> usize {
    std::env::var("AS4GW_CRASH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

#[test]
fn crash_kill9_both_gateways_loses_nothing_and_duplicates_nothing() {
    let total = crash_messages();
    let dir = tempfile::tempdir().expect("tempdir");
    // Long retry budget, short lease: a killed sender's messages are taken over 3 s later.
    let (mut red, mut blue) = pair(dir.path(), 1000, "1s", 3);
    red.start();
    blue.start();
    // Kill after this many accepted submissions (counted, not timed), alternating red / blue.
    let every = (total / 7).max(1);
    let mut kills = 0u32;
    let mut accepted: Vec<String> = Vec::new();
    let mut i = 0usize;
    while accepted.len() < total {
        let key = format!("crash-{i}");
        let m = meta(
            if i.is_multiple_of(2) {
                "oots-red-blue"
            } else {
                "oots-v2-red-blue"
            },
            "ExecuteQueryRequest",
            &[("doc", "application/x-ebrs+xml", regrep(i % 7 + 1))],
        );
        // Retry the REST call with the same Idempotency-Key until it is answered 202.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match red.submit(&m, Some(&key)) {
                Ok((202, v)) => {
                    accepted.push(v["messageId"].as_str().expect("mid").to_string());
                    break;
                }
                Ok((st, v)) => panic!("submission refused: {st} {v}"),
                Err(_) => {
                    assert!(Instant::now() < deadline, "red never answered");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        i += 1;
        if accepted.len().is_multiple_of(every) && accepted.len() < total {
            let g = if kills.is_multiple_of(2) {
                &mut red
            } else {
                &mut blue
            };
            g.kill9();
            kills += 1;
            g.start();
        }
    }
    // Same idempotency key → same message, counted once.
    accepted.dedup();
    let unique: std::collections::BTreeSet<&String> = accepted.iter().collect();
    assert_eq!(
        unique.len(),
        accepted.len(),
        "idempotency keys gave distinct ids"
    );
    // Every accepted submission ends ACKNOWLEDGED on the sender.
    let end = Instant::now() + Duration::from_secs(900);
    let mut pending: Vec<&String> = accepted.iter().collect();
    while !pending.is_empty() {
        pending.retain(|mid| {
            red.message("OUT", mid)
                .map(|v| {
                    assert_ne!(v["state"], "FAILED", "{v}");
                    v["state"] != "ACKNOWLEDGED"
                })
                .unwrap_or(true)
        });
        assert!(
            Instant::now() < end,
            "{} messages not acknowledged",
            pending.len()
        );
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(red.stop() && blue.stop());
    // Received exactly once each on blue (nothing stored twice, nothing lost).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let ids = rt.block_on(async {
        let s = SqliteStore::open(&blue.store).await.expect("open store");
        let mut ids = Vec::new();
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
            ids.extend(page.items.into_iter().map(|m| m.message_id));
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        s.close().await.expect("close");
        ids
    });
    let mut counts = std::collections::HashMap::new();
    for id in &ids {
        *counts.entry(id.as_str()).or_insert(0usize) += 1;
    }
    let lost = accepted
        .iter()
        .filter(|m| !counts.contains_key(m.as_str()))
        .count();
    let twice = counts.values().filter(|&&n| n > 1).count();
    eprintln!(
        "crash test: {} accepted, {kills} SIGKILLs, {} received, lost {lost}, stored twice {twice}",
        accepted.len(),
        ids.len()
    );
    assert_eq!(lost, 0);
    assert_eq!(twice, 0);
    assert!(kills >= 6, "each gateway killed at least 3 times");
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak RSS (VmHWM) of both processes for one large payload (env `AS4GW_RSS_MB`, default 64),
/// submitted as a multipart part (streamed into the spool by the REST API). Ignored by default: run with
/// `cargo test --release --test it msh::e2e::peak_rss -- --ignored --nocapture`.
#[test]
#[ignore]
fn peak_rss_large_payload() {
    let mb: u64 = std::env::var("AS4GW_RSS_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut red, mut blue) = pair(dir.path(), 5, "1s", 600);
    let big = format!("\"{}GiB\"", 4);
    for f in [&red.config, &blue.config] {
        let t = std::fs::read_to_string(f).expect("cfg");
        let t = t
            .replace(
                "max-message-size = \"64MiB\"",
                &format!("max-message-size = {big}"),
            )
            .replace(
                "max-part-size = \"32MiB\"",
                &format!("max-part-size = {big}"),
            )
            .replace(
                "max-decompressed-size = \"128MiB\"",
                &format!("max-decompressed-size = {big}"),
            );
        std::fs::write(f, t).expect("cfg");
    }
    for e in std::fs::read_dir(dir.path().join("pmodes")).expect("pmodes") {
        let p = e.expect("e").path();
        let t = std::fs::read_to_string(&p).expect("pm").replace(
            "max-part-size = \"32MiB\"",
            &format!("max-part-size = {big}"),
        );
        std::fs::write(&p, t).expect("pm");
    }
    red.start();
    blue.start();
    // An XML payload of `mb` MiB with incompressible content (random hex) so gzip does not hide it.
    let mut data = Vec::with_capacity((mb << 20) as usize + 64);
    data.extend_from_slice(b"<q:QueryRequest xmlns:q=\"urn:x\"><d>");
    let mut x: u64 = 0x9E3779B97F4A7C15;
    while (data.len() as u64) < (mb << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(format!("{x:016x}").as_bytes());
    }
    data.extend_from_slice(b"</d></q:QueryRequest>");
    // Multipart through the REST API: the gateway streams the part into its spool.
    let len = data.len();
    let sub = meta(
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("doc", "application/x-ebrs+xml", data)],
    );
    let size = sub.parts[0].2.len();
    let t0 = std::time::Instant::now();
    let (st, res) = red.submit(&sub, None).expect("submit");
    drop(sub);
    assert_eq!(st, 202, "{res}");
    let mid = res["messageId"].as_str().expect("mid").to_string();
    let v = red.wait_state("OUT", &mid, Duration::from_secs(3600), acked);
    assert_eq!(v["state"], "ACKNOWLEDGED", "{v}");
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{mb} MiB: submit → ACKNOWLEDGED (stored on blue) in {secs:.1} s = {:.1} MB/s",
        len as f64 / 1e6 / secs
    );
    let got = blue.message("IN", &mid).expect("in");
    assert_eq!(got["payloads"][0]["size"], size);
    let pids = (
        red.child.as_ref().expect("red").id(),
        blue.child.as_ref().expect("blue").id(),
    );
    let (r, b) = (vm_hwm_kib(pids.0), vm_hwm_kib(pids.1));
    eprintln!(
        "peak RSS for a {mb} MiB payload: red (sender) {} MiB, blue (receiver) {} MiB",
        r / 1024,
        b / 1024
    );
    assert!(red.stop() && blue.stop());
}
