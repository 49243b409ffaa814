//! `docs/walkthrough.md`, executed: two real `as4gw serve` processes (temp copies of the demo
//! configurations on free ports, the demo P-Modes and their retry schedule) and exactly the
//! walkthrough's HTTP requests, with the metadata JSON and the payload files read from the
//! page itself, plus its `as4gw messages list|show` calls. If the page and the gateway drift
//! apart, this fails. No timed assertions: polling with generous deadlines only.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend::sha256_hex;
use crate::msh::e2e::{http, http_with, multipart, pair, Answer, Gateway, Submission};
use crate::support::as4gw_bin;

fn page() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/walkthrough.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The content of `cat > {file} <<'EOF'` … `EOF` on the page (with the final newline the
/// shell writes).
fn heredoc(page: &str, file: &str) -> Vec<u8> {
    let start = format!("cat > {file} <<'EOF'\n");
    let i = page
        .find(&start)
        .unwrap_or_else(|| panic!("walkthrough: no heredoc for {file}"))
        + start.len();
    let len = page[i..]
        .find("\nEOF\n")
        .unwrap_or_else(|| panic!("walkthrough: heredoc for {file} not closed"));
    format!("{}\n", &page[i..i + len]).into_bytes()
}

/// The `-F 'metadata=…;type=application/json'` JSON of the submission on the page.
fn metadata(page: &str) -> Value {
    let start = "-F 'metadata=";
    let i = page.find(start).expect("walkthrough: no metadata part") + start.len();
    let len = page[i..]
        .find(";type=application/json'")
        .expect("walkthrough: metadata part not closed");
    serde_json::from_str(&page[i..i + len]).expect("walkthrough: metadata is not JSON")
}

/// Asserts the page shows `line` (so the request below is the documented one).
fn documented(page: &str, line: &str) {
    assert!(
        page.contains(line),
        "docs/walkthrough.md no longer contains {line:?}"
    );
}

/// A `curl` URL of the page for gateway `g` ("8080" red, "9080" blue) and `path`.
fn url(demo_port: &str, path: &str) -> String {
    format!("http://127.0.0.1:{demo_port}{path}")
}

fn get(g: &Gateway, path: &str) -> Answer {
    http_with(g.api, "GET", path, g.token, "text/plain", &[], b"").expect("GET")
}

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

/// `as4gw messages …` against a running gateway; its stdout.
fn cli(g: &Gateway, args: &[&str]) -> String {
    let out = Command::new(as4gw_bin())
        .arg("messages")
        .args(args)
        .args(["--api", &format!("http://127.0.0.1:{}", g.api)])
        .args(["--token", g.token])
        .env_remove("AS4GW_API")
        .env_remove("AS4GW_TOKEN")
        .output()
        .expect("run as4gw messages");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "as4gw messages {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn walkthrough_round_trip_red_to_blue() {
    let page = page();
    let dir = tempfile::tempdir().expect("tempdir");
    // The demo P-Modes' own retry schedule (4 resends, 3 minutes apart).
    let (mut red, mut blue) = pair(dir.path(), 4, "3m", 600);

    // 1. Start red and blue; both healthy and ready.
    documented(&page, "cargo run --release -- serve ");
    documented(
        &page,
        "cargo run --release -- serve --config as4gw-blue.toml",
    );
    red.start();
    blue.start();
    for (g, port) in [(&red, "8080"), (&blue, "9080")] {
        documented(
            &page,
            &format!(
                "curl -sS {} -H \"Authorization: Bearer {}\"",
                url(port, "/api/v1/health"),
                g.token
            ),
        );
        let (st, _, b) = get(g, "/api/v1/health");
        let h = json(&b);
        assert_eq!(st, 200, "{h}");
        assert_eq!(h["ready"], true, "{h}");
        let names: Vec<&str> = h["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        for n in ["store", "pmodes", "as4-listener", "scheduler"] {
            assert!(names.contains(&n), "health lacks {n}: {h}");
        }
    }

    // 2. The payloads, as the page writes them.
    // The request is the official EDM v1.0 sample the page copies (blue answers a request that
    // breaks the OOTS rules with EDM:ERR:0003 instead of delivering it).
    documented(
        &page,
        "cp \"tests/fixtures/oots/governikus-sdg/testfiles/Request-Response Samples/Birth Certificate/oots_request.xml\" query.xml",
    );
    let query = crate::support::read_fixture(
        "oots/governikus-sdg/testfiles/Request-Response Samples/Birth Certificate/oots_request.xml",
    );
    let pdf = heredoc(&page, "evidence.pdf");
    assert!(pdf.starts_with(b"%PDF-"));

    // 3. Submit on red: the page's metadata and parts.
    documented(&page, "curl -sS -X POST http://127.0.0.1:8080/api/v1/messages \\\n  -H \"Authorization: Bearer red-demo-token\" \\\n  -F 'metadata=");
    documented(&page, "-F 'request=@query.xml;type=application/x-ebrs+xml'");
    documented(&page, "-F 'evidence=@evidence.pdf;type=application/pdf'");
    let meta = metadata(&page);
    assert_eq!(meta["pmode"], "oots-red-blue");
    let sub = Submission {
        meta,
        parts: vec![
            (
                "request".into(),
                "application/x-ebrs+xml".into(),
                query.clone(),
            ),
            ("evidence".into(), "application/pdf".into(), pdf.clone()),
        ],
    };
    let (ct, body) = multipart(&sub);
    let (st, _, b) = http_with(
        red.api,
        "POST",
        "/api/v1/messages",
        red.token,
        &ct,
        &[],
        &body,
    )
    .expect("submit");
    let res = json(&b);
    assert_eq!(st, 202, "{res}");
    assert_eq!(res["state"], "SUBMITTED", "{res}");
    assert_eq!(res["created"], true, "{res}");
    let id = res["messageId"].as_str().expect("messageId").to_string();
    assert!(id.ends_with("@red_gw"), "{id}");
    // The page puts $ID into URLs unencoded: it must need no percent-encoding.
    assert!(
        id.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~@".contains(&c)),
        "{id}"
    );

    // 4. ACKNOWLEDGED on red.
    documented(&page, "curl -sS \"http://127.0.0.1:8080/api/v1/messages/$ID\" -H \"Authorization: Bearer red-demo-token\"");
    let end = Instant::now() + Duration::from_secs(120);
    let view = loop {
        let (st, _, b) = get(&red, &format!("/api/v1/messages/{id}"));
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
        let v = json(&b);
        assert_ne!(v["state"], "FAILED", "{v}");
        if v["state"] == "ACKNOWLEDGED" {
            break v;
        }
        assert!(Instant::now() < end, "not acknowledged: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(view["direction"], "OUT");
    assert_eq!(view["hasReceipt"], true, "{view}");

    // 5. Arrived on blue: in the RECEIVED list and by id.
    documented(&page, "curl -sS -G http://127.0.0.1:9080/api/v1/messages -H \"Authorization: Bearer blue-demo-token\" \\\n  --data-urlencode direction=IN --data-urlencode state=RECEIVED");
    let (st, _, b) = get(&blue, "/api/v1/messages?direction=IN&state=RECEIVED");
    let list = json(&b);
    assert_eq!(st, 200, "{list}");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["messageId"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()], "{list}");
    documented(&page, "curl -sS \"http://127.0.0.1:9080/api/v1/messages/$ID\" -H \"Authorization: Bearer blue-demo-token\"");
    let (st, _, b) = get(&blue, &format!("/api/v1/messages/{id}"));
    let got = json(&b);
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["state"], "RECEIVED", "{got}");
    assert_eq!(got["direction"], "IN");
    assert_eq!(got["pmodeId"], "oots-red-blue");
    assert_eq!(got["action"], "ExecuteQueryRequest");

    // 6. Download both payloads on blue; the SHA-256 matches what red's backend sent (and
    //    the view and the Repr-Digest header say the same).
    for (name, sent, mt) in [
        ("evidence", &pdf, "application/pdf"),
        ("request", &query, "application/x-ebrs+xml"),
    ] {
        documented(
            &page,
            &format!("curl -sS \"http://127.0.0.1:9080/api/v1/messages/$ID/payloads/{name}\" -H \"Authorization: Bearer blue-demo-token\" -o received."),
        );
        let (st, headers, b) = get(&blue, &format!("/api/v1/messages/{id}/payloads/{name}"));
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
        assert_eq!(sha256_hex(&b), sha256_hex(sent), "{name}: SHA-256 differs");
        assert_eq!(&b, sent);
        let p = got["payloads"]
            .as_array()
            .expect("payloads")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no payload {name} in {got}"));
        assert_eq!(p["sha256"], sha256_hex(sent), "{p}");
        assert_eq!(p["mimeType"], mt, "{p}");
        let ctype = headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.as_str());
        assert_eq!(ctype, Some(mt));
        assert!(
            headers.iter().any(|(n, _)| n == "repr-digest"),
            "{headers:?}"
        );
    }
    documented(
        &page,
        "sha256sum evidence.pdf received.pdf query.xml received.xml",
    );

    // 7. Ack on blue: DELIVERED, changed; again: unchanged.
    documented(&page, "curl -sS -X POST \"http://127.0.0.1:9080/api/v1/messages/$ID/ack\" -H \"Authorization: Bearer blue-demo-token\"");
    for changed in [true, false] {
        let (st, b) = http(
            blue.api,
            "POST",
            &format!("/api/v1/messages/{id}/ack"),
            blue.token,
            "text/plain",
            b"",
        )
        .expect("ack");
        let a = json(&b);
        assert_eq!(st, 200, "{a}");
        assert_eq!(a["state"], "DELIVERED", "{a}");
        assert_eq!(a["changed"], changed, "{a}");
    }

    // 8. The signed receipt on red.
    documented(&page, "curl -sS \"http://127.0.0.1:8080/api/v1/messages/$ID/receipt\" -H \"Authorization: Bearer red-demo-token\" -o receipt.xml");
    let (st, headers, b) = get(&red, &format!("/api/v1/messages/{id}/receipt"));
    let receipt = String::from_utf8_lossy(&b).into_owned();
    assert_eq!(st, 200, "{receipt}");
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("application/xml")),
        "{headers:?}"
    );
    assert!(receipt.contains("NonRepudiationInformation"), "{receipt}");
    assert!(receipt.contains("Signature"), "{receipt}");
    assert!(receipt.contains(&id), "the receipt refers to the message");

    // 9. The admin CLI against both gateways.
    documented(
        &page,
        "cargo run --release -- messages list --api http://127.0.0.1:8080 --token red-demo-token\n",
    );
    documented(&page, "cargo run --release -- messages show \"$ID\" --api http://127.0.0.1:8080 --token red-demo-token");
    documented(&page, "cargo run --release -- messages list --api http://127.0.0.1:9080 --token blue-demo-token --direction IN");
    documented(&page, "cargo run --release -- messages show \"$ID\" --api http://127.0.0.1:9080 --token blue-demo-token");
    let out = cli(&red, &["list"]);
    assert!(out.contains(&id) && out.contains("ACKNOWLEDGED"), "{out}");
    let out = cli(&red, &["show", &id]);
    assert!(out.contains(&id) && out.contains("ACKNOWLEDGED"), "{out}");
    let out = cli(&blue, &["list", "--direction", "IN"]);
    assert!(out.contains(&id) && out.contains("DELIVERED"), "{out}");
    let out = cli(&blue, &["show", &id]);
    assert!(
        out.contains(&id) && out.contains("DELIVERED") && out.contains("evidence"),
        "{out}"
    );

    assert!(red.stop(), "red exits cleanly on SIGTERM");
    assert!(blue.stop(), "blue exits cleanly on SIGTERM");
}
