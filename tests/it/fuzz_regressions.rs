//! Inputs the fuzz targets (`fuzz/fuzz_targets/*.rs`, `docs/fuzzing.md`) once crashed on, kept
//! as regression tests so they run in the normal `cargo test`.
//!
//! Each input lives in `tests/fixtures/own/fuzz/<target>/<name>` and is fed to the same checks
//! as the fuzz target of that name (the input layouts are described in each target's doc):
//! nothing may panic, and the properties the target asserts (chunking-independence of the MIME
//! reader, idempotent Exclusive C14N, ebMS round trip) must hold. Files named `smoke-*` are not
//! findings: one seed per target, so these checks always run on something.

use std::path::{Path, PathBuf};

use as4gw::ebms::{soap, validate, Messaging};
use as4gw::mime::{collect, split_headers, CollectedMessage, MimeError, MimeLimits, MimeReader};
use as4gw::pki::{load_certificates, load_private_key, Certificate, TrustStore};
use as4gw::security::capture::parse_capture;
use as4gw::security::crypto::AwsLc;
use as4gw::security::decrypt::decrypt_all_keys;
use as4gw::security::verify::{inspect_message, inspect_signature};
use as4gw::security::{process_inbound, InboundPolicy, OwnKey, Receiver};
use as4gw::xml::{
    canonical_bytes, canonicalize_document, C14nAlgorithm, C14nOptions, Document, Limits,
};
use bytes::Bytes;
use time::macros::datetime;

use crate::support::{fixture, read_fixture};

/// The saved inputs of one target, sorted (empty when none were kept).
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = fixture("own/fuzz").join(target);
    let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.map(|e| e.expect("dir entry").path()).collect(),
        Err(_) => Vec::new(),
    };
    v.retain(|p| p.is_file());
    v.sort();
    v
}

fn each(target: &str, check: impl Fn(&[u8])) -> usize {
    let files = inputs(target);
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        eprintln!("fuzz regression {target}: {}", name(f));
        check(&data);
    }
    files.len()
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

// ---- mime_reader ----------------------------------------------------------------------------

fn mime_run(
    ct: &str,
    body: &[u8],
    chunk: Option<usize>,
    limits: MimeLimits,
) -> Result<CollectedMessage, MimeError> {
    let body = Bytes::copy_from_slice(body);
    let mut reader = match chunk {
        None => MimeReader::from_bytes(ct, body, limits)?,
        Some(n) => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(n)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            MimeReader::new(ct, futures_util::stream::iter(chunks), limits)?
        }
    };
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(collect(&mut reader))
}

fn mime_check(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (ct, body): (String, &[u8]) = if sel & 1 == 0 {
        match split_headers(rest) {
            Ok((ct, body)) => (ct, body),
            Err(_) => return,
        }
    } else {
        let nl = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let ct = String::from_utf8_lossy(&rest[..nl]).into_owned();
        (ct, rest.get(nl + 1..).unwrap_or(&[]))
    };
    let lim = if sel & 0x80 != 0 {
        MimeLimits {
            max_parts: 4,
            max_header_bytes: 128,
            max_root_bytes: 512,
            max_part_bytes: 512,
            max_total_bytes: 2048,
        }
    } else {
        MimeLimits::default()
    };
    let whole = mime_run(&ct, body, None, lim);
    let chunk = 1 + usize::from((sel >> 1) & 0x3f);
    let split = mime_run(&ct, body, Some(chunk), lim);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "chunking ({chunk}) changed the parts"),
        (Err(_), Err(_)) => {}
        _ => panic!("chunking ({chunk}) changed the outcome: whole {whole:?}, split {split:?}"),
    }
}

#[test]
fn mime_reader_inputs() {
    assert!(
        each("mime_reader", mime_check) > 0,
        "no inputs for mime_reader"
    );
}

// ---- xml_c14n -------------------------------------------------------------------------------

fn xml_check(data: &[u8]) {
    let (list, xml) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) if nl < 256 => (
            String::from_utf8_lossy(&data[..nl]).into_owned(),
            &data[nl + 1..],
        ),
        _ => (String::new(), data),
    };
    let limits = Limits {
        max_bytes: 1 << 20,
        max_depth: 64,
        max_attributes: 64,
        max_nodes: 20_000,
    };
    let Ok(doc) = Document::parse_with(xml, &limits) else {
        return;
    };
    let mut variants = Vec::new();
    for with_comments in [false, true] {
        let mut o = C14nOptions::with_prefix_list(&list);
        o.with_comments = with_comments;
        variants.push(o);
        variants.push(C14nOptions {
            with_comments,
            inclusive_prefixes: Vec::new(),
            algorithm: C14nAlgorithm::Inclusive,
        });
    }
    let ids: Vec<_> = doc.elements().map(|n| n.id()).take(256).collect();
    for opts in &variants {
        for &id in &ids {
            let _ = canonical_bytes(&doc, id, opts);
        }
        let mut out = Vec::new();
        canonicalize_document(&doc, opts, &mut out);
    }
    for opts in variants
        .iter()
        .filter(|o| o.algorithm == C14nAlgorithm::Exclusive)
    {
        let first = canonical_bytes(&doc, doc.root().id(), opts);
        let again = Document::parse(&first).unwrap_or_else(|e| {
            panic!(
                "canonical form does not parse: {e}\n{}",
                String::from_utf8_lossy(&first)
            )
        });
        let second = canonical_bytes(&again, again.root().id(), opts);
        assert_eq!(
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&second),
            "exclusive C14N is not idempotent"
        );
    }
}

#[test]
fn xml_c14n_inputs() {
    assert!(each("xml_c14n", xml_check) > 0, "no inputs for xml_c14n");
}

// ---- ebms_envelope --------------------------------------------------------------------------

fn ebms_round_trip(m: &Messaging) {
    let _ = validate::validate_messaging(m);
    let xml = m.to_xml();
    let again = Messaging::parse(xml.as_bytes())
        .unwrap_or_else(|e| panic!("written header does not re-parse: {e}\n{xml}"));
    assert_eq!(&again, m, "round trip changed the model\n{xml}");
    let env = soap::build_envelope(m, "_body", None);
    let parsed = soap::parse_envelope(&env).unwrap_or_else(|e| {
        panic!(
            "built envelope does not re-parse: {e}\n{}",
            String::from_utf8_lossy(&env)
        )
    });
    let mb = parsed.messaging.expect("built envelope has eb:Messaging");
    assert_eq!(&mb.messaging, m, "envelope round trip changed the model");
}

fn ebms_check(data: &[u8]) {
    if let Ok(env) = soap::parse_envelope(data) {
        if let Some(mb) = &env.messaging {
            ebms_round_trip(&mb.messaging);
        }
    }
    if let Ok(m) = Messaging::parse(data) {
        ebms_round_trip(&m);
    }
    let _ = as4gw::pmode::MessageKey::from_envelope(data);
}

#[test]
fn ebms_envelope_inputs() {
    assert!(
        each("ebms_envelope", ebms_check) > 0,
        "no inputs for ebms_envelope"
    );
}

// ---- security_inbound -----------------------------------------------------------------------

fn cert(rel: &str) -> Certificate {
    load_certificates(&read_fixture(rel)).expect(rel).remove(0)
}

fn security_check(data: &[u8]) {
    let dom = "interop/domibus/keystores/default/gateway_keystore";
    let partners = vec![
        cert(&format!("{dom}/blue_gw.cert.pem")),
        cert(&format!("{dom}/red_gw.cert.pem")),
    ];
    let mut trust = TrustStore::new();
    for c in &partners {
        trust.add_pinned(c.clone());
    }
    let keys: Vec<OwnKey> = ["blue_gw", "red_gw"]
        .iter()
        .map(|n| OwnKey {
            key: load_private_key(&read_fixture(&format!("{dom}/{n}.key.pem"))).expect("key"),
            cert: cert(&format!("{dom}/{n}.cert.pem")),
            chain: Vec::new(),
        })
        .collect();
    let Ok(cap) = parse_capture(data, None) else {
        return;
    };
    let rx = Receiver {
        crypto: &AwsLc,
        trust: &trust,
        partners: &partners,
        keys: &keys,
        at: datetime!(2024-06-01 12:00 UTC),
        policy: InboundPolicy::default(),
    };
    let _ = process_inbound(&rx, &cap.soap, cap.attachments.clone());
    let _ = inspect_message(&rx, &cap.soap, &cap.attachments);
    let _ = inspect_signature(&AwsLc, &cap.soap, &cap.attachments, &trust, &partners);
    if let Ok(doc) = Document::parse(&cap.soap) {
        let _ = decrypt_all_keys(&AwsLc, &doc, &keys);
    }
}

#[test]
fn security_inbound_inputs() {
    assert!(
        each("security_inbound", security_check) > 0,
        "no inputs for security_inbound"
    );
}

// ---- pmode_toml -----------------------------------------------------------------------------

#[test]
fn pmode_toml_inputs() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("pmodes")).expect("pmodes dir");
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("certs"),
        dir.path().join("certs"),
    )
    .expect("symlink certs");
    let path = dir.path().join("pmodes/fuzz.toml");
    let n = each("pmode_toml", |data| {
        std::fs::write(&path, data).expect("write");
        if let Err(d) = as4gw::pmode::set::load_file(&path, datetime!(2027-06-01 12:00 UTC)) {
            assert!(!d.is_empty(), "an error without a diagnostic");
        }
    });
    assert!(n > 0, "no inputs for pmode_toml");
}
