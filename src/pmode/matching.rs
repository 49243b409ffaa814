//! Selecting the P-Mode and leg for an inbound message or an outbound submission.
//!
//! # The rule (documented in `docs/pmodes.md` § Matching)
//!
//! Inbound selection uses exactly the fields eDelivery names: From/To PartyId (+type) and Role,
//! Service (+type), Action and AgreementRef (digest §2.3, [ED115] §3.2.2). Every leg of every
//! P-Mode is compared field by field:
//!
//! 1. exactly one leg equal on all fields → that P-Mode and leg;
//! 2. more than one → **EBMS:0003 ValueInconsistent** (the header does not single out one
//!    agreement; ebMS3 §6.7.1 "inconsistent with … the P-Mode"). A validated set cannot
//!    contain two such legs; the check guards programmatic sets and submissions;
//! 3. none, but some leg agrees on the *identifying* fields — both PartyIds, Service, Action —
//!    and differs only in Role or AgreementRef → **EBMS:0010 ProcessingModeMismatch**: the
//!    exchange is known, but the header contradicts its P-Mode (ebMS3 §6.7.1; AS4 §2.1.1
//!    requires 0010 for such non-security mismatches, digest §2.6);
//! 4. otherwise → **EBMS:0001 ValueNotRecognized**: a party, service or action no P-Mode knows
//!    (ebMS3 §6.7.1 "e.g. unknown Service/Action/AgreementRef", digest §2.6).
//!
//! Matching depends only on [`MessageKey`], not on the ebMS model's internals; the reception
//! pipeline fills it from the parsed `eb:UserMessage`.

use std::fmt;
use std::sync::Arc;

use super::model::{Agreement, Leg, PMode, PartyId, Service};
use super::set::PModeSet;
use crate::ebms::codes::EbmsCode;
use crate::ns;
use crate::xml::Document;

/// The selection fields of an inbound `eb:UserMessage` (digest §2.3).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
pub struct MessageKey {
    pub from: PartyId,
    pub from_role: String,
    pub to: PartyId,
    pub to_role: String,
    pub service: Service,
    pub action: String,
    pub agreement: Option<Agreement>,
}

/// What a backend submits: a P-Mode id, or enough of service/action/parties to find one.
/// The sender is always this gateway (`own`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Submission {
    #[serde(default)]
    pub pmode: Option<String>,
    pub action: String,
    #[serde(default)]
    pub service: Option<Service>,
    #[serde(default)]
    pub to: Option<PartyId>,
    #[serde(default)]
    pub agreement: Option<Agreement>,
}

/// The selected P-Mode and leg. Holds the `Arc` so a message keeps the P-Mode it started with
/// across a reload.
#[derive(Debug, Clone)]
pub struct Matched {
    pub pmode: Arc<PMode>,
    pub leg_index: usize,
}

impl Matched {
    pub fn leg(&self) -> &Leg {
        &self.pmode.legs[self.leg_index]
    }
}

/// One field that differed between the message and a P-Mode leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub expected: String,
    pub got: String,
}

/// A leg that almost matched, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearMiss {
    pub pmode_id: String,
    pub leg: String,
    pub diffs: Vec<FieldDiff>,
}

/// No unique P-Mode: the ebMS error to return, a sentence, and the closest legs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", code.code())]
pub struct MatchError {
    pub code: EbmsCode,
    pub detail: String,
    pub near_misses: Vec<NearMiss>,
    /// For EBMS:0003, the P-Mode/leg pairs that all matched.
    pub ambiguous: Vec<(String, String)>,
}

/// Selection fields as optional criteria (a submission need not name all of them).
#[derive(Debug, Default)]
struct Criteria {
    pmode_id: Option<String>,
    from: Option<PartyId>,
    from_role: Option<String>,
    to: Option<PartyId>,
    to_role: Option<String>,
    service: Option<Service>,
    action: Option<String>,
    agreement: Option<Option<Agreement>>,
}

/// Fields whose mismatch alone means "known exchange, wrong header" (rule 3).
const SOFT_FIELDS: [&str; 3] = ["From/Role", "To/Role", "AgreementRef"];

fn show_service(s: &Service) -> String {
    match &s.service_type {
        Some(t) => format!("{}[{}]", s.value, t),
        None => s.value.clone(),
    }
}

fn show_agreement(a: &Option<Agreement>) -> String {
    match a {
        None => "(none)".into(),
        Some(Agreement {
            value,
            agreement_type: Some(t),
        }) => format!("{value}[{t}]"),
        Some(Agreement {
            value,
            agreement_type: None,
        }) => value.clone(),
    }
}

fn diffs(p: &PMode, leg: &Leg, c: &Criteria) -> Vec<FieldDiff> {
    let (s, r) = p.sender_receiver(leg);
    let mut d = Vec::new();
    let mut cmp = |field: &'static str, expected: String, got: Option<String>| {
        if let Some(got) = got {
            if got != expected {
                d.push(FieldDiff {
                    field,
                    expected,
                    got,
                });
            }
        }
    };
    cmp("P-Mode id", p.id.clone(), c.pmode_id.clone());
    cmp(
        "From/PartyId",
        s.party_id.to_string(),
        c.from.as_ref().map(|x| x.to_string()),
    );
    cmp("From/Role", s.role.clone(), c.from_role.clone());
    cmp(
        "To/PartyId",
        r.party_id.to_string(),
        c.to.as_ref().map(|x| x.to_string()),
    );
    cmp("To/Role", r.role.clone(), c.to_role.clone());
    cmp(
        "Service",
        show_service(&p.service),
        c.service.as_ref().map(show_service),
    );
    cmp("Action", leg.action.clone(), c.action.clone());
    cmp(
        "AgreementRef",
        show_agreement(&p.agreement),
        c.agreement.as_ref().map(show_agreement),
    );
    d
}

/// `a` rendered like [`PartyId`]'s `Display` (`id[type]`) equals `b` rendered so, compared
/// without building either string: [`diffs`] compares the rendered forms, and the fast path of
/// [`select`] must agree with it exactly.
fn rendered_eq(a: (&str, Option<&str>), b: (&str, Option<&str>)) -> bool {
    fn bytes<'a>((v, t): (&'a str, Option<&'a str>)) -> impl Iterator<Item = u8> + 'a {
        let t = t.into_iter().flat_map(|t| {
            std::iter::once(b'[')
                .chain(t.bytes())
                .chain(std::iter::once(b']'))
        });
        v.bytes().chain(t)
    }
    bytes(a).eq(bytes(b))
}

fn party_key(p: &PartyId) -> (&str, Option<&str>) {
    (&p.id, p.id_type.as_deref())
}

fn service_key(s: &Service) -> (&str, Option<&str>) {
    (&s.value, s.service_type.as_deref())
}

/// As [`show_agreement`] renders it.
fn agreement_key(a: &Option<Agreement>) -> (&str, Option<&str>) {
    match a {
        None => ("(none)", None),
        Some(a) => (&a.value, a.agreement_type.as_deref()),
    }
}

/// `diffs(p, leg, c).is_empty()` without formatting a string per field and leg.
fn leg_matches(p: &PMode, leg: &Leg, c: &Criteria) -> bool {
    let (s, r) = p.sender_receiver(leg);
    c.pmode_id.as_ref().is_none_or(|x| *x == p.id)
        && c.from
            .as_ref()
            .is_none_or(|x| rendered_eq(party_key(&s.party_id), party_key(x)))
        && c.from_role.as_ref().is_none_or(|x| *x == s.role)
        && c.to
            .as_ref()
            .is_none_or(|x| rendered_eq(party_key(&r.party_id), party_key(x)))
        && c.to_role.as_ref().is_none_or(|x| *x == r.role)
        && c.service
            .as_ref()
            .is_none_or(|x| rendered_eq(service_key(&p.service), service_key(x)))
        && c.action.as_ref().is_none_or(|x| *x == leg.action)
        && c.agreement
            .as_ref()
            .is_none_or(|x| rendered_eq(agreement_key(&p.agreement), agreement_key(x)))
}

/// The common case, exactly one leg matches, is decided without working out the near misses
/// that only an error or `pmode explain` shows: that took 3.6 % of a receiving gateway's CPU
/// per message (issue 8, perf). Anything else goes through [`select_explained`].
fn select(set: &PModeSet, c: &Criteria, what: &str) -> Result<Matched, MatchError> {
    let mut found = None;
    let mut count = 0usize;
    for p in set.pmodes() {
        for (i, leg) in p.legs.iter().enumerate() {
            if leg_matches(p, leg, c) {
                count += 1;
                found = Some((p, i));
            }
        }
    }
    match (count, found) {
        (1, Some((p, leg_index))) => Ok(Matched {
            pmode: Arc::clone(p),
            leg_index,
        }),
        _ => select_explained(set, c, what).0,
    }
}

/// The selection result plus the closest non-matching legs (exactly one differing field).
fn select_explained(
    set: &PModeSet,
    c: &Criteria,
    what: &str,
) -> (Result<Matched, MatchError>, Vec<NearMiss>) {
    let mut exact = Vec::new();
    let mut misses = Vec::new();
    for p in set.pmodes() {
        for (i, leg) in p.legs.iter().enumerate() {
            let d = diffs(p, leg, c);
            if d.is_empty() {
                exact.push(Matched {
                    pmode: Arc::clone(p),
                    leg_index: i,
                });
            } else {
                misses.push(NearMiss {
                    pmode_id: p.id.clone(),
                    leg: leg.name.clone(),
                    diffs: d,
                });
            }
        }
    }
    misses.sort_by_key(|m| m.diffs.len());
    let best = misses.first().map(|m| m.diffs.len()).unwrap_or(0);
    let near: Vec<NearMiss> = misses
        .iter()
        .filter(|m| m.diffs.len() == best && best <= 3)
        .take(5)
        .cloned()
        .collect();
    let close: Vec<NearMiss> = misses
        .iter()
        .filter(|m| m.diffs.len() <= 1)
        .take(5)
        .cloned()
        .collect();
    let result = match exact.len() {
        1 => Ok(exact.remove(0)),
        0 => {
            let soft = misses
                .iter()
                .find(|m| m.diffs.iter().all(|d| SOFT_FIELDS.contains(&d.field)));
            match soft {
                Some(m) => Err(MatchError {
                    code: EbmsCode::ProcessingModeMismatch,
                    detail: format!(
                        "{what} belongs to P-Mode {:?} leg {:?} but {} differ(s) from it",
                        m.pmode_id,
                        m.leg,
                        m.diffs
                            .iter()
                            .map(|d| d.field)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    near_misses: vec![m.clone()],
                    ambiguous: vec![],
                }),
                None => Err(MatchError {
                    code: EbmsCode::ValueNotRecognized,
                    detail: format!("no P-Mode matches the {what}"),
                    near_misses: near,
                    ambiguous: vec![],
                }),
            }
        }
        _ => Err(MatchError {
            code: EbmsCode::ValueInconsistent,
            detail: format!("{} P-Mode legs match the {what}", exact.len()),
            near_misses: vec![],
            ambiguous: exact
                .iter()
                .map(|m| (m.pmode.id.clone(), m.leg().name.clone()))
                .collect(),
        }),
    };
    (result, close)
}

/// Selects the P-Mode and leg of an inbound message (rule in the module documentation).
pub fn match_inbound(set: &PModeSet, key: &MessageKey) -> Result<Matched, MatchError> {
    select(set, &inbound_criteria(key), "message")
}

/// [`match_inbound`] plus the legs that differ in exactly one field (`pmode explain`).
pub fn explain_inbound(
    set: &PModeSet,
    key: &MessageKey,
) -> (Result<Matched, MatchError>, Vec<NearMiss>) {
    select_explained(set, &inbound_criteria(key), "message")
}

/// [`match_submission`] plus the closest legs (`pmode explain`).
pub fn explain_submission(
    set: &PModeSet,
    own: &PartyId,
    sub: &Submission,
) -> (Result<Matched, MatchError>, Vec<NearMiss>) {
    match match_submission_precheck(set, sub) {
        Err(e) => (Err(e), vec![]),
        Ok(()) => select_explained(set, &submission_criteria(own, sub), "submission"),
    }
}

fn inbound_criteria(key: &MessageKey) -> Criteria {
    Criteria {
        pmode_id: None,
        from: Some(key.from.clone()),
        from_role: Some(key.from_role.clone()),
        to: Some(key.to.clone()),
        to_role: Some(key.to_role.clone()),
        service: Some(key.service.clone()),
        action: Some(key.action.clone()),
        agreement: Some(key.agreement.clone()),
    }
}

/// Selects the P-Mode and leg for a submission sent by `own` (this gateway's party).
pub fn match_submission(
    set: &PModeSet,
    own: &PartyId,
    sub: &Submission,
) -> Result<Matched, MatchError> {
    match_submission_precheck(set, sub)?;
    select(set, &submission_criteria(own, sub), "submission")
}

fn match_submission_precheck(set: &PModeSet, sub: &Submission) -> Result<(), MatchError> {
    if let Some(id) = &sub.pmode {
        if set.get(id).is_none() {
            return Err(MatchError {
                code: EbmsCode::ValueNotRecognized,
                detail: format!("unknown P-Mode id {id:?}"),
                near_misses: vec![],
                ambiguous: vec![],
            });
        }
    }
    Ok(())
}

fn submission_criteria(own: &PartyId, sub: &Submission) -> Criteria {
    Criteria {
        pmode_id: sub.pmode.clone(),
        from: Some(own.clone()),
        from_role: None,
        to: sub.to.clone(),
        to_role: None,
        service: sub.service.clone(),
        action: Some(sub.action.clone()),
        // Without a P-Mode id, an absent agreement means "no AgreementRef": the producer sets
        // it (digest §3.4 Common Usage Profile), so such a submission must not land on a
        // P-Mode that sends one. With a P-Mode id, the P-Mode supplies it.
        agreement: match (&sub.pmode, &sub.agreement) {
            (Some(_), None) => None,
            (_, a) => Some(a.clone()),
        },
    }
}

impl fmt::Display for NearMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P-Mode {:?} leg {:?}:", self.pmode_id, self.leg)?;
        for d in &self.diffs {
            write!(
                f,
                "\n    {}: expected {:?}, message has {:?}",
                d.field, d.expected, d.got
            )?;
        }
        Ok(())
    }
}

/// Errors reading selection fields from a SOAP envelope.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("XML: {0}")]
    Xml(#[from] crate::xml::XmlError),
    #[error("no eb:Messaging/eb:UserMessage/{0} in the envelope")]
    Missing(&'static str),
}

impl MessageKey {
    /// Reads the selection fields from a SOAP envelope (the first `eb:UserMessage`). The ebMS
    /// model on `main` does the full parse; this reads only what matching needs. With several
    /// PartyIds the first is taken: the profile check that only one is allowed (digest §2.3)
    /// belongs to the header validation, not to P-Mode selection.
    pub fn from_envelope(xml: &[u8]) -> Result<MessageKey, KeyError> {
        let doc = Document::parse(xml)?;
        let um = doc
            .elements()
            .find(|n| n.is(ns::EB, "UserMessage"))
            .ok_or(KeyError::Missing("UserMessage"))?;
        let party_info = um
            .child(ns::EB, "PartyInfo")
            .ok_or(KeyError::Missing("PartyInfo"))?;
        let side = |name: &'static str| -> Result<(PartyId, String), KeyError> {
            let el = party_info
                .child(ns::EB, name)
                .ok_or(KeyError::Missing(name))?;
            let pid = el
                .child(ns::EB, "PartyId")
                .ok_or(KeyError::Missing("PartyId"))?;
            let role = el
                .child(ns::EB, "Role")
                .map(|r| r.text().trim().to_string())
                .unwrap_or_else(|| ns::DEFAULT_ROLE.to_string());
            Ok((
                PartyId {
                    id: pid.text().trim().to_string(),
                    id_type: pid.attr(None, "type").map(str::to_string),
                },
                role,
            ))
        };
        let (from, from_role) = side("From")?;
        let (to, to_role) = side("To")?;
        let collab = um
            .child(ns::EB, "CollaborationInfo")
            .ok_or(KeyError::Missing("CollaborationInfo"))?;
        let svc = collab
            .child(ns::EB, "Service")
            .ok_or(KeyError::Missing("Service"))?;
        let action = collab
            .child(ns::EB, "Action")
            .ok_or(KeyError::Missing("Action"))?;
        let agreement = collab.child(ns::EB, "AgreementRef").map(|a| Agreement {
            value: a.text().trim().to_string(),
            agreement_type: a.attr(None, "type").map(str::to_string),
        });
        Ok(MessageKey {
            from,
            from_role,
            to,
            to_role,
            service: Service {
                value: svc.text().trim().to_string(),
                service_type: svc.attr(None, "type").map(str::to_string),
            },
            action: action.text().trim().to_string(),
            agreement,
        })
    }
}

impl From<&crate::ebms::model::UserMessage> for MessageKey {
    /// The selection fields of a parsed `eb:UserMessage`. The first PartyId is used: the
    /// one-PartyId rule (digest §2.3) is the header validator's job.
    fn from(um: &crate::ebms::model::UserMessage) -> MessageKey {
        let party = |p: &crate::ebms::model::Party| {
            p.party_ids
                .first()
                .map(|id| PartyId {
                    id: id.value.clone(),
                    id_type: id.type_.clone(),
                })
                .unwrap_or(PartyId {
                    id: String::new(),
                    id_type: None,
                })
        };
        let c = &um.collaboration_info;
        MessageKey {
            from: party(&um.party_info.from),
            from_role: um.party_info.from.role.clone(),
            to: party(&um.party_info.to),
            to_role: um.party_info.to.role.clone(),
            service: Service {
                value: c.service.value.clone(),
                service_type: c.service.type_.clone(),
            },
            action: c.action.clone(),
            agreement: c.agreement_ref.as_ref().map(|a| Agreement {
                value: a.value.clone(),
                agreement_type: a.type_.clone(),
            }),
        }
    }
}
