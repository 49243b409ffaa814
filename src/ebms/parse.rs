//! `eb:Messaging` from the XML tree, by namespace URI only (never by prefix: Domibus writes
//! `ns2:`..`ns5:`, Holodeck `eb3:`, Dataport odd prefixes; digest §2.1).
//!
//! The parser enforces the header's *structure* — what the ebMS 3.0 XSD and [EBMS3] §5.2 say an
//! `eb:Messaging` is — and maps each violation to an EBMS code (digest §2.6):
//! missing, duplicated or empty required elements, bad Timestamp or MessageId → EBMS:0009
//! InvalidHeader; a second `eb:UserMessage` → EBMS:0003 ValueInconsistent (as phase4 reports
//! it). Profile rules are left to [`super::validate`].
//!
//! Values typed xs:token in the XSD (ids, parties, roles, service, action, hrefs, attribute
//! values) have their white space collapsed, as a schema-validating receiver would see them;
//! property values and descriptions are kept as sent.

use std::fmt;

use base64::Engine;

use super::codes::{EbmsCode, Severity};
use super::model::*;
use crate::ns;
use crate::xml::{canonical_bytes, C14nOptions, Document, Node, XmlError};

/// What is wrong with an `eb:Messaging` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    #[error("XML: {0}")]
    Xml(#[from] XmlError),
    #[error("expected eb:Messaging, found {0}")]
    NotMessaging(String),
    #[error("required element eb:{0} is missing")]
    Missing(&'static str),
    #[error("element eb:{0} occurs more than once")]
    Duplicate(&'static str),
    #[error("element {0} is empty")]
    Empty(&'static str),
    #[error("required attribute {0} is missing")]
    MissingAttribute(&'static str),
    #[error("more than one eb:UserMessage in eb:Messaging ([EBMS3] §5.2.4)")]
    MultipleUserMessages,
    #[error("bad Timestamp: {0}")]
    Timestamp(#[from] TimestampError),
    #[error("bad message id {value:?}: {reason}")]
    MessageId {
        value: String,
        reason: MessageIdError,
    },
    #[error("eb:SignalMessage carries no signal (Receipt, Error or PullRequest)")]
    NoSignal,
    #[error("eb:SignalMessage mixes signal kinds ({0})")]
    MixedSignals(String),
    #[error("eb:Error/@severity {0:?} is neither warning nor failure")]
    Severity(String),
    #[error("ds:DigestValue is not base64")]
    DigestValue,
}

impl ParseErrorKind {
    /// The EBMS code the receiving MSH reports for this fault (digest §2.6; docs/ebms.md).
    pub fn code(&self) -> EbmsCode {
        match self {
            ParseErrorKind::MultipleUserMessages => EbmsCode::ValueInconsistent,
            _ => EbmsCode::InvalidHeader,
        }
    }
}

/// A header fault, with where it was found (an element path such as
/// `eb:Messaging/eb:UserMessage/eb:PartyInfo/eb:To`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub path: String,
}

impl ParseError {
    pub fn code(&self) -> EbmsCode {
        self.kind.code()
    }
    fn at(kind: ParseErrorKind, path: &str) -> ParseError {
        ParseError {
            kind,
            path: path.to_string(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (at {})",
            self.code().code(),
            self.kind,
            self.path
        )
    }
}

type R<T> = Result<T, ParseError>;

/// xs:token white-space collapsing: trim and fold internal runs of white space to one space.
pub(crate) fn collapse(s: &str) -> String {
    s.split([' ', '\t', '\n', '\r'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn child_path(path: &str, local: &str) -> String {
    format!("{path}/eb:{local}")
}

/// At most one `eb:local` child.
fn opt<'a>(n: Node<'a>, local: &'static str, path: &str) -> R<Option<Node<'a>>> {
    let mut it = n.children_named(ns::EB, local);
    let first = it.next();
    if it.next().is_some() {
        return Err(ParseError::at(ParseErrorKind::Duplicate(local), path));
    }
    Ok(first)
}

/// Exactly one `eb:local` child.
fn one<'a>(n: Node<'a>, local: &'static str, path: &str) -> R<Node<'a>> {
    opt(n, local, path)?.ok_or_else(|| ParseError::at(ParseErrorKind::Missing(local), path))
}

/// A required, non-empty xs:token-like text child.
fn token(n: Node<'_>, local: &'static str, path: &str) -> R<String> {
    let c = one(n, local, path)?;
    nonempty_token(c, local, &child_path(path, local))
}

fn nonempty_token(c: Node<'_>, what: &'static str, path: &str) -> R<String> {
    let v = collapse(&c.text());
    if v.is_empty() {
        return Err(ParseError::at(ParseErrorKind::Empty(what), path));
    }
    Ok(v)
}

/// An optional attribute, collapsed; an empty value counts as absent (the XSD types these
/// attributes non-empty-string, so an empty one carries no information; Domibus sends
/// `Service type=""` in its test message).
fn attr_opt(n: Node<'_>, local: &str) -> Option<String> {
    n.attr(None, local).map(collapse).filter(|v| !v.is_empty())
}

fn to_message_id(value: String, path: &str) -> R<MessageId> {
    MessageId::parse(&value)
        .map_err(|reason| ParseError::at(ParseErrorKind::MessageId { value, reason }, path))
}

impl Messaging {
    /// Parses a document whose root element is `eb:Messaging` (a stored header, as in the OOTS
    /// samples). For SOAP envelopes use [`super::soap::parse_envelope`].
    pub fn parse(xml: &[u8]) -> Result<Messaging, ParseError> {
        let doc = Document::parse(xml).map_err(|e| ParseError::at(e.into(), "/"))?;
        Messaging::from_node(doc.root())
    }

    /// Parses the `eb:Messaging` element `n`.
    pub fn from_node(n: Node<'_>) -> Result<Messaging, ParseError> {
        let path = "eb:Messaging";
        if !n.is(ns::EB, "Messaging") {
            let name = n
                .element()
                .map(|e| e.qname().into_owned())
                .unwrap_or_default();
            return Err(ParseError::at(ParseErrorKind::NotMessaging(name), "/"));
        }
        let id = n
            .attr(Some(ns::WSU), "Id")
            .or_else(|| n.attr(None, "id"))
            .map(str::to_string);
        let mut users = n.children_named(ns::EB, "UserMessage");
        let user_message = match users.next() {
            None => None,
            Some(u) => {
                if users.next().is_some() {
                    return Err(ParseError::at(ParseErrorKind::MultipleUserMessages, path));
                }
                Some(UserMessage::from_node(u, &child_path(path, "UserMessage"))?)
            }
        };
        let signal_messages = n
            .children_named(ns::EB, "SignalMessage")
            .enumerate()
            .map(|(i, s)| {
                SignalMessage::from_node(s, &format!("{path}/eb:SignalMessage[{}]", i + 1))
            })
            .collect::<R<Vec<_>>>()?;
        Ok(Messaging {
            id,
            user_message,
            signal_messages,
        })
    }
}

fn message_info(n: Node<'_>, path: &str) -> R<MessageInfo> {
    let mi = one(n, "MessageInfo", path)?;
    let path = child_path(path, "MessageInfo");
    let ts = token(mi, "Timestamp", &path)?;
    let timestamp = Timestamp::parse(&ts)
        .map_err(|e| ParseError::at(e.into(), &child_path(&path, "Timestamp")))?;
    let message_id = to_message_id(
        token(mi, "MessageId", &path)?,
        &child_path(&path, "MessageId"),
    )?;
    let ref_to_message_id = match opt(mi, "RefToMessageId", &path)? {
        None => None,
        Some(r) => {
            let p = child_path(&path, "RefToMessageId");
            Some(to_message_id(nonempty_token(r, "RefToMessageId", &p)?, &p)?)
        }
    };
    Ok(MessageInfo {
        timestamp,
        message_id,
        ref_to_message_id,
    })
}

impl UserMessage {
    /// Parses an `eb:UserMessage` element; `path` names it in errors.
    pub fn from_node(n: Node<'_>, path: &str) -> Result<UserMessage, ParseError> {
        let mpc = attr_opt(n, "mpc");
        let message_info = message_info(n, path)?;

        let pi = one(n, "PartyInfo", path)?;
        let pi_path = child_path(path, "PartyInfo");
        let from = party(one(pi, "From", &pi_path)?, &child_path(&pi_path, "From"))?;
        let to = party(one(pi, "To", &pi_path)?, &child_path(&pi_path, "To"))?;

        let ci = one(n, "CollaborationInfo", path)?;
        let ci_path = child_path(path, "CollaborationInfo");
        let agreement_ref = match opt(ci, "AgreementRef", &ci_path)? {
            None => None,
            Some(a) => Some(AgreementRef {
                value: nonempty_token(a, "AgreementRef", &child_path(&ci_path, "AgreementRef"))?,
                type_: attr_opt(a, "type"),
                pmode: attr_opt(a, "pmode"),
            }),
        };
        let s = one(ci, "Service", &ci_path)?;
        let service = Service {
            value: nonempty_token(s, "Service", &child_path(&ci_path, "Service"))?,
            type_: attr_opt(s, "type"),
        };
        let action = token(ci, "Action", &ci_path)?;
        let conversation_id = collapse(&one(ci, "ConversationId", &ci_path)?.text());

        let message_properties = match opt(n, "MessageProperties", path)? {
            None => Vec::new(),
            Some(mp) => properties(mp, &child_path(path, "MessageProperties"))?,
        };
        let payload_info = match opt(n, "PayloadInfo", path)? {
            None => Vec::new(),
            Some(p) => {
                let pp = child_path(path, "PayloadInfo");
                p.children_named(ns::EB, "PartInfo")
                    .enumerate()
                    .map(|(i, part)| part_info(part, &format!("{pp}/eb:PartInfo[{}]", i + 1)))
                    .collect::<R<Vec<_>>>()?
            }
        };
        Ok(UserMessage {
            mpc,
            message_info,
            party_info: PartyInfo { from, to },
            collaboration_info: CollaborationInfo {
                agreement_ref,
                service,
                action,
                conversation_id,
            },
            message_properties,
            payload_info,
        })
    }
}

fn party(n: Node<'_>, path: &str) -> R<Party> {
    let party_ids = n
        .children_named(ns::EB, "PartyId")
        .map(|p| {
            Ok(PartyId {
                value: nonempty_token(p, "PartyId", &child_path(path, "PartyId"))?,
                type_: attr_opt(p, "type"),
            })
        })
        .collect::<R<Vec<_>>>()?;
    if party_ids.is_empty() {
        return Err(ParseError::at(ParseErrorKind::Missing("PartyId"), path));
    }
    let role = token(n, "Role", path)?;
    Ok(Party { party_ids, role })
}

fn properties(n: Node<'_>, path: &str) -> R<Vec<Property>> {
    n.children_named(ns::EB, "Property")
        .map(|p| {
            let name = attr_opt(p, "name").ok_or_else(|| {
                ParseError::at(
                    ParseErrorKind::MissingAttribute("name"),
                    &child_path(path, "Property"),
                )
            })?;
            Ok(Property {
                name,
                type_: attr_opt(p, "type"),
                value: p.text().into_owned(),
            })
        })
        .collect()
}

fn description(n: Node<'_>) -> Description {
    Description {
        lang: n
            .attr(Some(ns::XML), "lang")
            .unwrap_or_default()
            .to_string(),
        text: n.text().into_owned(),
    }
}

fn part_info(n: Node<'_>, path: &str) -> R<PartInfo> {
    let schemas = n
        .children_named(ns::EB, "Schema")
        .map(|s| {
            Ok(Schema {
                location: attr_opt(s, "location"),
                version: attr_opt(s, "version"),
                namespace: attr_opt(s, "namespace"),
            })
        })
        .collect::<R<Vec<_>>>()?;
    let description = opt(n, "Description", path)?.map(description);
    let part_properties = match opt(n, "PartProperties", path)? {
        None => Vec::new(),
        Some(pp) => properties(pp, &child_path(path, "PartProperties"))?,
    };
    Ok(PartInfo {
        href: attr_opt(n, "href"),
        schemas,
        description,
        part_properties,
    })
}

impl SignalMessage {
    /// Parses an `eb:SignalMessage` element; `path` names it in errors.
    pub fn from_node(n: Node<'_>, path: &str) -> Result<SignalMessage, ParseError> {
        let message_info = message_info(n, path)?;
        let receipt = opt(n, "Receipt", path)?;
        let pull = opt(n, "PullRequest", path)?;
        let errors: Vec<Node<'_>> = n.children_named(ns::EB, "Error").collect();
        let mut kinds = Vec::new();
        if receipt.is_some() {
            kinds.push("Receipt");
        }
        if pull.is_some() {
            kinds.push("PullRequest");
        }
        if !errors.is_empty() {
            kinds.push("Error");
        }
        // One kind of signal per SignalMessage ([EBMS3] §5.2.3; digest §2.3).
        if kinds.len() > 1 {
            return Err(ParseError::at(
                ParseErrorKind::MixedSignals(kinds.join(", ")),
                path,
            ));
        }
        let signal = if let Some(r) = receipt {
            Signal::Receipt(parse_receipt(r, &child_path(path, "Receipt"))?)
        } else if let Some(p) = pull {
            Signal::PullRequest(PullRequest {
                mpc: attr_opt(p, "mpc"),
            })
        } else if !errors.is_empty() {
            Signal::Errors(
                errors
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| signal_error(e, &format!("{path}/eb:Error[{}]", i + 1)))
                    .collect::<R<Vec<_>>>()?,
            )
        } else {
            return Err(ParseError::at(ParseErrorKind::NoSignal, path));
        };
        Ok(SignalMessage {
            message_info,
            signal,
        })
    }
}

fn signal_error(n: Node<'_>, path: &str) -> R<SignalError> {
    let code = attr_opt(n, "errorCode")
        .ok_or_else(|| ParseError::at(ParseErrorKind::MissingAttribute("errorCode"), path))?;
    let sev = attr_opt(n, "severity")
        .ok_or_else(|| ParseError::at(ParseErrorKind::MissingAttribute("severity"), path))?;
    let severity = match sev.to_ascii_lowercase().as_str() {
        "warning" => Severity::Warning,
        "failure" => Severity::Failure,
        _ => return Err(ParseError::at(ParseErrorKind::Severity(sev), path)),
    };
    Ok(SignalError {
        error_code: ErrorCode::parse(&code),
        severity,
        origin: attr_opt(n, "origin"),
        category: attr_opt(n, "category"),
        // Kept as sent, even when empty.
        ref_to_message_in_error: n.attr(None, "refToMessageInError").map(collapse),
        short_description: attr_opt(n, "shortDescription"),
        description: opt(n, "Description", path)?.map(description),
        error_detail: opt(n, "ErrorDetail", path)?.map(|d| collapse(&d.text())),
    })
}

/// `eb:Receipt`: an `ebbp:NonRepudiationInformation` whose parts all hold a `ds:Reference` is
/// parsed strictly (a bad DigestValue is EBMS:0009); every other child is kept opaque (digest
/// §2.5: a reception-awareness receipt carries a copy of the UserMessage).
fn parse_receipt(n: Node<'_>, path: &str) -> R<Receipt> {
    let opts = C14nOptions::default();
    let mut receipt = Receipt::default();
    for c in n.child_elements() {
        if receipt.non_repudiation.is_none() && c.is(ns::EBBP, "NonRepudiationInformation") {
            let parts: Vec<Node<'_>> = c
                .children_named(ns::EBBP, "MessagePartNRInformation")
                .collect();
            if parts.iter().all(|p| p.child(ns::DS, "Reference").is_some()) {
                let p = format!("{path}/ebbp:NonRepudiationInformation");
                receipt.non_repudiation = Some(
                    parts
                        .into_iter()
                        .map(|part| nr_part(part, &p))
                        .collect::<R<Vec<_>>>()?,
                );
                continue;
            }
        }
        let bytes = canonical_bytes(c.document(), c.id(), &opts);
        receipt
            .other
            .push(RawXml(String::from_utf8_lossy(&bytes).into_owned()));
    }
    Ok(receipt)
}

fn nr_part(n: Node<'_>, path: &str) -> R<MessagePartNrInformation> {
    let path = format!("{path}/ebbp:MessagePartNRInformation");
    let part_identifier = n
        .child(ns::EBBP, "MessagePartIdentifier")
        .map(|i| collapse(&i.text()))
        .filter(|s| !s.is_empty());
    let r = n
        .child(ns::DS, "Reference")
        .ok_or_else(|| ParseError::at(ParseErrorKind::Missing("ds:Reference"), &path))?;
    let rpath = format!("{path}/ds:Reference");
    let uri = r
        .attr(None, "URI")
        .map(str::to_string)
        .ok_or_else(|| ParseError::at(ParseErrorKind::MissingAttribute("URI"), &rpath))?;
    let transforms = match r.child(ns::DS, "Transforms") {
        None => Vec::new(),
        Some(ts) => ts
            .children_named(ns::DS, "Transform")
            .map(|t| {
                Ok(Transform {
                    algorithm: t
                        .attr(None, "Algorithm")
                        .map(str::to_string)
                        .ok_or_else(|| {
                            ParseError::at(ParseErrorKind::MissingAttribute("Algorithm"), &rpath)
                        })?,
                    inclusive_prefixes: t.child(ns::EXC_C14N, "InclusiveNamespaces").map(|i| {
                        i.attr(None, "PrefixList")
                            .unwrap_or_default()
                            .split_ascii_whitespace()
                            .map(str::to_string)
                            .collect()
                    }),
                })
            })
            .collect::<R<Vec<_>>>()?,
    };
    let digest_method = r
        .child(ns::DS, "DigestMethod")
        .and_then(|d| d.attr(None, "Algorithm"))
        .map(str::to_string)
        .ok_or_else(|| ParseError::at(ParseErrorKind::Missing("ds:DigestMethod"), &rpath))?;
    let dv = r
        .child(ns::DS, "DigestValue")
        .ok_or_else(|| ParseError::at(ParseErrorKind::Missing("ds:DigestValue"), &rpath))?;
    let b64: String = dv
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let digest_value = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| ParseError::at(ParseErrorKind::DigestValue, &rpath))?;
    Ok(MessagePartNrInformation {
        part_identifier,
        reference: DsReference {
            uri,
            transforms,
            digest_method,
            digest_value,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EBNS: &str = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/";

    fn um(inner_party: &str) -> String {
        format!(
            r#"<x:Messaging xmlns:x="{EBNS}"><x:UserMessage><x:MessageInfo><x:Timestamp>2020-01-01T00:00:00Z</x:Timestamp><x:MessageId>a@b</x:MessageId></x:MessageInfo><x:PartyInfo>{inner_party}</x:PartyInfo><x:CollaborationInfo><x:Service>urn:s</x:Service><x:Action>a</x:Action><x:ConversationId>1</x:ConversationId></x:CollaborationInfo></x:UserMessage></x:Messaging>"#
        )
    }

    #[test]
    fn prefix_does_not_matter() {
        let m = Messaging::parse(um("<x:From><x:PartyId>urn:a</x:PartyId><x:Role>r</x:Role></x:From><x:To><x:PartyId type=\"t\"> b </x:PartyId><x:Role>r</x:Role></x:To>").as_bytes()).unwrap();
        let u = m.user_message.unwrap();
        assert_eq!(u.party_info.to.party_ids[0].value, "b");
        assert_eq!(u.party_info.to.party_ids[0].type_.as_deref(), Some("t"));
    }

    #[test]
    fn missing_to_is_invalid_header() {
        let e = Messaging::parse(
            um("<x:From><x:PartyId>urn:a</x:PartyId><x:Role>r</x:Role></x:From>").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Missing("To"));
        assert_eq!(e.code(), EbmsCode::InvalidHeader);
        assert_eq!(e.path, "eb:Messaging/eb:UserMessage/eb:PartyInfo");
    }

    #[test]
    fn empty_party_id_is_invalid_header() {
        let e = Messaging::parse(um("<x:From><x:PartyId/><x:Role>r</x:Role></x:From><x:To><x:PartyId>urn:b</x:PartyId><x:Role>r</x:Role></x:To>").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Empty("PartyId"));
        assert_eq!(e.code(), EbmsCode::InvalidHeader);
    }

    #[test]
    fn wrong_namespace_is_not_ebms() {
        let xml = um("").replace(EBNS, "urn:other");
        let e = Messaging::parse(xml.as_bytes()).unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::NotMessaging(_)));
    }

    #[test]
    fn signal_shapes() {
        let mi = "<eb:MessageInfo><eb:Timestamp>2020-01-01T00:00:00Z</eb:Timestamp><eb:MessageId>a@b</eb:MessageId></eb:MessageInfo>";
        let wrap = |s: &str| {
            format!(
                r#"<eb:Messaging xmlns:eb="{EBNS}"><eb:SignalMessage>{mi}{s}</eb:SignalMessage></eb:Messaging>"#
            )
        };
        let e = Messaging::parse(wrap("").as_bytes()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::NoSignal);
        let e = Messaging::parse(wrap("<eb:Receipt/><eb:PullRequest/>").as_bytes()).unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::MixedSignals(_)));
        let e = Messaging::parse(
            wrap(r#"<eb:Error errorCode="EBMS:0004" severity="fatal"/>"#).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Severity("fatal".into()));
        let m =
            Messaging::parse(wrap(r#"<eb:Error errorCode="X" severity="Warning"/>"#).as_bytes())
                .unwrap();
        match &m.signal_messages[0].signal {
            Signal::Errors(e) => {
                assert_eq!(e[0].severity, Severity::Warning);
                assert_eq!(e[0].error_code, ErrorCode::Other("X".into()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_digest_value() {
        let xml = format!(
            r##"<eb:Messaging xmlns:eb="{EBNS}"><eb:SignalMessage><eb:MessageInfo><eb:Timestamp>2020-01-01T00:00:00Z</eb:Timestamp><eb:MessageId>a@b</eb:MessageId></eb:MessageInfo><eb:Receipt><n:NonRepudiationInformation xmlns:n="http://docs.oasis-open.org/ebxml-bp/ebbp-signals-2.0"><n:MessagePartNRInformation><d:Reference xmlns:d="http://www.w3.org/2000/09/xmldsig#" URI="#x"><d:DigestMethod Algorithm="m"/><d:DigestValue>***</d:DigestValue></d:Reference></n:MessagePartNRInformation></n:NonRepudiationInformation></eb:Receipt></eb:SignalMessage></eb:Messaging>"##
        );
        assert_eq!(
            Messaging::parse(xml.as_bytes()).unwrap_err().kind,
            ParseErrorKind::DigestValue
        );
    }

    #[test]
    fn collapse_tokens() {
        assert_eq!(collapse("  a \n\t b  "), "a b");
        assert_eq!(collapse(" \n "), "");
    }
}
