//! Trust decisions for partner certificates at a given time.
//!
//! Order of checks (first failure wins, each error names the certificate):
//! 1. validity period of the leaf at `at` (clear "expired" errors instead of a chain error);
//! 2. key type and keyUsage bits for the purpose (signing: digitalSignature or nonRepudiation;
//!    encryption: keyEncipherment for RSA, keyAgreement for X25519) — webpki does not check them;
//! 3. pinned partner certificate (byte-identical) or a configured anchor that *is* the leaf
//!    (self-signed partner certificates, as Domibus deploys them) → trusted;
//! 4. otherwise a path to an anchor with rustls-webpki `verify_for_usage`, any EKU accepted
//!    (eDelivery signing certificates carry no TLS EKU; digest §12.3), validity of every
//!    certificate in the path at `at`, and the configured CRLs (end-entity depth, unknown status
//!    allowed because partners' CRLs are optional configuration).
//!
//! Step 4 is the expensive one (path building, one signature verification per link). A successful
//! path is remembered per (leaf, presented chain) together with the time window in which every
//! certificate of that path is valid; a later check of the same certificates at a time inside
//! the window reuses it. Steps 1–3 run on every call, so the leaf's validity at the message's
//! time, its key type and keyUsage are always re-checked; a time outside the window, a failure,
//! or any change to the store (which clears the cache) goes through webpki again. Revocation does
//! not depend on the time here (CRL `nextUpdate` is not enforced), so the window covers it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use time::OffsetDateTime;
use webpki::{
    CertRevocationList, EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter,
    OwnedCertRevocationList, RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

use super::cert::{Certificate, KeyType};
use super::PkiError;

/// What the certificate is used for; selects the keyUsage bits to require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Message signatures (and receipt signatures).
    Signing,
    /// Key transport (RSA-OAEP) or key agreement (X25519).
    Encryption,
}

/// How a certificate came to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustPath {
    /// Byte-identical to a pinned partner certificate.
    Pinned,
    /// The certificate is itself a configured anchor.
    Anchor,
    /// A path to the anchor with this subject.
    Chain { anchor_subject: String },
}

/// Configured anchors, pinned partner certificates, extra intermediates and CRLs.
#[derive(Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
    pinned: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    crls: Vec<OwnedCertRevocationList>,
    /// Successful webpki path validations (see the module documentation).
    chains: Mutex<HashMap<Vec<[u8; 32]>, CachedChain>>,
}

/// A validated path: the anchor it ended at and the interval in which the leaf and every
/// intermediate of the path are valid (anchors carry no validity for webpki).
#[derive(Debug, Clone)]
struct CachedChain {
    anchor_subject: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

/// Most remembered paths; the cache is emptied when full (partners are few).
const MAX_CACHED_CHAINS: usize = 1024;

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.anchors)
            .field("pinned", &self.pinned)
            .field("intermediates", &self.intermediates.len())
            .field("crls", &self.crls.len())
            .field(
                "cached_chains",
                &self.chains.lock().map(|c| c.len()).unwrap_or(0),
            )
            .finish()
    }
}

struct AnyEku;

impl ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        // Accept any EKU set, but refuse a malformed extension.
        for id in iter {
            id?;
        }
        Ok(())
    }
}

fn unix(at: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp().max(0) as u64))
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a trust anchor (root CA, or a self-signed partner certificate).
    pub fn add_anchor(&mut self, cert: Certificate) -> &mut Self {
        self.forget_chains();
        self.anchors.push(cert);
        self
    }
    /// Pins a partner certificate: trusted exactly as is, no chain needed.
    pub fn add_pinned(&mut self, cert: Certificate) -> &mut Self {
        self.forget_chains();
        self.pinned.push(cert);
        self
    }
    /// Adds an intermediate CA certificate used for path building.
    pub fn add_intermediate(&mut self, cert: Certificate) -> &mut Self {
        self.forget_chains();
        self.intermediates.push(cert);
        self
    }
    /// Adds every certificate of a PEM/DER file: CA certificates (basicConstraints cA) whose
    /// subject equals their issuer become anchors, other CA certificates intermediates, and end-entity
    /// certificates are pinned.
    pub fn add_file_contents(&mut self, bytes: &[u8]) -> Result<&mut Self, PkiError> {
        for c in super::load_certificates(bytes)? {
            if c.is_ca() && c.subject() == c.issuer() {
                self.add_anchor(c);
            } else if c.is_ca() {
                self.add_intermediate(c);
            } else {
                self.add_pinned(c);
            }
        }
        Ok(self)
    }
    /// Adds a CRL (PEM `X509 CRL` blocks or one DER CRL) read from a local file.
    pub fn add_crl(&mut self, bytes: &[u8]) -> Result<&mut Self, PkiError> {
        let ders: Vec<Vec<u8>> = if bytes.windows(10).take(4096).any(|w| w == b"-----BEGIN") {
            CertificateRevocationListDer::pem_slice_iter(bytes)
                .map(|r| {
                    r.map(|c| c.as_ref().to_vec())
                        .map_err(|e| PkiError::BadCrl(e.to_string()))
                })
                .collect::<Result<_, _>>()?
        } else {
            vec![bytes.to_vec()]
        };
        self.forget_chains();
        for der in ders {
            self.crls.push(
                OwnedCertRevocationList::from_der(&der)
                    .map_err(|e| PkiError::BadCrl(format!("{e:?}")))?,
            );
        }
        Ok(self)
    }
    /// Drops every remembered path (the store changed).
    fn forget_chains(&mut self) {
        match self.chains.get_mut() {
            Ok(c) => c.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }

    /// Number of remembered path validations (diagnostics, tests).
    pub fn cached_chains(&self) -> usize {
        self.chains.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// All certificates this store knows (pinned first, then anchors, then intermediates):
    /// the candidates for resolving SKI / IssuerSerial key references.
    pub fn known_certificates(&self) -> impl Iterator<Item = &Certificate> {
        self.pinned
            .iter()
            .chain(self.anchors.iter())
            .chain(self.intermediates.iter())
    }

    /// Decides whether `leaf` (presented with `chain`, e.g. from a PKIPath token) is trusted for
    /// `purpose` at `at`.
    pub fn check(
        &self,
        leaf: &Certificate,
        chain: &[Certificate],
        at: OffsetDateTime,
        purpose: Purpose,
    ) -> Result<TrustPath, PkiError> {
        // `leaf.name()` (hex serial and fingerprint) only on the way out: a trusted signer
        // never needs it.
        if at > leaf.not_after() {
            return Err(PkiError::Expired {
                cert: leaf.name(),
                not_after: leaf.not_after().to_string(),
                at: at.to_string(),
            });
        }
        if at < leaf.not_before() {
            return Err(PkiError::NotYetValid {
                cert: leaf.name(),
                not_before: leaf.not_before().to_string(),
                at: at.to_string(),
            });
        }
        check_purpose(leaf, purpose)?;
        if self
            .pinned
            .iter()
            .any(|p| p.sha256_fingerprint() == leaf.sha256_fingerprint())
        {
            return Ok(TrustPath::Pinned);
        }
        if self
            .anchors
            .iter()
            .any(|p| p.sha256_fingerprint() == leaf.sha256_fingerprint())
        {
            return Ok(TrustPath::Anchor);
        }
        if self.anchors.is_empty() {
            return Err(PkiError::Untrusted {
                cert: leaf.name(),
                reason: "not pinned and no trust anchors configured".into(),
            });
        }
        let mut key = Vec::with_capacity(chain.len() + 1);
        key.push(leaf.sha256_fingerprint());
        key.extend(chain.iter().map(Certificate::sha256_fingerprint));
        if let Some(hit) = self.cached_chain(&key, at) {
            return Ok(TrustPath::Chain {
                anchor_subject: hit,
            });
        }
        let (anchor_subject, window) = self.verify_path(leaf, chain, at)?;
        if let Some((not_before, not_after)) = window {
            if let Ok(mut c) = self.chains.lock() {
                if c.len() >= MAX_CACHED_CHAINS {
                    c.clear();
                }
                c.insert(
                    key,
                    CachedChain {
                        anchor_subject: anchor_subject.clone(),
                        not_before,
                        not_after,
                    },
                );
            }
        }
        Ok(TrustPath::Chain { anchor_subject })
    }

    /// The anchor subject of a remembered path for these certificates, if `at` lies in its window.
    fn cached_chain(&self, key: &[[u8; 32]], at: OffsetDateTime) -> Option<String> {
        let c = self.chains.lock().ok()?;
        let hit = c.get(key)?;
        (hit.not_before <= at && at <= hit.not_after).then(|| hit.anchor_subject.clone())
    }

    /// webpki path validation at `at`: the anchor's subject and, when every intermediate of the
    /// path is known here, the window in which the whole path is valid.
    #[allow(clippy::type_complexity)]
    fn verify_path(
        &self,
        leaf: &Certificate,
        chain: &[Certificate],
        at: OffsetDateTime,
    ) -> Result<(String, Option<(OffsetDateTime, OffsetDateTime)>), PkiError> {
        let anchor_ders: Vec<CertificateDer<'_>> = self
            .anchors
            .iter()
            .map(|c| CertificateDer::from(c.der()))
            .collect();
        let anchors = anchor_ders
            .iter()
            .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
            .collect::<Vec<_>>();
        let known: Vec<&Certificate> = chain
            .iter()
            .chain(self.intermediates.iter())
            .filter(|c| c.sha256_fingerprint() != leaf.sha256_fingerprint())
            .collect();
        let inter: Vec<CertificateDer<'_>> = known
            .iter()
            .map(|c| CertificateDer::from(c.der()))
            .collect();
        let leaf_der = CertificateDer::from(leaf.der());
        let ee = EndEntityCert::try_from(&leaf_der).map_err(|e| PkiError::Untrusted {
            cert: leaf.name(),
            reason: format!("{e:?}"),
        })?;
        let crl_refs: Vec<CertRevocationList<'_>> = self
            .crls
            .iter()
            .map(|c| CertRevocationList::Owned(c.clone()))
            .collect();
        let crl_ptrs: Vec<&CertRevocationList<'_>> = crl_refs.iter().collect();
        let revocation = if crl_ptrs.is_empty() {
            None
        } else {
            RevocationOptionsBuilder::new(&crl_ptrs).ok().map(|b| {
                b.with_depth(RevocationCheckDepth::EndEntity)
                    .with_status_policy(UnknownStatusPolicy::Allow)
                    .build()
            })
        };
        let path = ee
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &inter,
                unix(at),
                AnyEku,
                revocation,
                None,
            )
            .map_err(|e| match e {
                webpki::Error::CertRevoked => PkiError::Revoked { cert: leaf.name() },
                other => PkiError::Untrusted {
                    cert: leaf.name(),
                    reason: format!("{other:?}"),
                },
            })?;
        let anchor_spki = path.anchor().subject_public_key_info.as_ref().to_vec();
        let anchor_subject = self
            .anchors
            .iter()
            .find(|a| {
                a.spki().ends_with(&anchor_spki) || strip_seq(a.spki()) == anchor_spki.as_slice()
            })
            .map(|a| a.subject().to_string())
            .unwrap_or_default();
        // The window in which webpki's only time-dependent check (validity of the leaf and of
        // each intermediate) gives the same answer; `None` if an intermediate is not one of ours.
        let mut window = Some((leaf.not_before(), leaf.not_after()));
        for i in path.intermediate_certificates() {
            let der = i.der();
            window = match (window, known.iter().find(|c| c.der() == der.as_ref())) {
                (Some((nb, na)), Some(c)) => Some((nb.max(c.not_before()), na.min(c.not_after()))),
                _ => None,
            };
        }
        Ok((anchor_subject, window))
    }
}

/// webpki stores the SPKI without its outer SEQUENCE header.
fn strip_seq(spki: &[u8]) -> &[u8] {
    super::der::read_tlv(spki)
        .map(|(t, _)| t.value)
        .unwrap_or(spki)
}

/// Key type and keyUsage bits for the purpose (RFC 5280 §4.2.1.3; digest §3.2, §4.2).
pub fn check_purpose(cert: &Certificate, purpose: Purpose) -> Result<(), PkiError> {
    let ku = cert.key_usage();
    match purpose {
        Purpose::Signing => {
            if !matches!(
                cert.key_type(),
                KeyType::Rsa | KeyType::Ed25519 | KeyType::P256
            ) {
                return Err(PkiError::WrongKeyType {
                    cert: cert.name(),
                    found: cert.key_type().as_str(),
                    expected: "RSA, Ed25519 or P-256",
                });
            }
            if let Some(k) = ku {
                if !(k.digital_signature || k.non_repudiation) {
                    return Err(PkiError::KeyUsage {
                        cert: cert.name(),
                        needed: "digitalSignature",
                    });
                }
            }
        }
        Purpose::Encryption => match cert.key_type() {
            KeyType::Rsa => {
                if let Some(k) = ku {
                    if !k.key_encipherment {
                        return Err(PkiError::KeyUsage {
                            cert: cert.name(),
                            needed: "keyEncipherment",
                        });
                    }
                }
            }
            KeyType::X25519 | KeyType::P256 => {
                if let Some(k) = ku {
                    if !k.key_agreement {
                        return Err(PkiError::KeyUsage {
                            cert: cert.name(),
                            needed: "keyAgreement",
                        });
                    }
                }
            }
            other => {
                return Err(PkiError::WrongKeyType {
                    cert: cert.name(),
                    found: other.as_str(),
                    expected: "RSA or X25519",
                })
            }
        },
    }
    Ok(())
}
