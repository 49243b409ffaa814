//! Integration tests: the backend REST API, webhooks, OpenAPI document and admin CLI.
//!
//! Each test runs the real router on 127.0.0.1:0 over a real `SqliteStore` in a temp dir, with
//! a plain HTTP client (reqwest). Until the MSH's submitter lands, [`TestSubmitter`] records
//! submissions the way the MSH will: P-Mode by id or service/action, required properties and
//! payload profile checked before anything is written, the ebMS header built and kept with the
//! message, payload Content-IDs `cid:<part>@as4gw.test`.

mod api;
mod cli;
mod e2e;
mod openapi;
mod refusals;
mod webhook;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use as4gw::backend::{self, ApiLimits, AppState, BackendAccess};
use as4gw::ebms::{
    CollaborationInfo, MessageId, MessageInfo, Messaging, PartInfo, Party, PartyId, PartyInfo,
    Property, Service, Timestamp, UserMessage,
};
use as4gw::msh::api::{SubmitError, SubmitRequest, SubmitResult, Submitter};
use as4gw::store::{
    Direction, MessageStore, NewInbound, NewOutbound, Payload, Received, SqliteStore, StoreError,
    StoreId,
};
use futures_util::future::BoxFuture;
use time::OffsetDateTime;

pub const RED_TOKEN: &str = "red-test-token";
pub const BLUE_TOKEN: &str = "blue-test-token";
pub const RESTRICTED_TOKEN: &str = "restricted-test-token";

/// Outbound P-Mode of "red" with required four-corner properties.
pub const PM_MAIN: &str = "test-red-blue";
/// Outbound P-Mode of "red" without requirements.
pub const PM_OTHER: &str = "test-other";
/// Outbound P-Mode only "blue" may use.
pub const PM_BLUE: &str = "test-blue-only";
/// Allowed for "red" but unknown to the gateway.
pub const PM_GHOST: &str = "test-ghost";
/// Inbound P-Mode routed to "red".
pub const PM_INBOUND: &str = "test-blue-red";

pub const SENDER: &str = "urn:oasis:names:tc:ebcore:partyid-type:unregistered:sender";
pub const RECIPIENT: &str = "urn:oasis:names:tc:ebcore:partyid-type:unregistered:recipient";

/// What the test submitter knows of a P-Mode.
struct TestPmode {
    service: &'static str,
    action: &'static str,
    required: &'static [&'static str],
    mime_types: &'static [&'static str],
    max_parts: usize,
}

fn test_pmodes() -> HashMap<&'static str, TestPmode> {
    let mut m = HashMap::new();
    m.insert(
        PM_MAIN,
        TestPmode {
            service: "urn:test:service",
            action: "Submit",
            required: &["originalSender", "finalRecipient"],
            mime_types: &[
                "application/xml",
                "application/pdf",
                "application/octet-stream",
                "text/plain",
            ],
            max_parts: 10,
        },
    );
    m.insert(
        PM_OTHER,
        TestPmode {
            service: "urn:test:other",
            action: "Other",
            required: &[],
            mime_types: &[],
            max_parts: 10,
        },
    );
    m.insert(
        PM_BLUE,
        TestPmode {
            service: "urn:test:blue",
            action: "Blue",
            required: &[],
            mime_types: &[],
            max_parts: 10,
        },
    );
    m
}

/// A submitter that validates and records like the MSH (no sending).
pub struct TestSubmitter {
    store: Arc<SqliteStore>,
    pmodes: HashMap<&'static str, TestPmode>,
}

impl TestSubmitter {
    pub fn new(store: Arc<SqliteStore>) -> TestSubmitter {
        TestSubmitter {
            store,
            pmodes: test_pmodes(),
        }
    }

    async fn run(&self, req: SubmitRequest) -> Result<SubmitResult, SubmitError> {
        let (pmode_id, pm) = match &req.pmode_id {
            Some(id) => self
                .pmodes
                .get_key_value(id.as_str())
                .ok_or_else(|| SubmitError::UnknownPmode(format!("no P-Mode {id}")))?,
            None => self
                .pmodes
                .iter()
                .find(|(_, p)| {
                    Some(p.service) == req.service.as_deref()
                        && Some(p.action) == req.action.as_deref()
                })
                .ok_or_else(|| {
                    SubmitError::UnknownPmode(format!(
                        "service {:?} action {:?}",
                        req.service, req.action
                    ))
                })?,
        };
        for name in pm.required {
            if !req.properties.iter().any(|p| p.name == *name) {
                return Err(SubmitError::MissingProperty {
                    name: (*name).to_string(),
                    reason: "absent".into(),
                });
            }
        }
        if req.payloads.len() > pm.max_parts {
            return Err(SubmitError::PayloadNotAllowed {
                part: req.payloads[pm.max_parts].part_name.clone(),
                reason: format!("at most {} parts", pm.max_parts),
            });
        }
        for p in &req.payloads {
            if !pm.mime_types.is_empty() && !pm.mime_types.contains(&p.mime_type.as_str()) {
                return Err(SubmitError::PayloadNotAllowed {
                    part: p.part_name.clone(),
                    reason: format!("MIME type {} not allowed", p.mime_type),
                });
            }
        }
        let message_id = match &req.message_id {
            Some(id) => MessageId::parse(id)
                .ok()
                .filter(|m| m.is_rfc2822())
                .ok_or_else(|| SubmitError::Invalid {
                    field: "messageId".into(),
                    reason: "not a left@right id".into(),
                })?
                .as_str()
                .to_string(),
            None => format!("{}@as4gw.test", uuid::Uuid::new_v4()),
        };
        let conversation_id = req
            .conversation_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let payloads: Vec<Payload> = req
            .payloads
            .iter()
            .map(|p| Payload {
                part_id: format!("cid:{}@as4gw.test", p.part_name),
                mime_type: p.mime_type.clone(),
                file: p.file.clone(),
            })
            .collect();
        let now = OffsetDateTime::now_utc();
        let header = header_xml(
            &message_id,
            &conversation_id,
            pm.service,
            pm.action,
            &req.properties
                .iter()
                .map(|p| (p.name.clone(), p.value.clone(), p.prop_type.clone()))
                .collect::<Vec<_>>(),
            &payloads,
            &req.payloads
                .iter()
                .map(|p| p.properties.clone())
                .collect::<Vec<_>>(),
            now,
        );
        let submitted = self
            .store
            .submit(
                now,
                NewOutbound {
                    message_id: message_id.clone(),
                    conversation_id: conversation_id.clone(),
                    pmode_id: pmode_id.to_string(),
                    ref_to_message_id: req.ref_to_message_id.clone(),
                    idempotency_key: req.idempotency_key.clone(),
                    properties: req
                        .properties
                        .iter()
                        .map(|p| (p.name.clone(), p.value.clone()))
                        .collect(),
                    payloads,
                    not_before: None,
                    header: Some(header),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => SubmitError::DuplicateMessageId(message_id.clone()),
                other => SubmitError::Internal(other.to_string()),
            })?;
        let rec = self
            .store
            .get(submitted.id)
            .await
            .map_err(|e| SubmitError::Internal(e.to_string()))?
            .ok_or_else(|| SubmitError::Internal("submitted message vanished".into()))?;
        Ok(SubmitResult {
            store_id: Some(rec.id),
            message_id: rec.message_id,
            conversation_id: rec.conversation_id,
            pmode_id: rec.pmode_id,
            state: rec.state.as_str().to_string(),
            created: submitted.created,
        })
    }
}

impl Submitter for TestSubmitter {
    fn submit(&self, req: SubmitRequest) -> BoxFuture<'_, Result<SubmitResult, SubmitError>> {
        Box::pin(self.run(req))
    }
}

/// The eb:Messaging header the MSH would build (red → blue).
#[allow(clippy::too_many_arguments)]
pub fn header_xml(
    message_id: &str,
    conversation_id: &str,
    service: &str,
    action: &str,
    props: &[(String, String, Option<String>)],
    payloads: &[Payload],
    part_props: &[Vec<(String, String)>],
    now: OffsetDateTime,
) -> String {
    let party = |id: &str| Party {
        party_ids: vec![PartyId {
            value: id.to_string(),
            type_: Some("urn:oasis:names:tc:ebcore:partyid-type:unregistered:oots".into()),
        }],
        role: "http://sdg.europa.eu/edelivery/gateway".into(),
    };
    let um = UserMessage {
        mpc: None,
        message_info: MessageInfo {
            timestamp: Timestamp::from_datetime(now),
            message_id: MessageId::parse(message_id).expect("message id"),
            ref_to_message_id: None,
        },
        party_info: PartyInfo {
            from: party("red_gw"),
            to: party("blue_gw"),
        },
        collaboration_info: CollaborationInfo {
            agreement_ref: None,
            service: Service {
                value: service.to_string(),
                type_: Some("urn:test:service-type".into()),
            },
            action: action.to_string(),
            conversation_id: conversation_id.to_string(),
        },
        message_properties: props
            .iter()
            .map(|(n, v, t)| Property {
                name: n.clone(),
                type_: t.clone(),
                value: v.clone(),
            })
            .collect(),
        payload_info: payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut part_properties = vec![Property::new("MimeType", p.mime_type.clone())];
                for (n, v) in part_props.get(i).cloned().unwrap_or_default() {
                    part_properties.push(Property::new(n, v));
                }
                PartInfo {
                    href: Some(p.part_id.clone()),
                    schemas: vec![],
                    description: None,
                    part_properties,
                }
            })
            .collect(),
    };
    Messaging {
        id: None,
        user_message: Some(um),
        signal_messages: vec![],
    }
    .to_xml()
}

/// The configured test backends.
pub fn test_backends(webhook: Option<String>) -> Vec<BackendAccess> {
    let mut red =
        BackendAccess::with_token("red", RED_TOKEN).allow_pmodes([PM_MAIN, PM_OTHER, PM_GHOST]);
    if let Some(w) = webhook {
        red = red.webhook(w);
    }
    vec![
        red,
        BackendAccess::with_token("blue", BLUE_TOKEN).allow_pmodes([PM_BLUE]),
        BackendAccess::with_token("restricted", RESTRICTED_TOKEN)
            .allow_pmodes([PM_MAIN])
            .allow_original_senders(vec![SENDER.to_string()]),
    ]
}

/// A running API.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<SqliteStore>,
    /// Keeps the store's directory alive.
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Api {
    pub async fn start() -> Api {
        Api::start_with(ApiLimits::default()).await
    }

    pub async fn start_with(limits: ApiLimits) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(dir.path()).await.expect("open store"));
        let submitter = Arc::new(TestSubmitter::new(Arc::clone(&store)));
        let state = AppState::new(
            Arc::clone(&store) as Arc<dyn MessageStore>,
            submitter,
            test_backends(None),
        )
        .with_limits(limits)
        .with_inbound_routes(Arc::new(|id: &str| {
            (id == PM_INBOUND).then(|| "red".to_string())
        }));
        let app = backend::router(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        Api {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            store,
            _dir: dir,
            _stop: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// Files currently in the spool directory.
    pub fn spool_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.store.spool().dir())
            .expect("spool dir")
            .map(|e| e.expect("entry").path())
            .collect();
        v.sort();
        v
    }

    /// Number of messages in the store (all directions).
    pub async fn message_count(&self) -> usize {
        let mut n = 0;
        let mut cursor = None;
        loop {
            let page = self
                .store
                .list(Default::default(), cursor, 500)
                .await
                .expect("list");
            n += page.items.len();
            match page.next {
                Some(c) => cursor = Some(c),
                None => return n,
            }
        }
    }

    /// Records an inbound message (as the MSH would after checks), with a receipt.
    pub async fn inbound(&self, message_id: &str, payloads: &[(&str, &str, &[u8])]) -> StoreId {
        inbound(&self.store, message_id, payloads, None).await
    }
}

/// Records an inbound message on `PM_INBOUND`, optionally with a delivery notification.
pub async fn inbound(
    store: &SqliteStore,
    message_id: &str,
    payloads: &[(&str, &str, &[u8])],
    notify: Option<as4gw::store::NewNotification>,
) -> StoreId {
    let mut ps = Vec::new();
    for (name, mime, bytes) in payloads {
        let file = store.spool().write_bytes(bytes).await.expect("spool");
        ps.push(Payload {
            part_id: format!("cid:{name}@blue.test"),
            mime_type: (*mime).to_string(),
            file,
        });
    }
    let props = vec![
        ("originalSender".to_string(), SENDER.to_string(), None),
        ("finalRecipient".to_string(), RECIPIENT.to_string(), None),
    ];
    let now = OffsetDateTime::now_utc();
    let header = header_xml(
        message_id,
        "conv-in",
        "urn:test:service",
        "Submit",
        &props,
        &ps,
        &[],
        now,
    );
    let r = store
        .record_received(
            now,
            NewInbound {
                message_id: message_id.to_string(),
                conversation_id: "conv-in".into(),
                pmode_id: PM_INBOUND.into(),
                ref_to_message_id: None,
                properties: props.into_iter().map(|(n, v, _)| (n, v)).collect(),
                payloads: ps,
                header: Some(header),
                receipt: None,
            },
            time::Duration::days(1),
            notify,
        )
        .await
        .expect("record_received");
    let id = match r {
        Received::New(id) => id,
        Received::Duplicate { .. } => panic!("unexpected duplicate {message_id}"),
    };
    store
        .store_receipt(
            id,
            now,
            format!("<Receipt for=\"{message_id}\"/>").into_bytes(),
        )
        .await
        .expect("receipt");
    id
}

/// Metadata JSON for PM_MAIN with both required properties and these payload declarations.
pub fn main_metadata(payloads: &[(&str, &str)]) -> serde_json::Value {
    serde_json::json!({
        "pmode": PM_MAIN,
        "conversationId": "conv-1",
        "properties": [
            {"name": "originalSender", "value": SENDER, "type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"},
            {"name": "finalRecipient", "value": RECIPIENT}
        ],
        "payloads": payloads.iter().map(|(part, mime)| serde_json::json!({"part": part, "mimeType": mime})).collect::<Vec<_>>()
    })
}

/// A multipart form: metadata, then the parts.
pub fn form(meta: &serde_json::Value, parts: &[(&str, Vec<u8>)]) -> reqwest::multipart::Form {
    let mut f = reqwest::multipart::Form::new().part(
        "metadata",
        reqwest::multipart::Part::text(meta.to_string())
            .mime_str("application/json")
            .expect("mime"),
    );
    for (name, bytes) in parts {
        f = f.part(
            (*name).to_string(),
            reqwest::multipart::Part::bytes(bytes.clone()).file_name((*name).to_string()),
        );
    }
    f
}

/// POSTs a submission with `token`.
pub async fn submit(
    api: &Api,
    token: &str,
    form: reqwest::multipart::Form,
    idempotency_key: Option<&str>,
) -> reqwest::Response {
    let mut req = api
        .client
        .post(api.url("/api/v1/messages"))
        .bearer_auth(token)
        .multipart(form);
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    req.send().await.expect("POST /messages")
}

/// Reads a problem answer and checks its shape (RFC 9457): content type, status, type, field.
pub async fn expect_problem(
    resp: reqwest::Response,
    status: u16,
    type_: &str,
    field: Option<&str>,
) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert_eq!(ct, "application/problem+json");
    let p: serde_json::Value = resp.json().await.expect("problem JSON");
    assert_eq!(p["type"], type_, "{p}");
    assert_eq!(p["status"], status, "{p}");
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
    assert!(p["detail"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
    match field {
        Some(f) => assert_eq!(p["field"], f, "{p}"),
        None => assert!(p.get("field").is_none(), "{p}"),
    }
    p
}

/// SHA-256 hex (independent of the gateway's implementation).
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Looks a message up directly in the store.
pub async fn stored(store: &SqliteStore, dir: Direction, id: &str) -> as4gw::store::MessageRecord {
    store
        .get_by_message_id(dir, id)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{id} not stored"))
}
