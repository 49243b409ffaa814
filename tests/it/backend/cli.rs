//! The admin CLI (`as4gw messages …`) against a running API.

use std::process::Output;

use as4gw::ebms::EbmsCode;
use as4gw::store::{Direction, MessageStore, Outcome};
use serde_json::Value;

use super::*;
use crate::support::as4gw_bin;

/// Runs `as4gw messages <args>` against `api` (token from AS4GW_TOKEN) off the runtime thread.
async fn cli(api: &Api, token: &str, args: &[&str]) -> Output {
    let base = api.base.clone();
    let token = token.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(as4gw_bin())
            .arg("messages")
            .arg("--api")
            .arg(base)
            .args(args)
            .env("AS4GW_TOKEN", token)
            .env_remove("AS4GW_API")
            .output()
            .expect("run as4gw")
    })
    .await
    .expect("join")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn list_show_payload_and_retry() {
    let api = Api::start().await;
    let resp = submit(
        &api,
        RED_TOKEN,
        form(
            &main_metadata(&[("doc", "application/xml"), ("pdf", "application/pdf")]),
            &[("doc", b"<d/>".to_vec()), ("pdf", vec![1, 2, 3, 4])],
        ),
        None,
    )
    .await;
    let body: Value = resp.json().await.expect("json");
    let mid = body["messageId"].as_str().expect("id").to_string();
    api.inbound("cli-in@blue.test", &[("doc", "application/xml", b"<in/>")])
        .await;

    // list: table and JSON.
    let o = cli(&api, RED_TOKEN, &["list"]).await;
    assert!(o.status.success(), "{o:?}");
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("MESSAGE ID"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[1].contains("cli-in@blue.test") && lines[1].contains("RECEIVED"),
        "{table}"
    );
    assert!(
        lines[2].contains(&mid) && lines[2].contains("SUBMITTED"),
        "{table}"
    );
    let o = cli(&api, RED_TOKEN, &["list", "--direction", "IN", "--json"]).await;
    let v: Value = serde_json::from_slice(&o.stdout).expect("list JSON");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["items"][0]["messageId"], "cli-in@blue.test");
    // --all follows the cursor.
    let o = cli(
        &api,
        RED_TOKEN,
        &["list", "--limit", "1", "--all", "--json"],
    )
    .await;
    let pages: Vec<Value> = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("pages");
    assert_eq!(pages.len(), 2);

    // show.
    let o = cli(&api, RED_TOKEN, &["show", &mid]).await;
    assert!(o.status.success(), "{o:?}");
    let s = stdout(&o);
    assert!(s.contains(&format!("MessageId:      {mid}")), "{s}");
    assert!(s.contains("pdf  application/pdf  4 bytes"), "{s}");
    let o = cli(&api, RED_TOKEN, &["show", &mid, "--json"]).await;
    let v: Value = serde_json::from_slice(&o.stdout).expect("show JSON");
    assert_eq!(v["messageId"], mid.as_str());
    assert_eq!(v["events"][0]["to"], "SUBMITTED");

    // payload: to stdout and to a file.
    let o = cli(&api, RED_TOKEN, &["payload", &mid, "pdf"]).await;
    assert_eq!(o.stdout, vec![1, 2, 3, 4]);
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("doc.xml");
    let o = cli(
        &api,
        RED_TOKEN,
        &["payload", &mid, "doc", "-o", file.to_str().expect("path")],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(std::fs::read(&file).expect("file"), b"<d/>");

    // Refusals: exit 1 with the problem on stderr; no token at all is a usage error (2).
    let o = cli(&api, RED_TOKEN, &["show", "missing@red.test"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("404 /errors/not-found"),
        "{o:?}"
    );
    let o = cli(&api, "wrong", &["list"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("401 /errors/unauthorized"),
        "{o:?}"
    );
    let o = cli(&api, RED_TOKEN, &["retry", &mid]).await;
    assert_eq!(o.status.code(), Some(2), "only FAILED messages: {o:?}");

    // retry of a FAILED message: a new message with the same payloads, once.
    let rec = stored(&api.store, Direction::Outbound, &mid).await;
    let now = time::OffsetDateTime::now_utc();
    api.store
        .lease_due(now, "msh", 10, time::Duration::minutes(1))
        .await
        .expect("lease");
    api.store
        .finish_attempt(
            rec.id,
            "msh",
            now,
            Outcome::Failed {
                code: EbmsCode::ConnectionFailure,
                detail: "down".into(),
            },
            None,
        )
        .await
        .expect("fail");
    let o = cli(&api, RED_TOKEN, &["retry", &mid, "--json"]).await;
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("retry JSON");
    assert_eq!(v["created"], true);
    let new_id = v["messageId"].as_str().expect("id").to_string();
    assert_ne!(new_id, mid);
    let new = stored(&api.store, Direction::Outbound, &new_id).await;
    assert_eq!(new.conversation_id, rec.conversation_id);
    assert_eq!(new.properties, rec.properties);
    let sums = |r: &as4gw::store::MessageRecord| -> Vec<(String, String)> {
        r.payloads
            .iter()
            .map(|p| (p.mime_type.clone(), p.file.sha256_hex()))
            .collect()
    };
    assert_eq!(sums(&new), sums(&rec));
    let o = cli(&api, RED_TOKEN, &["retry", &mid]).await;
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).contains("already resubmitted earlier"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains(&new_id));
}
