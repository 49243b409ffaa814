//! The outputs: a plain-text table, JUnit XML, and the interop matrix (Markdown).

use std::fmt::Write as _;

use super::run::CaseResult;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A fixed-width table, one line per case, failures indented below, and a summary line.
pub fn table(results: &[CaseResult]) -> String {
    let w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let c = results
        .iter()
        .map(|r| r.category.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = String::new();
    let _ = writeln!(out, "{:<w$}  {:<c$}  result", "case", "category");
    for r in results {
        let verdict = match (&r.not_supported, r.failed()) {
            (_, true) => "FAIL".to_string(),
            (Some(why), false) => format!("not supported: {why}"),
            (None, false) => "pass".to_string(),
        };
        let _ = writeln!(out, "{:<w$}  {:<c$}  {verdict}", r.name, r.category);
        for f in &r.failures {
            let _ = writeln!(out, "    - {f}");
        }
    }
    let passed = results.iter().filter(|r| r.passed()).count();
    let skipped = results.iter().filter(|r| r.not_supported.is_some()).count();
    let _ = write!(out, "{passed}/{} passed", results.len() - skipped);
    if skipped > 0 {
        let _ = write!(out, " ({skipped} not supported by the partner)");
    }
    out.push('\n');
    out
}

/// JUnit XML: one testsuite, one testcase per scenario (classname = category).
pub fn junit(results: &[CaseResult]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    suite(&mut out, "as4gw-conformance", results);
    out
}

/// JUnit XML with one testsuite per partner (`as4gw-conformance-<partner>`).
pub fn junit_suites(runs: &[(&str, &[CaseResult])]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for (partner, results) in runs {
        suite(&mut out, &format!("as4gw-conformance-{partner}"), results);
    }
    out.push_str("</testsuites>\n");
    out
}

fn suite(out: &mut String, name: &str, results: &[CaseResult]) {
    let failures = results.iter().filter(|r| r.failed()).count();
    let skipped = results.iter().filter(|r| r.not_supported.is_some()).count();
    let total: f64 = results.iter().map(|r| r.seconds).sum();
    let _ = writeln!(
        out,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{total:.3}\">",
        xml_escape(name),
        results.len()
    );
    for r in results {
        let _ = write!(
            out,
            "  <testcase classname=\"conformance.{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&r.category),
            xml_escape(&r.name),
            r.seconds
        );
        if let (Some(why), false) = (&r.not_supported, r.failed()) {
            let _ = writeln!(
                out,
                ">\n    <skipped message=\"not supported by the partner: {}\"/>\n  </testcase>",
                xml_escape(why)
            );
        } else if r.passed() {
            out.push_str("/>\n");
        } else {
            out.push_str(">\n");
            let _ = writeln!(
                out,
                "    <failure message=\"{}\">{}</failure>",
                xml_escape(r.failures.first().map(String::as_str).unwrap_or("")),
                xml_escape(&r.failures.join("\n"))
            );
            out.push_str("  </testcase>\n");
        }
    }
    out.push_str("</testsuite>\n");
}

/// The interop matrix as Markdown: one row per scenario; a column for as4gw against itself
/// (in-process), for the Python library over HTTPS, and for the fixture replays. Cells: `pass`,
/// `FAIL`, `not supported [n]` (the reasons listed below the table), `—` (not this column's
/// kind of case). Deterministic: no timings, so the committed file can be compared.
pub fn matrix(
    scenarios: &[super::Scenario],
    in_process: &[CaseResult],
    as4py: &[CaseResult],
) -> String {
    let mut reasons: Vec<String> = Vec::new();
    let mut fails: Vec<String> = Vec::new();
    let mut cell = |r: Option<&CaseResult>| -> String {
        match r {
            None => "not run".to_string(),
            Some(r) if r.failed() => {
                // the first failure without the answer's detail (which names message ids)
                let first = r.failures.first().map(String::as_str).unwrap_or_default();
                let first = first.split(" (HTTP").next().unwrap_or(first).to_string();
                let n = match fails.iter().position(|x| *x == first) {
                    Some(i) => i + 1,
                    None => {
                        fails.push(first);
                        fails.len()
                    }
                };
                format!("FAIL [f{n}]")
            }
            Some(CaseResult {
                not_supported: Some(why),
                ..
            }) => {
                let n = match reasons.iter().position(|x| x == why) {
                    Some(i) => i + 1,
                    None => {
                        reasons.push(why.clone());
                        reasons.len()
                    }
                };
                format!("not supported [{n}]")
            }
            Some(_) => "pass".to_string(),
        }
    };
    let find = |rs: &[CaseResult], name: &str| rs.iter().find(|x| x.name == name).cloned();
    let mut out = String::from(
        "| case | category | as4gw ↔ as4gw (in-process) | as4gw ↔ as4py 0.2.0 (HTTPS) | fixture replay → as4gw |\n|---|---|---|---|---|\n",
    );
    let mut count = [[0usize; 3]; 3];
    for s in scenarios {
        let own = find(in_process, &s.name);
        let (a, b, c) = if s.replay.is_some() {
            let mut v = cell(own.as_ref());
            if v == "pass" {
                // the recorded verdict the replay met
                if let Some(code) = &s.expect.code {
                    v = format!("pass ({code})");
                }
            }
            ("—".to_string(), "—".to_string(), v)
        } else {
            let a = cell(own.as_ref());
            let b = cell(find(as4py, &s.name).as_ref());
            (a, b, "—".to_string())
        };
        for (i, v) in [&a, &b, &c].into_iter().enumerate() {
            if v.starts_with("pass") {
                count[i][0] += 1;
            } else if v.starts_with("FAIL") {
                count[i][1] += 1;
            } else if v.starts_with("not supported") {
                count[i][2] += 1;
            }
        }
        let _ = writeln!(out, "| {} | {} | {a} | {b} | {c} |", s.name, s.category);
    }
    let _ = writeln!(
        out,
        "| **total** | | {} pass, {} fail | {} pass, {} fail, {} not supported | {} pass, {} fail |",
        count[0][0], count[0][1], count[1][0], count[1][1], count[1][2], count[2][0], count[2][1]
    );
    if !fails.is_empty() {
        out.push_str("\nFailures (first unmet expectation):\n\n");
        for (i, r) in fails.iter().enumerate() {
            let _ = writeln!(out, "- f{}: {r}", i + 1);
        }
    }
    if !reasons.is_empty() {
        out.push_str("\nNot supported by the partner:\n\n");
        for (i, r) in reasons.iter().enumerate() {
            let _ = writeln!(out, "{}. {r}", i + 1);
        }
    }
    out
}
