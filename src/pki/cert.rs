//! X.509 certificates and the facts the gateway needs about them.

use std::fmt;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::der;
use super::PkiError;

/// Public key algorithm of a certificate or private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Rsa,
    Ed25519,
    X25519,
    P256,
    Other,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::Ed25519 => "Ed25519",
            KeyType::X25519 => "X25519",
            KeyType::P256 => "EC P-256",
            KeyType::Other => "other",
        }
    }
}

/// The keyUsage bits that matter to AS4 (RFC 5280 §4.2.1.3). `None` on the certificate means
/// the extension is absent (no restriction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyUsageBits {
    pub digital_signature: bool,
    pub non_repudiation: bool,
    pub key_encipherment: bool,
    pub key_agreement: bool,
    pub key_cert_sign: bool,
}

/// How errors and logs name a certificate: subject, serial (hex) and SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertName {
    pub subject: String,
    pub serial: String,
    pub sha256: String,
}

impl fmt::Display for CertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[subject \"{}\", serial {}, sha256 {}]",
            self.subject, self.serial, self.sha256
        )
    }
}

/// A parsed certificate (DER kept; facts extracted once). Shared: cloning one (every
/// received message clones the signer's from the token cache) copies a pointer, not the eight
/// buffers of [`CertData`].
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate(std::sync::Arc<CertData>);

#[derive(PartialEq, Eq)]
struct CertData {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    issuer_raw: Vec<u8>,
    serial: Vec<u8>,
    sha256: [u8; 32],
    ski: Vec<u8>,
    key_type: KeyType,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key_usage: Option<KeyUsageBits>,
    spki: Vec<u8>,
    public_key: Vec<u8>,
    is_ca: bool,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate{}", self.name())
    }
}

/// Loads every certificate from PEM (all `CERTIFICATE` blocks, in order) or from one DER
/// certificate.
pub fn load_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, PkiError> {
    let looks_pem = bytes.windows(10).take(4096).any(|w| w == b"-----BEGIN");
    if looks_pem {
        let mut out = Vec::new();
        for c in CertificateDer::pem_slice_iter(bytes) {
            let c = c.map_err(|e| PkiError::BadCertificate(format!("PEM: {e}")))?;
            out.push(Certificate::from_der(c.as_ref())?);
        }
        if out.is_empty() {
            return Err(PkiError::NoCertificate);
        }
        Ok(out)
    } else {
        Ok(vec![Certificate::from_der(bytes)?])
    }
}

impl Certificate {
    /// [`Certificate::from_der`] through a small process-wide cache keyed by the DER bytes:
    /// every inbound message carries its signer's certificate (BinarySecurityToken), and
    /// partners are few, so parsing and fingerprinting it again per message is wasted work.
    /// Only successful parses are kept (nothing about a rejected input is remembered), and the
    /// cache is emptied when it reaches its bound, so hostile senders cannot grow it.
    pub fn from_der_cached(der_bytes: &[u8]) -> Result<Self, PkiError> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        const MAX: usize = 256;
        static CACHE: OnceLock<Mutex<HashMap<Vec<u8>, Certificate>>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        if let Ok(map) = cache.lock() {
            if let Some(c) = map.get(der_bytes) {
                return Ok(c.clone());
            }
        }
        let cert = Certificate::from_der(der_bytes)?;
        if let Ok(mut map) = cache.lock() {
            if map.len() >= MAX {
                map.clear();
            }
            map.insert(der_bytes.to_vec(), cert.clone());
        }
        Ok(cert)
    }

    /// Parses one DER certificate (trailing bytes are refused).
    pub fn from_der(der_bytes: &[u8]) -> Result<Self, PkiError> {
        let (rest, x) = X509Certificate::from_der(der_bytes)
            .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(PkiError::BadCertificate(
                "trailing bytes after certificate".into(),
            ));
        }
        let der_bytes = &der_bytes[..der_bytes.len() - rest.len()];
        let spki = x.tbs_certificate.subject_pki.raw.to_vec();
        let public_key = x
            .tbs_certificate
            .subject_pki
            .subject_public_key
            .data
            .to_vec();
        let alg = x
            .tbs_certificate
            .subject_pki
            .algorithm
            .algorithm
            .as_bytes()
            .to_vec();
        let key_type = if alg == der::OID_RSA {
            KeyType::Rsa
        } else if alg == der::OID_ED25519 {
            KeyType::Ed25519
        } else if alg == der::OID_X25519 {
            KeyType::X25519
        } else if alg == [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] {
            // id-ecPublicKey; AS4 2.0's alternative option uses P-256
            let p256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
            let is_p256 = x
                .tbs_certificate
                .subject_pki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|o| o.as_bytes() == p256);
            if is_p256 {
                KeyType::P256
            } else {
                KeyType::Other
            }
        } else {
            KeyType::Other
        };
        let mut ski = Vec::new();
        let mut key_usage = None;
        let mut is_ca = false;
        for ext in x.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => ski = k.0.to_vec(),
                ParsedExtension::KeyUsage(ku) => {
                    key_usage = Some(KeyUsageBits {
                        digital_signature: ku.digital_signature(),
                        non_repudiation: ku.non_repudiation(),
                        key_encipherment: ku.key_encipherment(),
                        key_agreement: ku.key_agreement(),
                        key_cert_sign: ku.key_cert_sign(),
                    })
                }
                ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
                _ => {}
            }
        }
        if ski.is_empty() {
            // RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits, which is also
            // what WSS X.509 Token Profile §3.2.1 prescribes for certificates without the extension.
            ski = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                &public_key,
            )
            .as_ref()
            .to_vec();
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der_bytes).as_ref(),
        );
        Ok(Certificate(std::sync::Arc::new(CertData {
            der: der_bytes.to_vec(),
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            issuer_raw: x.issuer().as_raw().to_vec(),
            serial: x.raw_serial().to_vec(),
            sha256,
            ski,
            key_type,
            not_before: x.validity().not_before.to_datetime(),
            not_after: x.validity().not_after.to_datetime(),
            key_usage,
            spki,
            public_key,
            is_ca,
        })))
    }

    pub fn der(&self) -> &[u8] {
        &self.0.der
    }
    /// Subject DN in RFC 4514-like form as x509-parser renders it.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }
    /// The issuer Name DER (for matching against a CRL or an issuer's subject).
    pub fn issuer_raw(&self) -> &[u8] {
        &self.0.issuer_raw
    }
    /// Serial number as big-endian bytes (as encoded).
    pub fn serial(&self) -> &[u8] {
        &self.0.serial
    }
    /// Serial number in hex (leading zero bytes stripped).
    pub fn serial_hex(&self) -> String {
        let s: Vec<u8> = self
            .0
            .serial
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        if s.is_empty() {
            "00".into()
        } else {
            hex::encode(s)
        }
    }
    /// Serial number in decimal (`ds:X509SerialNumber` form).
    pub fn serial_decimal(&self) -> String {
        decimal_from_be(&self.0.serial)
    }
    pub fn sha256_fingerprint(&self) -> [u8; 32] {
        self.0.sha256
    }
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.0.sha256)
    }
    /// Subject Key Identifier (extension value, or the RFC 5280 method-1 SHA-1 when absent).
    pub fn ski(&self) -> &[u8] {
        &self.0.ski
    }
    pub fn key_type(&self) -> KeyType {
        self.0.key_type
    }
    pub fn not_before(&self) -> OffsetDateTime {
        self.0.not_before
    }
    pub fn not_after(&self) -> OffsetDateTime {
        self.0.not_after
    }
    /// keyUsage bits, `None` when the extension is absent.
    pub fn key_usage(&self) -> Option<KeyUsageBits> {
        self.0.key_usage
    }
    pub fn is_ca(&self) -> bool {
        self.0.is_ca
    }
    /// The DER SubjectPublicKeyInfo.
    pub fn spki(&self) -> &[u8] {
        &self.0.spki
    }
    /// The subjectPublicKey bits (RSAPublicKey DER for RSA, raw 32 bytes for Ed25519/X25519).
    pub fn public_key_bits(&self) -> &[u8] {
        &self.0.public_key
    }
    /// How errors name this certificate.
    pub fn name(&self) -> CertName {
        CertName {
            subject: self.0.subject.clone(),
            serial: self.serial_hex(),
            sha256: self.sha256_hex(),
        }
    }
    /// True when `at` is inside the validity period.
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        at >= self.0.not_before && at <= self.0.not_after
    }
    /// Does `issuer_dn` (as written in `ds:X509IssuerName`) and `serial_decimal` name this certificate?
    /// DNs are compared as sets of `TYPE=value` pairs, case-insensitive on types and trimmed,
    /// because Java (RFC 2253, reversed order) and x509-parser render them differently.
    pub fn matches_issuer_serial(&self, issuer_dn: &str, serial_decimal: &str) -> bool {
        let serial_ok = serial_decimal.trim().trim_start_matches('0')
            == self.serial_decimal().trim_start_matches('0');
        serial_ok && normalize_dn(issuer_dn) == normalize_dn(&self.0.issuer)
    }
}

/// Big-endian unsigned bytes → decimal string.
pub fn decimal_from_be(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = Vec::new(); // little-endian base-10
    for &b in bytes {
        let mut carry = b as u32;
        for d in digits.iter_mut() {
            let v = (*d as u32) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    if digits.is_empty() {
        return "0".into();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

fn normalize_dn(dn: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut esc = false;
    for c in dn.chars() {
        if esc {
            cur.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == ',' || c == '+' || c == ';' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    let mut out: Vec<(String, String)> = parts
        .iter()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let k = k.trim().to_ascii_uppercase();
            let k = match k.as_str() {
                "EMAILADDRESS" | "E" | "1.2.840.113549.1.9.1" => "EMAIL".to_string(),
                "S" => "ST".to_string(),
                _ => k,
            };
            Some((k, v.trim().to_string()))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal() {
        assert_eq!(decimal_from_be(&[0x01, 0x00]), "256");
        assert_eq!(decimal_from_be(&[0x00]), "0");
        assert_eq!(
            decimal_from_be(&[0xff, 0xff, 0xff, 0xff, 0xff]),
            "1099511627775"
        );
    }

    #[test]
    fn dn_normalisation() {
        assert_eq!(
            normalize_dn("CN=blue_gw, O=eDelivery,C=BE"),
            normalize_dn("C=BE,O=eDelivery,CN=blue_gw")
        );
        assert_ne!(
            normalize_dn("CN=red_gw,O=eDelivery,C=BE"),
            normalize_dn("C=BE,O=eDelivery,CN=blue_gw")
        );
    }
}
