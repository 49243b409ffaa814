//! A fake partner between red (sender) and blue (receiver): red's P-Modes point at it, it
//! terminates TLS with blue's demo certificate and, per message and attempt, misbehaves or
//! forwards the request to the real blue gateway. Which behaviour a message gets is chosen by
//! a marker in its `originalSender` property (visible in the signed, unencrypted eb:Messaging
//! header), so one pair of gateways runs every case at once.
//!
//! Red's P-Modes: 2 resends 1 s apart (3 attempts), response timeout 8 s (hidden `serve`
//! flag). Every case checks the final state and code, the attempt count (red's and the number
//! of requests the partner saw), and the deliveries at blue's backend (webhook, counted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use as4gw::transport::{ClientSettings, ClientTlsFiles, HttpsClient, OutboundBody, ServerTlsFiles};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{as4_url, edit_pmodes, set_webhook, CountingBackend};
use crate::msh::e2e::{free_port, meta, pair};
use crate::msh::harness::{binary, regrep, repo};

/// What the partner does with one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Forward to blue and pass its answer back.
    Forward,
    /// Forward to blue at once, answer only after the sender's timeout.
    Slow,
    /// Read part of the body, then reset the TCP connection.
    Reset,
    /// Read the request, answer 500 with an empty body.
    Http500,
    /// Read the request, answer 200 with a body that is no AS4 signal.
    Garbage,
}

/// The marker's behaviour for attempt `n` (1-based).
fn plan(marker: &str, n: u32) -> Act {
    match marker {
        "slow" => Act::Slow,
        "slow-then-ok" if n == 1 => Act::Slow,
        "reset" => Act::Reset,
        "http500" => Act::Http500,
        "garbage" => Act::Garbage,
        "recovers" if n == 1 => Act::Http500,
        "recovers" if n == 2 => Act::Reset,
        _ => Act::Forward,
    }
}

const MARKER: &str = "urn:fault:";
const SLOW: Duration = Duration::from_secs(10);
/// Red's response timeout (< SLOW).
const TIMEOUT_SECS: u64 = 8;

struct Partner {
    /// Runs the listener; its tasks end when the partner is dropped.
    _rt: tokio::runtime::Runtime,
    /// Requests seen per marker.
    seen: Arc<Mutex<HashMap<String, u32>>>,
}

async fn read_request(s: &mut (impl AsyncReadExt + Unpin)) -> Option<(String, Vec<u8>, usize)> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0usize);
    let body = buf[head_end + 4..].to_vec();
    Some((head, body, len))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

impl Partner {
    fn start(port: u16, blue_url: String) -> Partner {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let certs = repo().join("certs/demo");
        let server = ServerTlsFiles {
            cert_chain: certs.join("blue/tls.cert.pem"),
            private_key: certs.join("blue/tls.key.pem"),
            client_auth: Default::default(),
            client_trust_anchors: Vec::new(),
            protocols: Default::default(),
        }
        .load()
        .expect("server tls")
        .build()
        .expect("server config");
        let client_tls = ClientTlsFiles {
            trust_anchors: vec![certs.join("ca.cert.pem")],
            client_cert_chain: Some(certs.join("red/tls.cert.pem")),
            client_private_key: Some(certs.join("red/tls.key.pem")),
            protocols: Default::default(),
        }
        .load()
        .expect("client tls")
        .build()
        .expect("client config");
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind partner");
        listener.set_nonblocking(true).expect("nonblocking");
        let seen2 = Arc::clone(&seen);
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let acceptor = tokio_rustls::TlsAcceptor::from(server);
            let client = Arc::new(HttpsClient::new(client_tls, ClientSettings::default()));
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, client, seen, blue_url) = (
                    acceptor.clone(),
                    Arc::clone(&client),
                    Arc::clone(&seen2),
                    blue_url.clone(),
                );
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Some((head, mut body, len)) = read_request(&mut tls).await else {
                        return;
                    };
                    // The marker sits in the SOAP part, the first MIME part, within the first
                    // 32 KiB (the ~300 KB payload follows it).
                    let mut chunk = vec![0u8; 64 * 1024];
                    while body.len() < len.min(32 * 1024) {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => body.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let early = String::from_utf8_lossy(&body).into_owned();
                    let marker = early
                        .find(MARKER)
                        .map(|i| {
                            early[i + MARKER.len()..]
                                .chars()
                                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                                .collect::<String>()
                        })
                        .unwrap_or_default();
                    let n = {
                        let mut g = seen.lock().expect("lock");
                        let e = g.entry(marker.clone()).or_insert(0);
                        *e += 1;
                        *e
                    };
                    let act = plan(&marker, n);
                    if act == Act::Reset {
                        // Mid-body: the sender is still uploading (the body is ~300 KB).
                        let tcp = tls.get_ref().0;
                        let _ = tcp.set_zero_linger();
                        drop(tls);
                        return;
                    }
                    while body.len() < len {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => body.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let (status, ct, answer) = match act {
                        Act::Http500 => (500, "text/plain".to_string(), Vec::new()),
                        Act::Garbage => (
                            200,
                            "application/soap+xml".to_string(),
                            b"<<< this is not a SOAP envelope".to_vec(),
                        ),
                        _ => {
                            let ct = header(&head, "content-type").unwrap_or("").to_string();
                            match client
                                .post(&blue_url, &ct, OutboundBody::from_bytes(body))
                                .await
                            {
                                Ok(r) => (
                                    r.status.as_u16(),
                                    r.content_type().unwrap_or("text/plain").to_string(),
                                    r.body.to_vec(),
                                ),
                                Err(_) => (502, "text/plain".to_string(), Vec::new()),
                            }
                        }
                    };
                    if act == Act::Slow {
                        tokio::time::sleep(SLOW).await;
                    }
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        answer.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.write_all(&answer).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Partner { _rt: rt, seen }
    }

    fn requests(&self, marker: &str) -> u32 {
        self.seen
            .lock()
            .expect("lock")
            .get(marker)
            .copied()
            .unwrap_or(0)
    }
}

fn submission(marker: &str, pmode: &str, action: &str) -> crate::msh::e2e::Submission {
    let mut s = meta(
        pmode,
        action,
        &[
            ("doc", "application/x-ebrs+xml", regrep(3)),
            // Incompressible and large enough that a reset lands mid-body.
            (
                "evidence",
                "application/pdf",
                binary(300_000, marker.len() as u8),
            ),
        ],
    );
    s.meta["properties"][0] = json!({
        "name": "originalSender",
        "value": format!("{MARKER}{marker}"),
        "type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"
    });
    s
}

/// (marker, P-Mode, action, final state, EBMS code, attempts, deliveries at blue's backend)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    u64,
    usize,
);

fn final_state(v: &Value) -> bool {
    v["state"] == "ACKNOWLEDGED" || v["state"] == "FAILED"
}

#[test]
fn partner_faults_follow_the_pmode_retries_lose_nothing_and_deliver_at_most_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut red, mut blue) = pair(dir.path(), 2, "1s", 30);
    let backend = CountingBackend::start("blue-demo-token");
    set_webhook(&blue, &backend.url());
    let blue_url = as4_url(&blue);
    // Red sends every red→blue P-Mode to the fake partner; "down" gets a closed port.
    let partner_port = free_port();
    let closed = free_port();
    edit_pmodes(
        dir.path(),
        Some("oots-lcm-red-blue"),
        &blue_url,
        &format!("https://127.0.0.1:{closed}/as4"),
    );
    edit_pmodes(
        dir.path(),
        None,
        &blue_url,
        &format!("https://127.0.0.1:{partner_port}/as4"),
    );
    let partner = Partner::start(partner_port, blue_url);
    red.extra_args = vec!["--response-timeout-secs".into(), TIMEOUT_SECS.to_string()];
    red.start();
    blue.start();

    // (marker, P-Mode, action, final state, code, attempts, deliveries at blue's backend)
    let cases: &[Case] = &[
        (
            "down",
            "oots-lcm-red-blue",
            "SubmitObjectsRequest",
            "FAILED",
            Some("EBMS:0301"),
            3,
            0,
        ),
        (
            "slow",
            "oots-red-blue",
            "ExecuteQueryResponse",
            "FAILED",
            Some("EBMS:0301"),
            3,
            1,
        ),
        (
            "slow-then-ok",
            "oots-red-blue",
            "ExecuteQueryResponse",
            "ACKNOWLEDGED",
            None,
            2,
            1,
        ),
        (
            "reset",
            "oots-red-blue",
            "ExecuteQueryResponse",
            "FAILED",
            Some("EBMS:0301"),
            3,
            0,
        ),
        (
            "http500",
            "oots-v2-red-blue",
            "ExecuteQueryResponse",
            "FAILED",
            Some("EBMS:0301"),
            3,
            0,
        ),
        (
            "garbage",
            "oots-red-blue",
            "ExecuteQueryResponse",
            "FAILED",
            Some("EBMS:0301"),
            3,
            0,
        ),
        (
            "recovers",
            "oots-v2-red-blue",
            "ExecuteQueryResponse",
            "ACKNOWLEDGED",
            None,
            3,
            1,
        ),
        (
            "direct",
            "oots-red-blue",
            "ExecuteQueryResponse",
            "ACKNOWLEDGED",
            None,
            1,
            1,
        ),
    ];
    let mut mids = Vec::new();
    for (marker, pmode, action, ..) in cases {
        let (st, res) = red
            .submit(&submission(marker, pmode, action), None)
            .expect("submit");
        assert_eq!(st, 202, "{marker}: {res}");
        mids.push(res["messageId"].as_str().expect("mid").to_string());
    }
    let mut views = Vec::new();
    for (mid, case) in mids.iter().zip(cases) {
        let v = red.wait_state("OUT", mid, Duration::from_secs(180), final_state);
        views.push((case.0, v));
    }
    // Blue's pushes of what it received (the webhook runs next to the AS4 side).
    let expected: Vec<&String> = mids
        .iter()
        .zip(cases)
        .filter(|(_, c)| c.6 > 0)
        .map(|(m, _)| m)
        .collect();
    let deliveries = backend.wait_for(expected.iter().copied(), Duration::from_secs(60));
    // Give a late duplicate push (there must be none) a moment to show up.
    std::thread::sleep(Duration::from_secs(2));
    let deliveries = {
        let later = backend.snapshot();
        assert_eq!(later.by_message.len(), deliveries.by_message.len());
        later
    };
    let report: Vec<String> = mids
        .iter()
        .zip(cases)
        .zip(&views)
        .map(|((mid, case), (_, v))| {
            format!(
                "{}: {} {} attempts {} (partner saw {}), delivered {}; {}",
                case.0,
                v["state"],
                v["lastCode"],
                v["attempts"],
                partner.requests(case.0),
                deliveries.distinct(mid),
                v["lastDetail"]
            )
        })
        .collect();
    eprintln!("partner faults:\n  {}", report.join("\n  "));
    for ((mid, case), (_, v)) in mids.iter().zip(cases).zip(&views) {
        let (marker, _, _, state, code, attempts, delivered) = *case;
        let seen = partner.requests(marker);
        assert_eq!(v["state"], state, "{marker}: {v}");
        if let Some(c) = code {
            assert_eq!(v["lastCode"], c, "{marker}: {v}");
        }
        assert_eq!(v["attempts"], attempts, "{marker}: {v}");
        if marker != "down" {
            assert_eq!(
                u64::from(seen),
                attempts,
                "{marker}: requests at the partner"
            );
        }
        assert_eq!(
            deliveries.distinct(mid),
            delivered,
            "{marker}: deliveries at blue's backend"
        );
        assert!(
            deliveries.by_message.get(mid).map_or(0, Vec::len) <= 1,
            "{marker}: pushed more than once"
        );
        if state == "ACKNOWLEDGED" {
            assert_eq!(v["hasReceipt"], true, "{marker}: {v}");
        }
        // Nothing lost: blue holds exactly what it delivered.
        let at_blue = blue.message("IN", mid);
        assert_eq!(at_blue.is_some(), delivered == 1, "{marker}: {at_blue:?}");
    }
    assert_eq!(deliveries.bad_signature, 0);
    assert!(red.stop() && blue.stop());
}
