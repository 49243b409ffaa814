//! `as4gw conformance run`: every scenario passes, and a wrong expectation makes it fail.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(scenarios: &std::path::Path, junit: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_as4gw"))
        .current_dir(repo())
        .args(["conformance", "run", "--scenarios"])
        .arg(scenarios)
        .arg("--junit")
        .arg(junit)
        .output()
        .expect("run as4gw");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_scenario_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("junit.xml");
    let scenarios = repo().join("conformance/scenarios");
    let (code, out) = run(&scenarios, &junit);
    assert_eq!(code, Some(0), "{out}");
    let files = std::fs::read_dir(&scenarios)
        .expect("scenarios")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
        .count();
    assert!(files >= 40, "{files} scenarios");
    assert!(
        out.contains(&format!("{files}/{files} passed")),
        "every case reported as passed: {out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(
        xml.contains(&format!("tests=\"{files}\" failures=\"0\"")),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), files, "{xml}");
}

#[test]
fn a_wrong_expectation_fails_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scen = dir.path().join("scenarios");
    std::fs::create_dir_all(&scen).expect("dir");
    let src = repo().join("conformance/scenarios");
    // a correct case, and a copy expecting the wrong code
    let good = std::fs::read_to_string(src.join("receiver-0303-corrupt-gzip.toml")).expect("read");
    std::fs::write(scen.join("a-good.toml"), &good).expect("write");
    assert!(good.contains("code = \"EBMS:0303\""));
    std::fs::write(
        scen.join("b-wrong-code.toml"),
        good.replace("code = \"EBMS:0303\"", "code = \"EBMS:0101\""),
    )
    .expect("write");
    // a successful push claimed to be delivered never
    let push = std::fs::read_to_string(src.join("push-one-payload-115.toml")).expect("read");
    assert!(push.contains("delivered = \"once\""));
    std::fs::write(
        scen.join("c-wrong-delivery.toml"),
        push.replace("delivered = \"once\"", "delivered = \"never\""),
    )
    .expect("write");
    let junit = dir.path().join("junit.xml");
    let (code, out) = run(&scen, &junit);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("1/3 passed"), "{out}");
    assert!(
        out.contains("expected Some(\"EBMS:0101\"), got Some(\"EBMS:0303\")"),
        "{out}"
    );
    assert!(out.contains("expected no delivery, got 1"), "{out}");
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.contains("failures=\"2\""), "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");
}

/// The scenarios `--target` runs: no replay, no partner control, red sends, and no mutation
/// only an in-process partner can answer (read from the files, not from the runner).
fn remote_capable(scenarios: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(scenarios).expect("scenarios").flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).expect("read");
        let v: toml::Value = toml::from_str(&text).expect("toml");
        let control = v.get("needs-partner-control").and_then(|x| x.as_bool()) == Some(true);
        let replay = v.get("replay").is_some();
        let blue = v
            .get("send")
            .and_then(|s| s.get("from"))
            .and_then(|f| f.as_str())
            == Some("blue");
        let kind = v
            .get("mutation")
            .and_then(|m| m.get("kind"))
            .and_then(|k| k.as_str())
            .unwrap_or("");
        if !(control || replay || blue || kind == "stream-error" || kind == "impersonate") {
            names.push(p.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

/// `--target`: an in-process red sends over real HTTPS (mutual TLS) to a separately started
/// `as4gw serve` (blue); every case that needs no control of the partner passes, and blue
/// really received the pushed messages.
#[test]
fn run_against_a_serve_process_over_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_red, mut blue) = crate::msh::e2e::pair(dir.path(), 1, "1m", 30);
    blue.start();
    let blue_url = {
        let text = std::fs::read_to_string(&blue.config).expect("blue config");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("url = \"https://"))
            .expect("[as4] url");
        line.split('"').nth(1).expect("url").to_string()
    };
    let junit = dir.path().join("junit.xml");
    let out = Command::new(env!("CARGO_BIN_EXE_as4gw"))
        .current_dir(repo())
        .args(["conformance", "run", "--target", &blue_url, "--junit"])
        .arg(&junit)
        .output()
        .expect("run as4gw");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let want = remote_capable(&repo().join("conformance/scenarios"));
    assert!(want.len() >= 20, "{want:?}");
    let total = std::fs::read_dir(repo().join("conformance/scenarios"))
        .expect("dir")
        .count();
    assert!(
        text.contains(&format!("--target: {} of {total} cases", want.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{n}/{n} passed", n = want.len())),
        "{text}"
    );
    for name in &want {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name.as_str()) && l.ends_with("pass")),
            "{name} not run or not passed:\n{text}"
        );
    }
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert_eq!(xml.matches("<testcase ").count(), want.len(), "{xml}");
    // blue's backend view: the pushes arrived (RECEIVED), the refused ones did not
    let (status, body) = crate::msh::e2e::http(
        blue.api,
        "GET",
        "/api/v1/messages?direction=IN&limit=500",
        blue.token,
        "text/plain",
        b"",
    )
    .expect("list");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let received = v["items"].as_array().map(Vec::len).unwrap_or(0);
    assert!(received >= 5, "blue received {received}: {v}");

    // A wrong expectation against the same target fails the run.
    let scen = dir.path().join("wrong");
    std::fs::create_dir_all(&scen).expect("dir");
    let good = std::fs::read_to_string(
        repo().join("conformance/scenarios/receiver-0102-tampered-payload.toml"),
    )
    .expect("read");
    assert!(good.contains("code = \"EBMS:0102\""));
    std::fs::write(
        scen.join("wrong.toml"),
        good.replace("code = \"EBMS:0102\"", "code = \"EBMS:0101\""),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_as4gw"))
        .current_dir(repo())
        .args(["conformance", "run", "--target", &blue_url, "--scenarios"])
        .arg(&scen)
        .output()
        .expect("run as4gw");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("got Some(\"EBMS:0102\")"), "{text}");
}

/// The committed matrix is what `as4gw conformance matrix` writes (in-process, the Python
/// library over HTTPS, the fixture replays), so it cannot be edited by hand.
#[test]
fn committed_matrix_equals_the_command_output() {
    let python = crate::interop_as4py::venv_python(crate::interop_as4py::venv());
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("matrix.md");
    let junit = dir.path().join("junit.xml");
    let out = Command::new(env!("CARGO_BIN_EXE_as4gw"))
        .current_dir(repo())
        .args(["conformance", "matrix", "--python"])
        .arg(&python)
        .arg("--out")
        .arg(&out_file)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("run as4gw");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let produced = std::fs::read_to_string(&out_file).expect("matrix written");
    // the Python column really ran: passes there, and every unsupported case has a reason
    assert!(produced.contains("| pass | — |"), "{produced}");
    assert!(
        produced.contains("Not supported by the partner:"),
        "{produced}"
    );
    let committed =
        std::fs::read_to_string(repo().join("conformance/matrix.md")).expect("committed matrix");
    assert!(
        committed == produced,
        "conformance/matrix.md differs from `as4gw conformance matrix` (regenerate it):\n{produced}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        xml.contains("<skipped message=\"not supported by the partner"),
        "{xml}"
    );
    assert_eq!(
        xml.matches("<testsuite ").count(),
        2,
        "one suite per partner: {xml}"
    );
}

/// Every fixture recorded in expectations.json is replayed by exactly one case, and no replay
/// of a fixture whose SignedInfo does not verify as published expects a receipt.
#[test]
fn every_interop_fixture_has_a_replay_case() {
    let exp: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/fixtures/interop/expectations.json")).expect("read"),
    )
    .expect("json");
    let mut replays = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(repo().join("conformance/scenarios"))
        .expect("dir")
        .flatten()
    {
        let v: toml::Value =
            toml::from_str(&std::fs::read_to_string(e.path()).expect("read")).expect("toml");
        if let Some(f) = v
            .get("replay")
            .and_then(|r| r.get("fixture"))
            .and_then(|f| f.as_str())
        {
            let outcome = v["expect"]["outcome"].as_str().unwrap_or("").to_string();
            assert!(
                replays.insert(f.to_string(), outcome).is_none(),
                "{f} replayed twice"
            );
        }
    }
    let map = exp.as_object().expect("object");
    assert_eq!(replays.len(), map.len(), "one case per fixture");
    for (rel, entry) in map {
        let outcome = replays
            .get(&format!("tests/fixtures/{rel}"))
            .unwrap_or_else(|| panic!("{rel}: no replay case"));
        let sig = entry
            .pointer("/security/as_published/signatures/0/signedinfo_signature")
            .and_then(|s| s.as_str());
        if sig.is_some_and(|s| s != "valid") {
            assert_ne!(
                outcome, "receipt",
                "{rel}: signature {sig:?} but a receipt expected"
            );
        }
    }
}
