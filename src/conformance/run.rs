//! Runs one scenario in a fresh [`World`] and judges the result against its expectations.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;

use crate::mime::{MimeWriter, PartBody};
use crate::msh::api::{PayloadIn, PropertyIn, SubmitRequest, Submitter};
use crate::msh::compress::gzip;
use crate::msh::keys::suite_of;
use crate::msh::outbound::prepare_submission;
use crate::msh::{Clock, Keyring};
use crate::security::crypto::AwsLc;
use crate::security::sign::{secure_outbound, SenderConfig};
use crate::security::{Attachment, KeyReference, Suite, TokenType};
use crate::store::{Direction, MessageStore, SqliteStore};

use super::scenario::{Delivered, Gateway, MutationKind, Outcome, PayloadSpec, Scenario};
use super::world::{Exchange, Side, World, RESENDS};

/// The verdict on one scenario.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub category: String,
    pub description: String,
    /// What failed; empty when the case passed.
    pub failures: Vec<String>,
    pub seconds: f64,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

const UNREGISTERED: &str = "urn:oasis:names:tc:ebcore:partyid-type:unregistered";

/// The bytes of a payload spec; `base` resolves `file`.
pub fn payload_bytes(base: &Path, p: &PayloadSpec) -> anyhow::Result<Vec<u8>> {
    match (&p.file, &p.text, &p.generate) {
        (Some(f), None, None) => {
            std::fs::read(base.join(f)).map_err(|e| anyhow::anyhow!("payload {f}: {e}"))
        }
        (None, Some(t), None) => Ok(t.clone().into_bytes()),
        (None, None, Some(g)) => {
            let (kind, n) = g
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("generate {g:?}: want kind:N"))?;
            let n: usize = n
                .parse()
                .map_err(|_| anyhow::anyhow!("generate {g:?}: N is not a number"))?;
            match kind {
                "regrep" => Ok(regrep(n)),
                "binary" => Ok(binary(n)),
                _ => anyhow::bail!("generate {g:?}: unknown kind (regrep, binary)"),
            }
        }
        _ => anyhow::bail!(
            "payload {}: give exactly one of file, text, generate",
            p.name
        ),
    }
}

fn regrep(n: usize) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\"?><query:QueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\">");
    for i in 0..n {
        s.push_str(&format!("<slot n=\"{i}\">value {i}</slot>"));
    }
    s.push_str("</query:QueryRequest>");
    s.into_bytes()
}

fn binary(n: usize) -> Vec<u8> {
    let mut x: u32 = 7;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

/// The properties submitted: the scenario's, plus the P-Mode's required ones unless given.
pub fn properties(s: &Scenario) -> Vec<PropertyIn> {
    let mut props: Vec<PropertyIn> = s
        .send
        .property
        .iter()
        .map(|p| PropertyIn {
            name: p.name.clone(),
            value: p.value.clone(),
            prop_type: p.prop_type.clone(),
        })
        .collect();
    if s.send.default_properties && !s.send.pmode.starts_with("ebms-test") {
        let (os, fr) = match s.send.from {
            Gateway::Red => ("urn:oots:red:sender", "urn:oots:blue:recipient"),
            Gateway::Blue => ("urn:oots:blue:sender", "urn:oots:red:recipient"),
        };
        let mut defaults = vec![
            (
                "originalSender",
                os.to_string(),
                Some(UNREGISTERED.to_string()),
            ),
            (
                "finalRecipient",
                fr.to_string(),
                Some(UNREGISTERED.to_string()),
            ),
        ];
        if s.send.pmode.contains("-v2-") {
            defaults.push(("ExchangeId", uuid::Uuid::new_v4().to_string(), None));
            defaults.push(("SpecificationId", "oots-edm:v2.0".to_string(), None));
        }
        for (n, v, t) in defaults {
            if !props.iter().any(|p| p.name == n) {
                props.push(PropertyIn {
                    name: n.to_string(),
                    value: v,
                    prop_type: t,
                });
            }
        }
    }
    props
}

async fn request(
    s: &Scenario,
    base: &Path,
    store: &SqliteStore,
) -> anyhow::Result<(SubmitRequest, Vec<(String, Vec<u8>)>)> {
    let mut payloads = Vec::new();
    let mut expected = Vec::new();
    for p in &s.send.payload {
        let data = payload_bytes(base, p)?;
        let file = store.spool().write_bytes(&data).await?;
        payloads.push(PayloadIn {
            part_name: p.name.clone(),
            mime_type: p.mime_type.clone(),
            properties: vec![],
            file,
        });
        expected.push((p.mime_type.clone(), data));
    }
    Ok((
        SubmitRequest {
            pmode_id: Some(s.send.pmode.clone()),
            action: Some(s.send.action.clone()),
            properties: properties(s),
            payloads,
            ..Default::default()
        },
        expected,
    ))
}

/// Runs `s` in a fresh pair of gateways.
pub async fn run_scenario(base: &Path, s: &Scenario) -> CaseResult {
    let t = Instant::now();
    let failures = match run_inner(base, s).await {
        Ok(f) => f,
        Err(e) => vec![format!("harness: {e:#}")],
    };
    CaseResult {
        name: s.name.clone(),
        category: s.category.clone(),
        description: s.description.clone(),
        failures,
        seconds: t.elapsed().as_secs_f64(),
    }
}

struct Observed {
    last: Option<Exchange>,
    message_id: Option<String>,
    sender: Option<(String, Option<String>, u32)>,
    wire: Option<Vec<u8>>,
}

async fn run_inner(base: &Path, s: &Scenario) -> anyhow::Result<Vec<String>> {
    let w = World::new(base).await?;
    let (tx, rx) = match s.send.from {
        Gateway::Red => (&w.red, &w.blue),
        Gateway::Blue => (&w.blue, &w.red),
    };
    let (req, expected_payloads) = request(s, base, &tx.store).await?;
    let kind = s.mutation.as_ref().map(|m| m.kind);
    let obs = if kind.is_some_and(MutationKind::crafted) {
        crafted(base, &w, tx, rx, &req, kind.unwrap_or(MutationKind::None)).await?
    } else {
        sent(&w, tx, req, s).await?
    };
    let mut f = Vec::new();
    let e = &s.expect;
    // the receiver's answer
    match (e.outcome, &obs.last) {
        (Outcome::None, Some(x)) => f.push(format!(
            "expected no answer, got HTTP {} {:?}",
            x.status, x.code
        )),
        (Outcome::None, None) => {}
        (_, None) => f.push("the receiver never answered".into()),
        (Outcome::Receipt, Some(x)) => {
            let text = String::from_utf8_lossy(&x.body);
            if x.status != 200 || x.code.is_some() || !text.contains("Receipt") {
                f.push(format!(
                    "expected a receipt, got HTTP {} {:?}",
                    x.status, x.code
                ));
            }
        }
        (Outcome::Error, Some(x)) => {
            if x.code != e.code {
                f.push(format!(
                    "expected {:?}, got {:?} (HTTP {})",
                    e.code, x.code, x.status
                ));
            }
            if let Some(st) = e.http_status {
                if x.status != st {
                    f.push(format!("expected HTTP {st}, got {}", x.status));
                }
            }
        }
    }
    if let Some((state, code, attempts)) = &obs.sender {
        if let Some(want) = &e.sender_state {
            if want != state {
                f.push(format!(
                    "sender state: expected {want}, got {state} ({code:?})"
                ));
            }
        }
        if let Some(want) = &e.sender_code {
            if Some(want) != code.as_ref() {
                f.push(format!("sender code: expected {want}, got {code:?}"));
            }
        }
        if let Some(want) = e.attempts {
            if want != *attempts {
                f.push(format!("attempts: expected {want}, got {attempts}"));
            }
        }
    } else if e.sender_state.is_some() || e.sender_code.is_some() || e.attempts.is_some() {
        f.push("sender expectations on a crafted message (no sender)".into());
    }
    if let (Some(want), Some(wire)) = (e.compressed, &obs.wire) {
        let got = String::from_utf8_lossy(wire).contains("CompressionType");
        if got != want {
            f.push(format!("compressed: expected {want}, got {got}"));
        }
    }
    if let Some(true) = e.same_receipt {
        let answers = w.net.answers.lock().map(|a| a.clone()).unwrap_or_default();
        if answers.len() < 2 || answers[0].body != answers[1].body || answers[0].status != 200 {
            f.push(format!(
                "replay: expected the same receipt twice, got {} answers",
                answers.len()
            ));
        }
    }
    // the receiving backend
    let deliveries = delivery_count(rx, &w).await?;
    match e.delivered {
        Delivered::Never if deliveries != 0 => {
            f.push(format!("expected no delivery, got {deliveries}"))
        }
        Delivered::Once if deliveries != 1 => {
            f.push(format!("expected one delivery, got {deliveries}"))
        }
        Delivered::Once => {
            if let Some(mid) = &obs.message_id {
                check_delivered(rx, mid, s, &expected_payloads, &mut f).await?;
            }
        }
        _ => {}
    }
    Ok(f)
}

/// The real sending gateway packs and sends; the transport applies the mutation.
async fn sent(w: &World, tx: &Side, req: SubmitRequest, s: &Scenario) -> anyhow::Result<Observed> {
    let m = s.mutation.as_ref();
    w.net
        .set_mutation(m.map(|m| m.kind), m.and_then(|m| m.times).unwrap_or(1));
    let res = match tx.msh.submit(req).await {
        Ok(r) => r,
        Err(e) => anyhow::bail!("submission refused: {e}"),
    };
    tx.msh.run_once().await;
    for _ in 0..RESENDS + 1 {
        let rec = tx
            .store
            .get_by_message_id(Direction::Outbound, &res.message_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("outbound message lost"))?;
        if rec.state.is_final() {
            break;
        }
        w.clock.advance(time::Duration::minutes(2));
        tx.msh.run_once().await;
    }
    let rec = tx
        .store
        .get_by_message_id(Direction::Outbound, &res.message_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("outbound message lost"))?;
    let wire = match &rec.wire {
        Some(f) => tokio::fs::read(tx.store.spool().path(f)).await.ok(),
        None => None,
    };
    let last = w.net.answers.lock().ok().and_then(|a| a.last().cloned());
    Ok(Observed {
        last,
        message_id: Some(res.message_id),
        sender: Some((
            rec.state.as_str().to_string(),
            rec.last_code.map(|c| c.code().to_string()),
            rec.attempts,
        )),
        wire,
    })
}

/// Header mutations of crafted messages; `None` when the header lacks what is replaced.
fn mutate_header(kind: MutationKind, h: &str) -> Option<String> {
    use MutationKind::*;
    let replaced = |from: &str, to: &str| h.contains(from).then(|| h.replacen(from, to, 1));
    match kind {
        UnknownAction => {
            let (_, rest) = h.split_once("Action>")?;
            let (action, _) = rest.split_once('<')?;
            replaced(&format!(">{action}<"), ">UnknownConformanceAction<")
        }
        UnknownService => replaced(">QueryManager<", ">UnknownConformanceService<"),
        WrongRole => {
            let i = h.find("<eb:To>")?;
            let (a, b) = h.split_at(i);
            let (role, _) = b.split_once("Role>")?.1.split_once('<')?;
            Some(format!(
                "{a}{}",
                b.replacen(role, "http://example.org/conformance/other-role", 1)
            ))
        }
        BadMessageId => {
            let (_, rest) = h.split_once("MessageId>")?;
            let (mid, _) = rest.split_once('<')?;
            let (left, _) = mid.split_once('@')?;
            replaced(&format!(">{mid}<"), &format!(">{left}-not-rfc2822<"))
        }
        MissingProperty => replaced("name=\"finalRecipient\"", "name=\"somethingElse\""),
        WrongFixedValue => replaced(">oots-edm:v2.0<", ">oots-edm:v9.9<"),
        NotAUuid => {
            let (_, rest) = h.split_once("name=\"ExchangeId\"")?;
            let (_, rest) = rest.split_once('>')?;
            let (v, _) = rest.split_once('<')?;
            replaced(&format!(">{v}<"), ">not-a-uuid<")
        }
        _ => Some(h.to_string()),
    }
}

/// The harness plays the (misbehaving) partner: builds the header as the sender would, mutates
/// it, signs and encrypts with real keys, and POSTs it to the receiver.
async fn crafted(
    base: &Path,
    w: &World,
    tx: &Side,
    rx: &Side,
    req: &SubmitRequest,
    kind: MutationKind,
) -> anyhow::Result<Observed> {
    let set = crate::pmode::Registry::load(
        &w.pmode_dir,
        crate::pmode::SetContext::default(),
        w.clock.now(),
    )
    .map_err(|e| anyhow::anyhow!("pmodes: {e:?}"))?
    .current();
    let p = prepare_submission(&set, &tx.cfg.party, &[], req, w.clock.now())
        .map_err(|e| anyhow::anyhow!("prepare: {e}"))?;
    let header = p
        .outbound
        .header
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no header prepared"))?;
    let header = mutate_header(kind, &header)
        .ok_or_else(|| anyhow::anyhow!("mutation {kind:?} does not apply to this message"))?;
    let message_id = crate::ebms::model::Messaging::parse(header.as_bytes())
        .ok()
        .and_then(|m| m.user_message)
        .map(|u| u.message_info.message_id.as_str().to_string());
    let compress = header.contains("CompressionType");
    let mut atts = Vec::new();
    for (i, pl) in req.payloads.iter().enumerate() {
        let data = tokio::fs::read(tx.store.spool().path(&pl.file)).await?;
        let cid = format!("{}@{}", pl.part_name, tx.cfg.party.id);
        let data = match kind {
            MutationKind::CorruptGzip if i == 0 => b"this is not gzip data".to_vec(),
            MutationKind::GzipBomb if i == 0 => gzip(&vec![0u8; 4 << 20])?,
            _ if compress => gzip(&data)?,
            _ => data,
        };
        let mt = if compress {
            "application/gzip".to_string()
        } else {
            pl.mime_type.clone()
        };
        atts.push(Attachment::new(&cid, &mt, data));
    }
    let pm_suite = suite_of(p.pmode.security.suite);
    let suite = match (kind, pm_suite) {
        (MutationKind::WrongSuite, Suite::Edelivery115) => Suite::Edelivery20,
        (MutationKind::WrongSuite, Suite::Edelivery20) => Suite::Edelivery115,
        (_, s) => s,
    };
    let signer_cfg = if kind == MutationKind::Impersonate {
        &rx.cfg
    } else {
        &tx.cfg
    };
    let keys = Keyring::from_config(signer_cfg)?;
    let signer = keys
        .signing_at(suite, w.clock.now())
        .ok_or_else(|| anyhow::anyhow!("no signing key for {suite:?}"))?;
    let who = if rx.url == super::world::BLUE_URL {
        "blue"
    } else {
        "red"
    };
    let file = match suite {
        Suite::Edelivery20 => format!("certs/demo/{who}/x25519.cert.pem"),
        Suite::Edelivery115 => format!("certs/demo/{who}/rsa.cert.pem"),
    };
    let path = base.join(file);
    let rcpt = crate::pki::load_certificates(&std::fs::read(&path)?)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no certificate", path.display()))?;
    let cfg = SenderConfig {
        suite,
        signer,
        token_type: TokenType::X509v3,
        recipient: Some(&rcpt),
        recipient_reference: KeyReference::Bst,
    };
    let sec = secure_outbound(&AwsLc, &header, atts, &cfg)?;
    let mut mw = MimeWriter::new(&format!("root@{}", tx.cfg.party.id), sec.soap)?;
    for a in sec.attachments {
        mw.add_part(
            &a.content_id,
            &a.mime_type,
            PartBody::Bytes(Bytes::from(a.data)),
        )?;
    }
    let ct = mw.content_type();
    let mut body = Vec::new();
    mw.write_to(&mut body).await?;
    let last = w.net.deliver(rx.url, Some(&ct), body.clone(), false).await;
    Ok(Observed {
        last,
        message_id,
        sender: None,
        wire: Some(body),
    })
}

/// Delivery notifications the receiving backend got.
async fn delivery_count(rx: &Side, w: &World) -> anyhow::Result<usize> {
    let items = rx
        .store
        .lease_outbox(
            w.clock.now() + time::Duration::days(1),
            "conformance",
            10_000,
            time::Duration::minutes(1),
        )
        .await?;
    Ok(items.iter().filter(|i| i.kind == "delivery").count())
}

async fn check_delivered(
    rx: &Side,
    mid: &str,
    s: &Scenario,
    expected: &[(String, Vec<u8>)],
    f: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some(rec) = rx.store.get_by_message_id(Direction::Inbound, mid).await? else {
        f.push(format!("{mid} not stored by the receiver"));
        return Ok(());
    };
    let mut got = Vec::new();
    for p in &rec.payloads {
        got.push((
            p.mime_type.clone(),
            tokio::fs::read(rx.store.spool().path(&p.file)).await?,
        ));
    }
    if s.mutation.as_ref().is_none_or(|m| !m.kind.crafted()) && got != expected {
        let summary = |v: &[(String, Vec<u8>)]| {
            v.iter()
                .map(|(t, b)| format!("{t}:{}B", b.len()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        f.push(format!(
            "payloads (PartInfo order): expected [{}], got [{}]",
            summary(expected),
            summary(&got)
        ));
    }
    for p in &s.send.property {
        if !rec
            .properties
            .iter()
            .any(|(n, v)| n == &p.name && v == &p.value)
        {
            f.push(format!(
                "property {}={:?} not delivered unchanged: {:?}",
                p.name, p.value, rec.properties
            ));
        }
    }
    Ok(())
}
