//! Interop over the wire: a real `as4gw serve` process and a partner access point built on the
//! independent Python library `as4==0.2.0` (`tests/interop/python/partner.py`), both ways, over
//! **HTTPS with mutual TLS** on loopback.
//!
//! * as4gw → Python: a backend submits through the REST API (multipart `POST /api/v1/messages`,
//!   bearer token) on P-Mode `as4py-red-blue`; the MSH pushes it to the partner's HTTPS server,
//!   whose library decrypts and verifies it and answers with its signed receipt; as4gw verifies
//!   that receipt → ACKNOWLEDGED (read through the API).
//! * Python → as4gw: the partner's library builds a message and POSTs it to as4gw's AS4
//!   endpoint; as4gw answers with its signed receipt, which the library verifies; the message
//!   is RECEIVED on as4gw (P-Mode `as4py-blue-red`) and the payload downloaded through the API
//!   is byte for byte what the library compressed.
//!
//! TLS: the partner serves blue's demo TLS certificate and requires a client certificate
//! chaining to the demo CA (as4gw presents red's `[as4.tls]` pair); its client checks as4gw's
//! server certificate against the demo CA and presents blue's TLS certificate.
//!
//! The gateway runs on a temp copy of the demo configuration (`as4gw.toml`): free ports, a temp
//! store, `gateway.pmodes` pointing at a temp copy of `pmodes/interop/*.toml` (absolute
//! certificate paths, the partner's real port), the gateway's own PartyId set to the Peppol-typed
//! `as4gw-red` that those P-Modes use (the library refuses any other PartyId type), the backend
//! `oots` allowed to submit on `as4py-red-blue` and without webhook (it polls).
//!
//! The Python venv is the one of `interop_as4py` (created on first use; a failure fails the
//! test). No timed assertions: everything polls with generous deadlines.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::interop_as4py::{
    demo_path, manifest_dir, sbd, venv, venv_python, DOCUMENT_TYPE, GW_PARTY, INVOICE, ISO6523,
    PY_PARTY, RECIPIENT, SENDER,
};
use crate::support::as4gw_bin;

const PARTNER: &str = "tests/interop/python/partner.py";
const TOKEN: &str = "red-demo-token";
const PEPPOL_AP: &str = "urn:fdc:peppol.eu:2017:identifiers:ap";
const DEADLINE: Duration = Duration::from_secs(180);

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn read_log(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The arguments every partner.py mode takes: blue's message and TLS keys, the demo CA.
fn partner_args(out: &Path) -> Vec<String> {
    [
        ("--party-id", PY_PARTY.to_string()),
        ("--cert", demo_path("blue/rsa.cert.pem")),
        ("--key", demo_path("blue/rsa.key.pem")),
        ("--tls-cert", demo_path("blue/tls.cert.pem")),
        ("--tls-key", demo_path("blue/tls.key.pem")),
        ("--ca", demo_path("ca.cert.pem")),
        ("--out", out.display().to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

fn python() -> Command {
    let mut c = Command::new(venv_python(venv()));
    c.arg(manifest_dir().join(PARTNER));
    c
}

/// The partner's HTTPS server (`partner.py serve`), killed on drop.
struct PartnerServer {
    child: Child,
    port: u16,
    out: PathBuf,
    log: PathBuf,
}

impl PartnerServer {
    fn start(dir: &Path) -> Self {
        let out = dir.join("partner");
        let log = dir.join("partner.log");
        let mut child = python()
            .arg("serve")
            .args(partner_args(&out))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("partner log"))
            .spawn()
            .expect("spawn partner.py serve");
        // Its first stdout line says it listens (or EOF when it died).
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("partner stdout");
        let port = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["listening"].as_u64())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "partner.py serve did not start: {line:?}\n{}",
                    read_log(&log)
                )
            }) as u16;
        PartnerServer {
            child,
            port,
            out,
            log,
        }
    }

    /// Polls `out` until the partner has recorded the exchange of `message_id`.
    fn wait_for(&mut self, message_id: &str) -> (Value, PathBuf) {
        let end = Instant::now() + DEADLINE;
        loop {
            for entry in std::fs::read_dir(&self.out).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("received-") && name.ends_with(".json") {
                    let v: Value = serde_json::from_slice(&std::fs::read(entry.path()).unwrap())
                        .expect("partner record is JSON");
                    if v["message_id"] == message_id || v.get("exception").is_some() {
                        let stem = name.trim_end_matches(".json").to_string();
                        return (v, self.out.join(stem));
                    }
                }
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("partner.py serve exited: {st}\n{}", read_log(&self.log));
            }
            assert!(
                Instant::now() < end,
                "the partner never received {message_id}; partner log:\n{}",
                read_log(&self.log)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for PartnerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `as4gw serve` on a temp copy of the demo configuration with the interop P-Modes.
struct Gateway {
    child: Child,
    as4_url: String,
    api: String,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Gateway {
    /// `partner_port`: where the partner's AS4 server listens (`as4py-red-blue`'s endpoint).
    fn start(dir: &Path, partner_port: u16) -> Self {
        let repo = manifest_dir();
        let (as4_port, api_port) = (free_port(), free_port());
        let as4_url = format!("https://127.0.0.1:{as4_port}/as4");
        let api = format!("http://127.0.0.1:{api_port}");
        let pmodes = dir.join("pmodes");
        std::fs::create_dir_all(&pmodes).expect("pmodes dir");
        let certs = format!("\"{}/certs/", repo.display());
        for id in ["as4py-red-blue", "as4py-blue-red"] {
            let file = repo.join(format!("pmodes/interop/{id}.toml"));
            let text = std::fs::read_to_string(&file).expect("interop P-Mode");
            let new = text
                .replace("\"../../certs/", &certs)
                .replace(
                    "https://127.0.0.1:9444/as4",
                    &format!("https://127.0.0.1:{partner_port}/as4"),
                )
                .replace("https://127.0.0.1:8443/as4", &as4_url);
            assert_ne!(new, text, "{id}: nothing rewritten");
            std::fs::write(pmodes.join(format!("{id}.toml")), new).expect("write P-Mode");
        }
        let demo = std::fs::read_to_string(repo.join("as4gw.toml")).expect("as4gw.toml");
        // Every certificate path made absolute (relative paths resolve against the config).
        let demo = demo.replace("\"certs/", &certs);
        let edits = [
            (
                "pmodes = \"pmodes\"",
                format!("pmodes = \"{}\"", pmodes.display()),
            ),
            (
                "party-id = \"red_gw\"",
                format!("party-id = \"{GW_PARTY}\""),
            ),
            (
                "party-id-type = \"urn:oasis:names:tc:ebcore:partyid-type:unregistered:oots\"",
                format!("party-id-type = \"{PEPPOL_AP}\""),
            ),
            ("https://127.0.0.1:8443/as4", as4_url.clone()),
            ("http://127.0.0.1:8080", api.clone()),
            (
                "path = \"data/red\"",
                format!("path = \"{}\"", dir.join("store").display()),
            ),
            (
                "allowed-pmodes = [",
                "allowed-pmodes = [\"as4py-red-blue\", ".to_string(),
            ),
            (
                "webhook = \"http://127.0.0.1:8081/as4gw/inbound\"",
                String::new(),
            ),
        ];
        let mut config = demo;
        for (from, to) in edits {
            assert!(config.contains(from), "as4gw.toml no longer has {from:?}");
            config = config.replacen(from, &to, 1);
        }
        let config_file = dir.join("red.toml");
        std::fs::write(&config_file, config).expect("write config");
        let log = dir.join("red.log");
        let child = Command::new(as4gw_bin())
            .args(["serve", "--config"])
            .arg(&config_file)
            .args(["--poll-ms", "200"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn as4gw serve");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        let mut gw = Gateway {
            child,
            as4_url,
            api,
            log,
            rt,
            http,
        };
        let end = Instant::now() + DEADLINE;
        loop {
            if let Ok((200, _)) = gw.get("/api/v1/health") {
                return gw;
            }
            if let Ok(Some(st)) = gw.child.try_wait() {
                panic!("as4gw serve exited at start: {st}\n{}", read_log(&gw.log));
            }
            assert!(
                Instant::now() < end,
                "as4gw did not come up:\n{}",
                read_log(&gw.log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str) -> reqwest::Result<(u16, Vec<u8>)> {
        self.rt.block_on(async {
            let r = self
                .http
                .get(format!("{}{path}", self.api))
                .bearer_auth(TOKEN)
                .send()
                .await?;
            let status = r.status().as_u16();
            Ok((status, r.bytes().await?.to_vec()))
        })
    }

    /// `POST /api/v1/messages`: `metadata` (JSON) first, then the payload parts.
    fn submit(&self, metadata: &Value, parts: &[(&str, &str, Vec<u8>)]) -> (u16, Value) {
        self.rt.block_on(async {
            use reqwest::multipart::{Form, Part};
            let mut form = Form::new().part(
                "metadata",
                Part::bytes(serde_json::to_vec(metadata).expect("json"))
                    .mime_str("application/json")
                    .expect("mime"),
            );
            for (name, mime, data) in parts {
                form = form.part(
                    name.to_string(),
                    Part::bytes(data.clone())
                        .file_name(name.to_string())
                        .mime_str(mime)
                        .expect("mime"),
                );
            }
            let r = self
                .http
                .post(format!("{}/api/v1/messages", self.api))
                .bearer_auth(TOKEN)
                .multipart(form)
                .send()
                .await
                .expect("submit");
            let status = r.status().as_u16();
            let body = r.bytes().await.expect("submit answer");
            (
                status,
                serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
            )
        })
    }

    /// `GET /api/v1/messages/{id}?direction=…`, 200 only.
    fn message(&self, id: &str, direction: &str) -> Option<Value> {
        match self.get(&format!("/api/v1/messages/{id}?direction={direction}")) {
            Ok((200, b)) => serde_json::from_slice(&b).ok(),
            _ => None,
        }
    }

    /// Polls the message until its state is one of `states`; panics (with the view and the
    /// log) when it reaches another final state or the deadline passes.
    fn wait_state(&self, id: &str, direction: &str, states: &[&str]) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            let view = self.message(id, direction);
            if let Some(v) = &view {
                let state = v["state"].as_str().unwrap_or_default();
                if states.contains(&state) {
                    return v.clone();
                }
                assert_ne!(state, "FAILED", "{id}: {v:#}\n{}", read_log(&self.log));
            }
            assert!(
                Instant::now() < end,
                "{id} never reached {states:?}: {view:?}\n{}",
                read_log(&self.log)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_subject_cn(record: &Value) -> Option<String> {
    record["tls_client_subject"]
        .as_array()?
        .iter()
        .find(|rdn| rdn[0] == "commonName")
        .and_then(|rdn| rdn[1].as_str())
        .map(str::to_string)
}

/// as4gw → Python over HTTPS: REST submission, push, the library's verdict and receipt, and
/// ACKNOWLEDGED on as4gw.
#[test]
fn as4gw_sends_over_https_python_receives_and_its_receipt_acknowledges() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut partner = PartnerServer::start(dir.path());
    let gw = Gateway::start(dir.path(), partner.port);

    let document = sbd("as4gw-http-instance-1");
    let metadata = json!({
        "pmode": "as4py-red-blue",
        "action": format!("busdox-docid-qns::{DOCUMENT_TYPE}"),
        "properties": [
            {"name": "originalSender", "value": SENDER, "type": ISO6523},
            {"name": "finalRecipient", "value": RECIPIENT, "type": ISO6523},
        ],
        "payloads": [{"part": "invoice", "mimeType": "application/xml"}],
    });
    let (status, answer) = gw.submit(
        &metadata,
        &[("invoice", "application/xml", document.clone())],
    );
    assert_eq!(status, 202, "submission refused: {answer}");
    let mid = answer["messageId"]
        .as_str()
        .unwrap_or_else(|| panic!("no messageId: {answer}"))
        .to_string();

    // The partner: its library decrypted and verified the message.
    let (record, stem) = partner.wait_for(&mid);
    assert_eq!(
        record["ok"], true,
        "the library refuses as4gw's message: {record}"
    );
    assert_eq!(record["state"], "received", "{record}");
    assert_eq!(record["message_id"], mid.as_str());
    assert_eq!(record["from_party"], GW_PARTY);
    assert_eq!(record["sender"], SENDER);
    assert_eq!(record["recipient"], RECIPIENT);
    assert_eq!(
        record["signed_references"].as_array().map(Vec::len),
        Some(3),
        "Messaging, Body, the part: {record}"
    );
    let received = std::fs::read(stem.with_extension("sbd.xml")).expect("partner payload");
    assert_eq!(
        received, document,
        "payload at the partner (decrypted, gunzipped) = what the backend submitted"
    );
    // Mutual TLS: as4gw presented its [as4.tls] certificate to the partner's server.
    assert_eq!(
        tls_subject_cn(&record).as_deref(),
        Some("red tls (as4gw demo)"),
        "{record}"
    );

    // as4gw verified the library's receipt.
    let view = gw.wait_state(&mid, "OUT", &["ACKNOWLEDGED"]);
    assert_eq!(view["pmodeId"], "as4py-red-blue", "{view:#}");
    assert_eq!(view["hasReceipt"], true, "{view:#}");
    let (st, receipt) = gw
        .get(&format!("/api/v1/messages/{mid}/receipt?direction=OUT"))
        .expect("receipt");
    assert_eq!(st, 200);
    let receipt = String::from_utf8(receipt).expect("receipt is UTF-8");
    let signal = std::fs::read(stem.with_extension("signal.xml")).expect("partner signal");
    let signal = String::from_utf8(signal).expect("signal is UTF-8");
    assert!(
        receipt.contains(&format!("RefToMessageId>{mid}<")),
        "receipt names the message: {receipt}"
    );
    assert!(
        receipt.contains("NonRepudiationInformation"),
        "an NRR receipt: {receipt}"
    );
    assert!(
        signal.contains(&format!("RefToMessageId>{mid}<")),
        "the partner's signal: {signal}"
    );
}

/// Python → as4gw over HTTPS: the library's message, as4gw's receipt verified by the library,
/// RECEIVED on as4gw and the payload bytes downloaded through the API.
#[test]
fn python_sends_over_https_as4gw_receives_and_python_verifies_the_receipt() {
    let dir = tempfile::tempdir().expect("tmp");
    // No partner server needed in this direction; its endpoint is never called.
    let gw = Gateway::start(dir.path(), free_port());
    let out = dir.path().join("send");
    std::fs::create_dir_all(&out).expect("out");
    let invoice = out.join("invoice.xml");
    std::fs::write(&invoice, INVOICE).expect("invoice");
    let run = python()
        .arg("send")
        .args(partner_args(&out))
        .args(["--url", &gw.as4_url])
        .args(["--to-party-id", GW_PARTY])
        .args(["--to-cert", &demo_path("red/rsa.cert.pem")])
        .args(["--sender", SENDER, "--recipient", RECIPIENT])
        .args(["--instance-id", "as4py-http-instance-1"])
        .arg("--payload")
        .arg(&invoice)
        .output()
        .expect("run partner.py send");
    assert!(
        run.status.success(),
        "partner.py send failed ({}):\n{}\n{}\nas4gw log:\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        read_log(&gw.log)
    );
    let sent: Value = serde_json::from_slice(&run.stdout).expect("partner verdict is JSON");
    let mid = sent["message_id"].as_str().expect("message id").to_string();
    assert_eq!(sent["http_status"], 200, "{sent}");
    assert_eq!(
        sent["ok"],
        true,
        "the library refuses as4gw's receipt: {sent}\nas4gw log:\n{}",
        read_log(&gw.log)
    );
    assert_eq!(sent["state"], "acknowledged", "{sent}");
    assert_eq!(sent["ref_to_message_id"], mid.as_str());
    assert_eq!(
        sent["acknowledged"].as_array().map(Vec::len),
        Some(3),
        "every signed reference acknowledged: {sent}"
    );

    // as4gw: RECEIVED on the partner's P-Mode, payload = what the library compressed.
    let view = gw.wait_state(&mid, "IN", &["RECEIVED"]);
    assert_eq!(view["pmodeId"], "as4py-blue-red", "{view:#}");
    assert_eq!(view["from"]["id"], PY_PARTY, "{view:#}");
    let payloads = view["payloads"].as_array().expect("payloads");
    assert_eq!(payloads.len(), 1, "{view:#}");
    assert_eq!(payloads[0]["mimeType"], "application/xml", "{view:#}");
    let name = payloads[0]["name"].as_str().expect("payload name");
    let (st, body) = gw
        .get(&format!(
            "/api/v1/messages/{mid}/payloads/{name}?direction=IN"
        ))
        .expect("download");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let sbd_sent = std::fs::read(out.join("sent.sbd.xml")).expect("sent SBD");
    assert_eq!(
        body, sbd_sent,
        "downloaded payload = the bytes the library compressed"
    );
    // The receipt as4gw returned is the one it keeps as evidence.
    let (st, kept) = gw
        .get(&format!("/api/v1/messages/{mid}/receipt?direction=IN"))
        .expect("receipt");
    assert_eq!(st, 200);
    let returned = std::fs::read(out.join("response.body")).expect("response body");
    assert_eq!(kept, returned, "stored receipt = the receipt sent");
}
