//! The OOTS helper API (`/api/v1/oots/…`) with the real MSH: red (evidence requester) and blue
//! (evidence provider) in process, each with the REST API in front of its `Msh`, wired by an
//! in-memory AS4 transport (the harness of `backend::e2e`).
//!
//! * the XML the helper builds equals the official samples element for element and reads back
//!   to the same EDM JSON;
//! * the whole two-step preview flow (digest §7.5) across both gateways, down to the PDF;
//! * an exchange without answer turns `TIMED_OUT` when T1 passes on the injected clock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use as4gw::backend::{AppState, BackendAccess, OotsSettings};
use as4gw::config::Config;
use as4gw::msh::{
    Keyring, ManualClock, Msh, MshSettings, SendError, Transport, WireRequest, WireResponse,
};
use as4gw::oots::{parse_edm, EdmDocument, QueryRequest, Subject};
use as4gw::pmode::{Registry, SetContext};
use as4gw::store::{MessageStore, SqliteStore};
use as4gw::xml::{Document, Node};
use axum::body::Bytes;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::backend::{expect_problem, sha256_hex};

const RED_URL: &str = "https://red.test/as4";
const BLUE_URL: &str = "https://blue.test/as4";
const RED: &str = "red-demo-token";
const BLUE: &str = "blue-demo-token";

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/oots").join(rel)).expect("fixture")
}

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

#[derive(Default)]
struct Loopback {
    peers: Mutex<HashMap<String, Weak<Msh>>>,
}

impl Transport for Loopback {
    fn post(&self, req: WireRequest) -> BoxFuture<'_, Result<WireResponse, SendError>> {
        Box::pin(async move {
            let body = tokio::fs::read(&req.file)
                .await
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

struct Gateway {
    msh: Arc<Msh>,
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
        clock.clone(),
        net,
        MshSettings::from_config(&cfg),
    );
    let backends: Vec<BackendAccess> = cfg.backends.iter().map(BackendAccess::from).collect();
    let state = AppState::new(store as Arc<dyn MessageStore>, msh.clone(), backends)
        .with_pmode_registry(reg)
        .with_oots(OotsSettings {
            clock,
            ..OotsSettings::default()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = as4gw::backend::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    Gateway {
        msh,
        base: format!("http://{addr}"),
    }
}

/// Red and blue, wired; the temp dir holds both stores and is deleted on drop.
struct Net {
    red: Gateway,
    blue: Gateway,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn net() -> Net {
    let dir = tempfile::tempdir().expect("tempdir");
    let pm = dir.path().join("pmodes");
    copy_pmodes(&pm);
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let wire = Arc::new(Loopback::default());
    let red = gateway(
        dir.path(),
        "red",
        "as4gw.toml",
        &pm,
        clock.clone(),
        wire.clone(),
    )
    .await;
    let blue = gateway(
        dir.path(),
        "blue",
        "as4gw-blue.toml",
        &pm,
        clock.clone(),
        wire.clone(),
    )
    .await;
    wire.peers
        .lock()
        .expect("lock")
        .insert(RED_URL.into(), Arc::downgrade(&red.msh));
    wire.peers
        .lock()
        .expect("lock")
        .insert(BLUE_URL.into(), Arc::downgrade(&blue.msh));
    Net {
        red,
        blue,
        clock,
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        _dir: dir,
    }
}

impl Net {
    async fn post_json(
        &self,
        g: &Gateway,
        token: &str,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", g.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    async fn accepted(&self, resp: reqwest::Response) -> Value {
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, 202, "{v}");
        assert_eq!(v["state"], "SUBMITTED", "{v}");
        v
    }

    async fn get(&self, g: &Gateway, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", g.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    async fn get_json(&self, g: &Gateway, token: &str, path: &str) -> Value {
        let resp = self.get(g, token, path).await;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    async fn exchange(&self, g: &Gateway, token: &str, id: &str) -> Value {
        self.get_json(g, token, &format!("/api/v1/oots/exchanges/{id}"))
            .await
    }

    /// Downloads the RegRep (first) part of a message.
    async fn regrep(&self, g: &Gateway, token: &str, mid: &str, dir: &str) -> Vec<u8> {
        let resp = self
            .get(
                g,
                token,
                &format!("/api/v1/messages/{mid}/payloads/regrep?direction={dir}"),
            )
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-ebrs+xml");
        resp.bytes().await.expect("bytes").to_vec()
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Element-for-element comparison (namespace URIs, local names, attributes, leaf text).
// ---------------------------------------------------------------------------------------------

fn structure(xml: &[u8]) -> Vec<String> {
    let doc = Document::parse(xml).expect("well-formed");
    let mut out = Vec::new();
    walk(doc.root(), 0, &mut out);
    out
}

fn walk(n: Node<'_>, depth: usize, out: &mut Vec<String>) {
    let Some(e) = n.element() else { return };
    let mut attrs: Vec<String> = e
        .attributes
        .iter()
        .map(|a| {
            let value = if a.ns.as_deref() == Some(as4gw::ns::XSI) && a.local == "type" {
                match a.value.split_once(':') {
                    Some((p, l)) => {
                        format!("{{{}}}{l}", n.lookup_namespace(Some(p)).unwrap_or("?"))
                    }
                    None => a.value.clone(),
                }
            } else {
                a.value.trim().to_owned()
            };
            format!("{{{}}}{}={}", a.ns.as_deref().unwrap_or(""), a.local, value)
        })
        .collect();
    attrs.sort();
    let kids: Vec<Node<'_>> = n.child_elements().collect();
    let text = if kids.is_empty() {
        n.text().trim().to_owned()
    } else {
        String::new()
    };
    out.push(format!(
        "{}{{{}}}{} [{}] {}",
        "  ".repeat(depth),
        e.ns.as_deref().unwrap_or(""),
        e.local,
        attrs.join(" "),
        text
    ));
    for k in kids {
        walk(k, depth + 1, out);
    }
}

fn assert_same_structure(what: &str, expected: &[String], actual: &[String]) {
    for (i, (e, a)) in expected.iter().zip(actual.iter()).enumerate() {
        assert_eq!(e, a, "{what}: differs at element #{i}");
    }
    assert_eq!(expected.len(), actual.len(), "{what}: element count");
}

/// The helper API's JSON for an official request: every field taken from the sample.
fn request_json(q: &QueryRequest, line: &str) -> Value {
    let is_ip = |c: Option<&str>| matches!(c, Some("IP") | Some("IntermediaryPlatform"));
    // The v1.0 birth sample lists only the intermediary platform: it is then the requester.
    let (er, ip) = match q
        .evidence_requester
        .iter()
        .find(|a| !is_ip(a.classification.as_deref()))
    {
        Some(er) => (
            er,
            q.evidence_requester
                .iter()
                .find(|a| is_ip(a.classification.as_deref())),
        ),
        None => (
            q.evidence_requester.first().expect("a requester agent"),
            None,
        ),
    };
    let mut v = json!({
        "edmVersion": line,
        "requestId": q.id,
        "issueDateTime": q.issue_date_time,
        "requester": er,
        "intermediary": ip,
        "provider": q.evidence_provider,
        "procedure": q.procedure,
        "requirements": q.requirements,
        "evidenceRequest": q.evidence_request,
        "evidenceProviderClassifications": q.evidence_provider_classifications,
        "authorizedRepresentative": q.authorized_representative,
        "possibilityForPreview": q.possibility_for_preview.unwrap_or(false),
        "explicitRequestGiven": q.explicit_request_given.unwrap_or(true),
        "previewLocation": q.preview_location,
        "returnLocation": q.return_location,
    });
    match &q.subject {
        Some(Subject::NaturalPerson(p)) => v["naturalPerson"] = json!(p),
        Some(Subject::LegalPerson(p)) => v["legalPerson"] = json!(p),
        None => {}
    }
    v
}

#[tokio::test]
async fn helper_requests_equal_the_official_samples_field_by_field() {
    let n = net().await;
    let samples = [
        ("oots-france/fixtures/reference/messages/requete.xml", "v2", "oots-v2-red-blue"),
        (
            "governikus-sdg/testfiles/Request-Response Samples/Secondary Education Completion Evidence/oots_request1_preview.xml",
            "v1",
            "oots-red-blue",
        ),
        (
            "governikus-sdg/testfiles/Request-Response Samples/Secondary Education Completion Evidence/oots_request2_after_preview.xml",
            "v1",
            "oots-red-blue",
        ),
        (
            "governikus-sdg/testfiles/Request-Response Samples/Birth Certificate/oots_request.xml",
            "v1",
            "oots-red-blue",
        ),
    ];
    for (rel, line, pmode) in samples {
        let sample = fixture(rel);
        let EdmDocument::QueryRequest(q) = parse_edm(&sample).expect("sample parses") else {
            panic!("{rel} is not a request");
        };
        let body = request_json(&q, line);
        let a = n
            .accepted(
                n.post_json(&n.red, RED, "/api/v1/oots/requests", &body)
                    .await,
            )
            .await;
        assert_eq!(a["pmodeId"], pmode, "{rel}");
        assert_eq!(a["requestId"], q.id.as_str());
        let mid = s(&a["messageId"]).to_string();
        let xml = n.regrep(&n.red, RED, &mid, "OUT").await;
        assert_same_structure(rel, &structure(&sample), &structure(&xml));
        // … and read back to the same EDM JSON.
        let back = parse_edm(&xml).expect("helper XML parses");
        assert_eq!(
            serde_json::to_value(&back).expect("json"),
            serde_json::to_value(parse_edm(&sample).expect("sample")).expect("json"),
            "{rel}"
        );
        // The header carries the four corners with their types (and v2 ExchangeId/SpecificationId).
        let view = n
            .get_json(&n.red, RED, &format!("/api/v1/messages/{mid}"))
            .await;
        let props = view["properties"].as_array().expect("properties");
        let prop = |name: &str| props.iter().find(|p| p["name"] == name).cloned();
        let er = &body["requester"]["identifier"];
        let os = prop("originalSender").expect("originalSender");
        assert_eq!(os["value"], er["value"], "{rel}");
        assert_eq!(os["type"], er["schemeId"], "{rel}");
        let fr = prop("finalRecipient").expect("finalRecipient");
        assert_eq!(
            fr["value"], body["provider"]["identifier"]["value"],
            "{rel}"
        );
        assert_eq!(view["action"], "ExecuteQueryRequest");
        assert_eq!(view["payloads"][0]["mimeType"], "application/x-ebrs+xml");
        if line == "v2" {
            assert_eq!(
                prop("ExchangeId").expect("ExchangeId")["value"],
                a["exchangeId"]
            );
            assert_eq!(
                prop("SpecificationId").expect("SpecificationId")["value"],
                "oots-edm:v2.0"
            );
        } else {
            assert!(prop("ExchangeId").is_none(), "{rel}");
            assert_eq!(view["conversationId"], a["exchangeId"], "{rel}");
        }
    }

    // A request that breaks an OOTS rule is refused before anything is queued.
    let EdmDocument::QueryRequest(q) = parse_edm(&fixture(
        "oots-france/fixtures/reference/messages/requete.xml",
    ))
    .expect("parse") else {
        panic!("not a request");
    };
    let mut body = request_json(&q, "v2");
    body["previewLocation"] = "http://insecure.example/preview".into();
    let resp = n
        .post_json(&n.red, RED, "/api/v1/oots/requests", &body)
        .await;
    let p = expect_problem(resp, 422, "/errors/invalid-field", Some("edm")).await;
    assert!(s(&p["detail"]).contains("R-EDM-REQ-C005"), "{p}");
    let mut body = request_json(&q, "v2");
    body["exchangeId"] = "not-a-uuid".into();
    let resp = n
        .post_json(&n.red, RED, "/api/v1/oots/requests", &body)
        .await;
    expect_problem(resp, 422, "/errors/invalid-field", Some("exchangeId")).await;
    let resp = n
        .http
        .post(format!("{}/api/v1/oots/requests", n.red.base))
        .json(&body)
        .send()
        .await
        .expect("POST");
    expect_problem(resp, 401, "/errors/unauthorized", Some("Authorization")).await;
}

fn v2_request() -> Value {
    json!({
        "edmVersion": "v2",
        "requester": {
            "identifier": {"schemeId": "urn:cef.eu:names:identifier:EAS:0009", "value": "00000000000002"},
            "names": [{"lang": "FR", "value": "Ministère de l'enseignement supérieur"}],
            "address": {"adminUnitLevel1": "FR"}
        },
        "provider": {
            "identifier": {"schemeId": "urn:cef.eu:names:identifier:EAS:9930", "value": "DE73524311"},
            "names": [{"lang": "EN", "value": "Civil Registration Office Berlin I"}]
        },
        "procedure": {"code": "T3"},
        "requirements": [{
            "identifier": "https://sr.oots.tech.ec.europa.eu/requirements/f8a6a284-34e9-42c7-9733-63b5c4f4aa42",
            "names": [{"lang": "EN", "value": "Proof of birth"}]
        }],
        "evidenceRequest": {
            "identifier": "41170824-15d9-4c16-984e-63b75b937b8c",
            "evidenceTypeClassification": "https://sr.oots.tech.ec.europa.eu/evidencetypeclassifications/DE/ca8afed6-2dc0-422a-a931-d21c3d8d370e",
            "titles": [{"lang": "EN", "value": "Certificate of Birth"}],
            "distributedAs": [{"format": "application/pdf"}]
        },
        "naturalPerson": {
            "levelOfAssurance": "High",
            "identifier": {"schemeId": "eidas", "value": "FR/DE/123123123"},
            "familyName": "Dupont",
            "givenName": "Jean",
            "dateOfBirth": "1992-10-22"
        },
        "possibilityForPreview": true
    })
}

#[tokio::test]
async fn preview_flow_across_two_gateways() {
    let n = net().await;

    // 1. red's backend asks, allowing a preview.
    let a1 = n
        .accepted(
            n.post_json(&n.red, RED, "/api/v1/oots/requests", &v2_request())
                .await,
        )
        .await;
    assert_eq!(a1["pmodeId"], "oots-v2-red-blue");
    let xid = s(&a1["exchangeId"]).to_string();
    let mid1 = s(&a1["messageId"]).to_string();
    assert!(s(&a1["requestId"]).starts_with("urn:uuid:"), "{a1}");
    assert_eq!(n.red.msh.run_once().await, 1);
    let x = n.exchange(&n.red, RED, &xid).await;
    assert_eq!(x["status"], "REQUESTED", "{x}");
    assert_eq!(x["timing"]["waitingFor"], "response");
    assert_eq!(x["edmVersion"], "v2");

    // 2. blue's backend sees the request in its exchange view and answers "preview required".
    let bx = n.exchange(&n.blue, BLUE, &xid).await;
    assert_eq!(bx["requests"][0]["messageId"], mid1.as_str(), "{bx}");
    assert_eq!(bx["requests"][0]["direction"], "IN");
    assert_eq!(bx["requests"][0]["document"]["possibilityForPreview"], true);
    let preview = "https://preview.blue.test/space?token=abc";
    let e = n
        .accepted(
            n.post_json(
                &n.blue,
                BLUE,
                "/api/v1/oots/exceptions",
                &json!({
                    "requestMessageId": mid1,
                    "previewLocation": preview,
                    "previewDescription": [{"lang": "EN", "value": "Please preview the evidence"}],
                    "previewMethod": "GET",
                    "detail": "The provider needs the user's preview"
                }),
            )
            .await,
        )
        .await;
    assert_eq!(e["pmodeId"], "oots-v2-blue-red");
    assert_eq!(e["exchangeId"], xid.as_str());
    assert_eq!(e["conversationId"], a1["conversationId"]);
    assert_eq!(n.blue.msh.run_once().await, 1);

    // 3. red shows the preview requirement.
    let x = n.exchange(&n.red, RED, &xid).await;
    assert_eq!(x["status"], "PREVIEW_REQUIRED", "{x}");
    assert_eq!(x["previewLocation"], preview);
    assert_eq!(x["timing"]["waitingFor"], "secondRequest");
    let ex = &x["exceptions"][0];
    assert_eq!(ex["direction"], "IN");
    assert_eq!(ex["action"], "ExceptionResponse");
    let exc = &ex["document"]["exceptions"][0];
    assert_eq!(exc["code"], "EDM:ERR:0002", "{ex}");
    assert_eq!(exc["exceptionType"], "AuthorizationExceptionType");
    assert_eq!(
        exc["severity"],
        "urn:sr.oots.tech.ec.europa.eu:codes:ErrorSeverity:EDMErrorResponse:PreviewRequired"
    );
    assert_eq!(exc["previewMethod"], "GET");
    assert_eq!(
        exc["previewDescription"][0]["value"],
        "Please preview the evidence"
    );
    assert_eq!(ex["document"]["requestId"], a1["requestId"]);
    assert_eq!(ex["document"]["errorProvider"]["classification"], "ERRP");

    // 4. red's second request, in the same exchange, with PreviewLocation and ReturnLocation.
    let mut r2 = v2_request();
    r2["exchangeId"] = xid.clone().into();
    r2["conversationId"] = a1["conversationId"].clone();
    r2["previewLocation"] = preview.into();
    r2["returnLocation"] = "https://portal.red.test/return".into();
    let a2 = n
        .accepted(n.post_json(&n.red, RED, "/api/v1/oots/requests", &r2).await)
        .await;
    assert_eq!(a2["exchangeId"], xid.as_str());
    assert_ne!(a2["requestId"], a1["requestId"]);
    let mid2 = s(&a2["messageId"]).to_string();
    assert_eq!(n.red.msh.run_once().await, 1);
    let x = n.exchange(&n.red, RED, &xid).await;
    assert_eq!(x["status"], "PREVIEW_REQUESTED", "{x}");
    assert_eq!(x["timing"]["waitingFor"], "responseAfterPreview");

    // 5. blue answers the second request with a PDF evidence.
    let pdf: Vec<u8> = b"%PDF-1.7\n"
        .iter()
        .copied()
        .chain((0..40_000u32).map(|i| (i * 31 % 251) as u8))
        .collect();
    let meta = json!({
        "requestMessageId": mid2,
        "evidences": [{
            "part": "birth-certificate",
            "mimeType": "application/pdf",
            "metadata": {
                "identifier": "b2d1f1e0-5c1a-4f7e-9a57-0d5c4d6f7a11",
                "issuingDate": "2026-11-27",
                "distributions": [{"format": "application/pdf"}]
            }
        }]
    });
    let form = crate::backend::form(&meta, &[("birth-certificate", pdf.clone())]);
    let resp = n
        .http
        .post(format!("{}/api/v1/oots/responses", n.blue.base))
        .bearer_auth(BLUE)
        .multipart(form)
        .send()
        .await
        .expect("POST");
    let r = n.accepted(resp).await;
    assert_eq!(r["requestId"], a2["requestId"]);
    assert_eq!(r["pmodeId"], "oots-v2-blue-red");
    let rmid = s(&r["messageId"]).to_string();
    // The RegRep document is the first part and references the evidence's cid: part.
    let xml = n.regrep(&n.blue, BLUE, &rmid, "OUT").await;
    let bview = n
        .get_json(&n.blue, BLUE, &format!("/api/v1/messages/{rmid}"))
        .await;
    assert_eq!(bview["payloads"][0]["mimeType"], "application/x-ebrs+xml");
    assert_eq!(bview["payloads"][1]["mimeType"], "application/pdf");
    let EdmDocument::QueryResponse(resp_doc) = parse_edm(&xml).expect("response parses") else {
        panic!("not a response");
    };
    assert_eq!(resp_doc.evidences.len(), 1);
    let href = resp_doc.evidences[0]
        .part
        .as_ref()
        .expect("RepositoryItemRef")
        .href
        .clone();
    assert_eq!(href, s(&bview["payloads"][1]["partId"]), "{bview}");
    assert_eq!(
        resp_doc.evidences[0].classifications[0].node,
        "MainEvidence"
    );
    assert_eq!(n.blue.msh.run_once().await, 1);

    // 6. red's exchange view shows everything, and the PDF downloads byte-identical.
    let x = n.exchange(&n.red, RED, &xid).await;
    assert_eq!(x["status"], "ANSWERED", "{x}");
    assert_eq!(x["requests"].as_array().map(Vec::len), Some(2), "{x}");
    assert_eq!(x["requests"][0]["messageId"], mid1.as_str());
    assert_eq!(x["requests"][1]["messageId"], mid2.as_str());
    assert_eq!(x["requests"][1]["document"]["previewLocation"], preview);
    assert_eq!(
        x["requests"][1]["document"]["returnLocation"],
        "https://portal.red.test/return"
    );
    assert_eq!(x["exceptions"].as_array().map(Vec::len), Some(1));
    assert_eq!(x["response"]["messageId"], rmid.as_str());
    assert_eq!(x["response"]["direction"], "IN");
    assert_eq!(x["response"]["document"]["requestId"], a2["requestId"]);
    assert_eq!(x["previewLocation"], preview);
    assert_eq!(x["timing"]["timedOut"], false);
    assert!(x["timing"]["deadline"].is_null(), "{x}");
    let ev = &x["evidences"][0];
    assert_eq!(ev["mimeType"], "application/pdf", "{x}");
    assert_eq!(ev["size"], pdf.len() as u64);
    assert_eq!(ev["sha256"], sha256_hex(&pdf));
    let resp = n.get(&n.red, RED, s(&ev["href"])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let got = resp.bytes().await.expect("bytes");
    assert!(
        got.as_ref() == pdf.as_slice(),
        "the PDF arrives byte-identical"
    );

    // Answering a message that is not an inbound request is refused.
    let resp = n
        .post_json(
            &n.blue,
            BLUE,
            "/api/v1/oots/exceptions",
            &json!({"requestMessageId": "nope@blue", "code": "EDM:ERR:0004"}),
        )
        .await;
    expect_problem(resp, 404, "/errors/not-found", Some("requestMessageId")).await;
    let resp = n
        .post_json(
            &n.blue,
            BLUE,
            "/api/v1/oots/exceptions",
            &json!({"requestMessageId": mid2, "code": "EDM:ERR:0042"}),
        )
        .await;
    expect_problem(resp, 422, "/errors/invalid-field", Some("code")).await;
}

#[tokio::test]
async fn unanswered_exchange_times_out_after_t1() {
    let n = net().await;
    let mut body = v2_request();
    body["edmVersion"] = "v1".into();
    body["procedure"] = json!({"localized": [{"lang": "EN", "value": "Registering a birth"}]});
    body["possibilityForPreview"] = false.into();
    let a = n
        .accepted(
            n.post_json(&n.red, RED, "/api/v1/oots/requests", &body)
                .await,
        )
        .await;
    assert_eq!(a["pmodeId"], "oots-red-blue");
    let xid = s(&a["exchangeId"]).to_string();
    assert_eq!(n.red.msh.run_once().await, 1);

    let x = n.exchange(&n.red, RED, &xid).await;
    assert_eq!(x["status"], "REQUESTED", "{x}");
    assert_eq!(x["edmVersion"], "v1");
    assert_eq!(x["timing"]["t1Seconds"], 360);
    assert_eq!(x["timing"]["timedOut"], false);
    let deadline = s(&x["timing"]["deadline"]).to_string();

    // Just before T1 nothing changes; past it the exchange has failed.
    n.clock.advance(time::Duration::minutes(5));
    let x = n.exchange(&n.red, RED, &xid).await;
    assert_eq!(x["status"], "REQUESTED", "{x}");
    n.clock.advance(time::Duration::minutes(2));
    let x = n.exchange(&n.red, RED, &xid).await;
    assert_eq!(x["status"], "TIMED_OUT", "{x}");
    assert_eq!(x["timing"]["timedOut"], true);
    assert_eq!(x["timing"]["waitingFor"], "response");
    assert_eq!(x["timing"]["deadline"], deadline.as_str());
    assert!(x["response"].is_null());

    // An unknown exchange is a 404 problem.
    let resp = n.get(&n.red, RED, "/api/v1/oots/exchanges/unknown").await;
    expect_problem(resp, 404, "/errors/not-found", None).await;
}
