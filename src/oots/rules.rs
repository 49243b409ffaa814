//! The OOTS rules on the ebMS header of an EDM message, and the EDM:ERR:0003 answer.
//!
//! OOTS header-rule violations are not answered with ebMS errors but with an EDM error
//! response (`ExceptionResponse`, `rs:InvalidRequestExceptionType`, EDM:ERR:0003) whose
//! `detail` names the broken rule; AS4-level faults stay ebMS signals (digest §6.3, last
//! paragraph). This module therefore judges a header together with its RegRep payload and
//! builds that error response with the EDM writer; it never produces an ebMS error.
//!
//! The header arrives as the small [`HeaderFields`] struct so that this room does not depend
//! on the ebMS room's model; [`HeaderFields::from_messaging`] reads it from an `eb:Messaging`
//! tree for tools and tests.

use serde::{Deserialize, Serialize};

use crate::ns;
use crate::xml::Node;

use super::model::*;
use super::read::{parse_edm, EdmError};
use super::*;

/// One `eb:Property` of `eb:MessageProperties`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageProperty {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

/// One `eb:PartInfo`: its `href` (`cid:…`) and its `MimeType` part property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadPart {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The ebMS header fields the OOTS rules look at (digest §6.3).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderFields {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    pub action: String,
    pub from_role: String,
    pub to_role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default)]
    pub properties: Vec<MessageProperty>,
    #[serde(default)]
    pub parts: Vec<PayloadPart>,
}

impl HeaderFields {
    /// The first message property with this name.
    pub fn property(&self, name: &str) -> Option<&MessageProperty> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// Reads the fields from an `eb:Messaging` (or `eb:UserMessage`) element, by namespace
    /// URI. Missing elements become empty strings / `None`, so that the rules, not this
    /// reader, report them.
    pub fn from_messaging(node: Node<'_>) -> Option<HeaderFields> {
        let um = if node.is(ns::EB, "UserMessage") {
            node
        } else {
            node.descendants().find(|n| n.is(ns::EB, "UserMessage"))?
        };
        let text = |n: Option<Node<'_>>| n.map(|n| n.text().trim().to_owned());
        let party = um.child(ns::EB, "PartyInfo");
        let role = |side: &str| {
            text(
                party
                    .and_then(|p| p.child(ns::EB, side))
                    .and_then(|s| s.child(ns::EB, "Role")),
            )
            .unwrap_or_default()
        };
        let collab = um.child(ns::EB, "CollaborationInfo");
        let service = collab.and_then(|c| c.child(ns::EB, "Service"));
        let properties = um
            .child(ns::EB, "MessageProperties")
            .map(|mp| {
                mp.children_named(ns::EB, "Property")
                    .map(|p| MessageProperty {
                        name: p.attr(None, "name").unwrap_or("").to_owned(),
                        value: p.text().trim().to_owned(),
                        r#type: p.attr(None, "type").map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let parts = um
            .child(ns::EB, "PayloadInfo")
            .map(|pi| {
                pi.children_named(ns::EB, "PartInfo")
                    .map(|p| PayloadPart {
                        href: p.attr(None, "href").unwrap_or("").trim().to_owned(),
                        mime_type: p
                            .child(ns::EB, "PartProperties")
                            .and_then(|pp| {
                                pp.children_named(ns::EB, "Property")
                                    .find(|x| x.attr(None, "name") == Some("MimeType"))
                            })
                            .map(|x| x.text().trim().to_owned()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(HeaderFields {
            service: text(service).unwrap_or_default(),
            service_type: service
                .and_then(|s| s.attr(None, "type"))
                .map(str::to_owned),
            action: text(collab.and_then(|c| c.child(ns::EB, "Action"))).unwrap_or_default(),
            from_role: role("From"),
            to_role: role("To"),
            conversation_id: text(collab.and_then(|c| c.child(ns::EB, "ConversationId"))),
            message_id: text(
                um.child(ns::EB, "MessageInfo")
                    .and_then(|m| m.child(ns::EB, "MessageId")),
            ),
            properties,
            parts,
        })
    }
}

/// The rules, one variant each. `id()` is what the EDM:ERR:0003 `detail` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// Service must be `QueryManager` (digest §6.3 `Service`).
    Service,
    /// Service `@type` must be `urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0` (§6.3).
    ServiceType,
    /// Action must be ExecuteQueryRequest, ExecuteQueryResponse or ExceptionResponse (§6.3).
    Action,
    /// Action must match the payload: request ↔ ExecuteQueryRequest, response ↔
    /// ExecuteQueryResponse, rs:Exception ↔ ExceptionResponse (§6.3 `Action`, §7.3, §7.4).
    ActionPayload,
    /// From/Role must be `http://sdg.europa.eu/edelivery/gateway` (§6.3, §6.4).
    FromRole,
    /// To/Role must be `http://sdg.europa.eu/edelivery/gateway` (§6.3, §6.4).
    ToRole,
    /// `originalSender` (C1) must be present (§3.5, §6.2).
    OriginalSender,
    /// `finalRecipient` (C4) must be present (§3.5, §6.2).
    FinalRecipient,
    /// The corner properties carry `@type` (EAS or ebCore unregistered, §6.3). Enforced for
    /// v2.0; the official v1.0 samples omit it and §3.5 makes it a MAY.
    PartyIdType,
    /// v2.0: `ExchangeId` must be present (R-EDM-ebMS-037, §6.3).
    ExchangeIdMissing,
    /// v2.0: `ExchangeId` must be a UUID (R-EDM-ebMS-037, §6.3).
    ExchangeIdFormat,
    /// v2.0: `SpecificationId` must be present (R-EDM-ebMS-019, §6.3).
    SpecificationIdMissing,
    /// `SpecificationId` must equal the payload's `SpecificationIdentifier` (R-EDM-ebMS-038).
    SpecificationIdMismatch,
    /// The payload must declare a known `SpecificationIdentifier` (§6.1, §7.2–§7.4).
    PayloadSpecification,
    /// v2.0: ConversationId must be a UUID (R-EDM-ebMS-017, §6.3).
    ConversationIdFormat,
    /// There must be a first part and it must be the RegRep document,
    /// `application/x-ebrs+xml` (§6.3 `PartInfo #1`, §6.5).
    FirstPartRegRep,
    /// Every `rim:RepositoryItemRef/@xlink:href` must name a part of the message (§6.5).
    RepositoryItemRef,
    /// A request must carry its mandatory slots (§7.2): the EDM:ERR:0003 cases.
    RequestSlot,
    /// `PreviewLocation` must be an `https://` URI (R-EDM-REQ-C005, §7.2).
    PreviewLocationHttps,
}

impl Rule {
    /// Stable identifier used in messages and in the EDM:ERR:0003 `detail`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Service => "OOTS-HDR-SERVICE",
            Rule::ServiceType => "OOTS-HDR-SERVICE-TYPE",
            Rule::Action => "OOTS-HDR-ACTION",
            Rule::ActionPayload => "OOTS-HDR-ACTION-PAYLOAD",
            Rule::FromRole => "OOTS-HDR-FROM-ROLE",
            Rule::ToRole => "OOTS-HDR-TO-ROLE",
            Rule::OriginalSender => "OOTS-HDR-ORIGINAL-SENDER",
            Rule::FinalRecipient => "OOTS-HDR-FINAL-RECIPIENT",
            Rule::PartyIdType => "OOTS-HDR-CORNER-TYPE",
            Rule::ExchangeIdMissing => "R-EDM-ebMS-037 (ExchangeId present)",
            Rule::ExchangeIdFormat => "R-EDM-ebMS-037 (ExchangeId UUID)",
            Rule::SpecificationIdMissing => "R-EDM-ebMS-019",
            Rule::SpecificationIdMismatch => "R-EDM-ebMS-038",
            Rule::PayloadSpecification => "OOTS-EDM-SPECIFICATION",
            Rule::ConversationIdFormat => "R-EDM-ebMS-017",
            Rule::FirstPartRegRep => "OOTS-HDR-FIRST-PART",
            Rule::RepositoryItemRef => "OOTS-HDR-REPOSITORY-ITEM-REF",
            Rule::RequestSlot => "OOTS-EDM-REQUEST-SLOT",
            Rule::PreviewLocationHttps => "R-EDM-REQ-C005",
        }
    }

    /// The digest section the rule comes from.
    pub fn reference(self) -> &'static str {
        match self {
            Rule::OriginalSender | Rule::FinalRecipient => "digest §3.5, §6.2",
            Rule::FirstPartRegRep | Rule::RepositoryItemRef => "digest §6.3, §6.5",
            Rule::PayloadSpecification => "digest §6.1",
            Rule::RequestSlot | Rule::PreviewLocationHttps => "digest §7.2",
            _ => "digest §6.3",
        }
    }
}

/// One broken rule with what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("[{}] {message} ({})", rule.id(), rule.reference())]
pub struct Violation {
    pub rule: Rule,
    pub message: String,
}

impl Violation {
    fn new(rule: Rule, message: impl Into<String>) -> Self {
        Violation {
            rule,
            message: message.into(),
        }
    }
}

/// Strict 8-4-4-4-12 hexadecimal UUID form (what the v2.0 rules and the samples use).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Judges a header against its parsed RegRep payload. Returns every violation found (empty
/// when the message conforms).
pub fn check(h: &HeaderFields, payload: &EdmDocument) -> Vec<Violation> {
    let mut v = Vec::new();
    let kind = payload.kind();

    // Collaboration (§6.3).
    if h.service.trim() != ns::OOTS_SERVICE {
        v.push(Violation::new(
            Rule::Service,
            format!(
                "Service is {:?}, expected {:?}",
                h.service,
                ns::OOTS_SERVICE
            ),
        ));
    }
    if h.service_type.as_deref().map(str::trim) != Some(ns::OOTS_SERVICE_TYPE) {
        v.push(Violation::new(
            Rule::ServiceType,
            format!(
                "Service/@type is {:?}, expected {:?}",
                h.service_type,
                ns::OOTS_SERVICE_TYPE
            ),
        ));
    }
    let action = h.action.trim();
    if ![ACTION_REQUEST, ACTION_RESPONSE, ACTION_EXCEPTION].contains(&action) {
        v.push(Violation::new(
            Rule::Action,
            format!("Action {action:?} is not one of {ACTION_REQUEST}, {ACTION_RESPONSE}, {ACTION_EXCEPTION}"),
        ));
    } else if action != kind.action() {
        v.push(Violation::new(
            Rule::ActionPayload,
            format!(
                "Action {action:?} does not fit a {kind:?} payload, which travels as {:?}",
                kind.action()
            ),
        ));
    }
    if h.from_role.trim() != ns::OOTS_ROLE {
        v.push(Violation::new(
            Rule::FromRole,
            format!(
                "From/Role is {:?}, expected {:?}",
                h.from_role,
                ns::OOTS_ROLE
            ),
        ));
    }
    if h.to_role.trim() != ns::OOTS_ROLE {
        v.push(Violation::new(
            Rule::ToRole,
            format!("To/Role is {:?}, expected {:?}", h.to_role, ns::OOTS_ROLE),
        ));
    }

    // Which EDM line applies: the payload's own identifier, else the header's (§6.1).
    let payload_spec = payload.specification_identifier();
    let header_spec = h.property(PROP_SPECIFICATION_ID).map(|p| p.value.trim());
    let version = payload
        .version()
        .or_else(|| header_spec.and_then(EdmVersion::from_spec_id));
    match payload_spec {
        None => v.push(Violation::new(
            Rule::PayloadSpecification,
            "the RegRep payload has no SpecificationIdentifier value",
        )),
        Some(s) if EdmVersion::from_spec_id(s).is_none() => v.push(Violation::new(
            Rule::PayloadSpecification,
            format!("SpecificationIdentifier {s:?} is not an EDM version this gateway handles"),
        )),
        Some(_) => {}
    }

    // Four corner (§3.5, §6.2, §6.3).
    for (name, rule) in [
        (PROP_ORIGINAL_SENDER, Rule::OriginalSender),
        (PROP_FINAL_RECIPIENT, Rule::FinalRecipient),
    ] {
        match h.property(name) {
            None => v.push(Violation::new(
                rule,
                format!("message property {name} is missing"),
            )),
            Some(p) if p.value.trim().is_empty() => v.push(Violation::new(
                rule,
                format!("message property {name} is empty"),
            )),
            Some(p) => {
                let typed = p.r#type.as_deref().is_some_and(|t| !t.trim().is_empty());
                if version == Some(EdmVersion::V2) && !typed {
                    v.push(Violation::new(
                        Rule::PartyIdType,
                        format!(
                            "message property {name} has no @type (EAS or ebCore unregistered)"
                        ),
                    ));
                }
            }
        }
    }

    // v2.0 properties (§6.3) and SpecificationId agreement (R-EDM-ebMS-038).
    if version == Some(EdmVersion::V2) {
        match h.property(PROP_EXCHANGE_ID) {
            None => v.push(Violation::new(
                Rule::ExchangeIdMissing,
                "EDM v2.0 requires the ExchangeId property",
            )),
            Some(p) if !is_uuid(p.value.trim()) => v.push(Violation::new(
                Rule::ExchangeIdFormat,
                format!("ExchangeId {:?} is not a UUID", p.value),
            )),
            Some(_) => {}
        }
        if header_spec.is_none() {
            v.push(Violation::new(
                Rule::SpecificationIdMissing,
                "EDM v2.0 requires the SpecificationId property",
            ));
        }
        if let Some(c) = &h.conversation_id {
            if !is_uuid(c.trim()) {
                v.push(Violation::new(
                    Rule::ConversationIdFormat,
                    format!("ConversationId {c:?} is not a UUID"),
                ));
            }
        }
    }
    if let (Some(hs), Some(ps)) = (header_spec, payload_spec) {
        if hs != ps {
            v.push(Violation::new(
                Rule::SpecificationIdMismatch,
                format!("SpecificationId {hs:?} disagrees with the payload's SpecificationIdentifier {ps:?}"),
            ));
        }
    }

    // Payload parts (§6.3, §6.5).
    match h.parts.first() {
        None => v.push(Violation::new(
            Rule::FirstPartRegRep,
            "the message has no payload part",
        )),
        Some(p) if p.mime_type.as_deref().map(str::trim) != Some(MIME_EBRS) => {
            v.push(Violation::new(
                Rule::FirstPartRegRep,
                format!(
                    "first part {:?} has MimeType {:?}, expected {MIME_EBRS:?}",
                    p.href, p.mime_type
                ),
            ))
        }
        Some(_) => {}
    }
    for href in payload.part_references() {
        if !h.parts.iter().skip(1).any(|p| same_cid(&p.href, href)) {
            v.push(Violation::new(
                Rule::RepositoryItemRef,
                format!("rim:RepositoryItemRef {href:?} names no evidence part of the message"),
            ));
        }
    }

    if let EdmDocument::QueryRequest(r) = payload {
        request_slots(r, &mut v);
    }
    v
}

/// Parses the RegRep bytes of the first part and judges header and payload together.
pub fn check_message(
    h: &HeaderFields,
    regrep: &[u8],
) -> Result<(EdmDocument, Vec<Violation>), EdmError> {
    let doc = parse_edm(regrep)?;
    let v = check(h, &doc);
    Ok((doc, v))
}

/// `cid:` references compare case-insensitively on the scheme and byte-exact on the id;
/// `<…>` around a Content-ID is tolerated (RFC 2392).
fn same_cid(a: &str, b: &str) -> bool {
    fn strip(s: &str) -> &str {
        let s = s.trim();
        let s = if s.len() >= 4 && s[..4].eq_ignore_ascii_case("cid:") {
            &s[4..]
        } else {
            s
        };
        s.trim_start_matches('<').trim_end_matches('>')
    }
    strip(a) == strip(b)
}

/// The mandatory request slots of digest §7.2 (the upstream corpus answers their absence with
/// EDM:ERR:0003).
fn request_slots(r: &QueryRequest, v: &mut Vec<Violation>) {
    let mut missing = Vec::new();
    if r.issue_date_time.is_none() {
        missing.push("IssueDateTime");
    }
    if r.procedure.is_none() {
        missing.push("Procedure");
    }
    if r.possibility_for_preview.is_none() {
        missing.push("PossibilityForPreview");
    }
    if r.explicit_request_given.is_none() {
        missing.push("ExplicitRequestGiven");
    }
    if r.requirements.is_empty() {
        missing.push("Requirements");
    }
    if r.evidence_requester.is_empty() {
        missing.push("EvidenceRequester");
    }
    if r.evidence_provider.is_none() {
        missing.push("EvidenceProvider");
    }
    if r.subject.is_none() {
        missing.push("NaturalPerson|LegalPerson");
    }
    if r.evidence_request.is_none() {
        missing.push("EvidenceRequest");
    }
    for m in missing {
        v.push(Violation::new(
            Rule::RequestSlot,
            format!("request slot {m} is missing or empty"),
        ));
    }
    if let Some(p) = &r.preview_location {
        if !p.starts_with("https://") {
            v.push(Violation::new(
                Rule::PreviewLocationHttps,
                format!("PreviewLocation {p:?} does not start with https://"),
            ));
        }
    }
}

/// Builds the EDM:ERR:0003 error response OOTS expects for a request that broke `violations`
/// (digest §6.3 last paragraph, §7.4): `rs:InvalidRequestExceptionType`, message of the code
/// list, severity Error, `detail` naming every broken rule.
///
/// `response_id` (EvidenceResponseIdentifier, a UUID) and `timestamp` (xsd:dateTime) come
/// from the caller: this room reads no clock and draws no random numbers. `error_provider`
/// is the gateway operator's agent (classification `ERRP`); the EvidenceRequester is copied
/// from the request.
pub fn invalid_request_response(
    request: &QueryRequest,
    violations: &[Violation],
    error_provider: Option<Agent>,
    response_id: &str,
    timestamp: &str,
) -> QueryResponse {
    let detail = violations
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let requester = request.requesting_agent().map(|a| Agent {
        identifier: a.identifier.clone(),
        names: a.names.clone(),
        address: None,
        classification: None,
    });
    let spec = request
        .specification_identifier
        .clone()
        .filter(|s| EdmVersion::from_spec_id(s).is_some())
        .unwrap_or_else(|| EDM_V2.to_owned());
    let mut ex = EdmException::for_code(EdmErrorCode::InvalidRequest);
    ex.detail = (!detail.is_empty()).then_some(detail);
    ex.timestamp = Some(timestamp.to_owned());
    QueryResponse {
        request_id: Some(request.id.clone()),
        status: RS_STATUS_FAILURE.to_owned(),
        specification_identifier: Some(spec),
        evidence_response_identifier: Some(response_id.to_owned()),
        error_provider,
        evidence_requester: requester,
        exceptions: vec![ex],
        ..QueryResponse::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_form_is_strict() {
        assert!(is_uuid("8a18f812-70e0-433f-b51f-f01e9d8a8397"));
        assert!(!is_uuid("urn:uuid:8a18f812-70e0-433f-b51f-f01e9d8a8397"));
        assert!(!is_uuid("8a18f81270e0433fb51ff01e9d8a8397"));
        assert!(!is_uuid("8a18f812-70e0-433f-b51f-f01e9d8a839g"));
    }

    #[test]
    fn cid_references_compare_without_scheme_case_or_brackets() {
        assert!(same_cid("cid:a@b", "CID:<a@b>"));
        assert!(!same_cid("cid:a@b", "cid:A@b"));
    }

    #[test]
    fn every_rule_has_an_id_and_a_reference() {
        let v = Violation::new(Rule::ExchangeIdFormat, "x");
        assert_eq!(
            v.to_string(),
            "[R-EDM-ebMS-037 (ExchangeId UUID)] x (digest §6.3)"
        );
    }
}
