//! Sending: detached signature over eb:Messaging, the empty Body and every payload part, then
//! encryption of all and only the payload parts (digest §3.2 for 1.15, §4.2 for 2.0).
//!
//! - Signature: exc-c14n (SignedInfo with `PrefixList="env"` as in the 1.15 example), SHA-256
//!   digests, RSA-SHA256 (1.15) or Ed25519 (2.0); parts digested with the
//!   Attachment-Content-Signature-Transform over the bytes given (already compressed, not yet
//!   encrypted: [AS4] §5.1.8); the signer's BST is X509v3 or X509PKIPathv1.
//! - Encryption: one random AES-128 key per message; each part AES-128-GCM (`IV‖CT‖TAG`); key
//!   transport RSA-OAEP SHA-256/MGF1-SHA-256 (1.15) or X25519 ephemeral-static + HKDF-SHA256
//!   (random 32-byte salt, no Info) + AES-128-KW (2.0), the originator key as
//!   `dsig11:DEREncodedKeyValue` and `dsig-more:HKDFParams` in the 2021 namespace; the recipient
//!   certificate referenced by SKI, IssuerSerial or BST (per partner, digest §12.4).

use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::ns;
use crate::pki::{Certificate, KeyType};
use crate::xml::{canonicalize_subtree, C14nOptions, Document};

use super::crypto::{Crypto, Oaep};
use super::verify::digest_input;
use super::wsse::locate;
use super::xmlw::{attr, b64, new_id, text, IdSource};
use super::{Attachment, KeyReference, OwnKey, SecurityError, SignedReference, Suite, TokenType};

/// Sender-side settings for one message (from the P-Mode and the partner configuration).
pub struct SenderConfig<'a> {
    pub suite: Suite,
    /// Our signing key and certificate.
    pub signer: &'a OwnKey,
    /// The BST value type for the signer.
    pub token_type: TokenType,
    /// The partner's encryption certificate; `None` signs only (signals).
    pub recipient: Option<&'a Certificate>,
    /// How the EncryptedKey names the recipient certificate.
    pub recipient_reference: KeyReference,
}

/// The secured message: the SOAP envelope, the (encrypted) MIME parts, and what was signed (to
/// be kept for checking the receipt, and identical on every retry).
#[derive(Debug, Clone)]
pub struct SecuredMessage {
    pub soap: Vec<u8>,
    pub attachments: Vec<Attachment>,
    pub references: Vec<SignedReference>,
}

fn build(msg: impl Into<String>) -> SecurityError {
    SecurityError::Build(msg.into())
}

fn envelope(messaging: &str, security: &str, body_id: &str) -> String {
    let mut out = String::with_capacity(messaging.len() + security.len() + 256);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><env:Envelope xmlns:env=\"");
    out.push_str(ns::S12);
    out.push_str("\" xmlns:wsu=\"");
    out.push_str(ns::WSU);
    out.push_str("\"><env:Header>");
    out.push_str(messaging);
    out.push_str(security);
    out.push_str("</env:Header><env:Body wsu:Id=\"");
    out.push_str(body_id);
    out.push_str("\"/></env:Envelope>");
    out
}

/// A `ds:Reference` written directly in its exclusive-canonical form (start/end tag pairs, one
/// attribute per element, C14N attribute escaping, base64 text needing none), minus the
/// `xmlns:ds` declaration that canonicalization adds on the apex. Because the document carries
/// these very bytes, the canonical form of SignedInfo and of each Reference is known without
/// parsing the envelope again (checked against the XML room's canonicalizer in debug builds).
fn reference_xml(uri: &str, transform: &str, digest: &[u8]) -> (String, SignedReference) {
    let digest_value = b64(digest);
    let body = cat(&[
        " URI=\"",
        &attr(uri),
        "\"><ds:Transforms><ds:Transform Algorithm=\"",
        transform,
        "\"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm=\"",
        ns::ALG_SHA256,
        "\"></ds:DigestMethod><ds:DigestValue>",
        &digest_value,
        "</ds:DigestValue></ds:Reference>",
    ]);
    let in_doc = cat(&["<ds:Reference", &body]);
    let xml = cat(&["<ds:Reference xmlns:ds=\"", ns::DS, "\"", &body]);
    (
        in_doc,
        SignedReference {
            uri: uri.to_string(),
            digest_method: ns::ALG_SHA256.to_string(),
            digest_value,
            xml,
        },
    )
}

/// A SecurityTokenReference naming `cert`; may add a BST to `extra_tokens`.
fn token_reference(cert: &Certificate, how: KeyReference, extra_tokens: &mut String) -> String {
    match how {
        KeyReference::Ski => cat(&[
            "<wsse:SecurityTokenReference><wsse:KeyIdentifier EncodingType=\"",
            ns::WSS_BASE64_BINARY,
            "\" ValueType=\"",
            ns::WSS_X509_SKI,
            "\">",
            &b64(cert.ski()),
            "</wsse:KeyIdentifier></wsse:SecurityTokenReference>",
        ]),
        KeyReference::IssuerSerial => format!(
            "<wsse:SecurityTokenReference><ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>{}</ds:X509IssuerName><ds:X509SerialNumber>{}</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data></wsse:SecurityTokenReference>",
            text(cert.issuer()),
            cert.serial_decimal()
        ),
        KeyReference::Bst => {
            let id = new_id("X509");
            extra_tokens.push_str(&bst(&id, ns::WSS_X509V3, cert.der()));
            format!(
                "<wsse:SecurityTokenReference><wsse:Reference URI=\"#{id}\" ValueType=\"{}\"/></wsse:SecurityTokenReference>",
                ns::WSS_X509V3
            )
        }
    }
}

fn bst(id: &str, value_type: &str, der: &[u8]) -> String {
    cat(&[
        "<wsse:BinarySecurityToken EncodingType=\"",
        ns::WSS_BASE64_BINARY,
        "\" ValueType=\"",
        value_type,
        "\" wsu:Id=\"",
        id,
        "\">",
        &b64(der),
        "</wsse:BinarySecurityToken>",
    ])
}

/// Concatenation into one exactly sized string: the envelope is built from a few dozen
/// pieces per message, and `format!` machinery plus regrowth cost more than the copying.
fn cat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// Signs (and, with a recipient, encrypts) a message. `messaging_xml` is the complete
/// `eb:Messaging` element; it must declare the `eb` namespace and carry a `wsu:Id` (the envelope
/// declares `env` and `wsu`). `payloads` are the parts as they go on the wire before encryption
/// (already compressed when compression applies).
///
/// The envelope is parsed once, without the security header, to canonicalize eb:Messaging and
/// the Body in their final namespace context; SignedInfo is then written directly in canonical
/// form (see [`reference_xml`]), signed, and the envelope assembled once.
pub fn secure_outbound(
    crypto: &dyn Crypto,
    messaging_xml: &str,
    payloads: Vec<Attachment>,
    cfg: &SenderConfig<'_>,
) -> Result<SecuredMessage, SecurityError> {
    let parts: Vec<OutPart> = payloads
        .iter()
        .map(|p| OutPart {
            content_id: p.content_id.clone(),
            mime_type: p.mime_type.clone(),
            digest: crypto.sha256(&digest_input(&p.mime_type, &p.data)),
        })
        .collect();
    let header = secure_outbound_digests(crypto, messaging_xml, &parts, cfg)?;
    let mut attachments = payloads;
    if let Some(cek) = &header.cek {
        for p in attachments.iter_mut() {
            p.data = crypto
                .aes128_gcm_seal(cek.0.as_ref(), &p.data)
                .map_err(|_| build("part encryption failed"))?;
            p.mime_type = ENCRYPTED_PART_TYPE.into();
        }
    }
    Ok(SecuredMessage {
        soap: header.soap,
        attachments,
        references: header.references,
    })
}

/// The media type of an encrypted part on the wire.
pub const ENCRYPTED_PART_TYPE: &str = "application/octet-stream";

/// A payload part as the signer needs it when its bytes stay on disk: Content-ID, media type
/// (as signed: `application/gzip` when compressed) and the SHA-256 of its
/// Attachment-Content-Signature-Transform input ([`super::verify::attachment_digest_input`]: for
/// binary types, the part's bytes themselves, so a digest computed while the part is written is
/// enough).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutPart {
    pub content_id: String,
    pub mime_type: String,
    pub digest: [u8; 32],
}

/// The message's content-encryption key (AES-128), zeroized on drop. Each part is encrypted
/// with it under a fresh random IV ([`ContentKey::encrypt_part`]).
pub struct ContentKey(Zeroizing<[u8; 16]>);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

impl ContentKey {
    /// Encrypts one part, streaming, as `IV ‖ CT ‖ TAG` (see [`encrypt_part_stream`]).
    pub fn encrypt_part(
        &self,
        crypto: &dyn Crypto,
        input: &mut dyn Read,
        output: &mut dyn Write,
    ) -> std::io::Result<u64> {
        encrypt_part_stream(crypto, self.0.as_ref(), input, output)
    }

    /// Encrypts one part held in memory as `IV ‖ CT ‖ TAG` in one call: the same layout as
    /// [`ContentKey::encrypt_part`] without its chunk buffer, which a small message does not
    /// need (a 4 KB part would otherwise pay for a zeroed and zeroized 256 KiB buffer).
    pub fn seal(&self, crypto: &dyn Crypto, plaintext: &[u8]) -> std::io::Result<Vec<u8>> {
        crypto
            .aes128_gcm_seal(self.0.as_ref(), plaintext)
            .map_err(|_| std::io::Error::other("AES-GCM encryption failed"))
    }
}

/// The wsu:Id of the SOAP Body of every message this gateway signs.
const BODY_ID: &str = "_body";

/// The SOAP envelope of a message whose parts are encrypted later, by streaming.
#[derive(Debug)]
pub struct SecuredHeader {
    pub soap: Vec<u8>,
    pub references: Vec<SignedReference>,
    /// With a recipient: the key the parts must be encrypted with (each as
    /// [`ENCRYPTED_PART_TYPE`]), in the order given.
    pub cek: Option<ContentKey>,
}

/// [`secure_outbound`] for parts given by their digests: signs (references over the given
/// digests), writes the EncryptedKey and one EncryptedData per part, and returns the envelope
/// and the content key; the caller then encrypts each part with [`ContentKey::encrypt_part`]
/// from wherever its bytes are.
pub fn secure_outbound_digests(
    crypto: &dyn Crypto,
    messaging_xml: &str,
    payloads: &[OutPart],
    cfg: &SenderConfig<'_>,
) -> Result<SecuredHeader, SecurityError> {
    // One DRBG draw for the message's ids (token, signature, EncryptedKey and -Data). The
    // Body's id is fixed (cannot equal the header's `_<uuid>`): packing the same message again
    // then yields the same signed references, which lets the MSH send before it records the
    // wire bytes (`msh::engine`, `pack_timed`).
    let mut ids = IdSource::new();
    let body_id = BODY_ID;
    // 1. digests of eb:Messaging and the Body, in their final namespace context
    let skeleton = envelope(messaging_xml, "", body_id);
    let doc = Document::parse(skeleton.as_bytes())?;
    let loc = locate(&doc)?;
    let messaging = loc
        .messaging
        .ok_or_else(|| build("messaging_xml is not an eb:Messaging element"))?;
    let msg_id = messaging
        .attr(Some(ns::WSU), "Id")
        .ok_or_else(|| build("eb:Messaging needs a wsu:Id to be signed"))?;
    if msg_id == body_id {
        return Err(build("eb:Messaging's wsu:Id is the Body's"));
    }
    let mut c14n_buf = Vec::with_capacity(messaging_xml.len() + 256);
    let c14n = C14nOptions::default();
    canonicalize_subtree(&doc, messaging.id(), &c14n, &mut c14n_buf);
    let m_digest = crypto.sha256(&c14n_buf);
    c14n_buf.clear();
    canonicalize_subtree(&doc, loc.body.id(), &c14n, &mut c14n_buf);
    let b_digest = crypto.sha256(&c14n_buf);
    let mut refs = String::with_capacity(512 * (2 + payloads.len()));
    let mut references = Vec::with_capacity(2 + payloads.len());
    for (uri, transform, digest) in [
        (cat(&["#", msg_id]), ns::ALG_EXC_C14N, &m_digest),
        (cat(&["#", body_id]), ns::ALG_EXC_C14N, &b_digest),
    ] {
        let (x, r) = reference_xml(&uri, transform, digest);
        refs.push_str(&x);
        references.push(r);
    }
    for p in payloads {
        if p.content_id.is_empty() || p.content_id.contains(['<', '>', '"']) {
            return Err(build(format!("invalid Content-ID {:?}", p.content_id)));
        }
        let (x, r) = reference_xml(
            &cat(&["cid:", &p.content_id]),
            ns::SWA_CONTENT_SIGNATURE_TRANSFORM,
            &p.digest,
        );
        refs.push_str(&x);
        references.push(r);
    }
    // 2. encryption of the parts
    let mut tokens = String::new();
    let mut enc_xml = String::new();
    let mut cek = None;
    if let Some(rcpt) = cfg.recipient {
        let (x, k) = encrypt_parts(crypto, cfg, rcpt, payloads, &mut tokens, &mut ids)?;
        enc_xml = x;
        cek = Some(k);
    }
    // 3. the signature
    let (sig_alg, want) = match cfg.suite {
        Suite::Edelivery115 => (ns::ALG_RSA_SHA256, KeyType::Rsa),
        Suite::Edelivery20 => (ns::ALG_ED25519, KeyType::Ed25519),
    };
    if cfg.signer.key.key_type() != want {
        return Err(build(format!(
            "the {:?} suite signs with {} keys",
            cfg.suite,
            want.as_str()
        )));
    }
    let bst_id = ids.id("X509");
    let signer_bst = match cfg.token_type {
        TokenType::X509v3 => bst(&bst_id, ns::WSS_X509V3, cfg.signer.cert.der()),
        TokenType::PkiPath => {
            let mut ders: Vec<&[u8]> = cfg.signer.chain.iter().rev().map(|c| c.der()).collect();
            ders.push(cfg.signer.cert.der());
            bst(&bst_id, ns::WSS_X509_PKIPATH, &crate::pki::der::seq(&ders))
        }
    };
    let vt = match cfg.token_type {
        TokenType::X509v3 => ns::WSS_X509V3,
        TokenType::PkiPath => ns::WSS_X509_PKIPATH,
    };
    // SignedInfo's content in canonical form; exc-c14n with PrefixList="env" adds exactly the
    // `ds` (visibly used) and `env` (listed, bound on the Envelope) declarations on the apex.
    let si_content = cat(&[
        "<ds:CanonicalizationMethod Algorithm=\"",
        ns::ALG_EXC_C14N,
        "\"><ec:InclusiveNamespaces xmlns:ec=\"",
        ns::ALG_EXC_C14N,
        "\" PrefixList=\"env\"></ec:InclusiveNamespaces></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"",
        sig_alg,
        "\"></ds:SignatureMethod>",
        &refs,
        "</ds:SignedInfo>",
    ]);
    let si_canonical = cat(&[
        "<ds:SignedInfo xmlns:ds=\"",
        ns::DS,
        "\" xmlns:env=\"",
        ns::S12,
        "\">",
        &si_content,
    ]);
    let sig_value = match cfg.suite {
        Suite::Edelivery115 => crypto.rsa_sha256_sign(&cfg.signer.key, si_canonical.as_bytes()),
        Suite::Edelivery20 => crypto.ed25519_sign(&cfg.signer.key, si_canonical.as_bytes()),
    }
    .map_err(|_| build("signing failed"))?;
    let security = cat(&[
        "<wsse:Security xmlns:wsse=\"",
        ns::WSSE,
        "\" xmlns:wsse11=\"",
        ns::WSSE11,
        "\" xmlns:xenc=\"",
        ns::XENC,
        "\" xmlns:ds=\"",
        ns::DS,
        "\" env:mustUnderstand=\"true\">",
        &tokens,
        &enc_xml,
        &signer_bst,
        "<ds:Signature xmlns:ds=\"",
        ns::DS,
        "\" Id=\"",
        &ids.id("SIG"),
        "\"><ds:SignedInfo>",
        &si_content,
        "<ds:SignatureValue>",
        &b64(&sig_value),
        "</ds:SignatureValue><ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI=\"#",
        &bst_id,
        "\" ValueType=\"",
        vt,
        "\"/></wsse:SecurityTokenReference></ds:KeyInfo></ds:Signature></wsse:Security>",
    ]);
    let full = envelope(messaging_xml, &security, body_id);
    #[cfg(debug_assertions)]
    check_canonical_forms(&full, &si_canonical, &references);
    Ok(SecuredHeader {
        soap: full.into_bytes(),
        references,
        cek,
    })
}

/// Debug builds: the bytes signed and the receipt material must be what the XML room's
/// canonicalizer makes of the envelope actually sent.
#[cfg(debug_assertions)]
fn check_canonical_forms(full: &str, si_canonical: &str, references: &[SignedReference]) {
    let doc = Document::parse(full.as_bytes()).expect("secure_outbound wrote malformed XML");
    let si = doc
        .elements()
        .find(|n| n.is(ns::DS, "SignedInfo"))
        .expect("SignedInfo");
    let real = crate::xml::canonical_bytes(&doc, si.id(), &C14nOptions::with_prefix_list("env"));
    assert_eq!(
        String::from_utf8_lossy(&real),
        si_canonical,
        "canonical SignedInfo"
    );
    let refs: Vec<_> = si.children_named(ns::DS, "Reference").collect();
    assert_eq!(refs.len(), references.len());
    for (n, r) in refs.iter().zip(references) {
        let real = crate::xml::canonical_bytes(&doc, n.id(), &C14nOptions::default());
        assert_eq!(String::from_utf8_lossy(&real), r.xml, "canonical Reference");
        assert_eq!(n.attr(None, "URI"), Some(r.uri.as_str()));
    }
}

fn encrypt_parts(
    crypto: &dyn Crypto,
    cfg: &SenderConfig<'_>,
    rcpt: &Certificate,
    parts: &[OutPart],
    tokens: &mut String,
    ids: &mut IdSource,
) -> Result<(String, ContentKey), SecurityError> {
    // The content key and the HKDF salt of the 2.0 key agreement in one DRBG call (each call
    // has a fixed cost); the salt is public, the key never leaves `cek`.
    let mut fresh = Zeroizing::new([0u8; 48]);
    crypto
        .random(fresh.as_mut())
        .map_err(|_| build("no randomness"))?;
    let mut cek = Zeroizing::new([0u8; 16]);
    cek.copy_from_slice(&fresh[..16]);
    let mut salt = [0u8; 32];
    salt.copy_from_slice(&fresh[16..]);
    drop(fresh);
    let ek_id = ids.id("EK");
    let mut data_refs = String::new();
    let mut eds = String::new();
    for p in parts {
        let ed_id = ids.id("ED");
        for piece in ["<xenc:DataReference URI=\"#", &ed_id, "\"/>"] {
            data_refs.push_str(piece);
        }
        for piece in [
            "<xenc:EncryptedData Id=\"",
            &ed_id,
            "\" MimeType=\"",
            &attr(&p.mime_type),
            "\" Type=\"",
            ns::SWA_CONTENT_ONLY,
            "\"><xenc:EncryptionMethod Algorithm=\"",
            ns::ALG_AES128_GCM,
            "\"/><ds:KeyInfo><wsse:SecurityTokenReference wsse11:TokenType=\"",
            ns::WSS_TOKEN_ENCRYPTED_KEY,
            "\"><wsse:Reference URI=\"#",
            &ek_id,
            "\"/></wsse:SecurityTokenReference></ds:KeyInfo><xenc:CipherData><xenc:CipherReference URI=\"cid:",
            &attr(&p.content_id),
            "\"><xenc:Transforms><ds:Transform Algorithm=\"",
            ns::SWA_CIPHERTEXT_TRANSFORM,
            "\"/></xenc:Transforms></xenc:CipherReference></xenc:CipherData></xenc:EncryptedData>",
        ] {
            eds.push_str(piece);
        }
    }
    let str_xml = token_reference(rcpt, cfg.recipient_reference, tokens);
    let (method, key_info, cipher) = match cfg.suite {
        Suite::Edelivery115 => {
            if rcpt.key_type() != KeyType::Rsa {
                return Err(build("the 1.15 suite needs an RSA encryption certificate"));
            }
            let ct = crypto
                .rsa_oaep_encrypt(rcpt.public_key_bits(), Oaep::Sha256Mgf1Sha256, cek.as_ref())
                .map_err(|_| build("key transport failed"))?;
            (
                format!(
                    "<xenc:EncryptionMethod Algorithm=\"{}\"><ds:DigestMethod Algorithm=\"{}\"/><xenc11:MGF xmlns:xenc11=\"{}\" Algorithm=\"{}\"/></xenc:EncryptionMethod>",
                    ns::ALG_RSA_OAEP,
                    ns::ALG_SHA256,
                    ns::XENC11,
                    ns::ALG_MGF1_SHA256
                ),
                format!("<ds:KeyInfo>{str_xml}</ds:KeyInfo>"),
                ct,
            )
        }
        Suite::Edelivery20 => {
            if rcpt.key_type() != KeyType::X25519 {
                return Err(build(
                    "the 2.0 suite needs an X25519 encryption certificate",
                ));
            }
            let (eph, shared) = crypto
                .x25519_ephemeral(rcpt.public_key_bits())
                .map_err(|_| build("key agreement failed"))?;
            let kek = crypto
                .hkdf_sha256(&shared, &salt, &[], 16)
                .map_err(|_| build("key derivation failed"))?;
            let wrapped = crypto
                .aes128_kw_wrap(&kek, cek.as_ref())
                .map_err(|_| build("key wrap failed"))?;
            (
                cat(&[
                    "<xenc:EncryptionMethod Algorithm=\"",
                    ns::ALG_KW_AES128,
                    "\"/>",
                ]),
                cat(&[
                    "<ds:KeyInfo><xenc:AgreementMethod Algorithm=\"",
                    ns::ALG_X25519,
                    "\"><xenc11:KeyDerivationMethod xmlns:xenc11=\"",
                    ns::XENC11,
                    "\" Algorithm=\"",
                    ns::ALG_HKDF,
                    "\"><dsig-more:HKDFParams xmlns:dsig-more=\"",
                    ns::DSIG_MORE_2021,
                    "\"><dsig-more:PRF Algorithm=\"",
                    ns::ALG_HMAC_SHA256,
                    "\"/><dsig-more:Salt>",
                    &b64(&salt),
                    "</dsig-more:Salt><dsig-more:KeyLength>16</dsig-more:KeyLength></dsig-more:HKDFParams></xenc11:KeyDerivationMethod><xenc:OriginatorKeyInfo><dsig11:DEREncodedKeyValue xmlns:dsig11=\"",
                    ns::DSIG11,
                    "\">",
                    &b64(&crate::pki::der::x25519_spki(&eph)),
                    "</dsig11:DEREncodedKeyValue></xenc:OriginatorKeyInfo><xenc:RecipientKeyInfo>",
                    &str_xml,
                    "</xenc:RecipientKeyInfo></xenc:AgreementMethod></ds:KeyInfo>",
                ]),
                wrapped,
            )
        }
    };
    Ok((
        cat(&[
            "<xenc:EncryptedKey Id=\"",
            &ek_id,
            "\">",
            &method,
            &key_info,
            "<xenc:CipherData><xenc:CipherValue>",
            &b64(&cipher),
            "</xenc:CipherValue></xenc:CipherData><xenc:ReferenceList>",
            &data_refs,
            "</xenc:ReferenceList></xenc:EncryptedKey>",
            &eds,
        ]),
        ContentKey(cek),
    ))
}

/// Read/write chunk of the part streams.
const PART_CHUNK: usize = 256 * 1024;

fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Encrypts one part from `input` to `output` in the SwA layout `IV ‖ CT ‖ TAG` with a fresh
/// random IV, in [`PART_CHUNK`] steps ([`GcmStream`](super::crypto::GcmStream)): memory does not
/// depend on the part's size. Returns the bytes written.
pub fn encrypt_part_stream(
    crypto: &dyn Crypto,
    cek: &[u8],
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> std::io::Result<u64> {
    let mut iv = [0u8; super::crypto::GCM_IV_LEN];
    crypto
        .random(&mut iv)
        .map_err(|_| std::io::Error::other("no randomness"))?;
    encrypt_part_stream_with_iv(cek, &iv, input, output)
}

/// [`encrypt_part_stream`] with a given IV (never reuse one under the same key).
pub(crate) fn encrypt_part_stream_with_iv(
    cek: &[u8],
    iv: &[u8; super::crypto::GCM_IV_LEN],
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> std::io::Result<u64> {
    let gcm_err = |_| std::io::Error::other("AES-GCM encryption failed");
    let mut gcm = super::crypto::GcmStream::seal(cek, iv).map_err(gcm_err)?;
    output.write_all(iv)?;
    let mut buf = Zeroizing::new(vec![0u8; PART_CHUNK]);
    loop {
        let n = read_full(input, &mut buf)?;
        if n == 0 {
            break;
        }
        gcm.update(&mut buf[..n]).map_err(gcm_err)?;
        output.write_all(&buf[..n])?;
    }
    let len = gcm.len();
    output.write_all(&gcm.finish().map_err(gcm_err)?)?;
    Ok(len + (super::crypto::GCM_IV_LEN + super::crypto::GCM_TAG_LEN) as u64)
}

/// Decrypts one `IV ‖ CT ‖ TAG` part from `input` to `output`, in [`PART_CHUNK`] steps, and
/// checks the tag at the end. Returns the plaintext length and `observe`s every plaintext chunk
/// (e.g. to hash it for the signature reference).
///
/// **`output` receives unverified plaintext**: AES-GCM has a single tag at the end, so a
/// streaming decryptor cannot hold everything back. The caller must write to a private spool
/// file and use it only when this returned `Ok` (and discard it otherwise); the gateway does so
/// in [`crate::security::verify::process_inbound_parts`].
pub fn decrypt_part_stream_observed(
    cek: &[u8],
    input: &mut dyn Read,
    output: &mut dyn Write,
    observe: &mut dyn FnMut(&[u8]),
) -> std::io::Result<u64> {
    use super::crypto::{GCM_IV_LEN, GCM_TAG_LEN};
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "AES-GCM tag check failed");
    let mut iv = [0u8; GCM_IV_LEN];
    if read_full(input, &mut iv)? != GCM_IV_LEN {
        return Err(bad());
    }
    let mut gcm = super::crypto::GcmStream::open(cek, &iv).map_err(|_| bad())?;
    // The last GCM_TAG_LEN bytes are the tag: keep them back until the input ends.
    let mut buf = Zeroizing::new(vec![0u8; PART_CHUNK + GCM_TAG_LEN]);
    let mut held = 0usize;
    loop {
        let n = read_full(input, &mut buf[held..])?;
        let have = held + n;
        if n == 0 {
            if have != GCM_TAG_LEN {
                return Err(bad());
            }
            let tag: [u8; GCM_TAG_LEN] = buf[..GCM_TAG_LEN].try_into().map_err(|_| bad())?;
            let len = gcm.len();
            gcm.verify(&tag).map_err(|_| bad())?;
            return Ok(len);
        }
        if have > GCM_TAG_LEN {
            let body = have - GCM_TAG_LEN;
            gcm.update(&mut buf[..body]).map_err(|_| bad())?;
            observe(&buf[..body]);
            output.write_all(&buf[..body])?;
            buf.copy_within(body..have, 0);
            held = GCM_TAG_LEN;
        } else {
            held = have;
        }
    }
}

/// Decrypts one `IV ‖ CT ‖ TAG` part from `input` to `output` (see
/// [`decrypt_part_stream_observed`]: on `Err`, whatever reached `output` must be discarded).
pub fn decrypt_part_stream(
    _crypto: &dyn Crypto,
    cek: &[u8],
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> std::io::Result<u64> {
    decrypt_part_stream_observed(cek, input, output, &mut |_| {})
}
