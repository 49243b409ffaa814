//! TEMPORARY backend API, to be replaced by the backend room's `backend::router(AppState)`
//! when it lands on main. Just enough for operators to try the gateway and for the end-to-end
//! tests: a bearer token (checked against `[[backend]] token-sha256`), JSON submissions with
//! base64 payloads, raw single-payload submissions for large files, and read-only lookups.
//!
//! * `GET  /api/v1/health`
//! * `POST /api/v1/messages` — `Content-Type: application/json`:
//!   `{"pmode_id", "action", "conversation_id", "message_id", "properties": [{"name", "value",
//!   "type"}], "payloads": [{"part_name", "mime_type", "data_base64"}]}`; or any other type:
//!   the body is the one payload, `?pmode_id=…&action=…&part_name=…&mime_type=…&prop.NAME=VALUE`.
//!   `Idempotency-Key` header honoured. 202 with the `SubmitResult`, else a problem JSON.
//! * `GET  /api/v1/messages/{OUT|IN}/{message_id}` — state, attempts, last code, payloads.
//! * `GET  /api/v1/messages/{OUT|IN}/{message_id}/payloads/{n}` — the payload bytes.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use as4gw::config::Backend;
use as4gw::msh::api::{PayloadIn, PropertyIn, SubmitError, SubmitRequest, Submitter};
use as4gw::msh::Msh;
use as4gw::store::{Direction, MessageStore, SqliteStore};

pub struct State {
    pub msh: Arc<Msh>,
    pub store: Arc<SqliteStore>,
    pub backends: Vec<Backend>,
    pub max_body: u64,
}

type Resp = Response<Full<Bytes>>;

fn json(status: StatusCode, v: serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(&v).unwrap_or_default(),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn problem(status: StatusCode, detail: impl Into<String>) -> Resp {
    json(
        status,
        serde_json::json!({"status": status.as_u16(), "title": status.canonical_reason(), "detail": detail.into()}),
    )
}

#[derive(Deserialize)]
struct JsonPayload {
    part_name: String,
    mime_type: String,
    data_base64: String,
    #[serde(default)]
    properties: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct JsonSubmit {
    pmode_id: Option<String>,
    action: Option<String>,
    conversation_id: Option<String>,
    message_id: Option<String>,
    ref_to_message_id: Option<String>,
    #[serde(default)]
    properties: Vec<PropertyIn>,
    #[serde(default)]
    payloads: Vec<JsonPayload>,
}

fn backend_of(s: &State, req: &Request<Incoming>) -> Option<String> {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.trim().as_bytes());
    s.backends
        .iter()
        .find(|b| b.token_sha256.as_slice() == h.as_ref())
        .map(|b| b.name.clone())
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    let q = req.uri().query().unwrap_or("");
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn handle(s: Arc<State>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().as_str(), segs.as_slice()) {
        ("GET", ["api", "v1", "health"]) => {
            json(StatusCode::OK, serde_json::json!({"status": "ok"}))
        }
        (_, ["api", "v1", ..]) => {
            let Some(backend) = backend_of(&s, &req) else {
                return problem(StatusCode::UNAUTHORIZED, "bearer token required");
            };
            match (req.method().as_str(), segs.as_slice()) {
                ("POST", ["api", "v1", "messages"]) => submit(&s, backend, req).await,
                ("GET", ["api", "v1", "messages", dir, mid]) => {
                    let (dir, mid) = (dir.to_string(), mid.to_string());
                    lookup(&s, &dir, &mid, None).await
                }
                ("GET", ["api", "v1", "messages", dir, mid, "payloads", n]) => {
                    let (dir, mid) = (dir.to_string(), mid.to_string());
                    match n.parse::<usize>() {
                        Ok(n) => lookup(&s, &dir, &mid, Some(n)).await,
                        Err(_) => problem(StatusCode::NOT_FOUND, "no such payload"),
                    }
                }
                _ => problem(StatusCode::NOT_FOUND, "no such resource"),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, "no such resource"),
    }
}

async fn submit(s: &State, backend: String, req: Request<Incoming>) -> Resp {
    let is_json = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let idem = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let spool = s.store.spool();
    let mut sub = SubmitRequest {
        idempotency_key: idem,
        backend: Some(backend),
        ..Default::default()
    };
    if is_json {
        let body = match Limited::new(req.into_body(), 64 << 20).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return problem(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        };
        let j: JsonSubmit = match serde_json::from_slice(&body) {
            Ok(j) => j,
            Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
        };
        sub.pmode_id = j.pmode_id;
        sub.action = j.action;
        sub.conversation_id = j.conversation_id;
        sub.message_id = j.message_id;
        sub.ref_to_message_id = j.ref_to_message_id;
        sub.properties = j.properties;
        for (i, p) in j.payloads.into_iter().enumerate() {
            let data = match base64::engine::general_purpose::STANDARD.decode(&p.data_base64) {
                Ok(d) => d,
                Err(e) => {
                    return problem(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("payloads/{i}/data_base64: {e}"),
                    )
                }
            };
            let file = match spool.write_bytes(&data).await {
                Ok(f) => f,
                Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            };
            sub.payloads.push(PayloadIn {
                part_name: p.part_name,
                mime_type: p.mime_type,
                properties: p.properties,
                file,
            });
        }
    } else {
        let q = query(&req);
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        sub.pmode_id = get("pmode_id");
        sub.action = get("action");
        sub.conversation_id = get("conversation_id");
        sub.message_id = get("message_id");
        sub.properties = q
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("prop.").map(|n| PropertyIn {
                    name: n.to_string(),
                    value: v.clone(),
                    prop_type: None,
                })
            })
            .collect();
        // Stream the body into the spool: a 1 GB payload never sits in memory.
        let (mut w, r) = tokio::io::duplex(256 * 1024);
        let mut body = req.into_body();
        let pump = async move {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(std::io::Error::other)?;
                if let Some(d) = frame.data_ref() {
                    w.write_all(d).await?;
                }
            }
            w.shutdown().await
        };
        let (pumped, file) = tokio::join!(pump, spool.write_stream(r, s.max_body));
        let file = match (pumped, file) {
            (Ok(()), Ok(f)) => f,
            (Err(e), _) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
            (_, Err(e)) => return problem(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        };
        sub.payloads.push(PayloadIn {
            part_name: get("part_name").unwrap_or_else(|| "payload".into()),
            mime_type: get("mime_type").unwrap_or_else(|| "application/octet-stream".into()),
            properties: vec![],
            file,
        });
    }
    match s.msh.submit(sub).await {
        Ok(r) => json(
            StatusCode::ACCEPTED,
            serde_json::to_value(&r).unwrap_or_default(),
        ),
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let field = match &e {
                SubmitError::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            };
            json(
                status,
                serde_json::json!({"status": status.as_u16(), "detail": e.to_string(), "field": field}),
            )
        }
    }
}

async fn lookup(s: &State, dir: &str, mid: &str, payload: Option<usize>) -> Resp {
    let dir = match dir {
        "OUT" => Direction::Outbound,
        "IN" => Direction::Inbound,
        _ => return problem(StatusCode::NOT_FOUND, "direction is OUT or IN"),
    };
    let rec = match s.store.get_by_message_id(dir, mid).await {
        Ok(Some(r)) => r,
        Ok(None) => return problem(StatusCode::NOT_FOUND, "no such message"),
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Some(n) = payload {
        let Some(p) = rec.payloads.get(n) else {
            return problem(StatusCode::NOT_FOUND, "no such payload");
        };
        return match tokio::fs::read(s.store.spool().path(&p.file)).await {
            Ok(b) => {
                let mut r = Response::new(Full::new(Bytes::from(b)));
                if let Ok(v) = http::HeaderValue::from_str(&p.mime_type) {
                    r.headers_mut().insert(http::header::CONTENT_TYPE, v);
                }
                r
            }
            Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let receipt = matches!(s.store.receipt(rec.id).await, Ok(Some(_)));
    json(
        StatusCode::OK,
        serde_json::json!({
            "message_id": rec.message_id,
            "conversation_id": rec.conversation_id,
            "pmode_id": rec.pmode_id,
            "state": rec.state.as_str(),
            "attempts": rec.attempts,
            "last_code": rec.last_code.map(|c| c.code()),
            "last_detail": rec.last_detail,
            "receipt": receipt,
            "payloads": rec.payloads.iter().map(|p| serde_json::json!({
                "part_id": p.part_id, "mime_type": p.mime_type,
                "size": p.file.size(), "sha256": p.file.sha256_hex(),
            })).collect::<Vec<_>>(),
        }),
    )
}
