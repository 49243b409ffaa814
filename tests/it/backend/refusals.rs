//! Every refusal: status code, problem JSON (type, field), nothing queued, no file left behind;
//! 401 and 403 cases.

use serde_json::{json, Value};

use super::*;

/// Submits `form` with `token` and checks the refusal left the store and the spool unchanged.
async fn refused(
    api: &Api,
    token: &str,
    form: reqwest::multipart::Form,
    status: u16,
    type_: &str,
    field: Option<&str>,
) -> Value {
    let files = api.spool_files();
    let count = api.message_count().await;
    let p = expect_problem(submit(api, token, form, None).await, status, type_, field).await;
    assert_eq!(api.message_count().await, count, "nothing queued: {p}");
    assert_eq!(api.spool_files(), files, "no spooled file left: {p}");
    p
}

#[tokio::test]
async fn refusals_come_back_as_problem_json_before_anything_is_queued() {
    let api = Api::start().await;
    let xml = [("doc", "application/xml")];
    let doc = || vec![("doc", b"<d/>".to_vec())];

    // Unknown P-Mode (by id, and by service/action).
    let mut meta = main_metadata(&xml);
    meta["pmode"] = "no-such-pmode".into();
    // Not in the allowed list either: the authorisation check answers first.
    refused(
        &api,
        RED_TOKEN,
        form(&meta, &doc()),
        403,
        "/errors/forbidden",
        Some("pmode"),
    )
    .await;
    // Allowed for red, but no such P-Mode in the gateway.
    meta["pmode"] = PM_GHOST.into();
    refused(
        &api,
        RED_TOKEN,
        form(&meta, &doc()),
        422,
        "/errors/unknown-pmode",
        Some("pmode"),
    )
    .await;
    let meta = json!({"service": "urn:nothing", "action": "Nothing", "payloads": [{"part": "doc", "mimeType": "application/xml"}]});
    refused(
        &api,
        RED_TOKEN,
        form(&meta, &doc()),
        422,
        "/errors/unknown-pmode",
        Some("pmode"),
    )
    .await;

    // Missing required property.
    let mut meta = main_metadata(&xml);
    meta["properties"].as_array_mut().expect("props").remove(1);
    let p = refused(
        &api,
        RED_TOKEN,
        form(&meta, &doc()),
        422,
        "/errors/missing-property",
        Some("properties/finalRecipient"),
    )
    .await;
    assert!(p["detail"]
        .as_str()
        .unwrap_or("")
        .contains("finalRecipient"));

    // Payload not allowed (MIME type), after it was streamed: the file is deleted again.
    let meta = main_metadata(&[("doc", "image/gif")]);
    refused(
        &api,
        RED_TOKEN,
        form(&meta, &doc()),
        422,
        "/errors/payload-not-allowed",
        Some("payloads/doc"),
    )
    .await;

    // Invalid MessageId (the submitter's Invalid{field}).
    let mut meta = main_metadata(&xml);
    meta["messageId"] = "no-at-sign".into();
    refused(
        &api,
        RED_TOKEN,
        form(&meta, &doc()),
        422,
        "/errors/invalid-field",
        Some("messageId"),
    )
    .await;

    // Duplicate MessageId.
    let mut meta = main_metadata(&xml);
    meta["messageId"] = "dup@red.test".into();
    let first = submit(&api, RED_TOKEN, form(&meta, &doc()), None).await;
    assert_eq!(first.status(), 202);
    refused(
        &api,
        RED_TOKEN,
        form(&meta, &doc()),
        409,
        "/errors/duplicate-message-id",
        Some("messageId"),
    )
    .await;

    // Metadata: not JSON, unknown field, wrong type, missing, not first.
    let bad_json = reqwest::multipart::Form::new().text("metadata", "{not json");
    refused(
        &api,
        RED_TOKEN,
        bad_json,
        400,
        "/errors/invalid-request",
        Some("metadata"),
    )
    .await;
    let unknown_field = form(&json!({"pmode": PM_MAIN, "colour": "red"}), &[]);
    let p = refused(
        &api,
        RED_TOKEN,
        unknown_field,
        400,
        "/errors/invalid-request",
        Some("metadata"),
    )
    .await;
    assert!(p["detail"].as_str().unwrap_or("").contains("colour"), "{p}");
    let wrong_type = form(&json!({"pmode": 7}), &[]);
    refused(
        &api,
        RED_TOKEN,
        wrong_type,
        400,
        "/errors/invalid-request",
        Some("metadata"),
    )
    .await;
    let no_meta = reqwest::multipart::Form::new()
        .part("doc", reqwest::multipart::Part::bytes(b"<d/>".to_vec()));
    refused(
        &api,
        RED_TOKEN,
        no_meta,
        400,
        "/errors/invalid-request",
        Some("metadata"),
    )
    .await;
    let empty = reqwest::multipart::Form::new();
    refused(
        &api,
        RED_TOKEN,
        empty,
        400,
        "/errors/invalid-request",
        Some("metadata"),
    )
    .await;

    // Payload declarations: undeclared part, declared but not sent, declared twice, sent
    // twice, reserved name, bad MIME type, no MIME type at all.
    refused(
        &api,
        RED_TOKEN,
        form(&main_metadata(&[]), &doc()),
        422,
        "/errors/invalid-field",
        Some("payloads"),
    )
    .await;
    refused(
        &api,
        RED_TOKEN,
        form(
            &main_metadata(&[("doc", "application/xml"), ("other", "application/xml")]),
            &doc(),
        ),
        422,
        "/errors/invalid-field",
        Some("payloads/1/part"),
    )
    .await;
    refused(
        &api,
        RED_TOKEN,
        form(
            &main_metadata(&[("doc", "application/xml"), ("doc", "application/xml")]),
            &doc(),
        ),
        422,
        "/errors/invalid-field",
        Some("payloads/1/part"),
    )
    .await;
    refused(
        &api,
        RED_TOKEN,
        form(
            &main_metadata(&xml),
            &[("doc", b"1".to_vec()), ("doc", b"2".to_vec())],
        ),
        422,
        "/errors/invalid-field",
        Some("payloads/0/part"),
    )
    .await;
    refused(
        &api,
        RED_TOKEN,
        form(&main_metadata(&[("metadata", "application/xml")]), &[]),
        422,
        "/errors/invalid-field",
        Some("payloads/0/part"),
    )
    .await;
    refused(
        &api,
        RED_TOKEN,
        form(&main_metadata(&[("doc", "not a mime type")]), &doc()),
        422,
        "/errors/invalid-field",
        Some("payloads/0/mimeType"),
    )
    .await;
    let mut meta = main_metadata(&xml);
    meta["payloads"][0]
        .as_object_mut()
        .expect("obj")
        .remove("mimeType");
    let untyped = reqwest::multipart::Form::new()
        .text("metadata", meta.to_string())
        .part("doc", reqwest::multipart::Part::stream(b"<d/>".to_vec()));
    refused(
        &api,
        RED_TOKEN,
        untyped,
        422,
        "/errors/invalid-field",
        Some("payloads/0/mimeType"),
    )
    .await;
    // ... while the part's own Content-Type is used when the metadata has none.
    let typed = reqwest::multipart::Form::new()
        .text("metadata", meta.to_string())
        .part(
            "doc",
            reqwest::multipart::Part::bytes(b"<d/>".to_vec())
                .mime_str("text/plain")
                .expect("mime"),
        );
    let resp = submit(&api, RED_TOKEN, typed, None).await;
    assert_eq!(resp.status(), 202);

    // Too many payloads declared.
    let many: Vec<(String, &str)> = (0..33)
        .map(|i| (format!("p{i}"), "application/xml"))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    refused(
        &api,
        RED_TOKEN,
        form(&main_metadata(&many), &[]),
        413,
        "/errors/payload-too-large",
        Some("payloads"),
    )
    .await;

    // Not multipart at all.
    let files = api.spool_files();
    let resp = api
        .client
        .post(api.url("/api/v1/messages"))
        .bearer_auth(RED_TOKEN)
        .json(&main_metadata(&[]))
        .send()
        .await
        .expect("post");
    expect_problem(
        resp,
        415,
        "/errors/unsupported-media-type",
        Some("Content-Type"),
    )
    .await;
    let resp = api
        .client
        .post(api.url("/api/v1/messages"))
        .bearer_auth(RED_TOKEN)
        .header("content-type", "multipart/form-data")
        .body("x")
        .send()
        .await
        .expect("post");
    expect_problem(resp, 400, "/errors/invalid-request", Some("Content-Type")).await;
    assert_eq!(api.spool_files(), files);
}

#[tokio::test]
async fn metadata_over_its_limit_is_413() {
    let api = Api::start_with(ApiLimits {
        max_metadata_size: 200,
        ..ApiLimits::default()
    })
    .await;
    let mut meta = main_metadata(&[]);
    meta["conversationId"] = "x".repeat(300).into();
    refused(
        &api,
        RED_TOKEN,
        form(&meta, &[]),
        413,
        "/errors/payload-too-large",
        Some("metadata"),
    )
    .await;
}

#[tokio::test]
async fn unauthenticated_calls_are_401_on_every_route() {
    let api = Api::start().await;
    api.inbound("in-401@blue.test", &[("doc", "application/xml", b"<d/>")])
        .await;
    let routes: [(&str, &str); 8] = [
        ("POST", "/api/v1/messages"),
        ("GET", "/api/v1/messages"),
        ("GET", "/api/v1/messages/in-401@blue.test"),
        ("GET", "/api/v1/messages/in-401@blue.test/payloads/doc"),
        ("GET", "/api/v1/messages/in-401@blue.test/receipt"),
        ("POST", "/api/v1/messages/in-401@blue.test/ack"),
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/openapi.json"),
    ];
    let auths: [Option<&str>; 6] = [
        None,
        Some("Bearer wrong-token"),
        Some("Basic cmVkOnB3"),
        Some("Bearer "),
        Some("Bearer"),
        Some(RED_TOKEN), // the token without the scheme
    ];
    for (method, path) in routes {
        for auth in auths {
            let mut req = api
                .client
                .request(method.parse().expect("method"), api.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if method == "POST" && path.ends_with("messages") {
                req = req.multipart(form(&main_metadata(&[]), &[]));
            }
            let resp = req.send().await.expect("send");
            assert_eq!(
                resp.headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer realm=\"as4gw\""),
                "{method} {path} {auth:?}"
            );
            expect_problem(resp, 401, "/errors/unauthorized", Some("Authorization")).await;
        }
    }
    assert_eq!(api.message_count().await, 1, "nothing submitted");
    let rec = stored(
        &api.store,
        as4gw::store::Direction::Inbound,
        "in-401@blue.test",
    )
    .await;
    assert_eq!(
        rec.state,
        as4gw::store::State::Received,
        "nothing acknowledged"
    );
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let resp = api
        .client
        .get(api.url("/api/v1/health"))
        .header("authorization", format!("bearer {RED_TOKEN}"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn backends_are_limited_to_their_pmodes_and_parties() {
    let api = Api::start().await;
    // blue may not submit on red's P-Mode.
    refused(
        &api,
        BLUE_TOKEN,
        form(&main_metadata(&[]), &[]),
        403,
        "/errors/forbidden",
        Some("pmode"),
    )
    .await;

    // red's outbound and inbound messages are invisible to blue: 403 on every read route.
    let out = submit(
        &api,
        RED_TOKEN,
        form(
            &main_metadata(&[("doc", "application/xml")]),
            &[("doc", b"<d/>".to_vec())],
        ),
        None,
    )
    .await;
    let out: Value = out.json().await.expect("json");
    let mid = out["messageId"].as_str().expect("id").to_string();
    api.inbound("in-403@blue.test", &[("doc", "application/xml", b"<d/>")])
        .await;
    for path in [
        format!("/api/v1/messages/{mid}"),
        format!("/api/v1/messages/{mid}/payloads/doc"),
        format!("/api/v1/messages/{mid}/receipt"),
        "/api/v1/messages/in-403@blue.test".to_string(),
        "/api/v1/messages/in-403@blue.test/payloads/doc".to_string(),
    ] {
        expect_problem(
            api.get(&path, BLUE_TOKEN).await,
            403,
            "/errors/forbidden",
            None,
        )
        .await;
    }
    let resp = api
        .client
        .post(api.url("/api/v1/messages/in-403@blue.test/ack"))
        .bearer_auth(BLUE_TOKEN)
        .send()
        .await
        .expect("ack");
    expect_problem(resp, 403, "/errors/forbidden", None).await;
    let list: Value = api
        .get("/api/v1/messages", BLUE_TOKEN)
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));

    // "restricted" may submit only as its originalSender.
    refused(
        &api,
        RESTRICTED_TOKEN,
        form(
            &{
                let mut m = main_metadata(&[]);
                m["properties"][0]["value"] = "urn:someone:else".into();
                m
            },
            &[],
        ),
        403,
        "/errors/forbidden",
        Some("properties/0/value"),
    )
    .await;
    refused(
        &api,
        RESTRICTED_TOKEN,
        form(
            &{
                let mut m = main_metadata(&[]);
                m["properties"].as_array_mut().expect("props").remove(0);
                m
            },
            &[],
        ),
        403,
        "/errors/forbidden",
        Some("properties/originalSender"),
    )
    .await;
    let ok = submit(&api, RESTRICTED_TOKEN, form(&main_metadata(&[]), &[]), None).await;
    assert_eq!(ok.status(), 202);
    let ok: Value = ok.json().await.expect("json");
    // It reads its own message, and red's (same P-Mode, same sender) ...
    assert_eq!(
        api.get(
            &format!(
                "/api/v1/messages/{}",
                ok["messageId"].as_str().unwrap_or("")
            ),
            RESTRICTED_TOKEN
        )
        .await
        .status(),
        200
    );
    // ... but not a message of that P-Mode with another originalSender.
    let mut other = main_metadata(&[]);
    other["properties"][0]["value"] = "urn:someone:else".into();
    let other: Value = submit(&api, RED_TOKEN, form(&other, &[]), None)
        .await
        .json()
        .await
        .expect("json");
    expect_problem(
        api.get(
            &format!(
                "/api/v1/messages/{}",
                other["messageId"].as_str().unwrap_or("")
            ),
            RESTRICTED_TOKEN,
        )
        .await,
        403,
        "/errors/forbidden",
        None,
    )
    .await;
    let list: Value = api
        .get("/api/v1/messages", RESTRICTED_TOKEN)
        .await
        .json()
        .await
        .expect("list");
    let senders: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["properties"][0]["value"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(senders.len(), 2, "{list}");
    assert!(senders.iter().all(|s| *s == SENDER), "{senders:?}");
}

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let api = Api::start().await;
    expect_problem(
        api.get("/api/v2/messages", RED_TOKEN).await,
        404,
        "/errors/not-found",
        None,
    )
    .await;
}
