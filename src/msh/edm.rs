//! The OOTS step of the inbound pipeline (docs/oots.md "Inbound flow at C3"): an
//! `ExecuteQueryRequest` on an OOTS P-Mode that breaks the OOTS rules is answered by the gateway
//! itself with an EDM:ERR:0003 `ExceptionResponse` (digest §6.3 last paragraph, §7.4) and is
//! never delivered to a backend. Decisions only: the engine reads the payload, submits the
//! answer and marks the request.

use crate::oots::{
    check_message, invalid_request_response, write_response, EdmDocument, HeaderFields,
    QueryRequest, Violation, ACTION_EXCEPTION, ACTION_REQUEST, EDM_V2, MIME_EBRS, PROP_EXCHANGE_ID,
    PROP_FINAL_RECIPIENT, PROP_ORIGINAL_SENDER, PROP_SPECIFICATION_ID,
};
use crate::pmode::model::PMode;
use crate::pmode::set::PModeSet;
use crate::store::FileRef;
use crate::xml::Document;

use super::api::{PayloadIn, PropertyIn, SubmitRequest};

/// OOTS service and binding type (digest §6.3).
pub const OOTS_SERVICE: &str = "QueryManager";
pub const OOTS_SERVICE_TYPE: &str = "urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0";
/// Largest RegRep part the gateway reads to judge a request.
pub const MAX_REGREP: u64 = 16 << 20;
/// The detail the request is marked DELIVERED with.
pub const ANSWERED_DETAIL: &str = "answered with EDM:ERR:0003 by the gateway";
/// Part name (Content-ID local part) of the answer's RegRep part.
const REGREP_PART: &str = "regrep";

/// Whether the gateway judges this inbound message: an `ExecuteQueryRequest` on an OOTS P-Mode.
pub fn is_oots_request(pmode: &PMode, action: &str) -> bool {
    pmode.service.value == OOTS_SERVICE
        && pmode.service.service_type.as_deref() == Some(OOTS_SERVICE_TYPE)
        && action == ACTION_REQUEST
}

/// A request the gateway answers itself.
#[derive(Debug, Clone)]
pub struct BrokenRequest {
    pub request: QueryRequest,
    pub violations: Vec<Violation>,
    pub header: HeaderFields,
}

/// Judges a request: `Some` when it parses as a `query:QueryRequest` and breaks rules. A first
/// part that is no EDM request at all cannot be answered with an EDM error (OOTS needs the
/// request id): it is delivered as before.
pub fn judge_request(header_xml: &str, regrep: &[u8]) -> Option<BrokenRequest> {
    let doc = Document::parse(header_xml.as_bytes()).ok()?;
    let header = HeaderFields::from_messaging(doc.root())?;
    match check_message(&header, regrep) {
        Ok((EdmDocument::QueryRequest(request), violations)) if !violations.is_empty() => {
            Some(BrokenRequest {
                request,
                violations,
                header,
            })
        }
        _ => None,
    }
}

/// A v2.0 P-Mode (requires `ExchangeId` or `SpecificationId = oots-edm:v2.0`).
fn is_v2(p: &PMode) -> bool {
    p.properties.iter().any(|r| {
        r.name == PROP_EXCHANGE_ID
            || (r.name == PROP_SPECIFICATION_ID && r.value.as_deref() == Some(EDM_V2))
    })
}

/// The P-Mode that leads back: OOTS service, same EDM line as `inbound`, a leg
/// `ExceptionResponse` sent by `own` to `peer`. The inbound P-Mode itself when it has such a
/// leg, else the first in the set.
pub fn answer_pmode<'a>(
    set: &'a PModeSet,
    inbound: &PMode,
    own: &str,
    peer: &str,
) -> Option<&'a std::sync::Arc<PMode>> {
    let fits = |p: &PMode| {
        p.service.value == OOTS_SERVICE
            && p.service.service_type.as_deref() == Some(OOTS_SERVICE_TYPE)
            && is_v2(p) == is_v2(inbound)
            && p.legs.iter().any(|l| {
                let (s, r) = p.sender_receiver(l);
                l.action == ACTION_EXCEPTION && s.party_id.id == own && r.party_id.id == peer
            })
    };
    set.pmodes()
        .iter()
        .find(|p| p.id == inbound.id && fits(p))
        .or_else(|| set.pmodes().iter().find(|p| fits(p)))
}

/// The answer's message properties: corners swapped (with their types), v2.0 ExchangeId copied
/// and SpecificationId.
pub fn answer_properties(h: &HeaderFields, v2: bool) -> Vec<PropertyIn> {
    let mut v = Vec::new();
    let swap = [
        (PROP_FINAL_RECIPIENT, PROP_ORIGINAL_SENDER),
        (PROP_ORIGINAL_SENDER, PROP_FINAL_RECIPIENT),
    ];
    for (from, to) in swap {
        if let Some(p) = h.property(from) {
            v.push(PropertyIn {
                name: to.into(),
                value: p.value.clone(),
                prop_type: p.r#type.clone(),
            });
        }
    }
    if v2 {
        if let Some(x) = h.property(PROP_EXCHANGE_ID) {
            v.push(PropertyIn {
                name: PROP_EXCHANGE_ID.into(),
                value: x.value.clone(),
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

/// The EDM:ERR:0003 document for `b` (v2.0: the request's EvidenceProvider as ErrorProvider,
/// classification `ERRP`, as the backend helper does).
pub fn answer_document(b: &BrokenRequest, v2: bool, response_id: &str, timestamp: &str) -> Vec<u8> {
    let provider = if v2 {
        b.request.evidence_provider.clone().map(|mut a| {
            a.classification = Some("ERRP".into());
            a.address = None;
            a
        })
    } else {
        None
    };
    let resp =
        invalid_request_response(&b.request, &b.violations, provider, response_id, timestamp);
    write_response(&resp)
}

/// The submission of the answer (the gateway submits it, no backend).
pub fn answer_submission(
    b: &BrokenRequest,
    pmode: &PMode,
    conversation_id: &str,
    file: FileRef,
) -> SubmitRequest {
    SubmitRequest {
        pmode_id: Some(pmode.id.clone()),
        service: Some(OOTS_SERVICE.into()),
        service_type: Some(OOTS_SERVICE_TYPE.into()),
        action: Some(ACTION_EXCEPTION.into()),
        conversation_id: Some(conversation_id.into()),
        properties: answer_properties(&b.header, is_v2(pmode)),
        payloads: vec![PayloadIn {
            part_name: REGREP_PART.into(),
            mime_type: MIME_EBRS.into(),
            properties: Vec::new(),
            file,
        }],
        backend: None,
        ..SubmitRequest::default()
    }
}

/// Whether `p` is a v2.0 P-Mode (for the engine).
pub fn pmode_is_v2(p: &PMode) -> bool {
    is_v2(p)
}
