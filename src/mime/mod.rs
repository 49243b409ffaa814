//! MIME multipart/related (SOAP with Attachments): streaming parser and writer, with limits.
//!
//! An AS4 message travels as one HTTP body: either plain SOAP (`application/soap+xml`, signals)
//! or `multipart/related` with the SOAP envelope as the root part and every payload in a part
//! of its own (digest §2.2; eDelivery puts payloads **only** in MIME parts, [ED115] §3.2.3).
//!
//! * [`parse_content_type`] reads the envelope `Content-Type` (boundary, `type`, `start`,
//!   `start-info`) with the `mime` crate.
//! * [`MimeReader`] streams parts one at a time: the root part (the SOAP envelope) comes out whole
//!   in memory, bounded by [`MimeLimits::max_root_bytes`]; payload parts come out as a stream of
//!   chunks so a 1 GB payload never has to fit in memory. The boundary scanner is our own
//!   (`memchr::memmem`), not multer: multer only finds CRLF delimiters, and operators' captured
//!   files (phase4's `WrongCompression.mime`) use bare LF; it is also faster (see `docs/mime.md`).
//! * [`collect`] and [`spool_to_dir`] are ready-made sinks (memory; files with size and SHA-256).
//! * [`MimeWriter`] builds the body as a stream, root part first, with the matching
//!   `Content-Type` header value.
//!
//! This room does no protocol logic and never touches the store: bytes in, parts out.
//! Every error is a [`MimeError`], which says the ebMS code it maps to ([`MimeError::ebms_code`]).

mod content_type;
mod decode;
mod reader;
mod sink;
mod writer;

pub use content_type::{parse_content_type, split_headers, EnvelopeType, MultipartRelated};
pub use reader::{
    ByteStream, MimeReader, Part, PartHeaders, PayloadPart, RootPart, TransferEncoding,
};
pub use sink::{
    collect, spool_scratch, spool_to_dir, CollectedMessage, CollectedPart, SpooledMessage,
    SpooledPart,
};
pub use writer::{new_boundary, new_content_id, MimeWriter, PartBody};

use crate::ebms::codes::EbmsCode;

/// Limits enforced while streaming, so a hostile or broken peer cannot make the gateway buffer or
/// spool without bound. Byte limits count **wire** bytes (before base64 decoding, which only
/// shrinks data), so they bound what the peer can make us read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MimeLimits {
    /// Most MIME parts in one message, root included.
    pub max_parts: usize,
    /// Most bytes in the header block of one part (up to and including the blank line).
    pub max_header_bytes: usize,
    /// Most bytes in the root part (the SOAP envelope, held in memory).
    pub max_root_bytes: u64,
    /// Most bytes in one payload part.
    pub max_part_bytes: u64,
    /// Most bytes in the whole HTTP body (preamble, delimiters and epilogue included).
    pub max_total_bytes: u64,
}

impl Default for MimeLimits {
    /// 128 parts, 16 KiB of headers per part, a 4 MiB envelope, 1 GiB per payload, 2 GiB total.
    fn default() -> Self {
        MimeLimits {
            max_parts: 128,
            max_header_bytes: 16 * 1024,
            max_root_bytes: 4 * 1024 * 1024,
            max_part_bytes: 1024 * 1024 * 1024,
            max_total_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

/// Why a MIME message was refused (or could not be read or written).
///
/// All variants except [`MimeError::Input`], [`MimeError::Spool`] and
/// [`MimeError::InvalidHeaderValue`] are the sender's fault and map to EBMS:0007
/// MimeInconsistency ("MIME usage not as required", [EBMS3] §6.7.1; digest §2.2 last bullet:
/// MIME errors are reported per SwA [EBMS3] §5.1.2.2).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MimeError {
    /// The envelope `Content-Type` is not a parseable media type (RFC 2045 §5.1).
    #[error("Content-Type {value:?} cannot be parsed: {reason}")]
    InvalidContentType { value: String, reason: String },
    /// Neither `multipart/related` nor a SOAP media type: an AS4 message is SOAP, optionally
    /// packaged as SwA (digest §2.2, [EBMS3] §5.1.1).
    #[error("media type {0:?} is not an AS4 message (expected multipart/related or application/soap+xml)")]
    UnsupportedMediaType(String),
    /// `multipart/related` without a `boundary` parameter (RFC 2046 §5.1.1: boundary is required).
    #[error("multipart/related Content-Type has no boundary parameter")]
    MissingBoundary,
    /// The boundary parameter breaks RFC 2046 §5.1.1 (1 to 70 characters, no trailing space).
    #[error("invalid boundary {0:?}: must be 1 to 70 characters, not ending in a space")]
    InvalidBoundary(String),
    /// The body contains no delimiter line `--boundary` at all (RFC 2046 §5.1.1).
    #[error("no delimiter line for the declared boundary found in the body")]
    NoDelimiter,
    /// The body ended before the close delimiter `--boundary--` (RFC 2046 §5.1.1): truncated upload.
    #[error("body truncated: no closing delimiter")]
    Truncated,
    /// The multipart body holds no part at all (RFC 2046 §5.1.1 requires at least one).
    #[error("multipart body has no parts")]
    NoParts,
    /// More parts than [`MimeLimits::max_parts`].
    #[error("more than {limit} MIME parts")]
    TooManyParts { limit: usize },
    /// A part header block larger than [`MimeLimits::max_header_bytes`].
    #[error("headers of part {index} exceed {limit} bytes")]
    HeadersTooLarge { index: usize, limit: usize },
    /// A header line that is not `name: value` (RFC 5322 §2.2) or not UTF-8.
    #[error("malformed header in part {index}: {reason}")]
    MalformedHeader { index: usize, reason: String },
    /// The same Content-ID on two parts: `cid:` references ([EBMS3] §5.2.2.13, RFC 2392) would be
    /// ambiguous.
    #[error("Content-ID <{0}> appears on more than one part")]
    DuplicateContentId(String),
    /// `start` names a Content-ID that no part carries ([EBMS3] §5.1.1, RFC 2387 §3.2).
    #[error("start parameter names <{0}> but no part has that Content-ID")]
    NoStartPart(String),
    /// The root part is not SOAP: SOAP 1.2 root MUST be `application/soap+xml` ([EBMS3] §5.1.4;
    /// `text/xml` is accepted for SOAP 1.1 samples).
    #[error("root part media type {0:?} is not SOAP (application/soap+xml or text/xml)")]
    RootNotSoap(String),
    /// The `type` parameter differs from the root part's media type ([EBMS3] §5.1.1, RFC 2387 §3.1).
    #[error("multipart/related type parameter {type_param:?} does not match root part media type {root:?}")]
    TypeMismatch { type_param: String, root: String },
    /// The root part exceeds [`MimeLimits::max_root_bytes`].
    #[error("root part exceeds {limit} bytes")]
    RootTooLarge { limit: u64 },
    /// A payload part exceeds [`MimeLimits::max_part_bytes`].
    #[error("part {index} exceeds {limit} bytes")]
    PartTooLarge { index: usize, limit: u64 },
    /// The whole body exceeds [`MimeLimits::max_total_bytes`].
    #[error("message exceeds {limit} bytes")]
    MessageTooLarge { limit: u64 },
    /// A transfer encoding we do not decode (quoted-printable, x-tokens). eDelivery sends
    /// `binary` ([ED115] §1.6 example) or `8bit` ([AS4] App. A.2); base64 is decoded for robustness.
    #[error("Content-Transfer-Encoding {encoding:?} of part {index} is not supported (binary, 8bit, 7bit, base64 are)")]
    UnsupportedTransferEncoding { index: usize, encoding: String },
    /// A base64 part whose content is not valid base64 (RFC 2045 §6.8).
    #[error("invalid base64 in part {index}: {reason}")]
    InvalidBase64 { index: usize, reason: String },
    /// A delimiter line followed by more than 256 bytes of white space (RFC 2046 §5.1.1 allows
    /// transport padding; we bound it so it cannot be used to make us buffer). A line that starts
    /// with `--boundary` followed by other text is not a delimiter and stays content.
    #[error("malformed delimiter line after part {index}")]
    MalformedDelimiter { index: usize },
    /// Reading the input stream failed (connection dropped, I/O error): not a MIME fault.
    #[error("reading the message failed: {0}")]
    Input(String),
    /// Writing a part to the spool failed: a local fault.
    #[error("spooling to {path} failed: {reason}")]
    Spool { path: String, reason: String },
    /// A header value given to the writer contains CR, LF or other control characters (it would
    /// inject headers) or is empty.
    #[error("invalid header value for {name}: {value:?}")]
    InvalidHeaderValue { name: &'static str, value: String },
}

impl MimeError {
    /// The ebMS error code to report: EBMS:0007 MimeInconsistency for everything the peer sent
    /// wrong (digest §2.2, §2.6), EBMS:0004 Other for local or transport faults (the architecture
    /// rule: no room invents a more specific code for a fault that is not the peer's).
    pub fn ebms_code(&self) -> EbmsCode {
        if self.is_peer_fault() {
            EbmsCode::MimeInconsistency
        } else {
            EbmsCode::Other
        }
    }

    /// True when the sender of the message is at fault (so an error signal, not a retry, is due).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(
            self,
            MimeError::Input(_) | MimeError::Spool { .. } | MimeError::InvalidHeaderValue { .. }
        )
    }
}
