//! Receiving: strict reference resolution, signature verification, trust, decryption.
//!
//! Order of processing (see `docs/security.md`):
//! 1. envelope structure: one Header, one Body, at most one `eb:Messaging` and one `wsse:Security`
//!    header block ([`super::wsse::locate`]);
//! 2. exactly one `ds:Signature` in the Security header; SignedInfo read strictly (only
//!    exc-c14n, the suite's SignatureMethod, SHA-256 digests, known transforms);
//! 3. the signer certificate from the BST (X509v3 / PKIPath), or by SKI / IssuerSerial among the
//!    known partner certificates; SignedInfo canonicalized with its PrefixList and its
//!    SignatureValue checked; then the signer trusted at the given time;
//! 4. same-document references: `#id` must select exactly one element, and that element must be
//!    *the* `eb:Messaging` header block or *the* SOAP Body located in step 1 (node identity, not
//!    name: a copy in a wrapper does not count);
//! 5. payload decryption (only now, so no unauthenticated input reaches RSA/X25519 private-key
//!    operations);
//! 6. `cid:` references over the decrypted (compressed) bytes; each must name a MIME part listed
//!    in `eb:PayloadInfo`;
//! 7. coverage: eb:Messaging, the Body and every PayloadInfo part signed; with encryption
//!    required, every PayloadInfo part encrypted; no URI signed twice.
//!
//! Verifying SignedInfo before decrypting departs from the receiver order sketched in digest
//! §4.2 (decrypt then verify); the outcome for a valid message is the same.

use std::borrow::Cow;
use std::sync::OnceLock;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::ns;
use crate::pki::{Certificate, KeyType, Purpose, TrustPath, TrustStore};
use crate::xml::{
    canonical_bytes, canonicalize_document, canonicalize_stream, canonicalize_subtree, C14nOptions,
    C14nStreamError, Document, Node, NodeId, PAYLOAD_LIMITS,
};

use super::crypto::Crypto;
use super::decrypt::suite_name;
use super::wsse::{locate, payload_cids, read_token_ref, resolve_signer, Located};
use super::xmlw::unb64;
use super::{Attachment, OwnKey, Part, PartSource, SecurityError, SignedReference, Suite};

/// What the receiving P-Mode requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundPolicy {
    /// Expected suite; `None` accepts the algorithms of either (diagnostics, CLI).
    pub suite: Option<Suite>,
    /// eDelivery: always signed (digest §3.2).
    pub require_signature: bool,
    /// eDelivery: payload parts always encrypted (digest §3.2). Signals have no parts.
    pub require_encryption: bool,
    /// Accept `rsa-oaep-mgf1p` / SHA-1 OAEP from pre-1.13 senders (digest §3.2 "Legacy tolerance").
    pub allow_legacy_oaep: bool,
}

impl Default for InboundPolicy {
    fn default() -> Self {
        InboundPolicy {
            suite: None,
            require_signature: true,
            require_encryption: true,
            allow_legacy_oaep: false,
        }
    }
}

impl InboundPolicy {
    /// The eDelivery policy for one suite.
    pub fn for_suite(suite: Suite) -> Self {
        InboundPolicy {
            suite: Some(suite),
            ..Default::default()
        }
    }
}

/// Everything the receiving side needs besides the message.
pub struct Receiver<'a> {
    pub crypto: &'a dyn Crypto,
    pub trust: &'a TrustStore,
    /// Partner certificates to resolve SKI / IssuerSerial references against (besides the trust store's).
    pub partners: &'a [Certificate],
    /// Our decryption keys.
    pub keys: &'a [OwnKey],
    /// The time at which certificates must be valid.
    pub at: OffsetDateTime,
    pub policy: InboundPolicy,
}

/// A value whose signature, references and signer were verified. Only this module creates it.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    value: T,
    signer: Certificate,
    signer_chain: Vec<Certificate>,
    trust_path: TrustPath,
    /// The signed references with their canonical `ds:Reference` bytes (receipt material).
    /// Filled on first use: canonicalizing the References is receipt work, and a message that
    /// is refused after verification (P-Mode, duplicate) or a signal never needs it.
    references: OnceLock<Vec<SignedReference>>,
    /// Until then: the `ds:Reference` elements in the verified document ([`ReferenceSource`]),
    /// read again when asked for (owning their strings from the start cost every message nine
    /// allocations that only a receipt needs).
    pending_references: Vec<NodeId>,
}

/// Where the `ds:Reference` elements of a [`Verified`] value live, so that their canonical
/// form can be produced when first asked for ([`Verified::references`]).
pub trait ReferenceSource {
    /// The verified document, or `None` when the references were complete from the start.
    fn reference_document(&self) -> Option<&Document>;
}

impl<P> ReferenceSource for InboundMessage<P> {
    fn reference_document(&self) -> Option<&Document> {
        Some(&self.doc)
    }
}

impl<T> Verified<T> {
    pub(crate) fn new(
        value: T,
        signer: Certificate,
        signer_chain: Vec<Certificate>,
        trust_path: TrustPath,
        references: Vec<SignedReference>,
    ) -> Self {
        Verified {
            value,
            signer,
            signer_chain,
            trust_path,
            references: OnceLock::from(references),
            pending_references: Vec::new(),
        }
    }
    pub fn value(&self) -> &T {
        &self.value
    }
    pub fn into_inner(self) -> T {
        self.value
    }
    /// The certificate whose key made the signature.
    pub fn signer(&self) -> &Certificate {
        &self.signer
    }
    /// The chain presented with the signer (PKIPath), leaf excluded.
    pub fn signer_chain(&self) -> &[Certificate] {
        &self.signer_chain
    }
    pub fn trust_path(&self) -> &TrustPath {
        &self.trust_path
    }
}

impl<T: ReferenceSource> Verified<T> {
    /// The signed `ds:Reference`s, in SignedInfo order (for the NRR receipt).
    pub fn references(&self) -> &[SignedReference] {
        self.references.get_or_init(|| {
            let Some(doc) = self.value.reference_document() else {
                return Vec::new();
            };
            self.pending_references
                .iter()
                .map(|&node| signed_reference(doc.node(node), true))
                .collect()
        })
    }
}

/// A `ds:Reference` element of a verified SignedInfo as receipt material (`xml` only when
/// `with_xml`). [`parse_signature`] accepted the element, so its parts are there.
pub(super) fn signed_reference(r: Node<'_>, with_xml: bool) -> SignedReference {
    let digest_value: String = r
        .child(ns::DS, "DigestValue")
        .map(|d| {
            d.text()
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect()
        })
        .unwrap_or_default();
    SignedReference {
        uri: r.attr(None, "URI").unwrap_or("").to_string(),
        digest_method: r
            .child(ns::DS, "DigestMethod")
            .map(alg)
            .unwrap_or("")
            .to_string(),
        digest_value,
        xml: if with_xml {
            reference_c14n(r.document(), r.id())
        } else {
            String::new()
        },
    }
}

/// The exclusive-canonical form of one `ds:Reference` element (self-contained namespaces).
fn reference_c14n(doc: &Document, reference: NodeId) -> String {
    String::from_utf8(canonical_bytes(doc, reference, &C14nOptions::default())).unwrap_or_default()
}

/// An inbound message after security processing (`P`: [`Attachment`] in memory, or [`Part`]
/// from [`process_inbound_parts`]).
#[derive(Debug, Clone)]
pub struct InboundMessage<P = Attachment> {
    /// The SOAP envelope as received.
    pub doc: Document,
    /// The `eb:Messaging` header block.
    pub messaging: Option<NodeId>,
    /// The payload parts in `eb:PayloadInfo` order, decrypted (still compressed if they were).
    pub payloads: Vec<P>,
    /// Content-IDs of the parts that arrived encrypted.
    pub encrypted_cids: Vec<String>,
}

impl<P> InboundMessage<P> {
    /// `eb:UserMessage` or `eb:SignalMessage` MessageId.
    pub fn message_id(&self) -> Option<String> {
        let m = self.doc.node(self.messaging?);
        m.child_elements()
            .filter_map(|um| um.child(ns::EB, "MessageInfo"))
            .find_map(|mi| {
                mi.child(ns::EB, "MessageId")
                    .map(|x| x.text().trim().to_string())
            })
    }
}

/// What a single reference check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefOutcome {
    Match,
    Mismatch,
    /// `#id` selects no element.
    TargetMissing,
    /// The `cid:` part is not in the message.
    AttachmentMissing,
    /// The part is still encrypted (no key to decrypt it): digest not checkable.
    NotDecrypted,
    /// Selects the wrong node, a duplicate id, or a part not in PayloadInfo.
    Wrapping(String),
    /// Unknown transform, digest or URI form.
    Unsupported(String),
}

impl RefOutcome {
    /// The word `expectations.json` uses for this outcome.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefOutcome::Match => "match",
            RefOutcome::Mismatch => "mismatch",
            RefOutcome::TargetMissing => "target missing",
            RefOutcome::AttachmentMissing => "attachment not in file",
            RefOutcome::NotDecrypted => "not decrypted",
            RefOutcome::Wrapping(_) => "wrapping",
            RefOutcome::Unsupported(_) => "unsupported",
        }
    }
}

/// One reference and its outcome.
#[derive(Debug, Clone)]
pub struct RefReport {
    pub reference: SignedReference,
    /// `Messaging`, `Body`, `attachment` or `None` (unresolved / other).
    pub target: Option<&'static str>,
    pub outcome: RefOutcome,
}

/// The SignedInfo verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedInfoOutcome {
    Valid,
    Invalid,
    NoKey(String),
    UnsupportedAlgorithm(String),
}

impl SignedInfoOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            SignedInfoOutcome::Valid => "valid",
            SignedInfoOutcome::Invalid => "invalid",
            SignedInfoOutcome::NoKey(_) => "no key",
            SignedInfoOutcome::UnsupportedAlgorithm(_) => "unsupported algorithm",
        }
    }
}

/// A non-failing look at one signature: the verdict of SignedInfo and of every reference.
#[derive(Debug, Clone)]
pub struct SignatureReport {
    pub signature_method: String,
    pub prefix_list: Vec<String>,
    pub signer: Option<Certificate>,
    pub signer_chain: Vec<Certificate>,
    pub signed_info: SignedInfoOutcome,
    pub references: Vec<RefReport>,
}

/// A `ds:Reference` as read from SignedInfo: every string borrowed from the document (the
/// owned [`SignedReference`] is made from the element when a receipt asks for it).
struct ParsedRef<'d> {
    uri: &'d str,
    /// Each `ds:Transform`'s algorithm and PrefixList.
    transforms: Vec<(&'d str, Vec<String>)>,
    digest_method: &'d str,
    digest_value: Vec<u8>,
    node: Node<'d>,
}

impl ParsedRef<'_> {
    /// The reference with its canonical `ds:Reference` bytes.
    fn with_xml(&self) -> SignedReference {
        signed_reference(self.node, true)
    }
}

struct ParsedSignature<'d> {
    signed_info: Node<'d>,
    c14n: C14nOptions,
    method: &'d str,
    refs: Vec<ParsedRef<'d>>,
    value: Vec<u8>,
    key_info: Option<Node<'d>>,
}

fn alg<'d>(n: Node<'d>) -> &'d str {
    n.attr(None, "Algorithm").unwrap_or("")
}

fn prefix_list(n: Node<'_>) -> Vec<String> {
    n.child(ns::EXC_C14N, "InclusiveNamespaces")
        .and_then(|i| i.attr(None, "PrefixList"))
        .map(|p| p.split_ascii_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The `n`-th child element of `parent` (no vector of children collected).
fn nth_child<'d>(parent: Node<'d>, n: usize) -> Option<Node<'d>> {
    parent.child_elements().nth(n)
}

fn parse_signature<'d>(sig: Node<'d>) -> Result<ParsedSignature<'d>, SecurityError> {
    let bad = |m: &str| SecurityError::Malformed(m.to_string());
    let si = nth_child(sig, 0)
        .filter(|k| k.is(ns::DS, "SignedInfo"))
        .ok_or_else(|| bad("Signature must start with SignedInfo"))?;
    let sv = nth_child(sig, 1)
        .filter(|k| k.is(ns::DS, "SignatureValue"))
        .ok_or_else(|| bad("SignatureValue missing"))?;
    let key_info = sig.child(ns::DS, "KeyInfo");
    let cm = nth_child(si, 0)
        .filter(|k| k.is(ns::DS, "CanonicalizationMethod"))
        .ok_or_else(|| bad("CanonicalizationMethod missing"))?;
    if alg(cm) != ns::ALG_EXC_C14N {
        return Err(SecurityError::UnknownAlgorithm {
            what: "canonicalization",
            uri: alg(cm).to_string(),
        });
    }
    let sm = nth_child(si, 1)
        .filter(|k| k.is(ns::DS, "SignatureMethod"))
        .ok_or_else(|| bad("SignatureMethod missing"))?;
    let c14n = C14nOptions {
        with_comments: false,
        inclusive_prefixes: prefix_list(cm),
        ..Default::default()
    };
    let mut refs = Vec::with_capacity(4);
    for r in si.child_elements().skip(2) {
        if !r.is(ns::DS, "Reference") {
            return Err(bad("unexpected element in SignedInfo"));
        }
        let uri = r
            .attr(None, "URI")
            .ok_or_else(|| bad("Reference without URI"))?;
        let mut transforms = Vec::new();
        if let Some(ts) = r.child(ns::DS, "Transforms") {
            for t in ts.child_elements() {
                if !t.is(ns::DS, "Transform") {
                    return Err(bad("unexpected element in Transforms"));
                }
                transforms.push((alg(t), prefix_list(t)));
            }
        }
        let dm = r
            .child(ns::DS, "DigestMethod")
            .ok_or_else(|| bad("DigestMethod missing"))?;
        let dv_node = r
            .child(ns::DS, "DigestValue")
            .ok_or_else(|| bad("DigestValue missing"))?;
        let dv_raw = dv_node.text();
        let digest_text: Cow<'d, str> = if dv_raw.bytes().any(|b| b.is_ascii_whitespace()) {
            Cow::Owned(
                dv_raw
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect(),
            )
        } else {
            dv_raw
        };
        let digest_value = unb64(&digest_text).ok_or_else(|| bad("DigestValue is not base64"))?;
        refs.push(ParsedRef {
            // `xml` (the canonical Reference) is produced only when asked for: see
            // `Verified::references` and `ParsedRef::with_xml`.
            uri,
            transforms,
            digest_method: alg(dm),
            digest_value,
            node: r,
        });
    }
    if refs.is_empty() {
        return Err(bad("SignedInfo without Reference"));
    }
    let value = unb64(&sv.text()).ok_or_else(|| bad("SignatureValue is not base64"))?;
    Ok(ParsedSignature {
        signed_info: si,
        c14n,
        method: alg(sm),
        refs,
        value,
        key_info,
    })
}

/// SHA-256 digest input for a `cid:` part under the Attachment-Content-Signature-Transform:
/// XML types canonicalized (exc-c14n, no comments), other `text/*` with CRLF line ends, the rest
/// as octets (OASIS SwA 1.1 §5.4.2; digest §12.1).
pub fn attachment_digest_input(mime_type: &str, data: &[u8]) -> Vec<u8> {
    digest_input(mime_type, data).into_owned()
}

/// What the Attachment-Content-Signature-Transform does to a part of this media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    /// exc-c14n of the parsed document (the bytes as they are when they do not parse).
    Xml,
    /// CRLF line ends.
    Text,
    /// The bytes as they are (`application/gzip`, `application/octet-stream`, PDF, …).
    Octets,
}

/// The transform's kind for `mime_type` (see [`attachment_digest_input`]).
pub fn digest_kind(mime_type: &str) -> DigestKind {
    let mt = mime_type.split(';').next().unwrap_or("").trim();
    let starts = |p: &str| {
        mt.len() >= p.len() && mt.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    let ends_xml = mt.len() >= 4 && mt.as_bytes()[mt.len() - 4..].eq_ignore_ascii_case(b"+xml");
    let is_xml = mt.eq_ignore_ascii_case("text/xml")
        || mt.eq_ignore_ascii_case("application/xml")
        || ((starts("application/") || starts("image/")) && ends_xml);
    if is_xml {
        DigestKind::Xml
    } else if starts("text/") {
        DigestKind::Text
    } else {
        DigestKind::Octets
    }
}

/// [`attachment_digest_input`] without copying octet parts (the common, binary case).
pub(crate) fn digest_input<'d>(mime_type: &str, data: &'d [u8]) -> Cow<'d, [u8]> {
    let kind = digest_kind(mime_type);
    if kind == DigestKind::Xml {
        // Small parts (the hot path: a 4 KB ebRS document) through the tree, large ones
        // streaming; both under the payload limits, so the verdict and the bytes are the same
        // whichever path a side takes (docs/xml.md, "Payload parts").
        if data.len() <= XML_TREE_MAX {
            if let Ok(doc) = Document::parse_with(data, &PAYLOAD_LIMITS) {
                let mut out = Vec::with_capacity(data.len());
                canonicalize_document(&doc, &C14nOptions::default(), &mut out);
                return Cow::Owned(out);
            }
            return Cow::Borrowed(data);
        }
        let mut out = Vec::with_capacity(data.len());
        return match canonicalize_stream(data, &PAYLOAD_LIMITS, &mut out) {
            Ok(()) => Cow::Owned(out),
            Err(_) => Cow::Borrowed(data),
        };
    }
    if kind == DigestKind::Text {
        let mut out = Vec::with_capacity(data.len() + data.len() / 32);
        let mut prev = 0u8;
        for &b in data {
            if b == b'\n' && prev != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            prev = b;
        }
        return Cow::Owned(out);
    }
    Cow::Borrowed(data)
}

/// A received payload part, in memory ([`Attachment`]) or in a file ([`Part`]): what the
/// reference check and the decryption need of it.
pub(crate) trait InPart: Clone {
    fn content_id(&self) -> &str;
    /// SHA-256 of the part's Attachment-Content-Signature-Transform input.
    fn reference_digest(&self, crypto: &dyn Crypto) -> Result<[u8; 32], String>;
    /// Replaces the ciphertext `IV ‖ CT ‖ TAG` by the plaintext, which then has `mime_type`
    /// (when given). On failure nothing of the plaintext remains.
    fn decrypt(
        &mut self,
        crypto: &dyn Crypto,
        cek: &[u8],
        mime_type: Option<&str>,
    ) -> Result<(), SecurityError>;
}

fn decrypt_failed() -> SecurityError {
    SecurityError::Decryption("payload decryption failed".into())
}

impl InPart for Attachment {
    fn content_id(&self) -> &str {
        &self.content_id
    }
    fn reference_digest(&self, crypto: &dyn Crypto) -> Result<[u8; 32], String> {
        Ok(crypto.sha256(&digest_input(&self.mime_type, &self.data)))
    }
    fn decrypt(
        &mut self,
        crypto: &dyn Crypto,
        cek: &[u8],
        mime_type: Option<&str>,
    ) -> Result<(), SecurityError> {
        crypto
            .aes128_gcm_open_in_place(cek, &mut self.data)
            .map_err(|_| decrypt_failed())?;
        if let Some(mt) = mime_type {
            self.mime_type = mt.to_string();
        }
        Ok(())
    }
}

/// In-memory XML parts up to this size take the tree (faster for small documents); larger
/// ones the streaming canonicalizer (no tree of a multiple of the part's size).
const XML_TREE_MAX: usize = 4 << 20;

/// SHA-256 of the Attachment-Content-Signature-Transform input of a part stored in a file, in
/// bounded memory whatever its size: what [`attachment_digest_input`] gives for the same bytes.
/// The sender ([`crate::msh::outbound::pack_files`]) and the receiver use this one function.
pub(crate) fn sha256_part_file(
    mime_type: &str,
    path: &std::path::Path,
) -> std::io::Result<[u8; 32]> {
    match digest_kind(mime_type) {
        DigestKind::Octets => sha256_file(path),
        DigestKind::Xml => sha256_xml_file(path),
        DigestKind::Text => sha256_text_file(path),
    }
}

/// Feeds SHA-256 as an `io::Write` sink (the streaming canonicalizer writes in 64 KiB runs).
struct Sha256Sink(aws_lc_rs::digest::Context);

impl std::io::Write for Sha256Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sha256Sink {
    fn new() -> Self {
        Sha256Sink(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }
    fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// exc-c14n of the document streamed into SHA-256; a document that does not parse is digested
/// as its bytes (a second pass over the file: a stream only knows at its end).
fn sha256_xml_file(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    let f = std::fs::File::open(path)?;
    let mut sink = Sha256Sink::new();
    match canonicalize_stream(f, &PAYLOAD_LIMITS, &mut sink) {
        Ok(()) => Ok(sink.finish()),
        Err(C14nStreamError::Xml(_)) => sha256_file(path),
        Err(C14nStreamError::Io(e)) => Err(e),
    }
}

/// `text/*`: LF not preceded by CR becomes CR LF (as [`digest_input`]), streamed into SHA-256.
fn sha256_text_file(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut sink = Sha256Sink::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::with_capacity(buf.len() + buf.len() / 16);
    let mut prev = 0u8;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.clear();
        for &b in &buf[..n] {
            if b == b'\n' && prev != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            prev = b;
        }
        sink.0.update(&out);
    }
    Ok(sink.finish())
}

/// SHA-256 of a file, streaming.
pub(crate) fn sha256_file(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

impl InPart for Part {
    fn content_id(&self) -> &str {
        &self.content_id
    }
    fn reference_digest(&self, crypto: &dyn Crypto) -> Result<[u8; 32], String> {
        match &self.source {
            PartSource::Memory(d) => Ok(crypto.sha256(&digest_input(&self.mime_type, d))),
            // Binary parts (all compressed parts are application/gzip): the file's own digest,
            // computed while it was written.
            PartSource::File { path, sha256, .. } => match digest_kind(&self.mime_type) {
                DigestKind::Octets => match sha256 {
                    Some(d) => Ok(*d),
                    None => sha256_file(path).map_err(|e| e.to_string()),
                },
                // XML (exc-c14n) and text (CRLF) transforms, streaming.
                DigestKind::Xml | DigestKind::Text => {
                    sha256_part_file(&self.mime_type, path).map_err(|e| e.to_string())
                }
            },
        }
    }
    fn decrypt(
        &mut self,
        crypto: &dyn Crypto,
        cek: &[u8],
        mime_type: Option<&str>,
    ) -> Result<(), SecurityError> {
        match &mut self.source {
            PartSource::Memory(d) => {
                *d = crypto
                    .aes128_gcm_open(cek, d)
                    .map_err(|_| decrypt_failed())?;
            }
            PartSource::File { path, .. } => {
                let mut plain_path = path.clone().into_os_string();
                plain_path.push(".plain");
                let plain_path = std::path::PathBuf::from(plain_path);
                let r = decrypt_file(cek, path, &plain_path);
                match r {
                    Ok((size, sha256)) => {
                        // The ciphertext is no longer needed.
                        let _ = std::fs::remove_file(&*path);
                        self.source = PartSource::File {
                            path: plain_path,
                            size,
                            sha256: Some(sha256),
                        };
                    }
                    Err(e) => {
                        // Unverified plaintext never survives a failed tag check.
                        let _ = std::fs::remove_file(&plain_path);
                        return Err(match e.kind() {
                            std::io::ErrorKind::InvalidData => decrypt_failed(),
                            _ => SecurityError::Decryption(format!("payload spool: {e}")),
                        });
                    }
                }
            }
        }
        if let Some(mt) = mime_type {
            self.mime_type = mt.to_string();
        }
        Ok(())
    }
}

/// Streams `IV ‖ CT ‖ TAG` from `from` into the new file `to`, hashing the plaintext;
/// `InvalidData` when the tag does not verify. Not synced: `to` is a scratch file of the
/// receive work directory that the spool copies durably once the message is accepted.
fn decrypt_file(
    cek: &[u8],
    from: &std::path::Path,
    to: &std::path::Path,
) -> std::io::Result<(u64, [u8; 32])> {
    use std::io::Write;
    let mut input = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(from)?);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let size = super::sign::decrypt_part_stream_observed(cek, &mut input, &mut out, &mut |b| {
        ctx.update(b)
    })?;
    out.flush()?;
    drop(out.into_inner().map_err(|e| e.into_error())?);
    let mut sha = [0u8; 32];
    sha.copy_from_slice(ctx.finish().as_ref());
    Ok((size, sha))
}

/// `c14n_buf`: scratch for the canonical form of a same-document target, shared by the
/// references and SignedInfo of one message (one buffer instead of one allocation each).
#[allow(clippy::too_many_arguments)]
fn check_ref<P: InPart>(
    crypto: &dyn Crypto,
    doc: &Document,
    loc: &Located<'_>,
    r: &ParsedRef<'_>,
    parts: &[P],
    payload: &[String],
    pending: &[String],
    c14n_buf: &mut Vec<u8>,
) -> (Option<&'static str>, RefOutcome) {
    if r.digest_method != ns::ALG_SHA256 {
        return (
            None,
            RefOutcome::Unsupported(format!("digest method {}", r.digest_method)),
        );
    }
    let digest_ok = |input: &[u8]| {
        let d = crypto.sha256(input);
        if bool::from(d.as_slice().ct_eq(&r.digest_value)) {
            RefOutcome::Match
        } else {
            RefOutcome::Mismatch
        }
    };
    if let Some(id) = r.uri.strip_prefix('#') {
        let opts = match r.transforms.as_slice() {
            [(a, pl)] if *a == ns::ALG_EXC_C14N => C14nOptions {
                with_comments: false,
                inclusive_prefixes: pl.clone(),
                ..Default::default()
            },
            other => {
                let list: Vec<_> = other.iter().map(|(a, _)| *a).collect();
                return (
                    None,
                    RefOutcome::Unsupported(format!("transforms {list:?}")),
                );
            }
        };
        let found = doc.elements_by_id(id);
        let node = match found.as_slice() {
            [] => return (None, RefOutcome::TargetMissing),
            [one] => *one,
            more => {
                return (
                    None,
                    RefOutcome::Wrapping(format!("{} elements carry id {id:?}", more.len())),
                )
            }
        };
        let target = if loc.messaging.is_some_and(|m| m.id() == node.id()) {
            "Messaging"
        } else if loc.body.id() == node.id() {
            "Body"
        } else {
            return (
                None,
                RefOutcome::Wrapping(format!(
                    "#{id} selects {} which is neither the eb:Messaging header block nor the SOAP Body",
                    node.element().map(|e| e.qname().into_owned()).unwrap_or_default()
                )),
            );
        };
        c14n_buf.clear();
        canonicalize_subtree(doc, node.id(), &opts, c14n_buf);
        (Some(target), digest_ok(c14n_buf))
    } else if let Some(cid) = r.uri.strip_prefix("cid:") {
        match r.transforms.as_slice() {
            [(a, _)] if *a == ns::SWA_CONTENT_SIGNATURE_TRANSFORM => {}
            other => {
                let list: Vec<_> = other.iter().map(|(a, _)| *a).collect();
                return (
                    None,
                    RefOutcome::Unsupported(format!("transforms {list:?}")),
                );
            }
        }
        let Some(part) = parts.iter().find(|p| p.content_id() == cid) else {
            return (None, RefOutcome::AttachmentMissing);
        };
        if !payload.iter().any(|p| p == cid) {
            return (
                None,
                RefOutcome::Wrapping(format!("cid:{cid} is not listed in eb:PayloadInfo")),
            );
        }
        if pending.iter().any(|p| p == cid) {
            return (Some("attachment"), RefOutcome::NotDecrypted);
        }
        match part.reference_digest(crypto) {
            Ok(d) => (
                Some("attachment"),
                if bool::from(d.as_slice().ct_eq(&r.digest_value)) {
                    RefOutcome::Match
                } else {
                    RefOutcome::Mismatch
                },
            ),
            Err(e) => (
                Some("attachment"),
                RefOutcome::Unsupported(format!("part cid:{cid} unreadable: {e}")),
            ),
        }
    } else {
        (
            None,
            RefOutcome::Unsupported(format!("reference URI form {:?}", r.uri)),
        )
    }
}

fn check_signed_info(
    crypto: &dyn Crypto,
    doc: &Document,
    sig: &ParsedSignature<'_>,
    signer: &Certificate,
    c14n_buf: &mut Vec<u8>,
) -> SignedInfoOutcome {
    c14n_buf.clear();
    canonicalize_subtree(doc, sig.signed_info.id(), &sig.c14n, c14n_buf);
    let bytes = &c14n_buf[..];
    let r = match sig.method {
        m if m == ns::ALG_RSA_SHA256 => {
            if signer.key_type() != KeyType::Rsa {
                return SignedInfoOutcome::Invalid;
            }
            crypto.rsa_sha256_verify(signer.public_key_bits(), bytes, &sig.value)
        }
        m if m == ns::ALG_ED25519 => {
            if signer.key_type() != KeyType::Ed25519 {
                return SignedInfoOutcome::Invalid;
            }
            crypto.ed25519_verify(signer.public_key_bits(), bytes, &sig.value)
        }
        other => return SignedInfoOutcome::UnsupportedAlgorithm(other.to_string()),
    };
    if r.is_ok() {
        SignedInfoOutcome::Valid
    } else {
        SignedInfoOutcome::Invalid
    }
}

fn the_signature<'d>(security: Node<'d>) -> Result<Option<Node<'d>>, SecurityError> {
    super::wsse::the_one(
        security,
        ns::DS,
        "Signature",
        "more than one ds:Signature in the Security header",
    )
}

fn encrypted_targets(security: Option<Node<'_>>) -> Vec<String> {
    let Some(sec) = security else {
        return Vec::new();
    };
    sec.children_named(ns::XENC, "EncryptedData")
        .filter_map(|ed| {
            ed.child(ns::XENC, "CipherData")?
                .child(ns::XENC, "CipherReference")?
                .attr(None, "URI")
        })
        .filter_map(|u| u.strip_prefix("cid:").map(str::to_string))
        .collect()
}

/// Looks at the signature of `soap` without failing on the first problem (tests, CLI). `parts`
/// are taken as given: parts that are still encrypted are reported `NotDecrypted`.
pub fn inspect_signature(
    crypto: &dyn Crypto,
    soap: &[u8],
    parts: &[Attachment],
    trust: &TrustStore,
    partners: &[Certificate],
) -> Result<SignatureReport, SecurityError> {
    let doc = Document::parse(soap)?;
    inspect_doc(
        crypto,
        &doc,
        parts,
        &encrypted_targets(locate(&doc)?.security),
        trust,
        partners,
    )
}

fn inspect_doc(
    crypto: &dyn Crypto,
    doc: &Document,
    parts: &[Attachment],
    pending: &[String],
    trust: &TrustStore,
    partners: &[Certificate],
) -> Result<SignatureReport, SecurityError> {
    let loc = locate(doc)?;
    let sec = loc
        .security
        .ok_or_else(|| SecurityError::Policy("no wsse:Security header".into()))?;
    let sig_node =
        the_signature(sec)?.ok_or_else(|| SecurityError::Policy("message is not signed".into()))?;
    let sig = parse_signature(sig_node)?;
    let payload = payload_cids(loc.messaging);
    let mut c14n_buf = Vec::with_capacity(2048);
    let (signer, chain, signed_info) = match sig.key_info.map(read_token_ref) {
        None => (
            None,
            Vec::new(),
            SignedInfoOutcome::NoKey("no KeyInfo".into()),
        ),
        Some(Err(e)) => (None, Vec::new(), SignedInfoOutcome::NoKey(e.to_string())),
        Some(Ok(tr)) => match resolve_signer(doc, sec, &tr, trust, partners) {
            Err(e) => (None, Vec::new(), SignedInfoOutcome::NoKey(e.to_string())),
            Ok((c, chain)) => {
                let o = check_signed_info(crypto, doc, &sig, &c, &mut c14n_buf);
                (Some(c), chain, o)
            }
        },
    };
    let references = sig
        .refs
        .iter()
        .map(|r| {
            let (target, outcome) = check_ref(
                crypto,
                doc,
                &loc,
                r,
                parts,
                &payload,
                pending,
                &mut c14n_buf,
            );
            RefReport {
                reference: r.with_xml(),
                target,
                outcome,
            }
        })
        .collect();
    Ok(SignatureReport {
        signature_method: sig.method.to_string(),
        prefix_list: sig.c14n.inclusive_prefixes.clone(),
        signer,
        signer_chain: chain,
        signed_info,
        references,
    })
}

fn check_sig_suite(method: &str, suite: Option<Suite>) -> Result<(), SecurityError> {
    if method != ns::ALG_RSA_SHA256 && method != ns::ALG_ED25519 {
        return Err(SecurityError::UnknownAlgorithm {
            what: "signature method",
            uri: method.to_string(),
        });
    }
    let allowed = match suite {
        None => true,
        Some(Suite::Edelivery115) => method == ns::ALG_RSA_SHA256,
        Some(Suite::Edelivery20) => method == ns::ALG_ED25519,
    };
    if allowed {
        Ok(())
    } else {
        Err(SecurityError::AlgorithmNotAllowed {
            suite: suite.map(suite_name).unwrap_or("any"),
            uri: method.to_string(),
        })
    }
}

/// [`check_ref`] over `refs`, stopping at the first failure; each passed reference's target
/// kind is added to `targets` (the coverage check reads them). Same-document references run
/// before decryption and attachment references after it, over the same code.
#[allow(clippy::too_many_arguments)]
fn check_refs<'d, 'r, P: InPart>(
    crypto: &dyn Crypto,
    doc: &Document,
    loc: &Located<'_>,
    refs: impl Iterator<Item = &'r ParsedRef<'d>>,
    parts: &[P],
    payload: &[String],
    c14n_buf: &mut Vec<u8>,
    targets: &mut Vec<(&'static str, &'d str)>,
) -> Result<(), SecurityError>
where
    'd: 'r,
{
    for r in refs {
        let (t, o) = check_ref(crypto, doc, loc, r, parts, payload, &[], c14n_buf);
        if let Some(e) = outcome_error(r.uri, &o) {
            return Err(e);
        }
        if let Some(t) = t {
            targets.push((t, r.uri));
        }
    }
    Ok(())
}

fn outcome_error(uri: &str, o: &RefOutcome) -> Option<SecurityError> {
    match o {
        RefOutcome::Match => None,
        RefOutcome::Mismatch => Some(SecurityError::DigestMismatch {
            uri: uri.to_string(),
        }),
        RefOutcome::TargetMissing => Some(SecurityError::ReferenceUnresolved {
            uri: uri.to_string(),
            reason: "no element has this id".into(),
        }),
        RefOutcome::AttachmentMissing => Some(SecurityError::ReferenceUnresolved {
            uri: uri.to_string(),
            reason: "no such MIME part".into(),
        }),
        RefOutcome::NotDecrypted => Some(SecurityError::ReferenceUnresolved {
            uri: uri.to_string(),
            reason: "part could not be decrypted".into(),
        }),
        RefOutcome::Wrapping(w) => Some(SecurityError::Wrapping(w.clone())),
        RefOutcome::Unsupported(u) => Some(SecurityError::UnknownAlgorithm {
            what: "reference",
            uri: u.clone(),
        }),
    }
}

/// Security processing of an inbound message: see the module documentation for the order.
/// `parts` are the MIME parts after the root (Content-ID without angle brackets).
pub fn process_inbound(
    rx: &Receiver<'_>,
    soap: &[u8],
    parts: Vec<Attachment>,
) -> Result<Verified<InboundMessage>, SecurityError> {
    process_core(rx, soap, parts)
}

/// [`process_inbound`] over parts that may be files (the gateway's receiving path): an
/// encrypted file part is decrypted streaming into `<path>.plain` while its SHA-256 is computed
/// for the signature reference; the GCM tag is checked at the end and a failure removes the
/// plaintext file (EBMS:0102). The plaintext files are reachable only through the `Verified`
/// result, i.e. after every check of [`process_inbound`] passed; on `Err` the caller removes
/// whatever is left in its spool directory.
pub fn process_inbound_parts(
    rx: &Receiver<'_>,
    soap: &[u8],
    parts: Vec<Part>,
) -> Result<Verified<InboundMessage<Part>>, SecurityError> {
    process_core(rx, soap, parts)
}

/// [`process_inbound_parts`] over the envelope the caller already parsed (the gateway's
/// receiving path parses it under its configured limits to read the ebMS header first):
/// parsing it a second time was ~3.4 % of a receiving gateway's CPU per message (issue 8).
pub fn process_inbound_document(
    rx: &Receiver<'_>,
    doc: Document,
    parts: Vec<Part>,
) -> Result<Verified<InboundMessage<Part>>, SecurityError> {
    process_doc(rx, doc, parts)
}

fn process_core<P: InPart>(
    rx: &Receiver<'_>,
    soap: &[u8],
    parts: Vec<P>,
) -> Result<Verified<InboundMessage<P>>, SecurityError> {
    process_doc(rx, Document::parse(soap)?, parts)
}

fn process_doc<P: InPart>(
    rx: &Receiver<'_>,
    doc: Document,
    parts: Vec<P>,
) -> Result<Verified<InboundMessage<P>>, SecurityError> {
    let (signer, chain, trust_path, references, payloads, encrypted_cids, messaging) = {
        let loc = locate(&doc)?;
        let payload = payload_cids(loc.messaging);
        let sec = match loc.security {
            Some(s) => s,
            None => {
                return Err(SecurityError::Policy(
                    "no wsse:Security header: message is not signed".into(),
                ))
            }
        };
        // 2. the signature
        let sig_node = match the_signature(sec)? {
            Some(s) => s,
            None => return Err(SecurityError::Policy("message is not signed".into())),
        };
        let sig = parse_signature(sig_node)?;
        check_sig_suite(sig.method, rx.policy.suite)?;
        // 3. key, SignedInfo, trust
        let key_info = sig
            .key_info
            .ok_or_else(|| SecurityError::KeyNotFound("Signature has no KeyInfo".into()))?;
        let tr = read_token_ref(key_info)?;
        let (signer, chain) = resolve_signer(&doc, sec, &tr, rx.trust, rx.partners)?;
        // One buffer for the canonical SignedInfo, eb:Messaging and Body (a signed AS4
        // SignedInfo is ~1.5 KB canonical).
        let mut c14n_buf = Vec::with_capacity(2048);
        match check_signed_info(rx.crypto, &doc, &sig, &signer, &mut c14n_buf) {
            SignedInfoOutcome::Valid => {}
            SignedInfoOutcome::UnsupportedAlgorithm(u) => {
                return Err(SecurityError::UnknownAlgorithm {
                    what: "signature method",
                    uri: u,
                })
            }
            _ => return Err(SecurityError::BadSignature),
        }
        let trust_path = rx
            .trust
            .check(&signer, &chain, rx.at, Purpose::Signing)
            .map_err(|e| SecurityError::Untrusted(Box::new(e)))?;
        // reference bookkeeping
        let mut seen: Vec<&str> = Vec::new();
        for r in &sig.refs {
            if seen.contains(&r.uri) {
                return Err(SecurityError::Wrapping(format!(
                    "{} is referenced twice in SignedInfo",
                    r.uri
                )));
            }
            seen.push(r.uri);
        }
        // 4. same-document references (each canonicalized and digested once)
        let mut targets: Vec<(&'static str, &str)> = Vec::with_capacity(sig.refs.len());
        check_refs(
            rx.crypto,
            &doc,
            &loc,
            sig.refs.iter().filter(|r| !r.uri.starts_with("cid:")),
            &parts,
            &payload,
            &mut c14n_buf,
            &mut targets,
        )?;
        // 5. decryption
        let mut parts = parts;
        let dec = super::decrypt::decrypt_parts(
            rx.crypto,
            &doc,
            sec,
            rx.keys,
            &mut parts,
            rx.policy.suite,
            rx.policy.allow_legacy_oaep,
        )?;
        // 6. attachment references (the same-document ones passed in step 4)
        check_refs(
            rx.crypto,
            &doc,
            &loc,
            sig.refs.iter().filter(|r| r.uri.starts_with("cid:")),
            &parts,
            &payload,
            &mut c14n_buf,
            &mut targets,
        )?;
        // 7. coverage
        if loc.messaging.is_none() {
            return Err(SecurityError::Policy("no eb:Messaging header block".into()));
        }
        if !targets.iter().any(|(t, _)| *t == "Messaging") {
            return Err(SecurityError::Policy("eb:Messaging is not signed".into()));
        }
        if !targets.iter().any(|(t, _)| *t == "Body") {
            return Err(SecurityError::Policy("the SOAP Body is not signed".into()));
        }
        let mut payloads: Vec<P> = Vec::with_capacity(payload.len());
        let mut parts: Vec<Option<P>> = parts.into_iter().map(Some).collect();
        for cid in &payload {
            if !targets
                .iter()
                .any(|(t, u)| *t == "attachment" && u.strip_prefix("cid:") == Some(cid.as_str()))
            {
                return Err(SecurityError::Policy(format!(
                    "payload part cid:{cid} is not signed"
                )));
            }
            if rx.policy.require_encryption && !dec.encrypted_cids.iter().any(|c| c == cid) {
                return Err(SecurityError::Policy(format!(
                    "payload part cid:{cid} is not encrypted"
                )));
            }
            // Move the part out (no copy); a cid listed twice in PayloadInfo is delivered twice.
            let part = match parts
                .iter_mut()
                .find(|p| p.as_ref().is_some_and(|p| p.content_id() == cid))
            {
                Some(slot) => slot.take(),
                None => payloads.iter().find(|p| p.content_id() == cid).cloned(),
            }
            .ok_or_else(|| SecurityError::MissingPart(cid.clone()))?;
            payloads.push(part);
        }
        let references = sig.refs.iter().map(|r| r.node.id()).collect::<Vec<_>>();
        (
            signer,
            chain,
            trust_path,
            references,
            payloads,
            dec.encrypted_cids,
            loc.messaging.map(|m| m.id()),
        )
    };
    Ok(Verified {
        value: InboundMessage {
            doc,
            messaging,
            payloads,
            encrypted_cids,
        },
        signer,
        signer_chain: chain,
        trust_path,
        references: OnceLock::new(),
        pending_references: references,
    })
}

/// Diagnostics: tries to decrypt the parts with `rx.keys` (any suite, legacy OAEP allowed), then
/// reports the signature without failing early. Returns the report, the parts after the attempt
/// (plaintext where decryption worked) and the decryption error, if any.
pub fn inspect_message(
    rx: &Receiver<'_>,
    soap: &[u8],
    parts: &[Attachment],
) -> Result<(SignatureReport, Vec<Attachment>, Option<SecurityError>), SecurityError> {
    let doc = Document::parse(soap)?;
    let loc = locate(&doc)?;
    let mut work = parts.to_vec();
    let mut pending = encrypted_targets(loc.security);
    let mut dec_err = None;
    if let Some(sec) = loc.security {
        if !pending.is_empty() {
            match super::decrypt::decrypt_parts(
                rx.crypto, &doc, sec, rx.keys, &mut work, None, true,
            ) {
                Ok(_) => pending.clear(),
                Err(e) => {
                    work = parts.to_vec();
                    dec_err = Some(e);
                }
            }
        }
    }
    let report = inspect_doc(rx.crypto, &doc, &work, &pending, rx.trust, rx.partners)?;
    Ok((report, work, dec_err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> [u8; 32] {
        let mut s = Sha256Sink::new();
        s.0.update(data);
        s.finish()
    }

    /// The file path (streaming, both sides) gives the digest of the in-memory transform, for
    /// every kind, for XML that parses and XML that does not, small and large.
    #[test]
    fn file_digest_equals_memory_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut big =
            String::from("<?xml version=\"1.0\"?><q:r xmlns:q=\"urn:q\" b=\"2\" a=\"1\">");
        while big.len() < XML_TREE_MAX + 1000 {
            big.push_str("<e x='&lt;'>t\r\n&amp;<![CDATA[<>]]></e>");
        }
        big.push_str("</q:r>");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "application/xml",
                b"<?xml version='1.0'?><a b='1' a='2'><c/></a>\n".to_vec(),
            ),
            ("text/xml", b"<a>not closed".to_vec()),
            ("application/x-ebrs+xml", big.clone().into_bytes()),
            (
                "application/x-ebrs+xml",
                format!("{big}<trailing/>").into_bytes(),
            ),
            ("text/plain", b"a\nb\r\nc\n\n".repeat(50_000)),
            ("application/pdf", b"%PDF\n\x00\xff".to_vec()),
        ];
        for (i, (mt, data)) in cases.iter().enumerate() {
            let p = dir.path().join(format!("{i}"));
            std::fs::write(&p, data).expect("write");
            let mem = sha(&digest_input(mt, data));
            assert_eq!(
                sha256_part_file(mt, &p).expect("digest"),
                mem,
                "case {i} ({mt})"
            );
        }
        // The two XML kinds really differ from the raw bytes, and the broken one does not.
        assert_ne!(
            sha(&digest_input("application/xml", &cases[0].1)),
            sha(&cases[0].1)
        );
        assert_ne!(
            sha(&digest_input("application/xml", big.as_bytes())),
            sha(big.as_bytes())
        );
        assert_eq!(
            sha(&digest_input("text/xml", &cases[1].1)),
            sha(&cases[1].1)
        );
        // Over the tree's old 16 MiB default limit, a document is still canonicalized.
        let mut huge = String::from("<a>");
        huge.push_str(&"x\r\n".repeat(6 << 20));
        huge.push_str("</a>");
        let p = dir.path().join("huge");
        std::fs::write(&p, &huge).expect("write");
        let canonical = huge.replace("\r\n", "\n");
        assert_eq!(
            sha256_part_file("application/xml", &p).expect("digest"),
            sha(canonical.as_bytes())
        );
    }
}
