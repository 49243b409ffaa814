//! WS-Security for eDelivery AS4 1.15 (RSA) and 2.0 (Ed25519/X25519): sign, verify, encrypt,
//! decrypt, NRR receipts.
//!
//! Receiving ([`verify::process_inbound`]) returns a [`Verified`] value, a *different type* from
//! anything a parser produces, so code downstream cannot confuse an authenticated message with a
//! merely parsed one. Sending ([`sign::secure_outbound`]) signs first and then encrypts the
//! payload parts (digest §3.2 "Order"). [`receipt`] builds and checks signed NRR receipts
//! (digest §2.5). All primitives go through the [`crypto::Crypto`] seam.
//!
//! See `docs/security.md` for the order of checks, the EBMS mapping table and the wrapping
//! defences.

pub mod capture;
pub mod crypto;
pub mod decrypt;
mod error;
pub mod receipt;
pub mod sign;
pub mod verify;
mod wsse;
mod xmlw;

pub use error::SecurityError;
pub use verify::{
    process_inbound, process_inbound_document, process_inbound_parts, InboundMessage,
    InboundPolicy, Receiver, RefOutcome, ReferenceSource, SignatureReport, Verified,
};

use crate::pki::{Certificate, PrivateKey};

/// The algorithm suite, chosen per P-Mode/partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    /// eDelivery AS4 1.15: RSA-SHA256, RSA-OAEP (SHA-256/MGF1-SHA-256), AES-128-GCM (digest §3.2).
    Edelivery115,
    /// eDelivery AS4 2.0: Ed25519, X25519 + HKDF-SHA256 + AES-128-KW, AES-128-GCM (digest §4.2).
    Edelivery20,
}

/// A MIME payload part as the security layer sees it: Content-ID without angle brackets, media
/// type, bytes (compressed and/or encrypted as on the wire, or plaintext after decryption).
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    pub content_id: String,
    pub mime_type: String,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Attachment(cid:{}, {}, {} bytes)",
            self.content_id,
            self.mime_type,
            self.data.len()
        )
    }
}

impl Attachment {
    pub fn new(content_id: impl Into<String>, mime_type: impl Into<String>, data: Vec<u8>) -> Self {
        Attachment {
            content_id: content_id.into(),
            mime_type: mime_type.into(),
            data,
        }
    }
}

/// Where a payload part's bytes are: in memory, or in a file (a spooled MIME part, 1 GB parts).
#[derive(Clone, PartialEq, Eq)]
pub enum PartSource {
    Memory(Vec<u8>),
    File {
        path: std::path::PathBuf,
        size: u64,
        /// SHA-256 of the file's content when known (saves a pass over the file).
        sha256: Option<[u8; 32]>,
    },
}

impl std::fmt::Debug for PartSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartSource::Memory(d) => write!(f, "Memory({} bytes)", d.len()),
            PartSource::File { path, size, .. } => {
                write!(f, "File({}, {size} bytes)", path.display())
            }
        }
    }
}

/// A MIME payload part whose bytes may be in a file: the receiving side's streaming twin of
/// [`Attachment`] ([`process_inbound_parts`]). Encrypted file parts are decrypted into a new
/// file next to the ciphertext (`<path>.plain`); that file is only reachable through the
/// [`Verified`] result, i.e. after the GCM tag *and* the signature reference were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub content_id: String,
    pub mime_type: String,
    pub source: PartSource,
}

impl From<Attachment> for Part {
    fn from(a: Attachment) -> Self {
        Part {
            content_id: a.content_id,
            mime_type: a.mime_type,
            source: PartSource::Memory(a.data),
        }
    }
}

/// One of our private keys together with its certificate (decryption, signing).
pub struct OwnKey {
    pub key: PrivateKey,
    pub cert: Certificate,
    /// The rest of the chain (leaf excluded), for PKIPath tokens.
    pub chain: Vec<Certificate>,
}

impl std::fmt::Debug for OwnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnKey({:?}, {})", self.key.key_type(), self.cert.name())
    }
}

/// A `ds:Reference` as signed (sender side) or as received and verified: the material of an NRR
/// receipt's `ebbp:MessagePartNRInformation` (digest §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReference {
    /// `@URI` (`#id` or `cid:…`).
    pub uri: String,
    /// `ds:DigestMethod/@Algorithm`.
    pub digest_method: String,
    /// `ds:DigestValue`, base64 as written (whitespace removed).
    pub digest_value: String,
    /// The whole `ds:Reference` element, exclusive-canonicalized (self-contained namespaces), to be
    /// copied verbatim into a receipt.
    pub xml: String,
}

/// How the recipient / signer certificate is referenced from a `wsse:SecurityTokenReference`
/// (digest §3.2 "Token references"; a per-partner setting, digest §12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyReference {
    /// `wsse:KeyIdentifier` X509SubjectKeyIdentifier (the 1.15 example's choice for EncryptedKey).
    #[default]
    Ski,
    /// `ds:X509Data/ds:X509IssuerSerial`.
    IssuerSerial,
    /// A `wsse:BinarySecurityToken` in the header and a `wsse:Reference` to it.
    Bst,
}

/// Value type of the signer's BinarySecurityToken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenType {
    /// `#X509v3`: the leaf only.
    #[default]
    X509v3,
    /// `#X509PKIPathv1`: the chain (recommended for 2.0 and dynamic receivers, digest §3.6, §4.2).
    PkiPath,
}
