//! The SOAP envelope around `eb:Messaging`: parsing (SOAP 1.2, and SOAP 1.1 for the ebMS3
//! samples) and building (SOAP 1.2 only, what eDelivery sends; digest §2.2).
//!
//! Parsing keeps the [`Document`] and the node ids of the parts the security room needs
//! (Header, Body, eb:Messaging, wsse:Security), so signatures are verified over the tree that
//! was parsed, not over a re-serialization.
//!
//! Envelope-level faults and their reports (digest §2.6, §2.7; docs/ebms.md):
//! - not well-formed / not a SOAP Envelope / no Body → EBMS:0009 (a SOAP processor would
//!   answer `VersionMismatch` for a foreign root element);
//! - no `eb:Messaging` in a message without a SOAP Fault → EBMS:0009 (the MSH MUST understand
//!   eb:Messaging, [EBMS3] §5.1.1, §5.2.1: without it there is no ebMS message);
//! - more than one `eb:Messaging` → EBMS:0009: a duplicated header block breaks the packaging
//!   rules (and would let a signature cover one block while the other is processed); 0003 is for
//!   values that contradict each other, and nothing has been compared yet;
//! - an unknown header block with `mustUnderstand` true → a SOAP `MustUnderstand` fault, not an
//!   ebMS error (SOAP 1.2 Part 1 §5.2.3, digest §2.7).

use super::codes::EbmsCode;
use super::model::Messaging;
use super::parse::ParseError;
use super::write::write_messaging;
use crate::ns;
use crate::xml::{escape_attr, Document, Node, NodeId, XmlError};

/// SOAP version, from the envelope namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    Soap11,
    Soap12,
}

impl SoapVersion {
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::Soap11 => ns::S11,
            SoapVersion::Soap12 => ns::S12,
        }
    }
}

/// SOAP Fault codes (SOAP 1.2 Part 1 §5.4.6; SOAP 1.1 `Client`/`Server` map to Sender/Receiver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultCode {
    VersionMismatch,
    MustUnderstand,
    DataEncodingUnknown,
    Sender,
    Receiver,
    /// A code outside the envelope namespace, or unresolvable: kept as written.
    Other(String),
}

/// A SOAP Fault found in a Body (responses: digest §2.5, an ebMS failure comes with a Fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    pub code: FaultCode,
    /// Subcode values as written (QNames), outermost first.
    pub subcodes: Vec<String>,
    /// The first `Reason/Text` (SOAP 1.1: `faultstring`), white space collapsed.
    pub reason: String,
    pub role: Option<String>,
}

/// A header block other than eb:Messaging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderBlock {
    pub node: NodeId,
    pub namespace: Option<String>,
    pub local: String,
    pub must_understand: bool,
}

/// The parsed `eb:Messaging` header block.
#[derive(Debug, Clone)]
pub struct MessagingBlock {
    pub node: NodeId,
    pub messaging: Messaging,
    /// The block's `mustUnderstand` (ebMS requires true, [EBMS3] §5.2.1; some partners send
    /// `false`, which is reported, not refused, here).
    pub must_understand: bool,
}

/// A parsed SOAP envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub version: SoapVersion,
    pub document: Document,
    pub header: Option<NodeId>,
    pub body: NodeId,
    /// `eb:Messaging`; `None` only when the Body holds a SOAP Fault.
    pub messaging: Option<MessagingBlock>,
    /// Every `wsse:Security` header block (the security room decides what more than one means).
    pub security: Vec<NodeId>,
    /// Other header blocks (none of them with mustUnderstand true: those are refused).
    pub other_headers: Vec<HeaderBlock>,
    pub fault: Option<SoapFault>,
}

impl Envelope {
    /// Body's identifier (`wsu:Id`, `xml:id`, `Id` or `id`), what a signature references.
    pub fn body_id(&self) -> Option<&str> {
        self.document.node(self.body).id_attributes().next()
    }

    /// True when the Body has element children (eDelivery wants it empty, [ED115] §3.2.3).
    pub fn body_has_content(&self) -> bool {
        self.document
            .node(self.body)
            .child_elements()
            .next()
            .is_some()
    }

    pub fn has_security_header(&self) -> bool {
        !self.security.is_empty()
    }
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SoapError {
    #[error("not well-formed: {0}")]
    Xml(#[from] XmlError),
    #[error("root element is {0}, not a SOAP 1.1/1.2 Envelope")]
    NotAnEnvelope(String),
    #[error("envelope has no Body, or Header/Body are duplicated or out of order")]
    BadStructure,
    #[error("no eb:Messaging header block ([EBMS3] §5.2.1)")]
    MissingMessaging,
    #[error("{0} eb:Messaging header blocks; exactly one is allowed")]
    DuplicateMessaging(usize),
    #[error("header block {{{namespace}}}{local} has mustUnderstand=true and is not understood")]
    MustUnderstand { namespace: String, local: String },
    #[error("mustUnderstand value {0:?} is not a boolean")]
    BadMustUnderstand(String),
    #[error("SOAP Fault without {0}")]
    InvalidFault(&'static str),
    #[error("eb:Messaging: {0}")]
    Ebms(#[from] ParseError),
}

impl SoapError {
    /// The ebMS error to report, if this is one (a MustUnderstand fault is a SOAP fault only).
    pub fn ebms_code(&self) -> Option<EbmsCode> {
        match self {
            SoapError::MustUnderstand { .. } => None,
            SoapError::Ebms(e) => Some(e.code()),
            _ => Some(EbmsCode::InvalidHeader),
        }
    }

    /// The SOAP fault code a receiver answers with (SOAP 1.2 Part 1 §5.4.6).
    pub fn soap_fault_code(&self) -> FaultCode {
        match self {
            SoapError::NotAnEnvelope(_) => FaultCode::VersionMismatch,
            SoapError::MustUnderstand { .. } => FaultCode::MustUnderstand,
            _ => FaultCode::Sender,
        }
    }
}

/// Parses SOAP bytes (one XML document; MIME unpacking is the mime room's job).
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, SoapError> {
    parse_envelope_document(Document::parse(bytes)?)
}

fn qname(n: Node<'_>) -> String {
    n.element()
        .map(|e| e.qname().into_owned())
        .unwrap_or_default()
}

/// `mustUnderstand` of a header block, in the envelope's namespace. SOAP 1.2 uses xs:boolean;
/// SOAP 1.1 uses `0`/`1` (booleans are accepted there too).
fn must_understand(n: Node<'_>, v: SoapVersion) -> Result<bool, SoapError> {
    match n.attr(Some(v.namespace()), "mustUnderstand").map(str::trim) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(SoapError::BadMustUnderstand(other.to_string())),
    }
}

/// Parses an already built tree (e.g. the root part from the mime room).
pub fn parse_envelope_document(document: Document) -> Result<Envelope, SoapError> {
    let root = document.root();
    let version = if root.is(ns::S12, "Envelope") {
        SoapVersion::Soap12
    } else if root.is(ns::S11, "Envelope") {
        SoapVersion::Soap11
    } else {
        return Err(SoapError::NotAnEnvelope(qname(root)));
    };
    let env_ns = version.namespace();
    // Header? Body, nothing else in the envelope namespace (SOAP 1.2 Part 1 §5.1).
    let kids: Vec<Node<'_>> = root.child_elements().collect();
    let (header, body) = match kids.as_slice() {
        [h, b] if h.is(env_ns, "Header") && b.is(env_ns, "Body") => (Some(*h), *b),
        [b] if b.is(env_ns, "Body") => (None, *b),
        [h, b, ..]
            if h.is(env_ns, "Header") && b.is(env_ns, "Body") && version == SoapVersion::Soap11 =>
        {
            (Some(*h), *b)
        }
        [b, ..] if b.is(env_ns, "Body") && version == SoapVersion::Soap11 => (None, *b),
        _ => return Err(SoapError::BadStructure),
    };

    let fault = match body.child(env_ns, "Fault") {
        None => None,
        Some(f) => Some(parse_fault(f, version)?),
    };

    let mut messaging_nodes = Vec::new();
    let mut security = Vec::new();
    let mut other_headers = Vec::new();
    if let Some(h) = header {
        for b in h.child_elements() {
            let mu = must_understand(b, version)?;
            if b.is(ns::EB, "Messaging") {
                messaging_nodes.push((b, mu));
            } else if b.is(ns::WSSE, "Security") {
                security.push(b.id());
            } else if mu {
                return Err(SoapError::MustUnderstand {
                    namespace: b.namespace().unwrap_or_default().to_string(),
                    local: b.local_name().to_string(),
                });
            } else {
                other_headers.push(HeaderBlock {
                    node: b.id(),
                    namespace: b.namespace().map(str::to_string),
                    local: b.local_name().to_string(),
                    must_understand: false,
                });
            }
        }
    }
    let messaging = match messaging_nodes.as_slice() {
        [] if fault.is_some() => None,
        [] => return Err(SoapError::MissingMessaging),
        [(n, mu)] => Some(MessagingBlock {
            node: n.id(),
            messaging: Messaging::from_node(*n)?,
            must_understand: *mu,
        }),
        more => return Err(SoapError::DuplicateMessaging(more.len())),
    };
    let header = header.map(|h| h.id());
    let body = body.id();
    Ok(Envelope {
        version,
        header,
        body,
        messaging,
        security,
        other_headers,
        fault,
        document,
    })
}

fn collapse(s: &str) -> String {
    super::parse::collapse(s)
}

fn fault_code_from_qname(n: Node<'_>, value: &str, v: SoapVersion) -> FaultCode {
    let (prefix, local) = match value.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, value),
    };
    if n.lookup_namespace(prefix) != Some(v.namespace()) {
        return FaultCode::Other(value.to_string());
    }
    match local {
        "VersionMismatch" => FaultCode::VersionMismatch,
        "MustUnderstand" => FaultCode::MustUnderstand,
        "DataEncodingUnknown" => FaultCode::DataEncodingUnknown,
        "Sender" | "Client" => FaultCode::Sender,
        "Receiver" | "Server" => FaultCode::Receiver,
        _ => FaultCode::Other(value.to_string()),
    }
}

fn parse_fault(f: Node<'_>, v: SoapVersion) -> Result<SoapFault, SoapError> {
    match v {
        SoapVersion::Soap12 => {
            let code = f
                .child(ns::S12, "Code")
                .ok_or(SoapError::InvalidFault("Code"))?;
            let value = code
                .child(ns::S12, "Value")
                .ok_or(SoapError::InvalidFault("Code/Value"))?;
            let value_text = collapse(&value.text());
            let mut subcodes = Vec::new();
            let mut cur = code.child(ns::S12, "Subcode");
            while let Some(sc) = cur {
                if let Some(v) = sc.child(ns::S12, "Value") {
                    subcodes.push(collapse(&v.text()));
                }
                cur = sc.child(ns::S12, "Subcode");
            }
            let reason = f
                .child(ns::S12, "Reason")
                .ok_or(SoapError::InvalidFault("Reason"))?;
            let text = reason
                .child(ns::S12, "Text")
                .ok_or(SoapError::InvalidFault("Reason/Text"))?;
            Ok(SoapFault {
                code: fault_code_from_qname(value, &value_text, v),
                subcodes,
                reason: collapse(&text.text()),
                role: f.child(ns::S12, "Role").map(|r| collapse(&r.text())),
            })
        }
        SoapVersion::Soap11 => {
            // SOAP 1.1 fault children are unqualified.
            let code = f
                .child_elements()
                .find(|c| c.namespace().is_none() && c.local_name() == "faultcode")
                .ok_or(SoapError::InvalidFault("faultcode"))?;
            let reason = f
                .child_elements()
                .find(|c| c.namespace().is_none() && c.local_name() == "faultstring")
                .ok_or(SoapError::InvalidFault("faultstring"))?;
            let code_text = collapse(&code.text());
            Ok(SoapFault {
                code: fault_code_from_qname(code, &code_text, v),
                subcodes: Vec::new(),
                reason: collapse(&reason.text()),
                role: f
                    .child_elements()
                    .find(|c| c.namespace().is_none() && c.local_name() == "faultactor")
                    .map(|r| collapse(&r.text())),
            })
        }
    }
}

/// A fresh identifier for `wsu:Id` attributes (an NCName: `_` + UUID).
pub fn new_wsu_id() -> String {
    format!("_{}", super::model::random_uuid())
}

/// Builds an outgoing SOAP 1.2 envelope (digest §2.2, [ED115] §1.6 example):
///
/// `S12:Envelope / S12:Header / [wsse:Security] eb:Messaging` and an empty
/// `S12:Body wsu:Id=body_id` (eDelivery: payloads only in MIME parts, [ED115] §3.2.3).
///
/// `security` is a pre-serialized, self-contained `wsse:Security` element (it may use the
/// `S12` prefix, declared on the Envelope); it goes first in the Header, as WS-Security
/// processing order expects. `messaging.id` should be set so the signature can reference the
/// block by `wsu:Id`; the security room signs `#<messaging.id>` and `#<body_id>`.
pub fn build_envelope(messaging: &Messaging, body_id: &str, security: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    out.extend_from_slice(b"<S12:Envelope xmlns:S12=\"");
    escape_attr(ns::S12, &mut out);
    out.extend_from_slice(b"\"><S12:Header>");
    if let Some(sec) = security {
        out.extend_from_slice(sec.as_bytes());
    }
    write_messaging(messaging, &mut out);
    out.extend_from_slice(b"</S12:Header><S12:Body xmlns:wsu=\"");
    escape_attr(ns::WSU, &mut out);
    out.extend_from_slice(b"\" wsu:Id=\"");
    escape_attr(body_id, &mut out);
    out.extend_from_slice(b"\"/></S12:Envelope>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebms::model::*;

    fn receipt() -> Messaging {
        Messaging::nrr_receipt(
            Some("_m1".into()),
            MessageId::new_rfc2822("r@gw").unwrap(),
            Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            &MessageId::new_rfc2822("u@gw").unwrap(),
            vec![],
        )
    }

    #[test]
    fn build_then_parse() {
        let sec = r#"<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" S12:mustUnderstand="true"/>"#;
        let bytes = build_envelope(&receipt(), "_b1", Some(sec));
        let env = parse_envelope(&bytes).unwrap();
        assert_eq!(env.version, SoapVersion::Soap12);
        assert_eq!(env.body_id(), Some("_b1"));
        assert!(!env.body_has_content());
        assert_eq!(env.security.len(), 1);
        let mb = env.messaging.as_ref().unwrap();
        assert!(mb.must_understand);
        assert_eq!(mb.messaging, receipt());
        // Both signing targets resolve to exactly one element.
        assert_eq!(env.document.elements_by_id("_m1").len(), 1);
        assert_eq!(env.document.elements_by_id("_b1").len(), 1);
    }

    #[test]
    fn unknown_must_understand_header_faults() {
        let mut xml = String::from_utf8(build_envelope(&receipt(), "_b", None)).unwrap();
        xml = xml.replace(
            "<S12:Header>",
            r#"<S12:Header><x:H xmlns:x="urn:x" S12:mustUnderstand="1"/>"#,
        );
        let e = parse_envelope(xml.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            SoapError::MustUnderstand {
                namespace: "urn:x".into(),
                local: "H".into()
            }
        );
        assert_eq!(e.soap_fault_code(), FaultCode::MustUnderstand);
        assert_eq!(e.ebms_code(), None);
        // Not understood but optional: recorded, not refused.
        let ok = xml.replace(
            "S12:mustUnderstand=\"1\"/>",
            "S12:mustUnderstand=\"false\"/>",
        );
        assert_eq!(
            parse_envelope(ok.as_bytes()).unwrap().other_headers.len(),
            1
        );
    }

    #[test]
    fn messaging_cardinality() {
        let xml = String::from_utf8(build_envelope(&receipt(), "_b", None)).unwrap();
        let m = receipt().to_xml();
        let two = xml.replace("</S12:Header>", &format!("{m}</S12:Header>"));
        let e = parse_envelope(two.as_bytes()).unwrap_err();
        assert_eq!(e, SoapError::DuplicateMessaging(2));
        assert_eq!(e.ebms_code(), Some(EbmsCode::InvalidHeader));
        let none = xml.replace(&m, "");
        assert_eq!(
            parse_envelope(none.as_bytes()).unwrap_err(),
            SoapError::MissingMessaging
        );
    }

    #[test]
    fn not_an_envelope() {
        let e = parse_envelope(b"<a/>").unwrap_err();
        assert_eq!(e.soap_fault_code(), FaultCode::VersionMismatch);
        assert_eq!(e.ebms_code(), Some(EbmsCode::InvalidHeader));
        let e =
            parse_envelope(b"<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"/>")
                .unwrap_err();
        assert_eq!(e, SoapError::BadStructure);
    }
}
