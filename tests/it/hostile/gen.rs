//! The generator of `conformance/hostile/` (run once, output committed):
//! `cargo test --test it hostile::gen::generate_corpus -- --ignored`.
//!
//! Every case is built the way a (misbehaving) partner would: red's demo RSA key signs, blue's
//! demo certificate receives the AES-128-GCM key (eDelivery AS4 1.15, digest §3.2), and the
//! attack is applied to the header before signing, to the signed envelope, or to the MIME bytes.
//! Header, MessageIds, boundaries and payloads are fixed, so the cases and their expectations
//! come out the same on every run; ciphertexts, OAEP padding and the extra certificates' keys
//! are random, so the `.body` bytes of encrypted cases differ between runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use as4gw::pki::{load_certificates, load_private_key, Certificate, KeyType, PrivateKey};
use as4gw::security::crypto::{AwsLc, Crypto};
use as4gw::security::sign::{secure_outbound, SenderConfig};
use as4gw::security::{Attachment, KeyReference, OwnKey, Suite, TokenType};
use as4gw::xml::{canonical_bytes, C14nOptions, Document};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::Serialize;
use time::macros::datetime;
use time::OffsetDateTime;

use crate::hostile::repo;

/// `conformance/hostile/` of this checkout.
pub fn corpus_dir() -> PathBuf {
    repo().join("conformance/hostile")
}

/// One case's expectation file (`NNN-name.toml`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CaseMeta {
    /// The HTTP Content-Type request header; absent = the header is not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Category: mime, xml, ebms, security, wrapping, certificate, compression, size, replay,
    /// valid.
    pub attack: String,
    pub description: String,
    pub expect_status: u16,
    /// `"receipt"`, an EBMS code (`"EBMS:0101"`), `"soap-fault"` (a SOAP Fault without an
    /// ebMS error: an unknown mustUnderstand header block, digest §2.7) or `"none"` (no SOAP
    /// answer at all, e.g. 413 from the transport).
    pub expect: String,
    /// A substring of the error's detail (eb:ErrorDetail) that pins down why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_detail: Option<String>,
    /// The eb:MessageId the body carries, when it has a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// How many inbound messages with `message-id` the gateway holds after the whole corpus
    /// (0 for refusals; replays of an accepted message still 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u32>,
    /// Why this outcome is the right one (digest §).
    pub reason: String,
    /// The gateway answers before the upload is complete and closes the connection: the client
    /// may see the answer or a write error, depending on timing. Either passes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_upload_reset: bool,
}

struct Case {
    name: String,
    meta: CaseMeta,
    body: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// Keys and certificates

struct Keys {
    red: OwnKey,
    blue_enc: Certificate,
    red_enc: Certificate,
    blue_sign: OwnKey,
    red_ed: OwnKey,
    expired: OwnKey,
    not_yet_valid: OwnKey,
    revoked: OwnKey,
    wrong_ku: OwnKey,
    untrusted: OwnKey,
    other_party: OwnKey,
    self_signed: OwnKey,
}

fn read(rel: &str) -> Vec<u8> {
    let p = repo().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn own(cert: &str, key: &str) -> OwnKey {
    OwnKey {
        key: load_private_key(&read(key)).expect("key"),
        cert: load_certificates(&read(cert)).expect("cert").remove(0),
        chain: vec![],
    }
}

fn rc_key(k: &PrivateKey) -> KeyPair {
    let der = k.to_pkcs8_der().expect("pkcs8");
    KeyPair::try_from(der.as_slice()).expect("rcgen key")
}

struct Ca {
    params: CertificateParams,
    rc: KeyPair,
    cert: Certificate,
    pem: String,
}

fn make_ca(cn: &str) -> Ca {
    let key = PrivateKey::generate(KeyType::Ed25519).expect("ca key");
    let rc = rc_key(&key);
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "as4gw hostile corpus");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = datetime!(2026-01-01 0:00 UTC);
    params.not_after = datetime!(2039-12-31 0:00 UTC);
    let c = params.self_signed(&rc).expect("ca cert");
    Ca {
        cert: Certificate::from_der(c.der()).expect("parse ca"),
        pem: c.pem(),
        params,
        rc,
    }
}

fn leaf_params(
    cn: &str,
    ku: Vec<KeyUsagePurpose>,
    nb: OffsetDateTime,
    na: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "as4gw hostile corpus");
    params.distinguished_name = dn;
    params.key_usages = ku;
    params.not_before = nb;
    params.not_after = na;
    params.use_authority_key_identifier_extension = true;
    params
}

/// An RSA leaf issued by `ca`; its PEM goes to `certs/<file>`.
fn leaf(
    ca: &Ca,
    file: &str,
    cn: &str,
    ku: Vec<KeyUsagePurpose>,
    nb: OffsetDateTime,
    na: OffsetDateTime,
) -> OwnKey {
    let key = PrivateKey::generate(KeyType::Rsa).expect("rsa key");
    let c = leaf_params(cn, ku, nb, na)
        .signed_by(&rc_key(&key), &Issuer::from_params(&ca.params, &ca.rc))
        .expect("leaf");
    write_cert(file, &c.pem());
    OwnKey {
        key,
        cert: Certificate::from_der(c.der()).expect("parse leaf"),
        chain: vec![ca.cert.clone()],
    }
}

fn write_cert(file: &str, pem: &str) {
    let dir = corpus_dir().join("certs");
    std::fs::create_dir_all(&dir).expect("certs dir");
    std::fs::write(dir.join(file), pem).expect("write cert");
}

fn sign_ku() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ]
}

fn keys() -> Keys {
    let valid = (
        datetime!(2026-01-01 0:00 UTC),
        datetime!(2039-12-31 0:00 UTC),
    );
    let ca = make_ca("as4gw hostile corpus CA");
    write_cert("ca.cert.pem", &ca.pem);
    let rogue = make_ca("as4gw hostile corpus CA");
    write_cert("untrusted-ca.cert.pem", &rogue.pem);
    let expired = leaf(
        &ca,
        "expired.cert.pem",
        "red_gw hostile 1",
        sign_ku(),
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2021-01-01 0:00 UTC),
    );
    let not_yet_valid = leaf(
        &ca,
        "not-yet-valid.cert.pem",
        "red_gw hostile 2",
        sign_ku(),
        datetime!(2098-01-01 0:00 UTC),
        datetime!(2099-01-01 0:00 UTC),
    );
    let revoked = leaf(
        &ca,
        "revoked.cert.pem",
        "red_gw hostile 3",
        sign_ku(),
        valid.0,
        valid.1,
    );
    let wrong_ku = leaf(
        &ca,
        "wrong-key-usage.cert.pem",
        "red_gw hostile 4",
        vec![KeyUsagePurpose::KeyEncipherment],
        valid.0,
        valid.1,
    );
    let other_party = leaf(
        &ca,
        "other-party.cert.pem",
        "green_gw hostile 5",
        sign_ku(),
        valid.0,
        valid.1,
    );
    let untrusted = leaf(
        &rogue,
        "untrusted.cert.pem",
        "red_gw hostile 6",
        sign_ku(),
        valid.0,
        valid.1,
    );
    // a self-signed certificate with red's subject
    let key = PrivateKey::generate(KeyType::Rsa).expect("rsa key");
    let c = leaf_params("red rsa (as4gw demo)", sign_ku(), valid.0, valid.1)
        .self_signed(&rc_key(&key))
        .expect("self-signed");
    write_cert("self-signed.cert.pem", &c.pem());
    let self_signed = OwnKey {
        key,
        cert: Certificate::from_der(c.der()).expect("parse"),
        chain: vec![],
    };
    let crl = rcgen::CertificateRevocationListParams {
        this_update: datetime!(2026-01-01 0:00 UTC),
        next_update: datetime!(2039-12-31 0:00 UTC),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(revoked.cert.serial()),
            revocation_time: datetime!(2026-02-01 0:00 UTC),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&Issuer::from_params(&ca.params, &ca.rc))
    .expect("crl");
    write_cert("ca.crl.pem", &crl.pem().expect("crl pem"));
    Keys {
        red: own("certs/demo/red/rsa.cert.pem", "certs/demo/red/rsa.key.pem"),
        blue_enc: load_certificates(&read("certs/demo/blue/rsa.cert.pem"))
            .expect("blue")
            .remove(0),
        red_enc: load_certificates(&read("certs/demo/red/rsa.cert.pem"))
            .expect("red")
            .remove(0),
        blue_sign: own(
            "certs/demo/blue/rsa.cert.pem",
            "certs/demo/blue/rsa.key.pem",
        ),
        red_ed: own(
            "certs/demo/red/ed25519.cert.pem",
            "certs/demo/red/ed25519.key.pem",
        ),
        expired,
        not_yet_valid,
        revoked,
        wrong_ku,
        untrusted,
        other_party,
        self_signed,
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

const EB: &str = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/";
const UNREG: &str = "urn:oasis:names:tc:ebcore:partyid-type:unregistered";
const OOTS_TYPE: &str = "urn:oasis:names:tc:ebcore:partyid-type:unregistered:oots";
const ROLE: &str = "http://sdg.europa.eu/edelivery/gateway";
const ROOT_CID: &str = "root@red.hostile.as4gw";

/// A fixed, valid MessageId per case number (UUID left part, digest §2.3).
pub fn mid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}@red.hostile.as4gw")
}

fn cid(name: &str) -> String {
    format!("{name}@red.hostile.as4gw")
}

/// The eb:Messaging of a red → blue OOTS ExceptionResponse (P-Mode `oots-red-blue`, leg
/// `ootsErrorLeg`, compressed: digest §6.3, §2.9). The ExceptionResponse leg is used because
/// a valid request leg would be judged by the OOTS rules and answered with EDM:ERR:0003 (a
/// second outbound message) instead of being delivered.
struct Header {
    mid: String,
    action: String,
    service: String,
    to_role: String,
    message_id_xml: Option<String>,
    timestamp: String,
    parts: Vec<(String, &'static str, bool)>,
    properties: Vec<(&'static str, &'static str)>,
    must_understand: Option<&'static str>,
    extra_user_message: bool,
    skip: Vec<&'static str>,
}

impl Header {
    fn new(n: u32) -> Header {
        Header {
            mid: mid(n),
            action: "ExceptionResponse".into(),
            service: "QueryManager".into(),
            to_role: ROLE.into(),
            message_id_xml: None,
            timestamp: "2026-11-27T10:00:00Z".into(),
            parts: vec![(cid("regrep"), "application/x-ebrs+xml", true)],
            properties: vec![
                ("originalSender", "urn:cef.eu:names:identifier:EAS:9930:abc"),
                ("finalRecipient", "urn:cef.eu:names:identifier:EAS:9930:def"),
            ],
            must_understand: Some("true"),
            extra_user_message: false,
            skip: vec![],
        }
    }

    fn user_message(&self) -> String {
        let el = |name: &str, xml: String| {
            if self.skip.contains(&name) {
                String::new()
            } else {
                xml
            }
        };
        let mid_xml = self
            .message_id_xml
            .clone()
            .unwrap_or_else(|| format!("<eb:MessageId>{}</eb:MessageId>", self.mid));
        let props: String = self
            .properties
            .iter()
            .map(|(n, v)| format!("<eb:Property name=\"{n}\" type=\"{UNREG}\">{v}</eb:Property>"))
            .collect();
        let parts: String = self
            .parts
            .iter()
            .map(|(c, mt, gz)| {
                let comp = if *gz {
                    "<eb:Property name=\"CompressionType\">application/gzip</eb:Property>"
                } else {
                    ""
                };
                format!("<eb:PartInfo href=\"cid:{c}\"><eb:PartProperties><eb:Property name=\"MimeType\">{mt}</eb:Property>{comp}</eb:PartProperties></eb:PartInfo>")
            })
            .collect();
        format!(
            "<eb:UserMessage><eb:MessageInfo>{}{}</eb:MessageInfo>{}<eb:CollaborationInfo>{}{}<eb:ConversationId>hostile-conversation</eb:ConversationId></eb:CollaborationInfo><eb:MessageProperties>{props}</eb:MessageProperties><eb:PayloadInfo>{parts}</eb:PayloadInfo></eb:UserMessage>",
            el("Timestamp", format!("<eb:Timestamp>{}</eb:Timestamp>", self.timestamp)),
            el("MessageId", mid_xml),
            el("PartyInfo", format!(
                "<eb:PartyInfo><eb:From><eb:PartyId type=\"{OOTS_TYPE}\">red_gw</eb:PartyId><eb:Role>{ROLE}</eb:Role></eb:From><eb:To><eb:PartyId type=\"{OOTS_TYPE}\">blue_gw</eb:PartyId><eb:Role>{}</eb:Role></eb:To></eb:PartyInfo>",
                self.to_role
            )),
            el("Service", format!(
                "<eb:Service type=\"urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0\">{}</eb:Service>",
                self.service
            )),
            el("Action", format!("<eb:Action>{}</eb:Action>", self.action)),
        )
    }

    fn xml(&self) -> String {
        let mu = self
            .must_understand
            .map(|v| format!(" env:mustUnderstand=\"{v}\""))
            .unwrap_or_default();
        let um = self.user_message();
        let second = if self.extra_user_message {
            um.replace(&self.mid, &mid(999))
        } else {
            String::new()
        };
        format!("<eb:Messaging xmlns:eb=\"{EB}\"{mu} wsu:Id=\"_messaging-1\">{um}{second}</eb:Messaging>")
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A small EDM-looking RegRep document (the ExceptionResponse leg's first part).
fn regrep() -> Vec<u8> {
    br#"<?xml version="1.0" encoding="UTF-8"?><query:QueryResponse xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0" xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:4.0" status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure" requestId="urn:uuid:4e2b5b3c-0000-4000-8000-000000000001"><rs:Exception xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="rs:AuthorizationExceptionType" severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error" message="hostile corpus" code="EDM:ERR:0001"/></query:QueryResponse>"#.to_vec()
}

fn pdfish(n: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n".to_vec();
    let mut x: u32 = 7;
    while v.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        v.push((x >> 16) as u8);
    }
    v
}

/// What to sign and with which keys.
struct Build<'a> {
    header: String,
    atts: Vec<Attachment>,
    signer: &'a OwnKey,
    suite: Suite,
    recipient: Option<&'a Certificate>,
}

fn plain_atts(h: &Header) -> Vec<Attachment> {
    h.parts
        .iter()
        .map(|(c, mt, gz)| {
            let data = if *mt == "application/pdf" {
                pdfish(3000)
            } else {
                regrep()
            };
            if *gz {
                Attachment::new(c, "application/gzip", gzip(&data))
            } else {
                Attachment::new(c, *mt, data)
            }
        })
        .collect()
}

/// Signed (and encrypted) envelope + parts.
fn secure(b: Build<'_>) -> (String, Vec<Attachment>) {
    let cfg = SenderConfig {
        suite: b.suite,
        signer: b.signer,
        token_type: TokenType::X509v3,
        recipient: b.recipient,
        recipient_reference: KeyReference::Bst,
    };
    let m = secure_outbound(&AwsLc, &b.header, b.atts, &cfg).expect("secure");
    (String::from_utf8(m.soap).expect("utf8"), m.attachments)
}

/// Re-signs SignedInfo after an edit (as `tests/it/security/msg.rs` does), so the case reaches
/// the check behind the signature.
fn resign(soap: &str, signer: &OwnKey) -> String {
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
    let sig = AwsLc.rsa_sha256_sign(&signer.key, &bytes).expect("sign");
    soap.replacen(&old, &b64(&sig), 1)
}

/// Re-signs with RSA-SHA1 (a real downgrade: the signature is valid for rsa-sha1).
fn resign_sha1(soap: &str, signer: &OwnKey) -> String {
    use rsa::pkcs8::DecodePrivateKey;
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
    let der = signer.key.to_pkcs8_der().expect("der");
    let theirs = rsa::PrivateKey::from_pkcs8_der(&der).expect("rsa crate key");
    let sig = theirs
        .pkcs1v15_sign::<sha1::Sha1>(&bytes)
        .expect("rsa-sha1 sign");
    soap.replacen(&old, &b64(&sig), 1)
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn span(s: &str, start: &str, end: &str) -> (usize, usize) {
    let a = s
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in envelope"));
    let b = a
        + s[a..]
            .find(end)
            .unwrap_or_else(|| panic!("{end} not in envelope"))
        + end.len();
    (a, b)
}

fn boundary(n: u32) -> String {
    format!("----=_hostile_{n:03}_boundary")
}

fn content_type(n: u32) -> String {
    format!(
        "multipart/related; type=\"application/soap+xml\"; boundary=\"{}\"; start=\"<{ROOT_CID}>\"; start-info=\"application/soap+xml\"",
        boundary(n)
    )
}

/// A MIME part: extra header lines, Content-ID (without brackets), type, bytes.
struct MimePart {
    cid: Option<String>,
    mime_type: String,
    extra_headers: String,
    data: Vec<u8>,
}

fn root_part(soap: &[u8]) -> MimePart {
    MimePart {
        cid: Some(ROOT_CID.into()),
        mime_type: "application/soap+xml; charset=UTF-8".into(),
        extra_headers: String::new(),
        data: soap.to_vec(),
    }
}

fn att_parts(atts: &[Attachment]) -> Vec<MimePart> {
    atts.iter()
        .map(|a| MimePart {
            cid: Some(a.content_id.clone()),
            mime_type: a.mime_type.clone(),
            extra_headers: String::new(),
            data: a.data.clone(),
        })
        .collect()
}

fn mime(n: u32, parts: &[MimePart]) -> Vec<u8> {
    let b = boundary(n);
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(
            format!(
                "--{b}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\n",
                p.mime_type
            )
            .as_bytes(),
        );
        if let Some(c) = &p.cid {
            out.extend_from_slice(format!("Content-ID: <{c}>\r\n").as_bytes());
        }
        out.extend_from_slice(p.extra_headers.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&p.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    out
}

/// A bare SOAP envelope (no security) around `header_blocks` and `body`.
fn bare_envelope(header_blocks: &str, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\"><env:Header>{header_blocks}</env:Header><env:Body>{body}</env:Body></env:Envelope>"
    )
}

// ---------------------------------------------------------------------------------------------
// The corpus

struct Gen {
    k: Keys,
    cases: Vec<Case>,
}

/// Expectation shorthand.
struct Exp {
    status: u16,
    expect: &'static str,
    detail: Option<&'static str>,
    delivered: Option<u32>,
}

fn err(code: &'static str) -> Exp {
    Exp {
        status: 400,
        expect: code,
        detail: None,
        delivered: Some(0),
    }
}

fn err_d(code: &'static str, detail: &'static str) -> Exp {
    Exp {
        detail: Some(detail),
        ..err(code)
    }
}

fn receipt() -> Exp {
    Exp {
        status: 200,
        expect: "receipt",
        detail: None,
        delivered: Some(1),
    }
}

impl Gen {
    fn n(&self) -> u32 {
        self.cases.len() as u32 + 1
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        slug: &str,
        attack: &str,
        description: &str,
        ct: Option<String>,
        body: Vec<u8>,
        message_id: Option<String>,
        e: Exp,
        reason: &str,
    ) {
        let n = self.n();
        let delivered = message_id.as_ref().and(e.delivered);
        self.cases.push(Case {
            name: format!("{n:03}-{slug}"),
            meta: CaseMeta {
                content_type: ct,
                attack: attack.into(),
                description: description.into(),
                expect_status: e.status,
                expect: e.expect.into(),
                expect_detail: e.detail.map(str::to_string),
                message_id,
                delivered,
                reason: reason.into(),
                allow_upload_reset: e.status == 413,
            },
            body,
        });
    }

    /// The standard signed + encrypted message for case `n`, optionally with a header edit
    /// (before signing) and an envelope edit (after signing).
    fn signed(&self, n: u32, edit: impl FnOnce(&mut Header)) -> (Header, String, Vec<Attachment>) {
        let mut h = Header::new(n);
        edit(&mut h);
        let (soap, atts) = secure(Build {
            header: h.xml(),
            atts: plain_atts(&h),
            signer: &self.k.red,
            suite: Suite::Edelivery115,
            recipient: Some(&self.k.blue_enc),
        });
        (h, soap, atts)
    }

    /// A signed case whose header is edited before signing.
    fn header_case(
        &mut self,
        slug: &str,
        description: &str,
        edit: impl FnOnce(&mut Header),
        e: Exp,
        reason: &str,
    ) {
        let n = self.n();
        let (h, soap, atts) = self.signed(n, edit);
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        self.push(
            slug,
            "ebms",
            description,
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            e,
            reason,
        );
    }

    /// A signed message whose envelope text / parts are edited after signing.
    fn after_signing(
        &mut self,
        slug: &str,
        attack: &str,
        description: &str,
        edit: impl FnOnce(&Keys, String, Vec<Attachment>) -> (String, Vec<Attachment>),
        e: Exp,
        reason: &str,
    ) {
        let n = self.n();
        let (h, soap, atts) = self.signed(n, |h| {
            h.parts.push((cid("evidence"), "application/pdf", false));
        });
        let (soap, atts) = edit(&self.k, soap, atts);
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        self.push(
            slug,
            attack,
            description,
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            e,
            reason,
        );
    }

    /// Signed by `signer` (instead of red's pinned key).
    fn signed_by(
        &mut self,
        slug: &str,
        description: &str,
        signer: impl Fn(&Keys) -> &OwnKey,
        e: Exp,
        reason: &str,
    ) {
        let n = self.n();
        let h = Header::new(n);
        let (soap, atts) = secure(Build {
            header: h.xml(),
            atts: plain_atts(&h),
            signer: signer(&self.k),
            suite: Suite::Edelivery115,
            recipient: Some(&self.k.blue_enc),
        });
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        self.push(
            slug,
            "certificate",
            description,
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            e,
            reason,
        );
    }

    /// An unsigned envelope in a one-part multipart/related (reaches the XML/SOAP parser).
    fn xml_case(&mut self, slug: &str, description: &str, soap: Vec<u8>, e: Exp, reason: &str) {
        let n = self.n();
        let body = mime(n, &[root_part(&soap)]);
        self.push(
            slug,
            "xml",
            description,
            Some(content_type(n)),
            body,
            None,
            e,
            reason,
        );
    }
}

fn valid_and_replay(g: &mut Gen) {
    let n = g.n();
    let (h, soap, atts) = g.signed(n, |_| {});
    let mut parts = vec![root_part(soap.as_bytes())];
    parts.extend(att_parts(&atts));
    let body = mime(n, &parts);
    g.push(
        "valid-compressed",
        "valid",
        "a correct signed, encrypted, compressed ExceptionResponse red -> blue",
        Some(content_type(n)),
        body.clone(),
        Some(h.mid.clone()),
        receipt(),
        "baseline: everything the P-Mode asks for (digest §3.2, §2.9) → signed NRR receipt (§2.5)",
    );
    g.push(
        "replay-identical-bytes",
        "replay",
        "the accepted message of case 001 again, byte for byte",
        Some(content_type(n)),
        body,
        Some(h.mid.clone()),
        Exp {
            delivered: None,
            ..receipt()
        },
        "duplicate detection on MessageId: the receipt again, never delivered twice (digest §2.8)",
    );
    // the same MessageId, signed and encrypted afresh (what a retrying sender does)
    let n2 = g.n();
    let (soap2, atts2) = secure(Build {
        header: h.xml(),
        atts: plain_atts(&h),
        signer: &g.k.red,
        suite: Suite::Edelivery115,
        recipient: Some(&g.k.blue_enc),
    });
    let mut parts = vec![root_part(soap2.as_bytes())];
    parts.extend(att_parts(&atts2));
    g.push(
        "replay-resigned",
        "replay",
        "case 001's MessageId in a freshly signed and encrypted message (a resend)",
        Some(content_type(n2)),
        mime(n2, &parts),
        Some(h.mid.clone()),
        Exp {
            delivered: None,
            ..receipt()
        },
        "a resend reuses the MessageId (digest §2.8): receipt, still delivered once",
    );
    let n = g.n();
    let (h, soap, atts) = g.signed(n, |h| {
        h.parts.push((cid("evidence"), "application/pdf", false));
    });
    let mut parts = vec![root_part(soap.as_bytes())];
    parts.extend(att_parts(&atts).into_iter().rev());
    g.push(
        "valid-two-parts-reordered",
        "valid",
        "two payloads (gzip RegRep + plain PDF), MIME parts in the opposite order of PartInfo",
        Some(content_type(n)),
        mime(n, &parts),
        Some(h.mid),
        receipt(),
        "MIME part order may differ from PartInfo order (digest §2.2)",
    );
}

fn mime_cases(g: &mut Gen) {
    // a good message to break at the MIME level
    let good = |g: &Gen, n: u32| {
        let (h, soap, atts) = g.signed(n, |_| {});
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        (h.mid, parts)
    };
    let r0007 = "MIME usage not as required → EBMS:0007 MimeInconsistency (digest §2.2, §2.6)";

    let n = g.n();
    let (m, parts) = good(g, n);
    g.push(
        "mime-no-boundary",
        "mime",
        "multipart/related without a boundary parameter",
        Some("multipart/related; type=\"application/soap+xml\"".into()),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, parts) = good(g, n);
    let body = mime(n, &parts);
    let cut = body.len() * 3 / 4;
    g.push(
        "mime-truncated",
        "mime",
        "the body cut inside the payload part: no closing delimiter",
        Some(content_type(n)),
        body[..cut].to_vec(),
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, mut parts) = good(g, n);
    let mut dup = att_parts(&[Attachment::new(
        cid("regrep"),
        "application/octet-stream",
        b"second part with the same Content-ID".to_vec(),
    )]);
    parts.append(&mut dup);
    g.push(
        "mime-duplicate-content-id",
        "mime",
        "two payload parts with the same Content-ID",
        Some(content_type(n)),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        "a cid: reference must name exactly one part (digest §2.2) → EBMS:0007",
    );
    let n = g.n();
    let (m, mut parts) = good(g, n);
    parts[1].extra_headers = format!("X-Padding: {}\r\n", "A".repeat(64 * 1024));
    g.push(
        "mime-huge-header-line",
        "mime",
        "a 64 KiB header line in a payload part (limit 16 KiB per header block)",
        Some(content_type(n)),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, mut parts) = good(g, n);
    parts[1].extra_headers = (0..4000).map(|i| format!("X-H{i}: v\r\n")).collect();
    g.push(
        "mime-many-header-lines",
        "mime",
        "4000 header lines in one part",
        Some(content_type(n)),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, parts) = good(g, n);
    g.push(
        "mime-boundary-mismatch",
        "mime",
        "Content-Type names a boundary the body never uses",
        Some(content_type(n).replace("_boundary", "_other")),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, parts) = good(g, n);
    g.push(
        "mime-start-names-missing-part",
        "mime",
        "the start parameter names a Content-ID no part has",
        Some(content_type(n).replace(ROOT_CID, "nowhere@red.hostile.as4gw")),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, parts) = good(g, n);
    g.push(
        "mime-not-multipart",
        "mime",
        "a multipart body sent as text/plain",
        Some("text/plain".into()),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        "an AS4 message with payloads is multipart/related (digest §2.2) → EBMS:0007",
    );
    let n = g.n();
    let (m, parts) = good(g, n);
    g.push(
        "mime-no-content-type",
        "mime",
        "no Content-Type request header at all",
        None,
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, mut parts) = good(g, n);
    for i in 0..40 {
        parts.push(MimePart {
            cid: Some(format!("filler{i}@red.hostile.as4gw")),
            mime_type: "application/octet-stream".into(),
            extra_headers: String::new(),
            data: b"x".to_vec(),
        });
    }
    g.push(
        "mime-too-many-parts",
        "mime",
        "42 MIME parts (the corpus gateway allows 32)",
        Some(content_type(n)),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, parts) = good(g, n);
    let mut body = mime(n, &parts);
    // the payload part's header block never ends
    let b = format!(
        "--{}\r\nContent-Type: application/octet-stream\r\nContent-ID: <x@y>\r\n",
        boundary(n)
    );
    let close = format!("--{}--\r\n", boundary(n));
    body.truncate(body.len() - close.len());
    body.extend_from_slice(b.as_bytes());
    body.extend_from_slice(b"X-Never-Ending: yes\r\n");
    g.push(
        "mime-unterminated-part-headers",
        "mime",
        "the last part's header block has no blank line and the body ends",
        Some(content_type(n)),
        body,
        Some(m),
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    g.push(
        "mime-empty-body",
        "mime",
        "multipart/related Content-Type with an empty body",
        Some(content_type(n)),
        Vec::new(),
        None,
        err("EBMS:0007"),
        r0007,
    );
    let n = g.n();
    let (m, mut parts) = good(g, n);
    parts.remove(1);
    g.push(
        "mime-payload-part-missing",
        "mime",
        "PartInfo and the signature reference cid:regrep, the MIME part is not there",
        Some(content_type(n)),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        "a payload listed in PayloadInfo is missing from the MIME package (digest §2.2) → EBMS:0007",
    );
    let n = g.n();
    let (m, mut parts) = good(g, n);
    parts[0].mime_type = "text/plain".into();
    g.push(
        "mime-root-not-soap",
        "mime",
        "the root part is labelled text/plain",
        Some(content_type(n)),
        mime(n, &parts),
        Some(m),
        err("EBMS:0007"),
        "the SOAP 1.2 root part MUST be application/soap+xml (digest §2.2) → EBMS:0007",
    );
}

fn xml_cases(g: &mut Gen) {
    let r = "the SOAP envelope is not acceptable XML (no DTD, limits; docs/xml.md) → EBMS:0009 InvalidHeader (digest §2.6)";
    let wrap = |prolog: &str, inner: &str| -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{prolog}<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Header>{inner}</env:Header><env:Body/></env:Envelope>"
        )
        .into_bytes()
    };
    g.xml_case(
        "xml-dtd-internal-subset",
        "a DOCTYPE with an internal subset",
        wrap("<!DOCTYPE env:Envelope [<!ELEMENT env:Envelope ANY>]>", ""),
        err_d("EBMS:0009", "(DTD) are refused"),
        r,
    );
    let mut bomb = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        bomb.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    bomb.push_str("]>");
    g.xml_case(
        "xml-billion-laughs",
        "the billion laughs entity bomb",
        wrap(&bomb, "<x>&lol9;</x>"),
        err_d("EBMS:0009", "(DTD) are refused"),
        r,
    );
    g.xml_case(
        "xml-xxe-external-entity",
        "an external entity reading /etc/passwd",
        wrap(
            "<!DOCTYPE env:Envelope [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>",
            "<x>&xxe;</x>",
        ),
        err_d("EBMS:0009", "(DTD) are refused"),
        r,
    );
    g.xml_case(
        "xml-xxe-parameter-entity",
        "an external parameter entity (out-of-band XXE)",
        wrap(
            "<!DOCTYPE env:Envelope [<!ENTITY % ext SYSTEM \"http://127.0.0.1:9/evil.dtd\"> %ext;]>",
            "",
        ),
        err_d("EBMS:0009", "(DTD) are refused"),
        r,
    );
    g.xml_case(
        "xml-undeclared-entity",
        "an entity reference without any DTD",
        wrap("", "<x>&undeclared;</x>"),
        err_d("EBMS:0009", "entity reference &undeclared; refused"),
        r,
    );
    let deep = "<d>".repeat(10_000) + &"</d>".repeat(10_000);
    g.xml_case(
        "xml-deep-nesting",
        "10,000 nested elements in the header (limit 64)",
        wrap("", &deep),
        err_d("EBMS:0009", "nesting deeper than the limit"),
        r,
    );
    let deep = "<d>".repeat(70) + &"</d>".repeat(70);
    g.xml_case(
        "xml-nesting-just-over-limit",
        "70 nested elements (corpus gateway: max-xml-depth 64)",
        wrap("", &deep),
        err_d("EBMS:0009", "nesting deeper than the limit of 64"),
        r,
    );
    let huge = format!("<x a=\"{}\"/>", "A".repeat(256 * 1024));
    g.xml_case(
        "xml-huge-attribute",
        "a 256 KiB attribute value in a header block (the root part is bounded, the value is parsed and dropped)",
        wrap("", &huge),
        err_d("EBMS:0009", "eb:Messaging"),
        "a long attribute is legal XML inside the bounded root part; the envelope still lacks eb:Messaging (digest §2.3) → EBMS:0009",
    );
    let many: String = (0..5_000).map(|i| format!(" a{i}=\"v\"")).collect();
    g.xml_case(
        "xml-many-attributes",
        "5,000 attributes on one element (limit 256)",
        wrap("", &format!("<x{many}/>")),
        err_d("EBMS:0009", "attributes on one element"),
        r,
    );
    let nsbomb: String = (0..5_000)
        .map(|i| format!(" xmlns:p{i}=\"urn:p{i}\""))
        .collect();
    g.xml_case(
        "xml-namespace-declarations",
        "5,000 namespace declarations on one element (limit 256 attributes)",
        wrap("", &format!("<x{nsbomb}/>")),
        err_d("EBMS:0009", "attributes on one element"),
        r,
    );
    let nodes = "<n/>".repeat(20_000);
    g.xml_case(
        "xml-too-many-nodes",
        "20,000 sibling elements (corpus gateway: max-xml-nodes 10,000)",
        wrap("", &nodes),
        err_d("EBMS:0009", "nodes in the document"),
        r,
    );
    let mut bad = wrap("", "<x>caf</x>");
    let at = bad.windows(4).position(|w| w == b"caf<").expect("caf") + 3;
    bad.splice(at..at, [0xC3u8, 0x28, 0xFF, 0xFE]);
    g.xml_case(
        "xml-invalid-utf8",
        "invalid UTF-8 bytes (C3 28 FF FE) in header text",
        bad,
        err("EBMS:0009"),
        r,
    );
    g.xml_case(
        "xml-not-well-formed",
        "an unclosed element",
        wrap("", "<x><y></x>"),
        err_d("EBMS:0009", "not well-formed"),
        r,
    );
    g.xml_case(
        "xml-empty-root-part",
        "an empty SOAP part",
        Vec::new(),
        err("EBMS:0009"),
        r,
    );
    g.xml_case(
        "xml-not-an-envelope",
        "a well-formed document that is not a SOAP envelope",
        b"<?xml version=\"1.0\"?><hello xmlns=\"urn:x\"/>".to_vec(),
        err("EBMS:0009"),
        r,
    );
    g.xml_case(
        "xml-no-messaging",
        "a SOAP 1.2 envelope without eb:Messaging",
        bare_envelope("", "").into_bytes(),
        err("EBMS:0009"),
        "no eb:Messaging header block (digest §2.3) → EBMS:0009",
    );
}

/// The receiving policy for eb:Messaging without mustUnderstand=true.
const LENIENT_MU: &str = "senders MUST set mustUnderstand=true on eb:Messaging (digest §2.3, §2.7), but SOAP 1.2 lets a receiver process a block marked false, and as4gw deliberately receives it (src/ebms/soap.rs MessagingBlock::must_understand: reported, not refused) for partners that omit it; everything else in the message is valid → receipt";

fn ebms_cases(g: &mut Gen) {
    let r0009 = "the ebMS header breaks the schema / packaging rules (digest §2.3) → EBMS:0009 InvalidHeader";
    g.header_case(
        "ebms-two-user-messages",
        "eb:Messaging with two eb:UserMessage",
        |h| h.extra_user_message = true,
        err_d("EBMS:0003", "more than one eb:UserMessage"),
        "at most one UserMessage (digest §2.3, [EBMS3] §5.2.4). The header schema allows several, the specification text does not: inconsistent with the spec → EBMS:0003 ValueInconsistent",
    );
    for (slug, el) in [
        ("ebms-missing-message-id", "MessageId"),
        ("ebms-missing-timestamp", "Timestamp"),
        ("ebms-missing-party-info", "PartyInfo"),
        ("ebms-missing-service", "Service"),
        ("ebms-missing-action", "Action"),
    ] {
        g.header_case(
            slug,
            &format!("the required eb:{el} is missing"),
            |h| h.skip.push(el),
            err("EBMS:0009"),
            r0009,
        );
    }
    g.header_case(
        "ebms-bad-message-id",
        "MessageId without '@' (not RFC 2822 msg-id syntax)",
        |h| h.message_id_xml = Some("<eb:MessageId>not-an-rfc2822-id</eb:MessageId>".into()),
        err("EBMS:0009"),
        "MessageId must have RFC 2822 msg-id syntax (digest §2.3) → EBMS:0009",
    );
    g.header_case(
        "ebms-message-id-in-angle-brackets",
        "MessageId written with MIME angle brackets",
        |h| h.message_id_xml = Some(format!("<eb:MessageId>&lt;{}&gt;</eb:MessageId>", mid(777))),
        err("EBMS:0009"),
        "angle brackets never appear in eb:MessageId (digest §2.2, §2.3) → EBMS:0009",
    );
    g.header_case(
        "ebms-bad-timestamp",
        "eb:Timestamp that is not an xs:dateTime",
        |h| h.timestamp = "yesterday at noon".into(),
        err("EBMS:0009"),
        r0009,
    );
    g.header_case(
        "ebms-must-understand-false",
        "eb:Messaging with env:mustUnderstand=\"false\"",
        |h| h.must_understand = Some("false"),
        receipt(),
        LENIENT_MU,
    );
    g.header_case(
        "ebms-must-understand-missing",
        "eb:Messaging without env:mustUnderstand",
        |h| h.must_understand = None,
        receipt(),
        LENIENT_MU,
    );
    g.header_case(
        "ebms-unknown-action",
        "an Action no P-Mode knows",
        |h| h.action = "HostileAction".into(),
        err("EBMS:0001"),
        "no P-Mode for the Action (digest §2.3 selection, §2.6) → EBMS:0001 ValueNotRecognized",
    );
    g.header_case(
        "ebms-unknown-service",
        "a Service no P-Mode knows",
        |h| h.service = "HostileService".into(),
        err("EBMS:0001"),
        "no P-Mode for the Service → EBMS:0001 ValueNotRecognized",
    );
    g.header_case(
        "ebms-wrong-role",
        "To/Role differs from the P-Mode's",
        |h| h.to_role = "http://example.org/hostile-role".into(),
        err("EBMS:0010"),
        "header incompatible with the P-Mode (digest §2.6) → EBMS:0010",
    );
    g.header_case(
        "ebms-missing-final-recipient",
        "four-corner property finalRecipient missing",
        |h| h.properties.retain(|(n, _)| *n != "finalRecipient"),
        err("EBMS:0010"),
        "four-corner properties are required by the P-Mode (digest §3.5) → EBMS:0010",
    );
    // an extra header block marked mustUnderstand: a SOAP MustUnderstand fault
    let n = g.n();
    let (h, soap, atts) = g.signed(n, |_| {});
    let soap = soap.replacen(
        "</env:Header>",
        "<x:Unknown xmlns:x=\"urn:hostile\" env:mustUnderstand=\"true\"/></env:Header>",
        1,
    );
    let mut parts = vec![root_part(soap.as_bytes())];
    parts.extend(att_parts(&atts));
    g.push(
        "ebms-unknown-must-understand-header",
        "ebms",
        "an unknown header block with mustUnderstand=true",
        Some(content_type(n)),
        mime(n, &parts),
        Some(h.mid),
        Exp {
            status: 500,
            expect: "soap-fault",
            detail: None,
            delivered: Some(0),
        },
        "SOAP 1.2: a header block marked mustUnderstand that is not understood → env:MustUnderstand fault, HTTP 500 per the SOAP HTTP binding (digest §2.7)",
    );
    // a signal pushed instead of a UserMessage
    let n = g.n();
    let sig = format!(
        "<eb:Messaging xmlns:eb=\"{EB}\" env:mustUnderstand=\"true\"><eb:SignalMessage><eb:MessageInfo><eb:Timestamp>2026-11-27T10:00:00Z</eb:Timestamp><eb:MessageId>{}</eb:MessageId><eb:RefToMessageId>{}</eb:RefToMessageId></eb:MessageInfo><eb:Receipt><x:Anything xmlns:x=\"urn:hostile\"/></eb:Receipt></eb:SignalMessage></eb:Messaging>",
        mid(n),
        mid(1)
    );
    let body = mime(n, &[root_part(bare_envelope(&sig, "").as_bytes())]);
    g.push(
        "ebms-pushed-receipt-signal",
        "ebms",
        "an unsolicited Receipt signal pushed to the endpoint",
        Some(content_type(n)),
        body,
        Some(mid(n)),
        err("EBMS:0008"),
        "eDelivery signals are only synchronous responses (digest §2.5, §3.1) → EBMS:0008",
    );
    // Body with content, signed
    let n = g.n();
    let (h, soap, atts) = g.signed(n, |_| {});
    let soap3 = body_with_content(&soap, &g.k.red);
    let mut parts = vec![root_part(soap3.as_bytes())];
    parts.extend(att_parts(&atts));
    g.push(
        "ebms-body-not-empty",
        "ebms",
        "a payload inside the SOAP Body (digests and signature valid)",
        Some(content_type(n)),
        mime(n, &parts),
        Some(h.mid),
        err("EBMS:0003"),
        "eDelivery: the SOAP Body is always empty, payloads travel in MIME parts (digest §2.2) → EBMS:0003",
    );
}

/// Puts content into the signed (empty) Body, updates the Body reference's digest and re-signs.
fn body_with_content(soap: &str, signer: &OwnKey) -> String {
    let b_start = soap.find("<env:Body").expect("body");
    let b_end = b_start + soap[b_start..].find('>').expect(">") + 1;
    let tag = &soap[b_start..b_end];
    let id = tag
        .split("wsu:Id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("body id")
        .to_string();
    let open = tag.trim_end_matches("/>").trim_end_matches('>');
    let new_body =
        format!("{open}><p:Payload xmlns:p=\"urn:hostile\">in the body</p:Payload></env:Body>");
    let rest = if tag.ends_with("/>") {
        &soap[b_end..]
    } else {
        let close = soap[b_end..].find("</env:Body>").expect("close") + "</env:Body>".len();
        &soap[b_end + close..]
    };
    let s = format!("{}{new_body}{rest}", &soap[..b_start]);
    // new digest of the Body
    let doc = Document::parse(s.as_bytes()).expect("xml");
    let body = doc
        .elements()
        .find(|n| n.is("http://www.w3.org/2003/05/soap-envelope", "Body"))
        .expect("Body");
    let c = canonical_bytes(&doc, body.id(), &C14nOptions::default());
    let digest = b64(&AwsLc.sha256(&c));
    let (a, b) = span(
        &s,
        &format!("<ds:Reference URI=\"#{id}\""),
        "</ds:Reference>",
    );
    let r = &s[a..b];
    let (da, db) = span(r, "<ds:DigestValue>", "</ds:DigestValue>");
    let new_ref = format!(
        "{}<ds:DigestValue>{digest}</ds:DigestValue>{}",
        &r[..da],
        &r[db..]
    );
    let s = format!("{}{new_ref}{}", &s[..a], &s[b..]);
    resign(&s, signer)
}

fn wrapping_cases(g: &mut Gen) {
    let r = "signature wrapping: the processed element is not the signed one (docs/security.md) → EBMS:0101 FailedAuthentication (digest §2.6)";
    let msg_span = |s: &str| span(s, "<eb:Messaging", "</eb:Messaging>");
    g.after_signing(
        "wrap-moved-messaging-forged-header",
        "wrapping",
        "signed eb:Messaging moved into a wrapper, a forged one (other id) in its place",
        |_, s, a| {
            let (x, y) = msg_span(&s);
            let original = &s[x..y];
            let forged = original
                .replace("hostile-conversation", "EVIL")
                .replace("_messaging-1", "_forged");
            (
                format!(
                    "{}{forged}<w:Wrapper xmlns:w=\"urn:evil\">{original}</w:Wrapper>{}",
                    &s[..x],
                    &s[y..]
                ),
                a,
            )
        },
        err("EBMS:0101"),
        r,
    );
    g.after_signing(
        "wrap-duplicated-messaging-block",
        "wrapping",
        "a second eb:Messaging header block (other id)",
        |_, s, a| {
            let (x, y) = msg_span(&s);
            let copy = s[x..y].replace("_messaging-1", "_copy");
            (format!("{}{copy}{}", &s[..y], &s[y..]), a)
        },
        err_d("EBMS:0009", "2 eb:Messaging header blocks"),
        "exactly one eb:Messaging header block (digest §2.3): refused by the envelope parser before the signature is looked at → EBMS:0009 InvalidHeader (the security room alone would say EBMS:0101)",
    );
    g.after_signing(
        "wrap-duplicated-wsu-id",
        "wrapping",
        "a forged eb:Messaging with the same wsu:Id, the signed one in a wrapper",
        |_, s, a| {
            let (x, y) = msg_span(&s);
            let original = &s[x..y];
            let forged = original.replace("hostile-conversation", "EVIL");
            (
                format!(
                    "{}{forged}<w:Wrapper xmlns:w=\"urn:evil\">{original}</w:Wrapper>{}",
                    &s[..x],
                    &s[y..]
                ),
                a,
            )
        },
        err("EBMS:0101"),
        r,
    );
    g.after_signing(
        "wrap-signed-copy-inside-security",
        "wrapping",
        "the processed eb:Messaging loses its id; the signed copy hides in wsse:Security",
        |_, s, a| {
            let (x, y) = msg_span(&s);
            let original = s[x..y].to_string();
            let processed = original
                .replace("hostile-conversation", "EVIL")
                .replace(" wsu:Id=\"_messaging-1\"", "");
            let sec_end = s.find("</wsse:Security>").expect("sec");
            (
                format!(
                    "{}{processed}{}<w:Wrapper xmlns:w=\"urn:evil\">{original}</w:Wrapper>{}",
                    &s[..x],
                    &s[y..sec_end],
                    &s[sec_end..]
                ),
                a,
            )
        },
        err("EBMS:0101"),
        r,
    );
    g.after_signing(
        "wrap-body-id-on-decoy",
        "wrapping",
        "the Body's id moved to a decoy header element, content injected into the Body",
        |_, s, a| {
            let start = s.find("<env:Body wsu:Id=\"").expect("body") + "<env:Body wsu:Id=\"".len();
            let end = start + s[start..].find('"').expect("quote");
            let body_id = s[start..end].to_string();
            let s2 = s.replace(
                &format!("<env:Body wsu:Id=\"{body_id}\"/>"),
                "<env:Body><p:Injected xmlns:p=\"urn:evil\"/></env:Body>",
            );
            let s2 = s2.replacen(
                "</env:Header>",
                &format!("<p:Decoy xmlns:p=\"urn:evil\" wsu:Id=\"{body_id}\"/></env:Header>"),
                1,
            );
            (s2, a)
        },
        err("EBMS:0101"),
        r,
    );
    g.after_signing(
        "wrap-reference-twice",
        "wrapping",
        "SignedInfo references #_messaging-1 twice (re-signed)",
        |k, s, a| {
            let (x, y) = span(&s, "<ds:Reference URI=\"#_messaging-1\"", "</ds:Reference>");
            let dup = s[x..y].to_string();
            (resign(&format!("{}{dup}{}", &s[..y], &s[y..]), &k.red), a)
        },
        err("EBMS:0101"),
        r,
    );
    g.after_signing(
        "wrap-xpath-transform",
        "wrapping",
        "an XPath transform on the Body reference (re-signed)",
        |k, s, a| {
            let (x, _) = span(&s, "<ds:Reference URI=\"#_body", "</ds:Reference>");
            let exc = "http://www.w3.org/2001/10/xml-exc-c14n#";
            let t = x + s[x..].find(exc).expect("transform");
            let s2 = format!(
                "{}http://www.w3.org/TR/1999/REC-xpath-19991116{}",
                &s[..t],
                &s[t + exc.len()..]
            );
            (resign(&s2, &k.red), a)
        },
        err("EBMS:0101"),
        "an XPath transform can select other content than the referenced element (docs/security.md: unknown algorithm) → EBMS:0101",
    );
    g.after_signing(
        "wrap-swapped-content-ids",
        "wrapping",
        "the two payload parts swap Content-IDs",
        |_, s, mut a| {
            let (x, y) = (a[0].content_id.clone(), a[1].content_id.clone());
            a[0].content_id = y;
            a[1].content_id = x;
            (s, a)
        },
        err("EBMS:0101"),
        "each cid: reference's digest must match its part (digest §3.2) → EBMS:0101",
    );
    g.after_signing(
        "wrap-reference-outside-payload-info",
        "wrapping",
        "an extra signed reference to a part that PayloadInfo does not list (re-signed)",
        |k, s, mut a| {
            let regrep = format!("<ds:Reference URI=\"cid:{}\"", cid("regrep"));
            let (x, y) = span(&s, &regrep, "</ds:Reference>");
            let extra = s[x..y].replace(&format!("cid:{}", cid("regrep")), "cid:extra@evil");
            a.push(Attachment::new(
                "extra@evil",
                "application/octet-stream",
                b"x".to_vec(),
            ));
            (resign(&format!("{}{extra}{}", &s[..y], &s[y..]), &k.red), a)
        },
        err("EBMS:0101"),
        r,
    );
    g.after_signing(
        "wrap-second-signature",
        "wrapping",
        "a second ds:Signature in the Security header",
        |_, s, a| {
            let (x, y) = span(&s, "<ds:Signature", "</ds:Signature>");
            (format!("{}{}{}", &s[..y], &s[x..y], &s[y..]), a)
        },
        err("EBMS:0101"),
        r,
    );
    g.after_signing(
        "wrap-second-security-header",
        "wrapping",
        "a second wsse:Security header block",
        |_, s, a| {
            let (x, y) = span(&s, "<wsse:Security", "</wsse:Security>");
            (format!("{}{}{}", &s[..y], &s[x..y], &s[y..]), a)
        },
        err("EBMS:0101"),
        r,
    );
    g.after_signing(
        "wrap-messaging-in-body",
        "wrapping",
        "the signed eb:Messaging moved into the Body, a forged one (no id) in the Header",
        |_, s, a| {
            let (x, y) = msg_span(&s);
            let original = s[x..y].to_string();
            let forged = original
                .replace("hostile-conversation", "EVIL")
                .replace(" wsu:Id=\"_messaging-1\"", "");
            let s2 = format!("{}{forged}{}", &s[..x], &s[y..]);
            let bs = s2.find("<env:Body").expect("body");
            let be = bs + s2[bs..].find("/>").expect("empty body");
            let s3 = format!("{}></env:Body>{}", &s2[..be], &s2[be + 2..]);
            let s3 = s3.replacen("></env:Body>", &format!(">{original}</env:Body>"), 1);
            (s3, a)
        },
        err("EBMS:0101"),
        r,
    );
}

fn security_cases(g: &mut Gen) {
    g.after_signing(
        "sec-tampered-header",
        "security",
        "ConversationId changed after signing",
        |_, s, a| {
            (
                s.replacen("hostile-conversation", "tampered-conversation", 1),
                a,
            )
        },
        err_d("EBMS:0101", "_messaging-1"),
        "the eb:Messaging digest no longer matches (digest §3.2) → EBMS:0101",
    );
    g.after_signing(
        "sec-tampered-digest-value",
        "security",
        "a DigestValue in SignedInfo altered (signature not renewed)",
        |_, s, a| {
            let (x, y) = span(&s, "<ds:DigestValue>", "</ds:DigestValue>");
            let inner = &s[x + "<ds:DigestValue>".len()..y - "</ds:DigestValue>".len()];
            let flipped: String = inner
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i == 0 {
                        if c == 'A' {
                            'B'
                        } else {
                            'A'
                        }
                    } else {
                        c
                    }
                })
                .collect();
            (
                format!(
                    "{}<ds:DigestValue>{flipped}</ds:DigestValue>{}",
                    &s[..x],
                    &s[y..]
                ),
                a,
            )
        },
        err("EBMS:0101"),
        "SignedInfo changed: the signature value does not verify → EBMS:0101",
    );
    g.after_signing(
        "sec-tampered-digest-resigned",
        "security",
        "the payload's DigestValue replaced and SignedInfo re-signed: digest mismatch",
        |k, s, a| {
            let regrep = format!("<ds:Reference URI=\"cid:{}\"", cid("regrep"));
            let (x, y) = span(&s, &regrep, "</ds:Reference>");
            let r = &s[x..y];
            let (da, db) = span(r, "<ds:DigestValue>", "</ds:DigestValue>");
            let fake = b64(&[0u8; 32]);
            let nr = format!(
                "{}<ds:DigestValue>{fake}</ds:DigestValue>{}",
                &r[..da],
                &r[db..]
            );
            (resign(&format!("{}{nr}{}", &s[..x], &s[y..]), &k.red), a)
        },
        err_d("EBMS:0101", "regrep"),
        "the part's digest does not match its reference → EBMS:0101 (digest §3.2)",
    );
    g.after_signing(
        "sec-tampered-signature-value",
        "security",
        "one byte of the SignatureValue changed",
        |_, s, a| {
            let (x, y) = span(&s, "<ds:SignatureValue>", "</ds:SignatureValue>");
            let v = &s[x + "<ds:SignatureValue>".len()..y - "</ds:SignatureValue>".len()];
            let mut raw = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .expect("b64");
            raw[10] ^= 0x01;
            (
                format!(
                    "{}<ds:SignatureValue>{}</ds:SignatureValue>{}",
                    &s[..x],
                    b64(&raw),
                    &s[y..]
                ),
                a,
            )
        },
        err("EBMS:0101"),
        "signature could not be validated → EBMS:0101 (digest §2.6)",
    );
    g.after_signing(
        "sec-tampered-ciphertext",
        "security",
        "one byte of the encrypted payload flipped",
        |_, s, mut a| {
            let i = a[0].data.len() / 2;
            a[0].data[i] ^= 0x01;
            (s, a)
        },
        err("EBMS:0102"),
        "the AES-GCM tag does not verify → EBMS:0102 FailedDecryption (digest §2.6)",
    );
    g.after_signing(
        "sec-signature-removed",
        "security",
        "the ds:Signature removed (message unsigned)",
        |_, s, a| {
            let (x, y) = span(&s, "<ds:Signature", "</ds:Signature>");
            (format!("{}{}", &s[..x], &s[y..]), a)
        },
        err("EBMS:0103"),
        "signing is mandatory in eDelivery (digest §3.2) → EBMS:0103 PolicyNoncompliance",
    );
    let n = g.n();
    {
        let mut h = Header::new(n);
        h.parts.push((cid("evidence"), "application/pdf", false));
        let mut atts = plain_atts(&h);
        let extra = atts.pop().expect("pdf");
        let (soap, mut atts) = secure(Build {
            header: h.xml(),
            atts,
            signer: &g.k.red,
            suite: Suite::Edelivery115,
            recipient: Some(&g.k.blue_enc),
        });
        atts.push(extra);
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        g.push(
            "sec-unsigned-part",
            "security",
            "PayloadInfo lists two parts; only the first is signed and encrypted, the PDF travels in clear",
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            err_d("EBMS:0103", "not signed"),
            "every payload must be signed and encrypted (digest §3.2) → EBMS:0103",
        );
    }
    let n = g.n();
    {
        let h = Header::new(n);
        let (soap, atts) = secure(Build {
            header: h.xml(),
            atts: plain_atts(&h),
            signer: &g.k.red,
            suite: Suite::Edelivery115,
            recipient: None,
        });
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        g.push(
            "sec-not-encrypted",
            "security",
            "signed but not encrypted",
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            err("EBMS:0103"),
            "encryption is mandatory in eDelivery 1.15 (digest §3.2) → EBMS:0103",
        );
    }
    g.after_signing(
        "sec-downgrade-rsa-sha1",
        "security",
        "SignatureMethod rsa-sha1, a valid RSA-SHA1 signature",
        |k, s, a| {
            let s2 = s.replacen(
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
                1,
            );
            (resign_sha1(&s2, &k.red), a)
        },
        err_d("EBMS:0101", "rsa-sha1"),
        "1.15 fixes RSA-SHA256 (digest §3.2, §5). as4gw does not implement RSA-SHA1 at all, so the signature cannot be validated → EBMS:0101 FailedAuthentication (docs/security.md: unknown SignatureMethod → 0101)",
    );
    g.after_signing(
        "sec-downgrade-sha1-digest",
        "security",
        "DigestMethod SHA-1 with the real SHA-1 digest of eb:Messaging (re-signed)",
        |k, s, a| {
            let (x, y) = span(&s, "<ds:Reference URI=\"#_messaging-1\"", "</ds:Reference>");
            let r = &s[x..y];
            let doc = Document::parse(s.as_bytes()).expect("xml");
            let m = doc
                .elements()
                .find(|n| n.is(EB, "Messaging"))
                .expect("Messaging");
            let c = canonical_bytes(&doc, m.id(), &C14nOptions::default());
            use sha1::Digest;
            let d = sha1::Sha1::digest(&c);
            let r2 = r.replace(
                "http://www.w3.org/2001/04/xmlenc#sha256",
                "http://www.w3.org/2000/09/xmldsig#sha1",
            );
            let (da, db) = span(&r2, "<ds:DigestValue>", "</ds:DigestValue>");
            let r3 = format!("{}<ds:DigestValue>{}</ds:DigestValue>{}", &r2[..da], b64(&d), &r2[db..]);
            (resign(&format!("{}{r3}{}", &s[..x], &s[y..]), &k.red), a)
        },
        err_d("EBMS:0101", "xmldsig#sha1"),
        "1.15 fixes SHA-256 digests (digest §3.2). as4gw does not implement SHA-1 references, so the reference cannot be validated → EBMS:0101 (docs/security.md: unknown algorithm → 0101)",
    );
    g.after_signing(
        "sec-downgrade-aes-cbc",
        "security",
        "EncryptedData claims aes128-cbc",
        |_, s, a| {
            (
                s.replace(
                    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                ),
                a,
            )
        },
        err("EBMS:0103"),
        "1.15 fixes AES-128-GCM (digest §3.2): CBC (padding-oracle prone) is a policy violation → EBMS:0103",
    );
    g.after_signing(
        "sec-downgrade-rsa-1_5",
        "security",
        "EncryptedKey claims RSA PKCS#1 v1.5 key transport",
        |_, s, a| {
            (
                s.replace(
                    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
                    "http://www.w3.org/2001/04/xmlenc#rsa-1_5",
                ),
                a,
            )
        },
        err("EBMS:0103"),
        "1.15 fixes RSA-OAEP (digest §3.2): PKCS#1 v1.5 key transport is a policy violation → EBMS:0103",
    );
    let n = g.n();
    {
        let h = Header::new(n);
        let (soap, atts) = secure(Build {
            header: h.xml(),
            atts: plain_atts(&h),
            signer: &g.k.red,
            suite: Suite::Edelivery115,
            recipient: Some(&g.k.red_enc),
        });
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        g.push(
            "sec-encrypted-for-someone-else",
            "security",
            "the content key is encrypted for red, not for blue",
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            err("EBMS:0102"),
            "the receiver holds no key for the EncryptedKey → EBMS:0102 FailedDecryption",
        );
    }
    let n = g.n();
    {
        let h = Header::new(n);
        let x25519 = load_certificates(&read("certs/demo/blue/x25519.cert.pem"))
            .expect("x25519")
            .remove(0);
        let (soap, atts) = secure(Build {
            header: h.xml(),
            atts: plain_atts(&h),
            signer: &g.k.red_ed,
            suite: Suite::Edelivery20,
            recipient: Some(&x25519),
        });
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        g.push(
            "sec-wrong-suite",
            "security",
            "an eDelivery 2.0 (Ed25519/X25519) message on a 1.15 P-Mode",
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            err("EBMS:0103"),
            "the P-Mode requires the 1.15 suite (digest §4.4) → EBMS:0103",
        );
    }
}

fn certificate_cases(g: &mut Gen) {
    g.signed_by(
        "cert-expired",
        "signed with a certificate under a trusted CA that expired in 2021",
        |k| &k.expired,
        err_d("EBMS:0101", "] expired at 2021"),
        "the signer's certificate is not valid now (digest §3.2 trust) → EBMS:0101",
    );
    g.signed_by(
        "cert-not-yet-valid",
        "signed with a certificate valid from 2098",
        |k| &k.not_yet_valid,
        err_d("EBMS:0101", "is not valid before"),
        "the signer's certificate is not valid yet → EBMS:0101",
    );
    g.signed_by(
        "cert-revoked",
        "signed with a certificate the trusted CA revoked (CRL in the corpus config)",
        |k| &k.revoked,
        err_d("EBMS:0101", "] is revoked"),
        "the signer's certificate is on the configured CRL → EBMS:0101",
    );
    g.signed_by(
        "cert-wrong-key-usage",
        "signed with a certificate whose keyUsage is keyEncipherment only",
        |k| &k.wrong_ku,
        err_d("EBMS:0101", "lacks key usage digitalSignature"),
        "a signing certificate needs keyUsage digitalSignature (digest §3.2) → EBMS:0101",
    );
    g.signed_by(
        "cert-untrusted-ca",
        "signed with a certificate from a CA nobody trusts (same CA name as the trusted one)",
        |k| &k.untrusted,
        err_d("EBMS:0101", "is not trusted"),
        "no path to a trust anchor → EBMS:0101",
    );
    g.signed_by(
        "cert-self-signed",
        "signed with a self-signed certificate carrying red's subject",
        |k| &k.self_signed,
        err_d("EBMS:0101", "is not trusted"),
        "no path to a trust anchor → EBMS:0101",
    );
    g.signed_by(
        "cert-other-party-trusted-ca",
        "signed with a valid certificate of the trusted CA that is not red's (P-Mode pins red)",
        |k| &k.other_party,
        err_d("EBMS:0101", "not the signing certificate"),
        "the signer must be the sending party's certificate of the matched P-Mode → EBMS:0101",
    );
    g.signed_by(
        "cert-impersonation-blue",
        "signed with blue's own demo certificate, claiming to be red",
        |k| &k.blue_sign,
        err_d("EBMS:0101", "not the signing certificate"),
        "a trusted certificate of another party does not authenticate red → EBMS:0101",
    );
}

fn compression_cases(g: &mut Gen) {
    let with_first_part =
        |g: &mut Gen, slug: &str, desc: &str, data: Vec<u8>, e: Exp, reason: &str| {
            let n = g.n();
            let h = Header::new(n);
            let atts = vec![Attachment::new(cid("regrep"), "application/gzip", data)];
            let (soap, atts) = secure(Build {
                header: h.xml(),
                atts,
                signer: &g.k.red,
                suite: Suite::Edelivery115,
                recipient: Some(&g.k.blue_enc),
            });
            let mut parts = vec![root_part(soap.as_bytes())];
            parts.extend(att_parts(&atts));
            g.push(
                slug,
                "compression",
                desc,
                Some(content_type(n)),
                mime(n, &parts),
                Some(h.mid),
                e,
                reason,
            );
        };
    // 128 MiB of zeros, gzip'd (~128 KB); decompression is bounded at 1 MiB in the corpus
    // gateway, and an in-memory inflate would break the RSS bound of the test
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..128 {
        enc.write_all(&zeros).expect("gzip");
    }
    let bomb = enc.finish().expect("gzip");
    with_first_part(
        g,
        "gzip-bomb-128mib",
        "a signed, encrypted gzip part inflating to 128 MiB of zeros",
        bomb,
        err("EBMS:0303"),
        "decompression beyond the configured bound (zip-bomb guard) → EBMS:0303 DecompressionFailure (digest §2.9)",
    );
    with_first_part(
        g,
        "gzip-corrupt",
        "CompressionType gzip, the part is not gzip",
        b"this is not gzip data at all".to_vec(),
        err("EBMS:0303"),
        "→ EBMS:0303 DecompressionFailure (digest §2.9)",
    );
    let mut t = gzip(&regrep());
    t.truncate(t.len() / 2);
    with_first_part(
        g,
        "gzip-truncated",
        "a gzip stream cut in half",
        t,
        err("EBMS:0303"),
        "→ EBMS:0303 DecompressionFailure (digest §2.9)",
    );
    let mut crc = gzip(&regrep());
    let l = crc.len();
    crc[l - 8] ^= 0xff;
    with_first_part(
        g,
        "gzip-bad-crc",
        "a gzip stream whose CRC32 trailer is wrong",
        crc,
        err("EBMS:0303"),
        "→ EBMS:0303 DecompressionFailure (digest §2.9)",
    );
    // 1.5 MiB of XML (ratio ~10:1): an honest payload, but above max-decompressed-size
    let mut big = b"<?xml version=\"1.0\"?><query:QueryResponse xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\">".to_vec();
    // words picked by an LCG from 16: ~4 bits per word, a text-like ratio of ~10:1
    let words = [
        "evidence", "request", "person", "diploma", "birth", "address", "name", "date", "level",
        "provider", "country", "issuer", "record", "status", "member", "state",
    ];
    let mut x: u32 = 12345;
    big.extend_from_slice(b"<text>");
    while big.len() < 3 << 19 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.extend_from_slice(words[(x >> 16) as usize % 16].as_bytes());
        big.push(b' ');
    }
    big.extend_from_slice(b"</text>");
    big.extend_from_slice(b"</query:QueryResponse>");
    with_first_part(
        g,
        "decompressed-over-limit",
        "an ordinary payload whose decompressed size (1.5 MiB) is above max-decompressed-size (1 MiB)",
        gzip(&big),
        err_d("EBMS:0303", "exceeds 1048576"),
        "a payload above the decompressed-size bound is refused while inflating → EBMS:0303",
    );
}

fn size_cases(g: &mut Gen) {
    // one part above max-part-size (256 KiB): 300 KiB of PDF-like bytes, not compressed
    let n = g.n();
    {
        let mut h = Header::new(n);
        h.parts = vec![
            (cid("regrep"), "application/x-ebrs+xml", true),
            (cid("evidence"), "application/pdf", false),
        ];
        let mut atts = plain_atts(&h);
        atts[1].data = pdfish(300 * 1024);
        let (soap, atts) = secure(Build {
            header: h.xml(),
            atts,
            signer: &g.k.red,
            suite: Suite::Edelivery115,
            recipient: Some(&g.k.blue_enc),
        });
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        g.push(
            "oversized-part",
            "size",
            "a 300 KiB payload part (corpus gateway: max-part-size 256 KiB)",
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            err_d("EBMS:0007", "exceeds 262144"),
            "a MIME part over the configured limit is refused while streaming → EBMS:0007",
        );
    }
    // the whole message above max-message-size (512 KiB): three 200 KiB parts, each under the
    // part limit
    let n = g.n();
    {
        let mut h = Header::new(n);
        h.parts = vec![(cid("regrep"), "application/x-ebrs+xml", true)];
        for i in 0..3 {
            h.parts.push((
                format!("pdf{i}@red.hostile.as4gw"),
                "application/pdf",
                false,
            ));
        }
        let mut atts = plain_atts(&h);
        for a in atts.iter_mut().skip(1) {
            a.data = pdfish(200 * 1024);
        }
        let (soap, atts) = secure(Build {
            header: h.xml(),
            atts,
            signer: &g.k.red,
            suite: Suite::Edelivery115,
            recipient: Some(&g.k.blue_enc),
        });
        let mut parts = vec![root_part(soap.as_bytes())];
        parts.extend(att_parts(&atts));
        g.push(
            "oversized-message",
            "size",
            "a 600 KiB message of 200 KiB parts (corpus gateway: max-message-size 512 KiB)",
            Some(content_type(n)),
            mime(n, &parts),
            Some(h.mid),
            Exp {
                status: 413,
                expect: "none",
                detail: Some("larger than 524288"),
                delivered: Some(0),
            },
            "the declared Content-Length is above max-message-size: the transport answers 413 Payload Too Large before reading the body, so there is no ebMS signal (digest §2.6 has no size code; the MIME room would say EBMS:0007 for a chunked body)",
        );
    }
}

/// Writes the corpus (deletes the previous `cases/` first).
#[test]
#[ignore = "generator: run once, commit the output (conformance/hostile/README.md)"]
fn generate_corpus() {
    let mut g = Gen {
        k: keys(),
        cases: Vec::new(),
    };
    valid_and_replay(&mut g);
    mime_cases(&mut g);
    xml_cases(&mut g);
    ebms_cases(&mut g);
    wrapping_cases(&mut g);
    security_cases(&mut g);
    certificate_cases(&mut g);
    compression_cases(&mut g);
    size_cases(&mut g);
    let dir = corpus_dir().join("cases");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cases dir");
    let mut index = String::from("| case | attack | expect | what |\n|---|---|---|---|\n");
    for c in &g.cases {
        write_case(&dir, c);
        index.push_str(&format!(
            "| {} | {} | {} {} | {} |\n",
            c.name, c.meta.attack, c.meta.expect_status, c.meta.expect, c.meta.description
        ));
    }
    std::fs::write(corpus_dir().join("INDEX.md"), index).expect("index");
    eprintln!("{} cases written to {}", g.cases.len(), dir.display());
}

fn write_case(dir: &Path, c: &Case) {
    std::fs::write(dir.join(format!("{}.body", c.name)), &c.body).expect("body");
    let t = toml::to_string(&c.meta).expect("toml");
    std::fs::write(dir.join(format!("{}.toml", c.name)), t).expect("toml");
}
