//! The JSON documents of the REST API (request metadata, message views, lists, health).
//!
//! Field names are camelCase; times are RFC 3339 in UTC; states and directions use the store's
//! API names (`SUBMITTED`, `IN`, …). The message view is built from the store record plus the
//! ebMS header kept with it (`MessageRecord::header`), so parties, service/action, typed
//! properties and part properties are shown exactly as they are (or will be) on the wire.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::ebms::{Messaging, UserMessage};
use crate::msh::api::{PartyRef, PropertyIn, SubmitResult};
use crate::store::{Event, MessageRecord, Payload};

/// Base path of the API.
pub const API_BASE: &str = "/api/v1";

/// A `name`/`value` pair (part properties).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

/// A party as named in metadata and shown in views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// `eb:PartyId` value.
    pub id: String,
    /// `eb:PartyId/@type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub id_type: Option<String>,
    /// `eb:Role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A message property (`eb:Property`), with the eDelivery `type` attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageProperty {
    pub name: String,
    pub value: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub prop_type: Option<String>,
}

/// One payload declared in the submission metadata; its bytes come in the multipart part of
/// the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PayloadMeta {
    /// The multipart part (form field) name carrying the bytes.
    pub part: String,
    /// MIME type; defaults to the part's own `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Further part properties, e.g. `CharacterSet`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<NameValue>,
}

/// The `metadata` part of `POST /api/v1/messages`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({
    "pmode": "oots-red-blue",
    "action": "ExecuteQueryRequest",
    "conversationId": "3f6c1a52-demo",
    "properties": [
        {"name": "originalSender", "value": "urn:cef.eu:names:identifier:EAS:9930:abc", "type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"},
        {"name": "finalRecipient", "value": "urn:cef.eu:names:identifier:EAS:9930:def", "type": "urn:oasis:names:tc:ebcore:partyid-type:unregistered"}
    ],
    "payloads": [{"part": "request", "mimeType": "application/x-ebrs+xml"}]
}))]
pub struct SubmitMetadata {
    /// P-Mode id; or leave out and give service/action/parties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_to_message_id: Option<String>,
    /// Backend-chosen MessageId (`left@right`); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<MessageProperty>,
    /// One entry per payload part, in message order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payloads: Vec<PayloadMeta>,
}

impl From<Party> for PartyRef {
    fn from(p: Party) -> PartyRef {
        PartyRef {
            id: p.id,
            id_type: p.id_type,
            role: p.role,
        }
    }
}

impl From<MessageProperty> for PropertyIn {
    fn from(p: MessageProperty) -> PropertyIn {
        PropertyIn {
            name: p.name,
            value: p.value,
            prop_type: p.prop_type,
        }
    }
}

/// Answer to an accepted submission (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub message_id: String,
    pub conversation_id: String,
    pub pmode_id: String,
    /// `SUBMITTED`, or the current state of the earlier message for a repeated
    /// `Idempotency-Key`.
    pub state: String,
    /// `false` when an earlier submission with the same `Idempotency-Key` was returned.
    pub created: bool,
    /// Where to poll the message.
    pub location: String,
}

impl From<SubmitResult> for Accepted {
    fn from(r: SubmitResult) -> Accepted {
        Accepted {
            location: message_path(&r.message_id),
            message_id: r.message_id,
            conversation_id: r.conversation_id,
            pmode_id: r.pmode_id,
            state: r.state,
            created: r.created,
        }
    }
}

/// One payload of a message view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayloadView {
    /// Name for `GET …/payloads/{name}`: the Content-ID's local part (the submitter's part
    /// name), or the whole Content-ID when the local part is not unique in the message.
    pub name: String,
    /// The part reference in the message, e.g. `cid:request@as4gw`.
    pub part_id: String,
    pub mime_type: String,
    pub size: u64,
    /// SHA-256 of the (uncompressed) bytes, hex.
    pub sha256: String,
    /// Part properties from the ebMS header (MimeType, CharacterSet, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<MessageProperty>,
    /// Download URL path.
    pub href: String,
}

/// One state transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    pub detail: String,
    /// EBMS error code, e.g. `EBMS:0005`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A message as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub message_id: String,
    /// `OUT` (submitted here) or `IN` (received from a partner).
    pub direction: String,
    pub state: String,
    pub pmode_id: String,
    pub conversation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_to_message_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// Last EBMS code (e.g. of a failed attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Party>,
    pub properties: Vec<MessageProperty>,
    pub payloads: Vec<PayloadView>,
    /// State history (single-message view only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
    /// Whether a signed receipt is stored (single-message view only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_receipt: Option<bool>,
}

/// One page of `GET /api/v1/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageList {
    pub items: Vec<MessageView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/messages`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `IN` or `OUT`.
    pub direction: Option<String>,
    /// A state name, e.g. `RECEIVED`.
    pub state: Option<String>,
    /// P-Mode id.
    pub pmode: Option<String>,
    pub conversation_id: Option<String>,
    /// `name:value` of a message property the message must carry.
    pub property: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<String>,
    /// Created before (RFC 3339).
    pub to: Option<String>,
    /// Page size, 1..=500 (default 50).
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// `direction` query parameter of the single-message routes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DirectionQuery {
    /// `IN` or `OUT`; needed only when the MessageId exists in both directions.
    pub direction: Option<String>,
}

/// Answer to `POST …/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AckResult {
    pub message_id: String,
    /// `DELIVERED`.
    pub state: String,
    /// `false` when the message was already DELIVERED (acks are idempotent).
    pub changed: bool,
}

/// One readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// The process answers (always true when you get this document).
    pub live: bool,
    /// Every check passed: the gateway accepts and processes submissions.
    pub ready: bool,
    /// `ok` or `degraded`.
    pub status: String,
    pub checks: Vec<HealthCheck>,
}

/// RFC 3339 in UTC (the API's time format).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Path of a message (MessageIds are percent-encoded).
pub fn message_path(message_id: &str) -> String {
    format!("{API_BASE}/messages/{}", encode_segment(message_id))
}

/// Percent-encodes a path segment (RFC 3986 unreserved characters and `@` stay).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The payload names of a message, in order (see [`PayloadView::name`]).
pub fn payload_names(payloads: &[Payload]) -> Vec<String> {
    let cid = |p: &Payload| {
        p.part_id
            .strip_prefix("cid:")
            .unwrap_or(&p.part_id)
            .to_string()
    };
    let local = |p: &Payload| {
        let c = cid(p);
        match c.split_once('@') {
            Some((l, _)) => l.to_string(),
            None => c,
        }
    };
    payloads
        .iter()
        .map(|p| {
            let l = local(p);
            if payloads.iter().filter(|q| local(q) == l).count() == 1 {
                l
            } else {
                cid(p)
            }
        })
        .collect()
}

/// Finds a payload by the name the API shows, or by its Content-ID (with or without `cid:`).
pub fn find_payload<'a>(payloads: &'a [Payload], name: &str) -> Option<&'a Payload> {
    let names = payload_names(payloads);
    payloads
        .iter()
        .zip(names.iter())
        .find(|(p, n)| {
            n.as_str() == name || p.part_id == name || p.part_id.strip_prefix("cid:") == Some(name)
        })
        .map(|(p, _)| p)
}

fn user_message(rec: &MessageRecord) -> Option<UserMessage> {
    let xml = rec.header.as_deref()?;
    match Messaging::parse(xml.as_bytes()) {
        Ok(m) => m.user_message,
        Err(e) => {
            // The header is informative here; the record stays readable without it.
            tracing::warn!(message_id = %rec.message_id, conversation_id = %rec.conversation_id, pmode = %rec.pmode_id, error = %e, "stored ebMS header does not parse");
            None
        }
    }
}

fn party(p: &crate::ebms::Party) -> Option<Party> {
    let id = p.party_ids.first()?;
    Some(Party {
        id: id.value.clone(),
        id_type: id.type_.clone(),
        role: Some(p.role.clone()),
    })
}

/// Builds the view of a stored message.
pub fn message_view(rec: &MessageRecord) -> MessageView {
    message_view_of(rec, None)
}

/// [`message_view`] with the record's UserMessage when the caller has it parsed already (the
/// webhook pusher, from the MSH's recent records: issue 8); `None`: parsed from `rec.header`.
pub fn message_view_of(rec: &MessageRecord, user: Option<UserMessage>) -> MessageView {
    let um = user.or_else(|| user_message(rec));
    let names = payload_names(&rec.payloads);
    let properties = match &um {
        Some(um) if !um.message_properties.is_empty() => um
            .message_properties
            .iter()
            .map(|p| MessageProperty {
                name: p.name.clone(),
                value: p.value.clone(),
                prop_type: p.type_.clone(),
            })
            .collect(),
        _ => rec
            .properties
            .iter()
            .map(|(n, v)| MessageProperty {
                name: n.clone(),
                value: v.clone(),
                prop_type: None,
            })
            .collect(),
    };
    let payloads = rec
        .payloads
        .iter()
        .zip(names)
        .map(|(p, name)| {
            let part_props = um
                .as_ref()
                .and_then(|um| {
                    um.payload_info
                        .iter()
                        .find(|pi| pi.href.as_deref() == Some(p.part_id.as_str()))
                })
                .map(|pi| {
                    pi.part_properties
                        .iter()
                        .map(|pp| MessageProperty {
                            name: pp.name.clone(),
                            value: pp.value.clone(),
                            prop_type: pp.type_.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            PayloadView {
                href: format!(
                    "{}/payloads/{}",
                    message_path(&rec.message_id),
                    encode_segment(&name)
                ),
                name,
                part_id: p.part_id.clone(),
                mime_type: p.mime_type.clone(),
                size: p.file.size(),
                sha256: p.file.sha256_hex(),
                properties: part_props,
            }
        })
        .collect();
    let ci = um.as_ref().map(|um| &um.collaboration_info);
    MessageView {
        message_id: rec.message_id.clone(),
        direction: rec.direction.as_str().to_string(),
        state: rec.state.as_str().to_string(),
        pmode_id: rec.pmode_id.clone(),
        conversation_id: rec.conversation_id.clone(),
        ref_to_message_id: rec.ref_to_message_id.clone(),
        created_at: rfc3339(rec.created_at),
        updated_at: rfc3339(rec.updated_at),
        attempts: rec.attempts,
        next_attempt_at: rec.next_attempt_at.map(rfc3339),
        last_code: rec.last_code.map(|c| c.code().to_string()),
        last_detail: rec.last_detail.clone(),
        service: ci.map(|c| c.service.value.clone()),
        service_type: ci.and_then(|c| c.service.type_.clone()),
        action: ci.map(|c| c.action.clone()),
        from: um.as_ref().and_then(|um| party(&um.party_info.from)),
        to: um.as_ref().and_then(|um| party(&um.party_info.to)),
        properties,
        payloads,
        events: None,
        has_receipt: None,
    }
}

/// Builds the view of an event.
pub fn event_view(e: &Event) -> EventView {
    EventView {
        at: rfc3339(e.at),
        from: e.from.map(|s| s.as_str().to_string()),
        to: e.to.as_str().to_string(),
        detail: e.detail.clone(),
        code: e.code.map(|c| c.code().to_string()),
    }
}
