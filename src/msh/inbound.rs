//! The inbound pipeline's decisions, without I/O: the MIME parts of one request in, either an
//! accepted message with its signed NRR receipt, or the one [`Refusal`] to answer with.
//!
//! Order (architecture "INBOUND"; each step's failure is the EBMS code in brackets — the full
//! table is in `docs/msh.md`):
//! 1. SOAP envelope (`soap::parse_envelope_document` under the configured XML limits) [0009;
//!    unknown mustUnderstand header → SOAP MustUnderstand fault, digest §2.7];
//! 2. a UserMessage must be there: signals are only synchronous in eDelivery (digest §2.5) [0008];
//! 3. decrypt + verify with strict references and partner trust (`security::process_inbound`)
//!    [0101 / 0102 / 0103 / 0007 / 0009 as the security room maps them];
//! 4. P-Mode selection (`match_inbound`) [0001 / 0003 / 0010];
//! 5. the P-Mode's security: signer key fits the P-Mode's suite [0103], and is the pinned
//!    signing certificate of the sending party when the P-Mode names one [0101];
//! 6. eDelivery validation (`validate_messaging`, empty Body) [the issue's code: 0003 / 0009];
//! 7. P-Mode properties (four-corner, required, fixed values, UUIDs) [0010 missing, 0003 wrong];
//! 8. the verified parts (still compressed; the engine gunzips them streaming, bounded size
//!    and ratio, into the store's spool [0303] before it records the message);
//! 9. the NRR receipt: the verified references, signed with our key for the suite (digest
//!    §2.5).
//!
//! Duplicate elimination and storage follow in the engine (they need the store).

use std::sync::Arc;

use time::OffsetDateTime;

use crate::ebms::codes::EbmsCode;
use crate::ebms::model::{MessageId, UserMessage};
use crate::ebms::soap::{parse_envelope_document, SoapError};
use crate::ebms::validate::validate_messaging;
use crate::pki::{Certificate, KeyType, TrustStore};
use crate::pmode::matching::{match_inbound, MessageKey};
use crate::pmode::model::PMode;
use crate::pmode::set::PModeSet;
use crate::security::crypto::Crypto;
use crate::security::receipt::build_receipt;
use crate::security::sign::SenderConfig;
use crate::security::{
    process_inbound_document, InboundPolicy, KeyReference, Part, PartSource, Receiver, Suite,
    TokenType,
};

use super::keys::{suite_of, Keyring};
use super::outbound::{COMPRESSION_TYPE, GZIP, MIME_TYPE};
use super::signals::{FaultSide, Refusal};

/// What processing needs besides the message.
pub struct InboundCtx<'a> {
    pub crypto: &'a dyn Crypto,
    pub pmodes: &'a PModeSet,
    pub keys: &'a Keyring,
    pub trust: &'a TrustStore,
    pub partners: &'a [Certificate],
    /// Our party id: the right-hand side of receipt MessageIds.
    pub own_domain: &'a str,
    /// Largest payload after decompression (`limits.max-decompressed-size`).
    pub max_decompressed: u64,
    /// `limits.max-xml-depth` / `max-xml-nodes` for the SOAP envelope (step 1); without them a
    /// configured limit below the XML room's defaults would not apply.
    pub xml_limits: crate::xml::Limits,
    pub now: OffsetDateTime,
}

/// One verified payload: Content-ID, MIME type (before compression), its decrypted bytes (in
/// memory or a file of the caller's spool directory) and whether they are still gzipped — the
/// engine decompresses streaming, bounded, into the store's spool (step 8, EBMS:0303).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPayload {
    pub content_id: String,
    pub mime_type: String,
    pub source: PartSource,
    pub compressed: bool,
}

/// An accepted message.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub pmode: Arc<PMode>,
    pub user: UserMessage,
    /// The `eb:Messaging` header as received (canonical form), for the backend API.
    pub header_xml: String,
    /// In `PartInfo` order, verified, not yet decompressed.
    pub payloads: Vec<InPayload>,
    /// The signed receipt envelope to answer with (and to keep).
    pub receipt: Vec<u8>,
    /// The ebMS test service: answered, never delivered (digest §2.4).
    pub test_service: bool,
}

fn suite_of_signer(c: &Certificate) -> Option<Suite> {
    match c.key_type() {
        KeyType::Rsa => Some(Suite::Edelivery115),
        KeyType::Ed25519 => Some(Suite::Edelivery20),
        _ => None,
    }
}

/// Processes one message (see the module documentation for the order).
pub fn process(ctx: &InboundCtx<'_>, soap: &[u8], parts: Vec<Part>) -> Result<Accepted, Refusal> {
    // 1. envelope, under the configured XML limits
    let env = crate::xml::Document::parse_with(soap, &ctx.xml_limits)
        .map_err(SoapError::from)
        .and_then(parse_envelope_document)
        .map_err(|e| match e {
            SoapError::MustUnderstand { .. } => Refusal {
                code: None,
                side: FaultSide::MustUnderstand,
                detail: e.to_string(),
                ref_to: None,
            },
            other => Refusal::peer(
                other.ebms_code().unwrap_or(EbmsCode::InvalidHeader),
                other.to_string(),
                None,
            ),
        })?;
    // The document goes on to the security room (one parse per message); what is read from
    // the envelope later is taken out first.
    let body_has_content = env.body_has_content();
    let crate::ebms::soap::Envelope {
        document,
        messaging,
        ..
    } = env;
    let mb =
        messaging.ok_or_else(|| Refusal::peer(EbmsCode::InvalidHeader, "no eb:Messaging", None))?;
    // 2. a UserMessage
    let user = mb.messaging.user_message.clone().ok_or_else(|| {
        Refusal::peer(
            EbmsCode::FeatureNotSupportedUnpackaging,
            "no UserMessage: signals are only accepted as synchronous responses (digest §2.5)",
            None,
        )
    })?;
    let mid: MessageId = user.message_info.message_id.clone();
    let refuse = |code: EbmsCode, detail: String| Refusal::peer(code, detail, Some(mid.clone()));
    // 3. security
    let rx = Receiver {
        crypto: ctx.crypto,
        trust: ctx.trust,
        partners: ctx.partners,
        keys: ctx.keys.decryption(),
        at: ctx.now,
        policy: InboundPolicy::default(),
    };
    let verified = process_inbound_document(&rx, document, parts)
        .map_err(|e| refuse(e.ebms_code(), e.to_string()))?;
    // 4. P-Mode
    let key = MessageKey::from(&user);
    let matched = match_inbound(ctx.pmodes, &key).map_err(|e| refuse(e.code, e.detail))?;
    let pmode = Arc::clone(&matched.pmode);
    let leg = matched.leg().clone();
    // 5. P-Mode security
    let suite = suite_of(pmode.security.suite);
    if suite_of_signer(verified.signer()) != Some(suite) {
        return Err(refuse(
            EbmsCode::PolicyNoncompliance,
            format!(
                "signed with a {} key; P-Mode {} requires the {} suite",
                verified.signer().key_type().as_str(),
                pmode.id,
                pmode.security.suite.name()
            ),
        ));
    }
    let (sender, _) = pmode.sender_receiver(&leg);
    // A rollover list pins every certificate of it; the signature check above already
    // refused a signer outside its validity window, so any listed one verifies.
    if !sender.signing_certs.is_empty() || sender.signing_cert.is_some() {
        let signer = verified.signer().der();
        let pinned = sender
            .signing_certs
            .iter()
            .chain(sender.signing_cert.iter())
            .any(|c| c.der.as_slice() == signer);
        if !pinned {
            return Err(refuse(
                EbmsCode::FailedAuthentication,
                format!(
                    "signer {} is not the signing certificate P-Mode {} names for {}",
                    verified.signer().subject(),
                    pmode.id,
                    sender.party_id
                ),
            ));
        }
    }
    // 6. validation
    if let Some(issue) = validate_messaging(&mb.messaging).into_iter().next() {
        return Err(refuse(issue.code, issue.to_string()));
    }
    if body_has_content {
        return Err(refuse(
            EbmsCode::ValueInconsistent,
            "the SOAP Body must be empty: payloads travel as MIME parts (digest §2.2)".into(),
        ));
    }
    // 7. properties
    check_properties(&pmode, &user).map_err(|(c, d)| refuse(c, d))?;
    // 8. the payloads (decompression: in the engine, streaming into the spool)
    let mut payloads = Vec::new();
    let got = verified.value().payloads.clone();
    for pi in &user.payload_info {
        let Some(cid) = pi.content_id() else {
            return Err(refuse(
                EbmsCode::ValueInconsistent,
                "PartInfo without cid: href".into(),
            ));
        };
        let part = got.iter().find(|p| p.content_id == cid).ok_or_else(|| {
            refuse(
                EbmsCode::MimeInconsistency,
                format!("payload cid:{cid} is missing"),
            )
        })?;
        let mime_type = pi
            .property(MIME_TYPE)
            .map(str::to_string)
            .unwrap_or_else(|| part.mime_type.clone());
        payloads.push(InPayload {
            content_id: cid.to_string(),
            mime_type,
            source: part.source.clone(),
            compressed: pi.property(COMPRESSION_TYPE) == Some(GZIP),
        });
    }
    // 9. receipt
    let signer = ctx.keys.signing_at(suite, ctx.now).ok_or_else(|| {
        Refusal::ours(
            format!("no signing key for {}", pmode.security.suite.name()),
            Some(mid.clone()),
        )
    })?;
    let receipt_id = MessageId::generate(ctx.own_domain)
        .or_else(|_| MessageId::generate("as4gw.local"))
        .map_err(|e| Refusal::ours(format!("receipt id: {e:?}"), Some(mid.clone())))?;
    let cfg = SenderConfig {
        suite,
        signer,
        token_type: TokenType::X509v3,
        recipient: None,
        recipient_reference: KeyReference::Bst,
    };
    let receipt = build_receipt(ctx.crypto, &verified, receipt_id.as_str(), ctx.now, &cfg)
        .map_err(|e| Refusal::ours(format!("building the receipt: {e}"), Some(mid.clone())))?;
    let header_xml = mb.messaging.to_xml();
    Ok(Accepted {
        test_service: pmode.is_test_service(),
        pmode,
        user,
        header_xml,
        payloads,
        receipt: receipt.soap,
    })
}

/// The P-Mode's property rules on a received message (digest §3.5, §6.3).
fn check_properties(pmode: &PMode, user: &UserMessage) -> Result<(), (EbmsCode, String)> {
    let get = |n: &str| user.message_properties.iter().find(|p| p.name == n);
    if pmode.four_corner {
        for n in ["originalSender", "finalRecipient"] {
            if get(n).is_none_or(|p| p.value.trim().is_empty()) {
                return Err((
                    EbmsCode::ProcessingModeMismatch,
                    format!("four-corner property {n} missing (digest §3.5)"),
                ));
            }
        }
    }
    for rule in &pmode.properties {
        match get(&rule.name) {
            None if rule.required => {
                return Err((
                    EbmsCode::ProcessingModeMismatch,
                    format!("property {} required by P-Mode {}", rule.name, pmode.id),
                ))
            }
            None => {}
            Some(p) => {
                if rule.value.as_ref().is_some_and(|v| v != &p.value) {
                    return Err((
                        EbmsCode::ValueInconsistent,
                        format!("property {} has value {:?}", rule.name, p.value),
                    ));
                }
                if rule.datatype == crate::pmode::model::PropertyType::Uuid
                    && uuid::Uuid::parse_str(&p.value).is_err()
                {
                    return Err((
                        EbmsCode::ValueInconsistent,
                        format!("property {} is not a UUID", rule.name),
                    ));
                }
            }
        }
    }
    Ok(())
}
