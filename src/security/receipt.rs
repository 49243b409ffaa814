//! Non-repudiation receipts (digest §2.5): building the signed Receipt from the references of a
//! verified UserMessage, and checking a received Receipt against what was sent (EBMS:0302).
//!
//! The copies in `ebbp:MessagePartNRInformation` are complete `ds:Reference` elements (URI,
//! Transforms, DigestMethod, DigestValue), exclusive-canonicalized so they carry their own
//! namespace declarations; a received receipt is matched on URI, digest method and digest value,
//! Transforms not required (digest §12.2).

use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ns;
use crate::xml::Document;

use super::crypto::Crypto;
use super::sign::{secure_outbound, SecuredMessage, SenderConfig};
use super::verify::{process_inbound, InboundMessage, Receiver, Verified};
use super::xmlw::{new_id, text, unb64};
use super::{SecurityError, SignedReference};

/// Builds and signs the NRR receipt for a verified message. `cfg.recipient` should be `None`
/// (receipts are signed, not encrypted).
pub fn build_receipt<P>(
    crypto: &dyn Crypto,
    received: &Verified<InboundMessage<P>>,
    receipt_message_id: &str,
    timestamp: OffsetDateTime,
    cfg: &SenderConfig<'_>,
) -> Result<SecuredMessage, SecurityError> {
    let ref_to = received
        .value()
        .message_id()
        .ok_or_else(|| SecurityError::Build("received message has no MessageId".into()))?;
    let ts = timestamp
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|e| SecurityError::Build(e.to_string()))?;
    let mut parts = String::new();
    for r in received.references() {
        parts.push_str("<ebbp:MessagePartNRInformation>");
        parts.push_str(&r.xml);
        parts.push_str("</ebbp:MessagePartNRInformation>");
    }
    let messaging = format!(
        "<eb:Messaging xmlns:eb=\"{eb}\" env:mustUnderstand=\"true\" wsu:Id=\"{id}\"><eb:SignalMessage><eb:MessageInfo><eb:Timestamp>{ts}</eb:Timestamp><eb:MessageId>{mid}</eb:MessageId><eb:RefToMessageId>{rt}</eb:RefToMessageId></eb:MessageInfo><eb:Receipt><ebbp:NonRepudiationInformation xmlns:ebbp=\"{ebbp}\">{parts}</ebbp:NonRepudiationInformation></eb:Receipt></eb:SignalMessage></eb:Messaging>",
        eb = ns::EB,
        id = new_id("_messaging"),
        mid = text(receipt_message_id),
        rt = text(&ref_to),
        ebbp = ns::EBBP,
    );
    let no_encryption = SenderConfig {
        recipient: None,
        ..*cfg
    };
    secure_outbound(crypto, &messaging, Vec::new(), &no_encryption)
}

/// What a verified receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptInfo {
    pub message_id: String,
    pub ref_to_message_id: String,
    /// (URI, DigestMethod, DigestValue) of each `MessagePartNRInformation`.
    pub references: Vec<(String, String, String)>,
}

/// The references of a verified receipt are complete when it is created ([`verify_receipt`]).
impl super::verify::ReferenceSource for ReceiptInfo {
    fn reference_document(&self) -> Option<&Document> {
        None
    }
}

/// The NRR references of a receipt envelope (no signature check; for diagnostics and tests).
pub fn receipt_references(doc: &Document) -> Vec<(String, String, String)> {
    doc.elements()
        .filter(|n| n.is(ns::EBBP, "MessagePartNRInformation"))
        .filter_map(|p| p.child(ns::DS, "Reference"))
        .map(|r| {
            let r = super::verify::signed_reference(r, false);
            (r.uri, r.digest_method, r.digest_value)
        })
        .collect()
}

fn invalid(m: impl Into<String>) -> SecurityError {
    SecurityError::InvalidReceipt(m.into())
}

/// Verifies a receipt received for the message `sent_message_id` whose signed references were
/// `sent`: signature and trust (as for any inbound message), then RefToMessageId, then every
/// sent reference present with the same URI, digest method and digest value, and nothing else.
/// Every failure is EBMS:0302 InvalidReceipt (the cause is in the message).
pub fn verify_receipt(
    rx: &Receiver<'_>,
    soap: &[u8],
    sent_message_id: &str,
    sent: &[SignedReference],
) -> Result<Verified<ReceiptInfo>, SecurityError> {
    let policy = super::InboundPolicy {
        require_encryption: false,
        ..rx.policy
    };
    let rx2 = Receiver { policy, ..*rx };
    let v = process_inbound(&rx2, soap, Vec::new())
        .map_err(|e| invalid(format!("{e} ({})", e.ebms_code().code())))?;
    let msg = v.value();
    let m = msg
        .messaging
        .map(|id| msg.doc.node(id))
        .ok_or_else(|| invalid("no eb:Messaging"))?;
    let sm = m
        .child(ns::EB, "SignalMessage")
        .ok_or_else(|| invalid("not a signal message"))?;
    if sm.child(ns::EB, "Receipt").is_none() {
        return Err(invalid("signal carries no eb:Receipt"));
    }
    let mi = sm
        .child(ns::EB, "MessageInfo")
        .ok_or_else(|| invalid("no MessageInfo"))?;
    let ref_to = mi
        .child(ns::EB, "RefToMessageId")
        .map(|r| r.text().trim().to_string())
        .unwrap_or_default();
    if ref_to != sent_message_id {
        return Err(invalid(format!(
            "RefToMessageId {ref_to:?} is not the sent MessageId {sent_message_id:?}"
        )));
    }
    let message_id = mi
        .child(ns::EB, "MessageId")
        .map(|r| r.text().trim().to_string())
        .unwrap_or_default();
    let got = receipt_references(&msg.doc);
    if got.len() != sent.len() {
        return Err(invalid(format!(
            "receipt lists {} parts, {} were signed",
            got.len(),
            sent.len()
        )));
    }
    for s in sent {
        let Some((_, dm, dv)) = got.iter().find(|(u, _, _)| u == &s.uri) else {
            return Err(invalid(format!("receipt does not acknowledge {}", s.uri)));
        };
        let same = dm == &s.digest_method
            && match (unb64(dv), unb64(&s.digest_value)) {
                (Some(a), Some(b)) => bool::from(a.as_slice().ct_eq(b.as_slice())),
                _ => false,
            };
        if !same {
            return Err(invalid(format!(
                "digest for {} differs from the one sent",
                s.uri
            )));
        }
    }
    let info = ReceiptInfo {
        message_id,
        ref_to_message_id: ref_to,
        references: got,
    };
    let (signer, chain, path, refs) = (
        v.signer().clone(),
        v.signer_chain().to_vec(),
        v.trust_path().clone(),
        v.references().to_vec(),
    );
    Ok(Verified::new(info, signer, chain, path, refs))
}

/// Convenience for callers holding only the crypto seam: SHA-256 of the canonical receipt refs.
pub fn references_digest(crypto: &dyn Crypto, refs: &[SignedReference]) -> [u8; 32] {
    let mut all = Vec::new();
    for r in refs {
        all.extend_from_slice(r.xml.as_bytes());
    }
    crypto.sha256(&all)
}
