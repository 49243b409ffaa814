//! `as4gw xml c14n`, run as a process: output bytes on stdout, refusals with exit code 2 and
//! a message that names the problem.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{as4gw_bin, fixture, read_fixture};

fn run(args: &[&str], file: &Path) -> Output {
    Command::new(as4gw_bin())
        .args(["xml", "c14n"])
        .args(args)
        .arg(file)
        .output()
        .expect("run as4gw")
}

#[track_caller]
fn assert_ok(out: &Output, expected: &[u8]) {
    assert!(
        out.status.success(),
        "exit {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(expected)
    );
    assert_eq!(out.stdout, expected);
}

#[track_caller]
fn assert_refused(out: &Output, needle: &str) {
    assert!(
        !out.status.success(),
        "expected a failure, got stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout when refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(needle),
        "stderr {err:?} should mention {needle:?}"
    );
}

#[test]
fn subtree_by_id_matches_vector() {
    for case in [
        "05-ns-pushed-down",
        "13-attr-value-escaping",
        "24-latin1-input",
    ] {
        let out = run(
            &["--id", "target"],
            &fixture(&format!("c14n/generated/{case}/input.xml")),
        );
        assert_ok(
            &out,
            &read_fixture(&format!("c14n/generated/{case}/expected.c14n")),
        );
    }
}

#[test]
fn prefix_list_and_comments() {
    let out = run(
        &[
            "--id",
            "target",
            "--inclusive-prefixes",
            "ds eb3 ebbp ebint wsa wsse xsd",
        ],
        &fixture("c14n/generated/35-as4-body-domibus-style/input.xml"),
    );
    assert_ok(
        &out,
        &read_fixture("c14n/generated/35-as4-body-domibus-style/expected.c14n"),
    );

    let sig = fixture("c14n/w3c-interop/merlin-exc-c14n-one/exc-signature.xml");
    let out = run(
        &[
            "--with-comments",
            "--inclusive-prefixes",
            "bar #default",
            "--id",
            "to-be-signed",
        ],
        &sig,
    );
    assert_ok(
        &out,
        &read_fixture("c14n/w3c-interop/merlin-exc-c14n-one/c14n-3.txt"),
    );
    let out = run(&["--id", "to-be-signed"], &sig);
    assert_ok(
        &out,
        &read_fixture("c14n/w3c-interop/merlin-exc-c14n-one/c14n-0.txt"),
    );
}

#[test]
fn whole_document() {
    let out = run(&[], &fixture("c14n/generated/40-whole-document/input.xml"));
    assert_ok(
        &out,
        &read_fixture("c14n/generated/40-whole-document/expected.c14n"),
    );
}

#[test]
fn inclusive_flag() {
    let out = run(
        &["--inclusive", "--with-comments"],
        &fixture("c14n/santuario-exc-c14n-examples/example2_2_1.xml"),
    );
    assert!(out.status.success());
    // Whole document: the root renders its own declarations, nothing is dropped as unused.
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with(r#"<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org">"#));
}

#[test]
fn missing_id_refused() {
    let out = run(
        &["--id", "nope"],
        &fixture("c14n/generated/05-ns-pushed-down/input.xml"),
    );
    assert_refused(&out, "no element with Id \"nope\"");
}

#[test]
fn duplicate_id_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("dup.xml");
    std::fs::write(
        &f,
        br#"<r xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"><a wsu:Id="x"/><b Id="x"/></r>"#,
    )
    .expect("write");
    let out = run(&["--id", "x"], &f);
    assert_refused(&out, "2 elements carry Id \"x\"");
    assert_refused(&out, "ambiguous");
}

#[test]
fn dtd_refused() {
    let out = run(
        &[],
        &fixture("c14n/w3c-interop/joseph-exc-c14n/signature-joseph-exc.xml"),
    );
    assert_refused(&out, "document type declarations (DTD) are refused");
}

#[test]
fn missing_file_refused() {
    let out = run(&[], Path::new("/nonexistent/as4gw-test.xml"));
    assert_refused(&out, "reading /nonexistent/as4gw-test.xml");
}
