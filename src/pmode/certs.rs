//! Certificate files named by P-Modes and the configuration: loaded once, checked for the
//! purpose the security suite gives them.
//!
//! rustls-webpki does not check leaf keyUsage bits (guide §1.5), so the checks here are the
//! ones a misconfigured P-Mode would otherwise only reveal at the first message.

use std::path::{Path, PathBuf};

use ::time::OffsetDateTime;

use crate::pki::{load_certificates, KeyType};

/// What a certificate is used for; decides key algorithm and keyUsage bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertPurpose {
    /// eDelivery 1.15 message signing: RSA, digitalSignature (digest §3.2, §3.4).
    Signing115,
    /// eDelivery 1.15 encryption (RSA-OAEP key transport): RSA, keyEncipherment (digest §3.2).
    Encryption115,
    /// eDelivery 2.0 signing: Ed25519 (OID 1.3.101.112), digitalSignature (digest §4.2).
    Signing20,
    /// eDelivery 2.0 key agreement: X25519 (OID 1.3.101.110), keyAgreement (digest §4.2).
    KeyAgreement20,
    /// TLS server/client certificate: any key, digitalSignature (digest §3.3).
    Tls,
    /// Trust anchor: a CA certificate (basicConstraints CA, keyCertSign).
    Anchor,
}

impl CertPurpose {
    fn describe(self) -> &'static str {
        match self {
            CertPurpose::Signing115 => {
                "eDelivery 1.15 signing (RSA, keyUsage digitalSignature, digest §3.2)"
            }
            CertPurpose::Encryption115 => {
                "eDelivery 1.15 encryption (RSA, keyUsage keyEncipherment, digest §3.2)"
            }
            CertPurpose::Signing20 => {
                "eDelivery 2.0 signing (Ed25519, keyUsage digitalSignature, digest §4.2)"
            }
            CertPurpose::KeyAgreement20 => {
                "eDelivery 2.0 key agreement (X25519, keyUsage keyAgreement, digest §4.2)"
            }
            CertPurpose::Tls => "TLS (keyUsage digitalSignature)",
            CertPurpose::Anchor => "trust anchor (CA certificate with keyCertSign)",
        }
    }
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_X25519: &str = "1.3.101.110";
const OID_EC: &str = "1.2.840.10045.2.1";

/// The SPKI algorithm OID operators see in `openssl x509 -text`, for the error message.
fn key_oid(k: KeyType) -> &'static str {
    match k {
        KeyType::Rsa => OID_RSA,
        KeyType::Ed25519 => OID_ED25519,
        KeyType::X25519 => OID_X25519,
        KeyType::P256 => OID_EC,
        KeyType::Other => "(unsupported)",
    }
}

/// A certificate file loaded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFile {
    /// Resolved path.
    pub path: PathBuf,
    /// DER of the (first) certificate in the file.
    pub der: Vec<u8>,
    /// Subject, for logs and `pmode explain`.
    pub subject: String,
}

/// Loads the first certificate of a PEM (or DER) file and checks it for `purpose` at `now`.
/// Errors are operator-facing sentences.
pub fn load_cert(
    path: &Path,
    purpose: CertPurpose,
    now: OffsetDateTime,
) -> Result<CertFile, String> {
    load_cert_ahead(path, purpose, now, false)
}

/// [`load_cert`], optionally accepting a certificate that is not valid *yet*: in a rollover
/// list the successor is configured before its window opens, so the switch needs no edit at
/// the moment itself (docs/lifecycle.md). Expired certificates are refused either way.
pub fn load_cert_ahead(
    path: &Path,
    purpose: CertPurpose,
    now: OffsetDateTime,
    allow_not_yet_valid: bool,
) -> Result<CertFile, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("certificate file {} cannot be read: {e}", path.display()))?;
    // One certificate parser in the product: the pki room's (it also serves the message path).
    let cert = load_certificates(&bytes)
        .map_err(|e| format!("certificate file {} does not parse: {e}", path.display()))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("certificate file {} holds no certificate", path.display()))?;
    let der = cert.der().to_vec();
    let not_after = cert.not_after();
    let not_before = cert.not_before();
    if now > not_after {
        return Err(format!(
            "certificate {} expired on {}",
            path.display(),
            not_after.date()
        ));
    }
    if now < not_before && !allow_not_yet_valid {
        return Err(format!(
            "certificate {} is not valid before {}",
            path.display(),
            not_before.date()
        ));
    }
    let alg = key_oid(cert.key_type());
    let ku = cert.key_usage();
    let (want_alg, ok_usage) = match purpose {
        CertPurpose::Signing115 => (Some(OID_RSA), ku.is_some_and(|k| k.digital_signature)),
        CertPurpose::Encryption115 => (Some(OID_RSA), ku.is_some_and(|k| k.key_encipherment)),
        CertPurpose::Signing20 => (Some(OID_ED25519), ku.is_some_and(|k| k.digital_signature)),
        CertPurpose::KeyAgreement20 => (Some(OID_X25519), ku.is_some_and(|k| k.key_agreement)),
        // A TLS certificate without keyUsage is legal (RFC 5280 §4.2.1.3 leaves it optional).
        CertPurpose::Tls => (None, ku.is_none_or(|k| k.digital_signature)),
        CertPurpose::Anchor => (None, cert.is_ca() && ku.is_none_or(|k| k.key_cert_sign)),
    };
    if let Some(want) = want_alg {
        if alg != want {
            return Err(format!(
                "certificate {} has key algorithm {alg}, but {} needs {want}",
                path.display(),
                purpose.describe()
            ));
        }
    }
    if !ok_usage {
        return Err(format!(
            "certificate {} lacks the key usage for {}",
            path.display(),
            purpose.describe()
        ));
    }
    Ok(CertFile {
        path: path.to_path_buf(),
        subject: cert.subject().to_string(),
        der,
    })
}

impl CertFile {
    /// Validity window (not before, not after) of the certificate, if it parses.
    pub fn window(&self) -> Option<(OffsetDateTime, OffsetDateTime)> {
        crate::pki::Certificate::from_der(&self.der)
            .ok()
            .map(|c| (c.not_before(), c.not_after()))
    }

    /// Whether the certificate is inside its validity window at `at`.
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.window().is_some_and(|(nb, na)| nb <= at && at <= na)
    }
}

/// Of a rollover list, the certificate to use at `at`: the newest (latest not-before) among
/// those valid at `at`; `None` if none is.
pub fn newest_valid(certs: &[CertFile], at: OffsetDateTime) -> Option<&CertFile> {
    certs
        .iter()
        .filter_map(|c| c.window().map(|w| (c, w)))
        .filter(|(_, (nb, na))| *nb <= at && at <= *na)
        .max_by_key(|(_, (nb, _))| *nb)
        .map(|(c, _)| c)
}
