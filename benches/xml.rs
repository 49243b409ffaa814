//! Parse + canonicalize a typical signed AS4 header: the phase4 Peppol receipt
//! (`tests/fixtures/interop/phase4/peppol-receipts/helger.as4in`, HTTP header block stripped),
//! whose signature covers eb:Messaging and S12:Body and whose SignedInfo is canonicalized with
//! PrefixList `S12`. Figures are in `docs/xml.md`.
//!
//! Run: `cargo bench --bench xml`

use as4gw::ns;
use as4gw::xml::{canonical_bytes, C14nOptions, Document};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn envelope() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/interop/phase4/peppol-receipts/helger.as4in"
    );
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let at = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| i + 2)
        .expect("end of the HTTP headers");
    raw[at..].to_vec()
}

/// What a receiver does per message before any cryptography: parse, then canonicalize the two
/// signed parts and SignedInfo.
fn verify_side_c14n(doc: &Document) -> usize {
    let root = doc.root();
    let header = root.child(ns::S12, "Header").expect("Header");
    let messaging = header.child(ns::EB, "Messaging").expect("Messaging");
    let body = root.child(ns::S12, "Body").expect("Body");
    let signed_info = doc
        .elements()
        .find(|n| n.is(ns::DS, "SignedInfo"))
        .expect("SignedInfo");
    let plain = C14nOptions::default();
    let si = C14nOptions::with_prefix_list("S12");
    canonical_bytes(doc, messaging.id(), &plain).len()
        + canonical_bytes(doc, body.id(), &plain).len()
        + canonical_bytes(doc, signed_info.id(), &si).len()
}

fn bench(c: &mut Criterion) {
    let input = envelope();
    let doc = Document::parse(&input).expect("parse");
    assert!(verify_side_c14n(&doc) > 0);

    let mut g = c.benchmark_group("as4-receipt");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| Document::parse(black_box(&input)).expect("parse"))
    });
    g.bench_function("c14n Messaging+Body+SignedInfo", |b| {
        b.iter(|| verify_side_c14n(black_box(&doc)))
    });
    g.bench_function("parse + c14n", |b| {
        b.iter(|| {
            let doc = Document::parse(black_box(&input)).expect("parse");
            verify_side_c14n(&doc)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
