//! Interop with an independent AS4 implementation: the Python library `as4==0.2.0` (PyPI),
//! driven by `tests/interop/python/driver.py` in its own virtual environment.
//!
//! The venv lives in `<target>/venv-as4`, is created on first run (`python3 -m venv`, then
//! `pip install --no-deps -r tests/interop/python/requirements.txt` and `pip check`) and reused
//! while the requirements file's SHA-256 (stored next to it) is unchanged. When Python or pip
//! fail, the tests fail with the reason: they are never skipped. `AS4GW_INTEROP_PYTHON` names
//! the interpreter that creates the venv (default `python3`, at least 3.11).
//!
//! The library builds Peppol-shaped messages only (SBDH envelope, Peppol PartyId type,
//! originalSender/finalRecipient) with the eDelivery 1.x RSA algorithms, so every exchange here
//! runs `Suite::Edelivery115`; it accepts only a `wsse:Reference` to a BinarySecurityToken in an
//! incoming EncryptedKey and an X509v3 signer token (see `docs/interop.md`).
//!
//! Parties: as4gw is red (`certs/demo/red/rsa.*`), the Python library is blue
//! (`certs/demo/blue/rsa.*`); both chain to `certs/demo/ca.cert.pem`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use as4gw::ebms::soap::parse_envelope;
use as4gw::ebms::validate::validate_messaging;
use as4gw::ebms::{
    AgreementRef, CollaborationInfo, MessageId, MessageInfo, Messaging, PartInfo, Party, PartyId,
    PartyInfo, Property, Service, Timestamp, UserMessage,
};
use as4gw::mime::{collect, MimeLimits, MimeReader, MimeWriter, PartBody};
use as4gw::pki::{load_certificates, load_private_key, TrustStore};
use as4gw::pmode::{match_inbound, MessageKey, PMode, PModeSet, SetContext};
use as4gw::security::crypto::AwsLc;
use as4gw::security::receipt::{build_receipt, verify_receipt};
use as4gw::security::sign::{secure_outbound, SecuredMessage, SenderConfig};
use as4gw::security::{
    process_inbound, Attachment, InboundPolicy, KeyReference, OwnKey, Receiver, SecurityError,
    Suite, TokenType,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// The Python side

const REQUIREMENTS: &str = "tests/interop/python/requirements.txt";
const DRIVER: &str = "tests/interop/python/driver.py";
const STAMP: &str = "as4gw-requirements.sha256";

pub(crate) fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>` of this build: the test binary is `<target>/<profile>/deps/it-…`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir().join("target"))
}

fn run(cmd: &mut Command, what: &str) -> Result<std::process::Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

pub(crate) fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Creates (or reuses) the venv. A file lock serializes test threads and processes.
fn make_venv() -> Result<PathBuf, String> {
    let target = target_dir();
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let venv = target.join("venv-as4");
    let lock = std::fs::File::create(target.join("venv-as4.lock"))
        .map_err(|e| format!("venv lock: {e}"))?;
    lock.lock().map_err(|e| format!("venv lock: {e}"))?;
    let requirements = manifest_dir().join(REQUIREMENTS);
    let wanted = hex::encode(Sha256::digest(
        std::fs::read(&requirements).map_err(|e| format!("{}: {e}", requirements.display()))?,
    ));
    let python = venv_python(&venv);
    let stamp = venv.join(STAMP);
    let current = std::fs::read_to_string(&stamp).unwrap_or_default();
    if current.trim() == wanted
        && run(
            Command::new(&python).args(["-c", "import as4"]),
            "venv check",
        )
        .is_ok()
    {
        return Ok(venv);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(|e| format!("{}: {e}", venv.display()))?;
    }
    let base = std::env::var("AS4GW_INTEROP_PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        Command::new(&base).arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--no-input", "--quiet", "--no-deps", "-r"])
            .arg(&requirements),
        "pip install",
    )?;
    run(
        Command::new(&python).args(["-m", "pip", "check"]),
        "pip check (is every dependency pinned?)",
    )?;
    std::fs::write(&stamp, format!("{wanted}\n")).map_err(|e| format!("stamp: {e}"))?;
    Ok(venv)
}

pub(crate) fn venv() -> &'static Path {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match VENV.get_or_init(make_venv) {
        Ok(p) => p,
        Err(e) => panic!("the Python as4 venv could not be set up: {e}"),
    }
}

/// Runs one driver subcommand and returns its JSON verdict.
fn driver(args: &[&str]) -> Value {
    let out = run(
        Command::new(venv_python(venv()))
            .arg(manifest_dir().join(DRIVER))
            .args(args),
        &format!("driver.py {}", args.first().copied().unwrap_or("")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "driver output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The as4gw side

pub(crate) const GW_PARTY: &str = "as4gw-red";
pub(crate) const PY_PARTY: &str = "as4py-blue";
const PEPPOL_AP: &str = "urn:fdc:peppol.eu:2017:identifiers:ap";
pub(crate) const ISO6523: &str = "iso6523-actorid-upis";
pub(crate) const SENDER: &str = "0088:5798000000001";
pub(crate) const RECIPIENT: &str = "0088:5798000000002";
pub(crate) const DOCUMENT_TYPE: &str = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1";
const PROCESS: &str = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0";
pub(crate) const INVOICE: &str = "<Invoice xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2\" xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2\"><cbc:ID>INV-2026-0001</cbc:ID><cbc:Note>interop ü €</cbc:Note></Invoice>";

pub(crate) fn demo_path(rel: &str) -> String {
    manifest_dir()
        .join("certs/demo")
        .join(rel)
        .display()
        .to_string()
}

fn own(party: &str) -> OwnKey {
    let read = |f: String| std::fs::read(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
    let key = load_private_key(&read(demo_path(&format!("{party}/rsa.key.pem")))).expect("key");
    let mut certs =
        load_certificates(&read(demo_path(&format!("{party}/rsa.cert.pem")))).expect("cert");
    let cert = certs.remove(0);
    OwnKey {
        key,
        cert,
        chain: certs,
    }
}

fn trust() -> TrustStore {
    let mut t = TrustStore::new();
    let ca = std::fs::read(demo_path("ca.cert.pem")).expect("demo CA");
    t.add_anchor(load_certificates(&ca).expect("ca").remove(0));
    t
}

/// The P-Modes for the Python partner (`pmodes/interop/as4py-*.toml`), validated.
fn interop_pmodes() -> PModeSet {
    PModeSet::load_dir(
        &manifest_dir().join("pmodes/interop"),
        &SetContext::default(),
        OffsetDateTime::now_utc(),
    )
    .unwrap_or_else(|d| panic!("pmodes/interop: {d:?}"))
}

/// The security settings the gateway takes from a P-Mode for sending.
fn outbound_settings(p: &PMode) -> (Suite, KeyReference) {
    use as4gw::pmode::model::KeyReference as K;
    let suite = match p.security.suite {
        as4gw::pmode::Suite::Edelivery115 => Suite::Edelivery115,
        as4gw::pmode::Suite::Edelivery20 => Suite::Edelivery20,
    };
    let reference = match p.security.encryption_key_reference {
        K::Bst => KeyReference::Bst,
        K::Ski => KeyReference::Ski,
        K::IssuerSerial => KeyReference::IssuerSerial,
    };
    (suite, reference)
}

fn receiver<'a>(trust: &'a TrustStore, keys: &'a [OwnKey]) -> Receiver<'a> {
    Receiver {
        crypto: &AwsLc,
        trust,
        partners: &[],
        keys,
        at: OffsetDateTime::now_utc(),
        policy: InboundPolicy::for_suite(Suite::Edelivery115),
    }
}

/// The driver arguments naming one party's demo RSA key and certificate.
fn party_args(party_id: &'static str, colour: &str) -> Vec<String> {
    vec![
        "--party-id".into(),
        party_id.into(),
        "--cert".into(),
        demo_path(&format!("{colour}/rsa.cert.pem")),
        "--key".into(),
        demo_path(&format!("{colour}/rsa.key.pem")),
    ]
}

fn call(cmd: &str, mut args: Vec<String>, more: &[(&str, &str)]) -> Value {
    args.insert(0, cmd.into());
    for (k, v) in more {
        args.push((*k).into());
        args.push((*v).into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    driver(&refs)
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Reads an HTTP body with as4gw's MIME reader: the SOAP envelope and the payload parts.
fn read_mime(content_type: &str, body: Vec<u8>) -> (Vec<u8>, Vec<Attachment>) {
    let msg = block_on(async {
        let mut r = MimeReader::from_bytes(content_type, body, MimeLimits::default())?;
        collect(&mut r).await
    })
    .expect("as4gw reads the library's MIME package");
    let parts = msg
        .payloads
        .iter()
        .map(|p| {
            Attachment::new(
                p.headers.content_id.clone().unwrap_or_default(),
                p.headers.media_type().unwrap_or_default(),
                p.body.to_vec(),
            )
        })
        .collect();
    (msg.root.body.to_vec(), parts)
}

/// A Peppol SBD around [`INVOICE`], as the library insists on (schema-valid SBDH, scopes
/// DOCUMENTID / PROCESSID / COUNTRY_C1, participants equal to the message properties).
pub(crate) fn sbd(instance: &str) -> Vec<u8> {
    format!(
        "<StandardBusinessDocument xmlns=\"http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader\"><StandardBusinessDocumentHeader><HeaderVersion>1.0</HeaderVersion><Sender><Identifier Authority=\"{ISO6523}\">{SENDER}</Identifier></Sender><Receiver><Identifier Authority=\"{ISO6523}\">{RECIPIENT}</Identifier></Receiver><DocumentIdentification><Standard>urn:oasis:names:specification:ubl:schema:xsd:Invoice-2</Standard><TypeVersion>2.1</TypeVersion><InstanceIdentifier>{instance}</InstanceIdentifier><Type>Invoice</Type><CreationDateAndTime>2026-11-27T08:00:00Z</CreationDateAndTime></DocumentIdentification><BusinessScope><Scope><Type>DOCUMENTID</Type><InstanceIdentifier>{DOCUMENT_TYPE}</InstanceIdentifier><Identifier>busdox-docid-qns</Identifier></Scope><Scope><Type>PROCESSID</Type><InstanceIdentifier>{PROCESS}</InstanceIdentifier><Identifier>cenbii-procid-ubl</Identifier></Scope><Scope><Type>COUNTRY_C1</Type><InstanceIdentifier>BE</InstanceIdentifier></Scope></BusinessScope></StandardBusinessDocumentHeader>{INVOICE}</StandardBusinessDocument>"
    )
    .into_bytes()
}

fn peppol_party(id: &str, role: &str) -> Party {
    Party {
        party_ids: vec![PartyId {
            value: id.into(),
            type_: Some(PEPPOL_AP.into()),
        }],
        role: format!("http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/{role}"),
    }
}

fn typed(name: &str, type_: Option<&str>, value: &str) -> Property {
    Property {
        name: name.into(),
        type_: type_.map(Into::into),
        value: value.into(),
    }
}

/// A Peppol-shaped eb:Messaging built with `as4gw::ebms` (what the library's parser requires).
fn peppol_messaging(message_id: &MessageId, cid: &str) -> String {
    Messaging {
        id: Some("_messaging-interop".into()),
        user_message: Some(UserMessage {
            mpc: None,
            message_info: MessageInfo {
                timestamp: Timestamp::from_datetime(OffsetDateTime::now_utc()),
                message_id: message_id.clone(),
                ref_to_message_id: None,
            },
            party_info: PartyInfo {
                from: peppol_party(GW_PARTY, "initiator"),
                to: peppol_party(PY_PARTY, "responder"),
            },
            collaboration_info: CollaborationInfo {
                agreement_ref: Some(AgreementRef {
                    value: "urn:fdc:peppol.eu:2017:agreements:tia:ap_provider".into(),
                    type_: None,
                    pmode: None,
                }),
                service: Service {
                    value: PROCESS.into(),
                    type_: Some("cenbii-procid-ubl".into()),
                },
                action: format!("busdox-docid-qns::{DOCUMENT_TYPE}"),
                conversation_id: "interop-conversation-1".into(),
            },
            message_properties: vec![
                typed("originalSender", Some(ISO6523), SENDER),
                typed("finalRecipient", Some(ISO6523), RECIPIENT),
            ],
            payload_info: vec![PartInfo {
                href: Some(format!("cid:{cid}")),
                schemas: vec![],
                description: None,
                part_properties: vec![
                    typed("MimeType", None, "application/xml"),
                    typed("CompressionType", None, "application/gzip"),
                ],
            }],
        }),
        signal_messages: vec![],
    }
    .to_xml()
}

/// as4gw (red) secures a Peppol message to the library (blue) and packages it as SwA.
/// Returns (message id, the SBD sent, what was signed, Content-Type, body).
fn as4gw_message(
    suite: Suite,
    reference: KeyReference,
    token: TokenType,
) -> (MessageId, Vec<u8>, SecuredMessage, String, Vec<u8>) {
    let red = own("red");
    let blue = own("blue");
    let message_id = MessageId::generate("as4gw.test").expect("message id");
    let cid = "payload-1@as4gw.test";
    let sbd = sbd("as4gw-instance-1");
    let cfg = SenderConfig {
        suite,
        signer: &red,
        token_type: token,
        recipient: Some(&blue.cert),
        recipient_reference: reference,
    };
    let sent = secure_outbound(
        &AwsLc,
        &peppol_messaging(&message_id, cid),
        vec![Attachment::new(cid, "application/gzip", gzip(&sbd))],
        &cfg,
    )
    .expect("secure_outbound");
    let mut w = MimeWriter::new("soap-part@as4gw.test", sent.soap.clone()).expect("writer");
    for a in &sent.attachments {
        w.add_part(
            &a.content_id,
            &a.mime_type,
            PartBody::Bytes(a.data.clone().into()),
        )
        .expect("part");
    }
    let content_type = w.content_type();
    let mut body = Vec::new();
    block_on(w.write_to(&mut body)).expect("MIME body");
    (message_id, sbd, sent, content_type, body)
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p.display().to_string()
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Python (C2) → as4gw (C3): the library's signed + gzip + encrypted message is read by
/// as4gw's MIME reader, decrypted and verified; the payload is what the library compressed; the
/// library verifies as4gw's signed NRR receipt, NRR digests included.
#[test]
fn python_sends_as4gw_receives_and_python_verifies_the_receipt() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let d_s = d.display().to_string();
    let invoice = write(d, "invoice.xml", INVOICE.as_bytes());
    let sent = call(
        "send",
        party_args(PY_PARTY, "blue"),
        &[
            ("--to-party-id", GW_PARTY),
            ("--to-cert", &demo_path("red/rsa.cert.pem")),
            ("--sender", SENDER),
            ("--recipient", RECIPIENT),
            ("--instance-id", "as4py-instance-1"),
            ("--payload", &invoice),
            ("--out", &d_s),
        ],
    );
    assert_eq!(sent["ok"], true, "{sent}");
    let content_type = sent["content_type"].as_str().expect("content type");
    let body = std::fs::read(d.join("request.body")).expect("request body");

    // as4gw: MIME, then security.
    let (soap, parts) = read_mime(content_type, body);
    assert_eq!(parts.len(), 1, "one payload part");
    assert_eq!(parts[0].mime_type, "application/octet-stream");
    let trust = trust();
    let keys = [own("red")];
    let rx = receiver(&trust, &keys);
    let v = process_inbound(&rx, &soap, parts).expect("as4gw decrypts and verifies the message");
    let msg = v.value();
    assert_eq!(
        msg.message_id().as_deref(),
        sent["message_id"].as_str(),
        "MessageId"
    );
    assert_eq!(msg.encrypted_cids.len(), 1, "the part arrived encrypted");
    assert_eq!(v.signer(), &own("blue").cert, "signed by the library's key");
    assert_eq!(v.references().len(), 3, "Messaging, Body, the part");
    assert_eq!(msg.payloads.len(), 1);
    assert_eq!(msg.payloads[0].mime_type, "application/gzip");
    let sbd_sent = std::fs::read(d.join("sent.sbd.xml")).expect("sent SBD");
    assert_eq!(
        gunzip(&msg.payloads[0].data),
        sbd_sent,
        "payload after gunzip = the bytes the library compressed"
    );
    // The library re-serializes the business document inside its SBD (lxml, ASCII output):
    // same XML, but non-ASCII characters become character references.
    let sbd_text = String::from_utf8_lossy(&sbd_sent);
    assert!(
        sbd_text
            .contains("<cbc:ID>INV-2026-0001</cbc:ID><cbc:Note>interop &#252; &#8364;</cbc:Note>"),
        "the SBD carries our invoice: {sbd_text}"
    );

    // The ebMS header: Peppol-shaped, and valid by as4gw's eDelivery rules.
    let env = parse_envelope(&soap).expect("SOAP");
    let messaging = &env.messaging.as_ref().expect("eb:Messaging").messaging;
    let issues = validate_messaging(messaging);
    assert!(issues.is_empty(), "eDelivery header issues: {issues:?}");
    let um = messaging.user_message.as_ref().expect("UserMessage");
    assert_eq!(um.party_info.from.party_ids[0].value, PY_PARTY);
    assert_eq!(
        um.party_info.from.party_ids[0].type_.as_deref(),
        Some(PEPPOL_AP)
    );
    assert_eq!(
        um.property("finalRecipient").map(|p| p.value.as_str()),
        Some(RECIPIENT)
    );
    assert_eq!(
        um.payload_info[0].property("MimeType"),
        Some("application/xml")
    );
    let key = MessageKey::from_envelope(&soap).expect("P-Mode selection key");
    let matched = match_inbound(&interop_pmodes(), &key).expect("as4gw finds the partner's P-Mode");
    assert_eq!(matched.pmode.id, "as4py-blue-red");
    assert_eq!(matched.leg().name, "invoice");

    // as4gw's receipt, checked by the library.
    let red = own("red");
    let cfg = SenderConfig {
        suite: Suite::Edelivery115,
        signer: &red,
        token_type: TokenType::X509v3,
        recipient: None,
        recipient_reference: KeyReference::Bst,
    };
    let receipt_id = MessageId::generate("as4gw.test").expect("id");
    let receipt = build_receipt(
        &AwsLc,
        &v,
        receipt_id.as_str(),
        OffsetDateTime::now_utc(),
        &cfg,
    )
    .expect("receipt");
    let receipt_file = write(d, "receipt.xml", &receipt.soap);
    let exchange = d.join("exchange.json").display().to_string();
    let checked = call(
        "check-receipt",
        party_args(PY_PARTY, "blue"),
        &[("--exchange", &exchange), ("--receipt", &receipt_file)],
    );
    assert_eq!(
        checked["ok"], true,
        "library rejects the receipt: {checked}"
    );
    assert_eq!(checked["state"], "acknowledged");
    assert_eq!(checked["ref_to_message_id"], sent["message_id"]);
    let acked: Vec<&str> = checked["acknowledged"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let signed: Vec<&str> = v.references().iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(acked, signed, "every signed reference acknowledged");

    // The library does check: one flipped NRR digest in as4gw's receipt is refused.
    let text = String::from_utf8(receipt.soap.clone()).expect("utf8");
    let dv = v.references()[2].digest_value.clone();
    let mut flipped = dv.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let forged = text.replacen(&dv, &String::from_utf8(flipped).expect("ascii"), 1);
    assert_ne!(forged, text);
    let forged_file = write(d, "forged-receipt.xml", forged.as_bytes());
    let refused = call(
        "check-receipt",
        party_args(PY_PARTY, "blue"),
        &[("--exchange", &exchange), ("--receipt", &forged_file)],
    );
    assert_eq!(refused["ok"], false, "forged receipt accepted: {refused}");
}

/// as4gw (C2) → Python (C3): a Peppol-shaped message built with `as4gw::ebms`, secured with
/// `secure_outbound` (BST reference for the recipient) and packaged with `MimeWriter`, is
/// accepted by the library; as4gw verifies the library's receipt, NRR digests included.
#[test]
fn as4gw_sends_python_receives_and_as4gw_verifies_the_receipt() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let d_s = d.display().to_string();
    // Suite and recipient reference come from the partner's P-Mode, as in the gateway.
    let set = interop_pmodes();
    let pmode = set.get("as4py-red-blue").expect("P-Mode as4py-red-blue");
    let (suite, reference) = outbound_settings(pmode);
    assert_eq!((suite, reference), (Suite::Edelivery115, KeyReference::Bst));
    let (message_id, sbd, sent, content_type, body) =
        as4gw_message(suite, reference, TokenType::X509v3);
    let body_file = write(d, "request.body", &body);
    let got = call(
        "receive",
        party_args(PY_PARTY, "blue"),
        &[
            ("--ca", &demo_path("ca.cert.pem")),
            ("--content-type", &content_type),
            ("--body", &body_file),
            ("--out", &d_s),
        ],
    );
    assert_eq!(
        got["ok"], true,
        "the library refuses as4gw's message: {got}"
    );
    assert_eq!(got["message_id"], message_id.as_str());
    assert_eq!(got["from_party"], GW_PARTY);
    assert_eq!(got["sender"], SENDER);
    assert_eq!(got["recipient"], RECIPIENT);
    let received = std::fs::read(d.join("received.sbd.xml")).expect("payload");
    assert_eq!(
        received, sbd,
        "payload (decrypted, gunzipped) = what as4gw sent"
    );

    let signal = std::fs::read(d.join("signal.xml")).expect("signal");
    let trust = trust();
    let rx = receiver(&trust, &[]);
    let info = verify_receipt(&rx, &signal, message_id.as_str(), &sent.references)
        .expect("as4gw verifies the library's receipt");
    assert_eq!(info.signer(), &own("blue").cert);
    assert_eq!(info.value().ref_to_message_id, message_id.as_str());
    let uris: Vec<&str> = info
        .value()
        .references
        .iter()
        .map(|(u, _, _)| u.as_str())
        .collect();
    let sent_uris: Vec<&str> = sent.references.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, sent_uris, "NRR lists what as4gw signed");

    // as4gw does check: the same receipt against different sent digests is EBMS:0302.
    let mut other = sent.references.clone();
    other[2].digest_value = other[1].digest_value.clone();
    let err = verify_receipt(&rx, &signal, message_id.as_str(), &other)
        .expect_err("receipt for other digests accepted");
    assert!(matches!(err, SecurityError::InvalidReceipt(_)), "{err}");
}

/// The library's limits, pinned so that a change (an upgrade that lifts one) shows up here:
/// it refuses an EncryptedKey that names the recipient by SKI or IssuerSerial (as4gw's
/// `KeyReference::Ski` is the 2.0 default), and a PKIPath signer token. Each is answered with a
/// signed ebMS error signal, which as4gw reads.
#[test]
fn python_refuses_non_bst_key_references_and_pkipath_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let d_s = d.display().to_string();
    let trust = trust();
    for (reference, token, code) in [
        (KeyReference::Ski, TokenType::X509v3, "EBMS:0003"),
        (KeyReference::IssuerSerial, TokenType::X509v3, "EBMS:0003"),
        (KeyReference::Bst, TokenType::PkiPath, "EBMS:0103"),
    ] {
        let (message_id, _sbd, _sent, content_type, body) =
            as4gw_message(Suite::Edelivery115, reference, token);
        let body_file = write(d, "request.body", &body);
        let got = call(
            "receive",
            party_args(PY_PARTY, "blue"),
            &[
                ("--ca", &demo_path("ca.cert.pem")),
                ("--content-type", &content_type),
                ("--body", &body_file),
                ("--out", &d_s),
            ],
        );
        assert_eq!(got["ok"], false, "{reference:?} {token:?}: {got}");
        assert_eq!(got["error"]["code"], code, "{reference:?} {token:?}: {got}");
        let signal = std::fs::read(d.join("signal.xml")).expect("signal");
        let signals = InboundPolicy {
            require_encryption: false,
            ..InboundPolicy::for_suite(Suite::Edelivery115)
        };
        let v = process_inbound(
            &Receiver {
                policy: signals,
                ..receiver(&trust, &[])
            },
            &signal,
            Vec::new(),
        )
        .unwrap_or_else(|e| panic!("as4gw verifies the library's error signal: {e}"));
        assert_eq!(v.signer(), &own("blue").cert);
        let env = parse_envelope(&signal).expect("the error signal is SOAP");
        let m = &env.messaging.as_ref().expect("eb:Messaging").messaging;
        assert_eq!(m.signal_messages.len(), 1);
        assert_eq!(
            m.signal_messages[0]
                .message_info
                .ref_to_message_id
                .as_ref()
                .map(MessageId::as_str),
            Some(message_id.as_str())
        );
    }
}
