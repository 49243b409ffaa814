//! Scenarios as data (`conformance/scenarios/*.toml`, one per file): what is sent, the mutation
//! applied on the way, what must come back and what the receiving backend must get. The format
//! is described in `docs/conformance.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One conformance case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    /// Defaults to the file stem.
    #[serde(default)]
    pub name: String,
    /// Grouping in the report (push, compression, suite, test-service, reliability, receiver,
    /// sender, four-corner, oots).
    pub category: String,
    #[serde(default)]
    pub description: String,
    /// True when the verdict needs what only the operator of the receiving side has (its
    /// keys, its backend's view, a broken TCP stream it must answer): such a case runs against
    /// the in-process partner only, never against `--target URL`.
    #[serde(default)]
    pub needs_partner_control: bool,
    /// What the sending backend submits; absent for `replay` cases.
    #[serde(default)]
    pub send: Option<Send>,
    /// A message recorded from another implementation, replayed as an inbound message.
    #[serde(default)]
    pub replay: Option<Replay>,
    /// The Python `as4` library as the partner: an explicit "not supported" with its reason
    /// (otherwise derived from what the case needs, see `run::as4py_support`).
    #[serde(default)]
    pub as4py: Option<PartnerNote>,
    #[serde(default)]
    pub mutation: Option<Mutation>,
    pub expect: Expect,
    /// The file it was read from (set by [`load_dir`]).
    #[serde(skip)]
    pub file: PathBuf,
}

/// Whether a partner can take part in a case, and why not.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PartnerNote {
    pub supported: bool,
    #[serde(default)]
    pub reason: String,
}

/// A fixture from another implementation, POSTed as it was recorded to an in-process gateway
/// whose clock is pinned to `at` (the fixtures' certificates have expired since).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Replay {
    /// Relative to the base directory: a SOAP envelope (`*.xml`), a MIME package with its
    /// headers, or an HTTP capture (headers + body).
    pub fixture: String,
    /// The receiving gateway's clock (RFC 3339); default: the current time.
    #[serde(default)]
    pub at: Option<String>,
    /// The receiving gateway's configuration (default `as4gw.toml`, red).
    #[serde(default)]
    pub config: Option<String>,
    /// Directory of the receiver's P-Modes (default `pmodes`).
    #[serde(default)]
    pub pmodes: Option<String>,
    /// Why the verdict is what it is (printed in the matrix and the docs).
    pub why: String,
}

/// Which of the two in-process gateways sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gateway {
    #[default]
    Red,
    Blue,
}

/// What the sending backend submits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Send {
    #[serde(default)]
    pub from: Gateway,
    pub pmode: String,
    pub action: String,
    /// Add the properties the P-Mode requires (originalSender, finalRecipient, and for EDM 2.0
    /// P-Modes ExchangeId + SpecificationId) unless given in `property`.
    #[serde(default = "yes")]
    pub default_properties: bool,
    #[serde(default)]
    pub property: Vec<PropertySpec>,
    #[serde(default)]
    pub payload: Vec<PayloadSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PropertySpec {
    pub name: String,
    pub value: String,
    #[serde(default, rename = "type")]
    pub prop_type: Option<String>,
}

/// A payload: exactly one of `file` (relative to the base directory), `text`, `generate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PayloadSpec {
    pub name: String,
    pub mime_type: String,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// `regrep:N` (compressible RegRep XML with N slots), `binary:N` (N pseudo-random bytes).
    #[serde(default)]
    pub generate: Option<String>,
}

/// What happens to the message on its way (see `docs/conformance.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Mutation {
    pub kind: MutationKind,
    /// transient-failure: how many attempts fail before the receiver answers.
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MutationKind {
    // ---- the real sender packs; the transport alters the request bytes
    /// Flip a byte inside the last (encrypted) attachment.
    TamperPayload,
    /// Alter the signed ConversationId in eb:Messaging.
    TamperHeader,
    /// Remove the first attachment's ds:Reference from the signature.
    DropReference,
    /// Swap the Content-ID headers of the first two attachments.
    SwapContentIds,
    /// Send `multipart/related` without a boundary.
    NoBoundary,
    /// Cut the MIME body in half.
    TruncateMime,
    /// The body stream breaks off with an I/O error.
    StreamError,
    // ---- the real sender packs; the transport misbehaves
    /// The request is delivered twice; the second answer must be the first receipt again.
    Replay,
    /// The first `times` attempts fail with a network error.
    TransientFailure,
    /// The receiver never answers.
    ReceiverDown,
    /// A digest in the receipt is altered on the way back.
    TamperReceipt,
    // ---- the harness crafts and signs the message as a (misbehaving) partner would
    /// An action the receiver's P-Modes do not know.
    UnknownAction,
    /// A service the receiver's P-Modes do not know.
    UnknownService,
    /// The To role is not the P-Mode's.
    WrongRole,
    /// finalRecipient is renamed away.
    MissingProperty,
    /// SpecificationId with a value other than the P-Mode's fixed one.
    WrongFixedValue,
    /// A MessageId that is not `left@right`.
    BadMessageId,
    /// A non-UUID ExchangeId on a P-Mode that requires a UUID.
    NotAUuid,
    /// A CompressionType=gzip part that is not gzip.
    CorruptGzip,
    /// A gzip part that inflates beyond the allowed ratio.
    GzipBomb,
    /// Signed and encrypted with the other eDelivery suite.
    WrongSuite,
    /// Signed by the receiver's own (CA-trusted) key, claiming to be the sender.
    Impersonate,
    /// Crafted exactly as the sender would pack it (sanity check of the crafting path).
    None,
}

impl MutationKind {
    /// True when the harness builds the message itself instead of the sending gateway.
    pub fn crafted(self) -> bool {
        use MutationKind::*;
        matches!(
            self,
            UnknownAction
                | BadMessageId
                | UnknownService
                | WrongRole
                | MissingProperty
                | WrongFixedValue
                | NotAUuid
                | CorruptGzip
                | GzipBomb
                | WrongSuite
                | Impersonate
                | None
        )
    }
}

/// The backend's view on the receiving side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivered {
    Once,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The receiver answered with a signed NRR receipt (HTTP 200).
    Receipt,
    /// The receiver answered with an ebMS error signal (`code`, `http-status`).
    Error,
    /// The receiver never answered (sender side checks only).
    None,
}

/// What must come back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    /// The receiver's last answer.
    pub outcome: Outcome,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub http_status: Option<u16>,
    /// The sender's final state (`ACKNOWLEDGED`, `FAILED`); not checked for crafted messages.
    #[serde(default)]
    pub sender_state: Option<String>,
    #[serde(default)]
    pub sender_code: Option<String>,
    #[serde(default)]
    pub attempts: Option<u32>,
    pub delivered: Delivered,
    /// The wire message carries gzip-compressed parts.
    #[serde(default)]
    pub compressed: Option<bool>,
    /// Replay: the second receipt is byte for byte the first.
    #[serde(default)]
    pub same_receipt: Option<bool>,
}

/// Reads every `*.toml` in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<Scenario>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        let mut s: Scenario =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        if s.name.is_empty() {
            s.name = f
                .file_stem()
                .and_then(|x| x.to_str())
                .unwrap_or("scenario")
                .to_string();
        }
        if s.send.is_some() == s.replay.is_some() {
            anyhow::bail!("{}: give exactly one of [send] and [replay]", f.display());
        }
        s.file = f;
        out.push(s);
    }
    Ok(out)
}
