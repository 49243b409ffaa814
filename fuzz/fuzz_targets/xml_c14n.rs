//! XML parser and canonicalizer (`as4gw::xml`).
//!
//! Input layout: `<PrefixList>\n<xml document>` (the first line is the whitespace-separated
//! `InclusiveNamespaces/@PrefixList`; an input without a newline is all document, empty list).
//!
//! Every element subtree (up to 256 of them) is canonicalized with Exclusive C14N with and
//! without comments, with the PrefixList, and with inclusive C14N; the whole document too.
//! Properties: the canonical form of the root element is itself well-formed XML that parses,
//! and canonicalization is idempotent on it (c14n(parse(c14n(x))) == c14n(x)).
#![no_main]

use as4gw::xml::{
    canonical_bytes, canonicalize_document, C14nAlgorithm, C14nOptions, Document, Limits,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (list, xml) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) if nl < 256 => (
            String::from_utf8_lossy(&data[..nl]).into_owned(),
            &data[nl + 1..],
        ),
        _ => (String::new(), data),
    };
    let limits = Limits {
        max_bytes: 1 << 20,
        max_depth: 64,
        max_attributes: 64,
        max_nodes: 20_000,
    };
    let Ok(doc) = Document::parse_with(xml, &limits) else {
        return;
    };
    let mut variants = Vec::new();
    for with_comments in [false, true] {
        let mut o = C14nOptions::with_prefix_list(&list);
        o.with_comments = with_comments;
        variants.push(o);
        variants.push(C14nOptions {
            with_comments,
            inclusive_prefixes: Vec::new(),
            algorithm: C14nAlgorithm::Inclusive,
        });
    }
    let ids: Vec<_> = doc.elements().map(|n| n.id()).take(256).collect();
    for opts in &variants {
        for &id in &ids {
            let _ = canonical_bytes(&doc, id, opts);
        }
        let mut out = Vec::new();
        canonicalize_document(&doc, opts, &mut out);
    }
    // Idempotence of Exclusive C14N on the root element.
    for opts in variants
        .iter()
        .filter(|o| o.algorithm == C14nAlgorithm::Exclusive)
    {
        let first = canonical_bytes(&doc, doc.root().id(), opts);
        let again = match Document::parse(&first) {
            Ok(d) => d,
            Err(e) => panic!(
                "canonical form does not parse: {e}\n{}",
                String::from_utf8_lossy(&first)
            ),
        };
        let second = canonical_bytes(&again, again.root().id(), opts);
        assert_eq!(
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&second),
            "exclusive C14N is not idempotent"
        );
    }
});
