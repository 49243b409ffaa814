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
