//! ebms room: every AS4 message and signal in the shared fixtures parses into the model, writes
//! back and parses to the same model; the negatives get their documented outcome; parsed values
//! are cross-checked against `interop/expectations.json` (derived by an independent verifier).

use std::collections::BTreeSet;

use as4gw::ebms::soap::{self, FaultCode, SoapError, SoapVersion};
use as4gw::ebms::validate::{self, rules};
use as4gw::ebms::{
    EbmsCode, Messaging, ParseErrorKind, Receipt, Signal, SignalMessage, Timestamp, UserMessage,
};
use as4gw::ns;
use as4gw::xml::Document;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::support::read_fixture;

const DOMIBUS: &str = "interop/domibus/messages/";
const P4: &str = "interop/phase4/";

/// SOAP envelopes that must parse (SOAP 1.2 unless in soap11test/).
const ENVELOPES: &[&str] = &[
    "interop/domibus/messages/InvalidBodyloadCidSOAPMessage.xml",
    "interop/domibus/messages/MSHAS4Request-signOnly.xml",
    "interop/domibus/messages/MSHAS4Request.xml",
    "interop/domibus/messages/MSHAS4Response-signOnly.xml",
    "interop/domibus/messages/MSHAS4Response.xml",
    "interop/domibus/messages/SOAPMessage.xml",
    "interop/domibus/messages/SOAPMessage2.xml",
    "interop/domibus/messages/SOAPMessage4.xml",
    "interop/domibus/messages/SOAPMessage4_compressed.xml",
    "interop/domibus/messages/SOAPTestMessage.xml",
    "interop/domibus/messages/SoapRequest.xml",
    "interop/domibus/messages/SoapRequestBinaryToken.xml",
    "interop/domibus/messages/UserMessageReceipt.xml",
    "interop/domibus/messages/validAS4Response.xml",
    "interop/domibus/messages/validAS4Response2.xml",
    "interop/domibus/messages/sampleSOAPHeaders/request_BST_PKIP.xml",
    "interop/domibus/messages/sampleSOAPHeaders/response_BST_PKIP.xml",
    "interop/phase4/peppol-receipts/helger.as4in",
    "interop/phase4/peppol-receipts/governikus.as4in",
    "interop/phase4/peppol-receipts/dataport1-mustunderstand.as4in",
    "interop/phase4/peppol-receipts/dataport1.as4in",
    "interop/phase4/peppol-outbound/dump-raw.as4out",
    "interop/phase4/testfiles/ErrorMessage.xml",
    "interop/phase4/testfiles/ErrorMessageNoRefToMessageID.xml",
    "interop/phase4/testfiles/ErrorMessageWithFault.xml",
    "interop/phase4/testfiles/TestReceipt11.xml",
    "interop/phase4/testfiles/TestReceipt12.xml",
    "interop/phase4/testfiles/WrongSigningAlgorithm.xml",
    "interop/phase4/testfiles/WrongSigningDigestAlgorithm.xml",
    "interop/phase4/testfiles/WrongCompression.mime",
    "interop/phase4/soap11test/BundledMessage.xml",
    "interop/phase4/soap11test/EmptyMessaging.xml",
    "interop/phase4/soap11test/ErrorMessage.xml",
    "interop/phase4/soap11test/PullRequest.xml",
    "interop/phase4/soap11test/ReceiptMessage.xml",
    "interop/phase4/soap11test/UserMessage.xml",
    "interop/phase4/soap11test/UserMessageResponse.xml",
    "interop/phase4/soap12test/UserMessage12.xml",
    "interop/phase4/soap12test/test-2023-03-15.xml",
];

/// Documents whose root is a bare `eb:Messaging` header.
const BARE_HEADERS: &[&str] = &[
    "interop/phase4/soap11test/UserMessage-no-soap.xml",
    "interop/phase4/soap11test/NoMessaging.xml",
    "oots/oots-france/fixtures/reference/messages/requete.entete.xml",
    "oots/oots-france/fixtures/reference/messages/reponse.entete.xml",
    "oots/oots-france/fixtures/reference/messages/erreur.entete.xml",
    "oots/oots-france/fixtures/reference/messages/erreurRequeteInvalide.entete.xml",
    "oots/oots-france/fixtures/reference/messages/erreurCapaciteNonSupportee.entete.xml",
    "oots/oots-france/fixtures/reference/messages/erreurExpiration.entete.xml",
];

/// The Governikus OOTS header samples are producer-side templates without eb:MessageInfo (the
/// sending MSH adds it): as wire headers they are EBMS:0009; with a MessageInfo inserted they
/// must parse and round-trip like any other header.
const GOVERNIKUS_TEMPLATES: &[&str] = &[
    "oots/governikus-sdg/testfiles/Request-Response Samples/Birth Certificate/oots_request_header.xml",
    "oots/governikus-sdg/testfiles/Request-Response Samples/Birth Certificate/oots_response_header.xml",
    "oots/governikus-sdg/testfiles/Request-Response Samples/Secondary Education Completion Evidence/oots_request_header.xml",
    "oots/governikus-sdg/testfiles/Request-Response Samples/Secondary Education Completion Evidence/oots_response_header.xml",
];

/// Files under the fixture tree that look like messages but are not AS4 messages, with why
/// they are not read (they are not copied into tests/fixtures either).
const SKIPPED: &[(&str, &str)] = &[
    (
        "interop/domibus/messages/blue2redGoodMessage.xml",
        "Domibus backend (e-CODEX WS) submission envelope, not AS4",
    ),
    (
        "interop/domibus/messages/blue2redInvalidMessage.xml",
        "Domibus backend submission envelope, not AS4",
    ),
    (
        "interop/domibus/messages/blue2redMessageResponse.xml",
        "Domibus backend sendResponse, not AS4",
    ),
    (
        "interop/domibus/messages/PML.xml",
        "Domibus backend listPendingMessagesResponse, not AS4",
    ),
    (
        "interop/phase4/testfiles/PullPush.xml",
        "SBDH business payload, not an envelope",
    ),
    (
        "interop/phase4/testfiles/PushPull.xml",
        "SBDH business payload, not an envelope",
    ),
    (
        "interop/phase4/cef-samples/*",
        "reading material per fixtures README (hand-edited, incomplete)",
    ),
    (
        "oots/oots-france/fixtures/reference/messages/*.xml (non-.entete)",
        "RegRep payload documents",
    ),
    (
        "oots/oots-france/fixtures/reference/soap/*, fixtures/incoming/*",
        "Domibus WS-plugin backend envelopes",
    ),
    ("interop/holodeck/*", "GPL-licensed, not used"),
];

/// The SOAP bytes of a fixture: `.as4in` = HTTP header block + body; `.mime`/`.as4out` = MIME
/// multipart whose root part is taken with a plain split (the mime room does this for real).
fn soap_bytes(rel: &str) -> Vec<u8> {
    let raw = read_fixture(rel);
    if rel.ends_with(".as4in") {
        let i = find(&raw, b"\r\n\r\n")
            .map(|i| i + 4)
            .or_else(|| find(&raw, b"\n\n").map(|i| i + 2))
            .expect("header block end");
        return raw[i..].to_vec();
    }
    if rel.ends_with(".mime") || rel.ends_with(".as4out") {
        let text = String::from_utf8_lossy(&raw);
        let b = text.find("boundary=\"").expect("boundary") + "boundary=\"".len();
        let boundary = format!("--{}", &text[b..b + text[b..].find('"').unwrap()]);
        let first = find(&raw, boundary.as_bytes()).unwrap() + boundary.len();
        let part = &raw[first..];
        let start = find(part, b"\r\n\r\n")
            .map(|i| i + 4)
            .or_else(|| find(part, b"\n\n").map(|i| i + 2))
            .unwrap();
        let body = &part[start..];
        let end = find(body, boundary.as_bytes()).unwrap();
        let mut root = &body[..end];
        for suffix in [&b"\r\n"[..], b"\n"] {
            if let Some(r) = root.strip_suffix(suffix) {
                root = r;
                break;
            }
        }
        return root.to_vec();
    }
    raw
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn expectations() -> Value {
    serde_json::from_slice(&read_fixture("interop/expectations.json")).unwrap()
}

/// Round trip: model → XML → model, standalone and inside a built SOAP 1.2 envelope.
fn assert_round_trip(rel: &str, m: &Messaging) {
    let xml = m.to_xml();
    let again =
        Messaging::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{rel}: re-parse: {e}\n{xml}"));
    assert_eq!(&again, m, "{rel}: round trip changed the model\n{xml}");
    let env = soap::build_envelope(m, "_body", None);
    let parsed = soap::parse_envelope(&env).unwrap_or_else(|e| panic!("{rel}: envelope: {e}"));
    assert_eq!(
        &parsed.messaging.unwrap().messaging,
        m,
        "{rel}: envelope round trip"
    );
}

/// An instant from the expectations' text, parsed with the `time` crate (independently of
/// our xs:dateTime parser); no zone means UTC ([EBMS3] §5.2.2.1).
fn instant(s: &str) -> OffsetDateTime {
    let with_zone = if s.ends_with('Z') || s[19..].contains(['+', '-']) {
        s.to_string()
    } else {
        format!("{s}Z")
    };
    OffsetDateTime::parse(&with_zone, &Rfc3339).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn check_user_message(rel: &str, u: &UserMessage, exp: &Value) {
    let s = |k: &str| exp[k].as_str();
    assert_eq!(
        Some(u.message_info.message_id.as_str()),
        s("message_id"),
        "{rel}"
    );
    assert_eq!(
        u.message_info.timestamp.datetime(),
        instant(s("timestamp").unwrap()),
        "{rel}"
    );
    assert_eq!(
        Some(u.party_info.from.party_ids[0].value.as_str()),
        s("from_party"),
        "{rel}"
    );
    assert_eq!(
        Some(u.party_info.to.party_ids[0].value.as_str()),
        s("to_party"),
        "{rel}"
    );
    assert_eq!(
        Some(u.collaboration_info.service.value.as_str()),
        s("service"),
        "{rel}"
    );
    assert_eq!(
        Some(u.collaboration_info.action.as_str()),
        s("action"),
        "{rel}"
    );
    let hrefs: Vec<Option<&str>> = u.payload_info.iter().map(|p| p.href.as_deref()).collect();
    let exp_hrefs: Vec<Option<&str>> = exp["part_hrefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::as_str)
        .collect();
    assert_eq!(hrefs, exp_hrefs, "{rel}");
}

fn check_signal(rel: &str, sm: &SignalMessage, exp: &Value) {
    let mi = &sm.message_info;
    assert_eq!(
        Some(mi.message_id.as_str()),
        exp["message_id"].as_str(),
        "{rel}"
    );
    assert_eq!(
        mi.ref_to_message_id.as_ref().map(|r| r.as_str()),
        exp["ref_to_message_id"].as_str(),
        "{rel}"
    );
    assert_eq!(
        mi.timestamp.datetime(),
        instant(exp["timestamp"].as_str().unwrap()),
        "{rel}"
    );
    let kinds: Vec<&str> = exp["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    match &sm.signal {
        Signal::Receipt(r) => {
            assert_eq!(kinds, ["Receipt"], "{rel}");
            let uris: Vec<&str> = r
                .non_repudiation
                .iter()
                .flatten()
                .map(|p| p.reference.uri.as_str())
                .collect();
            let exp_uris: Vec<&str> = exp["nrr_reference_uris"]
                .as_array()
                .map(|a| a.iter().map(|u| u.as_str().unwrap()).collect())
                .unwrap_or_default();
            assert_eq!(uris, exp_uris, "{rel}");
        }
        Signal::Errors(errors) => {
            assert!(
                kinds.iter().all(|k| *k == "Error") && kinds.len() == errors.len(),
                "{rel}"
            );
            for (e, x) in errors.iter().zip(exp["errors"].as_array().unwrap()) {
                assert_eq!(Some(e.error_code.as_str()), x["code"].as_str(), "{rel}");
                assert_eq!(e.short_description.as_deref(), x["short"].as_str(), "{rel}");
                assert!(
                    x["severity"]
                        .as_str()
                        .unwrap()
                        .eq_ignore_ascii_case(e.severity.as_str()),
                    "{rel}"
                );
                assert_eq!(
                    e.ref_to_message_in_error.as_deref(),
                    x["ref"].as_str(),
                    "{rel}"
                );
            }
        }
        Signal::PullRequest(_) => assert_eq!(kinds, ["PullRequest"], "{rel}"),
    }
}

/// A UserMessage carried opaquely inside a Receipt (reception-awareness receipts).
fn user_message_in_receipt(m: &Messaging) -> Option<UserMessage> {
    for s in &m.signal_messages {
        if let Signal::Receipt(Receipt { other, .. }) = &s.signal {
            for r in other {
                let doc = Document::parse(r.as_str().as_bytes()).unwrap();
                let found = doc
                    .elements()
                    .find(|n| n.is(ns::EB, "UserMessage"))
                    .map(|n| UserMessage::from_node(n, "receipt").unwrap());
                if found.is_some() {
                    return found;
                }
            }
        }
    }
    None
}

fn check_against_expectations(rel: &str, m: &Messaging, exp: &Value) {
    let users = exp["user_messages"].as_array().cloned().unwrap_or_default();
    match (&m.user_message, users.as_slice()) {
        (None, []) => {}
        (Some(u), [x]) => check_user_message(rel, u, x),
        (None, [x]) => {
            let u =
                user_message_in_receipt(m).unwrap_or_else(|| panic!("{rel}: UserMessage expected"));
            check_user_message(rel, &u, x);
        }
        (u, x) => panic!("{rel}: user message {u:?} vs expected {x:?}"),
    }
    let signals = exp["signal_messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(m.signal_messages.len(), signals.len(), "{rel}");
    for (s, x) in m.signal_messages.iter().zip(&signals) {
        check_signal(rel, s, x);
    }
}

#[test]
fn every_envelope_parses_matches_expectations_and_round_trips() {
    let exp = expectations();
    let mut checked = 0;
    for rel in ENVELOPES {
        let env = soap::parse_envelope(&soap_bytes(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let want_version = if rel.contains("soap11test") || rel.ends_with("TestReceipt11.xml") {
            SoapVersion::Soap11
        } else {
            SoapVersion::Soap12
        };
        assert_eq!(env.version, want_version, "{rel}");
        let block = env
            .messaging
            .as_ref()
            .unwrap_or_else(|| panic!("{rel}: no Messaging"));
        let m = &block.messaging;
        // The Messaging node id points at the header block the model came from.
        assert!(
            env.document.node(block.node).is(ns::EB, "Messaging"),
            "{rel}"
        );
        let e = &exp[*rel];
        assert!(e.is_object(), "{rel}: no expectations entry");
        check_against_expectations(rel, m, e);
        assert_round_trip(rel, m);
        checked += 1;
    }
    assert_eq!(checked, 39);
}

#[test]
fn bare_headers_parse_and_round_trip() {
    let exp = expectations();
    for rel in BARE_HEADERS {
        let m = Messaging::parse(&read_fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let e = &exp[*rel];
        if e.get("user_messages").is_some() || e.get("signal_messages").is_some() {
            check_against_expectations(rel, &m, e);
        }
        assert_round_trip(rel, &m);
        // They are headers, not envelopes.
        assert!(
            matches!(
                soap::parse_envelope(&read_fixture(rel)),
                Err(SoapError::NotAnEnvelope(_))
            ),
            "{rel}"
        );
    }
}

#[test]
fn header_without_envelope_equals_the_enveloped_one() {
    // expectations.json has no summary for the bare header: it is the same UserMessage as
    // soap11test/UserMessage.xml, whose summary is checked above.
    let bare = Messaging::parse(&read_fixture(&format!(
        "{P4}soap11test/UserMessage-no-soap.xml"
    )))
    .unwrap();
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{P4}soap11test/UserMessage.xml"))).unwrap();
    assert_eq!(bare, env.messaging.unwrap().messaging);
}

#[test]
fn oots_france_headers_carry_the_oots_values() {
    // digest §6.3: OOTS service, actions, gateway role, four-corner and v2 properties.
    let base = "oots/oots-france/fixtures/reference/messages/";
    let actions = [
        ("requete", "ExecuteQueryRequest"),
        ("reponse", "ExecuteQueryResponse"),
        ("erreur", "ExceptionResponse"),
    ];
    for (file, action) in actions {
        let m = Messaging::parse(&read_fixture(&format!("{base}{file}.entete.xml"))).unwrap();
        let u = m.user_message.as_ref().unwrap();
        assert!(u.message_info.message_id.is_rfc2822(), "{file}");
        assert_eq!(u.collaboration_info.service.value, ns::OOTS_SERVICE);
        assert_eq!(
            u.collaboration_info.service.type_.as_deref(),
            Some(ns::OOTS_SERVICE_TYPE)
        );
        assert_eq!(u.collaboration_info.action, action);
        assert_eq!(u.party_info.from.role, ns::OOTS_ROLE);
        assert_eq!(u.party_info.to.role, ns::OOTS_ROLE);
        assert!(u.property("originalSender").is_some() && u.property("finalRecipient").is_some());
        assert_eq!(
            u.property("SpecificationId").map(|p| p.value.as_str()),
            Some("oots-edm:v2.0")
        );
        assert_eq!(
            u.payload_info[0].property("MimeType"),
            Some("application/x-ebrs+xml")
        );
        assert_eq!(validate::validate_messaging(&m), vec![], "{file}");
    }
    let m = Messaging::parse(&read_fixture(&format!("{base}requete.entete.xml"))).unwrap();
    let u = m.user_message.unwrap();
    assert_eq!(
        u.message_info.message_id.as_str(),
        "1a2b3c4d-0000-4000-8000-000000000001@oots.eu"
    );
    let fr = &u.party_info.from.party_ids[0];
    assert_eq!(
        (fr.value.as_str(), fr.type_.as_deref()),
        (
            "AP_FR_01",
            Some("urn:oasis:names:tc:ebcore:partyid-type:unregistered:oots")
        )
    );
    let os = u.property("originalSender").unwrap();
    assert_eq!(
        (os.value.as_str(), os.type_.as_deref()),
        (
            "00000000000002",
            Some("urn:cef.eu:names:identifier:EAS:0009")
        )
    );
    assert_eq!(
        u.payload_info[0].content_id(),
        Some("1a2b3c4d-0000-4000-8000-000000000000@oots.eu")
    );
}

#[test]
fn governikus_templates_lack_message_info() {
    for rel in GOVERNIKUS_TEMPLATES {
        let raw = read_fixture(rel);
        let e = Messaging::parse(&raw).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Missing("MessageInfo"), "{rel}");
        assert_eq!(e.code(), EbmsCode::InvalidHeader);
        assert_eq!(e.path, "eb:Messaging/eb:UserMessage");
        // With the MessageInfo the sending MSH would add, the rest parses.
        let text = String::from_utf8(raw).unwrap().replacen(
            "<UserMessage>",
            "<UserMessage><MessageInfo><Timestamp>2023-05-08T10:00:00Z</Timestamp><MessageId>x@gw</MessageId></MessageInfo>",
            1,
        );
        let m = Messaging::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let u = m.user_message.as_ref().unwrap();
        assert_eq!(u.collaboration_info.service.value, "QueryManager");
        assert_eq!(u.party_info.from.role, ns::OOTS_ROLE);
        assert!(
            u.payload_info[0]
                .content_id()
                .is_some_and(|c| c.starts_with("regrep") && c.contains("oots")),
            "{rel}"
        );
        assert_round_trip(rel, &m);
    }
}

fn ebms_err(rel: &str) -> as4gw::ebms::ParseError {
    match soap::parse_envelope(&soap_bytes(rel)) {
        Err(SoapError::Ebms(e)) => e,
        other => panic!("{rel}: expected an ebMS header error, got {other:?}"),
    }
}

#[test]
fn two_user_messages_is_value_inconsistent() {
    let e = ebms_err(&format!("{P4}testfiles/TwoUserMessages.xml"));
    assert_eq!(e.kind, ParseErrorKind::MultipleUserMessages);
    assert_eq!(e.code(), EbmsCode::ValueInconsistent);
    assert_eq!(e.code().code(), "EBMS:0003");
}

#[test]
fn empty_party_id_is_invalid_header() {
    let e = ebms_err(&format!("{P4}testfiles/UserMessageNoPartyID.xml"));
    assert_eq!(e.kind, ParseErrorKind::Empty("PartyId"));
    assert_eq!(e.code().code(), "EBMS:0009");
    assert_eq!(
        e.path,
        "eb:Messaging/eb:UserMessage/eb:PartyInfo/eb:From/eb:PartyId"
    );
}

#[test]
fn missing_to_is_invalid_header() {
    let e = ebms_err(&format!("{P4}testfiles/NoResponder.xml"));
    assert_eq!(e.kind, ParseErrorKind::Missing("To"));
    assert_eq!(e.code().code(), "EBMS:0009");
}

#[test]
fn soap11_message_info_negatives_are_invalid_header() {
    let cases = [
        ("MessageInfoMissing.xml", "MessageInfo"),
        ("MessageInfoIDMissing.xml", "MessageId"),
        ("MessageInfoImaginaryTimestamp.xml", "Timestamp"),
    ];
    for (file, what) in cases {
        let e = ebms_err(&format!("{P4}soap11test/{file}"));
        assert_eq!(e.code(), EbmsCode::InvalidHeader, "{file}");
        match (&e.kind, what) {
            (ParseErrorKind::Missing(m), _) => assert_eq!(*m, what, "{file}"),
            (ParseErrorKind::Timestamp(t), "Timestamp") => {
                assert_eq!(t.value, "2006-30-30T30:99:99")
            }
            (k, _) => panic!("{file}: {k:?}"),
        }
    }
}

#[test]
fn wrong_compression_is_value_inconsistent_in_validate() {
    let rel = format!("{P4}testfiles/WrongCompression.mime");
    let env = soap::parse_envelope(&soap_bytes(&rel)).unwrap();
    let issues = validate::validate_messaging(&env.messaging.unwrap().messaging);
    let comp: Vec<_> = issues
        .iter()
        .filter(|i| i.rule == rules::COMPRESSION_GZIP)
        .collect();
    assert_eq!(comp.len(), 1, "{issues:?}");
    assert_eq!(comp[0].code.code(), "EBMS:0003");
    assert_eq!(comp[0].value.as_deref(), Some("application/rar"));
    // Its PartyIds without @type are not URIs either: also EBMS:0003.
    assert!(issues
        .iter()
        .any(|i| i.rule == rules::PARTY_ID_URI && i.code == EbmsCode::ValueInconsistent));
}

#[test]
fn not_well_formed_is_an_xml_error() {
    let e = soap::parse_envelope(&soap_bytes(&format!(
        "{P4}soap12test/UserMessageWithCompressedPayload12.xml"
    )))
    .unwrap_err();
    assert!(
        matches!(e, SoapError::Xml(as4gw::xml::XmlError::Malformed { .. })),
        "{e:?}"
    );
    assert_eq!(e.ebms_code(), Some(EbmsCode::InvalidHeader));
}

/// `PullRequest12.xml` binds `wsse` to `…wssecurity-secext- 1.0.xsd` (with a space). Decision:
/// our XML layer, like the Namespaces spec, does not validate namespace names as URIs, so the
/// document parses; the block is then *not* wsse:Security but an unknown header block with
/// `mustUnderstand="true"`, which a SOAP node must refuse with a MustUnderstand fault (digest
/// §2.7). libxml2 refuses the document instead; both are rejections.
#[test]
fn pull_request12_bad_namespace_is_a_must_understand_fault() {
    let e = soap::parse_envelope(&soap_bytes(&format!("{P4}soap12test/PullRequest12.xml")))
        .unwrap_err();
    assert_eq!(
        e,
        SoapError::MustUnderstand {
            namespace:
                "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext- 1.0.xsd"
                    .into(),
            local: "Security".into(),
        }
    );
    assert_eq!(e.soap_fault_code(), FaultCode::MustUnderstand);
    // The eb:Messaging inside is itself a well-formed PullRequest signal.
    let doc = Document::parse(&soap_bytes(&format!("{P4}soap12test/PullRequest12.xml"))).unwrap();
    let n = doc.elements().find(|n| n.is(ns::EB, "Messaging")).unwrap();
    let m = Messaging::from_node(n).unwrap();
    assert!(
        matches!(&m.signal_messages[0].signal, Signal::PullRequest(p) if p.mpc.as_deref() == Some("http://as4.bigco.example.com/queues/q_456"))
    );
}

#[test]
fn no_messaging_and_empty_messaging() {
    let e = soap::parse_envelope(&soap_bytes(&format!("{DOMIBUS}SOAPMessageNoMessaging.xml")))
        .unwrap_err();
    assert_eq!(e, SoapError::MissingMessaging);
    assert_eq!(e.ebms_code(), Some(EbmsCode::InvalidHeader));
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{P4}soap11test/EmptyMessaging.xml"))).unwrap();
    let issues = validate::validate_messaging(&env.messaging.unwrap().messaging);
    assert_eq!(issues.len(), 1);
    assert_eq!(
        (issues[0].rule, issues[0].code),
        (rules::NOT_EMPTY, EbmsCode::InvalidHeader)
    );
    let m = Messaging::parse(&read_fixture(&format!("{P4}soap11test/NoMessaging.xml"))).unwrap();
    assert_eq!(m, Messaging::default());
}

#[test]
fn soap_faults() {
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{DOMIBUS}SOAPFaultResponse.xml"))).unwrap();
    let f = env.fault.as_ref().unwrap();
    assert_eq!(f.code, FaultCode::Receiver);
    assert_eq!(f.reason, "Policy Falsified");
    assert_eq!(
        f.role.as_deref(),
        Some("https://apitest.emea.fedex.com/fdx/cs/receive")
    );
    assert!(env.messaging.is_none());
    let env = soap::parse_envelope(&soap_bytes(&format!(
        "{DOMIBUS}blue2redMessageFaultResponse.xml"
    )))
    .unwrap();
    assert_eq!(env.fault.unwrap().code, FaultCode::Sender);
    let e = soap::parse_envelope(&soap_bytes(&format!(
        "{DOMIBUS}InvalidSOAPFaultResponse.xml"
    )))
    .unwrap_err();
    assert_eq!(e, SoapError::InvalidFault("Code"));
    // An ebMS Error signal together with a Fault (ebMS3 §6.6).
    let env = soap::parse_envelope(&soap_bytes(&format!(
        "{P4}testfiles/ErrorMessageWithFault.xml"
    )))
    .unwrap();
    assert!(env.fault.is_some() && env.messaging.is_some());
}

#[test]
fn security_headers_and_must_understand_are_recorded() {
    let env = soap::parse_envelope(&soap_bytes(&format!(
        "{P4}peppol-receipts/dataport1-mustunderstand.as4in"
    )))
    .unwrap();
    assert_eq!(env.security.len(), 1);
    let block = env.messaging.as_ref().unwrap();
    assert!(
        block.must_understand,
        "mustUnderstand bound through an odd prefix"
    );
    assert_eq!(
        block.messaging.id.as_deref(),
        Some("id-4b28412d2948bca-f4a2-48fe-8503-d3693f501057")
    );
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{DOMIBUS}UserMessageReceipt.xml"))).unwrap();
    assert!(!env.has_security_header());
    let env = soap::parse_envelope(&soap_bytes(&format!("{DOMIBUS}MSHAS4Request.xml"))).unwrap();
    assert!(env.body_has_content(), "e-CODEX payload in the Body");
    assert!(env.body_id().is_some());
}

/// The NRR digests in Domibus' receipts equal the `ds:Reference` digests of the request's
/// signature (fixtures README, interop/domibus): compare decoded bytes per URI.
#[test]
fn nrr_digests_match_the_requests_signed_info() {
    let pairs = [
        ("MSHAS4Request.xml", "MSHAS4Response.xml"),
        ("MSHAS4Request-signOnly.xml", "MSHAS4Response-signOnly.xml"),
        (
            "sampleSOAPHeaders/request_BST_PKIP.xml",
            "sampleSOAPHeaders/response_BST_PKIP.xml",
        ),
    ];
    use base64::Engine;
    for (req, resp) in pairs {
        let req_doc = Document::parse(&soap_bytes(&format!("{DOMIBUS}{req}"))).unwrap();
        let signed: Vec<(String, Vec<u8>)> = req_doc
            .elements()
            .filter(|n| {
                n.is(ns::DS, "Reference") && n.parent().is_some_and(|p| p.is(ns::DS, "SignedInfo"))
            })
            .map(|r| {
                let dv: String = r
                    .child(ns::DS, "DigestValue")
                    .unwrap()
                    .text()
                    .split_whitespace()
                    .collect();
                (
                    r.attr(None, "URI").unwrap().to_string(),
                    base64::engine::general_purpose::STANDARD
                        .decode(dv)
                        .unwrap(),
                )
            })
            .collect();
        let env = soap::parse_envelope(&soap_bytes(&format!("{DOMIBUS}{resp}"))).unwrap();
        let m = env.messaging.unwrap().messaging;
        let Signal::Receipt(Receipt {
            non_repudiation: Some(parts),
            ..
        }) = &m.signal_messages[0].signal
        else {
            panic!("{resp}: not an NRR receipt")
        };
        let got: Vec<(String, Vec<u8>)> = parts
            .iter()
            .map(|p| (p.reference.uri.clone(), p.reference.digest_value.clone()))
            .collect();
        assert_eq!(got, signed, "{resp}");
        assert!(
            parts.iter().all(|p| p.reference.digest_value.len() == 32),
            "SHA-256 digests"
        );
    }
}

#[test]
fn receipt_transforms_keep_prefix_lists() {
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{P4}peppol-receipts/helger.as4in"))).unwrap();
    let m = env.messaging.unwrap().messaging;
    let Signal::Receipt(Receipt {
        non_repudiation: Some(parts),
        ..
    }) = &m.signal_messages[0].signal
    else {
        panic!()
    };
    let cid = &parts[2].reference;
    assert_eq!(
        cid.transforms[0].algorithm,
        ns::SWA_CONTENT_SIGNATURE_TRANSFORM
    );
    assert_eq!(cid.digest_method, ns::ALG_SHA256);
    // The spec's SOAP 1.1 example: MessagePartIdentifier next to ds:Reference, no Transforms.
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{P4}soap11test/ReceiptMessage.xml"))).unwrap();
    let m = env.messaging.unwrap().messaging;
    let Signal::Receipt(Receipt {
        non_repudiation: Some(parts),
        ..
    }) = &m.signal_messages[0].signal
    else {
        panic!()
    };
    assert!(parts[0].reference.transforms.is_empty());
    assert_eq!(
        parts[0].reference.digest_method,
        "http://www.w3.org/2000/09/xmldsig#sha1"
    );
}

#[test]
fn opaque_receipt_content_is_kept() {
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{DOMIBUS}UserMessageReceipt.xml"))).unwrap();
    let m = env.messaging.unwrap().messaging;
    let Signal::Receipt(Receipt {
        non_repudiation: None,
        other,
    }) = &m.signal_messages[0].signal
    else {
        panic!()
    };
    assert_eq!(other.len(), 1);
    let u = user_message_in_receipt(&m).unwrap();
    assert_eq!(
        u.message_info.message_id.as_str(),
        "6c9d1a37-f991-11e9-8b95-4af17f6d0bfa@domibus.eu"
    );
    assert_eq!(u.party_info.from.party_ids[0].value, "domibus-red");
}

#[test]
fn receipt_with_nrr_and_extra_content() {
    // phase4 appends its own info element after the NRR information.
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{P4}testfiles/TestReceipt12.xml"))).unwrap();
    let m = env.messaging.unwrap().messaging;
    let Signal::Receipt(r) = &m.signal_messages[0].signal else {
        panic!()
    };
    assert_eq!(r.non_repudiation.as_ref().map(Vec::len), Some(3));
    assert_eq!(r.other.len(), 1);
    assert!(
        r.other[0]
            .as_str()
            .starts_with("<phase4 xmlns=\"urn:fdc:com.helger.phase4:ns:info\""),
        "{:?}",
        r.other
    );
    // TestReceipt11 carries a whole SOAP 1.1 envelope instead.
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{P4}testfiles/TestReceipt11.xml"))).unwrap();
    let m = env.messaging.unwrap().messaging;
    let Signal::Receipt(r) = &m.signal_messages[0].signal else {
        panic!()
    };
    assert!(r.non_repudiation.is_none());
    assert!(
        r.other[0].as_str().starts_with("<S11:Envelope xmlns:S11="),
        "{:?}",
        r.other
    );
}

#[test]
fn validate_on_interop_messages() {
    // Peppol's bare-UUID MessageId is not RFC 2822 (EBMS:0009 under eDelivery rules).
    let env =
        soap::parse_envelope(&soap_bytes(&format!("{P4}soap12test/test-2023-03-15.xml"))).unwrap();
    let issues = validate::validate_messaging(&env.messaging.unwrap().messaging);
    assert!(
        issues
            .iter()
            .any(|i| i.rule == rules::MESSAGE_ID_RFC2822 && i.code == EbmsCode::InvalidHeader),
        "{issues:?}"
    );
    // Domibus' body-load hrefs are not cid: references.
    let env = soap::parse_envelope(&soap_bytes(&format!(
        "{DOMIBUS}InvalidBodyloadCidSOAPMessage.xml"
    )))
    .unwrap();
    let issues = validate::validate_messaging(&env.messaging.unwrap().messaging);
    assert_eq!(
        issues.iter().filter(|i| i.rule == rules::HREF_CID).count(),
        2,
        "{issues:?}"
    );
    // A clean eDelivery message from Domibus passes.
    let env = soap::parse_envelope(&soap_bytes(&format!(
        "{DOMIBUS}sampleSOAPHeaders/request_BST_PKIP.xml"
    )))
    .unwrap();
    assert_eq!(
        validate::validate_messaging(&env.messaging.unwrap().messaging),
        vec![]
    );
}

#[test]
fn built_envelope_is_signable_by_id() {
    let id = soap::new_wsu_id();
    let body = soap::new_wsu_id();
    let m = Messaging::error_signal(
        Some(id.clone()),
        as4gw::ebms::MessageId::generate("gw.example.eu").unwrap(),
        Timestamp::parse("2026-11-01T12:00:00Z").unwrap(),
        None,
        vec![as4gw::ebms::SignalError::from_code(EbmsCode::InvalidHeader)],
    );
    let bytes = soap::build_envelope(&m, &body, None);
    let env = soap::parse_envelope(&bytes).unwrap();
    assert_eq!(env.document.elements_by_id(&id).len(), 1);
    assert!(env.document.elements_by_id(&id)[0].is(ns::EB, "Messaging"));
    assert!(env.document.elements_by_id(&body)[0].is(ns::S12, "Body"));
    assert_eq!(env.messaging.unwrap().messaging, m);
}

/// Every AS4 message in expectations.json is read by one of the tests above or skipped with a
/// reason, so a new fixture cannot be silently ignored.
#[test]
fn coverage_of_expectations() {
    let exp = expectations();
    let mut covered: BTreeSet<String> = ENVELOPES
        .iter()
        .chain(BARE_HEADERS)
        .map(|s| s.to_string())
        .collect();
    for n in [
        "testfiles/TwoUserMessages.xml",
        "testfiles/UserMessageNoPartyID.xml",
        "testfiles/NoResponder.xml",
        "soap11test/MessageInfoMissing.xml",
        "soap11test/MessageInfoIDMissing.xml",
        "soap11test/MessageInfoImaginaryTimestamp.xml",
        "soap12test/UserMessageWithCompressedPayload12.xml",
        "soap12test/PullRequest12.xml",
    ] {
        covered.insert(format!("{P4}{n}"));
    }
    for n in [
        "SOAPMessageNoMessaging.xml",
        "SOAPFaultResponse.xml",
        "InvalidSOAPFaultResponse.xml",
        "blue2redMessageFaultResponse.xml",
    ] {
        covered.insert(format!("{DOMIBUS}{n}"));
    }
    let skipped: BTreeSet<&str> = SKIPPED.iter().map(|(p, _)| *p).collect();
    for key in exp.as_object().unwrap().keys() {
        assert!(
            covered.contains(key) || skipped.contains(key.as_str()),
            "{key} neither tested nor skipped"
        );
    }
}
