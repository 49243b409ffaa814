//! Correlation keys that do not depend on the ebMS ConversationId.
//!
//! Why: in v2.0 the ConversationId names the user session and may span several evidence
//! exchanges, and how v1.x reuses it across the preview flow is unconfirmed (digest §7.5);
//! RefToMessageId is not used by OOTS. What ties a response to its request is the RegRep
//! `QueryResponse/@requestId` = `QueryRequest/@id`, and in v2.0 the `ExchangeId` property,
//! which both legs of the preview flow share (digest §7.5, §7.6).
//!
//! Request ids are compared in a normal form: a leading `urn:uuid:` is removed and a UUID is
//! lower-cased, because the v1.0 samples write bare UUIDs and v2.0 writes `urn:uuid:…`.

use serde::{Deserialize, Serialize};

use super::model::{EdmDocument, PayloadKind};
use super::rules::{is_uuid, HeaderFields};
use super::PROP_EXCHANGE_ID;

/// The keys under which the gateway indexes one OOTS message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorrelationKeys {
    /// Normalised `QueryRequest/@id` (request) or `QueryResponse/@requestId` (response,
    /// error): equal on a request and every answer to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// v2.0 `ExchangeId` header property (lower-cased when a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_id: Option<String>,
    /// Passed through for the backend; not used for matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// `EvidenceResponseIdentifier` of a response or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_response_id: Option<String>,
}

/// Normal form of a RegRep request id (see the module documentation).
pub fn normalize_request_id(id: &str) -> String {
    let id = id.trim();
    let bare = if id.len() >= 9 && id[..9].eq_ignore_ascii_case("urn:uuid:") {
        &id[9..]
    } else {
        id
    };
    if is_uuid(bare) {
        bare.to_ascii_lowercase()
    } else {
        bare.to_owned()
    }
}

/// Extracts the keys of one message (header + parsed payload).
pub fn correlation_keys(header: &HeaderFields, payload: &EdmDocument) -> CorrelationKeys {
    let (request_id, evidence_response_id) = match payload {
        EdmDocument::QueryRequest(r) => (Some(r.id.as_str()), None),
        EdmDocument::QueryResponse(r) => (
            r.request_id.as_deref(),
            r.evidence_response_identifier.clone(),
        ),
    };
    let exchange_id = header.property(PROP_EXCHANGE_ID).map(|p| {
        let v = p.value.trim();
        if is_uuid(v) {
            v.to_ascii_lowercase()
        } else {
            v.to_owned()
        }
    });
    CorrelationKeys {
        request_id: request_id
            .filter(|s| !s.trim().is_empty())
            .map(normalize_request_id),
        exchange_id,
        conversation_id: header.conversation_id.clone(),
        evidence_response_id,
    }
}

/// True when `response` answers `request`: the request ids agree, and when both carry an
/// ExchangeId (v2.0) those agree too. The payload kinds must be a request and a
/// response/error.
pub fn response_answers(
    request: &CorrelationKeys,
    request_kind: PayloadKind,
    response: &CorrelationKeys,
    response_kind: PayloadKind,
) -> bool {
    if request_kind != PayloadKind::Request || response_kind == PayloadKind::Request {
        return false;
    }
    let ids = matches!((&request.request_id, &response.request_id), (Some(a), Some(b)) if a == b);
    let exchange = match (&request.exchange_id, &response.exchange_id) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    ids && exchange
}
