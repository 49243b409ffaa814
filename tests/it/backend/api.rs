//! Happy paths: submit (0, 1, 5 payloads, large streamed), status, list, download, receipt,
//! ack, idempotent retry, health.

use as4gw::store::{Direction, MessageStore, State};
use futures_util::StreamExt;
use serde_json::Value;

use super::*;

async fn accepted(resp: reqwest::Response) -> Value {
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "SUBMITTED");
    assert_eq!(body["created"], true);
    assert_eq!(location.as_deref(), body["location"].as_str());
    body
}

#[tokio::test]
async fn submit_with_zero_one_and_five_payloads() {
    let api = Api::start().await;
    for n in [0usize, 1, 5] {
        let names: Vec<String> = (0..n).map(|i| format!("part{i}")).collect();
        let decl: Vec<(&str, &str)> = names
            .iter()
            .map(|s| (s.as_str(), "application/xml"))
            .collect();
        let bodies: Vec<(&str, Vec<u8>)> = names
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    s.as_str(),
                    format!("<doc n=\"{i}\"/>").repeat(i + 1).into_bytes(),
                )
            })
            .collect();
        let resp = submit(&api, RED_TOKEN, form(&main_metadata(&decl), &bodies), None).await;
        let body = accepted(resp).await;
        let mid = body["messageId"].as_str().expect("messageId").to_string();
        assert_eq!(body["pmodeId"], PM_MAIN);
        assert_eq!(body["conversationId"], "conv-1");

        let rec = stored(&api.store, Direction::Outbound, &mid).await;
        assert_eq!(rec.state, State::Submitted);
        assert_eq!(rec.payloads.len(), n);
        for (p, (_, bytes)) in rec.payloads.iter().zip(&bodies) {
            assert_eq!(p.file.size(), bytes.len() as u64);
            assert_eq!(p.file.sha256_hex(), sha256_hex(bytes));
            assert_eq!(p.mime_type, "application/xml");
        }

        // The view shows what the header says, and every payload downloads intact.
        let v: Value = api
            .get(&format!("/api/v1/messages/{mid}"), RED_TOKEN)
            .await
            .json()
            .await
            .expect("view");
        assert_eq!(v["direction"], "OUT");
        assert_eq!(v["payloads"].as_array().map(Vec::len), Some(n));
        for (i, (name, bytes)) in bodies.iter().enumerate() {
            assert_eq!(v["payloads"][i]["name"], *name);
            let href = v["payloads"][i]["href"].as_str().expect("href");
            let resp = api.get(href, RED_TOKEN).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "application/xml");
            let got = resp.bytes().await.expect("bytes");
            assert_eq!(&got[..], &bytes[..]);
        }
    }
    assert_eq!(api.message_count().await, 3);
}

#[tokio::test]
async fn status_view_shows_parties_service_properties_and_events() {
    let api = Api::start().await;
    let mut meta = main_metadata(&[("request", "application/xml")]);
    meta["payloads"][0]["properties"] =
        serde_json::json!([{"name": "CharacterSet", "value": "UTF-8"}]);
    meta["messageId"] = "chosen-1@red.test".into();
    let resp = submit(
        &api,
        RED_TOKEN,
        form(&meta, &[("request", b"<a/>".to_vec())]),
        None,
    )
    .await;
    let body = accepted(resp).await;
    assert_eq!(body["messageId"], "chosen-1@red.test");

    let v: Value = api
        .get("/api/v1/messages/chosen-1@red.test", RED_TOKEN)
        .await
        .json()
        .await
        .expect("view");
    assert_eq!(v["messageId"], "chosen-1@red.test");
    assert_eq!(v["state"], "SUBMITTED");
    assert_eq!(v["pmodeId"], PM_MAIN);
    assert_eq!(v["service"], "urn:test:service");
    assert_eq!(v["serviceType"], "urn:test:service-type");
    assert_eq!(v["action"], "Submit");
    assert_eq!(v["from"]["id"], "red_gw");
    assert_eq!(v["to"]["id"], "blue_gw");
    assert_eq!(v["to"]["role"], "http://sdg.europa.eu/edelivery/gateway");
    assert_eq!(v["properties"][0]["name"], "originalSender");
    assert_eq!(v["properties"][0]["value"], SENDER);
    assert_eq!(
        v["properties"][0]["type"],
        "urn:oasis:names:tc:ebcore:partyid-type:unregistered"
    );
    assert_eq!(v["properties"][1]["name"], "finalRecipient");
    assert_eq!(v["payloads"][0]["name"], "request");
    assert_eq!(v["payloads"][0]["partId"], "cid:request@as4gw.test");
    assert_eq!(v["payloads"][0]["sha256"], sha256_hex(b"<a/>"));
    let pprops: Vec<(String, String)> = v["payloads"][0]["properties"]
        .as_array()
        .expect("part properties")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        pprops.contains(&("MimeType".into(), "application/xml".into())),
        "{pprops:?}"
    );
    assert!(
        pprops.contains(&("CharacterSet".into(), "UTF-8".into())),
        "{pprops:?}"
    );
    assert_eq!(v["events"][0]["to"], "SUBMITTED");
    assert_eq!(v["hasReceipt"], false);

    // The Location path (percent-encoded id) answers too; an unknown id is 404.
    let loc = body["location"].as_str().expect("location");
    assert_eq!(api.get(loc, RED_TOKEN).await.status(), 200);
    expect_problem(
        api.get("/api/v1/messages/nope@red.test", RED_TOKEN).await,
        404,
        "/errors/not-found",
        None,
    )
    .await;
    // A bad direction value is a 400 naming the parameter.
    expect_problem(
        api.get(
            "/api/v1/messages/chosen-1@red.test?direction=SIDEWAYS",
            RED_TOKEN,
        )
        .await,
        400,
        "/errors/invalid-request",
        Some("direction"),
    )
    .await;
}

#[tokio::test]
async fn list_filters_and_pagination() {
    let api = Api::start().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut meta = main_metadata(&[]);
        meta["conversationId"] = if i % 2 == 0 { "even" } else { "odd" }.into();
        meta["properties"][1]["value"] = format!("urn:recipient:{i}").into();
        let body = accepted(submit(&api, RED_TOKEN, form(&meta, &[]), None).await).await;
        ids.push(body["messageId"].as_str().expect("id").to_string());
    }
    let other = accepted(
        submit(
            &api,
            RED_TOKEN,
            form(&serde_json::json!({"pmode": PM_OTHER}), &[]),
            None,
        )
        .await,
    )
    .await;
    api.inbound("in-1@blue.test", &[("doc", "application/xml", b"<in/>")])
        .await;
    // A message of another backend's P-Mode: never listed for red.
    accepted(
        submit(
            &api,
            BLUE_TOKEN,
            form(&serde_json::json!({"pmode": PM_BLUE}), &[]),
            None,
        )
        .await,
    )
    .await;

    let list = |q: &'static str| {
        let api = &api;
        async move {
            let v: Value = api
                .get(&format!("/api/v1/messages{q}"), RED_TOKEN)
                .await
                .json()
                .await
                .expect("list");
            v
        }
    };
    let ids_of = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| m["messageId"].as_str().unwrap_or("").to_string())
            .collect()
    };

    let all = list("").await;
    assert_eq!(
        ids_of(&all).len(),
        9,
        "7 + other + inbound; blue's message hidden"
    );
    assert_eq!(
        all["items"][0]["messageId"], "in-1@blue.test",
        "newest first"
    );
    assert!(all.get("nextCursor").is_none());

    assert_eq!(
        ids_of(&list("?direction=IN").await),
        vec!["in-1@blue.test".to_string()]
    );
    assert_eq!(ids_of(&list("?direction=OUT").await).len(), 8);
    assert_eq!(ids_of(&list("?state=RECEIVED").await).len(), 1);
    assert_eq!(
        ids_of(&list("?state=SUBMITTED&pmode=test-other").await),
        vec![other["messageId"].as_str().unwrap_or("").to_string()]
    );
    assert_eq!(ids_of(&list("?conversationId=even").await).len(), 4);
    assert_eq!(
        ids_of(&list("?property=finalRecipient:urn:recipient:3").await),
        vec![ids[3].clone()]
    );
    assert_eq!(
        ids_of(&list("?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z").await).len(),
        9
    );
    assert!(ids_of(&list("?to=2000-01-01T00:00:00Z").await).is_empty());
    assert!(ids_of(&list("?from=2100-01-01T00:00:00Z").await).is_empty());

    // Pages of 3 over the 7 "test-red-blue" messages: 3 + 3 + 1, no overlap, nothing missed.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/messages?pmode={PM_MAIN}&limit=3&cursor={c}"),
            None => format!("/api/v1/messages?pmode={PM_MAIN}&limit=3"),
        };
        let v: Value = api.get(&q, RED_TOKEN).await.json().await.expect("page");
        seen.extend(ids_of(&v));
        pages += 1;
        match v["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    // Bad filter values are 400 with the parameter named; a foreign P-Mode filter is 403.
    for (q, field) in [
        ("?direction=UP", "direction"),
        ("?state=DONE", "state"),
        ("?property=novalue", "property"),
        ("?from=yesterday", "from"),
        ("?to=1", "to"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?cursor=zz", "cursor"),
    ] {
        expect_problem(
            api.get(&format!("/api/v1/messages{q}"), RED_TOKEN).await,
            400,
            "/errors/invalid-request",
            Some(field),
        )
        .await;
    }
    expect_problem(
        api.get("/api/v1/messages?unknown=1", RED_TOKEN).await,
        400,
        "/errors/invalid-request",
        Some("query"),
    )
    .await;
    expect_problem(
        api.get(&format!("/api/v1/messages?pmode={PM_BLUE}"), RED_TOKEN)
            .await,
        403,
        "/errors/forbidden",
        Some("pmode"),
    )
    .await;
}

#[tokio::test]
async fn download_receipt_and_ack_of_an_inbound_message() {
    let api = Api::start().await;
    let pdf: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    api.inbound(
        "in-2@blue.test",
        &[
            ("request", "application/x-ebrs+xml", b"<q/>"),
            ("evidence", "application/pdf", &pdf),
        ],
    )
    .await;

    let v: Value = api
        .get("/api/v1/messages/in-2@blue.test", RED_TOKEN)
        .await
        .json()
        .await
        .expect("view");
    assert_eq!(v["direction"], "IN");
    assert_eq!(v["state"], "RECEIVED");
    assert_eq!(v["hasReceipt"], true);
    assert_eq!(v["payloads"][1]["name"], "evidence");

    let resp = api
        .get(
            "/api/v1/messages/in-2@blue.test/payloads/evidence",
            RED_TOKEN,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(
        resp.headers()["content-length"],
        pdf.len().to_string().as_str()
    );
    let digest = resp.headers()["repr-digest"]
        .to_str()
        .expect("digest")
        .to_string();
    let got = resp.bytes().await.expect("bytes");
    assert_eq!(sha256_hex(&got), sha256_hex(&pdf));
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(sha256_hex(&pdf)).expect("hex"));
    assert_eq!(digest, format!("sha-256=:{expected}:"));
    // By Content-ID too.
    let by_cid = api
        .get(
            "/api/v1/messages/in-2@blue.test/payloads/request@blue.test",
            RED_TOKEN,
        )
        .await;
    assert_eq!(by_cid.bytes().await.expect("bytes").as_ref(), b"<q/>");
    expect_problem(
        api.get(
            "/api/v1/messages/in-2@blue.test/payloads/nothing",
            RED_TOKEN,
        )
        .await,
        404,
        "/errors/not-found",
        Some("name"),
    )
    .await;

    // Reading never consumes.
    let rec = stored(&api.store, Direction::Inbound, "in-2@blue.test").await;
    assert_eq!(rec.state, State::Received);

    let receipt = api
        .get("/api/v1/messages/in-2@blue.test/receipt", RED_TOKEN)
        .await;
    assert_eq!(receipt.status(), 200);
    assert_eq!(receipt.headers()["content-type"], "application/xml");
    assert_eq!(
        receipt.text().await.expect("text"),
        "<Receipt for=\"in-2@blue.test\"/>"
    );

    let ack = |api: &Api| {
        api.client
            .post(api.url("/api/v1/messages/in-2@blue.test/ack"))
            .bearer_auth(RED_TOKEN)
            .send()
    };
    let first: Value = ack(&api).await.expect("ack").json().await.expect("json");
    assert_eq!(
        first,
        serde_json::json!({"messageId": "in-2@blue.test", "state": "DELIVERED", "changed": true})
    );
    let second: Value = ack(&api).await.expect("ack").json().await.expect("json");
    assert_eq!(second["changed"], false, "acks are idempotent");
    let rec = stored(&api.store, Direction::Inbound, "in-2@blue.test").await;
    assert_eq!(rec.state, State::Delivered);
    let events = api.store.events(rec.id).await.expect("events");
    assert_eq!(
        events.iter().filter(|e| e.to == State::Delivered).count(),
        1
    );

    // Receipt of an outbound message: 404 until the MSH stores the partner's receipt.
    let out = accepted(submit(&api, RED_TOKEN, form(&main_metadata(&[]), &[]), None).await).await;
    let mid = out["messageId"].as_str().expect("id");
    expect_problem(
        api.get(&format!("/api/v1/messages/{mid}/receipt"), RED_TOKEN)
            .await,
        404,
        "/errors/not-found",
        None,
    )
    .await;
    let rec = stored(&api.store, Direction::Outbound, mid).await;
    api.store
        .store_receipt(
            rec.id,
            time::OffsetDateTime::now_utc(),
            b"<eb:Receipt/>".to_vec(),
        )
        .await
        .expect("receipt");
    let r = api
        .get(&format!("/api/v1/messages/{mid}/receipt"), RED_TOKEN)
        .await;
    assert_eq!(r.text().await.expect("text"), "<eb:Receipt/>");
    // An outbound message cannot be acknowledged.
    let resp = api
        .client
        .post(api.url(&format!("/api/v1/messages/{mid}/ack")))
        .bearer_auth(RED_TOKEN)
        .send()
        .await
        .expect("ack");
    expect_problem(resp, 409, "/errors/invalid-state", None).await;
}

#[tokio::test]
async fn same_message_id_in_both_directions_needs_direction() {
    let api = Api::start().await;
    let mut meta = main_metadata(&[]);
    meta["messageId"] = "both@loop.test".into();
    accepted(submit(&api, RED_TOKEN, form(&meta, &[]), None).await).await;
    api.inbound("both@loop.test", &[]).await;
    expect_problem(
        api.get("/api/v1/messages/both@loop.test", RED_TOKEN).await,
        409,
        "/errors/ambiguous-message-id",
        Some("direction"),
    )
    .await;
    let out: Value = api
        .get("/api/v1/messages/both@loop.test?direction=OUT", RED_TOKEN)
        .await
        .json()
        .await
        .expect("out");
    assert_eq!(out["direction"], "OUT");
    let inn: Value = api
        .get("/api/v1/messages/both@loop.test?direction=IN", RED_TOKEN)
        .await
        .json()
        .await
        .expect("in");
    assert_eq!(inn["direction"], "IN");
    // ack means the inbound one.
    let resp = api
        .client
        .post(api.url("/api/v1/messages/both@loop.test/ack"))
        .bearer_auth(RED_TOKEN)
        .send()
        .await
        .expect("ack");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn idempotent_retry_returns_the_first_message() {
    let api = Api::start().await;
    let decl = [("doc", "application/xml")];
    let first = accepted(
        submit(
            &api,
            RED_TOKEN,
            form(&main_metadata(&decl), &[("doc", b"<x/>".to_vec())]),
            Some("key-1"),
        )
        .await,
    )
    .await;
    let files_after_first = api.spool_files();
    let resp = submit(
        &api,
        RED_TOKEN,
        form(&main_metadata(&decl), &[("doc", b"<x/>".to_vec())]),
        Some("key-1"),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let second: Value = resp.json().await.expect("json");
    assert_eq!(second["messageId"], first["messageId"]);
    assert_eq!(second["created"], false);
    assert_eq!(api.message_count().await, 1);
    assert_eq!(
        api.spool_files(),
        files_after_first,
        "the repeat's spooled copy is deleted"
    );
    // Another key is another message.
    let third = accepted(
        submit(
            &api,
            RED_TOKEN,
            form(&main_metadata(&decl), &[("doc", b"<x/>".to_vec())]),
            Some("key-2"),
        )
        .await,
    )
    .await;
    assert_ne!(third["messageId"], first["messageId"]);
    // A malformed key is refused.
    let resp = api
        .client
        .post(api.url("/api/v1/messages"))
        .bearer_auth(RED_TOKEN)
        .header("Idempotency-Key", "has space")
        .multipart(form(&main_metadata(&[]), &[]))
        .send()
        .await
        .expect("post");
    expect_problem(
        resp,
        400,
        "/errors/invalid-request",
        Some("Idempotency-Key"),
    )
    .await;
}

/// Size of the large-payload test in MiB (`AS4GW_TEST_BIG_MB`, default 200).
fn big_mb() -> u64 {
    std::env::var("AS4GW_TEST_BIG_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

/// Deterministic pseudo-random chunk `i` (xorshift), so nothing large is ever held.
fn chunk(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test]
async fn large_payload_is_streamed_both_ways() {
    use sha2::Digest;
    const CHUNK: usize = 1 << 20;
    let mb = big_mb();
    let total = mb * CHUNK as u64;
    let api = Api::start_with(ApiLimits {
        max_payload_size: total,
        ..ApiLimits::default()
    })
    .await;

    // Upload: generated chunk by chunk while hashed.
    let hasher = std::sync::Arc::new(std::sync::Mutex::new(sha2::Sha256::new()));
    let h2 = std::sync::Arc::clone(&hasher);
    let body = futures_util::stream::iter(0..mb).map(move |i| {
        let c = chunk(i, CHUNK);
        h2.lock().expect("hasher").update(&c);
        Ok::<_, std::io::Error>(bytes::Bytes::from(c))
    });
    let part =
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body), total)
            .file_name("big")
            .mime_str("application/octet-stream")
            .expect("mime");
    let f = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(
                main_metadata(&[("big", "application/octet-stream")]).to_string(),
            ),
        )
        .part("big", part);
    let resp = submit(&api, RED_TOKEN, f, None).await;
    let body = accepted(resp).await;
    let sent_sha = hex::encode(hasher.lock().expect("hasher").clone().finalize());
    let mid = body["messageId"].as_str().expect("id").to_string();

    let rec = stored(&api.store, Direction::Outbound, &mid).await;
    assert_eq!(rec.payloads[0].file.size(), total);
    assert_eq!(rec.payloads[0].file.sha256_hex(), sent_sha);

    // Download: streamed and hashed chunk by chunk.
    let resp = api
        .get(&format!("/api/v1/messages/{mid}/payloads/big"), RED_TOKEN)
        .await;
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut h = sha2::Sha256::new();
    let mut n = 0u64;
    while let Some(c) = stream.next().await {
        let c = c.expect("chunk");
        n += c.len() as u64;
        h.update(&c);
    }
    assert_eq!(n, total);
    assert_eq!(hex::encode(h.finalize()), sent_sha);
    eprintln!(
        "large payload: {mb} MiB up and down; peak RSS of the test process {} MiB",
        vm_hwm_kib().unwrap_or(0) / 1024
    );

    // One byte over the limit is refused with 413 and leaves no file behind.
    let small = Api::start_with(ApiLimits {
        max_payload_size: 1000,
        ..ApiLimits::default()
    })
    .await;
    let before = small.spool_files();
    let resp = submit(
        &small,
        RED_TOKEN,
        form(
            &main_metadata(&[("big", "application/octet-stream")]),
            &[("big", vec![7u8; 1001])],
        ),
        None,
    )
    .await;
    expect_problem(resp, 413, "/errors/payload-too-large", Some("payloads/0")).await;
    assert_eq!(small.spool_files(), before);
    assert_eq!(small.message_count().await, 0);
}

#[tokio::test]
async fn health_reports_store_and_probe() {
    let api = Api::start().await;
    let resp = api.get("/api/v1/health", RED_TOKEN).await;
    assert_eq!(resp.status(), 200);
    let h: Value = resp.json().await.expect("json");
    assert_eq!(h["live"], true);
    assert_eq!(h["ready"], true);
    assert_eq!(h["checks"][0]["name"], "store");
    assert_eq!(h["checks"][0]["ok"], true);

    // A failing probe makes it 503 with the same document.
    struct NotReady;
    impl as4gw::backend::Readiness for NotReady {
        fn check(&self) -> futures_util::future::BoxFuture<'_, Vec<as4gw::backend::HealthCheck>> {
            Box::pin(async {
                vec![as4gw::backend::HealthCheck {
                    name: "pmodes".into(),
                    ok: false,
                    detail: "not loaded".into(),
                }]
            })
        }
    }
    let state = AppState::new(
        std::sync::Arc::clone(&api.store) as std::sync::Arc<dyn MessageStore>,
        std::sync::Arc::new(TestSubmitter::new(std::sync::Arc::clone(&api.store))),
        test_backends(None),
    )
    .with_readiness(std::sync::Arc::new(NotReady));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, backend::router(state))
            .await
            .expect("serve")
    });
    let resp = api
        .client
        .get(format!("http://{addr}/api/v1/health"))
        .bearer_auth(RED_TOKEN)
        .send()
        .await
        .expect("health");
    assert_eq!(resp.status(), 503);
    let h: Value = resp.json().await.expect("json");
    assert_eq!(h["live"], true);
    assert_eq!(h["ready"], false);
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["checks"][1]["name"], "pmodes");
}

/// After the P-Mode's retention removed the contents, a payload download is 410
/// `/errors/purged` naming the P-Mode and the time, not a 500 "missing from the spool"; the
/// message's metadata is still served.
#[tokio::test]
async fn a_purged_payload_is_gone_while_its_metadata_stays() {
    use as4gw::store::{PurgeOptions, RetentionRule};
    let api = Api::start().await;
    let id = api
        .inbound(
            "purged@blue.test",
            &[("evidence", "application/pdf", b"%PDF-1.7 evidence")],
        )
        .await;
    let now = time::OffsetDateTime::now_utc();
    api.store
        .mark_delivered(id, now, "acknowledged by the test backend")
        .await
        .expect("delivered");
    let path = "/api/v1/messages/purged@blue.test/payloads/evidence";
    assert_eq!(api.get(path, RED_TOKEN).await.status().as_u16(), 200);
    let report = api
        .store
        .purge(
            now + time::Duration::days(40),
            vec![RetentionRule {
                pmode_id: PM_INBOUND.to_string(),
                payload_days: Some(30),
                metadata_days: Some(365),
            }],
            PurgeOptions::default(),
        )
        .await
        .expect("purge");
    assert_eq!(report.payload_messages, 1, "{report:?}");
    let p = expect_problem(api.get(path, RED_TOKEN).await, 410, "/errors/purged", None).await;
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains(PM_INBOUND)),
        "{p}"
    );
    let meta = api
        .get("/api/v1/messages/purged@blue.test", RED_TOKEN)
        .await;
    assert_eq!(meta.status().as_u16(), 200);
}
