//! TLS configuration for the AS4 HTTPS server and client.
//!
//! Rules applied here come from the eDelivery AS4 profile (digest §3.3, §4.5):
//! TLS 1.2 MUST be supported and TLS 1.3 SHOULD (2.0) / MAY (1.15) be; accepted versions and
//! cipher suites MUST be configurable; insecure suites are off by default and the TLS 1.2
//! defaults are forward-secret (`TLS_ECDHE_*`) AEAD suites only; TLS client authentication
//! MUST be configurable per endpoint. SSL 3.0 / TLS 1.0 / 1.1 cannot be enabled at all
//! (rustls does not implement them), which satisfies "MUST NOT" / "SHOULD NOT".
//!
//! The crypto provider is chosen in exactly one place, [`crypto_provider`], so the move to
//! rustls 0.24 (providers in separate crates) is a one-function change (stack guide §5).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// ALPN identifier of HTTP/1.1. Only HTTP/1.1 is offered: the AS4 binding is one HTTP 1.1
/// POST per message with the signal in the response (digest §2.2).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why a TLS configuration could not be built. These are all *our* configuration faults
/// (never the peer's), so they surface at start-up, not per message.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: String },
    #[error("{what}: bad PEM: {detail}")]
    BadPem { what: String, detail: String },
    #[error("{what}: no PEM private key found (PKCS#8, PKCS#1 or SEC1 expected)")]
    NoPrivateKey { what: String },
    #[error("unknown cipher suite {name:?}; known: {known}")]
    UnknownCipherSuite { name: String, known: String },
    #[error("cipher suite {name} is a valid IANA name but not implemented by the TLS library")]
    UnsupportedCipherSuite { name: String },
    #[error("cipher suite {name} belongs to {version}, which is not enabled")]
    SuiteForDisabledVersion { name: String, version: &'static str },
    #[error("no TLS protocol version enabled")]
    NoVersion,
    #[error("TLS {version} is enabled but none of the configured cipher suites is for it")]
    NoSuiteForVersion { version: &'static str },
    #[error("client authentication is {mode:?} but no client trust anchors are configured")]
    NoClientTrustAnchors { mode: ClientAuthMode },
    #[error("no trust anchors configured for the TLS client")]
    NoTrustAnchors,
    #[error("trust anchor rejected: {0}")]
    BadTrustAnchor(String),
    #[error("a client certificate needs both a certificate chain and a private key")]
    IncompleteClientIdentity,
    #[error("rustls refused the configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// The one function that picks the rustls crypto provider (aws-lc-rs, the project-wide choice,
/// stack guide §5). Everything else takes the provider from here.
pub fn crypto_provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Every cipher suite the provider implements (the configurable universe).
fn all_suites() -> &'static [SupportedCipherSuite] {
    rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
}

/// A TLS protocol version that can be enabled. Older versions do not exist here on purpose
/// (digest §3.3: SSL MUST NOT, TLS 1.0/1.1 SHOULD NOT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2", alias = "TLSv1.2")]
    Tls12,
    #[serde(rename = "1.3", alias = "TLSv1.3")]
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS 1.2",
            TlsVersion::Tls13 => "TLS 1.3",
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }

    fn of_suite(s: &SupportedCipherSuite) -> TlsVersion {
        if s.version().version == rustls::ProtocolVersion::TLSv1_3 {
            TlsVersion::Tls13
        } else {
            TlsVersion::Tls12
        }
    }
}

/// Protocol versions and cipher suites, shared by server and client (digest §3.3: both MUST
/// be configurable).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsProtocols {
    /// Enabled versions; default both 1.2 and 1.3.
    pub versions: Vec<TlsVersion>,
    /// Cipher suites by IANA name (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`,
    /// `TLS_AES_256_GCM_SHA384`; rustls' `TLS13_…` spelling is accepted too). `None` means
    /// the defaults: the ECDHE AEAD suites for TLS 1.2 and every TLS 1.3 suite.
    pub cipher_suites: Option<Vec<String>>,
}

impl Default for TlsProtocols {
    fn default() -> Self {
        TlsProtocols {
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            cipher_suites: None,
        }
    }
}

/// IANA name of a rustls suite (`TLS13_AES_128_GCM_SHA256` → `TLS_AES_128_GCM_SHA256`).
pub fn iana_name(s: &SupportedCipherSuite) -> String {
    let raw = s.suite().as_str().unwrap_or("UNKNOWN");
    match raw.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => raw.to_string(),
    }
}

/// Valid IANA names this build cannot offer, so the error says "unsupported", not "typo".
const KNOWN_UNSUPPORTED: &[&str] = &[
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
];

/// Whether a suite belongs to the default set: every TLS 1.3 suite, and for TLS 1.2 only the
/// forward-secret (ECDHE) AEAD ones (digest §3.3 "PFS suites SHOULD", §4.5 ENTSOG list).
fn is_default_suite(s: &SupportedCipherSuite) -> bool {
    match TlsVersion::of_suite(s) {
        TlsVersion::Tls13 => true,
        TlsVersion::Tls12 => {
            let n = iana_name(s);
            n.starts_with("TLS_ECDHE_")
                && (n.contains("_GCM_") || n.contains("_CHACHA20_POLY1305_"))
        }
    }
}

impl TlsProtocols {
    /// The provider restricted to the configured suites, and the rustls version list.
    /// Rejects unknown names, suites of a disabled version and a version left without suites.
    pub fn resolve(
        &self,
    ) -> Result<(Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>), TlsConfigError> {
        let mut versions: Vec<TlsVersion> = Vec::new();
        for v in &self.versions {
            if !versions.contains(v) {
                versions.push(*v);
            }
        }
        if versions.is_empty() {
            return Err(TlsConfigError::NoVersion);
        }
        let suites: Vec<SupportedCipherSuite> = match &self.cipher_suites {
            None => all_suites()
                .iter()
                .filter(|s| is_default_suite(s) && versions.contains(&TlsVersion::of_suite(s)))
                .copied()
                .collect(),
            Some(names) => {
                let mut out: Vec<SupportedCipherSuite> = Vec::new();
                for name in names {
                    let wanted = name.trim().to_ascii_uppercase().replace("TLS13_", "TLS_");
                    let found = all_suites().iter().find(|s| iana_name(s) == wanted);
                    let Some(s) = found else {
                        if KNOWN_UNSUPPORTED.contains(&wanted.as_str()) {
                            return Err(TlsConfigError::UnsupportedCipherSuite { name: wanted });
                        }
                        return Err(TlsConfigError::UnknownCipherSuite {
                            name: name.clone(),
                            known: all_suites()
                                .iter()
                                .map(iana_name)
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    };
                    let v = TlsVersion::of_suite(s);
                    if !versions.contains(&v) {
                        return Err(TlsConfigError::SuiteForDisabledVersion {
                            name: wanted,
                            version: v.as_str(),
                        });
                    }
                    if !out.iter().any(|o| o.suite() == s.suite()) {
                        out.push(*s);
                    }
                }
                out
            }
        };
        for v in &versions {
            if !suites.iter().any(|s| TlsVersion::of_suite(s) == *v) {
                return Err(TlsConfigError::NoSuiteForVersion {
                    version: v.as_str(),
                });
            }
        }
        let mut provider = crypto_provider();
        provider.cipher_suites = suites;
        Ok((
            Arc::new(provider),
            versions.iter().map(|v| v.rustls()).collect(),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// PEM loading (rustls-pki-types `PemObject`, stack guide §1.5)

fn read_file(path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// All certificates of a PEM text, in order. `what` names the source in errors.
pub fn parse_certs_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::BadPem {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            what: what.to_string(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM text (PKCS#8, PKCS#1 or SEC1).
pub fn parse_key_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey {
            what: what.to_string(),
        },
        other => TlsConfigError::BadPem {
            what: what.to_string(),
            detail: other.to_string(),
        },
    })
}

/// Certificates from a PEM file (a chain: leaf first, then intermediates).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    parse_certs_pem(&read_file(path)?, &path.display().to_string())
}

/// A private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    parse_key_pem(&read_file(path)?, &path.display().to_string())
}

fn root_store(anchors: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for a in anchors {
        roots
            .add(a.clone())
            .map_err(|e| TlsConfigError::BadTrustAnchor(e.to_string()))?;
    }
    Ok(roots)
}

// ---------------------------------------------------------------------------------------------
// Server

/// Whether the server asks for a TLS client certificate (digest §3.3: client authentication
/// MUST be configurable per endpoint). `Optional` accepts clients without one, but a
/// certificate that is presented must chain to the trust anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    #[default]
    Off,
    Optional,
    Required,
}

/// Server TLS settings as they appear in the configuration file: paths to PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert_chain: PathBuf,
    /// PEM private key of the leaf.
    pub private_key: PathBuf,
    #[serde(default)]
    pub client_auth: ClientAuthMode,
    /// PEM files with the CA certificates client certificates must chain to (each file may
    /// hold several). Required unless `client_auth` is `off`.
    #[serde(default)]
    pub client_trust_anchors: Vec<PathBuf>,
    #[serde(default)]
    pub protocols: TlsProtocols,
}

impl ServerTlsFiles {
    /// Reads the PEM files into a [`ServerTls`].
    pub fn load(&self) -> Result<ServerTls, TlsConfigError> {
        let mut anchors = Vec::new();
        for p in &self.client_trust_anchors {
            anchors.extend(load_certs(p)?);
        }
        Ok(ServerTls {
            cert_chain: load_certs(&self.cert_chain)?,
            key: load_key(&self.private_key)?,
            client_auth: self.client_auth,
            client_trust_anchors: anchors,
            protocols: self.protocols.clone(),
        })
    }
}

/// Loaded server TLS material and options.
#[derive(Debug)]
pub struct ServerTls {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_auth: ClientAuthMode,
    pub client_trust_anchors: Vec<CertificateDer<'static>>,
    pub protocols: TlsProtocols,
}

impl ServerTls {
    /// Builds the rustls server configuration (ALPN `http/1.1`).
    pub fn build(&self) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
        let (provider, versions) = self.protocols.resolve()?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?;
        let builder = match self.client_auth {
            ClientAuthMode::Off => builder.with_no_client_auth(),
            mode => {
                if self.client_trust_anchors.is_empty() {
                    return Err(TlsConfigError::NoClientTrustAnchors { mode });
                }
                let roots = Arc::new(root_store(&self.client_trust_anchors)?);
                let vb = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let vb = if mode == ClientAuthMode::Optional {
                    vb.allow_unauthenticated()
                } else {
                    vb
                };
                let verifier = vb
                    .build()
                    .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(self.cert_chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }
}

// ---------------------------------------------------------------------------------------------
// Client

/// Client TLS settings as they appear in the configuration file (per partner endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsFiles {
    /// PEM files with the only CAs the partner's server certificate may chain to (a private
    /// network CA or the partner's own); the system roots are never used.
    pub trust_anchors: Vec<PathBuf>,
    /// PEM certificate chain presented when the partner asks for client authentication.
    #[serde(default)]
    pub client_cert_chain: Option<PathBuf>,
    #[serde(default)]
    pub client_private_key: Option<PathBuf>,
    #[serde(default)]
    pub protocols: TlsProtocols,
}

impl ClientTlsFiles {
    /// Reads the PEM files into a [`ClientTls`].
    pub fn load(&self) -> Result<ClientTls, TlsConfigError> {
        let mut anchors = Vec::new();
        for p in &self.trust_anchors {
            anchors.extend(load_certs(p)?);
        }
        let identity = match (&self.client_cert_chain, &self.client_private_key) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((load_certs(c)?, load_key(k)?)),
            _ => return Err(TlsConfigError::IncompleteClientIdentity),
        };
        Ok(ClientTls {
            trust_anchors: anchors,
            identity,
            protocols: self.protocols.clone(),
        })
    }
}

/// Loaded client TLS material and options.
#[derive(Debug)]
pub struct ClientTls {
    pub trust_anchors: Vec<CertificateDer<'static>>,
    /// Client certificate chain and key, when this endpoint uses client authentication.
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    pub protocols: TlsProtocols,
}

impl ClientTls {
    /// Builds the rustls client configuration: only the configured anchors, optional client
    /// certificate, ALPN `http/1.1`. SNI is sent for DNS names (rustls omits it for IPs).
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
        if self.trust_anchors.is_empty() {
            return Err(TlsConfigError::NoTrustAnchors);
        }
        let (provider, versions) = self.protocols.resolve()?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)?
            .with_root_certificates(root_store(&self.trust_anchors)?);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key())?,
        };
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }
}
