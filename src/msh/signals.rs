//! The answers the inbound pipeline sends besides receipts: an ebMS Error signal, combined with
//! a SOAP Fault for every `failure` (digest §2.5: "reporting a failure as an error message must
//! be combined with a SOAP Fault"), synchronously in the HTTP response (digest §2.5, §3.4
//! `ErrorHandling.Report.AsResponse = true`).
//!
//! HTTP status, per the SOAP 1.2 HTTP binding (Part 2 §7.5.2): a `Sender` fault (the partner's
//! message is at fault: every EBMS code except the receiver-side ones below) → **400**; a
//! `Receiver` fault (EBMS:0202 DeliveryFailure, EBMS:0004 raised for our own internal fault) →
//! **500**, which tells the partner a resend may succeed. Error signals are not signed: the
//! partner reads them unsigned (digest §12.6).

use time::OffsetDateTime;

use crate::ebms::codes::EbmsCode;
use crate::ebms::model::{MessageId, Messaging, SignalError, Timestamp};
use crate::ebms::write::write_messaging;
use crate::ns;
use crate::xml::{escape_attr, escape_text};

/// Media type of SOAP 1.2 envelopes sent without attachments.
pub const SOAP_CONTENT_TYPE: &str = "application/soap+xml; charset=UTF-8";

/// Who is at fault, as the SOAP Fault says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSide {
    /// The partner's message (SOAP `env:Sender`, HTTP 400).
    Sender,
    /// This gateway (SOAP `env:Receiver`, HTTP 500; a resend may succeed).
    Receiver,
    /// A header block marked mustUnderstand that we do not understand (SOAP
    /// `env:MustUnderstand`, HTTP 500 per the binding; no ebMS error, digest §2.7).
    MustUnderstand,
}

impl FaultSide {
    pub fn http_status(self) -> u16 {
        match self {
            FaultSide::Sender => 400,
            FaultSide::Receiver | FaultSide::MustUnderstand => 500,
        }
    }
    fn value(self) -> &'static str {
        match self {
            FaultSide::Sender => "S12:Sender",
            FaultSide::Receiver => "S12:Receiver",
            FaultSide::MustUnderstand => "S12:MustUnderstand",
        }
    }
}

/// A refusal: the code (none for a pure SOAP MustUnderstand fault), the side, the detail and
/// the MessageId it refers to when one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Option<EbmsCode>,
    pub side: FaultSide,
    pub detail: String,
    pub ref_to: Option<MessageId>,
}

impl Refusal {
    /// A refusal of the partner's message with `code`.
    pub fn peer(code: EbmsCode, detail: impl Into<String>, ref_to: Option<MessageId>) -> Self {
        Refusal {
            code: Some(code),
            side: FaultSide::Sender,
            detail: detail.into(),
            ref_to,
        }
    }
    /// Our own fault: EBMS:0202 DeliveryFailure (digest §2.6: a receiver that cannot process a
    /// message SHOULD return 0202) with a `Receiver` fault.
    pub fn ours(detail: impl Into<String>, ref_to: Option<MessageId>) -> Self {
        Refusal {
            code: Some(EbmsCode::DeliveryFailure),
            side: FaultSide::Receiver,
            detail: detail.into(),
            ref_to,
        }
    }
}

/// What a partner reads when the failure is ours (EBMS:0202 from [`Refusal::ours`]).
pub const RECEIVER_FAULT_DETAIL: &str =
    "the receiving MSH could not accept the message because of an internal error; it was not stored, send it again later";

/// The SOAP 1.2 envelope of an error signal with its Fault. `own_domain` is the right-hand
/// side of the signal's MessageId.
pub fn error_envelope(r: &Refusal, own_domain: &str, now: OffsetDateTime) -> Vec<u8> {
    // A failure of our own (disk, database) is logged with its details by `Engine::refuse`;
    // the partner only learns that a resend may succeed, not our paths or error texts.
    let generic;
    let r = if matches!(r.side, FaultSide::Receiver) {
        generic = Refusal {
            detail: RECEIVER_FAULT_DETAIL.to_string(),
            ..r.clone()
        };
        &generic
    } else {
        r
    };
    let mut out = Vec::with_capacity(2048);
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><S12:Envelope xmlns:S12=\"");
    escape_attr(ns::S12, &mut out);
    out.extend_from_slice(b"\"><S12:Header>");
    if let Some(code) = r.code {
        let mid = MessageId::generate(own_domain)
            .or_else(|_| MessageId::generate("as4gw.invalid"))
            .ok();
        if let Some(mid) = mid {
            let mut e = SignalError::from_code(code).with_detail(truncate(&r.detail, 1000));
            if let Some(rt) = &r.ref_to {
                e = e.referring_to(rt);
            }
            let m = Messaging::error_signal(
                None,
                mid,
                Timestamp::from_datetime(now),
                r.ref_to.as_ref(),
                vec![e],
            );
            write_messaging(&m, &mut out);
        }
    }
    out.extend_from_slice(b"</S12:Header><S12:Body><S12:Fault><S12:Code><S12:Value>");
    out.extend_from_slice(r.side.value().as_bytes());
    out.extend_from_slice(b"</S12:Value></S12:Code><S12:Reason><S12:Text xml:lang=\"en\">");
    let reason = match r.code {
        Some(c) => format!("{c}: {}", truncate(&r.detail, 500)),
        None => truncate(&r.detail, 500),
    };
    escape_text(&reason, &mut out);
    out.extend_from_slice(b"</S12:Text></S12:Reason></S12:Fault></S12:Body></S12:Envelope>");
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebms::model::Signal;
    use crate::ebms::soap::parse_envelope;

    #[test]
    fn own_failures_do_not_leak_details_to_the_partner() {
        let r = Refusal::ours(
            "spooling a payload: /var/lib/as4gw/spool/ab12: No space left on device",
            MessageId::new_rfc2822("a@b").ok(),
        );
        let bytes = error_envelope(&r, "red_gw", OffsetDateTime::UNIX_EPOCH);
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(!text.contains("/var/lib"), "{text}");
        assert!(!text.contains("No space"), "{text}");
        assert!(text.contains("EBMS:0202"), "{text}");
        assert!(text.contains(RECEIVER_FAULT_DETAIL), "{text}");
    }

    #[test]
    fn error_envelope_parses_with_fault_and_code() {
        let r = Refusal::peer(
            EbmsCode::FailedAuthentication,
            "bad <sig> & co",
            MessageId::new_rfc2822("a@b").ok(),
        );
        let bytes = error_envelope(&r, "red_gw", OffsetDateTime::UNIX_EPOCH);
        let env = parse_envelope(&bytes).expect("parses");
        assert!(env.fault.is_some());
        let m = env.messaging.expect("messaging").messaging;
        match &m.signal_messages[0].signal {
            Signal::Errors(e) => assert_eq!(e[0].error_code.as_str(), "EBMS:0101"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            m.signal_messages[0]
                .message_info
                .ref_to_message_id
                .as_ref()
                .map(|m| m.as_str()),
            Some("a@b")
        );
        assert_eq!(r.side.http_status(), 400);
    }
}
