//! Fixture access for the oots tests: headers, WS-plugin envelopes, structural comparison.

use as4gw::ns;
use as4gw::oots::{self, EdmDocument, HeaderFields, Rule};
use as4gw::xml::{Document, Node};
use base64::Engine;

use crate::support::read_fixture;

pub const GOV: &str = "oots/governikus-sdg/testfiles/Request-Response Samples";
pub const FR: &str = "oots/oots-france/fixtures";

pub fn birth(file: &str) -> String {
    format!("{GOV}/Birth Certificate/{file}")
}

pub fn education(file: &str) -> String {
    format!("{GOV}/Secondary Education Completion Evidence/{file}")
}

pub fn fr(file: &str) -> String {
    format!("{FR}/{file}")
}

/// The header fields of a file holding an `eb:Messaging` (alone or inside an envelope).
pub fn header(rel: &str) -> HeaderFields {
    let doc = Document::parse(&read_fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    HeaderFields::from_messaging(doc.root()).unwrap_or_else(|| panic!("{rel}: no eb:UserMessage"))
}

/// A Domibus WS-plugin envelope (submitRequest / retrieveMessageResponse): its header and
/// the decoded RegRep payload named by the first PartInfo.
pub fn envelope(rel: &str) -> (HeaderFields, Vec<u8>) {
    let bytes = read_fixture(rel);
    let doc = Document::parse(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let h = HeaderFields::from_messaging(doc.root())
        .unwrap_or_else(|| panic!("{rel}: no eb:UserMessage"));
    let first = h
        .parts
        .first()
        .unwrap_or_else(|| panic!("{rel}: no PartInfo"))
        .href
        .clone();
    let body = doc
        .root()
        .descendants()
        .find(|n| n.is(ns::S12, "Body"))
        .unwrap_or_else(|| panic!("{rel}: no soap:Body"));
    let payload = body
        .descendants()
        .find(|n| {
            n.is_element()
                && n.namespace().is_none()
                && n.local_name() == "payload"
                && n.attr(None, "payloadId") == Some(first.as_str())
        })
        .unwrap_or_else(|| panic!("{rel}: no payload {first}"));
    let value = payload
        .child_elements()
        .find(|n| n.local_name() == "value")
        .unwrap_or_else(|| panic!("{rel}: payload without value"));
    let b64: String = value
        .text()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '(' && *c != ')')
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("{rel}: base64: {e}"));
    (h, decoded)
}

pub fn parse(rel: &str, bytes: &[u8]) -> EdmDocument {
    oots::parse_edm(bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The set of rules broken, sorted, for exact comparison.
pub fn rules(h: &HeaderFields, d: &EdmDocument) -> Vec<Rule> {
    let mut r: Vec<Rule> = oots::check(h, d).into_iter().map(|v| v.rule).collect();
    r.sort_by_key(|r| r.id());
    r.dedup();
    r
}

/// Element structure in document order: namespace URI + local name, attributes (namespace
/// URI + local name = value, `xsi:type` resolved to `{ns}local`), and the trimmed text of
/// leaf elements. Prefixes, namespace declarations, comments and whitespace are ignored.
pub fn structure(xml: &[u8]) -> Vec<String> {
    let doc = Document::parse(xml).expect("structure: well-formed");
    let mut out = Vec::new();
    walk(doc.root(), 0, &mut out);
    out
}

fn walk(n: Node<'_>, depth: usize, out: &mut Vec<String>) {
    let Some(e) = n.element() else { return };
    let mut attrs: Vec<String> = e
        .attributes()
        .map(|a| {
            let value = if a.ns == Some(ns::XSI) && a.local == "type" {
                match a.value.split_once(':') {
                    Some((p, l)) => {
                        format!("{{{}}}{l}", n.lookup_namespace(Some(p)).unwrap_or("?"))
                    }
                    None => a.value.to_owned(),
                }
            } else {
                a.value.trim().to_owned()
            };
            format!("{{{}}}{}={}", a.ns.unwrap_or(""), a.local, value)
        })
        .collect();
    attrs.sort();
    let kids: Vec<Node<'_>> = n.child_elements().collect();
    let text = if kids.is_empty() {
        n.text().trim().to_owned()
    } else {
        String::new()
    };
    out.push(format!(
        "{}{{{}}}{} [{}] {}",
        "  ".repeat(depth),
        e.ns.unwrap_or(""),
        e.local,
        attrs.join(" "),
        text
    ));
    for k in kids {
        walk(k, depth + 1, out);
    }
}

/// Asserts two structures are equal, reporting the first differing line.
pub fn assert_same_structure(what: &str, expected: &[String], actual: &[String]) {
    for (i, (e, a)) in expected.iter().zip(actual.iter()).enumerate() {
        assert_eq!(e, a, "{what}: structure differs at element #{i}");
    }
    assert_eq!(
        expected.len(),
        actual.len(),
        "{what}: element count differs"
    );
}
