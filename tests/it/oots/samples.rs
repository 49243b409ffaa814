//! Every OOTS sample reads into the model, passes the rules, and survives write → read with
//! the same model and the same element structure as the official sample.

use as4gw::oots::{
    self, EdmDocument, EdmErrorCode, EdmVersion, HeaderFields, PayloadKind, Procedure, Rule,
    Subject, ACTION_EXCEPTION,
};

use super::common::*;
use crate::support::read_fixture;

/// One official message: header + RegRep payload.
struct Sample {
    name: String,
    header: HeaderFields,
    regrep: Vec<u8>,
}

fn plain(header_rel: &str, body_rel: &str) -> Sample {
    Sample {
        name: body_rel.to_owned(),
        header: header(header_rel),
        regrep: read_fixture(body_rel),
    }
}

fn wrapped(rel: &str) -> Sample {
    let (header, regrep) = envelope(rel);
    Sample {
        name: rel.to_owned(),
        header,
        regrep,
    }
}

/// The v1.0 preview exception comes without a header in the samples; its header is the
/// response header of the same flow with Action ExceptionResponse and only the RegRep part.
fn education_exception_header() -> HeaderFields {
    let mut h = header(&education("oots_response_header.xml"));
    h.action = ACTION_EXCEPTION.to_owned();
    h.parts.truncate(1);
    h
}

fn official() -> Vec<Sample> {
    let mut v = vec![
        plain(
            &birth("oots_request_header.xml"),
            &birth("oots_request.xml"),
        ),
        plain(
            &birth("oots_response_header.xml"),
            &birth("oots_response.xml"),
        ),
        plain(
            &education("oots_request_header.xml"),
            &education("oots_request1_preview.xml"),
        ),
        Sample {
            name: education("oots_exception_preview.xml"),
            header: education_exception_header(),
            regrep: read_fixture(&education("oots_exception_preview.xml")),
        },
        plain(
            &education("oots_request_header.xml"),
            &education("oots_request2_after_preview.xml"),
        ),
        plain(
            &education("oots_response_header.xml"),
            &education("oots_response.xml"),
        ),
    ];
    for m in [
        "requete",
        "reponse",
        "erreur",
        "erreurRequeteInvalide",
        "erreurCapaciteNonSupportee",
        "erreurExpiration",
    ] {
        v.push(plain(
            &fr(&format!("reference/messages/{m}.entete.xml")),
            &fr(&format!("reference/messages/{m}.xml")),
        ));
    }
    for m in [
        "requete",
        "reponse",
        "erreur",
        "erreurRequeteInvalide",
        "erreurCapaciteNonSupportee",
    ] {
        v.push(wrapped(&fr(&format!("reference/soap/{m}.soumission.xml"))));
    }
    for m in [
        "requete",
        "requete.demarcheInconnue",
        "reponseAvecPieceJointe",
        "erreurObjetIntrouvable",
    ] {
        v.push(wrapped(&fr(&format!("incoming/reel/{m}.xml"))));
    }
    v
}

#[test]
fn official_samples_read_and_pass_the_rules() {
    let samples = official();
    assert_eq!(samples.len(), 21);
    for s in &samples {
        let (doc, violations) =
            oots::check_message(&s.header, &s.regrep).unwrap_or_else(|e| panic!("{}: {e}", s.name));
        assert!(violations.is_empty(), "{}: {:#?}", s.name, violations);
        assert_eq!(doc.kind().action(), s.header.action, "{}", s.name);
        assert!(doc.version().is_some(), "{}", s.name);
    }
}

#[test]
fn official_samples_round_trip_through_writer_and_json() {
    for s in official() {
        let doc = parse(&s.name, &s.regrep);
        let written = oots::write_edm(&doc);
        let again = parse(&s.name, &written);
        assert_eq!(doc, again, "{}: model changed through the writer", s.name);
        assert_same_structure(&s.name, &structure(&s.regrep), &structure(&written));
        let json = serde_json::to_string(&doc).expect("json");
        let back: EdmDocument = serde_json::from_str(&json).expect("json back");
        assert_eq!(doc, back, "{}: model changed through JSON", s.name);
    }
}

#[test]
fn v1_birth_request_fields() {
    let d = parse("birth", &read_fixture(&birth("oots_request.xml")));
    let EdmDocument::QueryRequest(r) = d else {
        panic!("not a request")
    };
    assert_eq!(r.version(), Some(EdmVersion::V1));
    assert_eq!(r.id, "4ffb5281-179d-4578-adf2-39fd13ccc797");
    assert!(
        matches!(&r.procedure, Some(Procedure::Localized(l)) if l[0].lang.as_deref() == Some("en") && l[0].value == "Requesting a birth certificate")
    );
    assert_eq!(r.possibility_for_preview, Some(false));
    assert_eq!(r.explicit_request_given, Some(true));
    assert_eq!(
        r.requirements[0].identifier,
        "315cfd75-6605-49c4-b0fe-799833b41099"
    );
    assert_eq!(
        r.evidence_requester[0].identifier.scheme_id.as_deref(),
        Some("0096")
    );
    assert_eq!(
        r.evidence_requester[0].classification.as_deref(),
        Some("IntermediaryPlatform")
    );
    assert_eq!(
        r.evidence_provider
            .as_ref()
            .map(|a| a.identifier.value.as_str()),
        Some("DE73524311")
    );
    let Some(Subject::NaturalPerson(p)) = &r.subject else {
        panic!("no natural person")
    };
    assert_eq!(p.level_of_assurance.as_deref(), Some("High"));
    assert_eq!(
        p.identifier.as_ref().map(|i| i.value.as_str()),
        Some("DK/DE/123456")
    );
    assert_eq!(
        p.current_address
            .as_ref()
            .and_then(|a| a.admin_unit_level1.as_deref()),
        Some("DE")
    );
    let e = r.evidence_request.as_ref().expect("evidence request");
    assert_eq!(
        e.evidence_type_classification.as_deref(),
        Some("CertificateOfBirth")
    );
    assert_eq!(e.titles.len(), 2);
    assert_eq!(
        e.distributed_as[0].format.as_deref(),
        Some("application/pdf")
    );
}

#[test]
fn v2_request_and_response_fields() {
    let d = parse(
        "requete",
        &read_fixture(&fr("reference/messages/requete.xml")),
    );
    let EdmDocument::QueryRequest(r) = d else {
        panic!("not a request")
    };
    assert_eq!(r.version(), Some(EdmVersion::V2));
    assert_eq!(r.procedure, Some(Procedure::Code("T3".into())));
    assert_eq!(r.evidence_requester.len(), 2);
    assert_eq!(
        r.evidence_requester[1].classification.as_deref(),
        Some("IP")
    );
    assert_eq!(r.requirements[0].descriptions.len(), 1);
    assert_eq!(
        r.evidence_request
            .as_ref()
            .and_then(|e| e.distributed_as[0].language.as_deref()),
        Some("EN")
    );

    let d = parse(
        "reponse",
        &read_fixture(&fr("reference/messages/reponse.xml")),
    );
    assert_eq!(d.kind(), PayloadKind::Response);
    let EdmDocument::QueryResponse(r) = d else {
        panic!("not a response")
    };
    assert_eq!(
        r.package_id.as_deref(),
        Some("urn:uuid:1a2b3c4d-0000-4000-8000-000000000016")
    );
    assert_eq!(r.evidences.len(), 1);
    let ev = &r.evidences[0];
    assert_eq!(ev.classifications[0].node, "MainEvidence");
    assert_eq!(
        ev.classifications[0].scheme,
        oots::EDM_CLASSIFICATION_SCHEME
    );
    assert_eq!(
        ev.part.as_ref().map(|p| p.href.as_str()),
        Some("cid:1a2b3c4d-0000-4000-8000-000000000003@pdf.oots.fr")
    );
    assert_eq!(
        ev.metadata.as_ref().and_then(|m| m.issuing_date.as_deref()),
        Some("1970-03-03")
    );
}

#[test]
fn v1_preview_flow() {
    let d1 = parse(
        "request1",
        &read_fixture(&education("oots_request1_preview.xml")),
    );
    let d2 = parse(
        "request2",
        &read_fixture(&education("oots_request2_after_preview.xml")),
    );
    let ex = parse(
        "exception",
        &read_fixture(&education("oots_exception_preview.xml")),
    );
    let (
        EdmDocument::QueryRequest(r1),
        EdmDocument::QueryRequest(r2),
        EdmDocument::QueryResponse(e),
    ) = (d1, d2, ex)
    else {
        panic!("shapes")
    };
    assert_eq!(r1.possibility_for_preview, Some(true));
    assert!(!r1.is_after_preview());
    assert_eq!(r1.evidence_provider_classifications.len(), 2);
    assert_eq!(
        r1.evidence_provider_classifications[1].supported_values,
        vec!["1988".to_owned()]
    );
    let x = &e.exceptions[0];
    assert!(x.requires_preview());
    assert_eq!(x.exception_type, "AuthorizationExceptionType");
    assert_eq!(x.code, None, "the v1.0 sample carries no code");
    assert_eq!(x.preview_method.as_deref(), Some("GET"));
    assert_eq!(x.preview_description.len(), 3);
    assert_eq!(
        e.error_provider
            .as_ref()
            .map(|a| a.identifier.value.as_str()),
        Some("DE7657587001")
    );
    // The second request copies the PreviewLocation of the exception (digest §7.5).
    assert!(r2.is_after_preview());
    assert_eq!(r2.preview_location, x.preview_location);
}

#[test]
fn v2_exception_codes_read() {
    for (m, code) in [
        ("erreur", EdmErrorCode::ObjectNotFound),
        ("erreurRequeteInvalide", EdmErrorCode::InvalidRequest),
        (
            "erreurCapaciteNonSupportee",
            EdmErrorCode::UnsupportedCapability,
        ),
        ("erreurExpiration", EdmErrorCode::Timeout),
    ] {
        let d = parse(
            m,
            &read_fixture(&fr(&format!("reference/messages/{m}.xml"))),
        );
        assert_eq!(d.kind(), PayloadKind::Exception, "{m}");
        let EdmDocument::QueryResponse(r) = d else {
            panic!("{m}")
        };
        let x = &r.exceptions[0];
        assert_eq!(x.error_code(), Some(code), "{m}");
        assert_eq!(x.exception_type, code.exception_type(), "{m}");
        assert_eq!(x.message.as_deref(), Some(code.message()), "{m}");
        assert_eq!(x.severity.as_deref(), Some(oots::SEVERITY_ERROR), "{m}");
        assert_eq!(
            x.timestamp.as_deref(),
            Some("2026-08-06T10:00:00.000Z"),
            "{m}"
        );
        assert_eq!(
            r.error_provider
                .as_ref()
                .and_then(|a| a.classification.as_deref()),
            Some("ERRP")
        );
    }
}

/// The hand-built WS-plugin corpus of oots-france abridges slots to `<!-- … -->`: it reads,
/// round-trips, and fails exactly the rules its gaps break (upstream answers the two
/// incomplete requests with EDM:ERR:0003).
#[test]
fn hand_built_envelopes_read_and_fail_the_expected_rules() {
    let cases: [(&str, &[Rule], Option<&str>); 8] = [
        (
            "requete",
            &[Rule::PayloadSpecification, Rule::RequestSlot],
            None,
        ),
        (
            "requete.demarcheInconnue",
            &[Rule::PayloadSpecification, Rule::RequestSlot],
            None,
        ),
        (
            "requete.sansProcedure",
            &[Rule::PayloadSpecification, Rule::RequestSlot],
            Some("Procedure"),
        ),
        (
            "requete.sansRequeteur",
            &[Rule::PayloadSpecification, Rule::RequestSlot],
            Some("EvidenceRequester"),
        ),
        (
            "reponseAvecPieceJointe",
            &[Rule::PayloadSpecification],
            None,
        ),
        (
            "erreurAutorisationRequise",
            &[Rule::PayloadSpecification],
            None,
        ),
        (
            "erreurObjetIntrouvable",
            &[Rule::PayloadSpecification],
            None,
        ),
        ("erreurSansCode", &[Rule::PayloadSpecification], None),
    ];
    for (m, expected, slot) in cases {
        let rel = fr(&format!("incoming/{m}.xml"));
        let (h, regrep) = envelope(&rel);
        let d = parse(&rel, &regrep);
        let mut exp = expected.to_vec();
        exp.sort_by_key(|r| r.id());
        assert_eq!(rules(&h, &d), exp, "{m}");
        let v = oots::check(&h, &d);
        let slot_msgs: Vec<&str> = v
            .iter()
            .filter(|x| x.rule == Rule::RequestSlot)
            .map(|x| x.message.as_str())
            .collect();
        if let Some(s) = slot {
            assert!(
                slot_msgs.iter().any(|x| x.contains(&format!("slot {s} "))),
                "{m}: {slot_msgs:?}"
            );
        } else {
            assert!(!slot_msgs.iter().any(|x| x.contains("slot Procedure ") || x.contains("slot EvidenceRequester ")), "{m}");
        }
        let again = parse(&rel, &oots::write_edm(&d));
        assert_eq!(d, again, "{m}: model changed through the writer");
    }
    // The prefix-renamed xlink (ns7) still resolves the evidence part.
    let (_, regrep) = envelope(&fr("incoming/reponseAvecPieceJointe.xml"));
    let d = parse("reponseAvecPieceJointe", &regrep);
    assert_eq!(
        d.part_references(),
        vec!["cid:11111111-1111-1111-1111-111111111111@pdf.oots.eu"]
    );
    // v2.0 preview-required severity; an exception without code still reads.
    let (_, regrep) = envelope(&fr("incoming/erreurAutorisationRequise.xml"));
    let EdmDocument::QueryResponse(r) = parse("erreurAutorisationRequise", &regrep) else {
        panic!()
    };
    assert_eq!(
        r.exceptions[0].error_code(),
        Some(EdmErrorCode::MissingAuthorization)
    );
    assert_eq!(
        r.exceptions[0].severity.as_deref(),
        Some(EdmVersion::V2.preview_required_severity())
    );
    let (_, regrep) = envelope(&fr("incoming/erreurSansCode.xml"));
    let EdmDocument::QueryResponse(r) = parse("erreurSansCode", &regrep) else {
        panic!()
    };
    assert_eq!(r.exceptions[0].code, None);
    assert!(r.exceptions[0].requires_preview());
}

#[test]
fn non_edm_payload_is_refused() {
    let err = oots::parse_edm(&read_fixture(&birth("oots_request_header.xml"))).unwrap_err();
    assert!(
        matches!(err, oots::EdmError::UnexpectedRoot { .. }),
        "{err}"
    );
    let err = oots::parse_edm(
        b"<query:QueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\"/>",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            oots::EdmError::MissingAttribute {
                attribute: "id",
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        oots::parse_edm(b"<a>"),
        Err(oots::EdmError::Xml(_))
    ));
}
