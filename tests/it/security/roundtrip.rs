//! Sign + encrypt → decrypt + verify, both suites, every reference form; receipts.

use as4gw::security::crypto::AwsLc;
use as4gw::security::receipt::{build_receipt, receipt_references, verify_receipt};
use as4gw::security::sign::SenderConfig;
use as4gw::security::{InboundPolicy, KeyReference, Receiver, Suite, TokenType};
use as4gw::xml::Document;
use time::macros::datetime;

use super::msg::*;
use super::testpki::{world, AT};

const SUITES: [Suite; 2] = [Suite::Edelivery115, Suite::Edelivery20];

#[test]
fn round_trip_both_suites_all_reference_forms() {
    for suite in SUITES {
        for reference in [
            KeyReference::Ski,
            KeyReference::IssuerSerial,
            KeyReference::Bst,
        ] {
            for token in [TokenType::X509v3, TokenType::PkiPath] {
                let sent = send(suite, reference, token);
                assert_eq!(sent.references.len(), 4, "Messaging, Body, 2 parts");
                for (a, p) in sent.attachments.iter().zip(payloads()) {
                    assert_eq!(a.mime_type, "application/octet-stream");
                    assert_ne!(a.data, p.data, "parts travel encrypted");
                }
                let v = receive(InboundPolicy::for_suite(suite), &sent)
                    .unwrap_or_else(|e| panic!("{suite:?} {reference:?} {token:?}: {e}"));
                let got = &v.value().payloads;
                assert_eq!(
                    got,
                    &payloads(),
                    "{suite:?}: decrypted parts, original media types"
                );
                assert_eq!(v.references(), sent.references.as_slice());
                assert_eq!(v.value().message_id().as_deref(), Some(MESSAGE_ID));
                assert_eq!(v.signer(), &signer_for(suite, &world().blue).cert);
            }
        }
    }
}

#[test]
fn signed_envelope_has_the_profile_shape() {
    let sent = send(Suite::Edelivery20, KeyReference::Ski, TokenType::X509v3);
    let s = String::from_utf8(sent.soap.clone()).expect("utf8");
    for needle in [
        "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519",
        "http://www.w3.org/2021/04/xmldsig-more#x25519",
        "http://www.w3.org/2021/04/xmldsig-more#hkdf",
        "<dsig-more:HKDFParams xmlns:dsig-more=\"http://www.w3.org/2021/04/xmldsig-more#\">",
        "dsig11:DEREncodedKeyValue",
        "http://www.w3.org/2001/04/xmlenc#kw-aes128",
        "Attachment-Content-Only",
        "Attachment-Ciphertext-Transform",
        "Attachment-Content-Signature-Transform",
        "MimeType=\"application/gzip\"",
        "PrefixList=\"env\"",
    ] {
        assert!(s.contains(needle), "missing {needle}");
    }
    assert!(!s.contains("dsig-more:Info"), "Info is absent");
    let doc = Document::parse(&sent.soap).expect("xml");
    let salt = doc
        .elements()
        .find(|n| n.local_name() == "Salt")
        .map(|n| n.text().into_owned())
        .expect("salt");
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(salt)
            .expect("b64")
            .len(),
        32
    );
    let rsa =
        String::from_utf8(send(Suite::Edelivery115, KeyReference::Ski, TokenType::X509v3).soap)
            .expect("utf8");
    assert!(rsa.contains("http://www.w3.org/2009/xmlenc11#rsa-oaep") && rsa.contains("mgf1sha256"));
}

#[test]
fn receipts_round_trip_both_suites() {
    let w = world();
    for suite in SUITES {
        let sent = send(suite, KeyReference::Ski, TokenType::X509v3);
        let v = receive(InboundPolicy::for_suite(suite), &sent).expect("receive");
        let cfg = SenderConfig {
            suite,
            signer: signer_for(suite, &w.red),
            token_type: TokenType::X509v3,
            recipient: None,
            recipient_reference: KeyReference::Ski,
        };
        let receipt = build_receipt(
            &AwsLc,
            &v,
            "receipt-1@as4gw.test",
            datetime!(2026-06-01 0:00:01 UTC),
            &cfg,
        )
        .expect("receipt");
        let doc = Document::parse(&receipt.soap).expect("xml");
        let nr = receipt_references(&doc);
        assert_eq!(nr.len(), 4);
        let trust = w.trust();
        let rx = Receiver {
            crypto: &AwsLc,
            trust: &trust,
            partners: &[],
            keys: &[],
            at: AT,
            policy: InboundPolicy::for_suite(suite),
        };
        let ok = verify_receipt(&rx, &receipt.soap, MESSAGE_ID, &sent.references)
            .expect("valid receipt");
        assert_eq!(ok.value().ref_to_message_id, MESSAGE_ID);
        // a digest that differs from what was sent
        let mut other = sent.references.clone();
        other[2].digest_value = other[3].digest_value.clone();
        let err =
            verify_receipt(&rx, &receipt.soap, MESSAGE_ID, &other).expect_err("digest differs");
        assert_eq!(err.ebms_code().code(), "EBMS:0302");
        // a reference that was sent but is not acknowledged
        let err = verify_receipt(&rx, &receipt.soap, MESSAGE_ID, &sent.references[..3])
            .expect_err("count differs");
        assert_eq!(err.ebms_code().code(), "EBMS:0302");
        // another message's receipt
        let err =
            verify_receipt(&rx, &receipt.soap, "other@x", &sent.references).expect_err("wrong ref");
        assert_eq!(err.ebms_code().code(), "EBMS:0302");
        // tampered receipt signature → also InvalidReceipt
        let bad = String::from_utf8(receipt.soap.clone())
            .expect("utf8")
            .replace("receipt-1@as4gw.test", "receipt-2@as4gw.test");
        let err = verify_receipt(&rx, bad.as_bytes(), MESSAGE_ID, &sent.references)
            .expect_err("tampered");
        assert_eq!(err.ebms_code().code(), "EBMS:0302");
        // receipt signed by an untrusted party
        let cfg = SenderConfig {
            signer: signer_for(suite, &w.rogue),
            ..cfg
        };
        let rogue = build_receipt(
            &AwsLc,
            &v,
            "receipt-3@as4gw.test",
            datetime!(2026-06-01 0:00:01 UTC),
            &cfg,
        )
        .expect("receipt");
        let err =
            verify_receipt(&rx, &rogue.soap, MESSAGE_ID, &sent.references).expect_err("untrusted");
        assert_eq!(err.ebms_code().code(), "EBMS:0302");
    }
}

#[test]
fn real_receipts_in_the_fixtures() {
    use crate::support::read_fixture;
    use as4gw::pki::{load_certificates, TrustStore};
    use as4gw::security::capture::parse_capture;
    use as4gw::security::SignedReference;
    // Peppol receipts: signature + trust; the NRR references are the three the request signed.
    let mut trust = TrustStore::new();
    for f in ["peppol_test_g2_root_ca", "peppol_test_g2_ap_ca"] {
        let c = load_certificates(&read_fixture(&format!(
            "interop/oxalis-ng/peppol_trust_g3/{f}.cert.pem"
        )))
        .expect(f);
        if f.contains("root") {
            trust.add_anchor(c[0].clone());
        } else {
            trust.add_intermediate(c[0].clone());
        }
    }
    for (file, ref_to) in [
        ("interop/phase4/peppol-receipts/helger.as4in", "3b3775c9"),
        (
            "interop/phase4/peppol-receipts/governikus.as4in",
            "6b52b4c0",
        ),
    ] {
        let cap = parse_capture(&read_fixture(file), None).expect("capture");
        let doc = Document::parse(&cap.soap).expect("xml");
        let nr = receipt_references(&doc);
        assert_eq!(nr.len(), 3, "{file}");
        let sent: Vec<SignedReference> = nr
            .iter()
            .map(|(u, m, v)| SignedReference {
                uri: u.clone(),
                digest_method: m.clone(),
                digest_value: v.clone(),
                xml: String::new(),
            })
            .collect();
        let ref_id = doc
            .elements()
            .find(|n| n.local_name() == "RefToMessageId")
            .map(|n| n.text().trim().to_string())
            .expect("ref");
        assert!(ref_id.starts_with(ref_to));
        let rx = Receiver {
            crypto: &AwsLc,
            trust: &trust,
            partners: &[],
            keys: &[],
            at: datetime!(2022-03-07 18:00 UTC),
            policy: InboundPolicy::default(),
        };
        verify_receipt(&rx, &cap.soap, &ref_id, &sent).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut wrong = sent.clone();
        wrong[0].digest_value = wrong[1].digest_value.clone();
        assert_eq!(
            verify_receipt(&rx, &cap.soap, &ref_id, &wrong)
                .expect_err("mismatch")
                .ebms_code()
                .code(),
            "EBMS:0302"
        );
    }
    // Domibus: MSHAS4Response's NRR digests equal MSHAS4Request's reference digests.
    let req =
        Document::parse(&read_fixture("interop/domibus/messages/MSHAS4Request.xml")).expect("xml");
    let resp =
        Document::parse(&read_fixture("interop/domibus/messages/MSHAS4Response.xml")).expect("xml");
    let ds = "http://www.w3.org/2000/09/xmldsig#";
    let req_refs: Vec<(String, String)> = req
        .elements()
        .filter(|n| n.is(ds, "Reference") && n.parent().is_some_and(|p| p.is(ds, "SignedInfo")))
        .map(|r| {
            let dv: String = r
                .child(ds, "DigestValue")
                .expect("dv")
                .text()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            (r.attr(None, "URI").expect("uri").to_string(), dv)
        })
        .collect();
    let nr: Vec<(String, String)> = receipt_references(&resp)
        .into_iter()
        .map(|(u, _, v)| (u, v))
        .collect();
    assert_eq!(nr.len(), 3);
    assert_eq!(nr, req_refs);
}
