//! Keys, certificates and trust decisions (the clock is passed in, never read).
//!
//! - [`keys`]: private keys (PKCS#8 and PKCS#1 RSA, Ed25519, X25519, P-256) loaded into
//!   aws-lc-rs objects; the encoded bytes we copy are zeroized, and `Debug` never shows them.
//! - [`cert`]: X.509 certificates and the facts the gateway needs (subject, issuer, serial,
//!   SHA-256 fingerprint, SKI, key type, validity, key usage), parsed with x509-parser.
//! - [`trust`]: the trust decision for a partner certificate at a given time: pinned partner
//!   certificate or chain to a configured anchor (rustls-webpki with a custom EKU policy, because
//!   eDelivery signing/encryption certificates carry no TLS EKU; digest §12.3), validity,
//!   keyUsage bits (webpki does not check them; rust-stack §1.5) and optional local CRLs.
//!
//! Every error that concerns a certificate names it (subject, serial, SHA-256 fingerprint) so an
//! operator can find it in a trust store.

pub mod cert;
pub mod der;
pub mod issue;
pub mod keys;
pub mod trust;

pub use cert::{load_certificates, CertName, Certificate, KeyType, KeyUsageBits};
pub use keys::{load_private_key, PrivateKey};
pub use trust::{Purpose, TrustPath, TrustStore};

/// Why a key, certificate or trust decision failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkiError {
    /// No usable PEM block / DER structure.
    #[error("no certificate found in input")]
    NoCertificate,
    #[error("certificate cannot be parsed: {0}")]
    BadCertificate(String),
    /// The key bytes are not a supported private key (the bytes are never echoed).
    #[error("private key rejected: {0}")]
    BadKey(String),
    #[error("certificate {cert} expired at {not_after} (checked at {at})")]
    Expired {
        cert: CertName,
        not_after: String,
        at: String,
    },
    #[error("certificate {cert} is not valid before {not_before} (checked at {at})")]
    NotYetValid {
        cert: CertName,
        not_before: String,
        at: String,
    },
    #[error("certificate {cert} lacks key usage {needed}")]
    KeyUsage {
        cert: CertName,
        needed: &'static str,
    },
    #[error("certificate {cert} has key type {found}, expected {expected}")]
    WrongKeyType {
        cert: CertName,
        found: &'static str,
        expected: &'static str,
    },
    #[error("certificate {cert} is revoked")]
    Revoked { cert: CertName },
    #[error("certificate {cert} is not trusted: {reason}")]
    Untrusted { cert: CertName, reason: String },
    #[error("CRL cannot be used: {0}")]
    BadCrl(String),
}
