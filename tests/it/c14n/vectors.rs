//! `c14n/generated`: 41 Exclusive C14N vectors (xmlsec1, Santuario and, but for the two
//! `#default` cases, lxml agree on every expected output).

use std::collections::BTreeSet;

use as4gw::xml::{C14nOptions, Document};
use serde_json::Value;

use super::{assert_same, c14n};
use crate::support::{fixture, read_fixture};

const DIR: &str = "c14n/generated";

fn cases() -> Vec<Value> {
    let json: Value =
        serde_json::from_slice(&read_fixture(&format!("{DIR}/cases.json"))).expect("cases.json");
    assert_eq!(json["algorithm"], "http://www.w3.org/2001/10/xml-exc-c14n#");
    json["cases"].as_array().expect("cases array").clone()
}

#[test]
fn every_generated_vector_byte_for_byte() {
    let cases = cases();
    assert_eq!(cases.len(), 41, "the fixture set has 41 cases");

    // No case directory may be left out: the folders on disk are exactly the listed cases.
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixture(DIR))
        .expect("generated dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = cases
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(on_disk, listed, "case folders and cases.json disagree");

    let mut failures = Vec::new();
    for case in &cases {
        let name = case["id"].as_str().expect("id");
        let input = read_fixture(&format!("{DIR}/{name}/input.xml"));
        let expected = read_fixture(&format!("{DIR}/{name}/expected.c14n"));

        // The fixture's own integrity: expected.c14n is what was cross-checked.
        let sha = hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &expected,
        ));
        assert_eq!(
            Some(sha.as_str()),
            case["expected_sha256"].as_str(),
            "{name}: expected.c14n altered"
        );

        let prefixes: Vec<&str> = case["inclusive_namespaces_prefix_list"]
            .as_array()
            .expect("prefix list")
            .iter()
            .map(|p| p.as_str().expect("prefix"))
            .collect();
        let mut opts = C14nOptions::with_prefix_list(&prefixes.join(" "));
        opts.with_comments = case["with_comments"].as_bool().expect("with_comments");
        let id = match &case["target"] {
            Value::String(s) if s == "document" => None,
            t => Some(t["Id"].as_str().expect("target.Id").to_string()),
        };

        let doc = match Document::parse(&input) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: parse error {e}"));
                continue;
            }
        };
        let got = c14n(&doc, id.as_deref(), &opts);
        if got != expected {
            failures.push(format!(
                "{name}:\n  got      {:?}\n  expected {:?}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Two cases record lxml's wrong `#default` output; make sure ours is the spec's, not lxml's.
#[test]
fn default_prefixlist_cases_differ_from_recorded_lxml_output() {
    let mut seen = 0;
    for case in cases() {
        let Some(lxml) = case["lxml_output"].as_str() else {
            continue;
        };
        seen += 1;
        let name = case["id"].as_str().expect("id");
        let expected = read_fixture(&format!("{DIR}/{name}/expected.c14n"));
        assert_ne!(
            lxml.as_bytes(),
            expected.as_slice(),
            "{name}: lxml output recorded as wrong"
        );
        let doc =
            Document::parse(&read_fixture(&format!("{DIR}/{name}/input.xml"))).expect("parse");
        let list: Vec<&str> = case["inclusive_namespaces_prefix_list"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert!(list.contains(&"#default"));
        let got = c14n(
            &doc,
            Some("target"),
            &C14nOptions::with_prefix_list(&list.join(" ")),
        );
        assert_same(name, &got, &expected);
    }
    assert_eq!(seen, 2);
}
