//! Every inbound failure we can provoke, each answered with its one EBMS code, an error
//! signal + SOAP Fault, the right HTTP status, and nothing stored.

use as4gw::ebms::model::{MessageId, Messaging, Signal, Timestamp};
use as4gw::ebms::soap::{build_envelope, parse_envelope};
use as4gw::mime::{MimeWriter, PartBody};
use as4gw::msh::api::SubmitRequest;
use as4gw::msh::compress::gzip;
use as4gw::msh::outbound::prepare_submission;
use as4gw::msh::{Clock, InboundReply, Keyring};
use as4gw::pki::Certificate;
use as4gw::pmode::{Registry, SetContext};
use as4gw::security::crypto::AwsLc;
use as4gw::security::sign::{secure_outbound, SenderConfig};
use as4gw::security::{Attachment, KeyReference, Suite, TokenType};
use as4gw::store::{Filter, MessageStore};
use bytes::Bytes;

use super::harness::*;

/// The header red would send for `req` on `pmode`.
fn header(w: &World, req: &SubmitRequest) -> String {
    let set = Registry::load(
        &w._dir.path().join("pmodes"),
        SetContext::default(),
        w.clock.now(),
    )
    .expect("pmodes")
    .current();
    let p = prepare_submission(&set, &w.red.cfg.party, &[], req, w.clock.now()).expect("prepare");
    let text = p.outbound.header.expect("header");
    // A first attempt packs from the struct the header was written from, a retry from the
    // stored text parsed back (`Msh::send_attempt`): both must be the same header.
    assert_eq!(
        Messaging::parse(text.as_bytes()).expect("parse back"),
        p.messaging,
        "the stored header parses back to what was built"
    );
    text
}

/// Signs with `signer_suite` keys of `signer` and encrypts for blue under `suite`.
fn seal(
    _w: &World,
    header: &str,
    atts: Vec<Attachment>,
    suite: Suite,
    signer_cfg: &as4gw::config::Config,
) -> (String, Vec<u8>) {
    let keys = Keyring::from_config(signer_cfg).expect("keys");
    let signer = keys.signing(suite).expect("signing key");
    let blue_enc = match suite {
        Suite::Edelivery115 => "certs/demo/blue/rsa.cert.pem",
        Suite::Edelivery20 => "certs/demo/blue/x25519.cert.pem",
    };
    let rcpt = as4gw::pki::load_certificates(&std::fs::read(repo().join(blue_enc)).expect("cert"))
        .expect("parse")
        .remove(0);
    let _: &Certificate = &rcpt;
    let cfg = SenderConfig {
        suite,
        signer,
        token_type: TokenType::X509v3,
        recipient: Some(&rcpt),
        recipient_reference: KeyReference::Bst,
    };
    let s = secure_outbound(&AwsLc, header, atts, &cfg).expect("secure");
    let mut mw = MimeWriter::new("root@test", s.soap).expect("writer");
    for a in s.attachments {
        mw.add_part(
            &a.content_id,
            &a.mime_type,
            PartBody::Bytes(Bytes::from(a.data)),
        )
        .expect("part");
    }
    let ct = mw.content_type();
    let mut body = Vec::new();
    futures_util::FutureExt::now_or_never(mw.write_to(&mut body))
        .expect("ready")
        .expect("write");
    (ct, body)
}

async fn post(w: &World, ct: Option<&str>, body: Vec<u8>) -> InboundReply {
    w.blue
        .msh
        .receive(
            ct,
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]),
        )
        .await
}

/// Asserts the reply is an error signal with `code` and a Fault, with `status`.
fn assert_refused(r: &InboundReply, code: &str, status: u16, what: &str) {
    assert_eq!(
        r.status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.code.map(|c| c.code()),
        Some(code),
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let env = parse_envelope(&r.body).expect("error envelope parses");
    assert!(
        env.fault.is_some(),
        "{what}: failure comes with a SOAP Fault"
    );
    let m = env.messaging.expect("eb:Messaging").messaging;
    match &m.signal_messages[0].signal {
        Signal::Errors(e) => assert_eq!(e[0].error_code.as_str(), code, "{what}"),
        s => panic!("{what}: {s:?}"),
    }
}

async fn assert_nothing_stored(w: &World) {
    let page = w
        .blue
        .store
        .list(Filter::default(), None, 10)
        .await
        .expect("list");
    assert!(page.items.is_empty(), "{:?}", page.items);
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn replace_bytes(h: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let i = find(h, from).expect("needle");
    let mut v = h[..i].to_vec();
    v.extend_from_slice(to);
    v.extend_from_slice(&h[i + from.len()..]);
    v
}

const CID: &str = "r@red_gw";

async fn base_request(w: &World, pmode: &str, action: &str) -> SubmitRequest {
    request(
        &w.red.store,
        pmode,
        action,
        &[("r", "application/x-ebrs+xml", regrep(3))],
    )
    .await
}

fn gz_att(data: Vec<u8>) -> Vec<Attachment> {
    vec![Attachment::new(CID, "application/gzip", data)]
}

#[tokio::test]
async fn packaging_and_envelope_failures() {
    let w = World::new(2).await;
    assert_refused(
        &post(&w, None, b"x".to_vec()).await,
        "EBMS:0007",
        400,
        "no Content-Type",
    );
    assert_refused(
        &post(&w, Some("multipart/related"), b"x".to_vec()).await,
        "EBMS:0007",
        400,
        "no boundary",
    );
    assert_refused(
        &post(&w, Some("text/plain"), b"x".to_vec()).await,
        "EBMS:0007",
        400,
        "not SOAP",
    );
    assert_refused(
        &post(&w, Some("application/soap+xml"), b"<not xml".to_vec()).await,
        "EBMS:0009",
        400,
        "not XML",
    );
    assert_refused(
        &post(&w, Some("application/soap+xml"), b"<a/>".to_vec()).await,
        "EBMS:0009",
        400,
        "not an envelope",
    );
    // A pushed signal: only synchronous signals exist in eDelivery.
    let receipt = Messaging::nrr_receipt(
        Some("_m".into()),
        MessageId::new_rfc2822("r@x").expect("id"),
        Timestamp::from_datetime(w.clock.now()),
        &MessageId::new_rfc2822("u@x").expect("id"),
        vec![],
    );
    let env = build_envelope(&receipt, "_b", None);
    assert_refused(
        &post(&w, Some("application/soap+xml"), env.clone()).await,
        "EBMS:0008",
        400,
        "pushed signal",
    );
    // Unknown mustUnderstand header: a SOAP MustUnderstand fault, no ebMS error (digest §2.7).
    let mu = String::from_utf8(env).expect("utf8").replace(
        "<S12:Header>",
        "<S12:Header><x:H xmlns:x=\"urn:x\" S12:mustUnderstand=\"true\"/>",
    );
    let r = post(&w, Some("application/soap+xml"), mu.into_bytes()).await;
    assert_eq!((r.status, r.code), (500, None));
    assert!(String::from_utf8_lossy(&r.body).contains("S12:MustUnderstand"));
    assert_nothing_stored(&w).await;
}

#[tokio::test]
async fn security_failures() {
    let w = World::new(2).await;
    let req = base_request(&w, "oots-red-blue", "ExecuteQueryRequest").await;
    let h = header(&w, &req);
    let good = || gz_att(gzip(&regrep(3)).expect("gz"));
    // sanity: the crafted message is accepted as is
    let (ct, body) = seal(&w, &h, good(), Suite::Edelivery115, &w.red.cfg);
    assert_eq!(
        post(&w, Some(&ct), body.clone()).await.status,
        200,
        "crafted message is valid"
    );
    // eb:Messaging changed after signing → digest mismatch → 0101
    let req2 = base_request(&w, "oots-red-blue", "ExecuteQueryRequest").await;
    let h2 = header(&w, &req2);
    let (ct, body) = seal(&w, &h2, good(), Suite::Edelivery115, &w.red.cfg);
    let conv = as4gw::ebms::model::Messaging::parse(h2.as_bytes())
        .expect("h")
        .user_message
        .expect("u")
        .collaboration_info
        .conversation_id;
    let tampered = replace_bytes(
        &body,
        conv.as_bytes(),
        conv.replace(['0', '1', '2', '3', '4', '5'], "7").as_bytes(),
    );
    assert_refused(
        &post(&w, Some(&ct), tampered).await,
        "EBMS:0101",
        400,
        "tampered header",
    );
    // wrapped key altered → 0102
    let req3 = base_request(&w, "oots-red-blue", "ExecuteQueryRequest").await;
    let (ct, body) = seal(
        &w,
        &header(&w, &req3),
        good(),
        Suite::Edelivery115,
        &w.red.cfg,
    );
    let tag = b"<xenc:CipherValue>";
    let i = find(&body, tag).expect("cipher value") + tag.len();
    let mut b = body;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    b[i + 1] = if b[i + 1] == b'A' { b'B' } else { b'A' };
    assert_refused(
        &post(&w, Some(&ct), b).await,
        "EBMS:0102",
        400,
        "wrapped key altered",
    );
    // signed with the 2.0 suite on a 1.15 P-Mode → 0103
    let req4 = base_request(&w, "oots-red-blue", "ExecuteQueryRequest").await;
    let (ct, body) = seal(
        &w,
        &header(&w, &req4),
        good(),
        Suite::Edelivery20,
        &w.red.cfg,
    );
    assert_refused(
        &post(&w, Some(&ct), body).await,
        "EBMS:0103",
        400,
        "wrong suite",
    );
    // signed by blue's (CA-trusted) key, claiming to be red → not the pinned signer → 0101
    let req5 = base_request(&w, "oots-red-blue", "ExecuteQueryRequest").await;
    let (ct, body) = seal(
        &w,
        &header(&w, &req5),
        good(),
        Suite::Edelivery115,
        &w.blue.cfg,
    );
    assert_refused(
        &post(&w, Some(&ct), body).await,
        "EBMS:0101",
        400,
        "impersonation",
    );
    let page = w
        .blue
        .store
        .list(Filter::default(), None, 10)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1, "only the sanity message");
}

#[tokio::test]
async fn pmode_validation_and_decompression_failures() {
    let w = World::new(2).await;
    let good = || gz_att(gzip(&regrep(3)).expect("gz"));
    type Mutate = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Mutate, Vec<Attachment>)> = vec![
        (
            "EBMS:0001",
            Box::new(|h: String| h.replace(">ExecuteQueryRequest<", ">NoSuchAction<")),
            good(),
        ),
        (
            "EBMS:0010",
            Box::new(|h: String| {
                let i = h.find("<eb:To>").expect("To");
                let (a, b) = h.split_at(i);
                format!(
                    "{a}{}",
                    b.replacen(
                        "http://sdg.europa.eu/edelivery/gateway",
                        "http://example.org/other-role",
                        1
                    )
                )
            }),
            good(),
        ),
        (
            "EBMS:0010",
            Box::new(|h: String| h.replace("name=\"finalRecipient\"", "name=\"somethingElse\"")),
            good(),
        ),
        (
            "EBMS:0009",
            Box::new(|h: String| {
                h.replacen("@red_gw</eb:MessageId>", "-not-rfc2822</eb:MessageId>", 1)
            }),
            good(),
        ),
        (
            "EBMS:0303",
            Box::new(|h: String| h),
            gz_att(b"this is not gzip".to_vec()),
        ),
        (
            "EBMS:0303",
            Box::new(|h: String| h),
            gz_att(gzip(&vec![0u8; 4 << 20]).expect("gz")),
        ),
    ];
    for (code, mutate, atts) in cases {
        let req = base_request(&w, "oots-red-blue", "ExecuteQueryRequest").await;
        let h = mutate(header(&w, &req));
        let (ct, body) = seal(&w, &h, atts, Suite::Edelivery115, &w.red.cfg);
        assert_refused(&post(&w, Some(&ct), body).await, code, 400, code);
    }
    // decompression bounded by limits.max-decompressed-size as well
    assert_nothing_stored(&w).await;
}

/// A large encrypted part (streamed: spooled by the MIME reader, decrypted file to file) with one
/// flipped byte at its very end — the last ciphertext byte, or the last tag byte — is EBMS:0102,
/// and nothing is delivered: no message stored, no plaintext left in the spool.
#[tokio::test]
async fn large_part_tampered_at_the_end_is_0102_and_nothing_delivered() {
    let w = World::new(2).await;
    let data = binary(6 << 20, 7);
    let gz = gzip(&data).expect("gz");
    for (what, back) in [("last tag byte", 1usize), ("last ciphertext byte", 17)] {
        let req = base_request(&w, "oots-red-blue", "ExecuteQueryRequest").await;
        let h = header(&w, &req);
        let (ct, mut body) = seal(&w, &h, gz_att(gz.clone()), Suite::Edelivery115, &w.red.cfg);
        // the body ends with the encrypted part, then CRLF "--boundary--" CRLF
        let close = body
            .windows(4)
            .rposition(|x| x == b"\r\n--")
            .expect("closing delimiter");
        body[close - back] ^= 0x01;
        assert_refused(&post(&w, Some(&ct), body).await, "EBMS:0102", 400, what);
        assert_nothing_stored(&w).await;
        let left: Vec<_> = std::fs::read_dir(w.blue.store.spool().dir())
            .expect("spool dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert!(left.is_empty(), "{what}: spool not clean: {left:?}");
    }
    // the same message untampered is accepted and delivered byte for byte
    let req = base_request(&w, "oots-red-blue", "ExecuteQueryRequest").await;
    let h = header(&w, &req);
    let (ct, body) = seal(&w, &h, gz_att(gz), Suite::Edelivery115, &w.red.cfg);
    let r = post(&w, Some(&ct), body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let page = w
        .blue
        .store
        .list(Filter::default(), None, 10)
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    let rec = w
        .blue
        .store
        .get(page.items[0].id)
        .await
        .expect("get")
        .expect("rec");
    let got = w
        .blue
        .store
        .spool()
        .read_all(&rec.payloads[0].file)
        .await
        .expect("payload");
    assert!(got == data, "delivered payload differs");
}
