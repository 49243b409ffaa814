//! The P-Mode file format: a raw serde model (`RawPMode`, strict: `deny_unknown_fields`) and
//! the validated [`PMode`] built from it with `TryFrom`, so an invalid P-Mode cannot exist at
//! run time (guide §1.9, habit 10). Every field is documented in `docs/pmodes.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use super::certs::{load_cert, CertFile, CertPurpose};
use super::diag::{Diagnostic, Locator, Sink};
use super::units::{parse_duration, parse_size};
use crate::ns;

// ------------------------------------------------------------------------------------------
// Raw model (what the TOML says)
// ------------------------------------------------------------------------------------------

/// One P-Mode file as written. Field names are kebab-case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPMode {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    pub mep: Mep,
    pub binding: Binding,
    pub initiator: RawParty,
    pub responder: RawParty,
    #[serde(default)]
    pub agreement: Option<RawAgreement>,
    pub service: RawService,
    #[serde(rename = "leg")]
    pub legs: Vec<RawLeg>,
    pub security: RawSecurity,
    pub receipt: RawReceipt,
    #[serde(default)]
    pub error_handling: RawErrorHandling,
    pub reception_awareness: RawReceptionAwareness,
    #[serde(default = "default_compression")]
    pub compression: String,
    #[serde(default)]
    pub payload: RawPayload,
    #[serde(default = "yes")]
    pub four_corner: bool,
    #[serde(default, rename = "property")]
    pub properties: Vec<RawProperty>,
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub retention: RawRetention,
}

/// `[retention]`: whole days, so an operator reads "365" as the year OOTS keeps metadata.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRetention {
    #[serde(default)]
    pub payload_days: Option<u32>,
    #[serde(default)]
    pub metadata_days: Option<u32>,
}

fn yes() -> bool {
    true
}

fn default_compression() -> String {
    ns::MEDIA_GZIP.to_string()
}

/// `eb:PartyId` value(s): a single string, or a list (which eDelivery forbids; accepted by the
/// parser so the profile check can say why, digest §2.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawParty {
    pub party_id: OneOrMany,
    #[serde(default)]
    pub party_id_type: Option<String>,
    pub role: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub signing_cert: Option<OneOrManyPaths>,
    #[serde(default)]
    pub encryption_cert: Option<OneOrManyPaths>,
}

/// A certificate file, or a list of them for a rollover: the partner's old and new
/// certificates overlap (any valid one verifies; the newest valid one is encrypted to).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrManyPaths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl OneOrManyPaths {
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            OneOrManyPaths::One(p) => vec![p.as_path()],
            OneOrManyPaths::Many(v) => v.iter().map(PathBuf::as_path).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawAgreement {
    pub value: String,
    #[serde(default, rename = "type")]
    pub agreement_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawService {
    pub value: String,
    #[serde(default, rename = "type")]
    pub service_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLeg {
    pub name: String,
    pub action: String,
    #[serde(default = "yes")]
    pub compress: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSecurity {
    pub suite: Suite,
    #[serde(default = "yes")]
    pub sign: bool,
    #[serde(default = "yes")]
    pub encrypt: bool,
    #[serde(default)]
    pub signature_algorithm: Option<String>,
    #[serde(default)]
    pub hash_function: Option<String>,
    #[serde(default)]
    pub encryption_algorithm: Option<String>,
    #[serde(default)]
    pub encryption_key_reference: Option<KeyReference>,
    #[serde(default)]
    pub trust_anchors: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawReceipt {
    pub non_repudiation: bool,
    pub reply_pattern: ReplyPattern,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawErrorHandling {
    #[serde(default = "yes")]
    pub as_response: bool,
    #[serde(default = "yes")]
    pub process_error_notify_consumer: bool,
    #[serde(default = "yes")]
    pub process_error_notify_producer: bool,
    #[serde(default = "yes")]
    pub delivery_failure_notify_producer: bool,
    #[serde(default = "yes")]
    pub missing_receipt_notify_producer: bool,
}

impl Default for RawErrorHandling {
    fn default() -> Self {
        RawErrorHandling {
            as_response: true,
            process_error_notify_consumer: true,
            process_error_notify_producer: true,
            delivery_failure_notify_producer: true,
            missing_receipt_notify_producer: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawReceptionAwareness {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub retry: RawRetry,
    #[serde(default = "yes")]
    pub duplicate_detection: bool,
    pub duplicate_window: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRetry {
    pub attempts: u32,
    pub interval: String,
    pub backoff: Backoff,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPayload {
    #[serde(default)]
    pub allowed_mime_types: Vec<String>,
    #[serde(default)]
    pub first_part_mime_type: Option<String>,
    #[serde(default)]
    pub min_parts: Option<u32>,
    #[serde(default)]
    pub max_parts: Option<u32>,
    #[serde(default)]
    pub max_part_size: Option<String>,
    #[serde(default)]
    pub max_total_size: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawProperty {
    pub name: String,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub datatype: PropertyType,
    #[serde(default)]
    pub value: Option<String>,
}

// ------------------------------------------------------------------------------------------
// Enumerations shared by raw and validated model
// ------------------------------------------------------------------------------------------

/// `PMode.MEP` (digest §2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mep {
    OneWay,
    TwoWay,
}

impl Mep {
    pub fn uri(self) -> &'static str {
        match self {
            Mep::OneWay => ns::MEP_ONE_WAY,
            Mep::TwoWay => ns::MEP_TWO_WAY,
        }
    }
}

/// `PMode.MEPbinding` (digest §2.10). Pull and sync are not part of the eDelivery profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binding {
    Push,
    PushAndPush,
}

impl Binding {
    pub fn uri(self) -> &'static str {
        match self {
            Binding::Push => ns::MEP_BINDING_PUSH,
            Binding::PushAndPush => ns::MEP_BINDING_PUSH_AND_PUSH,
        }
    }
}

/// Security suite: eDelivery AS4 1.15 (RSA, digest §3.2) or 2.0 (Ed25519/X25519, digest §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Suite {
    #[serde(rename = "edelivery-1.15")]
    Edelivery115,
    #[serde(rename = "edelivery-2.0")]
    Edelivery20,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::Edelivery115 => "edelivery-1.15",
            Suite::Edelivery20 => "edelivery-2.0",
        }
    }
    /// Signature algorithm (digest §3.4 / §4.2).
    pub fn signature_algorithm(self) -> &'static str {
        match self {
            Suite::Edelivery115 => ns::ALG_RSA_SHA256,
            Suite::Edelivery20 => ns::ALG_ED25519,
        }
    }
    /// Reference digest, same in both suites (digest §3.4, §4.2).
    pub fn hash_function(self) -> &'static str {
        ns::ALG_SHA256
    }
    /// Data encryption, same in both suites (digest §3.4, §4.2).
    pub fn encryption_algorithm(self) -> &'static str {
        ns::ALG_AES128_GCM
    }
    /// Key transport (1.15, RSA-OAEP) or key agreement (2.0, X25519) (digest §3.2, §4.2).
    pub fn key_algorithm(self) -> &'static str {
        match self {
            Suite::Edelivery115 => ns::ALG_RSA_OAEP,
            Suite::Edelivery20 => ns::ALG_X25519,
        }
    }
    fn signing_purpose(self) -> CertPurpose {
        match self {
            Suite::Edelivery115 => CertPurpose::Signing115,
            Suite::Edelivery20 => CertPurpose::Signing20,
        }
    }
    fn encryption_purpose(self) -> CertPurpose {
        match self {
            Suite::Edelivery115 => CertPurpose::Encryption115,
            Suite::Edelivery20 => CertPurpose::KeyAgreement20,
        }
    }
    /// Default reference form for the recipient certificate: BST is the form every
    /// implementation accepts (digest §3.2 "SHOULD be supported", §12.4); the 2.0 example uses SKI.
    fn default_key_reference(self) -> KeyReference {
        match self {
            Suite::Edelivery115 => KeyReference::Bst,
            Suite::Edelivery20 => KeyReference::Ski,
        }
    }
}

/// How `xenc:EncryptedKey` refers to the recipient certificate (digest §3.2, §12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyReference {
    Bst,
    Ski,
    IssuerSerial,
}

/// `Security.SendReceipt.ReplyPattern`. Only `response` is allowed in eDelivery (digest §3.4);
/// `callback` parses so the check can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplyPattern {
    Response,
    Callback,
}

/// Spacing of retries (digest §2.8: Domibus `CONSTANT` is `constant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backoff {
    Constant,
    Exponential,
}

/// Datatype of a message property value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PropertyType {
    #[default]
    String,
    /// An RFC 4122 UUID (OOTS `ExchangeId`, digest §6.3).
    Uuid,
}

// ------------------------------------------------------------------------------------------
// Validated model
// ------------------------------------------------------------------------------------------

/// `eb:PartyId` with its optional `@type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartyId {
    pub id: String,
    #[serde(default, rename = "type")]
    pub id_type: Option<String>,
}

impl std::fmt::Display for PartyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.id_type {
            Some(t) => write!(f, "{}[{}]", self.id, t),
            None => write!(f, "{}", self.id),
        }
    }
}

/// One side of the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub party_id: PartyId,
    pub role: String,
    /// Where this party receives AS4 messages (`PMode[].Protocol.Address`), https only.
    pub endpoint: Option<String>,
    /// The newest certificate valid when the P-Mode was loaded (of `signing_certs`).
    pub signing_cert: Option<CertFile>,
    /// The newest certificate valid when the P-Mode was loaded (of `encryption_certs`); the
    /// MSH picks again with the time of each message ([`Party::encryption_cert_at`]).
    pub encryption_cert: Option<CertFile>,
    /// Every configured signing certificate (a rollover list has several); all are pinned.
    pub signing_certs: Vec<CertFile>,
    /// Every configured encryption certificate.
    pub encryption_certs: Vec<CertFile>,
}

impl Party {
    /// The certificate to encrypt to at `at`: the newest valid one of the list, else the one
    /// chosen at load time (single-certificate P-Modes behave exactly as before).
    pub fn encryption_cert_at(&self, at: OffsetDateTime) -> Option<&CertFile> {
        super::certs::newest_valid(&self.encryption_certs, at).or(self.encryption_cert.as_ref())
    }
}

/// `eb:AgreementRef` value and `@type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    pub value: String,
    #[serde(default, rename = "type")]
    pub agreement_type: Option<String>,
}

/// `eb:Service` value and `@type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub value: String,
    #[serde(default, rename = "type")]
    pub service_type: Option<String>,
}

/// Who sends on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Initiator → responder (every one-way leg; the request of a two-way exchange).
    InitiatorToResponder,
    /// Responder → initiator (the reply leg of two-way/push-and-push).
    ResponderToInitiator,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub name: String,
    pub action: String,
    /// Compress payloads with gzip before signing (digest §2.9).
    pub compress: bool,
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub suite: Suite,
    pub encryption_key_reference: KeyReference,
    pub trust_anchors: Vec<CertFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Resends after the first attempt (Domibus `retry="12;4;CONSTANT"` → 4).
    pub attempts: u32,
    /// Spacing (Domibus → 12 minutes).
    pub interval: Duration,
    pub backoff: Backoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionAwareness {
    pub retry: Retry,
    /// How long MessageIds are remembered for duplicate elimination (digest §2.8).
    pub duplicate_window: Duration,
}

/// How long a P-Mode's messages are kept (`None` = for ever, the default: purging is opt-in so
/// that an upgrade never deletes evidence nobody asked to delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Payload and wire files of final messages (inbound: delivered to the backend) older than
    /// this are removed; the metadata stays.
    pub payload_days: Option<u32>,
    /// Final messages older than this are removed with events, receipts and properties.
    pub metadata_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadProfile {
    /// Empty means any type.
    pub allowed_mime_types: Vec<String>,
    pub first_part_mime_type: Option<String>,
    pub min_parts: u32,
    pub max_parts: Option<u32>,
    pub max_part_size: Option<u64>,
    pub max_total_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyRule {
    pub name: String,
    pub required: bool,
    pub datatype: PropertyType,
    /// Fixed value (e.g. `SpecificationId = "oots-edm:v2.0"`, digest §6.3).
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorHandling {
    pub process_error_notify_consumer: bool,
    pub process_error_notify_producer: bool,
    pub delivery_failure_notify_producer: bool,
}

/// A validated P-Mode. Profile-fixed values (non-repudiation receipts as response, gzip,
/// errors as response, missing-receipt notification) are checked on load and therefore not
/// stored: they cannot vary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PMode {
    pub id: String,
    pub description: Option<String>,
    /// The file it came from (diagnostics, `pmode explain`).
    pub file: PathBuf,
    pub mep: Mep,
    pub binding: Binding,
    pub initiator: Party,
    pub responder: Party,
    pub agreement: Option<Agreement>,
    pub service: Service,
    pub legs: Vec<Leg>,
    pub security: Security,
    pub reception_awareness: ReceptionAwareness,
    pub error_handling: ErrorHandling,
    pub payload: PayloadProfile,
    pub four_corner: bool,
    pub properties: Vec<PropertyRule>,
    pub backend: Option<String>,
    pub retention: Retention,
}

impl PMode {
    /// The sending and receiving party of `leg`.
    pub fn sender_receiver(&self, leg: &Leg) -> (&Party, &Party) {
        match leg.direction {
            Direction::InitiatorToResponder => (&self.initiator, &self.responder),
            Direction::ResponderToInitiator => (&self.responder, &self.initiator),
        }
    }

    /// This P-Mode with each party's encryption certificate chosen for `now` (the newest valid
    /// one of a rollover list), so a partner's announced successor is used from the moment
    /// its window opens, without a reload.
    pub fn with_certificates_at(&self, now: OffsetDateTime) -> PMode {
        let mut p = self.clone();
        for party in [&mut p.initiator, &mut p.responder] {
            party.encryption_cert = party.encryption_cert_at(now).cloned();
        }
        p
    }

    /// Whether this is the ebMS test service (digest §2.4), never delivered to a backend.
    pub fn is_test_service(&self) -> bool {
        self.service.value == ns::TEST_SERVICE
    }
}

/// A raw P-Mode with what validation needs: where it came from (relative paths, line
/// numbers) and the time certificates are checked at (the room reads no clock).
#[derive(Debug)]
pub struct RawPModeFile<'a> {
    pub raw: RawPMode,
    pub file: &'a Path,
    pub locator: &'a Locator,
    pub now: OffsetDateTime,
}

impl TryFrom<RawPModeFile<'_>> for PMode {
    type Error = Vec<Diagnostic>;

    fn try_from(f: RawPModeFile<'_>) -> Result<PMode, Vec<Diagnostic>> {
        let mut v = Validator {
            sink: Sink::new(f.file, f.locator),
            base: base_dir(f.file),
            now: f.now,
        };
        let pmode = v.pmode(f.raw, f.file);
        if v.sink.out.is_empty() {
            Ok(pmode)
        } else {
            Err(v.sink.out)
        }
    }
}

fn base_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Whether `s` is an absolute URI (`scheme:rest`, RFC 3986 §3.1): the ebMS rule for PartyId,
/// Service and AgreementRef values without `@type` (digest §2.3).
pub fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    !rest.is_empty()
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !s.chars().any(char::is_whitespace)
}

/// Whether `s` is an `https://host…` URL (digest §3.4 Protocol.Address, §4.5).
pub fn is_https_url(s: &str) -> bool {
    s.strip_prefix("https://").is_some_and(|rest| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !s.chars().any(char::is_whitespace)
    })
}

struct Validator<'a> {
    sink: Sink<'a>,
    base: PathBuf,
    now: OffsetDateTime,
}

impl Validator<'_> {
    fn pmode(&mut self, r: RawPMode, file: &Path) -> PMode {
        if r.id.trim().is_empty() {
            self.sink.at("id", "id must not be empty");
        }
        // digest §2.10, §3.4: oneWay+push or twoWay+pushAndPush.
        match (r.mep, r.binding) {
            (Mep::OneWay, Binding::Push) | (Mep::TwoWay, Binding::PushAndPush) => {}
            (m, b) => self.sink.at(
                "binding",
                format!(
                    "mep {:?} with binding {:?} is not an eDelivery combination (one-way + push, two-way + push-and-push; digest §2.10, §3.4)",
                    mep_name(m),
                    binding_name(b)
                ),
            ),
        }
        let suite = r.security.suite;
        let anchors = self.anchors(&r.security.trust_anchors);
        let has_anchors = !r.security.trust_anchors.is_empty();
        let initiator = self.party(&r.initiator, "initiator", suite, has_anchors);
        let responder = self.party(&r.responder, "responder", suite, has_anchors);
        // Receiver of leg 1 needs an endpoint and an encryption certificate (digest §3.4
        // Protocol.Address, Encryption.Certificate); in two-way/push-and-push so does the initiator.
        let mut receivers = vec![("responder", &r.responder)];
        if r.mep == Mep::TwoWay {
            receivers.push(("initiator", &r.initiator));
        }
        for (side, p) in receivers {
            if p.endpoint.is_none() {
                self.sink.at(side, format!("missing field `endpoint` in {side}: the receiving party needs an https endpoint (digest §3.4 PMode[].Protocol.Address)"));
            }
            if p.encryption_cert.is_none() {
                self.sink.at(side, format!("missing field `encryption-cert` in {side}: payloads are encrypted for the receiver (digest §3.4 PMode[].Security.X509.Encryption.Certificate)"));
            }
        }
        let agreement = r.agreement.as_ref().map(|a| {
            if a.value.trim().is_empty() {
                self.sink.at("agreement.value", "agreement value must not be empty (omit [agreement] for no AgreementRef)");
            } else if a.agreement_type.is_none() && !is_uri(&a.value) {
                self.sink.at("agreement.value", format!("agreement {:?} has no type, so it must be a URI (digest §2.3, ebMS3 §5.2.2.7)", a.value));
            }
            Agreement { value: a.value.clone(), agreement_type: a.agreement_type.clone() }
        });
        if r.service.value.trim().is_empty() {
            self.sink
                .at("service.value", "service value must not be empty");
        } else if r.service.service_type.is_none() && !is_uri(&r.service.value) {
            self.sink.at(
                "service.value",
                format!(
                    "service {:?} has no type, so it must be a URI (digest §2.3, ebMS3 §5.2.2.8)",
                    r.service.value
                ),
            );
        }
        let service = Service {
            value: r.service.value.clone(),
            service_type: r.service.service_type.clone(),
        };
        let legs = self.legs(&r.legs, r.mep);
        let security = self.security(&r.security, anchors);
        self.receipt(&r.receipt);
        let error_handling = self.error_handling(&r.error_handling);
        let reception_awareness = self.reception_awareness(&r.reception_awareness);
        // digest §2.9, §3.4: PayloadService.CompressionType MUST be application/gzip.
        if r.compression != ns::MEDIA_GZIP {
            self.sink.at("compression", format!("compression {:?} is not allowed: eDelivery allows only \"application/gzip\" (digest §2.9, §3.4)", r.compression));
        }
        let payload = self.payload(&r.payload);
        let retention = self.retention(&r.retention, reception_awareness.duplicate_window);
        let properties = self.properties(&r.properties, r.four_corner, &service);
        if let Some(b) = &r.backend {
            if b.trim().is_empty() {
                self.sink.at("backend", "backend name must not be empty");
            }
        }
        PMode {
            id: r.id,
            description: r.description,
            file: file.to_path_buf(),
            mep: r.mep,
            binding: r.binding,
            initiator,
            responder,
            agreement,
            service,
            legs,
            security,
            reception_awareness,
            error_handling,
            payload,
            four_corner: r.four_corner,
            properties,
            backend: r.backend,
            retention,
        }
    }

    fn retention(&mut self, r: &RawRetention, duplicate_window: Duration) -> Retention {
        for (key, v) in [
            ("retention.payload-days", r.payload_days),
            ("retention.metadata-days", r.metadata_days),
        ] {
            if v == Some(0) {
                self.sink
                    .at(key, "must be at least 1 day (omit it to keep for ever)");
            }
        }
        if let (Some(p), Some(m)) = (r.payload_days, r.metadata_days) {
            if m < p {
                self.sink.at(
                    "retention.metadata-days",
                    format!("metadata-days ({m}) must not be shorter than payload-days ({p}): purging a message removes its payloads too"),
                );
            }
        }
        // The duplicate-detection key of an inbound message goes with its metadata: keeping
        // metadata shorter than the window would let a late resend be delivered twice (digest §2.8).
        if let Some(m) = r.metadata_days {
            let window_days = duplicate_window.as_secs().div_ceil(86_400);
            if m > 0 && u64::from(m) < window_days {
                self.sink.at(
                    "retention.metadata-days",
                    format!("metadata-days ({m}) must cover the duplicate window ({window_days} days, reception-awareness.duplicate-window; digest §2.8)"),
                );
            }
        }
        Retention {
            payload_days: r.payload_days,
            metadata_days: r.metadata_days,
        }
    }

    fn party(&mut self, p: &RawParty, side: &str, suite: Suite, has_anchors: bool) -> Party {
        let id = match &p.party_id {
            OneOrMany::One(s) => s.clone(),
            OneOrMany::Many(v) => {
                if v.len() != 1 {
                    self.sink.at(
                        &format!("{side}.party-id"),
                        format!("{side} has {} PartyIds; eDelivery allows exactly one (digest §2.3, §3.4)", v.len()),
                    );
                }
                v.first().cloned().unwrap_or_default()
            }
        };
        if id.trim().is_empty() {
            self.sink.at(
                &format!("{side}.party-id"),
                format!("{side} party-id must not be empty"),
            );
        } else if p.party_id_type.is_none() && !is_uri(&id) {
            self.sink.at(
                &format!("{side}.party-id"),
                format!("{side} party-id {id:?} has no party-id-type, so it must be a URI (digest §2.3, ebMS3 §5.2.2.4)"),
            );
        }
        if let Some(t) = &p.party_id_type {
            if !is_uri(t) {
                self.sink.at(&format!("{side}.party-id-type"), format!("{side} party-id-type {t:?} is not a URI (digest §3.4: ebCore Party Id type URN recommended)"));
            }
        }
        if p.role.trim().is_empty() {
            self.sink.at(
                &format!("{side}.role"),
                format!("{side} role must not be empty"),
            );
        } else if !is_uri(&p.role) {
            self.sink.at(
                &format!("{side}.role"),
                format!(
                    "{side} role {:?} is not a URI (ebMS3 §5.2.2.3; OOTS uses {}, digest §6.3)",
                    p.role,
                    ns::OOTS_ROLE
                ),
            );
        }
        if let Some(e) = &p.endpoint {
            if !is_https_url(e) {
                self.sink.at(&format!("{side}.endpoint"), format!("{side} endpoint {e:?} is not an https URL (digest §3.4 Protocol.Address, §4.5)"));
            }
        }
        // Sender signing certificate (digest §3.4 Signature.Certificate; the receipt is signed by
        // the receiver, digest §3.2), unless trust anchors validate a certificate sent in the
        // message (dynamic receiver, digest §3.6).
        if p.signing_cert.is_none() && !has_anchors {
            self.sink.at(side, format!("missing field `signing-cert` in {side} (or give security.trust-anchors): signatures must be checked against a pinned certificate or a trust anchor (digest §3.4, §3.6)"));
        }
        let signing_certs = self.cert_list(
            p.signing_cert.as_ref(),
            &format!("{side}.signing-cert"),
            suite.signing_purpose(),
        );
        let encryption_certs = self.cert_list(
            p.encryption_cert.as_ref(),
            &format!("{side}.encryption-cert"),
            suite.encryption_purpose(),
        );
        let signing_cert = super::certs::newest_valid(&signing_certs, self.now).cloned();
        let encryption_cert = super::certs::newest_valid(&encryption_certs, self.now).cloned();
        Party {
            party_id: PartyId {
                id,
                id_type: p.party_id_type.clone(),
            },
            role: p.role.clone(),
            endpoint: p.endpoint.clone(),
            signing_cert,
            encryption_cert,
            signing_certs,
            encryption_certs,
        }
    }

    /// A single certificate (checked as before: valid now) or a rollover list (entries may be
    /// not yet valid, none expired, at least one valid now).
    fn cert_list(
        &mut self,
        paths: Option<&OneOrManyPaths>,
        key: &str,
        purpose: CertPurpose,
    ) -> Vec<CertFile> {
        match paths {
            None => Vec::new(),
            Some(OneOrManyPaths::One(p)) => self.cert(p, key, purpose).into_iter().collect(),
            Some(OneOrManyPaths::Many(list)) => {
                if list.is_empty() {
                    self.sink.at(key, "empty certificate list");
                    return Vec::new();
                }
                let mut out = Vec::new();
                for (i, rel) in list.iter().enumerate() {
                    let path = self.base.join(rel);
                    match super::certs::load_cert_ahead(&path, purpose, self.now, true) {
                        Ok(c) => out.push(c),
                        Err(m) => self.sink.at(&format!("{key}.{i}"), m),
                    }
                }
                if !out.is_empty() && super::certs::newest_valid(&out, self.now).is_none() {
                    self.sink.at(
                        key,
                        "no certificate of the list is valid now (the list may announce a successor, but one must be in force)",
                    );
                }
                out
            }
        }
    }

    fn cert(&mut self, rel: &Path, key: &str, purpose: CertPurpose) -> Option<CertFile> {
        let path = self.base.join(rel);
        match load_cert(&path, purpose, self.now) {
            Ok(c) => Some(c),
            Err(msg) => {
                self.sink.at(key, msg);
                None
            }
        }
    }

    fn anchors(&mut self, list: &[PathBuf]) -> Vec<CertFile> {
        list.iter()
            .enumerate()
            .filter_map(|(i, p)| {
                self.cert(
                    p,
                    &format!("security.trust-anchors.{i}"),
                    CertPurpose::Anchor,
                )
            })
            .collect()
    }

    fn legs(&mut self, legs: &[RawLeg], mep: Mep) -> Vec<Leg> {
        if legs.is_empty() {
            self.sink.at("leg", "a P-Mode needs at least one [[leg]]");
        }
        if mep == Mep::TwoWay && legs.len() != 2 {
            self.sink.at(
                "mep",
                format!(
                    "two-way needs exactly two legs (request, reply), found {}",
                    legs.len()
                ),
            );
        }
        let mut out: Vec<Leg> = Vec::new();
        for (i, l) in legs.iter().enumerate() {
            let direction = if mep == Mep::TwoWay && i == 1 {
                Direction::ResponderToInitiator
            } else {
                Direction::InitiatorToResponder
            };
            if l.name.trim().is_empty() {
                self.sink
                    .at(&format!("leg.{i}.name"), "leg name must not be empty");
            }
            if l.action.trim().is_empty() {
                self.sink
                    .at(&format!("leg.{i}.action"), "leg action must not be empty");
            }
            if out.iter().any(|o| o.name == l.name) {
                self.sink.at(
                    &format!("leg.{i}.name"),
                    format!("duplicate leg name {:?}", l.name),
                );
            }
            if out
                .iter()
                .any(|o| o.action == l.action && o.direction == direction)
            {
                self.sink.at(
                    &format!("leg.{i}.action"),
                    format!("action {:?} appears in two legs of the same direction: messages could not be told apart (digest §2.3)", l.action),
                );
            }
            out.push(Leg {
                name: l.name.clone(),
                action: l.action.clone(),
                compress: l.compress,
                direction,
            });
        }
        out
    }

    fn security(&mut self, s: &RawSecurity, trust_anchors: Vec<CertFile>) -> Security {
        let suite = s.suite;
        // digest §3.4: Security.X509.Sign = true, Encryption.Encrypt = true (same in 2.0, §4.2).
        if !s.sign {
            self.sink.at("security.sign", "sign = false is not allowed: eDelivery requires signed messages (digest §3.4 PMode[].Security.X509.Sign)");
        }
        if !s.encrypt {
            self.sink.at("security.encrypt", "encrypt = false is not allowed: eDelivery requires encrypted payloads (digest §3.4 PMode[].Security.X509.Encryption.Encrypt)");
        }
        let checks = [
            (
                "security.signature-algorithm",
                &s.signature_algorithm,
                suite.signature_algorithm(),
                "§3.4 / §4.2 Signature.Algorithm",
            ),
            (
                "security.hash-function",
                &s.hash_function,
                suite.hash_function(),
                "§3.4 / §4.2 Signature.HashFunction",
            ),
            (
                "security.encryption-algorithm",
                &s.encryption_algorithm,
                suite.encryption_algorithm(),
                "§3.4 / §4.2 Encryption.Algorithm",
            ),
        ];
        for (key, given, want, cite) in checks {
            if let Some(g) = given {
                if g != want {
                    self.sink.at(
                        key,
                        format!(
                            "{} {g:?} is not the {} value {want:?} (digest {cite})",
                            key.trim_start_matches("security."),
                            suite.name()
                        ),
                    );
                }
            }
        }
        Security {
            suite,
            encryption_key_reference: s
                .encryption_key_reference
                .unwrap_or(suite.default_key_reference()),
            trust_anchors,
        }
    }

    fn receipt(&mut self, r: &RawReceipt) {
        // digest §3.4: SendReceipt.NonRepudiation = true, ReplyPattern = Response.
        if !r.non_repudiation {
            self.sink.at("receipt.non-repudiation", "non-repudiation = false is not allowed: eDelivery receipts carry NRR (digest §3.4 SendReceipt.NonRepudiation)");
        }
        if r.reply_pattern != ReplyPattern::Response {
            self.sink.at("receipt.reply-pattern", "reply-pattern must be \"response\": eDelivery receipts are synchronous, callback MUST NOT be used (digest §3.4 SendReceipt.ReplyPattern)");
        }
    }

    fn error_handling(&mut self, e: &RawErrorHandling) -> ErrorHandling {
        if !e.as_response {
            self.sink.at("error-handling.as-response", "as-response = false is not allowed: errors are returned on the HTTP response (digest §3.4 ErrorHandling.Report.AsResponse)");
        }
        if !e.missing_receipt_notify_producer {
            self.sink.at("error-handling.missing-receipt-notify-producer", "missing-receipt-notify-producer = false is not allowed: the producer must learn of EBMS:0301 (digest §2.6, §3.4)");
        }
        ErrorHandling {
            process_error_notify_consumer: e.process_error_notify_consumer,
            process_error_notify_producer: e.process_error_notify_producer,
            delivery_failure_notify_producer: e.delivery_failure_notify_producer,
        }
    }

    fn reception_awareness(&mut self, r: &RawReceptionAwareness) -> ReceptionAwareness {
        // digest §2.8, §3.4: reception awareness, retry and duplicate detection are required.
        if !r.enabled {
            self.sink.at("reception-awareness.enabled", "enabled = false is not allowed: eDelivery requires reception awareness (digest §2.8, §3.4)");
        }
        if !r.duplicate_detection {
            self.sink.at("reception-awareness.duplicate-detection", "duplicate-detection = false is not allowed: eDelivery requires duplicate detection (digest §2.8, §3.4)");
        }
        if r.retry.attempts == 0 {
            self.sink.at("reception-awareness.retry", "retry attempts must be at least 1: retries are required in eDelivery (digest §2.8)");
        }
        let interval = parse_duration(&r.retry.interval).unwrap_or_else(|m| {
            self.sink
                .at("reception-awareness.retry", format!("retry interval: {m}"));
            Duration::ZERO
        });
        let duplicate_window = parse_duration(&r.duplicate_window).unwrap_or_else(|m| {
            self.sink.at("reception-awareness.duplicate-window", m);
            Duration::ZERO
        });
        ReceptionAwareness {
            retry: Retry {
                attempts: r.retry.attempts,
                interval,
                backoff: r.retry.backoff,
            },
            duplicate_window,
        }
    }

    fn payload(&mut self, p: &RawPayload) -> PayloadProfile {
        for (i, m) in p.allowed_mime_types.iter().enumerate() {
            if m.parse::<mime::Mime>().is_err() {
                self.sink.at(
                    &format!("payload.allowed-mime-types.{i}"),
                    format!("{m:?} is not a MIME type"),
                );
            }
        }
        if let Some(f) = &p.first_part_mime_type {
            if !p.allowed_mime_types.is_empty() && !p.allowed_mime_types.contains(f) {
                self.sink.at(
                    "payload.first-part-mime-type",
                    format!("first-part-mime-type {f:?} is not in allowed-mime-types"),
                );
            }
        }
        let size = |v: &mut Self, key: &str, s: &Option<String>| {
            s.as_ref()
                .and_then(|s| parse_size(s).map_err(|m| v.sink.at(key, m)).ok())
        };
        let max_part_size = size(self, "payload.max-part-size", &p.max_part_size);
        let max_total_size = size(self, "payload.max-total-size", &p.max_total_size);
        let min_parts = p.min_parts.unwrap_or(1);
        if let Some(max) = p.max_parts {
            if max < min_parts {
                self.sink.at(
                    "payload.max-parts",
                    format!("max-parts {max} is below min-parts {min_parts}"),
                );
            }
        }
        PayloadProfile {
            allowed_mime_types: p.allowed_mime_types.clone(),
            first_part_mime_type: p.first_part_mime_type.clone(),
            min_parts,
            max_parts: p.max_parts,
            max_part_size,
            max_total_size,
        }
    }

    fn properties(
        &mut self,
        props: &[RawProperty],
        four_corner: bool,
        service: &Service,
    ) -> Vec<PropertyRule> {
        let mut out: Vec<PropertyRule> = Vec::new();
        for (i, p) in props.iter().enumerate() {
            if p.name.trim().is_empty() {
                self.sink.at(
                    &format!("property.{i}.name"),
                    "property name must not be empty",
                );
            }
            if out.iter().any(|o| o.name == p.name) {
                self.sink.at(
                    &format!("property.{i}.name"),
                    format!("duplicate property {:?}", p.name),
                );
            }
            if let (Some(v), PropertyType::Uuid) = (&p.value, p.datatype) {
                if uuid::Uuid::parse_str(v).is_err() {
                    self.sink.at(
                        &format!("property.{i}.value"),
                        format!("value {v:?} is not a UUID"),
                    );
                }
            }
            out.push(PropertyRule {
                name: p.name.clone(),
                required: p.required,
                datatype: p.datatype,
                value: p.value.clone(),
            });
        }
        // digest §3.5: originalSender and finalRecipient MUST be present in four-corner mode.
        // The ebMS test service (digest §2.4) is exempt: its messages are never delivered.
        if four_corner && service.value != ns::TEST_SERVICE {
            for name in ["originalSender", "finalRecipient"] {
                if !out.iter().any(|p| p.name == name && p.required) {
                    self.sink.at(
                        "property",
                        format!("four-corner P-Mode must require property {name:?} (digest §3.5; set four-corner = false for a two-corner exchange)"),
                    );
                }
            }
        }
        out
    }
}

fn mep_name(m: Mep) -> &'static str {
    match m {
        Mep::OneWay => "one-way",
        Mep::TwoWay => "two-way",
    }
}

fn binding_name(b: Binding) -> &'static str {
    match b {
        Binding::Push => "push",
        Binding::PushAndPush => "push-and-push",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_rule() {
        assert!(is_uri(
            "urn:oasis:names:tc:ebcore:partyid-type:unregistered:oots"
        ));
        assert!(is_uri("http://sdg.europa.eu/edelivery/gateway"));
        assert!(!is_uri("QueryManager"));
        assert!(!is_uri("a b:c"));
        assert!(!is_uri("1abc:x"));
    }

    #[test]
    fn https_rule() {
        assert!(is_https_url("https://127.0.0.1:9443/as4"));
        assert!(!is_https_url("http://127.0.0.1:9443/as4"));
        assert!(!is_https_url("https:///as4"));
    }
}
