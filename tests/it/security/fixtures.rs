//! Every signed / encrypted interop fixture gets the verdict `expectations.json` records.

use as4gw::pki::{load_certificates, load_private_key, Certificate, TrustStore};
use as4gw::security::capture::parse_capture;
use as4gw::security::crypto::AwsLc;
use as4gw::security::decrypt::decrypt_all_keys;
use as4gw::security::verify::{inspect_signature, RefOutcome};
use as4gw::security::{process_inbound, InboundPolicy, OwnKey, Receiver};
use as4gw::xml::Document;
use serde_json::Value;
use time::macros::datetime;

use crate::support::read_fixture;

/// Certificates a receiver would know as partners (for SKI / IssuerSerial references).
fn partner_certs() -> Vec<Certificate> {
    [
        "interop/domibus/keystores/default/gateway_keystore/blue_gw.cert.pem",
        "interop/domibus/keystores/default/gateway_keystore/red_gw.cert.pem",
        "interop/domibus/keystores/expired-2017/expired_gateway_keystore/red_gw.cert.pem",
        "interop/domibus/keystores/expired-2017/expired_gateway_keystore/blue_gw.cert.pem",
        "interop/phase4/keys/dummy-pw-test/ph-as4.cert.pem",
    ]
    .iter()
    .flat_map(|p| load_certificates(&read_fixture(p)).expect(p))
    .collect()
}

fn expectations() -> serde_json::Map<String, Value> {
    let v: Value =
        serde_json::from_slice(&read_fixture("interop/expectations.json")).expect("json");
    v.as_object().expect("object").clone()
}

fn outcome_word(o: &RefOutcome) -> String {
    match o {
        RefOutcome::Unsupported(s) if s.starts_with("digest") => "unsupported digest".into(),
        RefOutcome::NotDecrypted => "no match over transmitted bytes".into(),
        other => other.as_str().into(),
    }
}

#[test]
fn every_signed_fixture_gets_the_recorded_verdict() {
    let partners = partner_certs();
    let empty = TrustStore::new();
    let mut checked = 0;
    let mut refs_checked = 0;
    for (rel, entry) in expectations() {
        let Some(sigs) = entry
            .pointer("/security/as_published/signatures")
            .and_then(Value::as_array)
        else {
            continue;
        };
        if sigs.is_empty() {
            continue;
        }
        assert_eq!(sigs.len(), 1, "{rel}: one signature per message expected");
        let exp = &sigs[0];
        let cap = parse_capture(&read_fixture(&rel), None).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let report = inspect_signature(&AwsLc, &cap.soap, &cap.attachments, &empty, &partners)
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(
            report.signed_info.as_str(),
            exp["signedinfo_signature"].as_str().expect("verdict"),
            "{rel}: SignedInfo verdict ({:?})",
            report.signed_info
        );
        assert_eq!(
            report.signature_method,
            exp["signature_method"].as_str().expect("method"),
            "{rel}"
        );
        let want_pl: Vec<String> = exp["prefix_list"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(report.prefix_list, want_pl, "{rel}: PrefixList");
        if let (Some(signer), Some(fp)) = (&report.signer, exp["signer_sha256"].as_str()) {
            assert_eq!(signer.sha256_hex(), fp, "{rel}: signer fingerprint");
        }
        let want_refs = exp["references"].as_array().expect("refs");
        assert_eq!(
            report.references.len(),
            want_refs.len(),
            "{rel}: reference count"
        );
        for (got, want) in report.references.iter().zip(want_refs) {
            assert_eq!(
                got.reference.uri,
                want["uri"].as_str().expect("uri"),
                "{rel}"
            );
            assert_eq!(
                outcome_word(&got.outcome),
                want["result"].as_str().expect("result"),
                "{rel}: reference {} ({:?})",
                got.reference.uri,
                got.outcome
            );
            if let (Some(t), RefOutcome::Match | RefOutcome::Mismatch) =
                (want["target"].as_str(), &got.outcome)
            {
                assert_eq!(
                    got.target,
                    Some(t),
                    "{rel}: target of {}",
                    got.reference.uri
                );
            }
            refs_checked += 1;
        }
        checked += 1;
    }
    assert_eq!(checked, 26, "signed fixtures in expectations.json");
    assert_eq!(refs_checked, 58, "references in expectations.json");
}

#[test]
fn every_published_encrypted_key_decrypts_to_the_recorded_bytes() {
    let mut checked = 0;
    for (rel, entry) in expectations() {
        let Some(eks) = entry
            .pointer("/security/as_published/encrypted_keys")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for ek in eks {
            let Some(key_file) = ek["decrypted_with"].as_str() else {
                continue;
            };
            let cert_file = key_file.replace(".key.pem", ".cert.pem");
            let keys = vec![OwnKey {
                key: load_private_key(&read_fixture(key_file)).expect("key"),
                cert: load_certificates(&read_fixture(&cert_file))
                    .expect("cert")
                    .remove(0),
                chain: vec![],
            }];
            let cap = parse_capture(&read_fixture(&rel), None).expect("capture");
            let doc = Document::parse(&cap.soap).expect("xml");
            let got = decrypt_all_keys(&AwsLc, &doc, &keys).expect("keys");
            let id = ek["id"].as_str().expect("id");
            let (_, cek) = got
                .iter()
                .find(|(i, _)| i == id)
                .unwrap_or_else(|| panic!("{rel}: no EK {id}"));
            let cek = cek.as_ref().unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(
                hex::encode(cek.as_slice()),
                ek["content_key_hex"].as_str().expect("hex"),
                "{rel}"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 3,
        "MSHAS4Request, SoapRequest (mgf1p), SoapRequestBinaryToken"
    );
}

#[test]
fn wrong_key_cannot_decrypt_published_encrypted_key() {
    let keys = vec![OwnKey {
        key: load_private_key(&read_fixture(
            "interop/domibus/keystores/default/gateway_keystore/red_gw.key.pem",
        ))
        .expect("key"),
        cert: load_certificates(&read_fixture(
            "interop/domibus/keystores/default/gateway_keystore/blue_gw.cert.pem",
        ))
        .expect("cert")
        .remove(0),
        chain: vec![],
    }];
    // MSHAS4Request's EncryptedKey names blue_gw by SKI; the red key under blue's certificate must fail.
    let doc =
        Document::parse(&read_fixture("interop/domibus/messages/MSHAS4Request.xml")).expect("xml");
    let got = decrypt_all_keys(&AwsLc, &doc, &keys).expect("keys");
    let err = got[0].1.as_ref().expect_err("must fail");
    assert_eq!(err.ebms_code().code(), "EBMS:0102");
}

fn peppol_trust() -> TrustStore {
    let mut t = TrustStore::new();
    for f in ["peppol_test_g2_root_ca", "peppol_test_g3_root_ca"] {
        let c = load_certificates(&read_fixture(&format!(
            "interop/oxalis-ng/peppol_trust_g3/{f}.cert.pem"
        )))
        .expect(f);
        t.add_anchor(c.into_iter().next().expect("cert"));
    }
    for f in ["peppol_test_g2_ap_ca", "peppol_test_g3_ap_ca"] {
        let c = load_certificates(&read_fixture(&format!(
            "interop/oxalis-ng/peppol_trust_g3/{f}.cert.pem"
        )))
        .expect(f);
        t.add_intermediate(c.into_iter().next().expect("cert"));
    }
    t
}

fn receipt_policy() -> InboundPolicy {
    InboundPolicy {
        require_encryption: false,
        ..InboundPolicy::default()
    }
}

#[test]
fn real_peppol_receipts_verify_and_chain_to_the_test_cas() {
    let trust = peppol_trust();
    for (file, at) in [
        (
            "interop/phase4/peppol-receipts/helger.as4in",
            datetime!(2022-03-07 17:36:50 UTC),
        ),
        (
            "interop/phase4/peppol-receipts/governikus.as4in",
            datetime!(2022-03-07 17:41:28 UTC),
        ),
        (
            "interop/phase4/peppol-receipts/dataport1-mustunderstand.as4in",
            datetime!(2022-03-07 16:36:50 UTC),
        ),
        (
            "interop/phase4/testfiles/TestReceipt12.xml",
            datetime!(2025-12-05 12:00 UTC),
        ),
    ] {
        let cap = parse_capture(&read_fixture(file), None).expect(file);
        let rx = Receiver {
            crypto: &AwsLc,
            trust: &trust,
            partners: &[],
            keys: &[],
            at,
            policy: receipt_policy(),
        };
        let v = process_inbound(&rx, &cap.soap, cap.attachments)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(v.references().len(), 2, "{file}");
        assert!(
            matches!(v.trust_path(), as4gw::pki::TrustPath::Chain { .. }),
            "{file}"
        );
        // the signer certificates have expired since
        let rx = Receiver {
            at: datetime!(2030-01-01 0:00 UTC),
            ..rx
        };
        let cap = parse_capture(&read_fixture(file), None).expect(file);
        let err = process_inbound(&rx, &cap.soap, cap.attachments).expect_err("expired");
        assert_eq!(err.ebms_code().code(), "EBMS:0101", "{file}: {err}");
        assert!(err.to_string().contains("expired"), "{err}");
    }
}

#[test]
fn dataport1_fails_on_the_messaging_digest() {
    let trust = peppol_trust();
    let cap = parse_capture(
        &read_fixture("interop/phase4/peppol-receipts/dataport1.as4in"),
        None,
    )
    .expect("capture");
    let rx = Receiver {
        crypto: &AwsLc,
        trust: &trust,
        partners: &[],
        keys: &[],
        at: datetime!(2022-03-07 16:36:50 UTC),
        policy: receipt_policy(),
    };
    let err = process_inbound(&rx, &cap.soap, cap.attachments).expect_err("must fail");
    assert_eq!(err.ebms_code().code(), "EBMS:0101");
    match err {
        as4gw::security::SecurityError::DigestMismatch { uri } => {
            assert!(uri.starts_with("#id-4b28412d2948bca"))
        }
        other => panic!("expected the Messaging digest mismatch, got {other}"),
    }
}

#[test]
fn reindented_domibus_samples_fail_as_published() {
    let mut trust = TrustStore::new();
    for c in partner_certs() {
        trust.add_pinned(c);
    }
    for f in [
        "MSHAS4Response.xml",
        "MSHAS4Response-signOnly.xml",
        "MSHAS4Request-signOnly.xml",
        "SoapRequestBinaryToken.xml",
    ] {
        let rel = format!("interop/domibus/messages/{f}");
        let rx = Receiver {
            crypto: &AwsLc,
            trust: &trust,
            partners: &[],
            keys: &[],
            at: datetime!(2024-01-01 0:00 UTC),
            policy: receipt_policy(),
        };
        let err = process_inbound(&rx, &read_fixture(&rel), vec![]).expect_err(&rel);
        assert_eq!(err.ebms_code().code(), "EBMS:0101", "{rel}: {err}");
        assert_eq!(err, as4gw::security::SecurityError::BadSignature, "{rel}");
    }
}

#[test]
fn soap_request_signature_is_valid_but_the_message_is_incomplete() {
    // SignedInfo verifies as published (blue_gw by SKI); the cid:message part is not in the file
    // and the Body is not signed, so strict processing refuses it.
    let mut trust = TrustStore::new();
    for c in partner_certs() {
        trust.add_pinned(c);
    }
    let rx = Receiver {
        crypto: &AwsLc,
        trust: &trust,
        partners: &[],
        keys: &[],
        at: datetime!(2024-01-01 0:00 UTC),
        policy: InboundPolicy {
            allow_legacy_oaep: true,
            ..receipt_policy()
        },
    };
    let err = process_inbound(
        &rx,
        &read_fixture("interop/domibus/messages/SoapRequest.xml"),
        vec![],
    )
    .expect_err("incomplete");
    assert_eq!(err.ebms_code().code(), "EBMS:0101", "{err}");
    assert!(err.to_string().contains("cid:message"), "{err}");
}
