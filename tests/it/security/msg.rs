//! Building test messages and receivers.

use as4gw::pki::Certificate;
use as4gw::security::crypto::{AwsLc, Crypto};
use as4gw::security::sign::{secure_outbound, SecuredMessage, SenderConfig};
use as4gw::security::{
    Attachment, InboundPolicy, KeyReference, OwnKey, Receiver, Suite, TokenType,
};
use as4gw::xml::{canonical_bytes, C14nOptions, Document};

use super::testpki::{world, AT};

pub const MESSAGE_ID: &str = "7b1c6e0e-2a4b-4c9b-9f3e-0a1b2c3d4e5f@as4gw.test";

/// An eb:Messaging with one UserMessage listing `cids` in PayloadInfo.
pub fn messaging(cids: &[(&str, &str)]) -> String {
    let mut parts = String::new();
    for (cid, mime) in cids {
        parts.push_str(&format!(
            "<eb:PartInfo href=\"cid:{cid}\"><eb:PartProperties><eb:Property name=\"MimeType\">{mime}</eb:Property></eb:PartProperties></eb:PartInfo>"
        ));
    }
    format!(
        "<eb:Messaging xmlns:eb=\"http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/\" env:mustUnderstand=\"true\" wsu:Id=\"_messaging-1\"><eb:UserMessage><eb:MessageInfo><eb:Timestamp>2026-06-01T00:00:00Z</eb:Timestamp><eb:MessageId>{MESSAGE_ID}</eb:MessageId></eb:MessageInfo><eb:PartyInfo><eb:From><eb:PartyId type=\"urn:oasis:names:tc:ebcore:partyid-type:unregistered\">blue</eb:PartyId><eb:Role>http://sdg.europa.eu/edelivery/gateway</eb:Role></eb:From><eb:To><eb:PartyId type=\"urn:oasis:names:tc:ebcore:partyid-type:unregistered\">red</eb:PartyId><eb:Role>http://sdg.europa.eu/edelivery/gateway</eb:Role></eb:To></eb:PartyInfo><eb:CollaborationInfo><eb:Service type=\"urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0\">QueryManager</eb:Service><eb:Action>ExecuteQueryRequest</eb:Action><eb:ConversationId>conv-1</eb:ConversationId></eb:CollaborationInfo><eb:PayloadInfo>{parts}</eb:PayloadInfo></eb:UserMessage></eb:Messaging>"
    )
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Two payloads: a compressed RegRep document and an uncompressed XML evidence.
pub fn payloads() -> Vec<Attachment> {
    vec![
        Attachment::new(
            "regrep@as4gw.test",
            "application/gzip",
            gzip(b"<query:QueryRequest xmlns:query=\"urn:q\"/>"),
        ),
        Attachment::new(
            "evidence@as4gw.test",
            "application/xml",
            b"<e:Evidence xmlns:e=\"urn:e\">\n  <e:x a='1'/>\n</e:Evidence>".to_vec(),
        ),
    ]
}

pub fn cids() -> Vec<(&'static str, &'static str)> {
    vec![
        ("regrep@as4gw.test", "application/x-ebrs+xml"),
        ("evidence@as4gw.test", "application/xml"),
    ]
}

pub fn signer_for(suite: Suite, p: &super::testpki::Party) -> &OwnKey {
    match suite {
        Suite::Edelivery115 => &p.rsa,
        Suite::Edelivery20 => &p.ed,
    }
}

pub fn enc_cert_for(suite: Suite, p: &super::testpki::Party) -> &Certificate {
    match suite {
        Suite::Edelivery115 => &p.rsa.cert,
        Suite::Edelivery20 => &p.x.cert,
    }
}

/// blue → red, signed and encrypted.
pub fn send(suite: Suite, reference: KeyReference, token: TokenType) -> SecuredMessage {
    let w = world();
    let cfg = SenderConfig {
        suite,
        signer: signer_for(suite, &w.blue),
        token_type: token,
        recipient: Some(enc_cert_for(suite, &w.red)),
        recipient_reference: reference,
    };
    secure_outbound(&AwsLc, &messaging(&cids()), payloads(), &cfg).expect("secure")
}

pub fn send_with(suite: Suite, signer: &OwnKey, recipient: Option<&Certificate>) -> SecuredMessage {
    let cfg = SenderConfig {
        suite,
        signer,
        token_type: TokenType::X509v3,
        recipient,
        recipient_reference: KeyReference::Ski,
    };
    secure_outbound(&AwsLc, &messaging(&cids()), payloads(), &cfg).expect("secure")
}

pub fn red_keys() -> Vec<OwnKey> {
    let w = world();
    let copy = |k: &OwnKey| OwnKey {
        key: as4gw::pki::load_private_key(&k.key.to_pkcs8_der().expect("der")).expect("key"),
        cert: k.cert.clone(),
        chain: k.chain.clone(),
    };
    vec![copy(&w.red.rsa), copy(&w.red.x)]
}

/// Red receives with the given policy.
pub fn receive(
    policy: InboundPolicy,
    msg: &SecuredMessage,
) -> Result<
    as4gw::security::Verified<as4gw::security::InboundMessage>,
    as4gw::security::SecurityError,
> {
    receive_raw(policy, &msg.soap, msg.attachments.clone())
}

pub fn receive_raw(
    policy: InboundPolicy,
    soap: &[u8],
    parts: Vec<Attachment>,
) -> Result<
    as4gw::security::Verified<as4gw::security::InboundMessage>,
    as4gw::security::SecurityError,
> {
    let w = world();
    let trust = w.trust();
    let keys = red_keys();
    let rx = Receiver {
        crypto: &AwsLc,
        trust: &trust,
        partners: &[],
        keys: &keys,
        at: AT,
        policy,
    };
    as4gw::security::process_inbound(&rx, soap, parts)
}

/// Re-signs SignedInfo after a test edited it (so the test reaches the check behind the signature).
pub fn resign(soap: &str, suite: Suite, signer: &OwnKey) -> String {
    let doc = Document::parse(soap.as_bytes()).expect("xml");
    let ds = "http://www.w3.org/2000/09/xmldsig#";
    let si = doc
        .elements()
        .find(|n| n.is(ds, "SignedInfo"))
        .expect("SignedInfo");
    let sv = doc
        .elements()
        .find(|n| n.is(ds, "SignatureValue"))
        .expect("SignatureValue");
    let old = sv.text().into_owned();
    let bytes = canonical_bytes(&doc, si.id(), &C14nOptions::with_prefix_list("env"));
    let sig = match suite {
        Suite::Edelivery115 => AwsLc.rsa_sha256_sign(&signer.key, &bytes),
        Suite::Edelivery20 => AwsLc.ed25519_sign(&signer.key, &bytes),
    }
    .expect("sign");
    use base64::Engine;
    soap.replacen(
        &old,
        &base64::engine::general_purpose::STANDARD.encode(sig),
        1,
    )
}
