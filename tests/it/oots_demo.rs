//! `docs/oots-demo.md`, executed: two real `as4gw serve` processes (temp copies of the demo
//! configurations on free ports, as `walkthrough.rs` does) and the page's OOTS helper calls —
//! request with possibility for preview on red, "preview required" from blue, the second
//! request, the response with a PDF, red's exchange view and the byte-identical download.
//! The request, exception and response JSON are read from the page, and every key the page
//! shows in an answer must occur in the real answer: if the page and the gateway drift apart,
//! this fails. No timed assertions: polling with generous deadlines only.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::sha256_hex;
use crate::msh::e2e::{http_with, multipart, pair, pct, Answer, Gateway, Submission};

fn page() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/oots-demo.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Asserts the page shows `line` (so the request below is the documented one).
fn documented(page: &str, line: &str) {
    assert!(
        page.contains(line),
        "docs/oots-demo.md no longer contains {line:?}"
    );
}

/// Text between `start` (first occurrence at or after `from`) and the next `end`; the byte
/// offset after it.
fn between<'a>(page: &'a str, from: usize, start: &str, end: &str) -> (&'a str, usize) {
    let i = page[from..]
        .find(start)
        .unwrap_or_else(|| panic!("oots-demo: no {start:?} after byte {from}"))
        + from
        + start.len();
    let len = page[i..]
        .find(end)
        .unwrap_or_else(|| panic!("oots-demo: {start:?} not closed by {end:?}"));
    (&page[i..i + len], i + len)
}

/// The first ```` ```json ```` block after `marker`.
fn json_block<'a>(page: &'a str, marker: &str) -> &'a str {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("oots-demo: no {marker:?}"));
    between(page, at, "```json\n", "\n```").0
}

/// The keys (`"name":`) a documented answer shows; the answer blocks elide with `…`, so they
/// are not JSON, but each key they show must be a key of the real answer.
fn shown_keys(block: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut rest = block;
    while let Some(i) = rest.find('"') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('"') else { break };
        let word = &after[..j];
        let tail = &after[j + 1..];
        if tail.trim_start().starts_with(':')
            && !word.is_empty()
            && word.chars().all(|c| c.is_ascii_alphanumeric())
        {
            keys.insert(word.to_string());
            rest = tail;
        } else {
            rest = &after[j + 1..];
        }
    }
    keys
}

fn all_keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                all_keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| all_keys(x, out)),
        _ => {}
    }
}

/// Every key the page shows in the answer after `marker` occurs in `real`.
fn answer_matches_page(page: &str, marker: &str, real: &Value) {
    let mut have = BTreeSet::new();
    all_keys(real, &mut have);
    let shown = shown_keys(json_block(page, marker));
    assert!(!shown.is_empty(), "no keys in the answer after {marker:?}");
    let missing: Vec<&String> = shown.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "docs/oots-demo.md shows {missing:?} after {marker:?}, the real answer lacks them: {real}"
    );
}

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

fn get(g: &Gateway, path: &str) -> Answer {
    http_with(g.api, "GET", path, g.token, "text/plain", &[], b"").expect("GET")
}

fn get_json(g: &Gateway, path: &str) -> Value {
    let (st, _, b) = get(g, path);
    let v = json(&b);
    assert_eq!(st, 200, "GET {path}: {v}");
    v
}

/// POST a JSON body; expects 202 and returns the answer.
fn post_json(g: &Gateway, path: &str, body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).expect("json");
    let (st, _, b) = http_with(
        g.api,
        "POST",
        path,
        g.token,
        "application/json",
        &[],
        &bytes,
    )
    .expect("POST");
    let v = json(&b);
    assert_eq!(st, 202, "POST {path}: {v}");
    assert_eq!(v["state"], "SUBMITTED", "{v}");
    v
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// Polls `GET /oots/exchanges/{x}` until `done`; returns the last view.
fn wait_exchange(g: &Gateway, x: &str, done: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let (st, _, b) = get(g, &format!("/api/v1/oots/exchanges/{}", pct(x)));
        if st == 200 {
            let v = json(&b);
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < end, "{}: exchange stuck at {v}", g.name);
        } else {
            assert!(
                Instant::now() < end,
                "{}: exchange {x}: {st} {}",
                g.name,
                String::from_utf8_lossy(&b)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls until the outbound message is ACKNOWLEDGED (a receipt came back).
fn acknowledged(g: &Gateway, mid: &str) {
    let v = g.wait_state("OUT", mid, Duration::from_secs(120), |v| {
        assert_ne!(v["state"], "FAILED", "{v}");
        v["state"] == "ACKNOWLEDGED"
    });
    assert_eq!(v["hasReceipt"], true, "{v}");
}

#[test]
fn oots_demo_preview_flow_red_to_blue_and_back() {
    let page = page();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut red, mut blue) = pair(dir.path(), 4, "3m", 600);
    documented(&page, "as4gw serve --config as4gw.toml &");
    documented(&page, "as4gw serve --config as4gw-blue.toml &");
    documented(
        &page,
        "RED=http://127.0.0.1:8080/api/v1   BLUE=http://127.0.0.1:9080/api/v1",
    );
    documented(&page, "RT='Authorization: Bearer red-demo-token'");
    documented(&page, "BT='Authorization: Bearer blue-demo-token'");
    red.start();
    blue.start();

    // 1. red: the request of the page, with possibility for preview.
    let request: Value = serde_json::from_str(json_block(&page, "`request.json`"))
        .expect("request.json on the page is JSON");
    assert_eq!(request["possibilityForPreview"], true);
    documented(&page, "curl -s -H \"$RT\" -H 'Content-Type: application/json' --data @request.json $RED/oots/requests");
    let a1 = post_json(&red, "/api/v1/oots/requests", &request);
    answer_matches_page(&page, "--data @request.json $RED/oots/requests", &a1);
    assert_eq!(a1["pmodeId"], "oots-v2-red-blue", "{a1}");
    assert_eq!(a1["conversationId"], a1["exchangeId"], "{a1}");
    assert!(s(&a1["requestId"]).starts_with("urn:uuid:"), "{a1}");
    let x = s(&a1["exchangeId"]);
    let mid1 = s(&a1["messageId"]);
    assert!(mid1.ends_with("@red_gw"), "{mid1}");
    assert_eq!(
        a1["exchange"],
        format!("/api/v1/oots/exchanges/{x}").as_str()
    );
    acknowledged(&red, &mid1);
    documented(&page, "curl -s -H \"$RT\" $RED/oots/exchanges/$X");
    let rx = wait_exchange(&red, &x, |_| true);
    answer_matches_page(&page, "X=9f4e…   # exchangeId", &rx);
    assert_eq!(rx["status"], "REQUESTED", "{rx}");
    assert_eq!(rx["edmVersion"], "v2");
    assert_eq!(rx["requests"][0]["messageId"], mid1.as_str());
    assert_eq!(rx["requests"][0]["direction"], "OUT");
    assert_eq!(rx["requests"][0]["state"], "ACKNOWLEDGED", "{rx}");
    assert_eq!(rx["requests"][0]["document"]["possibilityForPreview"], true);
    assert_eq!(rx["timing"]["waitingFor"], "response");
    assert_eq!(rx["timing"]["t1Seconds"], 360);

    // 2. blue sees the request (same MessageId) and answers "preview required".
    documented(&page, "`GET $BLUE/messages?direction=IN&state=RECEIVED`");
    let list = get_json(&blue, "/api/v1/messages?direction=IN&state=RECEIVED");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["messageId"].as_str())
        .collect();
    assert_eq!(ids, [mid1.as_str()], "{list}");
    let bx = wait_exchange(&blue, &x, |_| true);
    assert_eq!(bx["requests"][0]["messageId"], mid1.as_str(), "{bx}");
    assert_eq!(bx["requests"][0]["direction"], "IN");

    let (data, _) = between(&page, 0, "$BLUE/oots/exceptions --data '", "'\n```");
    let mut exception: Value = serde_json::from_str(&data.replace("'\"'\"'", "'"))
        .expect("the exception body on the page is JSON");
    assert_eq!(exception["requestMessageId"], "5b0c…@red_gw");
    exception["requestMessageId"] = mid1.clone().into();
    let preview = s(&exception["previewLocation"]);
    let e = post_json(&blue, "/api/v1/oots/exceptions", &exception);
    answer_matches_page(&page, "$BLUE/oots/exceptions --data '", &e);
    assert_eq!(e["pmodeId"], "oots-v2-blue-red", "{e}");
    assert_eq!(e["exchangeId"], x.as_str());
    assert_eq!(e["conversationId"], a1["conversationId"]);
    assert_eq!(e["requestId"], a1["requestId"]);
    let emid = s(&e["messageId"]);
    assert!(emid.ends_with("@blue_gw"), "{emid}");
    acknowledged(&blue, &emid);

    let rx = wait_exchange(&red, &x, |v| v["status"] != "REQUESTED");
    answer_matches_page(&page, "Any\nother EDM error", &rx);
    assert_eq!(rx["status"], "PREVIEW_REQUIRED", "{rx}");
    assert_eq!(rx["previewLocation"], preview.as_str());
    assert_eq!(rx["timing"]["waitingFor"], "secondRequest");
    let ex = &rx["exceptions"][0];
    assert_eq!(ex["messageId"], emid.as_str());
    assert_eq!(ex["direction"], "IN");
    assert_eq!(ex["action"], "ExceptionResponse");
    assert_eq!(ex["document"]["kind"], "queryResponse");
    assert_eq!(ex["document"]["requestId"], a1["requestId"]);
    assert_eq!(ex["document"]["errorProvider"]["classification"], "ERRP");
    let exc = &ex["document"]["exceptions"][0];
    assert_eq!(exc["code"], "EDM:ERR:0002", "{ex}");
    assert_eq!(exc["exceptionType"], "AuthorizationExceptionType");
    assert_eq!(
        exc["severity"],
        "urn:sr.oots.tech.ec.europa.eu:codes:ErrorSeverity:EDMErrorResponse:PreviewRequired"
    );
    assert_eq!(exc["previewLocation"], preview.as_str());
    assert_eq!(exc["previewMethod"], "GET");

    // 3. red: the second request — the page's jq merge, done here on the JSON.
    documented(&page, "jq --arg x \"$X\" '. + {exchangeId: $x, conversationId: $x,\n   previewLocation: \"https://preview.blue.test/space?token=abc\",\n   returnLocation: \"https://portal.red.test/return\"}' request.json > request2.json");
    documented(&page, "--data @request2.json $RED/oots/requests");
    let mut r2 = request.clone();
    r2["exchangeId"] = x.clone().into();
    r2["conversationId"] = x.clone().into();
    r2["previewLocation"] = "https://preview.blue.test/space?token=abc".into();
    r2["returnLocation"] = "https://portal.red.test/return".into();
    assert_eq!(r2["previewLocation"], preview.as_str());
    let a2 = post_json(&red, "/api/v1/oots/requests", &r2);
    answer_matches_page(&page, "--data @request2.json $RED/oots/requests", &a2);
    assert_eq!(a2["exchangeId"], x.as_str());
    assert_eq!(a2["pmodeId"], "oots-v2-red-blue");
    assert_ne!(a2["requestId"], a1["requestId"]);
    let mid2 = s(&a2["messageId"]);
    acknowledged(&red, &mid2);
    let rx = wait_exchange(&red, &x, |_| true);
    assert_eq!(rx["status"], "PREVIEW_REQUESTED", "{rx}");
    assert_eq!(rx["timing"]["waitingFor"], "responseAfterPreview");

    // 4. blue: the response with the PDF, metadata from the page.
    documented(
        &page,
        "curl -s -H \"$BT\" $BLUE/oots/responses \\\n  -F 'metadata=",
    );
    documented(
        &page,
        "-F 'birth-certificate=@birth.pdf;type=application/pdf'",
    );
    let (meta, _) = between(&page, 0, "-F 'metadata=", ";type=application/json'");
    let mut meta: Value =
        serde_json::from_str(meta).expect("the response metadata on the page is JSON");
    assert_eq!(meta["requestMessageId"], "77aa…@red_gw");
    meta["requestMessageId"] = mid2.clone().into();
    let pdf: Vec<u8> = b"%PDF-1.7\n"
        .iter()
        .copied()
        .chain((0..40_000u32).map(|i| (i * 31 % 251) as u8))
        .collect();
    let (ct, body) = multipart(&Submission {
        meta,
        parts: vec![(
            "birth-certificate".into(),
            "application/pdf".into(),
            pdf.clone(),
        )],
    });
    let (st, _, b) = http_with(
        blue.api,
        "POST",
        "/api/v1/oots/responses",
        blue.token,
        &ct,
        &[],
        &body,
    )
    .expect("POST responses");
    let r = json(&b);
    assert_eq!(st, 202, "{r}");
    answer_matches_page(&page, "-F 'birth-certificate=@birth.pdf", &r);
    assert_eq!(r["state"], "SUBMITTED", "{r}");
    assert_eq!(r["exchangeId"], x.as_str());
    assert_eq!(r["requestId"], a2["requestId"]);
    assert_eq!(r["pmodeId"], "oots-v2-blue-red");
    let rmid = s(&r["messageId"]);
    let bview = get_json(&blue, &format!("/api/v1/messages/{}", pct(&rmid)));
    assert_eq!(bview["payloads"][0]["mimeType"], "application/x-ebrs+xml");
    assert_eq!(
        bview["payloads"][0]["partId"], "cid:regrep@blue_gw",
        "{bview}"
    );
    assert_eq!(bview["payloads"][1]["mimeType"], "application/pdf");
    assert_eq!(
        bview["payloads"][1]["partId"], "cid:birth-certificate@blue_gw",
        "{bview}"
    );
    let regrep = blue.payload("OUT", &rmid, "regrep");
    let regrep = String::from_utf8_lossy(&regrep);
    documented(&page, "<rim:RepositoryItemRef xlink:href=\"cid:birth-certificate@blue_gw\" xlink:title=\"birth-certificate\"/>");
    assert!(
        regrep.contains("xlink:href=\"cid:birth-certificate@blue_gw\"")
            && regrep.contains("xlink:title=\"birth-certificate\""),
        "{regrep}"
    );
    acknowledged(&blue, &rmid);

    // 5. red: the whole exchange, and the PDF byte-identical.
    let rx = wait_exchange(&red, &x, |v| v["status"] == "ANSWERED");
    answer_matches_page(&page, "## 5. red: the whole exchange", &rx);
    assert_eq!(rx["requests"].as_array().map(Vec::len), Some(2), "{rx}");
    assert_eq!(rx["requests"][0]["messageId"], mid1.as_str());
    assert_eq!(rx["requests"][1]["messageId"], mid2.as_str());
    assert_eq!(
        rx["requests"][1]["document"]["previewLocation"],
        preview.as_str()
    );
    assert_eq!(
        rx["requests"][1]["document"]["returnLocation"],
        "https://portal.red.test/return"
    );
    assert_eq!(rx["exceptions"][0]["messageId"], emid.as_str());
    assert_eq!(rx["response"]["messageId"], rmid.as_str());
    assert_eq!(rx["response"]["direction"], "IN");
    assert_eq!(rx["response"]["action"], "ExecuteQueryResponse");
    assert_eq!(rx["previewLocation"], preview.as_str());
    assert!(rx["timing"]["waitingFor"].is_null(), "{rx}");
    assert!(rx["timing"]["deadline"].is_null(), "{rx}");
    assert_eq!(rx["timing"]["timedOut"], false);
    let ev = &rx["evidences"][0];
    assert_eq!(ev["partRef"], "cid:birth-certificate@blue_gw", "{rx}");
    assert_eq!(ev["mimeType"], "application/pdf");
    documented(&page, "\"size\":40009");
    assert_eq!(ev["size"], 40009);
    assert_eq!(ev["size"], pdf.len() as u64);
    assert_eq!(ev["sha256"], sha256_hex(&pdf));
    let href = s(&ev["href"]);
    assert_eq!(
        href,
        format!("/api/v1/messages/{rmid}/payloads/birth-certificate?direction=IN")
    );
    documented(&page, "curl -s -H \"$RT\" -o evidence.pdf \"http://127.0.0.1:8080/api/v1/messages/a3f9…@blue_gw/payloads/birth-certificate?direction=IN\"");
    let (st, headers, got) = get(&red, &href);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&got));
    let ctype = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(ctype, Some("application/pdf"));
    assert!(got == pdf, "the PDF arrives byte-identical");

    documented(
        &page,
        "curl -s -X POST -H \"$RT\" \"$RED/messages/a3f9…@blue_gw/ack\"   # RECEIVED → DELIVERED",
    );
    let (st, _, b) = http_with(
        red.api,
        "POST",
        &format!("/api/v1/messages/{}/ack", pct(&rmid)),
        red.token,
        "text/plain",
        &[],
        b"",
    )
    .expect("ack");
    let a = json(&b);
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["state"], "DELIVERED", "{a}");

    assert!(red.stop(), "red exits cleanly on SIGTERM");
    assert!(blue.stop(), "blue exits cleanly on SIGTERM");
}
