//! Integration tests: XML parsing and canonicalization (`as4gw::xml`).
//!
//! - `vectors`: the 41 generated Exclusive C14N vectors, byte for byte;
//! - `interop`: the Exc-C14N Recommendation examples (Santuario) and the W3C XML-DSig interop
//!   vectors, each either run or asserted out of scope with the reason;
//! - `cli`: the `as4gw xml c14n` command, run as a process;
//! - `differential`: generated documents canonicalized by as4gw and by Python lxml;
//! - `hostile`: entity bombs, XXE, limits, invalid input, and a proptest that nothing panics.

mod cli;
mod differential;
mod hostile;
mod interop;
mod stream;
mod vectors;

use as4gw::xml::{canonicalize_document, canonicalize_subtree, C14nOptions, Document, Node};

use crate::support::read_fixture;

/// The signed phase4 Peppol receipt (`helger.as4in`) without its HTTP header block (which
/// ends at the first empty line; the capture uses bare LF line ends).
pub fn helger_envelope() -> Vec<u8> {
    let raw = read_fixture("interop/phase4/peppol-receipts/helger.as4in");
    let body_at = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 2)
        .or_else(|| raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4))
        .expect("end of the HTTP header block");
    assert!(
        raw[body_at..].starts_with(b"<?xml"),
        "envelope starts after the header block"
    );
    raw[body_at..].to_vec()
}

/// The single element carrying an attribute whose *local name* is `Id` (`Id`, `wsu:Id`, …) with
/// this value: the selection rule of `c14n/generated/cases.json` and of `xpointer(id(…))` in the
/// W3C vectors (whose `Id` attributes are unqualified). Panics unless exactly one matches, so a
/// test can never canonicalize the wrong element.
pub fn element_with_id<'a>(doc: &'a Document, value: &str) -> Node<'a> {
    let found: Vec<Node<'a>> = doc
        .elements()
        .filter(|n| {
            n.element()
                .is_some_and(|e| e.attributes().any(|a| a.local == "Id" && a.value == value))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one element with Id={value:?} expected, found {}",
        found.len()
    );
    found[0]
}

/// Canonical bytes of the element with this `Id`, or of the whole document when `id` is `None`.
pub fn c14n(doc: &Document, id: Option<&str>, opts: &C14nOptions) -> Vec<u8> {
    let mut out = Vec::new();
    match id {
        Some(id) => canonicalize_subtree(doc, element_with_id(doc, id).id(), opts, &mut out),
        None => canonicalize_document(doc, opts, &mut out),
    }
    out
}

/// Byte comparison with a readable failure message (both sides shown as text).
#[track_caller]
pub fn assert_same(what: &str, got: &[u8], expected: &[u8]) {
    if got != expected {
        panic!(
            "{what}: canonical bytes differ\n--- got ({} bytes)\n{}\n--- expected ({} bytes)\n{}\n",
            got.len(),
            String::from_utf8_lossy(got),
            expected.len(),
            String::from_utf8_lossy(expected)
        );
    }
}
