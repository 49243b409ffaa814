//! The outbound pipeline's decisions, without I/O: submission → `eb:UserMessage`; packing;
//! the verdict on the partner's answer; the retry schedule.
//!
//! * [`prepare_submission`]: P-Mode selection (`match_submission`), backend authorisation,
//!   required properties, payload profile, then the header: MessageId `uuid@party` unless given
//!   (digest §2.3), ConversationId, four-corner properties with their `type` (digest §3.5),
//!   one `PartInfo` `cid:` per payload with `MimeType` and — when the leg compresses —
//!   `CompressionType` (digest §2.9: set by the MSH, never by the producer).
//! * [`pack`]: gzip (before signing, digest §2.9), sign then encrypt (digest §3.2), SwA with the
//!   SOAP part first (digest §2.2, §12.5). The MIME boundary and root Content-ID are derived
//!   from the MessageId ([`wire_content_type`]) so the stored wire file alone, re-sent as is,
//!   reproduces the identical request on every retry (digest §2.8).
//! * [`sent_references`]: the signed `ds:Reference`s, read back from the wire file's SOAP part
//!   — what an NRR receipt must repeat (digest §2.5, §12.2).
//! * [`judge_response`] / [`judge_send_error`] and [`next_outcome`]: receipt → ACKNOWLEDGED;
//!   error signal → FAILED with its code (or a retry when the code says a resend may help);
//!   no signal → retry on the P-Mode's schedule; retries exhausted → EBMS:0301 (digest §2.8).

use std::sync::Arc;

use futures_util::FutureExt;
use time::OffsetDateTime;

use crate::config::Backend;
use crate::ebms::codes::{EbmsCode, Severity};
use crate::ebms::model::{
    AgreementRef, CollaborationInfo, ErrorCode, MessageId, MessageInfo, Messaging, PartInfo, Party,
    PartyId as EbPartyId, PartyInfo, Property, Service as EbService, Signal, Timestamp,
    UserMessage,
};
use crate::ebms::soap::{new_wsu_id, parse_envelope};
use crate::mime::{collect, MimeLimits, MimeReader, MimeWriter, PartBody};
use crate::ns;
use crate::pmode::matching::{match_submission, Submission};
use crate::pmode::model::{
    Agreement, Backoff, KeyReference as PmKeyRef, PMode, PartyId, PropertyType, Retry, Service,
};
use crate::pmode::set::PModeSet;
use crate::security::crypto::Crypto;
use crate::security::receipt::verify_receipt;
use crate::security::sign::{secure_outbound, secure_outbound_digests, OutPart, SenderConfig};
use crate::security::{
    Attachment, KeyReference, OwnKey, Receiver, SecurityError, SignedReference, TokenType,
};
use crate::store::{NewOutbound, Outcome, Payload};
use crate::xml::{canonical_bytes, C14nOptions, Document};

use super::api::{SubmitError, SubmitRequest};
use super::compress::gzip;
use super::keys::suite_of;
use super::transport::{SendError, WireResponse};

/// The `MimeType` / `CompressionType` part properties (digest §2.9).
pub const MIME_TYPE: &str = "MimeType";
pub const COMPRESSION_TYPE: &str = "CompressionType";
pub const GZIP: &str = "application/gzip";

fn invalid(field: &str, reason: impl Into<String>) -> SubmitError {
    SubmitError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// A validated submission: what goes into the store, and the P-Mode it matched.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub pmode: Arc<PMode>,
    pub outbound: NewOutbound,
    /// The header `outbound.header` was written from (the first attempt packs from it
    /// instead of parsing the text back).
    pub messaging: Messaging,
}

/// Validates `req` against the P-Modes and builds the UserMessage (see module doc). Refusals
/// leave no trace: nothing has been stored yet.
pub fn prepare_submission(
    set: &PModeSet,
    own: &PartyId,
    backends: &[Backend],
    req: &SubmitRequest,
    now: OffsetDateTime,
) -> Result<Prepared, SubmitError> {
    // 1. P-Mode and leg.
    let action = match (&req.action, &req.pmode_id) {
        (Some(a), _) => a.clone(),
        (None, Some(id)) => {
            let p = set
                .get(id)
                .ok_or_else(|| SubmitError::UnknownPmode(format!("unknown P-Mode id {id:?}")))?;
            let mine: Vec<_> = p
                .legs
                .iter()
                .filter(|l| p.sender_receiver(l).0.party_id == *own)
                .collect();
            match mine.as_slice() {
                [one] => one.action.clone(),
                _ => return Err(invalid("action", "required: the P-Mode has several legs")),
            }
        }
        (None, None) => return Err(invalid("action", "give pmode_id or action")),
    };
    let sub = Submission {
        pmode: req.pmode_id.clone(),
        action,
        service: req.service.as_ref().map(|s| Service {
            value: s.clone(),
            service_type: req.service_type.clone(),
        }),
        to: req.to.as_ref().map(|t| PartyId {
            id: t.id.clone(),
            id_type: t.id_type.clone(),
        }),
        agreement: None,
    };
    let matched = match_submission(set, own, &sub).map_err(|e| {
        if e.code == EbmsCode::ValueInconsistent {
            SubmitError::AmbiguousPmode(e.detail)
        } else {
            SubmitError::UnknownPmode(e.detail)
        }
    })?;
    let pmode = Arc::clone(&matched.pmode);
    let leg = matched.leg().clone();
    // 2. Backend authorisation.
    if let Some(b) = &req.backend {
        let allowed = backends
            .iter()
            .find(|x| &x.name == b)
            .is_some_and(|x| x.allowed_pmodes.iter().any(|p| p == &pmode.id));
        if !allowed {
            return Err(SubmitError::Forbidden(format!(
                "backend {b:?} may not submit on P-Mode {:?}",
                pmode.id
            )));
        }
    }
    // 3. Parties: From is us, To from the P-Mode (a given `to` must agree).
    let (sender, receiver) = pmode.sender_receiver(&leg);
    if let Some(f) = &req.from {
        if f.id != sender.party_id.id {
            return Err(invalid("from/id", "must be this gateway's party"));
        }
    }
    // 4. Properties.
    check_properties(&pmode, req)?;
    // 5. Payloads.
    check_payloads(&pmode, req)?;
    // 6. The header.
    let domain = &own.id;
    let message_id = match &req.message_id {
        Some(m) => MessageId::new_rfc2822(m).map_err(|e| {
            invalid(
                "message_id",
                format!("{e:?}: must be an RFC 2822 left@right id"),
            )
        })?,
        None => MessageId::generate(domain)
            .or_else(|_| MessageId::generate("as4gw.local"))
            .map_err(|e| SubmitError::Internal(format!("MessageId: {e:?}")))?,
    };
    let ref_to = match &req.ref_to_message_id {
        Some(r) => {
            Some(MessageId::parse(r).map_err(|e| invalid("ref_to_message_id", format!("{e:?}")))?)
        }
        None => None,
    };
    let conversation_id = match &req.conversation_id {
        Some(c) if c.trim().is_empty() || c.chars().any(char::is_control) => {
            return Err(invalid("conversation_id", "empty or control characters"))
        }
        Some(c) => c.trim().to_string(),
        // Time-ordered like generated MessageIds: the store indexes conversations.
        None => crate::ebms::model::time_ordered_uuid().to_string(),
    };
    let mut used = Vec::new();
    let mut payload_info = Vec::new();
    let mut payloads = Vec::new();
    for (i, p) in req.payloads.iter().enumerate() {
        let cid = content_id_for(&p.part_name, domain, &used);
        used.push(cid.clone());
        let mut props = vec![Property::new(MIME_TYPE, p.mime_type.clone())];
        for (k, v) in &p.properties {
            if k == COMPRESSION_TYPE || k == MIME_TYPE {
                return Err(invalid(
                    &format!("payloads/{i}/properties"),
                    format!("{k} is set by the gateway (digest §2.9)"),
                ));
            }
            props.push(Property::new(k.clone(), v.clone()));
        }
        if leg.compress {
            props.push(Property::new(COMPRESSION_TYPE, GZIP));
        }
        payload_info.push(PartInfo {
            href: Some(format!("cid:{cid}")),
            schemas: Vec::new(),
            description: None,
            part_properties: props,
        });
        payloads.push(Payload {
            part_id: format!("cid:{cid}"),
            mime_type: p.mime_type.clone(),
            file: p.file.clone(),
        });
    }
    let party = |p: &PartyId, role: &str| Party {
        party_ids: vec![EbPartyId {
            value: p.id.clone(),
            type_: p.id_type.clone(),
        }],
        role: role.to_string(),
    };
    let user = UserMessage {
        mpc: None,
        message_info: MessageInfo {
            timestamp: Timestamp::from_datetime(now),
            message_id: message_id.clone(),
            ref_to_message_id: ref_to.clone(),
        },
        party_info: PartyInfo {
            from: party(&sender.party_id, &sender.role),
            to: party(&receiver.party_id, &receiver.role),
        },
        collaboration_info: CollaborationInfo {
            agreement_ref: pmode.agreement.as_ref().map(|a: &Agreement| AgreementRef {
                value: a.value.clone(),
                type_: a.agreement_type.clone(),
                pmode: None,
            }),
            service: EbService {
                value: pmode.service.value.clone(),
                type_: pmode.service.service_type.clone(),
            },
            action: leg.action.clone(),
            conversation_id: conversation_id.clone(),
        },
        message_properties: req
            .properties
            .iter()
            .map(|p| Property {
                name: p.name.clone(),
                type_: p.prop_type.clone(),
                value: p.value.clone(),
            })
            .collect(),
        payload_info,
    };
    let messaging = Messaging {
        id: Some(new_wsu_id()),
        user_message: Some(user),
        signal_messages: Vec::new(),
    };
    Ok(Prepared {
        outbound: NewOutbound {
            message_id: message_id.as_str().to_string(),
            conversation_id,
            pmode_id: pmode.id.clone(),
            ref_to_message_id: ref_to.map(|r| r.as_str().to_string()),
            idempotency_key: req.idempotency_key.clone(),
            properties: req
                .properties
                .iter()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect(),
            payloads,
            not_before: None,
            header: Some(messaging.to_xml()),
        },
        pmode,
        messaging,
    })
}

/// `part_name@domain` when that is a valid, unused Content-ID, else `uuid@domain`.
fn content_id_for(part_name: &str, domain: &str, used: &[String]) -> String {
    let ok = !part_name.is_empty()
        && part_name.len() <= 64
        && part_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !part_name.starts_with('.')
        && !part_name.ends_with('.')
        && !part_name.contains("..");
    let cid = format!("{part_name}@{domain}");
    if ok && !used.contains(&cid) {
        cid
    } else {
        format!("{}@{domain}", uuid::Uuid::new_v4())
    }
}

fn check_properties(pmode: &PMode, req: &SubmitRequest) -> Result<(), SubmitError> {
    let get = |name: &str| req.properties.iter().find(|p| p.name == name);
    for (i, p) in req.properties.iter().enumerate() {
        if p.name.trim().is_empty() {
            return Err(invalid(&format!("properties/{i}/name"), "empty"));
        }
        if req.properties[..i].iter().any(|q| q.name == p.name) {
            return Err(invalid(&format!("properties/{i}/name"), "given twice"));
        }
    }
    if pmode.four_corner {
        // digest §3.5: originalSender (C1) and finalRecipient (C4) MUST be present.
        for name in ["originalSender", "finalRecipient"] {
            match get(name) {
                Some(p) if !p.value.trim().is_empty() => {}
                _ => {
                    return Err(SubmitError::MissingProperty {
                        name: name.into(),
                        reason: "four-corner topology requires it (digest §3.5)".into(),
                    })
                }
            }
        }
    }
    for rule in &pmode.properties {
        match get(&rule.name) {
            None if rule.required => {
                return Err(SubmitError::MissingProperty {
                    name: rule.name.clone(),
                    reason: "required by the P-Mode".into(),
                })
            }
            None => {}
            Some(p) => {
                if let Some(v) = &rule.value {
                    if &p.value != v {
                        return Err(SubmitError::MissingProperty {
                            name: rule.name.clone(),
                            reason: format!("must be {v:?}"),
                        });
                    }
                }
                if rule.datatype == PropertyType::Uuid && uuid::Uuid::parse_str(&p.value).is_err() {
                    return Err(SubmitError::MissingProperty {
                        name: rule.name.clone(),
                        reason: "must be a UUID".into(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn check_payloads(pmode: &PMode, req: &SubmitRequest) -> Result<(), SubmitError> {
    let prof = &pmode.payload;
    let n = req.payloads.len() as u32;
    let not_allowed = |part: &str, reason: String| SubmitError::PayloadNotAllowed {
        part: part.to_string(),
        reason,
    };
    if n < prof.min_parts {
        return Err(not_allowed(
            "payloads",
            format!("at least {} payload(s) required", prof.min_parts),
        ));
    }
    if let Some(max) = prof.max_parts {
        if n > max {
            return Err(not_allowed("payloads", format!("at most {max} payloads")));
        }
    }
    let mut total = 0u64;
    for (i, p) in req.payloads.iter().enumerate() {
        let mt = p.mime_type.trim();
        if mt.is_empty() || mt.chars().any(|c| c.is_control()) || !mt.contains('/') {
            return Err(invalid(
                &format!("payloads/{i}/mime_type"),
                "not a MIME type",
            ));
        }
        let base = mt
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !prof.allowed_mime_types.is_empty()
            && !prof
                .allowed_mime_types
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&base))
        {
            return Err(not_allowed(
                &p.part_name,
                format!("type {base} not allowed"),
            ));
        }
        if i == 0 {
            if let Some(first) = &prof.first_part_mime_type {
                if !first.eq_ignore_ascii_case(&base) {
                    return Err(not_allowed(
                        &p.part_name,
                        format!("the first payload must be {first}"),
                    ));
                }
            }
        }
        if let Some(max) = prof.max_part_size {
            if p.file.size() > max {
                return Err(not_allowed(
                    &p.part_name,
                    format!("larger than {max} bytes"),
                ));
            }
        }
        total += p.file.size();
    }
    if let Some(max) = prof.max_total_size {
        if total > max {
            return Err(not_allowed(
                "payloads",
                format!("more than {max} bytes in total"),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Packing

/// Why a message could not be packed (our side: certificates, keys, stored header).
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("stored header: {0}")]
    Header(String),
    #[error("no signing key for suite {0:?}")]
    NoKey(crate::security::Suite),
    #[error("P-Mode {0}: receiver has no encryption certificate")]
    NoRecipient(String),
    #[error("payload {0} missing")]
    MissingPayload(String),
    #[error("security: {0}")]
    Security(#[from] SecurityError),
    #[error("MIME: {0}")]
    Mime(#[from] crate::mime::MimeError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The wire form: HTTP Content-Type and body, and the signed references.
#[derive(Debug, Clone)]
pub struct Packed {
    pub content_type: String,
    pub body: Vec<u8>,
    pub references: Vec<SignedReference>,
}

pub(crate) fn wire_ids(message_id: &str) -> (String, String) {
    let h = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("as4gw-wire:{message_id}").as_bytes(),
    ));
    (
        format!("MIMEBoundary_{}", &h[..32]),
        format!("soap-{}@as4gw", &h[32..48]),
    )
}

/// The Content-Type of the wire file of `message_id` (boundary and root Content-ID are derived
/// from the MessageId: 128 bits of SHA-256, so the payloads — ciphertext — cannot contain it).
pub fn wire_content_type(message_id: &str) -> Result<String, PackError> {
    let (b, root) = wire_ids(message_id);
    Ok(MimeWriter::with_boundary(&b, &root, bytes::Bytes::new())?.content_type())
}

/// Packs the stored header and payload bytes (in `PartInfo` order, keyed by Content-ID).
pub fn pack(
    crypto: &dyn Crypto,
    header_xml: &str,
    payloads: Vec<(String, String, Vec<u8>)>,
    pmode: &PMode,
    signer: &OwnKey,
) -> Result<Packed, PackError> {
    let messaging =
        Messaging::parse(header_xml.as_bytes()).map_err(|e| PackError::Header(e.to_string()))?;
    let user = messaging
        .user_message
        .as_ref()
        .ok_or_else(|| PackError::Header("no UserMessage".into()))?;
    let mut atts = Vec::new();
    let mut payloads = payloads;
    for pi in &user.payload_info {
        let cid = pi
            .content_id()
            .ok_or_else(|| PackError::Header("PartInfo without cid:".into()))?
            .to_string();
        let idx = payloads
            .iter()
            .position(|(c, _, _)| *c == cid)
            .ok_or_else(|| PackError::MissingPayload(cid.clone()))?;
        let (_, mime_type, data) = payloads.swap_remove(idx);
        let (mime, data) = if pi.property(COMPRESSION_TYPE) == Some(GZIP) {
            (GZIP.to_string(), gzip(&data)?)
        } else {
            (mime_type, data)
        };
        atts.push(Attachment::new(cid, mime, data));
    }
    let (sender_party, receiver) = {
        let leg = pmode
            .legs
            .iter()
            .find(|l| l.action == user.collaboration_info.action)
            .ok_or_else(|| PackError::Header("action of no leg".into()))?;
        pmode.sender_receiver(leg)
    };
    let _ = sender_party;
    let rcpt_file = receiver
        .encryption_cert
        .as_ref()
        .ok_or_else(|| PackError::NoRecipient(pmode.id.clone()))?;
    let rcpt = crate::pki::Certificate::from_der(&rcpt_file.der)
        .map_err(|e| PackError::Header(format!("recipient certificate: {e}")))?;
    let cfg = SenderConfig {
        suite: suite_of(pmode.security.suite),
        signer,
        token_type: TokenType::X509v3,
        recipient: Some(&rcpt),
        recipient_reference: match pmode.security.encryption_key_reference {
            PmKeyRef::Bst => KeyReference::Bst,
            PmKeyRef::Ski => KeyReference::Ski,
            PmKeyRef::IssuerSerial => KeyReference::IssuerSerial,
        },
    };
    let secured = secure_outbound(crypto, header_xml, atts, &cfg)?;
    let (b, root) = wire_ids(user.message_info.message_id.as_str());
    let mut w = MimeWriter::with_boundary(&b, &root, secured.soap)?;
    for a in secured.attachments {
        w.add_part(&a.content_id, &a.mime_type, PartBody::Bytes(a.data.into()))?;
    }
    let content_type = w.content_type();
    let mut body = Vec::new();
    w.write_to(&mut body)
        .now_or_never()
        .ok_or_else(|| std::io::Error::other("in-memory MIME writer did not complete"))??;
    Ok(Packed {
        content_type,
        body,
        references: secured.references,
    })
}

/// The SOAP envelope and the encrypted part files of a message packed by [`pack_files`].
#[derive(Debug)]
pub struct PackedFiles {
    pub soap: Vec<u8>,
    /// `(Content-ID, IV ‖ CT ‖ TAG)` in `PartInfo` order.
    pub parts: Vec<(String, PackData)>,
    pub references: Vec<SignedReference>,
}

/// Where a payload (in) or an encrypted part (out) of [`pack_files`] is: small ones stay in
/// memory end to end, so packing a small message creates no file (issue 8).
#[derive(Debug, Clone)]
pub enum PackData {
    File(std::path::PathBuf),
    /// A stored payload file with the SHA-256 the store computed while writing it: for a
    /// binary part sent uncompressed that is already the reference digest, so a large payload
    /// is not read once more just to hash it (issue 8).
    Spooled {
        path: std::path::PathBuf,
        sha256: [u8; 32],
    },
    Memory(bytes::Bytes),
}

/// [`pack`] with the payloads in files and memory independent of their size (blocking: run it
/// on a blocking thread). Per part, in `PartInfo` order: gzip streaming into `work/N.gz` while
/// hashing the compressed bytes (the signature's digest input for an `application/gzip` part),
/// or hash the file as it is (binary types), or its transform streaming (XML: exc-c14n; text:
/// CRLF); then sign over those digests ([`secure_outbound_digests`]) and encrypt
/// each part streaming into `work/N.enc`.
pub fn pack_files(
    crypto: &dyn Crypto,
    header_xml: &str,
    payloads: Vec<(String, String, PackData)>,
    pmode: &PMode,
    signer: &OwnKey,
    work: &std::path::Path,
) -> Result<PackedFiles, PackError> {
    let messaging =
        Messaging::parse(header_xml.as_bytes()).map_err(|e| PackError::Header(e.to_string()))?;
    pack_files_parsed(
        crypto, header_xml, &messaging, payloads, pmode, signer, work,
    )
}

/// [`pack_files`] with the header already parsed: the engine parses the stored header once
/// per attempt (it also needs the receiver's URL from it), not once per use (issue 8).
/// `messaging` must be `header_xml` parsed.
pub fn pack_files_parsed(
    crypto: &dyn Crypto,
    header_xml: &str,
    messaging: &Messaging,
    payloads: Vec<(String, String, PackData)>,
    pmode: &PMode,
    signer: &OwnKey,
    work: &std::path::Path,
) -> Result<PackedFiles, PackError> {
    use crate::security::verify::{digest_input, digest_kind, DigestKind};
    use std::io::Write;
    let user = messaging
        .user_message
        .as_ref()
        .ok_or_else(|| PackError::Header("no UserMessage".into()))?;
    let mut payloads = payloads;
    let mut out_parts = Vec::new();
    let mut sources = Vec::new();
    for (i, pi) in user.payload_info.iter().enumerate() {
        let cid = pi
            .content_id()
            .ok_or_else(|| PackError::Header("PartInfo without cid:".into()))?
            .to_string();
        let idx = payloads
            .iter()
            .position(|(c, _, _)| *c == cid)
            .ok_or_else(|| PackError::MissingPayload(cid.clone()))?;
        let (_, mime_type, source) = payloads.swap_remove(idx);
        let gzip = pi.property(COMPRESSION_TYPE) == Some(GZIP);
        let (source, known_sha256) = match source {
            PackData::Spooled { path, sha256 } => (PackData::File(path), Some(sha256)),
            other => (other, None),
        };
        let (mime, digest, source) = match source {
            PackData::Memory(data) if gzip => {
                let gz = super::compress::gzip(&data)?;
                let sha = crypto.sha256(&gz);
                (GZIP.to_string(), sha, PackData::Memory(gz.into()))
            }
            PackData::Memory(data) => {
                let sha = if digest_kind(&mime_type) == DigestKind::Octets {
                    crypto.sha256(&data)
                } else {
                    crypto.sha256(&digest_input(&mime_type, &data))
                };
                (mime_type, sha, PackData::Memory(data))
            }
            PackData::File(path) if gzip => {
                let gz = work.join(format!("{i}.gz"));
                let (_, sha) = super::compress::gzip_file(&path, &gz)?;
                (GZIP.to_string(), sha, PackData::File(gz))
            }
            PackData::File(path) if digest_kind(&mime_type) == DigestKind::Octets => {
                let sha = match known_sha256 {
                    Some(sha) => sha,
                    None => crate::security::verify::sha256_file(&path)?,
                };
                (mime_type, sha, PackData::File(path))
            }
            // XML (exc-c14n) and text (CRLF) transforms, streaming: bounded memory whatever
            // the part's size; the receiver digests with the same function.
            PackData::File(path) | PackData::Spooled { path, .. } => {
                let sha = crate::security::verify::sha256_part_file(&mime_type, &path)?;
                (mime_type, sha, PackData::File(path))
            }
        };
        out_parts.push(OutPart {
            content_id: cid,
            mime_type: mime,
            digest,
        });
        sources.push(source);
    }
    let cfg_parts = sender_config_parts(pmode, user)?;
    let cfg = SenderConfig {
        suite: cfg_parts.0,
        signer,
        token_type: TokenType::X509v3,
        recipient: Some(&cfg_parts.1),
        recipient_reference: cfg_parts.2,
    };
    let header = secure_outbound_digests(crypto, header_xml, &out_parts, &cfg)?;
    let cek = header
        .cek
        .ok_or_else(|| PackError::Header("no content key".into()))?;
    let mut parts = Vec::new();
    for (i, (p, src)) in out_parts.iter().zip(&sources).enumerate() {
        let src = match src {
            PackData::Memory(data) => {
                let out = cek.seal(crypto, data)?;
                parts.push((p.content_id.clone(), PackData::Memory(out.into())));
                continue;
            }
            PackData::File(path) | PackData::Spooled { path, .. } => path,
        };
        let enc = work.join(format!("{i}.enc"));
        let mut input = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(src)?);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&enc)?;
        let mut output = std::io::BufWriter::with_capacity(256 * 1024, f);
        cek.encrypt_part(crypto, &mut input, &mut output)?;
        output.flush()?;
        parts.push((p.content_id.clone(), PackData::File(enc)));
    }
    Ok(PackedFiles {
        soap: header.soap,
        parts,
        references: header.references,
    })
}

/// Suite, recipient certificate and its reference form for the leg of `user`.
fn sender_config_parts(
    pmode: &PMode,
    user: &UserMessage,
) -> Result<
    (
        crate::security::Suite,
        crate::pki::Certificate,
        KeyReference,
    ),
    PackError,
> {
    let leg = pmode
        .legs
        .iter()
        .find(|l| l.action == user.collaboration_info.action)
        .ok_or_else(|| PackError::Header("action of no leg".into()))?;
    let (_, receiver) = pmode.sender_receiver(leg);
    let rcpt_file = receiver
        .encryption_cert
        .as_ref()
        .ok_or_else(|| PackError::NoRecipient(pmode.id.clone()))?;
    // Parsed once per DER (the P-Modes name a handful): once per message was ~1.3 % of a
    // sender's CPU (issue 8, fourth round).
    let rcpt = crate::pki::Certificate::from_der_cached(&rcpt_file.der)
        .map_err(|e| PackError::Header(format!("recipient certificate: {e}")))?;
    Ok((
        suite_of(pmode.security.suite),
        rcpt,
        match pmode.security.encryption_key_reference {
            PmKeyRef::Bst => KeyReference::Bst,
            PmKeyRef::Ski => KeyReference::Ski,
            PmKeyRef::IssuerSerial => KeyReference::IssuerSerial,
        },
    ))
}

/// The `ds:Reference`s of the signature in a sent SOAP envelope (URI, digest method, value,
/// canonical XML) — read from the wire file so that a retry after a restart checks the receipt
/// against exactly what went out (digest §2.8).
pub fn sent_references(soap: &[u8]) -> Result<Vec<SignedReference>, String> {
    let doc = Document::parse(soap).map_err(|e| e.to_string())?;
    let si = doc
        .elements()
        .find(|n| n.is(ns::DS, "SignedInfo"))
        .ok_or("no ds:SignedInfo in the sent message")?;
    Ok(si
        .children_named(ns::DS, "Reference")
        .map(|r| SignedReference {
            uri: r.attr(None, "URI").unwrap_or("").to_string(),
            digest_method: r
                .child(ns::DS, "DigestMethod")
                .and_then(|d| d.attr(None, "Algorithm"))
                .unwrap_or("")
                .to_string(),
            digest_value: r
                .child(ns::DS, "DigestValue")
                .map(|d| d.text().chars().filter(|c| !c.is_whitespace()).collect())
                .unwrap_or_default(),
            xml: String::from_utf8_lossy(&canonical_bytes(&doc, r.id(), &C14nOptions::default()))
                .into_owned(),
        })
        .collect())
}

/// The SOAP part of a message held in memory (multipart or bare SOAP).
pub fn soap_part(content_type: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
    let ct = content_type.unwrap_or("application/soap+xml");
    let limits = MimeLimits {
        max_total_bytes: body.len() as u64 + 1,
        ..MimeLimits::default()
    };
    let mut r = MimeReader::from_bytes(ct, bytes::Bytes::copy_from_slice(body), limits)
        .map_err(|e| e.to_string())?;
    let m = collect(&mut r)
        .now_or_never()
        .ok_or("in-memory MIME reader did not complete")?
        .map_err(|e| e.to_string())?;
    Ok(m.root.body.to_vec())
}

// ---------------------------------------------------------------------------------------------
// Verdicts

/// What one attempt established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid receipt (its bytes are kept as NRR evidence).
    Acknowledged { receipt: Vec<u8> },
    /// Final failure with this code.
    Failed { code: EbmsCode, detail: String },
    /// No usable answer; resend on the schedule.
    Retry {
        code: Option<EbmsCode>,
        detail: String,
    },
}

/// Error codes after which a resend of the same bytes may succeed: the partner could not
/// reach or keep its own resources (EBMS:0005, 0201, 0202 — digest §2.6, "a receiver that
/// cannot process a message … SHOULD return EBMS:0202"). Every other failure code is about the
/// message itself and would come back identical.
pub fn retry_is_safe(code: EbmsCode) -> bool {
    matches!(
        code,
        EbmsCode::ConnectionFailure
            | EbmsCode::DysfunctionalReliability
            | EbmsCode::DeliveryFailure
    )
}

/// Judges the partner's answer to the message `message_id` whose signed references were
/// `sent`; `rx` carries the trust for the receipt's signature (digest §2.5, §12.2, §12.6).
pub fn judge_response(
    rx: &Receiver<'_>,
    resp: &WireResponse,
    message_id: &str,
    sent: &[SignedReference],
) -> Verdict {
    let no_signal = |why: String| Verdict::Retry {
        code: if resp.status >= 500 {
            Some(EbmsCode::ConnectionFailure)
        } else {
            None
        },
        detail: format!("HTTP {} without an ebMS signal ({why})", resp.status),
    };
    let soap = match soap_part(resp.content_type.as_deref(), &resp.body) {
        Ok(s) => s,
        Err(e) => return no_signal(e),
    };
    // Nearly every answer is a valid receipt, and `verify_receipt` reads the envelope itself
    // (the signal, RefToMessageId, every sent reference): trying it first saves parsing the
    // envelope twice (issue 8). A receipt that verifies acknowledges the message whatever
    // else the answer holds; anything else is judged below as before.
    let receipt_error = match verify_receipt(rx, &soap, message_id, sent) {
        Ok(_) => return Verdict::Acknowledged { receipt: soap },
        Err(e) => e,
    };
    let env = match parse_envelope(&soap) {
        Ok(e) => e,
        Err(e) => return no_signal(e.to_string()),
    };
    let Some(mb) = env.messaging else {
        return no_signal(match env.fault {
            Some(f) => format!("SOAP Fault: {}", f.reason),
            None => "no eb:Messaging".into(),
        });
    };
    for sm in &mb.messaging.signal_messages {
        match &sm.signal {
            Signal::Receipt(_) => {
                return Verdict::Failed {
                    code: EbmsCode::InvalidReceipt,
                    detail: receipt_error.to_string(),
                }
            }
            Signal::Errors(errs) => {
                let Some(e) = errs
                    .iter()
                    .find(|e| e.severity == Severity::Failure)
                    .or(errs.first())
                else {
                    continue;
                };
                let detail = format!(
                    "partner answered {}{}",
                    e.error_code.as_str(),
                    e.error_detail
                        .as_deref()
                        .or(e.short_description.as_deref())
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                );
                if e.severity != Severity::Failure {
                    return Verdict::Retry { code: None, detail };
                }
                return match &e.error_code {
                    ErrorCode::Known(c) if retry_is_safe(*c) => Verdict::Retry {
                        code: Some(*c),
                        detail,
                    },
                    ErrorCode::Known(c) => Verdict::Failed { code: *c, detail },
                    ErrorCode::Other(_) => Verdict::Failed {
                        code: EbmsCode::Other,
                        detail,
                    },
                };
            }
            Signal::PullRequest(_) => {}
        }
    }
    no_signal("no Receipt or Error signal".into())
}

/// Judges a send that got no answer at all.
pub fn judge_send_error(e: &SendError) -> Verdict {
    match e {
        SendError::Config(d) => Verdict::Failed {
            code: EbmsCode::Other,
            detail: format!("cannot send: {d}"),
        },
        SendError::Local(d) => Verdict::Retry {
            code: None,
            detail: format!("local I/O: {d}"),
        },
        SendError::Network { detail, .. } => Verdict::Retry {
            code: Some(EbmsCode::ConnectionFailure),
            detail: detail.clone(),
        },
    }
}

/// When the next attempt is due after `attempts` attempts (1 = the first send), or `None` when
/// the P-Mode's resends are used up. `Retry.attempts` counts resends (Domibus `12;4;CONSTANT` =
/// 4 resends, one every 3 minutes, digest §2.8), so a message is sent at most `1 + attempts` times.
pub fn next_attempt(retry: &Retry, attempts: u32, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if attempts > retry.attempts {
        return None;
    }
    let base = time::Duration::try_from(retry.interval).unwrap_or(time::Duration::MINUTE);
    let factor = match retry.backoff {
        Backoff::Constant => 1,
        Backoff::Exponential => 1i32 << attempts.saturating_sub(1).min(16),
    };
    Some(now + base * factor)
}

/// The store outcome for a verdict after `attempts` attempts.
pub fn next_outcome(
    verdict: Verdict,
    retry: &Retry,
    attempts: u32,
    now: OffsetDateTime,
) -> Outcome {
    match verdict {
        Verdict::Acknowledged { receipt } => Outcome::Acknowledged {
            receipt: Some(receipt),
        },
        Verdict::Failed { code, detail } => Outcome::Failed { code, detail },
        Verdict::Retry { code, detail } => match next_attempt(retry, attempts, now) {
            Some(at) => Outcome::Retry {
                next_attempt_at: at,
                code,
                detail,
            },
            None => Outcome::Failed {
                code: EbmsCode::MissingReceipt,
                detail: format!("no receipt after {attempts} attempt(s); last: {detail}"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn schedule_counts_resends() {
        let r = Retry {
            attempts: 2,
            interval: Duration::from_secs(10),
            backoff: Backoff::Constant,
        };
        let t0 = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(
            next_attempt(&r, 1, t0),
            Some(t0 + time::Duration::seconds(10))
        );
        assert_eq!(
            next_attempt(&r, 2, t0),
            Some(t0 + time::Duration::seconds(10))
        );
        assert_eq!(next_attempt(&r, 3, t0), None);
        let e = Retry {
            backoff: Backoff::Exponential,
            ..r
        };
        assert_eq!(
            next_attempt(&e, 2, t0),
            Some(t0 + time::Duration::seconds(20))
        );
        match next_outcome(
            Verdict::Retry {
                code: None,
                detail: "x".into(),
            },
            &r,
            3,
            t0,
        ) {
            Outcome::Failed { code, .. } => assert_eq!(code, EbmsCode::MissingReceipt),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn wire_content_type_is_stable() {
        let a = wire_content_type("a@b").expect("ct");
        assert_eq!(a, wire_content_type("a@b").expect("ct"));
        assert_ne!(a, wire_content_type("c@b").expect("ct"));
        assert!(a.starts_with("multipart/related"));
    }
}
