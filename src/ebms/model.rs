//! The ebMS 3.0 header model: plain values, no I/O, no XML.
//!
//! Cardinalities follow the ebMS 3.0 header XSD and digest §2.3; where the wire allows a
//! state the protocol does not (an empty PartyId, a MessageId with angle brackets, a signal
//! message with no signal), the type makes it unrepresentable or the parser refuses it.
//! Profile rules that real partners break (PartyId-without-type must be a URI, exactly one
//! PartyId, `cid:` hrefs, gzip-only compression) are checked by [`super::validate`], not
//! here, so that those messages still parse and the MSH can choose the error to report.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::codes::{EbmsCode, Severity};

// ---------------------------------------------------------------------------------------------
// MessageId

/// Why a string is not acceptable as an `eb:MessageId` / `eb:RefToMessageId`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageIdError {
    #[error("message id is empty")]
    Empty,
    #[error("message id contains angle brackets; they belong to MIME headers only (digest §2.2, [EBMS3] §5.2.2.1)")]
    AngleBrackets,
    #[error("message id contains white space or a control character")]
    Whitespace,
    #[error("message id is not an RFC 2822 msg-id of the form left@right ([ED115] §3.2.2)")]
    NotRfc2822,
}

/// An `eb:MessageId` (or `eb:RefToMessageId`) value.
///
/// Two levels of checking, because partners differ (digest §2.3, §6.3):
/// - every `MessageId` is non-empty, has no white space or control characters and no angle
///   brackets (angle brackets appear only around Content-IDs in MIME headers, [EBMS3] §5.2.2.1);
///   this is what [`MessageId::parse`] checks and what the parser accepts, because real
///   messages carry ids such as a bare UUID (Peppol) or `MESSAGE_ID` (Domibus test data);
/// - [`MessageId::is_rfc2822`] tells whether it is a proper RFC 2822 `id-left "@" id-right`
///   as eDelivery requires ([ED115] §3.2.2); [`MessageId::new_rfc2822`] and
///   [`MessageId::generate`] only ever produce such ids, and `validate` reports the others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// Accepts a wire value (after xs:token white-space collapsing by the caller).
    pub fn parse(s: &str) -> Result<MessageId, MessageIdError> {
        if s.is_empty() {
            return Err(MessageIdError::Empty);
        }
        if s.contains(['<', '>']) {
            return Err(MessageIdError::AngleBrackets);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(MessageIdError::Whitespace);
        }
        Ok(MessageId(s.to_string()))
    }

    /// Accepts only an RFC 2822 msg-id body `left@right` (no angle brackets).
    pub fn new_rfc2822(s: &str) -> Result<MessageId, MessageIdError> {
        let id = MessageId::parse(s)?;
        if id.is_rfc2822() {
            Ok(id)
        } else {
            Err(MessageIdError::NotRfc2822)
        }
    }

    /// A fresh `uuid@domain` id, the form eDelivery recommends ([ED115] §3.2.2, digest §6.3).
    /// `domain` must be an RFC 2822 dot-atom (e.g. `gw.example.eu`).
    ///
    /// The UUID is time-ordered (version 7, RFC 9562 §5.7): the store indexes message ids, and
    /// random (v4) ids put every new message on a random index page, one more page written per
    /// message on each side (issue 8, `benches/wal_pages.py`); ids of one moment share pages.
    pub fn generate(domain: &str) -> Result<MessageId, MessageIdError> {
        MessageId::new_rfc2822(&format!("{}@{}", time_ordered_uuid(), domain))
    }

    /// True if this is `id-left "@" id-right` per RFC 2822 §3.6.4 (dot-atom-text on the left;
    /// dot-atom-text or a no-fold-literal `[...]` on the right).
    pub fn is_rfc2822(&self) -> bool {
        let Some((left, right)) = self.0.split_once('@') else {
            return false;
        };
        let right_ok = is_dot_atom_text(right)
            || (right.len() >= 2
                && right.starts_with('[')
                && right.ends_with(']')
                && right[1..right.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'[' | b']' | b'\\')));
        is_dot_atom_text(left) && right_ok
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 2822 §3.2.4 dot-atom-text: atext runs separated by single dots.
fn is_dot_atom_text(s: &str) -> bool {
    fn atext(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
    }
    !s.is_empty()
        && s.split('.')
            .all(|run| !run.is_empty() && run.bytes().all(atext))
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MessageId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for MessageId {
    type Err = MessageIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageId::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamp

/// Why an `eb:Timestamp` is not an xs:dateTime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an xs:dateTime: {reason}")]
pub struct TimestampError {
    pub value: String,
    pub reason: &'static str,
}

/// An `eb:MessageInfo/eb:Timestamp`: an instant, kept in UTC.
///
/// The wire type is xs:dateTime "in UTC" ([EBMS3] §5.2.2.1, digest §2.3). Partners send a `Z`,
/// a numeric offset (Peppol, phase4) or no zone at all (the ebMS3 spec examples); the value
/// without a zone is read as UTC, as the specification says it is. The original lexical form is
/// not kept: the writer emits `YYYY-MM-DDThh:mm:ss[.fraction]Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Parses the xs:dateTime lexical form `[-]YYYY-MM-DDThh:mm:ss[.s+][Z|(+|-)hh:mm]`.
    pub fn parse(s: &str) -> Result<Timestamp, TimestampError> {
        let err = |reason| TimestampError {
            value: s.to_string(),
            reason,
        };
        let b = s.as_bytes();
        if b.first() == Some(&b'-') {
            return Err(err("years before 0001 are not supported"));
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(r)?;
            if part.iter().all(u8::is_ascii_digit) {
                std::str::from_utf8(part).ok()?.parse().ok()
            } else {
                None
            }
        };
        // The year has at least four digits.
        let ylen = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if ylen < 4 || (ylen > 4 && b[0] == b'0') {
            return Err(err("bad year"));
        }
        let year = num(0..ylen).ok_or_else(|| err("bad year"))?;
        let p = ylen;
        if b.get(p) != Some(&b'-') || b.get(p + 3) != Some(&b'-') || b.get(p + 6) != Some(&b'T') {
            return Err(err("expected YYYY-MM-DDThh:mm:ss"));
        }
        let month = num(p + 1..p + 3).ok_or_else(|| err("bad month"))?;
        let day = num(p + 4..p + 6).ok_or_else(|| err("bad day"))?;
        let t = p + 7;
        if b.get(t + 2) != Some(&b':') || b.get(t + 5) != Some(&b':') {
            return Err(err("expected hh:mm:ss"));
        }
        let hour = num(t..t + 2).ok_or_else(|| err("bad hour"))?;
        let minute = num(t + 3..t + 5).ok_or_else(|| err("bad minute"))?;
        let second = num(t + 6..t + 8).ok_or_else(|| err("bad second"))?;
        let mut i = t + 8;
        let mut nanos: u32 = 0;
        if b.get(i) == Some(&b'.') {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(err("empty fraction of a second"));
            }
            // Precision beyond nanoseconds is truncated.
            let mut scale = 100_000_000u32;
            for &d in &b[i + 1..i + 1 + digits.min(9)] {
                nanos += u32::from(d - b'0') * scale;
                scale /= 10;
            }
            i += 1 + digits;
        }
        let offset = match &b[i..] {
            [] | [b'Z'] => UtcOffset::UTC,
            [sign @ (b'+' | b'-'), rest @ ..] => {
                if rest.len() != 5 || rest[2] != b':' {
                    return Err(err("bad time zone"));
                }
                let oh = num(i + 1..i + 3).ok_or_else(|| err("bad time zone"))?;
                let om = num(i + 4..i + 6).ok_or_else(|| err("bad time zone"))?;
                if oh > 14 || om > 59 || (oh == 14 && om != 0) {
                    return Err(err("time zone out of range"));
                }
                let secs = (oh * 3600 + om * 60) as i32;
                let secs = if *sign == b'-' { -secs } else { secs };
                UtcOffset::from_whole_seconds(secs).map_err(|_| err("time zone out of range"))?
            }
            _ => return Err(err("trailing characters")),
        };
        let month = u8::try_from(month)
            .ok()
            .and_then(|m| Month::try_from(m).ok())
            .ok_or_else(|| err("month out of range"))?;
        let year = i32::try_from(year).map_err(|_| err("year out of range"))?;
        let date =
            Date::from_calendar_date(year, month, day as u8).map_err(|_| err("no such date"))?;
        // xs:dateTime allows 24:00:00 for the end of a day.
        let (date, hour) = if hour == 24 && minute == 0 && second == 0 && nanos == 0 {
            (date.next_day().ok_or_else(|| err("date out of range"))?, 0)
        } else {
            (date, hour)
        };
        let time = Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos)
            .map_err(|_| err("time of day out of range"))?;
        let dt = PrimitiveDateTime::new(date, time).assume_offset(offset);
        Ok(Timestamp(dt.to_offset(UtcOffset::UTC)))
    }

    /// The timestamp for an instant (converted to UTC).
    pub fn from_datetime(t: OffsetDateTime) -> Timestamp {
        Timestamp(t.to_offset(UtcOffset::UTC))
    }

    /// The instant, in UTC.
    pub fn datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// The wire form: `YYYY-MM-DDThh:mm:ss[.fraction]Z`, fraction without trailing zeros.
    pub fn to_xml(&self) -> String {
        let t = self.0;
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let ns = t.nanosecond();
        if ns != 0 {
            let frac = format!("{ns:09}");
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        s.push('Z');
        s
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_xml())
    }
}

// ---------------------------------------------------------------------------------------------
// eb:Messaging

/// The `eb:Messaging` SOAP header block ([EBMS3] §5.2.1, digest §2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Messaging {
    /// `wsu:Id` (or the schema's own `id`): what the signature references ([AS4] §5.1.4(b)).
    pub id: Option<String>,
    /// At most one user message ([EBMS3] §5.2.4); two are refused with EBMS:0003.
    pub user_message: Option<UserMessage>,
    /// Zero or more signal messages, in document order.
    pub signal_messages: Vec<SignalMessage>,
}

/// `eb:MessageInfo` ([EBMS3] §5.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    pub timestamp: Timestamp,
    pub message_id: MessageId,
    pub ref_to_message_id: Option<MessageId>,
}

/// `eb:UserMessage` ([EBMS3] §5.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserMessage {
    /// `@mpc`; `None` means the default MPC ([`crate::ns::DEFAULT_MPC`]).
    pub mpc: Option<String>,
    pub message_info: MessageInfo,
    pub party_info: PartyInfo,
    pub collaboration_info: CollaborationInfo,
    /// `eb:MessageProperties/eb:Property`, in order (empty when the container is absent).
    pub message_properties: Vec<Property>,
    /// `eb:PayloadInfo/eb:PartInfo`, in order; the order is significant ([ED115] §3.2.3).
    pub payload_info: Vec<PartInfo>,
}

impl UserMessage {
    /// The MPC, with the ebMS default applied ([EBMS3] §3.4).
    pub fn mpc_or_default(&self) -> &str {
        self.mpc.as_deref().unwrap_or(crate::ns::DEFAULT_MPC)
    }

    /// The first message property with this name (e.g. `originalSender`, digest §3.5).
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.message_properties.iter().find(|p| p.name == name)
    }
}

/// `eb:PartyInfo`: both ends are mandatory ([EBMS3] §5.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyInfo {
    pub from: Party,
    pub to: Party,
}

/// `eb:From` / `eb:To`: one or more PartyIds and a Role ([EBMS3] §5.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Never empty after parsing (1..n); eDelivery wants exactly one ([ED115] §3.5.1).
    pub party_ids: Vec<PartyId>,
    pub role: String,
}

/// `eb:PartyId` ([EBMS3] §5.2.2.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartyId {
    /// Non-empty.
    pub value: String,
    /// `@type`; without it the value must be a URI (checked by `validate`, EBMS:0003).
    pub type_: Option<String>,
}

/// `eb:CollaborationInfo` ([EBMS3] §5.2.2.6–10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollaborationInfo {
    pub agreement_ref: Option<AgreementRef>,
    pub service: Service,
    /// Non-empty.
    pub action: String,
    pub conversation_id: String,
}

/// `eb:AgreementRef` ([EBMS3] §5.2.2.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementRef {
    pub value: String,
    pub type_: Option<String>,
    pub pmode: Option<String>,
}

/// `eb:Service` ([EBMS3] §5.2.2.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Non-empty.
    pub value: String,
    /// `@type`; without it the value must be a URI (checked by `validate`, EBMS:0003).
    pub type_: Option<String>,
}

/// `eb:Property` in MessageProperties or PartProperties; `@type` is the errata attribute
/// eDelivery requires ([ED115] §3.2.2, digest §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub type_: Option<String>,
    /// The character content as sent (not trimmed: property values are strings, not tokens).
    pub value: String,
}

impl Property {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Property {
        Property {
            name: name.into(),
            type_: None,
            value: value.into(),
        }
    }
}

/// `eb:PartInfo` ([EBMS3] §5.2.2.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// `@href`: `cid:…` for a MIME part; absent means the SOAP Body (never in eDelivery).
    pub href: Option<String>,
    pub schemas: Vec<Schema>,
    pub description: Option<Description>,
    /// `eb:PartProperties/eb:Property` (e.g. `MimeType`, `CompressionType`, digest §2.9).
    pub part_properties: Vec<Property>,
}

impl PartInfo {
    /// The first part property with this name.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.part_properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }

    /// The Content-ID this part refers to (`href` without `cid:`), if it is a `cid:` reference.
    pub fn content_id(&self) -> Option<&str> {
        self.href.as_deref().and_then(|h| h.strip_prefix("cid:"))
    }
}

/// `eb:Schema` ([EBMS3] §5.2.2.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Required by the XSD; absent in the OOTS Governikus templates (`<Schema/>`).
    pub location: Option<String>,
    pub version: Option<String>,
    pub namespace: Option<String>,
}

/// `eb:Description` with its `xml:lang`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `xml:lang` (required by the XSD; kept as sent, possibly empty).
    pub lang: String,
    pub text: String,
}

// ---------------------------------------------------------------------------------------------
// Signals

/// `eb:SignalMessage` ([EBMS3] §5.2.3, digest §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalMessage {
    pub message_info: MessageInfo,
    pub signal: Signal,
}

/// The one kind of signal a SignalMessage carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Receipt(Receipt),
    /// One or more `eb:Error` (never empty after parsing); they all refer to
    /// `MessageInfo/RefToMessageId` when present ([EBMS3] §6.3).
    Errors(Vec<SignalError>),
    /// `eb:PullRequest` (parsed only; pulling is not part of eDelivery, [ED115] §3.2).
    PullRequest(PullRequest),
}

impl Signal {
    pub fn kind(&self) -> &'static str {
        match self {
            Signal::Receipt(_) => "Receipt",
            Signal::Errors(_) => "Error",
            Signal::PullRequest(_) => "PullRequest",
        }
    }
}

/// `eb:PullRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub mpc: Option<String>,
}

/// `eb:Receipt` content ([AS4] §5.1.8, digest §2.5).
///
/// An NRR receipt (what eDelivery uses) has `non_repudiation`; a reception-awareness receipt
/// carries a copy of the UserMessage (or, in phase4's SOAP 1.1 sample, a whole envelope), and
/// phase4 appends its own `phase4` info element next to the NRR information: everything that is
/// not a well-formed `ebbp:NonRepudiationInformation` is kept opaque in `other`, in order, so
/// such receipts still parse and write back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Receipt {
    /// One `ebbp:MessagePartNRInformation` per signed part of the receipted message, in order.
    pub non_repudiation: Option<Vec<MessagePartNrInformation>>,
    /// The other child elements of `eb:Receipt`.
    pub other: Vec<RawXml>,
}

impl Receipt {
    /// An NRR receipt with these parts and nothing else.
    pub fn nrr(parts: Vec<MessagePartNrInformation>) -> Receipt {
        Receipt {
            non_repudiation: Some(parts),
            other: Vec::new(),
        }
    }
}

/// `ebbp:MessagePartNRInformation` holding a `ds:Reference`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePartNrInformation {
    /// `ebbp:MessagePartIdentifier` when a (non-AS4) sender also put one there; AS4 says not to
    /// identify parts this way ([AS4] §5.1.8), so the writer emits it only if present.
    pub part_identifier: Option<String>,
    pub reference: DsReference,
}

/// A copy of a `ds:Reference` from the receipted message's SignedInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsReference {
    /// `@URI`: `#id` for Messaging/Body, `cid:…` for attachments.
    pub uri: String,
    /// In order; may be empty (asx-rs omits them, digest §12.2).
    pub transforms: Vec<Transform>,
    pub digest_method: String,
    /// The decoded `ds:DigestValue`.
    pub digest_value: Vec<u8>,
}

/// A `ds:Transform`; only the `ec:InclusiveNamespaces/@PrefixList` parameter is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub algorithm: String,
    /// `Some` when an `ec:InclusiveNamespaces` child is present (its PrefixList tokens).
    pub inclusive_prefixes: Option<Vec<String>>,
}

/// A self-contained XML fragment (one element) in Exclusive C14N form: it carries the namespace
/// declarations it uses, so it can be written back anywhere unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawXml(pub(crate) String);

impl RawXml {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `eb:Error/@errorCode`: a known ebMS code or anything else a partner sent (e.g. `0101`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Known(EbmsCode),
    Other(String),
}

impl ErrorCode {
    pub fn parse(s: &str) -> ErrorCode {
        s.parse::<EbmsCode>()
            .map(ErrorCode::Known)
            .unwrap_or_else(|()| ErrorCode::Other(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Known(c) => c.code(),
            ErrorCode::Other(s) => s,
        }
    }
}

/// One `eb:Error` ([EBMS3] §6.2, digest §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalError {
    pub error_code: ErrorCode,
    /// `warning` | `failure` (read case-insensitively: phase4 sends `Failure`).
    pub severity: Severity,
    pub origin: Option<String>,
    pub category: Option<String>,
    /// Kept as sent: may be empty (phase4 writes `refToMessageInError=""`).
    pub ref_to_message_in_error: Option<String>,
    pub short_description: Option<String>,
    pub description: Option<Description>,
    pub error_detail: Option<String>,
}

impl SignalError {
    /// An error for a known code with severity, origin, category and short description taken
    /// from the specification table (digest §2.6).
    pub fn from_code(code: EbmsCode) -> SignalError {
        SignalError {
            error_code: ErrorCode::Known(code),
            severity: code.severity(),
            origin: Some(code.origin().as_str().to_string()),
            category: Some(code.category().as_str().to_string()),
            ref_to_message_in_error: None,
            short_description: Some(code.short_description().to_string()),
            description: None,
            error_detail: None,
        }
    }

    /// Sets `refToMessageInError`.
    pub fn referring_to(mut self, id: &MessageId) -> SignalError {
        self.ref_to_message_in_error = Some(id.as_str().to_string());
        self
    }

    /// Sets `eb:ErrorDetail` (free text for operators; never secrets).
    pub fn with_detail(mut self, detail: impl Into<String>) -> SignalError {
        self.error_detail = Some(detail.into());
        self
    }
}

/// A fresh random (version 4) UUID from aws-lc's DRBG: `Uuid::new_v4` makes a `getrandom`
/// system call per id, and a message makes several (wsu:Id, work directory, MIME boundary).
pub fn random_uuid() -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return uuid::Uuid::new_v4();
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A fresh version-7 UUID (RFC 9562 §5.7): 48 bits of Unix time in milliseconds, then 74
/// random bits from aws-lc's DRBG (`getrandom` only if that fails). Used for the identifiers
/// the gateway makes up and the store indexes (MessageId, ConversationId): ids made close in
/// time sort close together, so an index takes new ids on the same few pages. The timestamp
/// reveals nothing the message does not already carry (eb:Timestamp).
pub fn time_ordered_uuid() -> uuid::Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut random = [0u8; 10];
    if aws_lc_rs::rand::fill(&mut random).is_err() {
        random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
    }
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_levels() {
        assert!(MessageId::parse("MESSAGE_ID").is_ok());
        assert!(!MessageId::parse("MESSAGE_ID").unwrap().is_rfc2822());
        assert_eq!(
            MessageId::parse("<a@b>"),
            Err(MessageIdError::AngleBrackets)
        );
        assert_eq!(MessageId::parse(""), Err(MessageIdError::Empty));
        assert_eq!(MessageId::parse("a b@c"), Err(MessageIdError::Whitespace));
        assert!(MessageId::new_rfc2822("ph-as4@e348b6f9-bea5-422b-972a-90").is_ok());
        assert!(MessageId::new_rfc2822("a@[1.2.3.4]").is_ok());
        assert_eq!(
            MessageId::new_rfc2822("a@@b"),
            Err(MessageIdError::NotRfc2822)
        );
        assert_eq!(
            MessageId::new_rfc2822("a..b@c"),
            Err(MessageIdError::NotRfc2822)
        );
        assert_eq!(
            MessageId::new_rfc2822("@c"),
            Err(MessageIdError::NotRfc2822)
        );
        let g = MessageId::generate("gw.example.eu").unwrap();
        assert!(g.as_str().ends_with("@gw.example.eu") && g.is_rfc2822());
        assert_eq!(g.as_str().len(), 36 + 1 + 13);
        assert!(MessageId::generate("bad domain").is_err());
    }

    #[test]
    fn generated_ids_are_time_ordered() {
        // Version 7 (RFC 9562 §5.7): later ids sort after earlier ones, so a store index takes
        // new ids at its right edge instead of on a random page each.
        let first = MessageId::generate("gw.example.eu").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = MessageId::generate("gw.example.eu").unwrap();
        let uuid_of = |m: &MessageId| {
            let (left, _) = m.as_str().split_once('@').unwrap();
            uuid::Uuid::parse_str(left).unwrap()
        };
        assert_eq!(uuid_of(&first).get_version_num(), 7);
        assert_eq!(uuid_of(&second).get_version_num(), 7);
        assert!(first.as_str() < second.as_str());
        // The 74 random bits differ between ids of the same millisecond.
        let a = time_ordered_uuid();
        let b = time_ordered_uuid();
        assert_ne!(a, b);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        let (r1, r2) = (random_uuid(), random_uuid());
        assert_ne!(r1, r2);
        assert_eq!(r1.get_version_num(), 4);
        assert_eq!(r1.get_variant(), uuid::Variant::RFC4122);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (secs, nanos) = a.get_timestamp().unwrap().to_unix();
        let ms = secs * 1000 + u64::from(nanos / 1_000_000);
        assert!(now_ms.abs_diff(ms) < 60_000, "{ms} vs {now_ms}");
    }

    #[test]
    fn timestamps() {
        let t = |s| Timestamp::parse(s).map(|t| t.to_xml());
        assert_eq!(
            t("2026-08-06T10:00:00.000Z").unwrap(),
            "2026-08-06T10:00:00Z"
        );
        assert_eq!(t("2006-07-25T12:19:05").unwrap(), "2006-07-25T12:19:05Z");
        assert_eq!(
            t("2016-09-21T15:03:40.314+02:00").unwrap(),
            "2016-09-21T13:03:40.314Z"
        );
        assert_eq!(
            t("2023-03-09T10:23:26.8542515+01:00").unwrap(),
            "2023-03-09T09:23:26.8542515Z"
        );
        assert_eq!(
            t("2025-09-25T09:54:32.971659362123+02:00").unwrap(),
            "2025-09-25T07:54:32.971659362Z"
        );
        assert_eq!(t("2020-12-31T24:00:00Z").unwrap(), "2021-01-01T00:00:00Z");
        assert_eq!(
            t("2020-01-01T00:30:00-01:30").unwrap(),
            "2020-01-01T02:00:00Z"
        );
        for bad in [
            "2006-30-30T30:99:99",
            "2021-02-29T00:00:00Z",
            "2021-01-01 00:00:00Z",
            "2021-01-01T00:00:00+0100",
            "2021-01-01T00:00:00.Z",
            "2021-01-01T00:00Z",
            "21-01-01T00:00:00Z",
            "2021-01-01T00:00:00Zjunk",
            "",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        // Round trip through the writer.
        let x = Timestamp::parse("2023-03-09T10:23:26.8542515+01:00").unwrap();
        assert_eq!(Timestamp::parse(&x.to_xml()).unwrap(), x);
    }

    #[test]
    fn error_code_known_and_other() {
        assert_eq!(
            ErrorCode::parse("EBMS:0003"),
            ErrorCode::Known(EbmsCode::ValueInconsistent)
        );
        assert_eq!(ErrorCode::parse("0101"), ErrorCode::Other("0101".into()));
        let e = SignalError::from_code(EbmsCode::InvalidHeader);
        assert_eq!(e.short_description.as_deref(), Some("InvalidHeader"));
        assert_eq!(e.category.as_deref(), Some("Unpackaging"));
    }
}
