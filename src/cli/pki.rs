//! `as4gw pki …` (demo PKI).
//!
//! `as4gw pki demo --out certs/demo` writes a throw-away test CA and, for the two demo gateways
//! "red" and "blue", one certificate per purpose:
//!
//! | file | key | keyUsage | why |
//! |---|---|---|---|
//! | `rsa.{cert,key}.pem` | RSA-2048 | digitalSignature, keyEncipherment | eDelivery 1.15 signing + RSA-OAEP key transport (digest §3.2) |
//! | `ed25519.{cert,key}.pem` | Ed25519 | digitalSignature | eDelivery 2.0 signing (digest §4.2) |
//! | `x25519.{cert,key}.pem` | X25519 | keyAgreement | eDelivery 2.0 key agreement (digest §4.2) |
//! | `tls.{cert,key}.pem` | ECDSA P-256 | digitalSignature (+EKU serverAuth, clientAuth) | TLS (digest §3.3, §4.5) |
//!
//! Message certificates carry no extended key usage: some implementations refuse a signing
//! certificate that also says `serverAuth` (digest §12.3), so TLS gets its own certificate.
//! The CA is RSA-3072 (the 2.0 TLS guidance asks for RSA > 3000 bits, digest §4.5) so that
//! a 1.15-only partner (Domibus/WSS4J) can build the chain too.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use aws_lc_rs::agreement;
use aws_lc_rs::encoding::{AsBigEndian, AsDer, Curve25519SeedBin, PublicKeyX509Der};
use base64::Engine;
use clap::Subcommand;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, RsaKeySize, SanType, SignatureAlgorithm, SigningKey,
    PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256,
};
use time::{Duration, OffsetDateTime};

#[derive(Subcommand)]
pub enum Command {
    /// Generate the demo PKI (test CA + red/blue certificates in both suites). Demo keys only:
    /// never use them in production.
    Demo {
        /// Output directory (created; existing files are overwritten).
        #[arg(long, default_value = "certs/demo")]
        out: PathBuf,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Demo { out } => {
            generate_demo_pki(&out, OffsetDateTime::now_utc())?;
            println!("demo PKI written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The two demo gateways.
const GATEWAYS: [&str; 2] = ["red", "blue"];

/// Demo validity: 10 years from one day before `now` (the day of slack absorbs clock skew
/// between the machines of a demo).
fn validity(params: &mut CertificateParams, now: OffsetDateTime) {
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3653);
}

/// Writes the whole demo set under `out`.
pub fn generate_demo_pki(out: &Path, now: OffsetDateTime) -> anyhow::Result<()> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    let ca_key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072)
        .context("generating CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "as4gw demo CA (NOT FOR PRODUCTION)");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "as4gw demo");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca_params, now);
    let ca_cert = ca_params.self_signed(&ca_key).context("self-signing CA")?;
    write(&out.join("ca.cert.pem"), &ca_cert.pem())?;
    write(&out.join("ca.key.pem"), &ca_key.serialize_pem())?;
    let ca = Issuer::from_params(&ca_params, &ca_key);
    let patching_ca = Issuer::from_params(&ca_params, X25519PatchingSigner { inner: &ca_key });

    for gw in GATEWAYS {
        let dir = out.join(gw);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

        // eDelivery 1.15: one RSA-2048 key for signing and for RSA-OAEP key transport (§3.2).
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
            .context("generating RSA key")?;
        let params = leaf_params(
            gw,
            "rsa",
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
            now,
        );
        let cert = params.signed_by(&key, &ca)?;
        write(&dir.join("rsa.cert.pem"), &cert.pem())?;
        write(&dir.join("rsa.key.pem"), &key.serialize_pem())?;

        // eDelivery 2.0 signing: Ed25519 (§4.2).
        let key = KeyPair::generate_for(&PKCS_ED25519).context("generating Ed25519 key")?;
        let params = leaf_params(gw, "ed25519", vec![KeyUsagePurpose::DigitalSignature], now);
        let cert = params.signed_by(&key, &ca)?;
        write(&dir.join("ed25519.cert.pem"), &cert.pem())?;
        write(&dir.join("ed25519.key.pem"), &key.serialize_pem())?;

        // eDelivery 2.0 key agreement: X25519 (§4.2); the key cannot sign, so only the CA signs.
        let x_priv = agreement::PrivateKey::generate(&agreement::X25519)
            .map_err(|_| anyhow::anyhow!("generating X25519 key"))?;
        let x_pub = X25519Public::from_private(&x_priv)?;
        let params = leaf_params(gw, "x25519", vec![KeyUsagePurpose::KeyAgreement], now);
        let cert = params.signed_by(&x_pub, &patching_ca)?;
        let der = patch_spki_oid(cert.der())?;
        write(&dir.join("x25519.cert.pem"), &pem("CERTIFICATE", &der))?;
        let seed: Curve25519SeedBin<'static> = x_priv
            .as_be_bytes()
            .map_err(|_| anyhow::anyhow!("encoding X25519 key"))?;
        write(
            &dir.join("x25519.key.pem"),
            &pem("PRIVATE KEY", &x25519_pkcs8(seed.as_ref())),
        )?;

        // TLS: ECDSA P-256, server + client (§3.3: client auth configurable per endpoint).
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating TLS key")?;
        let mut params = leaf_params(gw, "tls", vec![KeyUsagePurpose::DigitalSignature], now);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ];
        let cert = params.signed_by(&key, &ca)?;
        write(&dir.join("tls.cert.pem"), &cert.pem())?;
        write(&dir.join("tls.key.pem"), &key.serialize_pem())?;
    }
    Ok(())
}

fn leaf_params(
    gw: &str,
    purpose: &str,
    usages: Vec<KeyUsagePurpose>,
    now: OffsetDateTime,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, format!("{gw} {purpose} (as4gw demo)"));
    p.distinguished_name
        .push(DnType::OrganizationName, "as4gw demo");
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = usages;
    p.use_authority_key_identifier_extension = true;
    validity(&mut p, now);
    p
}

// --- X25519 certificates ------------------------------------------------------------------------
//
// rcgen writes a subject's SubjectPublicKeyInfo from `PublicKeyData::algorithm()`, and it has no
// X25519 algorithm (X25519 is not a signature algorithm). We therefore present the X25519 key
// with the Ed25519 AlgorithmIdentifier (same shape: a bare OID, RFC 8410 §3) and fix the OID
// (1.3.101.112 → 1.3.101.110) in the to-be-signed bytes *before* the CA signs them, then in the
// finished DER. The signature is thus computed over the corrected certificate.

/// DER of the SPKI header `SEQUENCE(42) { SEQUENCE(5) { OID 1.3.101.112 } BIT STRING(33) 00 … }`.
const SPKI_HEADER_ED25519: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The same header with OID 1.3.101.110 (id-X25519, RFC 8410 §3).
const SPKI_HEADER_X25519: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];

/// A raw X25519 public key as rcgen subject key.
struct X25519Public {
    raw: Vec<u8>,
    spki: Vec<u8>,
}

impl X25519Public {
    fn from_private(k: &agreement::PrivateKey) -> anyhow::Result<Self> {
        let public = k
            .compute_public_key()
            .map_err(|_| anyhow::anyhow!("X25519 public key"))?;
        let spki: PublicKeyX509Der<'static> = public
            .as_der()
            .map_err(|_| anyhow::anyhow!("X25519 SPKI"))?;
        Ok(X25519Public {
            raw: public.as_ref().to_vec(),
            spki: spki.as_ref().to_vec(),
        })
    }
}

impl PublicKeyData for X25519Public {
    /// The true X25519 SPKI: rcgen derives the SubjectKeyIdentifier from it.
    fn subject_public_key_info(&self) -> Vec<u8> {
        self.spki.clone()
    }
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    /// Placeholder with the right shape; the OID is patched (see above).
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

/// Wraps the CA key; patches the SPKI OID in the TBS certificate before signing.
struct X25519PatchingSigner<'a> {
    inner: &'a KeyPair,
}

impl PublicKeyData for X25519PatchingSigner<'_> {
    fn subject_public_key_info(&self) -> Vec<u8> {
        self.inner.subject_public_key_info()
    }
    fn der_bytes(&self) -> &[u8] {
        self.inner.der_bytes()
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.inner.algorithm()
    }
}

impl SigningKey for X25519PatchingSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let patched = replace_once(msg, &SPKI_HEADER_ED25519, &SPKI_HEADER_X25519)
            .ok_or(rcgen::Error::CouldNotParseKeyPair)?;
        self.inner.sign(&patched)
    }
}

/// PKCS#8 v1 `OneAsymmetricKey` for an X25519 private key (RFC 8410 §7): aws-lc-rs exports the
/// raw 32-byte seed only, and the wrapping is fixed-length.
fn x25519_pkcs8(seed: &[u8]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    der
}

fn patch_spki_oid(der: &[u8]) -> anyhow::Result<Vec<u8>> {
    replace_once(der, &SPKI_HEADER_ED25519, &SPKI_HEADER_X25519)
        .ok_or_else(|| anyhow::anyhow!("X25519 certificate: SPKI header not found exactly once"))
}

/// Replaces the single occurrence of `from` in `data`; `None` if it occurs zero or several times.
fn replace_once(data: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let hits: Vec<usize> = data
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    let [at] = hits[..] else { return None };
    let mut out = data.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    Some(out)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_once_requires_exactly_one_hit() {
        assert_eq!(
            replace_once(b"abcab", b"c", b"x").as_deref(),
            Some(&b"abxab"[..])
        );
        assert_eq!(replace_once(b"abcab", b"ab", b"xy"), None);
        assert_eq!(replace_once(b"abc", b"z", b"y"), None);
    }
}
