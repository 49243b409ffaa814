//! Negative tests: each asserts the exact EBMS code (and, where it matters, the variant).

use as4gw::security::sign::{secure_outbound, SenderConfig};
use as4gw::security::{Attachment, InboundPolicy, KeyReference, SecurityError, Suite, TokenType};

use super::msg::*;
use super::testpki::world;

const S: Suite = Suite::Edelivery115;

fn policy() -> InboundPolicy {
    InboundPolicy::for_suite(S)
}

fn code(r: Result<impl std::fmt::Debug, SecurityError>) -> (String, SecurityError) {
    let e = r.expect_err("must be rejected");
    (e.ebms_code().code().to_string(), e)
}

fn soap_of(m: &as4gw::security::sign::SecuredMessage) -> String {
    String::from_utf8(m.soap.clone()).expect("utf8")
}

/// The `<eb:Messaging …>…</eb:Messaging>` substring of an envelope we built.
fn messaging_span(s: &str) -> (usize, usize) {
    let a = s.find("<eb:Messaging").expect("start");
    let b = s.find("</eb:Messaging>").expect("end") + "</eb:Messaging>".len();
    (a, b)
}

#[test]
fn tampered_payload_byte_encrypted_is_failed_decryption() {
    for suite in [Suite::Edelivery115, Suite::Edelivery20] {
        let mut m = send(suite, KeyReference::Ski, TokenType::X509v3);
        let n = m.attachments[0].data.len();
        m.attachments[0].data[n / 2] ^= 1;
        let (c, _) = code(receive(InboundPolicy::for_suite(suite), &m));
        assert_eq!(c, "EBMS:0102", "{suite:?}");
    }
}

#[test]
fn tampered_payload_byte_signed_only_is_failed_authentication() {
    let w = world();
    let mut m = send_with(S, &w.blue.rsa, None);
    m.attachments[0].data[5] ^= 1;
    let p = InboundPolicy {
        require_encryption: false,
        ..policy()
    };
    let (c, e) = code(receive(p, &m));
    assert_eq!(c, "EBMS:0101");
    assert!(
        matches!(e, SecurityError::DigestMismatch { ref uri } if uri == "cid:regrep@as4gw.test"),
        "{e}"
    );
}

#[test]
fn tampered_messaging_is_failed_authentication() {
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m).replace("<eb:ConversationId>conv-1<", "<eb:ConversationId>conv-2<");
    let (c, e) = code(receive_raw(policy(), s.as_bytes(), m.attachments.clone()));
    assert_eq!(c, "EBMS:0101");
    assert_eq!(
        e,
        SecurityError::DigestMismatch {
            uri: "#_messaging-1".into()
        }
    );
}

#[test]
fn untrusted_signer_is_failed_authentication() {
    let w = world();
    let m = send_with(S, &w.rogue.rsa, Some(&w.red.rsa.cert));
    let (c, e) = code(receive(policy(), &m));
    assert_eq!(c, "EBMS:0101");
    assert!(matches!(e, SecurityError::Untrusted(_)), "{e}");
    assert!(
        e.to_string().contains("rogue rsa"),
        "error names the certificate: {e}"
    );
}

#[test]
fn expired_signer_is_failed_authentication() {
    let w = world();
    let m = send_with(S, &w.expired_rsa, Some(&w.red.rsa.cert));
    let (c, e) = code(receive(policy(), &m));
    assert_eq!(c, "EBMS:0101");
    assert!(
        e.to_string().contains("expired") && e.to_string().contains("red expired"),
        "{e}"
    );
}

#[test]
fn wrong_decryption_key_is_failed_decryption() {
    let w = world();
    for suite in [Suite::Edelivery115, Suite::Edelivery20] {
        // encrypted for blue, received by red
        let m = send_with(
            suite,
            signer_for(suite, &w.blue),
            Some(enc_cert_for(suite, &w.blue)),
        );
        let (c, _) = code(receive(InboundPolicy::for_suite(suite), &m));
        assert_eq!(c, "EBMS:0102", "{suite:?}");
    }
}

#[test]
fn wrong_suite_and_missing_protection_are_policy_noncompliance() {
    let w = world();
    // a 1.15 message to a 2.0 receiver
    let m = send(Suite::Edelivery115, KeyReference::Ski, TokenType::X509v3);
    let (c, e) = code(receive(InboundPolicy::for_suite(Suite::Edelivery20), &m));
    assert_eq!(c, "EBMS:0103", "{e}");
    // signed but not encrypted, encryption required
    let m = send_with(S, &w.blue.rsa, None);
    let (c, e) = code(receive(policy(), &m));
    assert_eq!(c, "EBMS:0103", "{e}");
    // not signed at all
    let s = soap_of(&m);
    let a = s.find("<ds:Signature").expect("sig");
    let b = s.find("</ds:Signature>").expect("sig end") + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &s[..a], &s[b..]);
    let (c, _) = code(receive_raw(
        policy(),
        unsigned.as_bytes(),
        m.attachments.clone(),
    ));
    assert_eq!(c, "EBMS:0103");
}

// ---- signature wrapping ------------------------------------------------------------------

#[test]
fn wrap_moved_messaging_into_wrapper_with_forged_header() {
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let (a, b) = messaging_span(&s);
    let original = &s[a..b];
    let forged = original
        .replace("conv-1", "conv-EVIL")
        .replace("_messaging-1", "_forged");
    let wrapped = format!("<w:Wrapper xmlns:w=\"urn:evil\">{original}</w:Wrapper>");
    let s2 = format!("{}{forged}{wrapped}{}", &s[..a], &s[b..]);
    let (c, e) = code(receive_raw(policy(), s2.as_bytes(), m.attachments.clone()));
    assert_eq!(c, "EBMS:0101");
    assert!(matches!(e, SecurityError::Wrapping(_)), "{e}");
}

#[test]
fn wrap_duplicated_messaging_header_block() {
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let (a, b) = messaging_span(&s);
    let copy = s[a..b].replace("_messaging-1", "_copy");
    let s2 = format!("{}{}{}", &s[..b], copy, &s[b..]);
    let (c, e) = code(receive_raw(policy(), s2.as_bytes(), m.attachments.clone()));
    assert_eq!(c, "EBMS:0101");
    assert!(
        matches!(e, SecurityError::Wrapping(ref w) if w.contains("more than one eb:Messaging")),
        "{e}"
    );
}

#[test]
fn wrap_duplicated_wsu_id() {
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let (a, b) = messaging_span(&s);
    let original = &s[a..b];
    let forged = original.replace("conv-1", "conv-EVIL"); // same wsu:Id
    let s2 = format!(
        "{}{forged}<w:Wrapper xmlns:w=\"urn:evil\">{original}</w:Wrapper>{}",
        &s[..a],
        &s[b..]
    );
    let (c, e) = code(receive_raw(policy(), s2.as_bytes(), m.attachments.clone()));
    assert_eq!(c, "EBMS:0101");
    assert!(
        matches!(e, SecurityError::Wrapping(ref w) if w.contains("2 elements carry id")),
        "{e}"
    );
}

#[test]
fn wrap_reference_to_copy_in_wrapper_inside_security() {
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let (a, b) = messaging_span(&s);
    let original = s[a..b].to_string();
    // the processed header block loses its id; the signed copy hides in the Security header
    let processed = original
        .replace("conv-1", "conv-EVIL")
        .replace(" wsu:Id=\"_messaging-1\"", "");
    let sec_end = s.find("</wsse:Security>").expect("sec");
    let s2 = format!(
        "{}{processed}{}<w:Wrapper xmlns:w=\"urn:evil\">{original}</w:Wrapper>{}",
        &s[..a],
        &s[b..sec_end],
        &s[sec_end..]
    );
    let (c, e) = code(receive_raw(policy(), s2.as_bytes(), m.attachments.clone()));
    assert_eq!(c, "EBMS:0101");
    assert!(
        matches!(e, SecurityError::Wrapping(ref w) if w.contains("neither the eb:Messaging")),
        "{e}"
    );
}

#[test]
fn wrap_body_reference_pointing_at_non_body_element() {
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let start = s.find("<env:Body wsu:Id=\"").expect("body") + "<env:Body wsu:Id=\"".len();
    let end = start + s[start..].find('"').expect("quote");
    let body_id = s[start..end].to_string();
    let s2 = s.replace(
        &format!("<env:Body wsu:Id=\"{body_id}\"/>"),
        "<env:Body><p:Injected xmlns:p=\"urn:evil\"/></env:Body>",
    );
    let s2 = s2.replacen(
        "</env:Header>",
        &format!("<p:Decoy xmlns:p=\"urn:evil\" wsu:Id=\"{body_id}\"/></env:Header>"),
        1,
    );
    let (c, e) = code(receive_raw(policy(), s2.as_bytes(), m.attachments.clone()));
    assert_eq!(c, "EBMS:0101");
    assert!(
        matches!(e, SecurityError::Wrapping(ref w) if w.contains("p:Decoy")),
        "{e}"
    );
}

#[test]
fn wrap_signed_info_referencing_an_id_twice() {
    let w = world();
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let a = s.find("<ds:Reference URI=\"#_messaging-1\"").expect("ref");
    let b = a + s[a..].find("</ds:Reference>").expect("end") + "</ds:Reference>".len();
    let dup = s[a..b].to_string();
    let s2 = format!("{}{dup}{}", &s[..b], &s[b..]);
    let s2 = resign(&s2, S, &w.blue.rsa);
    let (c, e) = code(receive_raw(policy(), s2.as_bytes(), m.attachments.clone()));
    assert_eq!(c, "EBMS:0101");
    assert!(
        matches!(e, SecurityError::Wrapping(ref w) if w.contains("referenced twice")),
        "{e}"
    );
}

#[test]
fn wrap_unknown_transform() {
    let w = world();
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let a = s.find("<ds:Reference URI=\"#_body").expect("ref");
    let t = a + s[a..]
        .find("http://www.w3.org/2001/10/xml-exc-c14n#")
        .expect("transform");
    let s2 = format!(
        "{}http://www.w3.org/TR/1999/REC-xpath-19991116{}",
        &s[..t],
        &s[t + "http://www.w3.org/2001/10/xml-exc-c14n#".len()..]
    );
    let s2 = resign(&s2, S, &w.blue.rsa);
    let (c, e) = code(receive_raw(policy(), s2.as_bytes(), m.attachments.clone()));
    assert_eq!(c, "EBMS:0101");
    assert!(matches!(e, SecurityError::UnknownAlgorithm { .. }), "{e}");
}

#[test]
fn wrap_swapped_content_ids() {
    let mut m = send(S, KeyReference::Ski, TokenType::X509v3);
    let (x, y) = (
        m.attachments[0].content_id.clone(),
        m.attachments[1].content_id.clone(),
    );
    m.attachments[0].content_id = y;
    m.attachments[1].content_id = x;
    let (c, e) = code(receive(policy(), &m));
    assert_eq!(c, "EBMS:0101");
    assert!(matches!(e, SecurityError::DigestMismatch { .. }), "{e}");
}

#[test]
fn wrap_extra_unsigned_payload_part() {
    // PayloadInfo lists two parts, the sender signed (and encrypted) only the first; the second
    // is slipped in as a plain MIME part.
    let w = world();
    let cfg = SenderConfig {
        suite: S,
        signer: &w.blue.rsa,
        token_type: TokenType::X509v3,
        recipient: Some(&w.red.rsa.cert),
        recipient_reference: KeyReference::Ski,
    };
    let mut p = payloads();
    let extra = p.pop().expect("second");
    let mut m = secure_outbound(
        &as4gw::security::crypto::AwsLc,
        &messaging(&cids()),
        p,
        &cfg,
    )
    .expect("secure");
    m.attachments.push(extra);
    let (c, e) = code(receive(policy(), &m));
    assert_eq!(c, "EBMS:0103");
    assert!(
        matches!(e, SecurityError::Policy(ref w) if w.contains("evidence@as4gw.test") && w.contains("not signed")),
        "{e}"
    );
}

#[test]
fn wrap_extra_reference_to_part_outside_payload_info() {
    let w = world();
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let a = s
        .find("<ds:Reference URI=\"cid:regrep@as4gw.test\"")
        .expect("ref");
    let b = a + s[a..].find("</ds:Reference>").expect("end") + "</ds:Reference>".len();
    let extra = s[a..b].replace("cid:regrep@as4gw.test", "cid:extra@evil");
    let s2 = resign(&format!("{}{extra}{}", &s[..b], &s[b..]), S, &w.blue.rsa);
    let mut parts = m.attachments.clone();
    parts.push(Attachment::new(
        "extra@evil",
        "application/octet-stream",
        b"x".to_vec(),
    ));
    let (c, e) = code(receive_raw(policy(), s2.as_bytes(), parts));
    assert_eq!(c, "EBMS:0101");
    assert!(
        matches!(e, SecurityError::Wrapping(ref w) if w.contains("not listed in eb:PayloadInfo")),
        "{e}"
    );
}

#[test]
fn wrap_second_security_header_and_second_signature() {
    let m = send(S, KeyReference::Ski, TokenType::X509v3);
    let s = soap_of(&m);
    let a = s.find("<ds:Signature").expect("sig");
    let b = s.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
    let two_sigs = format!("{}{}{}", &s[..b], &s[a..b], &s[b..]);
    let (c, e) = code(receive_raw(
        policy(),
        two_sigs.as_bytes(),
        m.attachments.clone(),
    ));
    assert_eq!(c, "EBMS:0101", "{e}");
    let sa = s.find("<wsse:Security").expect("sec");
    let sb = s.find("</wsse:Security>").expect("end") + "</wsse:Security>".len();
    let two_sec = format!("{}{}{}", &s[..sb], &s[sa..sb], &s[sb..]);
    let (c, e) = code(receive_raw(
        policy(),
        two_sec.as_bytes(),
        m.attachments.clone(),
    ));
    assert_eq!(c, "EBMS:0101", "{e}");
}

#[test]
fn phase4_negative_fixtures() {
    use crate::support::read_fixture;
    for f in [
        "WrongSigningAlgorithm.xml",
        "WrongSigningDigestAlgorithm.xml",
    ] {
        let soap = read_fixture(&format!("interop/phase4/testfiles/{f}"));
        let (c, e) = code(receive_raw(
            InboundPolicy {
                require_encryption: false,
                ..Default::default()
            },
            &soap,
            vec![],
        ));
        assert_eq!(c, "EBMS:0101", "{f}: {e}");
    }
}
