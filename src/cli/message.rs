//! `as4gw message …` (verify captured traffic).
//!
//! `as4gw message verify` runs the receiving side's security processing on a captured message
//! and prints one JSON object: `ok`, `ebms_code` and `reason` on failure, the parsed ebMS header,
//! the SignedInfo verdict and signer, each reference with its verdict, and the SHA-256 of each
//! decrypted part. Exit status 0 only when the message passes; 1 when it is rejected; 2 for
//! usage and I/O errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use as4gw::ns;
use as4gw::pki::{load_certificates, load_private_key, Certificate, TrustStore};
use as4gw::security::capture::parse_capture;
use as4gw::security::crypto::{AwsLc, Crypto};
use as4gw::security::verify::inspect_message;
use as4gw::security::{process_inbound, InboundPolicy, OwnKey, Receiver, Suite};
use as4gw::xml::{Document, Node};

#[derive(Subcommand)]
pub enum Command {
    /// Verify (and decrypt) a captured AS4 message: signature, references, trust, decryption.
    Verify {
        /// Content-Type of the message body (needed for a raw multipart body without MIME headers).
        #[arg(long)]
        content_type: Option<String>,
        /// Our private key (PEM/DER) for decryption; its certificate is taken from the same file or
        /// from the sibling `*.cert.pem`. Repeatable.
        #[arg(long)]
        key: Vec<PathBuf>,
        /// Partner certificate (pinned) or CA certificate (anchor/intermediate), PEM or DER. Repeatable.
        #[arg(long)]
        trust: Vec<PathBuf>,
        /// Local CRL file(s) to apply to chain validation.
        #[arg(long)]
        crl: Vec<PathBuf>,
        /// Validation time (RFC 3339); default: now.
        #[arg(long)]
        at: Option<String>,
        /// Expected suite: `1.15` or `2.0` (default: accept either).
        #[arg(long)]
        suite: Option<String>,
        /// Accept payload parts that are not encrypted.
        #[arg(long)]
        allow_unencrypted: bool,
        /// Accept the legacy rsa-oaep-mgf1p (SHA-1) key transport.
        #[arg(long)]
        allow_legacy_oaep: bool,
        /// Write decrypted payloads into this directory (one file per Content-ID).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The message file (HTTP capture, MIME with headers, raw multipart body, or SOAP).
        message: PathBuf,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Verify {
            content_type,
            key,
            trust,
            crl,
            at,
            suite,
            allow_unencrypted,
            allow_legacy_oaep,
            out,
            message,
        } => {
            let opts = VerifyOpts {
                content_type,
                key,
                trust,
                crl,
                at,
                suite,
                allow_unencrypted,
                allow_legacy_oaep,
                out,
                message,
            };
            verify(&opts)
        }
    }
}

struct VerifyOpts {
    content_type: Option<String>,
    key: Vec<PathBuf>,
    trust: Vec<PathBuf>,
    crl: Vec<PathBuf>,
    at: Option<String>,
    suite: Option<String>,
    allow_unencrypted: bool,
    allow_legacy_oaep: bool,
    out: Option<PathBuf>,
    message: PathBuf,
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

fn own_key(path: &Path) -> anyhow::Result<OwnKey> {
    let bytes = read(path)?;
    let key =
        load_private_key(&bytes).with_context(|| format!("loading key {}", path.display()))?;
    let mut certs = load_certificates(&bytes).unwrap_or_default();
    if certs.is_empty() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let sibling = path.with_file_name(
            name.replace(".key.pem", ".cert.pem")
                .replace(".key", ".cert"),
        );
        if sibling != path && sibling.exists() {
            certs = load_certificates(&read(&sibling)?)
                .with_context(|| format!("loading {}", sibling.display()))?;
        }
    }
    let Some(pos) = certs.iter().position(|c| key.matches(c)) else {
        bail!(
            "no certificate for the key {} (put it in the same PEM file or in a sibling .cert.pem)",
            path.display()
        )
    };
    let cert = certs.remove(pos);
    Ok(OwnKey {
        key,
        cert,
        chain: certs,
    })
}

fn cert_json(c: &Certificate) -> Value {
    json!({
        "subject": c.subject(),
        "issuer": c.issuer(),
        "serial": c.serial_hex(),
        "sha256": c.sha256_hex(),
        "key_type": c.key_type().as_str(),
        "not_before": c.not_before().format(&Rfc3339).unwrap_or_default(),
        "not_after": c.not_after().format(&Rfc3339).unwrap_or_default(),
    })
}

fn text_of(n: Option<Node<'_>>) -> Value {
    n.map(|n| Value::String(n.text().trim().to_string()))
        .unwrap_or(Value::Null)
}

/// The ebMS header summary (namespace-URI based, whatever the prefixes).
fn ebms_json(soap: &[u8]) -> Value {
    let Ok(doc) = Document::parse(soap) else {
        return Value::Null;
    };
    let Some(m) = doc.elements().find(|n| n.is(ns::EB, "Messaging")) else {
        return Value::Null;
    };
    let (kind, um) = if let Some(u) = m.child(ns::EB, "UserMessage") {
        ("UserMessage", u)
    } else if let Some(s) = m.child(ns::EB, "SignalMessage") {
        let k = if s.child(ns::EB, "Receipt").is_some() {
            "Receipt"
        } else if s.child(ns::EB, "Error").is_some() {
            "Error"
        } else {
            "SignalMessage"
        };
        (k, s)
    } else {
        return json!({ "kind": "empty" });
    };
    let mi = um.child(ns::EB, "MessageInfo");
    let party = |dir: &str| -> Value {
        um.child(ns::EB, "PartyInfo")
            .and_then(|p| p.child(ns::EB, dir))
            .map(|f| {
                json!({
                    "party_id": text_of(f.child(ns::EB, "PartyId")),
                    "type": f.child(ns::EB, "PartyId").and_then(|p| p.attr(None, "type")),
                    "role": text_of(f.child(ns::EB, "Role")),
                })
            })
            .unwrap_or(Value::Null)
    };
    let ci = um.child(ns::EB, "CollaborationInfo");
    let hrefs: Vec<Value> = um
        .child(ns::EB, "PayloadInfo")
        .map(|p| {
            p.children_named(ns::EB, "PartInfo")
                .filter_map(|x| x.attr(None, "href"))
                .map(|h| json!(h))
                .collect()
        })
        .unwrap_or_default();
    let props: serde_json::Map<String, Value> = um
        .child(ns::EB, "MessageProperties")
        .map(|p| {
            p.children_named(ns::EB, "Property")
                .map(|x| {
                    (
                        x.attr(None, "name").unwrap_or("").to_string(),
                        json!(x.text().trim()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": kind,
        "message_id": text_of(mi.and_then(|m| m.child(ns::EB, "MessageId"))),
        "ref_to_message_id": text_of(mi.and_then(|m| m.child(ns::EB, "RefToMessageId"))),
        "timestamp": text_of(mi.and_then(|m| m.child(ns::EB, "Timestamp"))),
        "from": party("From"),
        "to": party("To"),
        "service": text_of(ci.and_then(|c| c.child(ns::EB, "Service"))),
        "action": text_of(ci.and_then(|c| c.child(ns::EB, "Action"))),
        "conversation_id": text_of(ci.and_then(|c| c.child(ns::EB, "ConversationId"))),
        "properties": props,
        "part_hrefs": hrefs,
    })
}

fn safe_name(cid: &str) -> String {
    let s: String = cid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("part_{s}")
    } else {
        s
    }
}

fn verify(o: &VerifyOpts) -> anyhow::Result<ExitCode> {
    let at = match &o.at {
        Some(s) => OffsetDateTime::parse(s, &Rfc3339)
            .with_context(|| format!("--at {s:?} is not RFC 3339"))?,
        None => OffsetDateTime::now_utc(),
    };
    let suite = match o.suite.as_deref() {
        None => None,
        Some("1.15") => Some(Suite::Edelivery115),
        Some("2.0") => Some(Suite::Edelivery20),
        Some(other) => bail!("--suite must be 1.15 or 2.0, not {other:?}"),
    };
    let keys = o
        .key
        .iter()
        .map(|p| own_key(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut trust = TrustStore::new();
    let mut partners = Vec::new();
    for p in &o.trust {
        let bytes = read(p)?;
        trust
            .add_file_contents(&bytes)
            .with_context(|| format!("loading {}", p.display()))?;
        partners.extend(load_certificates(&bytes).unwrap_or_default());
    }
    for p in &o.crl {
        trust
            .add_crl(&read(p)?)
            .with_context(|| format!("loading CRL {}", p.display()))?;
    }
    let raw = read(&o.message)?;
    let cap = parse_capture(&raw, o.content_type.as_deref())
        .with_context(|| format!("reading {}", o.message.display()))?;
    let policy = InboundPolicy {
        suite,
        require_signature: true,
        require_encryption: !o.allow_unencrypted,
        allow_legacy_oaep: o.allow_legacy_oaep,
    };
    let rx = Receiver {
        crypto: &AwsLc,
        trust: &trust,
        partners: &partners,
        keys: &keys,
        at,
        policy,
    };
    let result = process_inbound(&rx, &cap.soap, cap.attachments.clone());
    let mut out = serde_json::Map::new();
    out.insert("ok".into(), json!(result.is_ok()));
    if let Err(e) = &result {
        out.insert("ebms_code".into(), json!(e.ebms_code().code()));
        out.insert(
            "short_description".into(),
            json!(e.ebms_code().short_description()),
        );
        out.insert("reason".into(), json!(e.to_string()));
    }
    out.insert(
        "checked_at".into(),
        json!(at.format(&Rfc3339).unwrap_or_default()),
    );
    out.insert("ebms".into(), ebms_json(&cap.soap));
    let mut parts_json = Vec::new();
    match inspect_message(&rx, &cap.soap, &cap.attachments) {
        Ok((report, parts, dec_err)) => {
            out.insert(
                "signature".into(),
                json!({
                    "method": report.signature_method,
                    "prefix_list": report.prefix_list,
                    "signed_info": report.signed_info.as_str(),
                    "signer": report.signer.as_ref().map(cert_json),
                }),
            );
            let refs: Vec<Value> = report
                .references
                .iter()
                .map(|r| {
                    let detail = match &r.outcome {
                        as4gw::security::RefOutcome::Wrapping(d) | as4gw::security::RefOutcome::Unsupported(d) => json!(d),
                        _ => Value::Null,
                    };
                    json!({ "uri": r.reference.uri, "target": r.target, "verdict": r.outcome.as_str(), "detail": detail })
                })
                .collect();
            out.insert("references".into(), Value::Array(refs));
            if let Some(e) = dec_err {
                out.insert("decryption_error".into(), json!(e.to_string()));
            }
            for p in &parts {
                parts_json.push(json!({
                    "content_id": p.content_id,
                    "mime_type": p.mime_type,
                    "size": p.data.len(),
                    "sha256": hex::encode(AwsLc.sha256(&p.data)),
                }));
            }
        }
        Err(e) => {
            out.insert("signature".into(), json!({ "error": e.to_string() }));
        }
    }
    if let Ok(v) = &result {
        out.insert("signer".into(), cert_json(v.signer()));
        out.insert("trust".into(), json!(format!("{:?}", v.trust_path())));
        parts_json = v
            .value()
            .payloads
            .iter()
            .map(|p| {
                json!({
                    "content_id": p.content_id,
                    "mime_type": p.mime_type,
                    "size": p.data.len(),
                    "sha256": hex::encode(AwsLc.sha256(&p.data)),
                    "decrypted": v.value().encrypted_cids.contains(&p.content_id),
                })
            })
            .collect();
        if let Some(dir) = &o.out {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for p in &v.value().payloads {
                let f = dir.join(safe_name(&p.content_id));
                std::fs::write(&f, &p.data).with_context(|| format!("writing {}", f.display()))?;
            }
        }
    }
    out.insert("parts".into(), Value::Array(parts_json));
    {
        use std::io::Write;
        // a closed pipe (`| head`) is not an error worth a panic
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&Value::Object(out))?
        );
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
