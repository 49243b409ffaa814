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
        let verdict = if r.passed() { "pass" } else { "FAIL" };
        let _ = writeln!(out, "{:<w$}  {:<c$}  {verdict}", r.name, r.category);
        for f in &r.failures {
            let _ = writeln!(out, "    - {f}");
        }
    }
    let passed = results.iter().filter(|r| r.passed()).count();
    let _ = writeln!(out, "{passed}/{} passed", results.len());
    out
}

/// JUnit XML: one testsuite, one testcase per scenario (classname = category).
pub fn junit(results: &[CaseResult]) -> String {
    let failures = results.iter().filter(|r| !r.passed()).count();
    let total: f64 = results.iter().map(|r| r.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"as4gw-conformance\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{total:.3}\">",
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
        if r.passed() {
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
    out
}

/// The interop matrix as Markdown: one row per scenario, one column per partner pair. A case a
/// partner cannot take part in is `—`; a case it can but that was not run is `not run`.
pub fn matrix(
    results: &[CaseResult],
    scenarios: &[super::Scenario],
    partners: &[(&str, Option<&[CaseResult]>)],
) -> String {
    let mut out = String::from("| case | category | as4gw ↔ as4gw |");
    for (p, _) in partners {
        let _ = write!(out, " as4gw ↔ {p} |");
    }
    out.push_str("\n|---|---|---|");
    for _ in partners {
        out.push_str("---|");
    }
    out.push('\n');
    let verdict = |r: &CaseResult| if r.passed() { "pass" } else { "FAIL" };
    for (r, s) in results.iter().zip(scenarios) {
        let _ = write!(out, "| {} | {} | {} |", r.name, r.category, verdict(r));
        for (p, res) in partners {
            let cell = if !s.partners.iter().any(|x| x == p) {
                "—"
            } else {
                match res.and_then(|rs| rs.iter().find(|x| x.name == r.name)) {
                    Some(x) => verdict(x),
                    None => "not run",
                }
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}
