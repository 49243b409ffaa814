//! Our keys per security suite and the trust material for partners (digest §3.2, §4.2).
//!
//! Several key sets per suite make a rollover possible without downtime (docs/lifecycle.md):
//! the newest key whose certificate is valid at the time signs, every configured key decrypts
//! (the EncryptedKey's reference picks it). Signing keys are chosen by the P-Mode's suite;
//! every decryption key is offered when a message arrives, since the P-Mode (and so the suite) is only known after the signature has
//! been verified (the order of `docs/msh.md`). Partner trust = the configuration's anchors plus
//! every P-Mode's `trust-anchors`, with the P-Modes' partner signing certificates pinned.

use std::path::Path;

use time::OffsetDateTime;

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
    /// Newest (latest not-before) first.
    signing_115: Vec<OwnKey>,
    signing_20: Vec<OwnKey>,
    decryption: Vec<OwnKey>,
    anchors: Vec<Certificate>,
    /// `[trust] crls` file contents, checked at start-up; applied to every trust store built.
    crls: Vec<Vec<u8>>,
    /// The trust store and partner certificates built for the P-Mode set last seen: built once
    /// per set (a reload makes a new set, a key reload a new keyring), not per message, so the
    /// P-Mode certificates are not parsed again for every message and the store's remembered
    /// chain paths (docs/security.md) survive from one message to the next.
    trust_cache: std::sync::Mutex<Option<TrustCache>>,
}

#[derive(Debug)]
struct TrustCache {
    set: std::sync::Weak<PModeSet>,
    trust: std::sync::Arc<TrustStore>,
    partners: std::sync::Arc<Vec<Certificate>>,
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
        for ks in cfg.key_sets_115() {
            let (s, e) = load(ks)?;
            k.signing_115.push(s);
            k.decryption.push(e);
        }
        for ks in cfg.key_sets_20() {
            let (s, e) = load(ks)?;
            k.signing_20.push(s);
            k.decryption.push(e);
        }
        for v in [&mut k.signing_115, &mut k.signing_20, &mut k.decryption] {
            v.sort_by_key(|o| std::cmp::Reverse(o.cert.not_before()));
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

    /// The newest configured signing key for `suite` (latest not-before), whatever the time:
    /// for tools and tests. The pipelines use [`Keyring::signing_at`].
    pub fn signing(&self, suite: Suite) -> Option<&OwnKey> {
        self.signing_keys(suite).first()
    }

    /// Our signing key for `suite` at `now`: the newest whose certificate is valid then, so a
    /// successor staged ahead starts signing when its window opens.
    pub fn signing_at(&self, suite: Suite, now: OffsetDateTime) -> Option<&OwnKey> {
        let keys = match suite {
            Suite::Edelivery115 => &self.signing_115,
            Suite::Edelivery20 => &self.signing_20,
        };
        keys.iter().find(|k| k.cert.valid_at(now))
    }

    /// Every signing key of `suite`, newest first (`as4gw --version`, logs).
    pub fn signing_keys(&self, suite: Suite) -> &[OwnKey] {
        match suite {
            Suite::Edelivery115 => &self.signing_115,
            Suite::Edelivery20 => &self.signing_20,
        }
    }

    /// Every decryption key (both suites, newest first).
    pub fn decryption(&self) -> &[OwnKey] {
        &self.decryption
    }

    /// [`Keyring::trust_store`] and [`Keyring::partner_certs`] for `set`, built once per set.
    pub fn trust_for(
        &self,
        set: &std::sync::Arc<PModeSet>,
    ) -> (std::sync::Arc<TrustStore>, std::sync::Arc<Vec<Certificate>>) {
        let mut cache = match self.trust_cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(c) = cache.as_ref() {
            if c.set
                .upgrade()
                .is_some_and(|s| std::sync::Arc::ptr_eq(&s, set))
            {
                return (c.trust.clone(), c.partners.clone());
            }
        }
        let trust = std::sync::Arc::new(self.trust_store(set));
        let partners = std::sync::Arc::new(self.partner_certs(set));
        *cache = Some(TrustCache {
            set: std::sync::Arc::downgrade(set),
            trust: trust.clone(),
            partners: partners.clone(),
        });
        (trust, partners)
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
    p.signing_certs
        .iter()
        .chain(p.signing_cert.iter())
        .filter_map(|c| Certificate::from_der(&c.der).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, KeyUsagePurpose, PKCS_ED25519};
    use time::Duration;

    /// A self-signed Ed25519 signing key valid from `now + from` for `days`.
    fn key(name: &str, now: OffsetDateTime, from: Duration, days: i64) -> OwnKey {
        let kp = KeyPair::generate_for(&PKCS_ED25519).expect("key");
        let mut p = CertificateParams::new(vec![format!("{name}.example")]).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = now + from;
        p.not_after = now + from + Duration::days(days);
        let cert = p.self_signed(&kp).expect("cert");
        OwnKey {
            key: load_private_key(kp.serialize_pem().as_bytes()).expect("pkcs8"),
            cert: Certificate::from_der(cert.der()).expect("der"),
            chain: Vec::new(),
        }
    }

    fn cn(k: Option<&OwnKey>) -> String {
        k.map(|k| k.cert.subject().to_string()).unwrap_or_default()
    }

    #[test]
    fn trust_is_built_once_per_pmode_set() {
        let k = Keyring::default();
        let set = std::sync::Arc::new(PModeSet::default());
        let (t1, p1) = k.trust_for(&set);
        let (t2, p2) = k.trust_for(&set);
        assert!(std::sync::Arc::ptr_eq(&t1, &t2) && std::sync::Arc::ptr_eq(&p1, &p2));
        // A reload makes a new set: a new store.
        let reloaded = std::sync::Arc::new(PModeSet::default());
        let (t3, _) = k.trust_for(&reloaded);
        assert!(!std::sync::Arc::ptr_eq(&t1, &t3));
    }

    #[test]
    fn the_newest_key_valid_at_the_time_signs() {
        let now = OffsetDateTime::now_utc();
        let mut signing = vec![
            key("expired", now, Duration::days(-400), 390),
            key("old", now, Duration::days(-300), 400),
            key("current", now, Duration::days(-1), 365),
            key("staged", now, Duration::days(30), 365),
        ];
        signing.sort_by_key(|o| std::cmp::Reverse(o.cert.not_before()));
        let k = Keyring {
            signing_20: signing,
            ..Keyring::default()
        };
        let at = |d: i64| cn(k.signing_at(Suite::Edelivery20, now + Duration::days(d)));
        // Today old and current overlap: the newer one signs; the staged one not yet.
        assert!(at(0).contains("current"), "{}", at(0));
        // Once the successor's window opens it signs, with no reload.
        assert!(at(31).contains("staged"), "{}", at(31));
        // Before current existed, old signed; long ago only expired was valid.
        assert!(at(-2).contains("old"), "{}", at(-2));
        assert!(at(-350).contains("expired"), "{}", at(-350));
        // Nothing valid: no key (the MSH refuses to pack rather than sign with an invalid key).
        assert!(k
            .signing_at(Suite::Edelivery20, now + Duration::days(2000))
            .is_none());
        assert!(k.signing_at(Suite::Edelivery115, now).is_none());
        assert!(cn(k.signing(Suite::Edelivery20)).contains("staged"));
    }
}
