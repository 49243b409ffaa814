//! With the real MSH (branch msh, now on main): two in-process gateways, red and blue, each
//! with this REST API in front of its `Msh` (the real `Submitter`), wired by an in-memory AS4
//! transport. The README flow: submit on red → arrives on blue → download → ack → receipt on
//! red; plus the webhooks fed by the MSH's own notifications.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use as4gw::backend::{spawn_webhook_pusher, AppState, BackendAccess, WebhookSettings};
use as4gw::config::Config;
use as4gw::msh::{
    Keyring, ManualClock, Msh, MshSettings, SendError, Transport, WireRequest, WireResponse,
};
use as4gw::pmode::{Registry, SetContext};
use as4gw::store::{Direction, MessageStore, SqliteStore, State};
use axum::body::Bytes;
use axum::http::StatusCode;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::{expect_problem, sha256_hex, stored};

const RED_URL: &str = "https://red.test/as4";
const BLUE_URL: &str = "https://blue.test/as4";

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo P-Modes with absolute certificate paths and the in-memory endpoints.
fn copy_pmodes(to: &Path) {
    std::fs::create_dir_all(to).expect("pmode dir");
    for e in std::fs::read_dir(repo().join("pmodes")).expect("pmodes") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p)
            .expect("read pmode")
            .replace("\"../certs/", &format!("\"{}/certs/", repo().display()))
            .replace("https://127.0.0.1:8443/as4", RED_URL)
            .replace("https://127.0.0.1:9443/as4", BLUE_URL);
        std::fs::write(to.join(p.file_name().expect("name")), text).expect("write pmode");
    }
}

/// URL → peer MSH.
#[derive(Default)]
struct Loopback {
    peers: Mutex<HashMap<String, Weak<Msh>>>,
}

impl Transport for Loopback {
    fn post(&self, req: WireRequest) -> BoxFuture<'_, Result<WireResponse, SendError>> {
        Box::pin(async move {
            let body = req
                .read_body()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| SendError::Local(e.to_string()))?;
            let peer = self
                .peers
                .lock()
                .expect("lock")
                .get(&req.url)
                .and_then(Weak::upgrade)
                .ok_or_else(|| SendError::Network {
                    detail: format!("no peer at {}", req.url),
                    may_have_been_delivered: false,
                })?;
            let r = peer
                .receive(
                    Some(&req.content_type),
                    futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]),
                )
                .await;
            Ok(WireResponse {
                status: r.status,
                content_type: Some(r.content_type.to_string()),
                body: Bytes::from(r.body),
            })
        })
    }
}

/// One gateway: MSH, store and its REST API on 127.0.0.1:0.
struct Gateway {
    msh: Arc<Msh>,
    store: Arc<SqliteStore>,
    backends: Vec<BackendAccess>,
    base: String,
}

async fn gateway(
    dir: &Path,
    name: &str,
    config: &str,
    pmodes: &Path,
    clock: Arc<ManualClock>,
    net: Arc<Loopback>,
) -> Gateway {
    let now = time::OffsetDateTime::now_utc();
    let cfg = Config::load(&repo().join(config), now).expect("config");
    let reg = Arc::new(
        Registry::load(
            pmodes,
            SetContext {
                backends: Some(cfg.backend_names()),
            },
            now,
        )
        .expect("pmodes"),
    );
    let store = Arc::new(SqliteStore::open(dir.join(name)).await.expect("store"));
    let keys = Arc::new(Keyring::from_config(&cfg).expect("keys"));
    let msh = Msh::new(
        store.clone() as Arc<dyn MessageStore>,
        Arc::clone(&reg),
        keys,
        clock,
        net,
        MshSettings::from_config(&cfg),
    );
    let backends: Vec<BackendAccess> = cfg.backends.iter().map(BackendAccess::from).collect();
    let state = AppState::new(
        store.clone() as Arc<dyn MessageStore>,
        msh.clone(),
        backends.clone(),
    )
    .with_pmode_registry(reg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = as4gw::backend::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    Gateway {
        msh,
        store,
        backends,
        base: format!("http://{addr}"),
    }
}

fn regrep() -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\"?><query:QueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\">");
    for i in 0..200 {
        s.push_str(&format!("<slot n=\"{i}\">value {i}</slot>"));
    }
    s.push_str("</query:QueryRequest>");
    s.into_bytes()
}

/// One received push: event, JSON document (metadata part or body), payload parts.
type Received = (String, Value, Vec<(String, Vec<u8>)>);

#[derive(Default)]
struct Hook {
    pushes: Mutex<Vec<Received>>,
    count: AtomicUsize,
}

async fn hook(
    axum::extract::State(h): axum::extract::State<Arc<Hook>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> StatusCode {
    h.count.fetch_add(1, Ordering::SeqCst);
    let event = headers
        .get("x-as4gw-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut parts = Vec::new();
    let doc = if let Ok(boundary) = multer::parse_boundary(&ct) {
        let mut mp = multer::Multipart::new(
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) }),
            boundary,
        );
        let mut meta = Value::Null;
        while let Ok(Some(f)) = mp.next_field().await {
            let name = f.name().unwrap_or("").to_string();
            let bytes = f.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            if name == "metadata" {
                meta = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            } else {
                parts.push((name, bytes));
            }
        }
        meta
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    h.pushes.lock().expect("lock").push((event, doc, parts));
    StatusCode::OK
}

#[tokio::test]
async fn submit_on_red_arrives_on_blue_download_ack_and_receipt_on_red() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pm = dir.path().join("pmodes");
    copy_pmodes(&pm);
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let net = Arc::new(Loopback::default());
    let red = gateway(
        dir.path(),
        "red",
        "as4gw.toml",
        &pm,
        clock.clone(),
        net.clone(),
    )
    .await;
    let blue = gateway(
        dir.path(),
        "blue",
        "as4gw-blue.toml",
        &pm,
        clock.clone(),
        net.clone(),
    )
    .await;
    net.peers
        .lock()
        .expect("lock")
        .insert(RED_URL.into(), Arc::downgrade(&red.msh));
    net.peers
        .lock()
        .expect("lock")
        .insert(BLUE_URL.into(), Arc::downgrade(&blue.msh));
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let (red_token, blue_token) = ("red-demo-token", "blue-demo-token");

    // 1. red's backend submits through the REST API (multipart, streamed), the real MSH decides.
    let query = regrep();
    let pdf: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let meta = json!({
        "pmode": "oots-red-blue",
        "action": "ExecuteQueryRequest",
        "properties": [
            {"name": "originalSender", "value": "urn:oots:red:sender", "type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"},
            {"name": "finalRecipient", "value": "urn:oots:blue:recipient", "type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"}
        ],
        "payloads": [
            {"part": "request", "mimeType": "application/x-ebrs+xml"},
            {"part": "evidence", "mimeType": "application/pdf"}
        ]
    });
    let form = super::form(
        &meta,
        &[("request", query.clone()), ("evidence", pdf.clone())],
    );
    let resp = http
        .post(format!("{}/api/v1/messages", red.base))
        .bearer_auth(red_token)
        .multipart(form)
        .send()
        .await
        .expect("submit");
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.expect("json");
    assert_eq!(accepted["state"], "SUBMITTED");
    assert_eq!(accepted["pmodeId"], "oots-red-blue");
    let mid = accepted["messageId"]
        .as_str()
        .expect("messageId")
        .to_string();

    // The real MSH's refusals come back as problem documents too, and leave no file behind.
    let spool_count = || {
        std::fs::read_dir(red.store.spool().dir())
            .expect("spool")
            .count()
    };
    let files_before = spool_count();
    let mut bad = meta.clone();
    bad["properties"].as_array_mut().expect("props").remove(1);
    let resp = http
        .post(format!("{}/api/v1/messages", red.base))
        .bearer_auth(red_token)
        .multipart(super::form(
            &bad,
            &[("request", query.clone()), ("evidence", pdf.clone())],
        ))
        .send()
        .await
        .expect("submit");
    let p = expect_problem(
        resp,
        422,
        "/errors/missing-property",
        Some("properties/finalRecipient"),
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or("")
            .contains("finalRecipient"),
        "{p}"
    );
    let mut bad = meta.clone();
    bad["payloads"][0]["mimeType"] = "image/gif".into();
    let resp = http
        .post(format!("{}/api/v1/messages", red.base))
        .bearer_auth(red_token)
        .multipart(super::form(
            &bad,
            &[("request", query.clone()), ("evidence", pdf.clone())],
        ))
        .send()
        .await
        .expect("submit");
    let status = resp.status().as_u16();
    let p: Value = resp.json().await.expect("problem");
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["type"], "/errors/payload-not-allowed", "{p}");
    assert_eq!(
        spool_count(),
        files_before,
        "refused submissions leave no spooled file"
    );

    // 2. red sends (one scheduler pass); blue receives and receipts.
    assert_eq!(red.msh.run_once().await, 1);
    let out = stored(&red.store, Direction::Outbound, &mid).await;
    assert_eq!(out.state, State::Acknowledged, "{:?}", out.last_detail);

    // 3. blue's backend finds it, downloads the payloads and acknowledges.
    let list: Value = http
        .get(format!(
            "{}/api/v1/messages?direction=IN&state=RECEIVED",
            blue.base
        ))
        .bearer_auth(blue_token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    let view = &list["items"][0];
    assert_eq!(view["messageId"], mid.as_str());
    assert_eq!(view["direction"], "IN");
    assert_eq!(view["action"], "ExecuteQueryRequest");
    assert_eq!(view["from"]["id"], "red_gw");
    assert_eq!(view["to"]["id"], "blue_gw");
    let names: Vec<&str> = view["payloads"]
        .as_array()
        .expect("payloads")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["request", "evidence"], "{view}");
    for (name, expected, mime) in [
        ("request", &query, "application/x-ebrs+xml"),
        ("evidence", &pdf, "application/pdf"),
    ] {
        let resp = http
            .get(format!(
                "{}/api/v1/messages/{mid}/payloads/{name}",
                blue.base
            ))
            .bearer_auth(blue_token)
            .send()
            .await
            .expect("download");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], mime);
        let got = resp.bytes().await.expect("bytes");
        assert_eq!(sha256_hex(&got), sha256_hex(expected), "{name}");
    }
    // red's backend cannot read blue's inbound copy and vice versa: they are different gateways.
    let ack: Value = http
        .post(format!("{}/api/v1/messages/{mid}/ack", blue.base))
        .bearer_auth(blue_token)
        .send()
        .await
        .expect("ack")
        .json()
        .await
        .expect("json");
    assert_eq!(ack["state"], "DELIVERED");
    assert_eq!(ack["changed"], true);
    assert_eq!(
        stored(&blue.store, Direction::Inbound, &mid).await.state,
        State::Delivered
    );

    // 4. red shows ACKNOWLEDGED and the partner's signed receipt.
    let v: Value = http
        .get(format!("{}/api/v1/messages/{mid}", red.base))
        .bearer_auth(red_token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(v["state"], "ACKNOWLEDGED");
    assert_eq!(v["hasReceipt"], true);
    let receipt = http
        .get(format!("{}/api/v1/messages/{mid}/receipt", red.base))
        .bearer_auth(red_token)
        .send()
        .await
        .expect("receipt");
    assert_eq!(receipt.status(), 200);
    let xml = receipt.text().await.expect("text");
    assert!(
        xml.contains("Receipt") && xml.contains("Signature"),
        "{xml}"
    );

    // 5. The MSH's own notifications through the pushers: blue's delivery, red's status.
    let hook_state = Arc::new(Hook::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(Arc::clone(&hook_state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let with_hook = |bs: &[BackendAccess]| -> Vec<BackendAccess> {
        bs.iter()
            .cloned()
            .map(|b| b.webhook(format!("http://{addr}/hook")))
            .collect()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut pushers = Vec::new();
    for g in [&red, &blue] {
        let mut rx = stop_rx.clone();
        let settings = WebhookSettings {
            poll_interval: std::time::Duration::from_millis(20),
            ..WebhookSettings::default()
        };
        pushers.push(spawn_webhook_pusher(
            g.store.clone() as Arc<dyn MessageStore>,
            with_hook(&g.backends),
            settings,
            async move {
                let _ = rx.wait_for(|s| *s).await;
            },
        ));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while hook_state.count.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "no pushes");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    for p in pushers {
        p.await.expect("pusher");
    }
    let pushes = hook_state.pushes.lock().expect("lock").clone();
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    let delivery = pushes
        .iter()
        .find(|p| p.0 == "delivery")
        .expect("delivery push");
    assert_eq!(delivery.1["message"]["messageId"], mid.as_str());
    assert_eq!(
        delivery.1["notification"]["message_id"],
        mid.as_str(),
        "the MSH's body is passed on"
    );
    assert_eq!(delivery.2.len(), 2);
    assert_eq!(sha256_hex(&delivery.2[1].1), sha256_hex(&pdf));
    let status = pushes
        .iter()
        .find(|p| p.0 == "status")
        .expect("status push");
    assert_eq!(status.1["message"]["messageId"], mid.as_str());
    assert_eq!(status.1["message"]["state"], "ACKNOWLEDGED");
    assert_eq!(status.1["notification"]["state"], "ACKNOWLEDGED");
}
