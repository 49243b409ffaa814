//! Gateway configuration (`as4gw.toml`).
//!
//! Same discipline as P-Modes (guide §1.9): a strict raw model (`deny_unknown_fields` on every
//! struct) converted into a validated [`Config`]; relative paths resolve against the directory
//! of the configuration file, so `as4gw serve --config /etc/as4gw/red.toml` does not depend on
//! the working directory. Problems are reported as `file:line: message`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;

use crate::pmode::certs::{load_cert, CertFile, CertPurpose};
use crate::pmode::diag::{from_toml_error, Diagnostic, Diagnostics, Locator, Sink};
use crate::pmode::model::{is_uri, PartyId};
use crate::pmode::units::{parse_duration, parse_size};

// ------------------------------------------------------------------------------------------
// Raw model
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    pub gateway: RawGateway,
    pub as4: RawAs4,
    pub api: RawApi,
    pub store: RawStore,
    pub keys: RawKeys,
    pub trust: RawTrust,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default, rename = "backend")]
    pub backends: Vec<RawBackend>,
    /// `[log]`, `[metrics]`, `[alerts]`: optional, defaults on (docs/operations.md).
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub alerts: RawAlerts,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLog {
    /// `"text"` (default) or `"json"`.
    #[serde(default)]
    pub format: Option<String>,
    /// Filter directive when `RUST_LOG` is unset, e.g. `"info"` or `"info,as4gw::msh=debug"`.
    #[serde(default)]
    pub level: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawMetrics {
    /// `GET /metrics` without a token (a scraper on loopback). Default false: a bearer token
    /// is needed, a backend's or `token-sha256`.
    #[serde(default)]
    pub public: bool,
    /// sha256 (hex) of a scrape-only token, so Prometheus needs no backend's token.
    #[serde(default)]
    pub token_sha256: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAlerts {
    /// Operator notification URL (JSON POST); absent = log and metrics only.
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub check_interval: Option<String>,
    #[serde(default)]
    pub certificate_warn_days: Option<u32>,
    #[serde(default)]
    pub stuck_after: Option<String>,
    /// Per-state thresholds, e.g. `{ RECEIVED = "4h" }`.
    #[serde(default)]
    pub stuck_after_state: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub webhook_failures: Option<u32>,
    #[serde(default)]
    pub repeat: Option<String>,
    /// HMAC key of the notifications' `X-As4gw-Signature`, as a reference (file or env).
    #[serde(default)]
    pub webhook_secret: Option<RawSecret>,
}

/// Logs, metrics endpoint and loud failures, validated.
#[derive(Debug, Clone, Default)]
pub struct Observability {
    pub log: crate::telemetry::LogSettings,
    pub metrics_public: bool,
    pub metrics_token_sha256: Option<[u8; 32]>,
    pub alerts: crate::telemetry::AlertSettings,
}

impl Observability {
    /// Loads the `[alerts] webhook-secret` reference (relative to `base`) into `alerts`.
    fn load_alert_secret(&mut self, raw: &RawAlerts, base: &Path, sink: &mut Sink<'_>) {
        match &raw.webhook_secret {
            None => {}
            Some(RawSecret::Inline(_)) => sink.at(
                "alerts.webhook-secret",
                "webhook-secret must be a reference — { file = \"…\" } or { env = \"…\" } — \
                 never the secret itself",
            ),
            Some(RawSecret::Ref(r)) => match Secret::load(r, base) {
                Ok(s) => self.alerts.webhook_key = Some(s.bytes().to_vec()),
                Err(m) => sink.at("alerts.webhook-secret", m),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawGateway {
    pub party_id: String,
    #[serde(default)]
    pub party_id_type: Option<String>,
    pub pmodes: PathBuf,
    /// Send attempts at once, to all partners together (default 32).
    #[serde(default)]
    pub send_concurrency: Option<usize>,
    /// HTTPS exchanges at once with one partner, and idle connections kept for it (default 16).
    #[serde(default)]
    pub send_concurrency_per_partner: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAs4 {
    pub url: String,
    pub tls: RawTls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub versions: Vec<TlsVersion>,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    pub client_auth: ClientAuth,
    #[serde(default)]
    pub client_ca: Vec<PathBuf>,
}

/// TLS versions that may be enabled: 1.2 (MUST) and 1.3 (MAY/SHOULD); 1.0/1.1 and SSL are
/// refused (digest §3.3, §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// TLS client authentication, configurable per endpoint (digest §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuth {
    Off,
    Optional,
    Required,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawApi {
    pub url: String,
    /// Optional TLS for the backend listener (then `url` is `https://…`), with optional or
    /// required client certificates: for backends that are not on the same host.
    #[serde(default)]
    pub tls: Option<RawTls>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawStore {
    pub path: PathBuf,
    /// How often the retention purge runs (`docs/lifecycle.md`); default "1h".
    #[serde(default)]
    pub purge_interval: Option<String>,
    /// Payloads and wire messages up to this size live in the database instead of spool files
    /// (`docs/store.md`, issue 8); default "64KiB", "0" = always files.
    #[serde(default)]
    pub inline_max: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawKeys {
    #[serde(default, rename = "edelivery-1_15")]
    pub edelivery_115: Option<RawKeySets>,
    #[serde(default, rename = "edelivery-2_0")]
    pub edelivery_20: Option<RawKeySets>,
}

/// `[keys.<suite>]` (one key set) or `[[keys.<suite>]]` repeated (a rollover: old and new key
/// overlap; docs/lifecycle.md#rolling-a-key).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawKeySets {
    One(RawKeySet),
    Many(Vec<RawKeySet>),
}

impl RawKeySets {
    fn sets(&self) -> Vec<&RawKeySet> {
        match self {
            RawKeySets::One(k) => vec![k],
            RawKeySets::Many(v) => v.iter().collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawKeySet {
    pub signing_cert: PathBuf,
    pub signing_key: PathBuf,
    pub encryption_cert: PathBuf,
    pub encryption_key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawTrust {
    pub anchors: Vec<PathBuf>,
    /// Local CRL files (PEM or DER) applied to partner certificates that are checked through a
    /// CA path (pinned certificates are trusted as they are).
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLimits {
    #[serde(default)]
    pub max_message_size: Option<String>,
    #[serde(default)]
    pub max_parts: Option<u32>,
    #[serde(default)]
    pub max_part_size: Option<String>,
    #[serde(default)]
    pub max_xml_depth: Option<usize>,
    #[serde(default)]
    pub max_xml_nodes: Option<usize>,
    #[serde(default)]
    pub max_decompressed_size: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawBackend {
    pub name: String,
    pub token_sha256: String,
    #[serde(default)]
    pub allowed_pmodes: Vec<String>,
    #[serde(default)]
    pub webhook: Option<String>,
    /// HMAC key of the webhook signatures: a reference, never the secret itself.
    #[serde(default)]
    pub webhook_secret: Option<RawSecret>,
    #[serde(default)]
    pub allowed_original_senders: Vec<String>,
    #[serde(default)]
    pub allowed_final_recipients: Vec<String>,
}

/// `webhook-secret = { file = "…" }` or `{ env = "…" }`. A plain string is parsed too, only to
/// refuse it with a clear message (secrets do not belong in the configuration file).
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSecret {
    Inline(String),
    Ref(RawSecretRef),
}

impl std::fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawSecret::Inline(_) => f.write_str("Inline(<redacted>)"),
            RawSecret::Ref(r) => r.fmt(f),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub env: Option<String>,
}

// ------------------------------------------------------------------------------------------
// Validated model
/// Send attempts at once by default. Each holds one HTTPS connection to a partner while it
/// waits for the receipt, so this bounds both the outbound parallelism and the connections; 8
/// (the earlier fixed value) capped a sender at 8 / round-trip time messages per second.
pub const DEFAULT_SEND_CONCURRENCY: usize = 32;
/// Most send attempts at once that `[gateway] send-concurrency` accepts.
pub const MAX_SEND_CONCURRENCY: usize = 1024;
/// HTTPS exchanges at once with one partner by default (`[gateway]
/// send-concurrency-per-partner`). It was a fixed 4, hidden in the transport: a sender then
/// had at most 4 messages on the way to a partner whatever `send-concurrency` said, and the
/// issue 8 bench (one partner, 32 in flight) was capped by it: 1,358 / 1,376 msgs/s at 4
/// against 1,494 / 1,668 at 16 and 1,539 / 1,693 at 32, with less CPU per message (fuller
/// commit batches on both sides). Half the global default: one partner can use most of the
/// capacity, and a partner's server sees at most 16 connections from us.
pub const DEFAULT_SEND_CONCURRENCY_PER_PARTNER: usize = 16;

// ------------------------------------------------------------------------------------------

/// The validated gateway configuration. Paths are absolute or relative to the working
/// directory (already joined with the configuration file's directory).
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub party: PartyId,
    pub pmode_dir: PathBuf,
    pub as4: As4Listener,
    pub api_listen: SocketAddr,
    /// `[api.tls]`: the backend listener speaks HTTPS (and may require client certificates).
    pub api_tls: Option<ApiTls>,
    pub store_dir: PathBuf,
    /// `[gateway] send-concurrency`: send attempts at once (default [`DEFAULT_SEND_CONCURRENCY`]).
    pub send_concurrency: usize,
    /// `[gateway] send-concurrency-per-partner`: HTTPS exchanges at once with one partner
    /// (default [`DEFAULT_SEND_CONCURRENCY_PER_PARTNER`]).
    pub send_concurrency_per_partner: usize,
    /// Period of the background retention purge (`[store] purge-interval`, default 1 hour).
    pub purge_interval: std::time::Duration,
    /// `[store] inline-max` in bytes (default 64 KiB).
    pub store_inline_max: u64,
    /// The first configured key set of the suite (the only one without a rollover).
    pub keys_115: Option<KeySet>,
    pub keys_20: Option<KeySet>,
    /// Every key set of the suite, in file order (`[[keys.edelivery-1_15]]` repeated).
    pub rollover_115: Vec<KeySet>,
    pub rollover_20: Vec<KeySet>,
    pub trust_anchors: Vec<CertFile>,
    /// `[trust] crls`: paths (resolved), read and parsed when the keyring is loaded.
    pub trust_crls: Vec<PathBuf>,
    pub limits: Limits,
    pub backends: Vec<Backend>,
    pub observability: Observability,
}

#[derive(Debug, Clone)]
pub struct As4Listener {
    pub listen: SocketAddr,
    /// URL path the AS4 endpoint is served on (e.g. `/as4`).
    pub path: String,
    pub tls_cert: CertFile,
    pub tls_key: PathBuf,
    pub tls_versions: Vec<TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub client_auth: ClientAuth,
    pub client_ca: Vec<CertFile>,
}

/// TLS of the backend API listener (`[api.tls]`, same keys as `[as4.tls]`). The bearer token
/// is still required: a client certificate is a second factor, not a replacement.
#[derive(Debug, Clone)]
pub struct ApiTls {
    pub cert: CertFile,
    pub key: PathBuf,
    pub versions: Vec<TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub client_auth: ClientAuth,
    pub client_ca: Vec<CertFile>,
}

/// Own keys and certificates for one security suite.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub signing_cert: CertFile,
    pub signing_key: PathBuf,
    pub encryption_cert: CertFile,
    pub encryption_key: PathBuf,
}

/// Parser and transport limits; the defaults are what an OOTS evidence exchange needs with
/// headroom (evidence PDFs of a few MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_parts: u32,
    pub max_part_size: u64,
    pub max_decompressed_size: u64,
    pub max_xml_depth: usize,
    pub max_xml_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 << 20,
            max_parts: 32,
            max_part_size: 32 << 20,
            max_decompressed_size: 128 << 20,
            max_xml_depth: 64,
            max_xml_nodes: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    /// SHA-256 of the bearer token, 32 bytes (the token itself is never stored).
    pub token_sha256: [u8; 32],
    /// P-Mode ids this backend may submit on; empty = none.
    pub allowed_pmodes: Vec<String>,
    pub webhook: Option<String>,
    /// HMAC-SHA256 key of its webhook signatures; `None` = the token digest.
    pub webhook_secret: Option<Secret>,
    /// originalSender values it may submit with / read (outbound); empty = any.
    pub allowed_original_senders: Vec<String>,
    /// finalRecipient values it may receive for (inbound); empty = any.
    pub allowed_final_recipients: Vec<String>,
}

/// Secret bytes read from a file or an environment variable. `Debug` shows where it came
/// from, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    bytes: Vec<u8>,
    /// `file /path` or `env NAME`.
    pub source: String,
}

impl Secret {
    /// Shortest accepted secret, bytes.
    pub const MIN_LEN: usize = 16;

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Reads `r` (file relative to `base`). The value is the file's content or the variable's
    /// value without surrounding whitespace (a trailing newline is not part of the key).
    /// Error messages name the source, never the content.
    fn load(r: &RawSecretRef, base: &Path) -> Result<Secret, String> {
        let (bytes, source) = match (&r.file, &r.env) {
            (Some(f), None) => {
                let p = base.join(f);
                let b = std::fs::read(&p)
                    .map_err(|e| format!("secret file {} cannot be read: {e}", p.display()))?;
                (b, format!("file {}", p.display()))
            }
            (None, Some(name)) => {
                let v = std::env::var_os(name)
                    .ok_or_else(|| format!("environment variable {name} is not set"))?;
                (v.into_encoded_bytes(), format!("env {name}"))
            }
            _ => return Err("give exactly one of file = \"…\" or env = \"…\"".to_string()),
        };
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(bytes.len());
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(start, |i| i + 1);
        let bytes = bytes[start..end].to_vec();
        if bytes.len() < Secret::MIN_LEN {
            return Err(format!(
                "the secret from {source} is shorter than {} bytes",
                Secret::MIN_LEN
            ));
        }
        Ok(Secret { bytes, source })
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({}, <redacted>)", self.source)
    }
}

/// Splits `scheme://host:port/path` into the socket address and path.
fn parse_listen_url(url: &str, scheme: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix(&format!("{scheme}://"))
        .ok_or_else(|| format!("{url:?} must start with {scheme}://"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let hp = if hostport.starts_with("localhost:") {
        hostport.replacen("localhost", "127.0.0.1", 1)
    } else {
        hostport.to_string()
    };
    let addr: SocketAddr = hp.parse().map_err(|_| {
        format!(
            "{url:?}: host must be an IP address with a port (e.g. 127.0.0.1:8443 or [::1]:8443)"
        )
    })?;
    Ok((addr, path))
}

impl Config {
    /// Loads and validates `file`, checking certificates at `now`.
    pub fn load(file: &Path, now: OffsetDateTime) -> Result<Config, Diagnostics> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: file.to_path_buf(),
                line: 1,
                message: format!("cannot read configuration: {e}"),
            }])
        })?;
        let raw: RawConfig = toml::from_str(&text)
            .map_err(|e| Diagnostics(vec![from_toml_error(file, &text, &e)]))?;
        let locator = Locator::new(&text);
        let mut sink = Sink::new(file, &locator);
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let cfg = build(raw, file, &base, now, &mut sink);
        if sink.out.is_empty() {
            Ok(cfg)
        } else {
            Err(Diagnostics(sink.out))
        }
    }

    /// Every eDelivery 1.15 key set (one, or several during a rollover).
    pub fn key_sets_115(&self) -> &[KeySet] {
        &self.rollover_115
    }

    /// Every eDelivery 2.0 key set.
    pub fn key_sets_20(&self) -> &[KeySet] {
        &self.rollover_20
    }

    /// Names of the configured backends (for the P-Mode `backend` check).
    pub fn backend_names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.name.clone()).collect()
    }
}

/// A `[gateway]` concurrency key: `default` when absent, else within 1..=MAX_SEND_CONCURRENCY
/// (reported at the key's line otherwise).
fn concurrency(sink: &mut Sink<'_>, key: &str, value: Option<usize>, default: usize) -> usize {
    match value {
        None => default,
        Some(n) if (1..=MAX_SEND_CONCURRENCY).contains(&n) => n,
        Some(n) => {
            sink.at(
                &format!("gateway.{key}"),
                format!("{key} {n} is not within 1..={MAX_SEND_CONCURRENCY}"),
            );
            default
        }
    }
}

fn build(
    r: RawConfig,
    file: &Path,
    base: &Path,
    now: OffsetDateTime,
    sink: &mut Sink<'_>,
) -> Config {
    let path = |p: &Path| base.join(p);
    let cert =
        |sink: &mut Sink<'_>, key: &str, p: &Path, purpose: CertPurpose| -> Option<CertFile> {
            load_cert(&path(p), purpose, now)
                .map_err(|m| sink.at(key, m))
                .ok()
        };
    let key_file = |sink: &mut Sink<'_>, key: &str, p: &Path| -> PathBuf {
        let full = path(p);
        match std::fs::read_to_string(&full) {
            Ok(t) if t.contains("-----BEGIN PRIVATE KEY-----") => {}
            Ok(_) => sink.at(
                key,
                format!(
                    "{} is not an unencrypted PKCS#8 PEM key (BEGIN PRIVATE KEY)",
                    full.display()
                ),
            ),
            Err(e) => sink.at(
                key,
                format!("key file {} cannot be read: {e}", full.display()),
            ),
        }
        full
    };

    if r.gateway.party_id.trim().is_empty() {
        sink.at("gateway.party-id", "party-id must not be empty");
    } else if r.gateway.party_id_type.is_none() && !is_uri(&r.gateway.party_id) {
        sink.at(
            "gateway.party-id",
            "party-id without party-id-type must be a URI (digest §2.3)",
        );
    }
    let pmode_dir = path(&r.gateway.pmodes);
    if !pmode_dir.is_dir() {
        sink.at(
            "gateway.pmodes",
            format!("P-Mode directory {} does not exist", pmode_dir.display()),
        );
    }

    let (listen, as4_path) = parse_listen_url(&r.as4.url, "https").unwrap_or_else(|m| {
        sink.at(
            "as4.url",
            format!("AS4 listener: {m} (TLS is mandatory, digest §3.3)"),
        );
        (SocketAddr::from(([127, 0, 0, 1], 0)), "/".into())
    });
    let tls_cert = cert(sink, "as4.tls.cert", &r.as4.tls.cert, CertPurpose::Tls);
    let tls_key = key_file(sink, "as4.tls.key", &r.as4.tls.key);
    if r.as4.tls.versions.is_empty() {
        sink.at(
            "as4.tls.versions",
            "at least one TLS version is needed; TLS 1.2 MUST be supported (digest §3.3)",
        );
    }
    for (i, s) in r.as4.tls.cipher_suites.iter().enumerate() {
        if !s.starts_with("TLS_") || s.contains("_CBC_") || s.contains("NULL") || s.contains("RC4")
        {
            sink.at(
                &format!("as4.tls.cipher-suites.{i}"),
                format!("cipher suite {s:?} is not an AEAD IANA suite name (digest §3.3, §4.5)"),
            );
        }
    }
    let client_ca: Vec<CertFile> = r
        .as4
        .tls
        .client_ca
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            cert(
                sink,
                &format!("as4.tls.client-ca.{i}"),
                p,
                CertPurpose::Anchor,
            )
        })
        .collect();
    if r.as4.tls.client_auth != ClientAuth::Off
        && client_ca.is_empty()
        && r.as4.tls.client_ca.is_empty()
    {
        sink.at(
            "as4.tls.client-auth",
            "client-auth needs client-ca (the CAs whose client certificates are accepted)",
        );
    }

    let api_scheme = if r.api.tls.is_some() { "https" } else { "http" };
    let api_listen = parse_listen_url(&r.api.url, api_scheme)
        .map(|(a, _)| a)
        .unwrap_or_else(|m| {
            let why = if r.api.tls.is_some() {
                " ([api.tls] is configured)"
            } else {
                " (https needs an [api.tls] section)"
            };
            sink.at("api.url", format!("backend API listener: {m}{why}"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        });
    let api_tls = r.api.tls.as_ref().and_then(|t| {
        let own = cert(sink, "api.tls.cert", &t.cert, CertPurpose::Tls);
        let key = key_file(sink, "api.tls.key", &t.key);
        if t.versions.is_empty() {
            sink.at("api.tls.versions", "at least one TLS version is needed");
        }
        let client_ca: Vec<CertFile> = t
            .client_ca
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                cert(
                    sink,
                    &format!("api.tls.client-ca.{i}"),
                    p,
                    CertPurpose::Anchor,
                )
            })
            .collect();
        if t.client_auth != ClientAuth::Off && t.client_ca.is_empty() {
            sink.at(
                "api.tls.client-auth",
                "client-auth needs client-ca (the CAs whose client certificates are accepted)",
            );
        }
        Some(ApiTls {
            cert: own?,
            key,
            versions: t.versions.clone(),
            cipher_suites: t.cipher_suites.clone(),
            client_auth: t.client_auth,
            client_ca,
        })
    });

    // A single key set is checked as before (certificates valid now); in a rollover list a
    // set may be not yet valid (the successor, staged ahead), but one must be valid now.
    let keyset = |sink: &mut Sink<'_>,
                  p: &str,
                  k: &RawKeySet,
                  ahead: bool,
                  sig: CertPurpose,
                  enc: CertPurpose| {
        let cert = |sink: &mut Sink<'_>, key: &str, f: &Path, purpose: CertPurpose| {
            crate::pmode::certs::load_cert_ahead(&path(f), purpose, now, ahead)
                .map_err(|m| sink.at(key, m))
                .ok()
        };
        let signing_cert = cert(sink, &format!("{p}.signing-cert"), &k.signing_cert, sig);
        let signing_key = key_file(sink, &format!("{p}.signing-key"), &k.signing_key);
        let encryption_cert = cert(
            sink,
            &format!("{p}.encryption-cert"),
            &k.encryption_cert,
            enc,
        );
        let encryption_key = key_file(sink, &format!("{p}.encryption-key"), &k.encryption_key);
        Some(KeySet {
            signing_cert: signing_cert?,
            signing_key,
            encryption_cert: encryption_cert?,
            encryption_key,
        })
    };
    let keysets = |sink: &mut Sink<'_>,
                   name: &str,
                   k: &Option<RawKeySets>,
                   sig: CertPurpose,
                   enc: CertPurpose|
     -> Vec<KeySet> {
        let Some(k) = k else { return Vec::new() };
        let out: Vec<KeySet> = match k {
            RawKeySets::One(one) => keyset(sink, &format!("keys.{name}"), one, false, sig, enc)
                .into_iter()
                .collect(),
            RawKeySets::Many(_) => k
                .sets()
                .into_iter()
                .enumerate()
                .filter_map(|(i, one)| {
                    keyset(sink, &format!("keys.{name}.{i}"), one, true, sig, enc)
                })
                .collect(),
        };
        if matches!(k, RawKeySets::Many(v) if v.is_empty()) {
            sink.at(&format!("keys.{name}"), "empty key list");
        } else if matches!(k, RawKeySets::Many(_))
            && !out.is_empty()
            && !out
                .iter()
                .any(|s| s.signing_cert.valid_at(now) && s.encryption_cert.valid_at(now))
        {
            sink.at(
                &format!("keys.{name}"),
                "no key set of the list is valid now: a rollover may stage a successor, but one set must be in force",
            );
        }
        out
    };
    let rollover_115 = keysets(
        sink,
        "edelivery-1_15",
        &r.keys.edelivery_115,
        CertPurpose::Signing115,
        CertPurpose::Encryption115,
    );
    let rollover_20 = keysets(
        sink,
        "edelivery-2_0",
        &r.keys.edelivery_20,
        CertPurpose::Signing20,
        CertPurpose::KeyAgreement20,
    );
    let keys_115 = rollover_115.first().cloned();
    let keys_20 = rollover_20.first().cloned();
    if r.keys.edelivery_115.is_none() && r.keys.edelivery_20.is_none() {
        sink.at(
            "keys",
            "no key set: configure [keys.edelivery-1_15] and/or [keys.edelivery-2_0]",
        );
    }
    let trust_anchors = r
        .trust
        .anchors
        .iter()
        .enumerate()
        .filter_map(|(i, p)| cert(sink, &format!("trust.anchors.{i}"), p, CertPurpose::Anchor))
        .collect();
    let trust_crls = r.trust.crls.iter().map(|p| path(p)).collect();

    let send_concurrency = concurrency(
        sink,
        "send-concurrency",
        r.gateway.send_concurrency,
        DEFAULT_SEND_CONCURRENCY,
    );
    let send_concurrency_per_partner = concurrency(
        sink,
        "send-concurrency-per-partner",
        r.gateway.send_concurrency_per_partner,
        DEFAULT_SEND_CONCURRENCY_PER_PARTNER,
    );

    let purge_interval = match &r.store.purge_interval {
        None => std::time::Duration::from_secs(3600),
        Some(s) => match crate::pmode::units::parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                sink.at("store.purge-interval", "purge-interval must not be zero");
                std::time::Duration::from_secs(3600)
            }
            Err(m) => {
                sink.at("store.purge-interval", m);
                std::time::Duration::from_secs(3600)
            }
        },
    };

    let d = Limits::default();
    let size = |sink: &mut Sink<'_>, key: &str, v: &Option<String>, default: u64| match v {
        None => default,
        Some(s) => parse_size(s).unwrap_or_else(|m| {
            sink.at(key, m);
            default
        }),
    };
    // A cap keeps inline contents small enough to load with their row.
    const INLINE_CAP: u64 = 16 * 1024 * 1024;
    let store_inline_max = match size(
        sink,
        "store.inline-max",
        &r.store.inline_max,
        crate::store::DEFAULT_INLINE_MAX,
    ) {
        n if n > INLINE_CAP => {
            sink.at("store.inline-max", "inline-max must be at most 16MiB");
            crate::store::DEFAULT_INLINE_MAX
        }
        n => n,
    };
    let limits = Limits {
        max_message_size: size(
            sink,
            "limits.max-message-size",
            &r.limits.max_message_size,
            d.max_message_size,
        ),
        max_part_size: size(
            sink,
            "limits.max-part-size",
            &r.limits.max_part_size,
            d.max_part_size,
        ),
        max_decompressed_size: size(
            sink,
            "limits.max-decompressed-size",
            &r.limits.max_decompressed_size,
            d.max_decompressed_size,
        ),
        max_parts: r.limits.max_parts.unwrap_or(d.max_parts),
        max_xml_depth: r.limits.max_xml_depth.unwrap_or(d.max_xml_depth),
        max_xml_nodes: r.limits.max_xml_nodes.unwrap_or(d.max_xml_nodes),
    };

    let mut backends: Vec<Backend> = Vec::new();
    for (i, b) in r.backends.iter().enumerate() {
        if backends.iter().any(|o| o.name == b.name) {
            sink.at(
                &format!("backend.{i}.name"),
                format!("duplicate backend {:?}", b.name),
            );
        }
        let mut token = [0u8; 32];
        if hex::decode_to_slice(&b.token_sha256, &mut token).is_err() {
            sink.at(
                &format!("backend.{i}.token-sha256"),
                "token-sha256 must be 64 hex digits (sha256sum of the token)",
            );
        }
        if let Some(w) = &b.webhook {
            if !(w.starts_with("https://") || w.starts_with("http://")) {
                sink.at(
                    &format!("backend.{i}.webhook"),
                    format!("webhook {w:?} is not an http(s) URL"),
                );
            }
        }
        let webhook_secret = match &b.webhook_secret {
            None => None,
            Some(RawSecret::Inline(_)) => {
                sink.at(
                    &format!("backend.{i}.webhook-secret"),
                    "webhook-secret must be a reference — { file = \"…\" } or { env = \"…\" } — \
                     never the secret itself",
                );
                None
            }
            Some(RawSecret::Ref(r)) => Secret::load(r, base)
                .map_err(|m| sink.at(&format!("backend.{i}.webhook-secret"), m))
                .ok(),
        };
        for (key, values) in [
            ("allowed-original-senders", &b.allowed_original_senders),
            ("allowed-final-recipients", &b.allowed_final_recipients),
        ] {
            for (j, v) in values.iter().enumerate() {
                if v.trim().is_empty() {
                    sink.at(&format!("backend.{i}.{key}.{j}"), "empty value");
                }
            }
        }
        backends.push(Backend {
            name: b.name.clone(),
            token_sha256: token,
            allowed_pmodes: b.allowed_pmodes.clone(),
            webhook: b.webhook.clone(),
            webhook_secret,
            allowed_original_senders: b.allowed_original_senders.clone(),
            allowed_final_recipients: b.allowed_final_recipients.clone(),
        });
    }

    let mut observability = observability(&r, sink);
    observability.load_alert_secret(&r.alerts, base, sink);
    let tls_cert = tls_cert.unwrap_or(CertFile {
        path: PathBuf::new(),
        der: vec![],
        subject: String::new(),
    });
    Config {
        file: file.to_path_buf(),
        party: PartyId {
            id: r.gateway.party_id,
            id_type: r.gateway.party_id_type,
        },
        pmode_dir,
        as4: As4Listener {
            listen,
            path: as4_path,
            tls_cert,
            tls_key,
            tls_versions: r.as4.tls.versions,
            cipher_suites: r.as4.tls.cipher_suites,
            client_auth: r.as4.tls.client_auth,
            client_ca,
        },
        api_listen,
        api_tls,
        store_dir: path(&r.store.path),
        send_concurrency,
        send_concurrency_per_partner,
        purge_interval,
        store_inline_max,
        keys_115,
        keys_20,
        rollover_115,
        rollover_20,
        trust_anchors,
        trust_crls,
        limits,
        backends,
        observability,
    }
}

fn observability(r: &RawConfig, sink: &mut Sink<'_>) -> Observability {
    use crate::telemetry::{AlertSettings, LogFormat, LogSettings};
    let mut o = Observability::default();
    let d = LogSettings::default();
    o.log = LogSettings {
        format: match r.log.format.as_deref() {
            None => d.format,
            Some(f) => f.parse::<LogFormat>().unwrap_or_else(|m| {
                sink.at("log.format", m);
                d.format
            }),
        },
        level: r.log.level.clone().unwrap_or(d.level),
    };
    if tracing_subscriber::EnvFilter::try_new(&o.log.level).is_err() {
        sink.at(
            "log.level",
            format!(
                "{:?} is not a log filter (e.g. \"info\", \"warn,as4gw=debug\")",
                o.log.level
            ),
        );
    }
    o.metrics_public = r.metrics.public;
    if let Some(t) = &r.metrics.token_sha256 {
        let mut d = [0u8; 32];
        if hex::decode_to_slice(t, &mut d).is_ok() {
            o.metrics_token_sha256 = Some(d);
        } else {
            sink.at(
                "metrics.token-sha256",
                "token-sha256 must be 64 hex digits (sha256sum of the token)",
            );
        }
    }
    let a = &r.alerts;
    let d = AlertSettings::default();
    let dur = |sink: &mut Sink<'_>, key: &str, v: &Option<String>, default| match v {
        None => default,
        Some(s) => parse_duration(s).unwrap_or_else(|m| {
            sink.at(key, m);
            default
        }),
    };
    if let Some(w) = &a.webhook {
        if !(w.starts_with("https://") || w.starts_with("http://")) {
            sink.at(
                "alerts.webhook",
                format!("webhook {w:?} is not an http(s) URL"),
            );
        }
    }
    let mut per_state = Vec::new();
    for (k, v) in &a.stuck_after_state {
        let key = format!("alerts.stuck-after-state.{k}");
        match k.parse::<crate::store::State>() {
            Ok(st) if !st.is_final() => {
                per_state.push((st, dur(sink, &key, &Some(v.clone()), d.stuck_after)));
            }
            _ => sink.at(
                &key,
                format!("{k:?} is not a waiting state (SUBMITTED, SENDING, WAITING_FOR_RETRY, RECEIVED)"),
            ),
        }
    }
    let check_interval = dur(
        sink,
        "alerts.check-interval",
        &a.check_interval,
        d.check_interval,
    );
    if check_interval.is_zero() {
        sink.at(
            "alerts.check-interval",
            "check-interval must be at least 1s",
        );
    }
    o.alerts = AlertSettings {
        webhook: a.webhook.clone(),
        check_interval: check_interval.max(std::time::Duration::from_secs(1)),
        certificate_warn_days: a.certificate_warn_days.unwrap_or(d.certificate_warn_days),
        stuck_after: dur(sink, "alerts.stuck-after", &a.stuck_after, d.stuck_after),
        stuck_after_state: per_state,
        webhook_failures: a.webhook_failures.unwrap_or(d.webhook_failures).max(1),
        repeat: dur(sink, "alerts.repeat", &a.repeat, d.repeat),
        gateway: r.gateway.party_id.clone(),
        webhook_key: None,
    };
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_urls() {
        assert_eq!(
            parse_listen_url("https://127.0.0.1:8443/as4", "https"),
            Ok(("127.0.0.1:8443".parse().unwrap(), "/as4".into()))
        );
        assert_eq!(
            parse_listen_url("http://[::1]:8080", "http").map(|x| x.1),
            Ok("/".into())
        );
        assert!(parse_listen_url("http://127.0.0.1:8443/as4", "https").is_err());
        assert!(parse_listen_url("https://example.org/as4", "https").is_err());
    }

    /// The demo configuration with absolute paths and `extra` appended to its `[[backend]]`.
    fn demo_with(dir: &Path, extra: &str) -> PathBuf {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(repo.join("as4gw.toml"))
            .expect("demo config")
            .replace("\"certs/", &format!("\"{}/certs/", repo.display()))
            .replace(
                "pmodes = \"pmodes\"",
                &format!("pmodes = \"{}/pmodes\"", repo.display()),
            );
        let f = dir.join("gw.toml");
        std::fs::write(&f, format!("{text}\n{extra}\n")).expect("write");
        f
    }

    #[test]
    fn webhook_secret_from_a_file_and_party_restrictions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "s3cr3t-webhook-key-0123456789";
        std::fs::write(dir.path().join("hook.key"), format!("{secret}\n")).expect("key");
        let f = demo_with(
            dir.path(),
            "webhook-secret = { file = \"hook.key\" }\n\
             allowed-original-senders = [\"urn:oots:c1\"]\n\
             allowed-final-recipients = [\"urn:oots:c4\", \"urn:oots:c5\"]",
        );
        let cfg = Config::load(&f, OffsetDateTime::now_utc()).expect("valid");
        let b = &cfg.backends[0];
        let s = b.webhook_secret.as_ref().expect("secret");
        assert_eq!(s.bytes(), secret.as_bytes(), "trailing newline trimmed");
        assert!(
            !format!("{cfg:?}").contains(secret),
            "Debug leaks the secret"
        );
        assert_eq!(b.allowed_original_senders, ["urn:oots:c1"]);
        assert_eq!(b.allowed_final_recipients, ["urn:oots:c4", "urn:oots:c5"]);
        let a = crate::backend::BackendAccess::from(b);
        assert_eq!(a.webhook_key(), secret.as_bytes());
        assert_eq!(a.allowed_original_senders, ["urn:oots:c1"]);
        assert_eq!(a.allowed_final_recipients, ["urn:oots:c4", "urn:oots:c5"]);
        let props = |v: &str| {
            vec![
                ("originalSender".to_string(), v.to_string()),
                ("finalRecipient".to_string(), "urn:oots:c4".to_string()),
            ]
        };
        assert!(a
            .check_submit(Some("oots-red-blue"), &props("urn:oots:c1"))
            .is_ok());
        assert!(a
            .check_submit(Some("oots-red-blue"), &props("urn:oots:x"))
            .is_err());
    }

    #[test]
    fn without_webhook_secret_the_key_is_the_token_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg =
            Config::load(&demo_with(dir.path(), ""), OffsetDateTime::now_utc()).expect("valid");
        let b = &cfg.backends[0];
        assert!(b.webhook_secret.is_none());
        assert!(b.allowed_original_senders.is_empty() && b.allowed_final_recipients.is_empty());
        let a = crate::backend::BackendAccess::from(b);
        assert_eq!(a.webhook_key(), b.token_sha256);
    }

    #[test]
    fn webhook_secret_refusals_never_show_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = OffsetDateTime::now_utc();
        let inline = "inline-secret-value-0123456789";
        let err = |extra: &str| {
            Config::load(&demo_with(dir.path(), extra), now)
                .expect_err("must be refused")
                .to_string()
        };
        let e = err(&format!("webhook-secret = \"{inline}\""));
        assert!(e.contains("never the secret itself"), "{e}");
        assert!(!e.contains(inline), "{e}");
        let e = err("webhook-secret = { env = \"AS4GW_TEST_SURELY_UNSET_VARIABLE\" }");
        assert!(
            e.contains("AS4GW_TEST_SURELY_UNSET_VARIABLE is not set"),
            "{e}"
        );
        let e = err("webhook-secret = { file = \"missing.key\" }");
        assert!(e.contains("cannot be read"), "{e}");
        let e = err("webhook-secret = { file = \"a\", env = \"B\" }");
        assert!(e.contains("exactly one"), "{e}");
        std::fs::write(dir.path().join("short.key"), "short").expect("key");
        let e = err("webhook-secret = { file = \"short.key\" }");
        assert!(
            e.contains("shorter than 16 bytes") && !e.contains("\"short\""),
            "{e}"
        );
        let e = err("allowed-final-recipients = [\"\"]");
        assert!(e.contains("empty value"), "{e}");
    }
    #[test]
    fn observability_defaults_are_on_and_sections_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = OffsetDateTime::now_utc();
        let cfg = Config::load(&demo_with(dir.path(), ""), now).expect("valid");
        let o = &cfg.observability;
        assert_eq!(o.log.format, crate::telemetry::LogFormat::Text);
        assert!(!o.metrics_public && o.metrics_token_sha256.is_none());
        assert_eq!(o.alerts.certificate_warn_days, 30);
        assert_eq!(o.alerts.stuck_after.as_secs(), 15 * 60);
        assert_eq!(o.alerts.webhook_failures, 3);
        assert!(o.alerts.webhook.is_none());
        assert_eq!(o.alerts.gateway, "red_gw");

        let extra = "[log]\nformat = \"json\"\nlevel = \"warn,as4gw=debug\"\n\
                     [metrics]\npublic = true\n\
                     [alerts]\nwebhook = \"https://ops.example/hook\"\ncheck-interval = \"10s\"\n\
                     certificate-warn-days = 45\nstuck-after = \"1h\"\nwebhook-failures = 5\n\
                     stuck-after-state = { RECEIVED = \"4h\" }";
        let cfg = Config::load(&demo_with(dir.path(), extra), now).expect("valid");
        let o = &cfg.observability;
        assert_eq!(o.log.format, crate::telemetry::LogFormat::Json);
        assert_eq!(o.log.level, "warn,as4gw=debug");
        assert!(o.metrics_public);
        let a = &o.alerts;
        assert_eq!(a.webhook.as_deref(), Some("https://ops.example/hook"));
        assert_eq!(a.check_interval.as_secs(), 10);
        assert_eq!(a.certificate_warn_days, 45);
        assert_eq!(a.webhook_failures, 5);
        assert_eq!(
            a.stuck_after_for(crate::store::State::Sending).as_secs(),
            3600
        );
        assert_eq!(
            a.stuck_after_for(crate::store::State::Received).as_secs(),
            4 * 3600
        );
        assert!(a.webhook_key.is_none());

        let secret = "alert-hmac-key-0123456789abcdef";
        std::fs::write(dir.path().join("alerts.key"), format!("{secret}\n")).expect("key");
        let extra = "[alerts]\nwebhook = \"https://ops.example/hook\"\n\
                     webhook-secret = { file = \"alerts.key\" }";
        let cfg = Config::load(&demo_with(dir.path(), extra), now).expect("valid");
        let a = &cfg.observability.alerts;
        assert_eq!(a.webhook_key.as_deref(), Some(secret.as_bytes()));
        let dbg = format!("{cfg:?}");
        assert!(
            dbg.contains("webhook_key: Some(\"<redacted>\")") && !dbg.contains(secret),
            "Debug leaks the alert key"
        );
        let e = Config::load(
            &demo_with(
                dir.path(),
                &format!("[alerts]\nwebhook-secret = \"{secret}\""),
            ),
            now,
        )
        .expect_err("inline secret")
        .to_string();
        assert!(
            e.contains("never the secret itself") && !e.contains(secret),
            "{e}"
        );
    }

    #[test]
    fn observability_mistakes_are_reported_with_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = OffsetDateTime::now_utc();
        for (extra, want) in [
            ("[log]\nformat = \"xml\"", "log format \"xml\""),
            ("[metrics]\ntoken-sha256 = \"abc\"", "64 hex digits"),
            ("[alerts]\nwebhook = \"ftp://x\"", "not an http(s) URL"),
            ("[alerts]\nstuck-after = \"soon\"", "invalid duration"),
            (
                "[alerts]\nstuck-after-state = { FAILED = \"1h\" }",
                "not a waiting state",
            ),
            ("[alerts]\ncheck-interval = \"0s\"", "at least 1s"),
            ("[alerts]\nunknown = 1", "unknown field"),
        ] {
            let e = Config::load(&demo_with(dir.path(), extra), now)
                .expect_err(extra)
                .to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }
}
