//! P-Mode selection: every EBMS outcome, submissions, and `pmode explain`.

use std::path::PathBuf;
use std::process::Command;

use as4gw::ebms::codes::EbmsCode;
use as4gw::pmode::matching::{
    explain_inbound, explain_submission, match_inbound, match_submission, MatchError, Matched,
    MessageKey, Submission,
};
use as4gw::pmode::model::{Agreement, PMode, PartyId, Service};
use as4gw::pmode::{PModeSet, SetContext};
use time::OffsetDateTime;

use crate::support::{as4gw_bin, read_fixture};

const PT: &str = "urn:oasis:names:tc:ebcore:partyid-type:unregistered:oots";
const ROLE: &str = "http://sdg.europa.eu/edelivery/gateway";
const STYPE: &str = "urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn presets() -> PModeSet {
    PModeSet::load_dir(
        &root().join("pmodes"),
        &SetContext {
            backends: Some(vec!["oots".into()]),
        },
        OffsetDateTime::now_utc(),
    )
    .unwrap_or_else(|d| panic!("{d}"))
}

fn party(id: &str) -> PartyId {
    PartyId {
        id: id.into(),
        id_type: Some(PT.into()),
    }
}

fn key(from: &str, to: &str, action: &str) -> MessageKey {
    MessageKey {
        from: party(from),
        from_role: ROLE.into(),
        to: party(to),
        to_role: ROLE.into(),
        service: Service {
            value: "QueryManager".into(),
            service_type: Some(STYPE.into()),
        },
        action: action.into(),
        agreement: None,
    }
}

#[test]
fn inbound_exact_match_selects_pmode_and_leg() {
    let set = presets();
    let m = match_inbound(&set, &key("red_gw", "blue_gw", "ExecuteQueryRequest")).unwrap();
    assert_eq!(m.pmode.id, "oots-red-blue");
    assert_eq!(m.leg().name, "ootsRequestLeg");
    assert!(m.leg().compress);
    let m = match_inbound(&set, &key("blue_gw", "red_gw", "ExecuteQueryResponse")).unwrap();
    assert_eq!(
        (m.pmode.id.as_str(), m.leg().name.as_str(), m.leg().compress),
        ("oots-blue-red", "ootsResponseLeg", false)
    );
}

#[test]
fn agreement_selects_the_v2_pmode() {
    let set = presets();
    let mut k = key("red_gw", "blue_gw", "ExceptionResponse");
    k.agreement = Some(Agreement {
        value: "urn:as4gw:demo:agreement:oots-v2-edelivery-2.0".into(),
        agreement_type: None,
    });
    let m = match_inbound(&set, &k).unwrap();
    assert_eq!(m.pmode.id, "oots-v2-red-blue");
    assert_eq!(m.pmode.security.suite, as4gw::pmode::Suite::Edelivery20);
}

#[test]
fn unknown_action_service_or_party_is_ebms_0001() {
    let set = presets();
    for k in [
        key("red_gw", "blue_gw", "NoSuchAction"),
        key("green_gw", "blue_gw", "ExecuteQueryRequest"),
        MessageKey {
            service: Service {
                value: "Other".into(),
                service_type: Some(STYPE.into()),
            },
            ..key("red_gw", "blue_gw", "ExecuteQueryRequest")
        },
        MessageKey {
            service: Service {
                value: "QueryManager".into(),
                service_type: None,
            },
            ..key("red_gw", "blue_gw", "ExecuteQueryRequest")
        },
    ] {
        let e = match_inbound(&set, &k).unwrap_err();
        assert_eq!(e.code, EbmsCode::ValueNotRecognized, "{k:?}: {e}");
    }
}

#[test]
fn near_misses_name_the_differing_field() {
    let set = presets();
    let e = match_inbound(&set, &key("red_gw", "blue_gw", "ExecuteQueryRequestX")).unwrap_err();
    assert_eq!(e.code, EbmsCode::ValueNotRecognized);
    assert!(!e.near_misses.is_empty());
    assert!(
        e.near_misses
            .iter()
            .all(|n| n.diffs.iter().any(|d| d.field == "Action")),
        "{:?}",
        e.near_misses
    );
}

#[test]
fn wrong_role_or_agreement_is_ebms_0010() {
    let set = presets();
    let mut k = key("red_gw", "blue_gw", "ExecuteQueryRequest");
    k.from_role = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/initiator".into();
    let e = match_inbound(&set, &k).unwrap_err();
    assert_eq!(e.code, EbmsCode::ProcessingModeMismatch, "{e}");
    assert_eq!(e.near_misses[0].diffs[0].field, "From/Role");

    let mut k = key("red_gw", "blue_gw", "ExecuteQueryRequest");
    k.agreement = Some(Agreement {
        value: "urn:unknown:agreement".into(),
        agreement_type: None,
    });
    let e = match_inbound(&set, &k).unwrap_err();
    assert_eq!(e.code, EbmsCode::ProcessingModeMismatch, "{e}");
}

#[test]
fn two_matching_pmodes_are_ebms_0003() {
    // A validated set cannot hold two equal legs; a programmatic set can, and matching must
    // still refuse to guess.
    let set = presets();
    let p: PMode = (**set.get("oots-red-blue").unwrap()).clone();
    let mut q = p.clone();
    q.id = "copy".into();
    let dup = PModeSet::from_pmodes(vec![p, q]);
    let e = match_inbound(&dup, &key("red_gw", "blue_gw", "ExecuteQueryRequest")).unwrap_err();
    assert_eq!(e.code, EbmsCode::ValueInconsistent);
    assert_eq!(e.ambiguous.len(), 2);
}

#[test]
fn submissions_by_id_and_by_fields() {
    let set = presets();
    let red = party("red_gw");
    let by_id = Submission {
        pmode: Some("oots-red-blue".into()),
        action: "ExecuteQueryRequest".into(),
        ..Default::default()
    };
    let m = match_submission(&set, &red, &by_id).unwrap();
    assert_eq!(
        (m.pmode.id.as_str(), m.leg().name.as_str()),
        ("oots-red-blue", "ootsRequestLeg")
    );

    // By fields: red sending to blue without agreement → the 1.15 P-Mode only.
    let by_fields = Submission {
        action: "ExecuteQueryResponse".into(),
        to: Some(party("blue_gw")),
        ..Default::default()
    };
    assert_eq!(
        match_submission(&set, &red, &by_fields).unwrap().pmode.id,
        "oots-red-blue"
    );

    // Unknown id → 0001; id of a P-Mode where red is not the sender → 0001 (From differs).
    let e = match_submission(
        &set,
        &red,
        &Submission {
            pmode: Some("nope".into()),
            action: "x".into(),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code, EbmsCode::ValueNotRecognized);
    let e = match_submission(
        &set,
        &red,
        &Submission {
            pmode: Some("oots-blue-red".into()),
            action: "ExecuteQueryRequest".into(),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code, EbmsCode::ValueNotRecognized);

    // No agreement in the submission means "no AgreementRef", so the v2 P-Mode (which has
    // one) is not a candidate; naming it selects the v2 P-Mode.
    let sub = Submission {
        action: "ExecuteQueryRequest".into(),
        ..Default::default()
    };
    assert_eq!(
        match_submission(&set, &red, &sub).unwrap().pmode.id,
        "oots-red-blue"
    );
    let v2 = Agreement {
        value: "urn:as4gw:demo:agreement:oots-v2-edelivery-2.0".into(),
        agreement_type: None,
    };
    let sub = Submission {
        action: "ExecuteQueryRequest".into(),
        agreement: Some(v2),
        ..Default::default()
    };
    assert_eq!(
        match_submission(&set, &red, &sub).unwrap().pmode.id,
        "oots-v2-red-blue"
    );
}

#[test]
fn key_from_soap_envelope_and_fixture_header() {
    let xml = std::fs::read(root().join("tests/it/pmode/messages/request-red-blue.xml")).unwrap();
    let k = MessageKey::from_envelope(&xml).unwrap();
    assert_eq!(k, key("red_gw", "blue_gw", "ExecuteQueryRequest"));
    // The French OOTS header (bare eb:Messaging): AP_FR_01 -> AP_DE_01, unknown to the presets.
    let k = MessageKey::from_envelope(&read_fixture(
        "oots/oots-france/fixtures/reference/messages/requete.entete.xml",
    ))
    .unwrap();
    assert_eq!(k.from.id, "AP_FR_01");
    assert_eq!(k.action, "ExecuteQueryRequest");
    assert_eq!(
        match_inbound(&presets(), &k).unwrap_err().code,
        EbmsCode::ValueNotRecognized
    );
}

#[test]
fn key_from_parsed_user_message_equals_key_from_envelope() {
    let xml = std::fs::read(root().join("tests/it/pmode/messages/request-red-blue.xml")).unwrap();
    let env = as4gw::ebms::soap::parse_envelope(&xml).unwrap();
    let um = env.messaging.unwrap().messaging.user_message.unwrap();
    assert_eq!(
        MessageKey::from(&um),
        MessageKey::from_envelope(&xml).unwrap()
    );
}

fn explain(file: &str) -> (i32, String) {
    let out = Command::new(as4gw_bin())
        .current_dir(root())
        .args([
            "pmode",
            "explain",
            &format!("tests/it/pmode/messages/{file}"),
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn explain_cli() {
    let (rc, out) = explain("request-red-blue.xml");
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("match: P-Mode \"oots-red-blue\""), "{out}");
    assert!(out.contains("leg \"ootsRequestLeg\""), "{out}");
    assert!(out.contains("AgreementRef: expected \"urn:as4gw:demo:agreement:oots-v2-edelivery-2.0\", message has \"(none)\""), "{out}");

    let (rc, out) = explain("request-wrong-role.xml");
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("no match: EBMS:0010 ProcessingModeMismatch"),
        "{out}"
    );
    assert!(
        out.contains("From/Role: expected \"http://sdg.europa.eu/edelivery/gateway\""),
        "{out}"
    );

    let (rc, out) = explain("unknown-action.xml");
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("no match: EBMS:0001 ValueNotRecognized"),
        "{out}"
    );
    assert!(
        out.contains(
            "Action: expected \"ExecuteQueryRequest\", message has \"ExecuteQueryRequestX\""
        ),
        "{out}"
    );

    let (rc, out) = explain("submission-red-blue.toml");
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("match: P-Mode \"oots-red-blue\""), "{out}");
    assert!(
        out.contains("this gateway sends; endpoint https://127.0.0.1:9443/as4"),
        "{out}"
    );

    let (rc, out) = explain("submission-by-id.json");
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("P-Mode \"oots-v2-red-blue\"") && out.contains("ootsErrorLeg"),
        "{out}"
    );
}

/// The selection's fast path (one leg matches: decided without working out near misses) gives
/// what the full selection gives, for every preset leg's own key and for keys that differ from
/// it in one field, including values that only render alike (`a[b]` without a type against `a`
/// of type `b`).
#[test]
fn fast_selection_equals_the_explained_selection() {
    let set = presets();
    let outcome = |r: Result<Matched, MatchError>| match r {
        Ok(m) => Ok((m.pmode.id.clone(), m.leg_index)),
        Err(e) => Err(e),
    };
    let mut keys = Vec::new();
    for p in set.pmodes() {
        for leg in &p.legs {
            let (s, r) = p.sender_receiver(leg);
            let k = MessageKey {
                from: s.party_id.clone(),
                from_role: s.role.clone(),
                to: r.party_id.clone(),
                to_role: r.role.clone(),
                service: p.service.clone(),
                action: leg.action.clone(),
                agreement: p.agreement.clone(),
            };
            let rendered_alike = |id: &PartyId| PartyId {
                id: match &id.id_type {
                    Some(t) => format!("{}[{t}]", id.id),
                    None => id.id.clone(),
                },
                id_type: None,
            };
            let mut v = vec![k.clone()];
            let mut m = k.clone();
            m.from = rendered_alike(&k.from);
            v.push(m);
            let mut m = k.clone();
            m.to.id.push('x');
            v.push(m);
            let mut m = k.clone();
            m.from_role.push('x');
            v.push(m);
            let mut m = k.clone();
            m.service.service_type = None;
            v.push(m);
            let mut m = k.clone();
            m.action.push('x');
            v.push(m);
            let mut m = k.clone();
            m.agreement = match &k.agreement {
                Some(_) => None,
                None => Some(Agreement {
                    value: "urn:x".into(),
                    agreement_type: None,
                }),
            };
            v.push(m);
            keys.extend(v);
        }
    }
    let mut ok = 0;
    for k in &keys {
        let fast = outcome(match_inbound(&set, k));
        ok += usize::from(fast.is_ok());
        assert_eq!(fast, outcome(explain_inbound(&set, k).0), "{k:?}");
        let own = k.from.clone();
        let sub = Submission {
            pmode: None,
            action: k.action.clone(),
            service: Some(k.service.clone()),
            to: Some(k.to.clone()),
            agreement: k.agreement.clone(),
        };
        assert_eq!(
            outcome(match_submission(&set, &own, &sub)),
            outcome(explain_submission(&set, &own, &sub).0),
            "{sub:?}"
        );
    }
    // Both outcomes occur: the comparison covers the fast path and the fallback.
    assert!(ok > 0 && ok < keys.len(), "{ok} of {}", keys.len());
}
