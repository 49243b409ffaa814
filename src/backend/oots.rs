//! The OOTS helper API (`/api/v1/oots/…`): build, check and send EDM documents for a backend
//! that speaks JSON, and show one evidence exchange as a whole.
//!
//! * `POST /oots/requests` — JSON → `query:QueryRequest` ([`crate::oots::write_request`]),
//!   judged with [`crate::oots::check`] against the header it will travel with, submitted on the
//!   OOTS P-Mode of the EDM version through the [`crate::msh::api::Submitter`].
//! * `POST /oots/responses` — multipart: JSON metadata naming the inbound request it answers,
//!   then the evidence files → `query:QueryResponse` with one `ExtrinsicObject` per evidence
//!   whose `RepositoryItemRef` names the evidence's `cid:` part; the RegRep document is the
//!   first part (`application/x-ebrs+xml`).
//! * `POST /oots/exceptions` — an EDM error response (EDM:ERR:0001–0008; with
//!   `previewLocation` the "preview required" answer of the two-step flow, digest §7.5).
//! * `GET /oots/exchanges/{id}` — every message of one exchange (by `ExchangeId`, or for v1.x
//!   by the ConversationId the helper sets to the exchange id), its state, the evidences with
//!   download links, and the deadline T1/T2/T3 (digest §7.7) against an injected clock.
//!
//! Nothing here is stored beyond the messages themselves: the exchange view is rebuilt from the
//! store on every call (the RegRep part of each message is parsed again).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio_util::io::StreamReader;
use utoipa::ToSchema;

use super::auth::{log_forbidden, BackendAccess, Caller};
use super::handlers::resolve;
use super::model::{encode_segment, message_path, message_view, payload_names, rfc3339};
use super::problem::{Problem, ProblemType};
use super::AppState;
use crate::msh::api::{PayloadIn, PropertyIn, SubmitRequest, SubmitResult};
use crate::msh::{Clock, SystemClock};
use crate::oots::model::*;
use crate::oots::rules::{HeaderFields, MessageProperty as EdmProperty, PayloadPart};
use crate::oots::{
    check, parse_edm, write_request, write_response, ACTION_EXCEPTION, ACTION_REQUEST,
    ACTION_RESPONSE, EDM_V1, EDM_V2, MIME_EBRS, PROP_EXCHANGE_ID, PROP_FINAL_RECIPIENT,
    PROP_ORIGINAL_SENDER, PROP_SPECIFICATION_ID, RS_STATUS_FAILURE, RS_STATUS_SUCCESS,
};
use crate::pmode::PMode;
use crate::store::{Direction, FileRef, Filter, MessageRecord};

/// OOTS service value and type (digest §6.3).
const SERVICE: &str = "QueryManager";
const SERVICE_TYPE: &str = "urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0";
/// Role of both gateways (digest §6.3, §6.4).
const GATEWAY_ROLE: &str = "http://sdg.europa.eu/edelivery/gateway";
/// Part name (Content-ID local part) of the RegRep document.
const REGREP_PART: &str = "regrep";
/// Largest RegRep document read back for the exchange view.
const MAX_REGREP: u64 = 16 << 20;
/// Messages of one exchange looked at, at most.
const MAX_EXCHANGE_MESSAGES: usize = 200;

/// Timeouts of the exchange view (digest §7.7) and the clock they are measured with.
#[derive(Clone)]
pub struct OotsSettings {
    /// Request → response round trip (evidence requester side default: 6 min).
    pub t1: time::Duration,
    /// User follows the preview link (16 min).
    pub t2: time::Duration,
    /// User reviews and decides in the preview (41 min).
    pub t3: time::Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for OotsSettings {
    /// The evidence requester's defaults of digest §7.7 and the system clock.
    fn default() -> Self {
        OotsSettings {
            t1: time::Duration::minutes(6),
            t2: time::Duration::minutes(16),
            t3: time::Duration::minutes(41),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for OotsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OotsSettings")
            .field("t1", &self.t1)
            .field("t2", &self.t2)
            .field("t3", &self.t3)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// JSON documents
// ---------------------------------------------------------------------------------------------

/// `v1` (`oots-edm:v1.0`) or `v2` (`oots-edm:v2.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EdmLine {
    V1,
    V2,
}

impl EdmLine {
    fn version(self) -> EdmVersion {
        match self {
            EdmLine::V1 => EdmVersion::V1,
            EdmLine::V2 => EdmVersion::V2,
        }
    }
    fn spec(self) -> &'static str {
        match self {
            EdmLine::V1 => EDM_V1,
            EdmLine::V2 => EDM_V2,
        }
    }
    fn of(v: EdmVersion) -> EdmLine {
        match v {
            EdmVersion::V1 => EdmLine::V1,
            EdmVersion::V2 => EdmLine::V2,
        }
    }
}

/// A four-corner party (`originalSender` / `finalRecipient` property with its `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Corner {
    pub value: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub corner_type: Option<String>,
}

/// `POST /api/v1/oots/requests`. Agents, persons, requirements and the evidence request use the
/// EDM JSON model of `docs/oots.md`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OotsRequestIn {
    /// `v1` or `v2`.
    pub edm_version: EdmLine,
    /// P-Mode id; by default the caller's OOTS P-Mode of this EDM version.
    #[serde(default)]
    pub pmode: Option<String>,
    /// `QueryRequest/@id`; generated (`urn:uuid:` in v2, a bare UUID in v1).
    #[serde(default)]
    pub request_id: Option<String>,
    /// The exchange: the v2 `ExchangeId` (a UUID), in v1 the ConversationId. Generated for a
    /// first request; the second request of the preview flow passes the first one's.
    #[serde(default)]
    pub exchange_id: Option<String>,
    /// ebMS ConversationId; default: the exchange id.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// `IssueDateTime`; default: now.
    #[serde(default)]
    pub issue_date_time: Option<String>,
    /// The Evidence Requester (`classification` defaults to `ER` in v2).
    #[schema(value_type = Object)]
    pub requester: Agent,
    /// An Intermediary Platform acting for the requester (`IP`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub intermediary: Option<Agent>,
    /// The Evidence Provider.
    #[schema(value_type = Object)]
    pub provider: Agent,
    /// `originalSender`; default: the requester's identifier and scheme.
    #[serde(default)]
    pub original_sender: Option<Corner>,
    /// `finalRecipient`; default: the provider's identifier and scheme.
    #[serde(default)]
    pub final_recipient: Option<Corner>,
    /// `{"code": "T3"}` (v2) or `{"localized": [{"lang": "EN", "value": "…"}]}` (v1).
    #[schema(value_type = Object)]
    pub procedure: Procedure,
    #[schema(value_type = Vec<Object>)]
    pub requirements: Vec<Requirement>,
    /// The evidence type asked for (`evidenceTypeClassification`, titles, `distributedAs`).
    #[schema(value_type = Object)]
    pub evidence_request: EvidenceTypeRequest,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub evidence_provider_classifications: Vec<EvidenceProviderClassification>,
    /// Natural person (with `levelOfAssurance`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub natural_person: Option<NaturalPerson>,
    /// Legal person (with `levelOfAssurance`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub legal_person: Option<LegalPerson>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub authorized_representative: Option<NaturalPerson>,
    #[serde(default)]
    pub possibility_for_preview: bool,
    #[serde(default = "yes")]
    pub explicit_request_given: bool,
    /// Second request of the preview flow: the provider's `PreviewLocation`.
    #[serde(default)]
    pub preview_location: Option<String>,
    /// Second request (v2): where the preview sends the user back.
    #[serde(default)]
    pub return_location: Option<String>,
}

fn yes() -> bool {
    true
}

/// Answer of the three sending routes (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OotsAccepted {
    pub message_id: String,
    pub conversation_id: String,
    pub exchange_id: String,
    /// `QueryRequest/@id` (of the request sent, or answered).
    pub request_id: String,
    pub pmode_id: String,
    pub state: String,
    /// The message (`/api/v1/messages/…`).
    pub location: String,
    /// The exchange view.
    pub exchange: String,
}

/// One evidence of `POST /api/v1/oots/responses`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvidenceIn {
    /// The multipart part with the file; also the Content-ID local part.
    pub part: String,
    /// MIME type; default: the part's Content-Type.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// `ExtrinsicObject/@id`; generated (`urn:uuid:…`).
    #[serde(default)]
    pub id: Option<String>,
    /// `rim:RepositoryItemRef/@xlink:title`; default: the part name.
    #[serde(default)]
    pub title: Option<String>,
    /// `EvidenceMetadata` (`sdg:Evidence`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<EvidenceMetadata>,
    /// v2 classifications; default in v2: `MainEvidence`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub classifications: Option<Vec<Classification>>,
}

/// The `metadata` part of `POST /api/v1/oots/responses`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OotsResponseIn {
    /// MessageId of the inbound request this answers.
    pub request_message_id: String,
    #[serde(default)]
    pub pmode: Option<String>,
    /// `EvidenceResponseIdentifier`; generated.
    #[serde(default)]
    pub response_id: Option<String>,
    #[serde(default)]
    pub issue_date_time: Option<String>,
    /// Default: the request's Evidence Provider (classification `EP` in v2).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub evidence_provider: Option<Vec<Agent>>,
    /// v2 package id; generated in v2.
    #[serde(default)]
    pub package_id: Option<String>,
    pub evidences: Vec<EvidenceIn>,
}

/// `POST /api/v1/oots/exceptions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OotsExceptionIn {
    /// MessageId of the inbound request this answers.
    pub request_message_id: String,
    #[serde(default)]
    pub pmode: Option<String>,
    /// `EDM:ERR:0001` … `EDM:ERR:0008`; default `EDM:ERR:0002` with a preview location.
    #[serde(default)]
    pub code: Option<String>,
    /// Default: the code list's message.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    /// Makes this the "preview required" exception (digest §7.5); https only.
    #[serde(default)]
    pub preview_location: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub preview_description: Vec<LocalizedText>,
    /// `GET` or `POST`.
    #[serde(default)]
    pub preview_method: Option<String>,
    /// `EvidenceResponseIdentifier`; generated.
    #[serde(default)]
    pub response_id: Option<String>,
    /// The exception's `Timestamp`; default: now.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `ErrorProvider` (v2); default: the request's Evidence Provider with classification `ERRP`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub error_provider: Option<Agent>,
}

/// One message of an exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeMessage {
    pub message_id: String,
    /// `OUT` or `IN`.
    pub direction: String,
    pub state: String,
    pub action: Option<String>,
    pub created_at: String,
    /// Normalised request id (`requestId` of an answer).
    pub request_id: Option<String>,
    /// The RegRep document as EDM JSON (`docs/oots.md`).
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    /// Where to fetch the message.
    pub href: String,
}

/// One evidence of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceView {
    pub id: String,
    /// `RepositoryItemRef`.
    pub part_ref: Option<String>,
    pub mime_type: Option<String>,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    /// Download path (`GET /api/v1/messages/{id}/payloads/{name}`), when the part is there.
    pub href: Option<String>,
}

/// Deadlines (digest §7.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub t1_seconds: i64,
    pub t2_seconds: i64,
    pub t3_seconds: i64,
    pub now: String,
    /// What is awaited: `response` (T1), `secondRequest` (T2), `responseAfterPreview` (T3+T1).
    pub waiting_for: Option<String>,
    pub deadline: Option<String>,
    pub timed_out: bool,
}

/// `GET /api/v1/oots/exchanges/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeView {
    pub exchange_id: String,
    pub edm_version: Option<EdmLine>,
    pub conversation_id: Option<String>,
    /// `REQUESTED`, `PREVIEW_REQUIRED`, `PREVIEW_REQUESTED`, `ANSWERED`, `FAILED`, `TIMED_OUT`.
    pub status: String,
    pub requests: Vec<ExchangeMessage>,
    /// Every error response, oldest first.
    pub exceptions: Vec<ExchangeMessage>,
    pub response: Option<ExchangeMessage>,
    pub preview_location: Option<String>,
    pub evidences: Vec<EvidenceView>,
    pub timing: Timing,
}

/// The multipart form of `POST /api/v1/oots/responses` (documentation only).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ResponseForm {
    /// JSON metadata, first part.
    metadata: OotsResponseIn,
    /// One part per evidence, named as in `metadata.evidences[].part`.
    #[schema(value_type = Option<String>, format = Binary)]
    evidence: Option<Vec<u8>>,
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::InvalidField, detail).field(field)
}

fn bad(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::InvalidRequest, detail)
}

fn now_text(state: &AppState) -> String {
    rfc3339(state.oots.clock.now())
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn is_v2_pmode(p: &PMode) -> bool {
    p.properties.iter().any(|r| {
        r.name == PROP_EXCHANGE_ID
            || (r.name == PROP_SPECIFICATION_ID && r.value.as_deref() == Some(EDM_V2))
    })
}

/// The P-Mode to send on: the one named, or the caller's only OOTS P-Mode (service
/// QueryManager, a leg with `action`) of this EDM line whose sending party is `from_party`
/// (when given).
fn choose_pmode(
    state: &AppState,
    caller: &BackendAccess,
    explicit: Option<&str>,
    line: EdmLine,
    action: &str,
) -> Result<(String, Option<Arc<PMode>>), Problem> {
    let reg = state.registry.as_ref();
    if let Some(id) = explicit {
        let pm = reg.and_then(|r| r.current().get(id).cloned());
        return Ok((id.to_string(), pm));
    }
    let Some(reg) = reg else {
        return Err(Problem::new(
            ProblemType::UnknownPmode,
            "this gateway has no P-Mode registry for the OOTS API; name the P-Mode",
        )
        .field("pmode"));
    };
    let set = reg.current();
    let found: Vec<Arc<PMode>> = set
        .pmodes()
        .iter()
        .filter(|p| caller.allowed_pmodes.iter().any(|a| a == &p.id))
        .filter(|p| p.service.value == SERVICE)
        .filter(|p| p.legs.iter().any(|l| l.action == action))
        .filter(|p| is_v2_pmode(p) == (line == EdmLine::V2))
        .cloned()
        .collect();
    match found.len() {
        1 => Ok((found[0].id.clone(), Some(found[0].clone()))),
        0 => Err(Problem::new(
            ProblemType::UnknownPmode,
            format!(
                "backend {} may use no OOTS P-Mode for EDM {} with action {action}",
                caller.name,
                line.spec()
            ),
        )
        .field("pmode")),
        _ => Err(Problem::new(
            ProblemType::AmbiguousPmode,
            format!(
                "several OOTS P-Modes fit ({}); name one",
                found
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .field("pmode")),
    }
}

/// The Content-ID domain the MSH will use (the sending party's id), to predict `cid:`s.
fn cid_domain(pm: Option<&PMode>, action: &str) -> Option<String> {
    let pm = pm?;
    let leg = pm.legs.iter().find(|l| l.action == action)?;
    Some(pm.sender_receiver(leg).0.party_id.id.clone())
}

fn header_fields(
    action: &str,
    conversation_id: &str,
    props: &[PropertyIn],
    parts: Vec<PayloadPart>,
) -> HeaderFields {
    HeaderFields {
        service: SERVICE.into(),
        service_type: Some(SERVICE_TYPE.into()),
        action: action.into(),
        from_role: GATEWAY_ROLE.into(),
        to_role: GATEWAY_ROLE.into(),
        conversation_id: Some(conversation_id.into()),
        message_id: None,
        properties: props
            .iter()
            .map(|p| EdmProperty {
                name: p.name.clone(),
                value: p.value.clone(),
                r#type: p.prop_type.clone(),
            })
            .collect(),
        parts,
    }
}

/// Refuses a document that breaks an OOTS rule (422, `field` = `edm`).
fn judge(h: &HeaderFields, doc: &EdmDocument) -> Result<(), Problem> {
    let v = check(h, doc);
    if v.is_empty() {
        return Ok(());
    }
    Err(invalid(
        "edm",
        format!(
            "the EDM document would break OOTS rules: {}",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    ))
}

async fn discard(state: &AppState, files: &[FileRef]) {
    let spool = state.store.spool();
    for f in files {
        if let Err(e) = spool.discard(f).await {
            tracing::warn!(file = %f.name(), error = %e, "could not delete a spooled OOTS file");
        }
    }
}

/// Hands a built message to the MSH; spooled files of a refused submission are deleted.
async fn send(
    state: &AppState,
    caller: &BackendAccess,
    req: SubmitRequest,
) -> Result<SubmitResult, Problem> {
    let props: Vec<(String, String)> = req
        .properties
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    let files: Vec<FileRef> = req.payloads.iter().map(|p| p.file.clone()).collect();
    if let Err(p) = caller.check_submit(req.pmode_id.as_deref(), &props) {
        log_forbidden(caller, "oots submit", &p);
        discard(state, &files).await;
        return Err(p);
    }
    match state.submitter.submit(req).await {
        Ok(r) => {
            crate::telemetry::message_span(
                crate::telemetry::Stage::Submit,
                &r.message_id,
                &r.conversation_id,
                &r.pmode_id,
            )
            .in_scope(|| tracing::info!(backend = %caller.name, "OOTS message accepted"));
            Ok(r)
        }
        Err(e) => {
            // As in the plain submit: after an internal or store failure the commit may have
            // happened, so the files stay (an unreferenced file costs disk, a deleted
            // referenced one loses a message).
            if !matches!(
                e,
                crate::msh::api::SubmitError::Internal(_)
                    | crate::msh::api::SubmitError::Unavailable(_)
            ) {
                discard(state, &files).await;
            }
            Err(Problem::from(e))
        }
    }
}

fn accepted(r: SubmitResult, exchange_id: String, request_id: String) -> Response {
    let a = OotsAccepted {
        location: message_path(&r.message_id),
        exchange: format!("/api/v1/oots/exchanges/{}", encode_segment(&exchange_id)),
        message_id: r.message_id,
        conversation_id: r.conversation_id,
        exchange_id,
        request_id,
        pmode_id: r.pmode_id,
        state: r.state,
    };
    let mut resp = (StatusCode::ACCEPTED, Json(&a)).into_response();
    if let Ok(v) = HeaderValue::from_str(&a.exchange) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Reads the RegRep (first) payload of a stored message.
async fn regrep_of(state: &AppState, rec: &MessageRecord) -> Result<Option<EdmDocument>, Problem> {
    let Some(first) = rec.payloads.first() else {
        return Ok(None);
    };
    if first.file.size() > MAX_REGREP {
        return Ok(None);
    }
    let mut f = state.store.spool().open_reader(&first.file).await?;
    let mut buf = Vec::with_capacity(first.file.size() as usize);
    f.read_to_end(&mut buf)
        .await
        .map_err(|e| Problem::internal(format!("reading the RegRep part: {e}")))?;
    Ok(parse_edm(&buf).ok())
}

/// What an answer needs from the inbound request it answers.
struct Answered {
    request: QueryRequest,
    line: EdmLine,
    conversation_id: String,
    exchange_id: Option<String>,
    /// originalSender / finalRecipient of the request (swapped for the answer).
    sender: Option<PropertyIn>,
    recipient: Option<PropertyIn>,
}

impl Answered {
    /// The answer's properties: corners swapped, v2 ExchangeId and SpecificationId.
    fn properties(&self) -> Vec<PropertyIn> {
        let mut v = Vec::new();
        if let Some(r) = &self.recipient {
            v.push(PropertyIn {
                name: PROP_ORIGINAL_SENDER.into(),
                value: r.value.clone(),
                prop_type: r.prop_type.clone(),
            });
        }
        if let Some(s) = &self.sender {
            v.push(PropertyIn {
                name: PROP_FINAL_RECIPIENT.into(),
                value: s.value.clone(),
                prop_type: s.prop_type.clone(),
            });
        }
        if self.line == EdmLine::V2 {
            if let Some(x) = &self.exchange_id {
                v.push(PropertyIn {
                    name: PROP_EXCHANGE_ID.into(),
                    value: x.clone(),
                    prop_type: None,
                });
            }
            v.push(PropertyIn {
                name: PROP_SPECIFICATION_ID.into(),
                value: EDM_V2.into(),
                prop_type: None,
            });
        }
        v
    }

    fn exchange(&self) -> String {
        self.exchange_id
            .clone()
            .unwrap_or_else(|| self.conversation_id.clone())
    }
}

async fn answered(
    state: &AppState,
    caller: &Caller,
    message_id: &str,
) -> Result<Answered, Problem> {
    let rec = resolve(state, caller, message_id, Some(Direction::Inbound))
        .await
        .map_err(|p| p.field("requestMessageId"))?;
    let Some(EdmDocument::QueryRequest(request)) = regrep_of(state, &rec).await? else {
        return Err(invalid(
            "requestMessageId",
            format!("message {message_id} does not carry a query:QueryRequest"),
        ));
    };
    let line = request.version().map(EdmLine::of).ok_or_else(|| {
        invalid(
            "requestMessageId",
            "the request declares no EDM version this gateway knows",
        )
    })?;
    let view = message_view(&rec);
    let prop = |n: &str| {
        view.properties
            .iter()
            .find(|p| p.name == n)
            .map(|p| PropertyIn {
                name: p.name.clone(),
                value: p.value.clone(),
                prop_type: p.prop_type.clone(),
            })
    };
    Ok(Answered {
        line,
        conversation_id: rec.conversation_id.clone(),
        exchange_id: prop(PROP_EXCHANGE_ID).map(|p| p.value),
        sender: prop(PROP_ORIGINAL_SENDER),
        recipient: prop(PROP_FINAL_RECIPIENT),
        request,
    })
}

fn corner_of(c: Option<Corner>, a: &Agent) -> PropertyIn {
    match c {
        Some(c) => PropertyIn {
            name: String::new(),
            value: c.value,
            prop_type: c.corner_type,
        },
        None => PropertyIn {
            name: String::new(),
            value: a.identifier.value.clone(),
            prop_type: a.identifier.scheme_id.clone(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

/// Send an evidence request.
///
/// Builds the `query:QueryRequest`, checks it with the OOTS header rules and submits it on the
/// OOTS P-Mode of the EDM version (v2: with `ExchangeId` and `SpecificationId`).
#[utoipa::path(
    post,
    path = "/api/v1/oots/requests",
    tag = "oots",
    operation_id = "sendOotsRequest",
    request_body(content = OotsRequestIn, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted and durable", body = OotsAccepted,
         headers(("Location" = String, description = "Path of the exchange"))),
        (status = 400, description = "Unreadable JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Several P-Modes fit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, OOTS rule broken, no P-Mode", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn send_request(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let r: OotsRequestIn = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("not a valid OOTS request document: {e}")))?;
    let line = r.edm_version;
    let (pmode_id, pm) = choose_pmode(&state, &caller.0, r.pmode.as_deref(), line, ACTION_REQUEST)?;
    let exchange_id = match &r.exchange_id {
        Some(x) if line == EdmLine::V2 && !crate::oots::rules::is_uuid(x) => {
            return Err(invalid("exchangeId", "the v2 ExchangeId must be a UUID"))
        }
        Some(x) => x.clone(),
        None => new_uuid(),
    };
    let conversation_id = r.conversation_id.clone().unwrap_or(exchange_id.clone());
    let request_id = r.request_id.clone().unwrap_or_else(|| match line {
        EdmLine::V1 => new_uuid(),
        EdmLine::V2 => format!("urn:uuid:{}", new_uuid()),
    });
    let subject = match (r.natural_person.clone(), r.legal_person.clone()) {
        (Some(p), None) => Subject::NaturalPerson(p),
        (None, Some(p)) => Subject::LegalPerson(p),
        _ => {
            return Err(invalid(
                "naturalPerson",
                "give exactly one of naturalPerson and legalPerson",
            ))
        }
    };
    // v2 classifies every agent (`ER`, `IP`); the v1.0 samples may leave the requester
    // unclassified, so v1 takes what it is given.
    let mut requester = r.requester.clone();
    if requester.classification.is_none() && line == EdmLine::V2 {
        requester.classification = Some("ER".into());
    }
    let mut agents = vec![requester];
    if let Some(mut ip) = r.intermediary.clone() {
        if ip.classification.is_none() {
            ip.classification = Some(
                match line {
                    EdmLine::V1 => "IntermediaryPlatform",
                    EdmLine::V2 => "IP",
                }
                .into(),
            );
        }
        agents.push(ip);
    }
    let q = QueryRequest {
        id: request_id.clone(),
        specification_identifier: Some(line.spec().into()),
        issue_date_time: Some(
            r.issue_date_time
                .clone()
                .unwrap_or_else(|| now_text(&state)),
        ),
        procedure: Some(r.procedure.clone()),
        preview_location: r.preview_location.clone(),
        return_location: r.return_location.clone(),
        possibility_for_preview: Some(r.possibility_for_preview),
        explicit_request_given: Some(r.explicit_request_given),
        requirements: r.requirements.clone(),
        evidence_requester: agents,
        evidence_provider: Some(r.provider.clone()),
        evidence_provider_classifications: r.evidence_provider_classifications.clone(),
        subject: Some(subject),
        authorized_representative: r.authorized_representative.clone(),
        evidence_request: Some(r.evidence_request.clone()),
    };
    let sender = corner_of(r.original_sender.clone(), &r.requester);
    let recipient = corner_of(r.final_recipient.clone(), &r.provider);
    let mut props = vec![
        PropertyIn {
            name: PROP_ORIGINAL_SENDER.into(),
            ..sender
        },
        PropertyIn {
            name: PROP_FINAL_RECIPIENT.into(),
            ..recipient
        },
    ];
    if line == EdmLine::V2 {
        props.push(PropertyIn {
            name: PROP_EXCHANGE_ID.into(),
            value: exchange_id.clone(),
            prop_type: None,
        });
        props.push(PropertyIn {
            name: PROP_SPECIFICATION_ID.into(),
            value: EDM_V2.into(),
            prop_type: None,
        });
    }
    let domain = cid_domain(pm.as_deref(), ACTION_REQUEST).unwrap_or_else(|| "as4gw".into());
    let doc = EdmDocument::QueryRequest(q);
    let h = header_fields(
        ACTION_REQUEST,
        &conversation_id,
        &props,
        vec![PayloadPart {
            href: format!("cid:{REGREP_PART}@{domain}"),
            mime_type: Some(MIME_EBRS.into()),
        }],
    );
    judge(&h, &doc)?;
    let EdmDocument::QueryRequest(q) = &doc else {
        return Err(Problem::internal("request document changed kind"));
    };
    let xml = write_request(q);
    let file = state.store.spool().put_bytes(&xml).await?;
    let req = SubmitRequest {
        pmode_id: Some(pmode_id),
        service: Some(SERVICE.into()),
        service_type: Some(SERVICE_TYPE.into()),
        action: Some(ACTION_REQUEST.into()),
        conversation_id: Some(conversation_id),
        properties: props,
        payloads: vec![PayloadIn {
            part_name: REGREP_PART.into(),
            mime_type: MIME_EBRS.into(),
            properties: Vec::new(),
            file,
        }],
        backend: Some(caller.0.name.clone()),
        ..SubmitRequest::default()
    };
    let res = send(&state, &caller.0, req).await?;
    Ok(accepted(res, exchange_id, request_id))
}

/// Answer a request with evidences.
///
/// `multipart/form-data`: first `metadata` (JSON, naming the inbound request), then one part per
/// evidence. The RegRep `query:QueryResponse` becomes the first payload; each evidence's
/// `RepositoryItemRef` names its `cid:` part.
#[utoipa::path(
    post,
    path = "/api/v1/oots/responses",
    tag = "oots",
    operation_id = "sendOotsResponse",
    request_body(content = ResponseForm, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Accepted and durable", body = OotsAccepted),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such inbound request", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn send_response(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let boundary = multer::parse_boundary(&content_type).map_err(|_| {
        Problem::new(
            ProblemType::UnsupportedMediaType,
            format!("expected multipart/form-data, got {content_type:?}"),
        )
        .field("Content-Type")
    })?;
    let limits = state.limits;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .per_field(limits.max_payload_size)
            .for_field("metadata", limits.max_metadata_size),
    );
    let mut mp =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mp_err = |e: multer::Error| match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            Problem::new(ProblemType::PayloadTooLarge, e.to_string())
        }
        other => bad(format!("malformed multipart body: {other}")),
    };
    let first = mp
        .next_field()
        .await
        .map_err(mp_err)?
        .ok_or_else(|| bad("the metadata part is missing").field("metadata"))?;
    if first.name() != Some("metadata") {
        return Err(bad("the first part must be \"metadata\"").field("metadata"));
    }
    let raw = first.bytes().await.map_err(mp_err)?;
    let meta: OotsResponseIn = serde_json::from_slice(&raw).map_err(|e| {
        bad(format!(
            "metadata is not a valid OOTS response document: {e}"
        ))
        .field("metadata")
    })?;
    if meta.evidences.len() + 1 > limits.max_payloads {
        return Err(
            Problem::new(ProblemType::PayloadTooLarge, "too many evidences").field("evidences"),
        );
    }
    for (i, e) in meta.evidences.iter().enumerate() {
        if e.part.is_empty() || e.part == "metadata" || e.part == REGREP_PART {
            return Err(invalid(
                format!("evidences/{i}/part"),
                "part name not usable",
            ));
        }
        if meta.evidences[..i].iter().any(|x| x.part == e.part) {
            return Err(invalid(
                format!("evidences/{i}/part"),
                "part declared twice",
            ));
        }
    }
    let ans = answered(&state, &caller, &meta.request_message_id).await?;

    // Evidence parts to the spool.
    let spool = state.store.spool();
    let mut files: Vec<Option<(FileRef, Option<String>)>> = vec![None; meta.evidences.len()];
    let streamed: Result<(), Problem> = async {
        while let Some(field) = mp.next_field().await.map_err(mp_err)? {
            let name = field.name().unwrap_or("").to_string();
            let i = meta
                .evidences
                .iter()
                .position(|e| e.part == name)
                .ok_or_else(|| invalid("evidences", format!("part {name:?} is not declared")))?;
            if files[i].is_some() {
                return Err(invalid(format!("evidences/{i}/part"), "part sent twice"));
            }
            let ct = field.content_type().map(|m| m.essence_str().to_string());
            let reader = StreamReader::new(field.map_err(std::io::Error::other));
            let f = spool
                .put_stream(reader, limits.max_payload_size)
                .await
                .map_err(|e| Problem::from(e).field(format!("evidences/{i}")))?;
            files[i] = Some((f, ct));
        }
        Ok(())
    }
    .await;
    let all: Vec<FileRef> = files.iter().flatten().map(|(f, _)| f.clone()).collect();
    if let Err(p) = streamed {
        discard(&state, &all).await;
        return Err(p);
    }
    let built = build_response(&state, &caller, &meta, &ans, &files);
    let (pmode_id, props, payload_ins, xml_doc) = match built {
        Ok(b) => b,
        Err(p) => {
            discard(&state, &all).await;
            return Err(p);
        }
    };
    let regrep = match state
        .store
        .spool()
        .put_bytes(&write_response(&xml_doc))
        .await
    {
        Ok(f) => f,
        Err(e) => {
            discard(&state, &all).await;
            return Err(e.into());
        }
    };
    let mut payloads = vec![PayloadIn {
        part_name: REGREP_PART.into(),
        mime_type: MIME_EBRS.into(),
        properties: Vec::new(),
        file: regrep,
    }];
    payloads.extend(payload_ins);
    let req = SubmitRequest {
        pmode_id: Some(pmode_id),
        service: Some(SERVICE.into()),
        service_type: Some(SERVICE_TYPE.into()),
        action: Some(ACTION_RESPONSE.into()),
        conversation_id: Some(ans.conversation_id.clone()),
        properties: props,
        payloads,
        backend: Some(caller.0.name.clone()),
        ..SubmitRequest::default()
    };
    let res = send(&state, &caller.0, req).await?;
    Ok(accepted(res, ans.exchange(), ans.request.id.clone()))
}

type Built = (String, Vec<PropertyIn>, Vec<PayloadIn>, QueryResponse);

/// The Evidence Requester as answers name it: identifier and names only, as in every official
/// response and error sample (the request's address and classification are not repeated).
fn answer_requester(a: &Agent) -> Agent {
    Agent {
        identifier: a.identifier.clone(),
        names: a.names.clone(),
        ..Agent::default()
    }
}

fn build_response(
    state: &AppState,
    caller: &Caller,
    meta: &OotsResponseIn,
    ans: &Answered,
    files: &[Option<(FileRef, Option<String>)>],
) -> Result<Built, Problem> {
    let (pmode_id, pm) = choose_pmode(
        state,
        &caller.0,
        meta.pmode.as_deref(),
        ans.line,
        ACTION_RESPONSE,
    )?;
    let domain = cid_domain(pm.as_deref(), ACTION_RESPONSE).ok_or_else(|| {
        Problem::new(
            ProblemType::UnknownPmode,
            format!("P-Mode {pmode_id} is not loaded or has no {ACTION_RESPONSE} leg"),
        )
        .field("pmode")
    })?;
    let mut payloads = Vec::new();
    let mut evidences = Vec::new();
    let mut parts = vec![PayloadPart {
        href: format!("cid:{REGREP_PART}@{domain}"),
        mime_type: Some(MIME_EBRS.into()),
    }];
    for (i, (e, f)) in meta.evidences.iter().zip(files).enumerate() {
        let Some((file, ct)) = f else {
            return Err(invalid(
                format!("evidences/{i}/part"),
                format!(
                    "evidence {:?} is declared but its part was not sent",
                    e.part
                ),
            ));
        };
        let mime_type = e.mime_type.clone().or(ct.clone()).ok_or_else(|| {
            invalid(
                format!("evidences/{i}/mimeType"),
                "no mimeType and no Content-Type on the part",
            )
        })?;
        if !e
            .part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || e.part.len() > 64
            || e.part.starts_with('.')
        {
            return Err(invalid(
                format!("evidences/{i}/part"),
                "part names are Content-ID local parts: letters, digits, - _ . (≤ 64)",
            ));
        }
        let href = format!("cid:{}@{domain}", e.part);
        parts.push(PayloadPart {
            href: href.clone(),
            mime_type: Some(mime_type.clone()),
        });
        let classifications = match (&e.classifications, ans.line) {
            (Some(c), _) => c.clone(),
            (None, EdmLine::V2) => vec![Classification {
                id: Some(format!("urn:uuid:{}", new_uuid())),
                scheme: crate::oots::EDM_CLASSIFICATION_SCHEME.into(),
                node: "MainEvidence".into(),
            }],
            (None, EdmLine::V1) => Vec::new(),
        };
        evidences.push(Evidence {
            id: e
                .id
                .clone()
                .unwrap_or_else(|| format!("urn:uuid:{}", new_uuid())),
            metadata: e.metadata.clone(),
            classifications,
            part: Some(PartReference {
                href,
                title: Some(e.title.clone().unwrap_or(e.part.clone())),
            }),
        });
        payloads.push(PayloadIn {
            part_name: e.part.clone(),
            mime_type,
            properties: Vec::new(),
            file: file.clone(),
        });
    }
    let provider = match &meta.evidence_provider {
        Some(p) => p.clone(),
        None => ans
            .request
            .evidence_provider
            .clone()
            .map(|mut a| {
                if ans.line == EdmLine::V2 && a.classification.is_none() {
                    a.classification = Some("EP".into());
                }
                vec![a]
            })
            .unwrap_or_default(),
    };
    let requester = ans.request.requesting_agent().map(answer_requester);
    let resp = QueryResponse {
        request_id: Some(ans.request.id.clone()),
        status: RS_STATUS_SUCCESS.into(),
        specification_identifier: Some(ans.line.spec().into()),
        evidence_response_identifier: Some(meta.response_id.clone().unwrap_or_else(new_uuid)),
        issue_date_time: Some(
            meta.issue_date_time
                .clone()
                .unwrap_or_else(|| now_text(state)),
        ),
        response_available_date_time: None,
        evidence_provider: provider,
        error_provider: None,
        evidence_requester: requester,
        package_id: match ans.line {
            EdmLine::V2 => Some(
                meta.package_id
                    .clone()
                    .unwrap_or_else(|| format!("urn:uuid:{}", new_uuid())),
            ),
            EdmLine::V1 => meta.package_id.clone(),
        },
        evidences,
        exceptions: Vec::new(),
    };
    let props = ans.properties();
    let doc = EdmDocument::QueryResponse(resp);
    judge(
        &header_fields(ACTION_RESPONSE, &ans.conversation_id, &props, parts),
        &doc,
    )?;
    let EdmDocument::QueryResponse(resp) = doc else {
        return Err(Problem::internal("response document changed kind"));
    };
    Ok((pmode_id, props, payloads, resp))
}

/// Answer a request with an EDM error.
///
/// EDM:ERR:0001–0008; with `previewLocation` the "preview required" exception of the two-step
/// flow (severity PreviewRequired, `PreviewLocation`, `PreviewDescription`, `PreviewMethod`).
#[utoipa::path(
    post,
    path = "/api/v1/oots/exceptions",
    tag = "oots",
    operation_id = "sendOotsException",
    request_body(content = OotsExceptionIn, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted and durable", body = OotsAccepted),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such inbound request", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn send_exception(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let e: OotsExceptionIn = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("not a valid OOTS exception document: {e}")))?;
    let ans = answered(&state, &caller, &e.request_message_id).await?;
    let code = match (&e.code, &e.preview_location) {
        (Some(c), _) => EdmErrorCode::parse(c)
            .ok_or_else(|| invalid("code", format!("{c:?} is not EDM:ERR:0001…0008")))?,
        (None, Some(_)) => EdmErrorCode::MissingAuthorization,
        (None, None) => return Err(invalid("code", "code is required without previewLocation")),
    };
    if let Some(p) = &e.preview_location {
        if !p.starts_with("https://") {
            return Err(invalid("previewLocation", "must start with https://"));
        }
    }
    if let Some(m) = &e.preview_method {
        if m != "GET" && m != "POST" {
            return Err(invalid("previewMethod", "GET or POST"));
        }
    }
    let mut ex = EdmException::for_code(code);
    if let Some(m) = &e.message {
        ex.message = Some(m.clone());
    }
    if e.preview_location.is_some() {
        ex.severity = Some(ans.line.version().preview_required_severity().into());
    }
    ex.detail = e.detail.clone();
    ex.timestamp = Some(e.timestamp.clone().unwrap_or_else(|| now_text(&state)));
    ex.preview_location = e.preview_location.clone();
    ex.preview_description = e.preview_description.clone();
    ex.preview_method = e.preview_method.clone();
    let error_provider = match (&e.error_provider, ans.line) {
        (Some(a), _) => Some(a.clone()),
        (None, EdmLine::V2) => ans.request.evidence_provider.clone().map(|mut a| {
            a.classification = Some("ERRP".into());
            a
        }),
        (None, EdmLine::V1) => None,
    };
    let requester = ans
        .request
        .evidence_requester
        .iter()
        .find(|a| {
            matches!(
                a.classification.as_deref(),
                Some("ER") | Some("EvidenceRequester")
            )
        })
        .map(answer_requester);
    let resp = QueryResponse {
        request_id: Some(ans.request.id.clone()),
        status: RS_STATUS_FAILURE.into(),
        specification_identifier: Some(ans.line.spec().into()),
        evidence_response_identifier: match ans.line {
            EdmLine::V2 => Some(e.response_id.clone().unwrap_or_else(new_uuid)),
            EdmLine::V1 => e.response_id.clone(),
        },
        error_provider,
        evidence_requester: requester,
        exceptions: vec![ex],
        ..QueryResponse::default()
    };
    let (pmode_id, pm) = choose_pmode(
        &state,
        &caller.0,
        e.pmode.as_deref(),
        ans.line,
        ACTION_EXCEPTION,
    )?;
    let domain = cid_domain(pm.as_deref(), ACTION_EXCEPTION).unwrap_or_else(|| "as4gw".into());
    let props = ans.properties();
    let doc = EdmDocument::QueryResponse(resp);
    judge(
        &header_fields(
            ACTION_EXCEPTION,
            &ans.conversation_id,
            &props,
            vec![PayloadPart {
                href: format!("cid:{REGREP_PART}@{domain}"),
                mime_type: Some(MIME_EBRS.into()),
            }],
        ),
        &doc,
    )?;
    let EdmDocument::QueryResponse(resp) = doc else {
        return Err(Problem::internal("exception document changed kind"));
    };
    let file = state
        .store
        .spool()
        .put_bytes(&write_response(&resp))
        .await?;
    let req = SubmitRequest {
        pmode_id: Some(pmode_id),
        service: Some(SERVICE.into()),
        service_type: Some(SERVICE_TYPE.into()),
        action: Some(ACTION_EXCEPTION.into()),
        conversation_id: Some(ans.conversation_id.clone()),
        properties: props,
        payloads: vec![PayloadIn {
            part_name: REGREP_PART.into(),
            mime_type: MIME_EBRS.into(),
            properties: Vec::new(),
            file,
        }],
        backend: Some(caller.0.name.clone()),
        ..SubmitRequest::default()
    };
    let res = send(&state, &caller.0, req).await?;
    Ok(accepted(res, ans.exchange(), ans.request.id.clone()))
}

/// Messages of an exchange the caller may read: by `ExchangeId` property, else by
/// ConversationId (v1.x, where the helper uses the exchange id as ConversationId).
async fn exchange_messages(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Vec<MessageRecord>, Problem> {
    let mut out = Vec::new();
    for by_property in [true, false] {
        let filter = if by_property {
            Filter {
                property: Some((PROP_EXCHANGE_ID.into(), id.into())),
                ..Filter::default()
            }
        } else {
            Filter {
                conversation_id: Some(id.into()),
                ..Filter::default()
            }
        };
        let mut cursor = None;
        loop {
            let page = state.store.list(filter.clone(), cursor, 100).await?;
            out.extend(page.items.into_iter().filter(|r| {
                caller
                    .0
                    .may_read(r, state.routed_to(&r.pmode_id).as_deref())
            }));
            match page.next {
                Some(c) if out.len() < MAX_EXCHANGE_MESSAGES => cursor = Some(c),
                _ => break,
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    out.sort_by_key(|r| r.id.0);
    out.dedup_by_key(|r| r.id.0);
    Ok(out)
}

fn same_cid(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        let s = s.trim();
        let s = if s.len() >= 4 && s[..4].eq_ignore_ascii_case("cid:") {
            &s[4..]
        } else {
            s
        };
        s.trim_start_matches('<').trim_end_matches('>').to_string()
    };
    strip(a) == strip(b)
}

/// One evidence exchange.
///
/// Requests, the preview-required exception, the response with its evidences (download links
/// to the payload route) and the deadline that applies now (T1/T2/T3, digest §7.7); `TIMED_OUT`
/// when it passed without an answer.
#[utoipa::path(
    get,
    path = "/api/v1/oots/exchanges/{id}",
    tag = "oots",
    operation_id = "getOotsExchange",
    params(("id" = String, Path, description = "ExchangeId (v2) or, for v1, the exchange id the helper used as ConversationId")),
    responses(
        (status = 200, body = ExchangeView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_exchange(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ExchangeView>, Problem> {
    let recs = exchange_messages(&state, &caller, &id).await?;
    if recs.is_empty() {
        return Err(Problem::new(
            ProblemType::NotFound,
            format!("no OOTS exchange {id} visible to backend {}", caller.0.name),
        ));
    }
    let mut requests: Vec<(ExchangeMessage, MessageRecord, QueryRequest)> = Vec::new();
    let mut answers: Vec<(ExchangeMessage, MessageRecord, QueryResponse)> = Vec::new();
    for rec in recs {
        let Some(doc) = regrep_of(&state, &rec).await? else {
            continue;
        };
        let view = message_view(&rec);
        let dir = rec.direction.as_str().to_string();
        let request_id = match &doc {
            EdmDocument::QueryRequest(q) => Some(q.id.as_str()),
            EdmDocument::QueryResponse(r) => r.request_id.as_deref(),
        }
        .map(crate::oots::normalize_request_id);
        let m = ExchangeMessage {
            href: format!("{}?direction={dir}", message_path(&rec.message_id)),
            message_id: rec.message_id.clone(),
            direction: dir,
            state: rec.state.as_str().to_string(),
            action: view.action.clone(),
            created_at: rfc3339(rec.created_at),
            request_id,
            document: serde_json::to_value(&doc).unwrap_or(serde_json::Value::Null),
        };
        match doc {
            EdmDocument::QueryRequest(q) => requests.push((m, rec, q)),
            EdmDocument::QueryResponse(r) => answers.push((m, rec, r)),
        }
    }
    let s = &state.oots;
    let now = s.clock.now();
    let edm_version = requests
        .iter()
        .find_map(|(_, _, q)| q.version())
        .or_else(|| answers.iter().find_map(|(_, _, r)| r.version()))
        .map(EdmLine::of);
    let conversation_id = requests
        .first()
        .map(|(_, r, _)| r.conversation_id.clone())
        .or_else(|| answers.first().map(|(_, r, _)| r.conversation_id.clone()));
    let preview_location = answers
        .iter()
        .flat_map(|(_, _, r)| r.exceptions.iter())
        .find_map(|e| e.preview_location.clone())
        .or_else(|| {
            requests
                .iter()
                .find_map(|(_, _, q)| q.preview_location.clone())
        });

    // Where the exchange stands: the last request and what answered it.
    let last = requests.last();
    let answer_to_last = last.and_then(|(m, _, _)| {
        answers
            .iter()
            .rev()
            .find(|(a, _, _)| a.request_id.is_some() && a.request_id == m.request_id)
    });
    let (mut status, waiting_for, deadline): (&str, Option<&str>, Option<OffsetDateTime>) =
        match (last, answer_to_last) {
            (None, _) => ("ANSWERED", None, None),
            (Some(_), Some((_, arec, a))) if a.is_exception() => {
                if a.exceptions.iter().any(|e| e.requires_preview()) {
                    (
                        "PREVIEW_REQUIRED",
                        Some("secondRequest"),
                        Some(arec.created_at + s.t2),
                    )
                } else {
                    ("FAILED", None, None)
                }
            }
            (Some(_), Some(_)) => ("ANSWERED", None, None),
            (Some((_, rrec, q)), None) if q.is_after_preview() => (
                "PREVIEW_REQUESTED",
                Some("responseAfterPreview"),
                Some(rrec.created_at + s.t3 + s.t1),
            ),
            (Some((_, rrec, _)), None) => {
                ("REQUESTED", Some("response"), Some(rrec.created_at + s.t1))
            }
        };
    let timed_out = deadline.is_some_and(|d| now > d);
    if timed_out {
        status = "TIMED_OUT";
    }

    let response = answers
        .iter()
        .rev()
        .find(|(_, _, r)| !r.is_exception())
        .cloned();
    let mut evidences = Vec::new();
    if let Some((m, rec, r)) = &response {
        let names = payload_names(&rec.payloads);
        for e in &r.evidences {
            let href_ref = e.part.as_ref().map(|p| p.href.clone());
            let found = href_ref.as_deref().and_then(|h| {
                rec.payloads
                    .iter()
                    .zip(names.iter())
                    .find(|(p, _)| same_cid(&p.part_id, h))
            });
            evidences.push(EvidenceView {
                id: e.id.clone(),
                part_ref: href_ref,
                mime_type: found.map(|(p, _)| p.mime_type.clone()),
                size: found.map(|(p, _)| p.file.size()),
                sha256: found.map(|(p, _)| p.file.sha256_hex()),
                href: found.map(|(_, n)| {
                    format!(
                        "{}/payloads/{}?direction={}",
                        message_path(&rec.message_id),
                        encode_segment(n),
                        m.direction
                    )
                }),
            });
        }
    }
    Ok(Json(ExchangeView {
        exchange_id: id,
        edm_version,
        conversation_id,
        status: status.to_string(),
        requests: requests.into_iter().map(|(m, _, _)| m).collect(),
        exceptions: answers
            .iter()
            .filter(|(_, _, r)| r.is_exception())
            .map(|(m, _, _)| m.clone())
            .collect(),
        response: response.map(|(m, _, _)| m),
        preview_location,
        evidences,
        timing: Timing {
            t1_seconds: s.t1.whole_seconds(),
            t2_seconds: s.t2.whole_seconds(),
            t3_seconds: s.t3.whole_seconds(),
            now: rfc3339(now),
            waiting_for: waiting_for.map(str::to_string),
            deadline: deadline.map(rfc3339),
            timed_out,
        },
    }))
}
