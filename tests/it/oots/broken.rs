//! Broken variants of the official samples: each must fail with exactly the expected rules,
//! and a broken request must be answered with the EDM:ERR:0003 error response.

use as4gw::oots::{
    self, EdmDocument, EdmErrorCode, HeaderFields, MessageProperty, PayloadKind, Rule,
    ACTION_EXCEPTION, ACTION_REQUEST, ACTION_RESPONSE,
};

use super::common::*;
use crate::support::read_fixture;

struct Base {
    header: HeaderFields,
    body: String,
}

fn v2_request() -> Base {
    Base {
        header: header(&fr("reference/messages/requete.entete.xml")),
        body: String::from_utf8(read_fixture(&fr("reference/messages/requete.xml")))
            .expect("utf-8"),
    }
}

fn v2_response() -> Base {
    Base {
        header: header(&fr("reference/messages/reponse.entete.xml")),
        body: String::from_utf8(read_fixture(&fr("reference/messages/reponse.xml")))
            .expect("utf-8"),
    }
}

fn v2_exception() -> Base {
    Base {
        header: header(&fr("reference/messages/erreur.entete.xml")),
        body: String::from_utf8(read_fixture(&fr("reference/messages/erreur.xml"))).expect("utf-8"),
    }
}

fn v1_request2() -> Base {
    Base {
        header: header(&education("oots_request_header.xml")),
        body: String::from_utf8(read_fixture(&education("oots_request2_after_preview.xml")))
            .expect("utf-8"),
    }
}

fn v1_request() -> Base {
    Base {
        header: header(&birth("oots_request_header.xml")),
        body: String::from_utf8(read_fixture(&birth("oots_request.xml"))).expect("utf-8"),
    }
}

fn drop_prop(h: &mut HeaderFields, name: &str) {
    let before = h.properties.len();
    h.properties.retain(|p| p.name != name);
    assert_eq!(before, h.properties.len() + 1, "variant must remove {name}");
}

fn set_prop(h: &mut HeaderFields, name: &str, value: &str) {
    let p = h
        .properties
        .iter_mut()
        .find(|p| p.name == name)
        .expect("property present");
    p.value = value.to_owned();
}

fn replace(body: &str, from: &str, to: &str) -> String {
    assert!(
        body.contains(from),
        "variant must change the payload: {from:?}"
    );
    body.replace(from, to)
}

type Variant = (&'static str, Base, &'static [Rule]);

fn variants() -> Vec<Variant> {
    let mut v: Vec<Variant> = Vec::new();

    let mut b = v2_request();
    drop_prop(&mut b.header, "finalRecipient");
    v.push(("missing finalRecipient", b, &[Rule::FinalRecipient]));

    let mut b = v2_request();
    drop_prop(&mut b.header, "originalSender");
    v.push(("missing originalSender", b, &[Rule::OriginalSender]));

    let mut b = v1_request();
    set_prop(&mut b.header, "finalRecipient", " ");
    v.push(("empty finalRecipient (v1)", b, &[Rule::FinalRecipient]));

    let mut b = v2_request();
    b.header.action = "ExecuteQuery".into();
    v.push(("unknown action", b, &[Rule::Action]));

    let mut b = v2_request();
    b.header.action = ACTION_RESPONSE.into();
    v.push((
        "response action with a request payload",
        b,
        &[Rule::ActionPayload],
    ));

    let mut b = v2_response();
    b.header.action = ACTION_REQUEST.into();
    v.push((
        "request action with a response payload",
        b,
        &[Rule::ActionPayload],
    ));

    let mut b = v2_exception();
    b.header.action = ACTION_RESPONSE.into();
    v.push((
        "response action with an exception payload",
        b,
        &[Rule::ActionPayload],
    ));

    let mut b = v2_response();
    b.header.action = ACTION_EXCEPTION.into();
    v.push((
        "exception action with an evidence payload",
        b,
        &[Rule::ActionPayload],
    ));

    let mut b = v2_request();
    set_prop(&mut b.header, "SpecificationId", "oots-edm:v1.0");
    v.push((
        "SpecificationId disagreeing with the payload",
        b,
        &[Rule::SpecificationIdMismatch],
    ));

    let mut b = v1_request();
    b.header.properties.push(MessageProperty {
        name: "SpecificationId".into(),
        value: "oots-edm:v2.0".into(),
        r#type: None,
    });
    v.push((
        "v2 SpecificationId on a v1.0 payload",
        b,
        &[Rule::SpecificationIdMismatch],
    ));

    let mut b = v2_response();
    b.header.parts.truncate(1);
    v.push((
        "dangling RepositoryItemRef (part missing)",
        b,
        &[Rule::RepositoryItemRef],
    ));

    let mut b = v2_response();
    b.body = replace(
        &b.body,
        "xlink:href=\"cid:1a2b3c4d-0000-4000-8000-000000000003@pdf.oots.fr\"",
        "xlink:href=\"cid:other@pdf.oots.fr\"",
    );
    v.push((
        "dangling RepositoryItemRef (wrong cid)",
        b,
        &[Rule::RepositoryItemRef],
    ));

    let mut b = v2_request();
    b.header.from_role =
        "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/defaultRole".into();
    v.push(("wrong From role", b, &[Rule::FromRole]));

    let mut b = v1_request();
    b.header.to_role = "http://sdg.europa.eu/edelivery/gateway/".into();
    v.push(("wrong To role", b, &[Rule::ToRole]));

    let mut b = v2_request();
    b.header.service_type = Some("urn:oasis:names:tc:ebcore:ebrs:ebms:binding:2.0".into());
    v.push(("wrong service type", b, &[Rule::ServiceType]));

    let mut b = v1_request();
    b.header.service_type = None;
    v.push(("missing service type", b, &[Rule::ServiceType]));

    let mut b = v2_request();
    b.header.service = "LifecycleManager".into();
    v.push(("wrong service", b, &[Rule::Service]));

    let mut b = v2_request();
    drop_prop(&mut b.header, "ExchangeId");
    v.push(("missing ExchangeId on v2.0", b, &[Rule::ExchangeIdMissing]));

    let mut b = v2_response();
    set_prop(&mut b.header, "ExchangeId", "exchange-42");
    v.push(("non-UUID ExchangeId", b, &[Rule::ExchangeIdFormat]));

    let mut b = v2_exception();
    drop_prop(&mut b.header, "SpecificationId");
    v.push((
        "missing SpecificationId on v2.0",
        b,
        &[Rule::SpecificationIdMissing],
    ));

    let mut b = v2_response();
    b.header.parts.swap(0, 1);
    v.push((
        "first part not RegRep (parts swapped)",
        b,
        &[Rule::FirstPartRegRep, Rule::RepositoryItemRef],
    ));

    let mut b = v2_request();
    b.header.parts[0].mime_type = Some("application/xml".into());
    v.push((
        "first part with the wrong MimeType",
        b,
        &[Rule::FirstPartRegRep],
    ));

    let mut b = v1_request();
    b.header.parts.clear();
    v.push(("no payload part", b, &[Rule::FirstPartRegRep]));

    let mut b = v2_request();
    b.header.properties.iter_mut().for_each(|p| {
        if p.name == "finalRecipient" {
            p.r#type = None;
        }
    });
    v.push(("v2.0 finalRecipient without @type", b, &[Rule::PartyIdType]));

    let mut b = v2_request();
    b.header.conversation_id = Some("conversation-1".into());
    v.push((
        "v2.0 ConversationId not a UUID",
        b,
        &[Rule::ConversationIdFormat],
    ));

    let mut b = v2_request();
    b.body = replace(
        &b.body,
        "<rim:Value>oots-edm:v2.0</rim:Value>",
        "<rim:Value>oots-edm:v9.9</rim:Value>",
    );
    set_prop(&mut b.header, "SpecificationId", "oots-edm:v9.9");
    v.push(("unknown EDM version", b, &[Rule::PayloadSpecification]));

    let mut b = v1_request2();
    b.body = replace(
        &b.body,
        "<rim:Value>https://preview.space",
        "<rim:Value>http://preview.space",
    );
    v.push((
        "PreviewLocation not https",
        b,
        &[Rule::PreviewLocationHttps],
    ));

    let mut b = v2_request();
    let start = b
        .body
        .find("<rim:Slot name=\"Procedure\">")
        .expect("Procedure slot");
    let end = start + b.body[start..].find("</rim:Slot>").expect("slot end") + "</rim:Slot>".len();
    b.body.replace_range(start..end, "");
    v.push(("request without Procedure", b, &[Rule::RequestSlot]));

    let mut b = v2_request();
    b.header.from_role = String::new();
    b.header.to_role = String::new();
    v.push(("both roles missing", b, &[Rule::FromRole, Rule::ToRole]));

    v
}

#[test]
fn broken_variants_fail_with_the_expected_rule() {
    let vs = variants();
    assert!(vs.len() >= 15, "at least 15 variants");
    for (name, b, expected) in vs {
        let doc = oots::parse_edm(b.body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut exp = expected.to_vec();
        exp.sort_by_key(|r| r.id());
        assert_eq!(
            rules(&b.header, &doc),
            exp,
            "{name}: {:#?}",
            oots::check(&b.header, &doc)
        );
        // Every message names its rule.
        for viol in oots::check(&b.header, &doc) {
            assert!(viol.to_string().contains(viol.rule.id()), "{name}: {viol}");
            assert!(viol.to_string().contains("digest §"), "{name}: {viol}");
        }
    }
}

#[test]
fn broken_request_is_answered_with_edm_err_0003() {
    let mut b = v2_request();
    drop_prop(&mut b.header, "finalRecipient");
    let doc = oots::parse_edm(b.body.as_bytes()).expect("request");
    let violations = oots::check(&b.header, &doc);
    let EdmDocument::QueryRequest(req) = &doc else {
        panic!("request")
    };
    let resp = oots::invalid_request_response(
        req,
        &violations,
        None,
        "1a2b3c4d-0000-4000-8000-0000000000ff",
        "2026-08-06T10:00:00.000Z",
    );
    let xml = oots::write_response(&resp);
    let back = oots::parse_edm(&xml).expect("written error response parses");
    assert_eq!(back.kind(), PayloadKind::Exception);
    let EdmDocument::QueryResponse(r) = &back else {
        panic!("response")
    };
    assert_eq!(r, &resp);
    assert_eq!(r.request_id.as_deref(), Some(req.id.as_str()));
    assert_eq!(r.status, oots::RS_STATUS_FAILURE);
    let x = &r.exceptions[0];
    assert_eq!(x.error_code(), Some(EdmErrorCode::InvalidRequest));
    assert_eq!(x.exception_type, "InvalidRequestExceptionType");
    let detail = x.detail.as_deref().expect("detail names the rule");
    assert!(detail.contains(Rule::FinalRecipient.id()), "{detail}");
    // The requester (ER, not the intermediary platform) is copied without address.
    let er = r.evidence_requester.as_ref().expect("requester");
    assert_eq!(er.identifier.value, "00000000000002");
    assert!(er.address.is_none() && er.classification.is_none());

    // With an ExceptionResponse header in the reverse direction, the answer passes the rules.
    let mut h = b.header.clone();
    h.action = ACTION_EXCEPTION.into();
    h.properties.push(MessageProperty {
        name: "finalRecipient".into(),
        value: "00000000000002".into(),
        r#type: Some("urn:cef.eu:names:identifier:EAS:0009".into()),
    });
    assert_eq!(oots::check(&h, &back), vec![]);
}

/// The writer reproduces the official EDM:ERR:0003 sample from the same inputs.
#[test]
fn invalid_request_response_matches_the_official_sample() {
    let sample = read_fixture(&fr("reference/messages/erreurRequeteInvalide.xml"));
    let EdmDocument::QueryResponse(official) = oots::parse_edm(&sample).expect("sample") else {
        panic!()
    };
    let EdmDocument::QueryRequest(mut req) =
        oots::parse_edm(&read_fixture(&fr("reference/messages/requete.xml"))).expect("request")
    else {
        panic!()
    };
    req.id = official.request_id.clone().expect("requestId");
    req.evidence_requester[0].names = official
        .evidence_requester
        .as_ref()
        .expect("ER")
        .names
        .clone();
    let built = oots::invalid_request_response(
        &req,
        &[],
        official.error_provider.clone(),
        official
            .evidence_response_identifier
            .as_deref()
            .expect("id"),
        official.exceptions[0]
            .timestamp
            .as_deref()
            .expect("timestamp"),
    );
    assert_eq!(built, official);
    assert_same_structure(
        "erreurRequeteInvalide",
        &structure(&sample),
        &structure(&oots::write_response(&built)),
    );
}
