//! Our keys per security suite and the trust material for partners (digest §3.2, §4.2).
//!
//! Signing keys are chosen by the P-Mode's suite; every decryption key is offered when a
//! message arrives, since the P-Mode (and so the suite) is only known after the signature has
//! been verified (the order of `docs/msh.md`). Partner trust = the configuration's anchors plus
//! every P-Mode's `trust-anchors`, with the P-Modes' partner signing certificates pinned.

use std::path::Path;

use crate::config::{Config, KeySet};
use crate::pki::{load_private_key, Certificate, PkiError, TrustStore};
use crate::pmode::model::{Party, Suite as PmSuite};
use crate::pmode::set::PModeSet;
use crate::security::{OwnKey, Suite};

/// Why the keys could not be loaded (start-up error).
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Pki {
        path: String,
        #[source]
        source: Box<PkiError>,
    },
}

/// Our own keys and the configured trust anchors.
#[derive(Debug, Default)]
pub struct Keyring {
    signing_115: Option<OwnKey>,
    signing_20: Option<OwnKey>,
    decryption: Vec<OwnKey>,
    anchors: Vec<Certificate>,
    /// `[trust] crls` file contents, checked at start-up; applied to every trust store built.
    crls: Vec<Vec<u8>>,
}

/// The security room's suite for a P-Mode suite.
pub fn suite_of(s: PmSuite) -> Suite {
    match s {
        PmSuite::Edelivery115 => Suite::Edelivery115,
        PmSuite::Edelivery20 => Suite::Edelivery20,
    }
}

fn load_own(cert_der: &[u8], key_path: &Path) -> Result<OwnKey, KeyringError> {
    let p = key_path.display().to_string();
    let bytes = std::fs::read(key_path).map_err(|source| KeyringError::Io {
        path: p.clone(),
        source,
    })?;
    let key = load_private_key(&bytes).map_err(|source| KeyringError::Pki {
        path: p.clone(),
        source: Box::new(source),
    })?;
    let cert = Certificate::from_der(cert_der).map_err(|source| KeyringError::Pki {
        path: p.clone(),
        source: Box::new(source),
    })?;
    Ok(OwnKey {
        key,
        cert,
        chain: Vec::new(),
    })
}

impl Keyring {
    /// Loads `[keys.*]` and `[trust]` of the configuration.
    pub fn from_config(cfg: &Config) -> Result<Keyring, KeyringError> {
        let mut k = Keyring::default();
        let load = |ks: &KeySet| -> Result<(OwnKey, OwnKey), KeyringError> {
            Ok((
                load_own(&ks.signing_cert.der, &ks.signing_key)?,
                load_own(&ks.encryption_cert.der, &ks.encryption_key)?,
            ))
        };
        if let Some(ks) = &cfg.keys_115 {
            let (s, e) = load(ks)?;
            k.signing_115 = Some(s);
            k.decryption.push(e);
        }
        if let Some(ks) = &cfg.keys_20 {
            let (s, e) = load(ks)?;
            k.signing_20 = Some(s);
            k.decryption.push(e);
        }
        for a in &cfg.trust_anchors {
            let c = Certificate::from_der(&a.der).map_err(|source| KeyringError::Pki {
                path: a.path.display().to_string(),
                source: Box::new(source),
            })?;
            k.anchors.push(c);
        }
        for p in &cfg.trust_crls {
            let bytes = std::fs::read(p).map_err(|source| KeyringError::Io {
                path: p.display().to_string(),
                source,
            })?;
            // parsed now so a broken CRL stops the start instead of being skipped per message
            TrustStore::new()
                .add_crl(&bytes)
                .map_err(|source| KeyringError::Pki {
                    path: p.display().to_string(),
                    source: Box::new(source),
                })?;
            k.crls.push(bytes);
        }
        Ok(k)
    }

    /// Our signing key for `suite`.
    pub fn signing(&self, suite: Suite) -> Option<&OwnKey> {
        match suite {
            Suite::Edelivery115 => self.signing_115.as_ref(),
            Suite::Edelivery20 => self.signing_20.as_ref(),
        }
    }

    /// Every decryption key (both suites).
    pub fn decryption(&self) -> &[OwnKey] {
        &self.decryption
    }

    /// Trust for partner signatures under the P-Modes in force.
    pub fn trust_store(&self, set: &PModeSet) -> TrustStore {
        let mut t = TrustStore::new();
        for a in &self.anchors {
            t.add_anchor(a.clone());
        }
        for c in &self.crls {
            // every CRL parsed in from_config
            let _ = t.add_crl(c);
        }
        for p in set.pmodes() {
            for a in &p.security.trust_anchors {
                if let Ok(c) = Certificate::from_der(&a.der) {
                    t.add_anchor(c);
                }
            }
            for c in partner_certs_of(&p.initiator)
                .into_iter()
                .chain(partner_certs_of(&p.responder))
            {
                t.add_pinned(c);
            }
        }
        t
    }

    /// Partner certificates named in the P-Modes (to resolve SKI / IssuerSerial references).
    pub fn partner_certs(&self, set: &PModeSet) -> Vec<Certificate> {
        let mut v = Vec::new();
        for p in set.pmodes() {
            v.extend(partner_certs_of(&p.initiator));
            v.extend(partner_certs_of(&p.responder));
        }
        v
    }
}

fn partner_certs_of(p: &Party) -> Vec<Certificate> {
    p.signing_cert
        .iter()
        .filter_map(|c| Certificate::from_der(&c.der).ok())
        .collect()
}
