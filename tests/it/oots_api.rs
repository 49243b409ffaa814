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
        .attributes()
        .map(|a| {
            let value = if a.ns == Some(as4gw::ns::XSI) && a.local == "type" {
                match a.value.split_once(':') {
                    Some((p, l)) => {
                        format!("{{{}}}{l}", n.lookup_namespace(Some(p)).unwrap_or("?"))
                    }
                    None => a.value.to_owned(),
                }
            } else {
                a.value.trim().to_owned()
            };
            format!("{{{}}}{}={}", a.ns.unwrap_or(""), a.local, value)
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
        e.ns.unwrap_or(""),
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

/// Rewrites the Content-ID domain of `cid:` references (`cid:part@domain` → `cid:part@to`):
/// the helper names evidence parts `<part>@<sending party id>`, the form the MSH gives them.
fn cid_domain_to(text: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("cid:") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let end = rest
            .find(|c: char| c == '"' || c == '<' || c.is_whitespace())
            .unwrap_or(rest.len());
        match rest[..end].split_once('@') {
            Some((local, _)) => {
                out.push_str(local);
                out.push('@');
                out.push_str(to);
            }
            None => out.push_str(&rest[..end]),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The helper API's response metadata for an official response: every field from the sample.
fn response_json(r: &as4gw::oots::QueryResponse, request_mid: &str) -> Value {
    let evidences: Vec<Value> = r
        .evidences
        .iter()
        .map(|e| {
            let part = e
                .part
                .as_ref()
                .expect("sample evidence has a RepositoryItemRef");
            let local = part
                .href
                .trim_start_matches("cid:")
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string();
            json!({
                "part": local,
                "mimeType": "application/pdf",
                "id": e.id,
                "title": part.title,
                "metadata": e.metadata,
                "classifications": e.classifications,
            })
        })
        .collect();
    json!({
        "requestMessageId": request_mid,
        "responseId": r.evidence_response_identifier,
        "issueDateTime": r.issue_date_time,
        "evidenceProvider": r.evidence_provider,
        "packageId": r.package_id,
        "evidences": evidences,
    })
}

/// The helper API's exception JSON for an official error: every field from the sample.
fn exception_json(r: &as4gw::oots::QueryResponse, request_mid: &str) -> Value {
    let x = r.exceptions.first().expect("sample has an exception");
    json!({
        "requestMessageId": request_mid,
        "code": x.code,
        "message": x.message,
        "detail": x.detail,
        "previewLocation": x.preview_location,
        "previewDescription": x.preview_description,
        "previewMethod": x.preview_method,
        "responseId": r.evidence_response_identifier,
        "timestamp": x.timestamp,
        "errorProvider": r.error_provider,
    })
}

/// `structure` without the `rim:Slot` named `name` (and everything under it).
fn without_slot(lines: &[String], name: &str) -> Vec<String> {
    let key = format!("{{}}name={name}]");
    let mut out = Vec::new();
    let mut skip: Option<usize> = None;
    for l in lines {
        let depth = l.len() - l.trim_start().len();
        if let Some(d) = skip {
            if depth > d {
                continue;
            }
            skip = None;
        }
        if l.contains("}Slot [") && l.contains(&key) {
            skip = Some(depth);
            continue;
        }
        out.push(l.clone());
    }
    assert!(out.len() < lines.len(), "no slot {name}");
    out
}

/// The structure and the EDM JSON of a sample with the cid: domains of `domain`.
fn sample_as_sent(sample: &[u8], domain: &str) -> (Vec<String>, Value) {
    let text = cid_domain_to(&String::from_utf8_lossy(sample), domain);
    let doc = parse_edm(text.as_bytes()).expect("sample parses");
    (
        structure(text.as_bytes()),
        serde_json::to_value(doc).expect("json"),
    )
}

#[tokio::test]
async fn helper_responses_and_exceptions_equal_the_official_samples_field_by_field() {
    const GOV: &str = "governikus-sdg/testfiles/Request-Response Samples";
    const FR: &str = "oots-france/fixtures/reference/messages";
    // (request sample, answer sample, EDM line); the request travels red → blue first.
    let pairs = [
        (
            format!("{GOV}/Birth Certificate/oots_request.xml"),
            format!("{GOV}/Birth Certificate/oots_response.xml"),
            "v1",
        ),
        (
            format!(
                "{GOV}/Secondary Education Completion Evidence/oots_request2_after_preview.xml"
            ),
            format!("{GOV}/Secondary Education Completion Evidence/oots_response.xml"),
            "v1",
        ),
        (
            format!("{GOV}/Secondary Education Completion Evidence/oots_request1_preview.xml"),
            format!("{GOV}/Secondary Education Completion Evidence/oots_exception_preview.xml"),
            "v1",
        ),
        (
            format!("{FR}/requete.xml"),
            format!("{FR}/reponse.xml"),
            "v2",
        ),
        (
            format!("{FR}/requete.xml"),
            format!("{FR}/erreur.xml"),
            "v2",
        ),
        (
            format!("{FR}/requete.xml"),
            format!("{FR}/erreurCapaciteNonSupportee.xml"),
            "v2",
        ),
        (
            format!("{FR}/requete.xml"),
            format!("{FR}/erreurExpiration.xml"),
            "v2",
        ),
        (
            format!("{FR}/requete.xml"),
            format!("{FR}/erreurRequeteInvalide.xml"),
            "v2",
        ),
    ];
    let mut other_requester = Vec::new();
    for (req_rel, rel, line) in pairs {
        let n = net().await;
        let EdmDocument::QueryRequest(q) = parse_edm(&fixture(&req_rel)).expect("request") else {
            panic!("{req_rel} is not a request");
        };
        let sample = fixture(&rel);
        let EdmDocument::QueryResponse(r) = parse_edm(&sample).expect("sample parses") else {
            panic!("{rel} is not a response");
        };
        // The oots-france answers refer to request id urn:uuid:4ffb5281-…, their requete.xml
        // has urn:uuid:1a2b3c4d-…: the request is sent with the id the answer names.
        let mut body = request_json(&q, line);
        body["requestId"] = json!(r.request_id.as_deref().expect("sample requestId"));
        let a = n
            .accepted(
                n.post_json(&n.red, RED, "/api/v1/oots/requests", &body)
                    .await,
            )
            .await;
        let mid = s(&a["messageId"]).to_string();
        assert_eq!(n.red.msh.run_once().await, 1, "{req_rel}");
        let answer = if r.exceptions.is_empty() {
            let meta = response_json(&r, &mid);
            let parts: Vec<(&str, Vec<u8>)> = meta["evidences"]
                .as_array()
                .expect("evidences")
                .iter()
                .map(|e| (s(&e["part"]), b"%PDF-1.7\n%sample\n".to_vec()))
                .collect();
            let form = crate::backend::form(&meta, &parts);
            let resp = n
                .http
                .post(format!("{}/api/v1/oots/responses", n.blue.base))
                .bearer_auth(BLUE)
                .multipart(form)
                .send()
                .await
                .expect("POST");
            n.accepted(resp).await
        } else {
            n.accepted(
                n.post_json(
                    &n.blue,
                    BLUE,
                    "/api/v1/oots/exceptions",
                    &exception_json(&r, &mid),
                )
                .await,
            )
            .await
        };
        assert_eq!(answer["exchangeId"], a["exchangeId"], "{rel}");
        let rmid = s(&answer["messageId"]).to_string();
        let xml = n.regrep(&n.blue, BLUE, &rmid, "OUT").await;
        let (mut expected, mut expected_json) = sample_as_sent(&sample, "blue_gw");
        // The Governikus v1.0 preview exception predates the code list: `severity="FAILURE"`
        // and no `code`. The helper writes the EDM form (EDM:ERR:0002, PreviewRequired
        // severity); exactly these two attributes differ, everything else is compared.
        if rel.ends_with("oots_exception_preview.xml") {
            let severity =
                "urn:sr.oots.tech.europa.eu:codes:ErrorSeverity:EDMErrorResponse:PreviewRequired";
            let at = expected
                .iter()
                .position(|l| l.contains("}Exception ["))
                .expect("rs:Exception");
            let line = expected[at]
                .replace("{}message=", "{}code=EDM:ERR:0002 {}message=")
                .replace("{}severity=FAILURE]", &format!("{{}}severity={severity}]"));
            assert_ne!(line, expected[at], "{rel}: the sample changed");
            expected[at] = line;
            assert_eq!(expected_json["exceptions"][0]["severity"], "FAILURE");
            assert!(expected_json["exceptions"][0]["code"].is_null());
            expected_json["exceptions"][0]["severity"] = severity.into();
            expected_json["exceptions"][0]["code"] = "EDM:ERR:0002".into();
        }
        let mut actual = structure(&xml);
        let back = parse_edm(&xml).expect("helper XML parses");
        let mut back_json = serde_json::to_value(&back).expect("json");
        // The helper names the Evidence Requester of the request it answers (identifier and
        // names, as all samples do; there is no field for it). Where a sample spells that agent
        // differently from its own request (the Governikus birth response drops the request's
        // `lang`), it must still be the same agent; the rest is compared element for element.
        if expected_json["evidenceRequester"] != back_json["evidenceRequester"] {
            let er = q
                .evidence_requester
                .iter()
                .find(|a| json!(a.identifier) == back_json["evidenceRequester"]["identifier"])
                .expect("the answer names one of the request's requesters");
            assert_eq!(
                expected_json["evidenceRequester"]["identifier"],
                json!(er.identifier),
                "{rel}: a different Evidence Requester than the request's"
            );
            assert_eq!(
                back_json["evidenceRequester"],
                json!({"identifier": er.identifier, "names": er.names}),
                "{rel}: identifier and names of the request's requester"
            );
            other_requester.push(rel.clone());
            expected = without_slot(&expected, "EvidenceRequester");
            actual = without_slot(&actual, "EvidenceRequester");
            expected_json["evidenceRequester"] = Value::Null;
            back_json["evidenceRequester"] = Value::Null;
        }
        assert_same_structure(&rel, &expected, &actual);
        // … and read back to the same EDM JSON.
        assert_eq!(back_json, expected_json, "{rel}");
        // It arrives at red as the answer of the exchange.
        assert_eq!(n.blue.msh.run_once().await, 1, "{rel}");
        let x = n.exchange(&n.red, RED, s(&a["exchangeId"])).await;
        if r.exceptions.is_empty() {
            assert_eq!(x["status"], "ANSWERED", "{rel}: {x}");
            assert_eq!(x["response"]["messageId"], rmid.as_str(), "{rel}");
        } else {
            let status = if r.exceptions[0].preview_location.is_some() {
                "PREVIEW_REQUIRED"
            } else {
                "FAILED"
            };
            assert_eq!(x["status"], status, "{rel}: {x}");
            assert_eq!(x["exceptions"][0]["messageId"], rmid.as_str(), "{rel}");
        }
    }
    assert_eq!(
        other_requester,
        [format!("{GOV}/Birth Certificate/oots_response.xml")],
        "samples whose Evidence Requester differs from their request's"
    );
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

/// Red's MSH submits a v2 request built from the oots-france reference `requete.xml`
/// (`procedure` removed when `broken`) directly, bypassing the helper's own checks.
async fn submit_raw_request(n: &Net, broken: bool) -> (String, String, String) {
    use as4gw::msh::api::{PayloadIn, PropertyIn, SubmitRequest, Submitter};
    let EdmDocument::QueryRequest(mut q) = parse_edm(&fixture(
        "oots-france/fixtures/reference/messages/requete.xml",
    ))
    .expect("edm") else {
        panic!("requete.xml is no request");
    };
    if broken {
        q.procedure = None;
    }
    let file = n
        .red
        .msh
        .store()
        .spool()
        .write_bytes(&as4gw::oots::write_request(&q))
        .await
        .expect("spool");
    let conv = uuid::Uuid::new_v4().to_string();
    let xid = uuid::Uuid::new_v4().to_string();
    let prop = |name: &str, value: &str, t: Option<&str>| PropertyIn {
        name: name.into(),
        value: value.into(),
        prop_type: t.map(Into::into),
    };
    let r = n
        .red
        .msh
        .submit(SubmitRequest {
            pmode_id: Some("oots-v2-red-blue".into()),
            action: Some("ExecuteQueryRequest".into()),
            conversation_id: Some(conv.clone()),
            properties: vec![
                prop(
                    "originalSender",
                    "00000000000002",
                    Some("urn:cef.eu:names:identifier:EAS:0009"),
                ),
                prop(
                    "finalRecipient",
                    "DE73524311",
                    Some("urn:cef.eu:names:identifier:EAS:9930"),
                ),
                prop("ExchangeId", &xid, None),
                prop("SpecificationId", "oots-edm:v2.0", None),
            ],
            payloads: vec![PayloadIn {
                part_name: "regrep".into(),
                mime_type: "application/x-ebrs+xml".into(),
                properties: Vec::new(),
                file,
            }],
            ..SubmitRequest::default()
        })
        .await
        .expect("submit");
    (r.message_id, conv, xid)
}

/// Blue's outbox deliveries (kind `delivery`) of the message with this store id.
async fn deliveries(g: &Gateway, id: as4gw::store::StoreId) -> usize {
    g.msh
        .store()
        .lease_outbox(
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
            "test",
            100,
            time::Duration::minutes(1),
        )
        .await
        .expect("outbox")
        .iter()
        .filter(|i| i.kind == "delivery" && i.message == Some(id))
        .count()
}

#[tokio::test]
async fn broken_request_is_answered_by_the_gateway_with_edm_err_0003() {
    use as4gw::store::{Direction, Filter, State};
    let n = net().await;

    // Control: the intact request is delivered to blue's backend as before.
    let (ok_mid, _, _) = submit_raw_request(&n, false).await;
    assert_eq!(n.red.msh.run_once().await, 1);
    let rec = n
        .blue
        .msh
        .store()
        .get_by_message_id(Direction::Inbound, &ok_mid)
        .await
        .expect("get")
        .expect("blue has the intact request");
    assert_eq!(rec.state, State::Received, "{:?}", rec.last_detail);
    assert_eq!(deliveries(&n.blue, rec.id).await, 1);
    assert_eq!(
        n.blue.msh.run_once().await,
        0,
        "no answer to a valid request"
    );

    // The request without Procedure: acknowledged at the AS4 level, answered by blue's gateway.
    let (mid, conv, xid) = submit_raw_request(&n, true).await;
    assert_eq!(n.red.msh.run_once().await, 1);
    let sent = n
        .red
        .msh
        .store()
        .get_by_message_id(Direction::Outbound, &mid)
        .await
        .expect("get")
        .expect("red's request");
    assert_eq!(sent.state, State::Acknowledged, "{:?}", sent.last_detail);
    let rec = n
        .blue
        .msh
        .store()
        .get_by_message_id(Direction::Inbound, &mid)
        .await
        .expect("get")
        .expect("blue stored the request");
    assert_eq!(rec.state, State::Delivered);
    let events = n.blue.msh.store().events(rec.id).await.expect("events");
    let last = events.last().expect("an event");
    assert_eq!(last.to, State::Delivered);
    assert!(
        last.detail
            .contains("answered with EDM:ERR:0003 by the gateway"),
        "{events:?}"
    );
    assert_eq!(
        deliveries(&n.blue, rec.id).await,
        0,
        "backend got the request"
    );
    assert_eq!(n.blue.msh.run_once().await, 1, "the answer is sent");

    // Red receives the ExceptionResponse in the same conversation, corners swapped.
    let page = n
        .red
        .msh
        .store()
        .list(
            Filter {
                direction: Some(Direction::Inbound),
                conversation_id: Some(conv.clone()),
                ..Filter::default()
            },
            None,
            10,
        )
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    let ans = &page.items[0];
    assert!(
        ans.header
            .as_deref()
            .unwrap_or_default()
            .contains("ExceptionResponse"),
        "{:?}",
        ans.header
    );
    let prop = |name: &str| {
        ans.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(prop("ExchangeId").as_deref(), Some(xid.as_str()));
    assert_eq!(prop("originalSender").as_deref(), Some("DE73524311"));
    assert_eq!(prop("finalRecipient").as_deref(), Some("00000000000002"));
    assert_eq!(ans.pmode_id, "oots-v2-blue-red");
    let bytes = n
        .red
        .msh
        .store()
        .spool()
        .read_all(&ans.payloads[0].file)
        .await
        .expect("answer payload");
    let EdmDocument::QueryResponse(r) = parse_edm(&bytes).expect("edm") else {
        panic!("the answer is no QueryResponse");
    };
    assert_eq!(r.exceptions.len(), 1);
    let ex = &r.exceptions[0];
    assert_eq!(ex.code.as_deref(), Some("EDM:ERR:0003"));
    assert_eq!(ex.exception_type, "InvalidRequestExceptionType");
    let d = ex.detail.clone().unwrap_or_default();
    assert!(d.contains("Procedure"), "{d}");
    assert!(r.status.ends_with(":Failure"), "{}", r.status);
}
