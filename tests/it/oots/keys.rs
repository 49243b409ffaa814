//! Correlation keys: a response is found from its request without the ConversationId.

use as4gw::oots::{
    self, correlation_keys, normalize_request_id, response_answers, CorrelationKeys, PayloadKind,
};

use super::common::*;
use crate::support::read_fixture;

fn keys_of(header_rel: &str, body_rel: &str) -> (CorrelationKeys, PayloadKind) {
    let h = header(header_rel);
    let d = parse(body_rel, &read_fixture(body_rel));
    (correlation_keys(&h, &d), d.kind())
}

fn keys_of_envelope(rel: &str) -> (CorrelationKeys, PayloadKind) {
    let (h, regrep) = envelope(rel);
    let d = parse(rel, &regrep);
    (correlation_keys(&h, &d), d.kind())
}

#[test]
fn v1_birth_response_answers_its_request() {
    let (rq, rqk) = keys_of(
        &birth("oots_request_header.xml"),
        &birth("oots_request.xml"),
    );
    let (rs, rsk) = keys_of(
        &birth("oots_response_header.xml"),
        &birth("oots_response.xml"),
    );
    assert_eq!(
        rq.request_id.as_deref(),
        Some("4ffb5281-179d-4578-adf2-39fd13ccc797")
    );
    assert_eq!(rq.exchange_id, None, "v1.0 has no ExchangeId");
    assert_eq!(
        rs.evidence_response_id.as_deref(),
        Some("166155eb-d7a7-4cac-9086-8a85f0116462")
    );
    assert!(response_answers(&rq, rqk, &rs, rsk));
    assert!(!response_answers(&rs, rsk, &rq, rqk), "direction matters");
}

#[test]
fn v1_preview_flow_pairs() {
    let req_h = education("oots_request_header.xml");
    let (r1, k1) = keys_of(&req_h, &education("oots_request1_preview.xml"));
    let (r2, k2) = keys_of(&req_h, &education("oots_request2_after_preview.xml"));
    let (ex, kx) = keys_of(
        &education("oots_response_header.xml"),
        &education("oots_exception_preview.xml"),
    );
    let (rs, ks) = keys_of(
        &education("oots_response_header.xml"),
        &education("oots_response.xml"),
    );
    assert!(
        response_answers(&r1, k1, &ex, kx),
        "exception answers the first request"
    );
    assert!(
        response_answers(&r2, k2, &rs, ks),
        "evidence answers the second request"
    );
    assert!(!response_answers(&r1, k1, &rs, ks));
    assert!(!response_answers(&r2, k2, &ex, kx));
    // The ConversationId is the same on all four; it cannot tell the pairs apart.
    assert_eq!(r1.conversation_id, rs.conversation_id);
}

#[test]
fn v2_domibus_captures_pair_by_request_id_and_exchange_id() {
    let (rq, k1) = keys_of_envelope(&fr("incoming/reel/requete.xml"));
    let (rs, k2) = keys_of_envelope(&fr("incoming/reel/reponseAvecPieceJointe.xml"));
    let (rq2, k3) = keys_of_envelope(&fr("incoming/reel/requete.demarcheInconnue.xml"));
    let (ex, k4) = keys_of_envelope(&fr("incoming/reel/erreurObjetIntrouvable.xml"));
    assert_eq!(
        rq.request_id.as_deref(),
        Some("cdd87e02-2bdc-4ce6-bdc9-79e05adae700")
    );
    assert_eq!(
        rq.exchange_id.as_deref(),
        Some("1647038b-7eaf-4711-b738-d5d83f96fa7b")
    );
    assert!(response_answers(&rq, k1, &rs, k2));
    assert!(response_answers(&rq2, k3, &ex, k4));
    assert!(!response_answers(&rq, k1, &ex, k4));
    assert!(!response_answers(&rq2, k3, &rs, k2));
    // Same request id but another exchange: not an answer.
    let mut other = rs.clone();
    other.exchange_id = Some("00000000-0000-4000-8000-000000000000".into());
    assert!(!response_answers(&rq, k1, &other, k2));
}

#[test]
fn request_ids_are_normalised() {
    assert_eq!(
        normalize_request_id("urn:uuid:4FFB5281-179D-4578-ADF2-39FD13CCC797"),
        normalize_request_id("4ffb5281-179d-4578-adf2-39fd13ccc797")
    );
    assert_eq!(normalize_request_id(" not-a-uuid "), "not-a-uuid");
    // The frozen reference messages were generated independently: their ids do not pair.
    let (rq, k1) = keys_of(
        &fr("reference/messages/requete.entete.xml"),
        &fr("reference/messages/requete.xml"),
    );
    let (rs, k2) = keys_of(
        &fr("reference/messages/reponse.entete.xml"),
        &fr("reference/messages/reponse.xml"),
    );
    assert!(!response_answers(&rq, k1, &rs, k2));
    assert!(oots::rules::is_uuid("1a2b3c4d-0000-4000-8000-000000000002"));
}
