//! Security errors and their one EBMS code each (digest §2.6; architecture "Errors").

use crate::ebms::codes::EbmsCode;
use crate::pki::PkiError;
use crate::xml::XmlError;

/// Why a message failed security processing. `ebms_code()` gives the code reported to the peer.
///
/// | variant group | code |
/// |---|---|
/// | signature value, digest, key resolution, trust, wrapping, unknown algorithm | EBMS:0101 FailedAuthentication |
/// | key transport / agreement / payload decryption | EBMS:0102 FailedDecryption |
/// | missing signature or encryption, algorithm not allowed by the suite, unsigned required part | EBMS:0103 PolicyNoncompliance |
/// | receipt signature/trust/reference mismatch | EBMS:0302 InvalidReceipt |
/// | not a SOAP envelope / malformed XML | EBMS:0009 InvalidHeader |
/// | payload part named by PayloadInfo absent from the MIME package | EBMS:0007 MimeInconsistency |
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityError {
    #[error("malformed XML: {0}")]
    Xml(#[from] XmlError),
    #[error("not a SOAP envelope: {0}")]
    NotSoap(String),
    #[error("malformed security header: {0}")]
    Malformed(String),
    #[error("signature wrapping or ambiguous reference: {0}")]
    Wrapping(String),
    #[error("unknown or unsupported algorithm {what}: {uri}")]
    UnknownAlgorithm { what: &'static str, uri: String },
    #[error("signature key not found: {0}")]
    KeyNotFound(String),
    #[error("signature value does not verify")]
    BadSignature,
    #[error("digest mismatch for reference {uri}")]
    DigestMismatch { uri: String },
    #[error("reference {uri} cannot be checked: {reason}")]
    ReferenceUnresolved { uri: String, reason: String },
    #[error("signer not trusted: {0}")]
    Untrusted(Box<PkiError>),
    #[error("decryption failed: {0}")]
    Decryption(String),
    #[error("policy: {0}")]
    Policy(String),
    #[error("algorithm {uri} is not allowed by the {suite} suite")]
    AlgorithmNotAllowed { suite: &'static str, uri: String },
    #[error("payload part cid:{0} named in PayloadInfo is missing from the message")]
    MissingPart(String),
    #[error("invalid receipt: {0}")]
    InvalidReceipt(String),
    #[error("cannot build message: {0}")]
    Build(String),
}

impl SecurityError {
    /// The EBMS error code this failure is reported with.
    pub fn ebms_code(&self) -> EbmsCode {
        use SecurityError::*;
        match self {
            Xml(_) | NotSoap(_) => EbmsCode::InvalidHeader,
            Malformed(_)
            | Wrapping(_)
            | UnknownAlgorithm { .. }
            | KeyNotFound(_)
            | BadSignature
            | DigestMismatch { .. }
            | ReferenceUnresolved { .. }
            | Untrusted(_) => EbmsCode::FailedAuthentication,
            Decryption(_) => EbmsCode::FailedDecryption,
            Policy(_) | AlgorithmNotAllowed { .. } => EbmsCode::PolicyNoncompliance,
            MissingPart(_) => EbmsCode::MimeInconsistency,
            InvalidReceipt(_) => EbmsCode::InvalidReceipt,
            Build(_) => EbmsCode::Other,
        }
    }
}
