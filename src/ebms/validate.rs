//! "Valid for eDelivery": rules checked on a parsed [`Messaging`], after parsing.
//!
//! The split: the parser ([`super::parse`]) refuses what is not an `eb:Messaging` header at all
//! (XSD structure, datatypes, [EBMS3] §5.2.4 cardinality). This step reports what the ebMS core
//! and the eDelivery profile forbid but real partners send — phase4's and Holodeck's test
//! messages use PartyIds like `APP_1000000101` without `@type`, Peppol sends bare UUID message
//! ids — so that such messages still parse, the security room can still verify them (their
//! expected outcome may be EBMS:0101), and the MSH decides which error to return first.
//! Every issue is returned, not just the first one.

use super::codes::EbmsCode;
use super::model::*;
use crate::ns;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub code: EbmsCode,
    /// Which rule, with its source (digest section / spec clause).
    pub rule: &'static str,
    /// Where, as an element path.
    pub path: String,
    /// The offending value, if any.
    pub value: Option<String>,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} at {}", self.code.code(), self.rule, self.path)?;
        if let Some(v) = &self.value {
            write!(f, " ({v:?})")?;
        }
        Ok(())
    }
}

/// Rule texts (also the `rule` of each [`Issue`]); see docs/ebms.md for the table.
pub mod rules {
    pub const PARTY_ID_URI: &str =
        "PartyId without @type must be a URI ([EBMS3] §5.2.2.4, digest §2.3)";
    pub const SERVICE_URI: &str =
        "Service without @type must be a URI ([EBMS3] §5.2.2.8, digest §2.3)";
    pub const AGREEMENT_URI: &str =
        "AgreementRef without @type must be a URI ([EBMS3] §5.2.2.7, digest §2.3)";
    pub const ONE_PARTY_ID: &str =
        "From/To carry exactly one PartyId ([ED115] §3.5.1, digest §2.3)";
    pub const COMPRESSION_GZIP: &str =
        "PartProperties CompressionType must be application/gzip ([AS4] §3.1, [ED115] §3.3.1, digest §2.9)";
    pub const COMPRESSION_MIME_TYPE: &str =
        "a compressed part must declare its MimeType part property ([AS4] §3.1, digest §2.9)";
    pub const HREF_CID: &str =
        "payloads travel only in MIME parts: PartInfo/@href must be cid:… ([ED115] §3.2.3, digest §2.2)";
    pub const MESSAGE_ID_RFC2822: &str =
        "MessageId/RefToMessageId must be an RFC 2822 msg-id left@right ([ED115] §3.2.2, digest §2.3)";
    pub const NOT_EMPTY: &str =
        "eb:Messaging carries a UserMessage or a SignalMessage ([EBMS3] §5.2.1; ebMS header XSD note)";
    pub const SIGNAL_KIND_ONCE: &str =
        "no two SignalMessages of the same kind in one eb:Messaging ([EBMS3] §5.2.4, digest §2.3)";
    pub const RECEIPT_REF: &str =
        "a Receipt must carry RefToMessageId ([EBMS3] §5.2.3.3, digest §2.5)";
}

/// True for an absolute URI (RFC 3986 `scheme ":" …`, no white space). Relative references do
/// not count: the ebMS rule is about identifying the party or service without a type.
pub fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut sc = scheme.chars();
    sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        && sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

struct Out(Vec<Issue>);

impl Out {
    fn push(&mut self, code: EbmsCode, rule: &'static str, path: String, value: Option<&str>) {
        self.0.push(Issue {
            code,
            rule,
            path,
            value: value.map(str::to_string),
        });
    }
}

/// Checks a parsed header against the ebMS core rules the parser leaves out and the eDelivery
/// profile. An empty result means valid.
pub fn validate_messaging(m: &Messaging) -> Vec<Issue> {
    let mut out = Out(Vec::new());
    let base = "eb:Messaging";
    if m.user_message.is_none() && m.signal_messages.is_empty() {
        out.push(EbmsCode::InvalidHeader, rules::NOT_EMPTY, base.into(), None);
    }
    if let Some(u) = &m.user_message {
        user_message(u, &format!("{base}/eb:UserMessage"), &mut out);
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, s) in m.signal_messages.iter().enumerate() {
        let path = format!("{base}/eb:SignalMessage[{}]", i + 1);
        let kind = s.signal.kind();
        if seen.contains(&kind) {
            out.push(
                EbmsCode::ValueInconsistent,
                rules::SIGNAL_KIND_ONCE,
                path.clone(),
                Some(kind),
            );
        }
        seen.push(kind);
        message_info(&s.message_info, &path, &mut out);
        if matches!(s.signal, Signal::Receipt(_)) && s.message_info.ref_to_message_id.is_none() {
            out.push(
                EbmsCode::InvalidHeader,
                rules::RECEIPT_REF,
                format!("{path}/eb:MessageInfo"),
                None,
            );
        }
    }
    out.0
}

/// The UserMessage rules alone (see [`validate_messaging`]).
pub fn validate_user_message(u: &UserMessage) -> Vec<Issue> {
    let mut out = Out(Vec::new());
    user_message(u, "eb:UserMessage", &mut out);
    out.0
}

fn message_info(mi: &MessageInfo, path: &str, out: &mut Out) {
    let p = format!("{path}/eb:MessageInfo");
    if !mi.message_id.is_rfc2822() {
        out.push(
            EbmsCode::InvalidHeader,
            rules::MESSAGE_ID_RFC2822,
            format!("{p}/eb:MessageId"),
            Some(mi.message_id.as_str()),
        );
    }
    if let Some(r) = &mi.ref_to_message_id {
        if !r.is_rfc2822() {
            out.push(
                EbmsCode::InvalidHeader,
                rules::MESSAGE_ID_RFC2822,
                format!("{p}/eb:RefToMessageId"),
                Some(r.as_str()),
            );
        }
    }
}

fn user_message(u: &UserMessage, path: &str, out: &mut Out) {
    message_info(&u.message_info, path, out);
    for (name, party) in [("From", &u.party_info.from), ("To", &u.party_info.to)] {
        let p = format!("{path}/eb:PartyInfo/eb:{name}");
        if party.party_ids.len() != 1 {
            out.push(
                EbmsCode::ValueInconsistent,
                rules::ONE_PARTY_ID,
                p.clone(),
                None,
            );
        }
        for id in &party.party_ids {
            if id.type_.is_none() && !is_absolute_uri(&id.value) {
                out.push(
                    EbmsCode::ValueInconsistent,
                    rules::PARTY_ID_URI,
                    format!("{p}/eb:PartyId"),
                    Some(&id.value),
                );
            }
        }
    }
    let c = &u.collaboration_info;
    let cp = format!("{path}/eb:CollaborationInfo");
    if c.service.type_.is_none() && !is_absolute_uri(&c.service.value) {
        out.push(
            EbmsCode::ValueInconsistent,
            rules::SERVICE_URI,
            format!("{cp}/eb:Service"),
            Some(&c.service.value),
        );
    }
    if let Some(a) = &c.agreement_ref {
        if a.type_.is_none() && !is_absolute_uri(&a.value) {
            out.push(
                EbmsCode::ValueInconsistent,
                rules::AGREEMENT_URI,
                format!("{cp}/eb:AgreementRef"),
                Some(&a.value),
            );
        }
    }
    for (i, part) in u.payload_info.iter().enumerate() {
        let pp = format!("{path}/eb:PayloadInfo/eb:PartInfo[{}]", i + 1);
        if part.content_id().is_none_or(str::is_empty) {
            out.push(
                EbmsCode::ValueInconsistent,
                rules::HREF_CID,
                pp.clone(),
                part.href.as_deref(),
            );
        }
        if let Some(ct) = part.property("CompressionType") {
            if ct.trim() != ns::MEDIA_GZIP {
                out.push(
                    EbmsCode::ValueInconsistent,
                    rules::COMPRESSION_GZIP,
                    format!("{pp}/eb:PartProperties"),
                    Some(ct),
                );
            }
            if part.property("MimeType").is_none() {
                out.push(
                    EbmsCode::ValueInconsistent,
                    rules::COMPRESSION_MIME_TYPE,
                    format!("{pp}/eb:PartProperties"),
                    None,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_uris() {
        for ok in [
            "urn:a",
            "http://x/y",
            "uri:requester.example.com",
            "bdx:noprocess",
        ] {
            assert!(is_absolute_uri(ok), "{ok}");
        }
        for bad in [
            "APP_1000000101",
            "testt",
            "5209999001264",
            ":x",
            "1a:b",
            "a:",
            "urn:a b",
            "",
        ] {
            assert!(!is_absolute_uri(bad), "{bad}");
        }
    }
}
