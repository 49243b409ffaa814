//! Security benchmarks: sign+encrypt and decrypt+verify per suite at 4 KB and 1 MB, and the raw
//! primitives they are built on, in one run (see docs/security.md for the ratios).
//!
//! `cargo bench --bench security`

use std::hint::black_box;

use as4gw::pki::{Certificate, KeyType, PrivateKey, Purpose, TrustStore};
use as4gw::security::crypto::{AwsLc, Crypto, Oaep};
use as4gw::security::sign::{secure_outbound, SenderConfig};
use as4gw::security::{
    process_inbound, Attachment, InboundPolicy, KeyReference, OwnKey, Receiver, Suite, TokenType,
};
use as4gw::xml::{canonical_bytes, C14nOptions, Document};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use time::macros::datetime;

struct Pki {
    ca: Certificate,
    blue_rsa: OwnKey,
    blue_ed: OwnKey,
    red_rsa: OwnKey,
    red_x: OwnKey,
}

fn rc(k: &PrivateKey) -> KeyPair {
    KeyPair::try_from(k.to_pkcs8_der().expect("der").as_slice()).expect("key")
}

fn pki() -> Pki {
    let ca_key = PrivateKey::generate(KeyType::Ed25519).expect("ca");
    let ca_rc = rc(&ca_key);
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("p");
    p.distinguished_name.push(DnType::CommonName, "bench CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    p.not_before = datetime!(2025-01-01 0:00 UTC);
    p.not_after = datetime!(2035-01-01 0:00 UTC);
    let ca = Certificate::from_der(p.self_signed(&ca_rc).expect("ca").der()).expect("ca");
    let issuer = Issuer::from_params(&p, &ca_rc);
    let leaf = |kind: KeyType, cn: &str| {
        let key = PrivateKey::generate(kind).expect("key");
        let cert = if kind == KeyType::X25519 {
            as4gw::pki::issue::issue_x25519(
                &ca_key,
                &ca,
                cn,
                &key.public_key_bits(),
                &[1, 2, 3],
                datetime!(2025-01-01 0:00 UTC),
                datetime!(2030-01-01 0:00 UTC),
            )
            .expect("x25519")
        } else {
            let mut lp = CertificateParams::new(Vec::<String>::new()).expect("p");
            lp.distinguished_name.push(DnType::CommonName, cn);
            lp.not_before = datetime!(2025-01-01 0:00 UTC);
            lp.not_after = datetime!(2030-01-01 0:00 UTC);
            Certificate::from_der(lp.signed_by(&rc(&key), &issuer).expect("leaf").der())
                .expect("leaf")
        };
        OwnKey {
            key,
            cert,
            chain: vec![],
        }
    };
    Pki {
        blue_rsa: leaf(KeyType::Rsa, "blue rsa"),
        blue_ed: leaf(KeyType::Ed25519, "blue ed25519"),
        red_rsa: leaf(KeyType::Rsa, "red rsa"),
        red_x: leaf(KeyType::X25519, "red x25519"),
        ca,
    }
}

const MESSAGING: &str = "<eb:Messaging xmlns:eb=\"http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/\" env:mustUnderstand=\"true\" wsu:Id=\"_m\"><eb:UserMessage><eb:MessageInfo><eb:Timestamp>2026-06-01T00:00:00Z</eb:Timestamp><eb:MessageId>bench@as4gw</eb:MessageId></eb:MessageInfo><eb:PartyInfo><eb:From><eb:PartyId type=\"urn:x\">blue</eb:PartyId><eb:Role>http://sdg.europa.eu/edelivery/gateway</eb:Role></eb:From><eb:To><eb:PartyId type=\"urn:x\">red</eb:PartyId><eb:Role>http://sdg.europa.eu/edelivery/gateway</eb:Role></eb:To></eb:PartyInfo><eb:CollaborationInfo><eb:Service type=\"urn:oasis:names:tc:ebcore:ebrs:ebms:binding:1.0\">QueryManager</eb:Service><eb:Action>ExecuteQueryRequest</eb:Action><eb:ConversationId>c</eb:ConversationId></eb:CollaborationInfo><eb:PayloadInfo><eb:PartInfo href=\"cid:p@as4gw\"/></eb:PayloadInfo></eb:UserMessage></eb:Messaging>";

/// The 4 KB payload of the suite benchmarks (gzip-compressed, as eDelivery sends payloads).
fn payload(size: usize) -> Vec<Attachment> {
    vec![Attachment::new(
        "p@as4gw",
        "application/gzip",
        (0..size).map(|i| (i % 251) as u8).collect(),
    )]
}

fn sender(k: &Pki, suite: Suite) -> SenderConfig<'_> {
    let (signer, rcpt) = match suite {
        Suite::Edelivery115 => (&k.blue_rsa, &k.red_rsa.cert),
        Suite::Edelivery20 => (&k.blue_ed, &k.red_x.cert),
    };
    SenderConfig {
        suite,
        signer,
        token_type: TokenType::X509v3,
        recipient: Some(rcpt),
        recipient_reference: KeyReference::Ski,
    }
}

/// The bytes the signature of a real 4 KB message of `suite` covers: its SignedInfo in
/// exclusive canonical form with PrefixList `env`, as the receiver verifies it.
fn signed_info(k: &Pki, suite: Suite) -> Vec<u8> {
    let msg = secure_outbound(&AwsLc, MESSAGING, payload(4096), &sender(k, suite)).expect("secure");
    let doc = Document::parse(&msg.soap).expect("envelope");
    let si = doc
        .elements()
        .find(|n| n.is(as4gw::ns::DS, "SignedInfo"))
        .expect("SignedInfo");
    canonical_bytes(&doc, si.id(), &C14nOptions::with_prefix_list("env"))
}

fn bench(c: &mut Criterion) {
    let k = pki();
    let mut trust = TrustStore::new();
    trust.add_anchor(k.ca.clone());
    let red_keys = [
        OwnKey {
            key: as4gw::pki::load_private_key(&k.red_rsa.key.to_pkcs8_der().expect("d"))
                .expect("k"),
            cert: k.red_rsa.cert.clone(),
            chain: vec![],
        },
        OwnKey {
            key: as4gw::pki::load_private_key(&k.red_x.key.to_pkcs8_der().expect("d")).expect("k"),
            cert: k.red_x.cert.clone(),
            chain: vec![],
        },
    ];
    let at = datetime!(2026-06-01 0:00 UTC);

    // raw primitives, signing what the suites really sign: Ed25519 hashes its whole message
    // (SHA-512), so a shorter stand-in would understate the raw cost and count the difference
    // as overhead. The canonical SignedInfo is taken from a 4 KB message of each suite, so the
    // length follows any change of the envelope's format.
    let rsa_si = signed_info(&k, Suite::Edelivery115);
    let ed_si = signed_info(&k, Suite::Edelivery20);
    println!(
        "canonical SignedInfo signed by the raw rows: 1.15 {} bytes, 2.0 {} bytes",
        rsa_si.len(),
        ed_si.len()
    );
    let mut g = c.benchmark_group("raw");
    let rsa_sig = AwsLc.rsa_sha256_sign(&k.blue_rsa.key, &rsa_si).expect("s");
    let ed_sig = AwsLc.ed25519_sign(&k.blue_ed.key, &ed_si).expect("s");
    let oaep_ct = AwsLc
        .rsa_oaep_encrypt(
            k.red_rsa.cert.public_key_bits(),
            Oaep::Sha256Mgf1Sha256,
            &[7u8; 16],
        )
        .expect("e");
    g.bench_function("rsa2048_sha256_sign", |b| {
        b.iter(|| AwsLc.rsa_sha256_sign(&k.blue_rsa.key, black_box(&rsa_si)))
    });
    g.bench_function("rsa2048_sha256_verify", |b| {
        b.iter(|| {
            AwsLc.rsa_sha256_verify(
                k.blue_rsa.cert.public_key_bits(),
                black_box(&rsa_si),
                &rsa_sig,
            )
        })
    });
    g.bench_function("rsa2048_oaep_encrypt", |b| {
        b.iter(|| {
            AwsLc.rsa_oaep_encrypt(
                k.red_rsa.cert.public_key_bits(),
                Oaep::Sha256Mgf1Sha256,
                black_box(&[7u8; 16]),
            )
        })
    });
    g.bench_function("rsa2048_oaep_decrypt", |b| {
        b.iter(|| {
            AwsLc.rsa_oaep_decrypt(&k.red_rsa.key, Oaep::Sha256Mgf1Sha256, black_box(&oaep_ct))
        })
    });
    g.bench_function("ed25519_sign", |b| {
        b.iter(|| AwsLc.ed25519_sign(&k.blue_ed.key, black_box(&ed_si)))
    });
    g.bench_function("ed25519_verify", |b| {
        b.iter(|| {
            AwsLc.ed25519_verify(k.blue_ed.cert.public_key_bits(), black_box(&ed_si), &ed_sig)
        })
    });
    g.bench_function("x25519_ephemeral", |b| {
        b.iter(|| AwsLc.x25519_ephemeral(black_box(k.red_x.cert.public_key_bits())))
    });
    g.bench_function("x25519_static", |b| {
        b.iter(|| AwsLc.x25519_static(&k.red_x.key, black_box(k.blue_ed.cert.public_key_bits())))
    });
    // the symmetric work of a 4 KB message: part digest and AES-128-GCM
    let part = vec![0x5au8; 4096];
    let cek = [7u8; 16];
    let sealed = AwsLc.aes128_gcm_seal(&cek, &part).expect("seal");
    g.bench_function("sha256_4k", |b| b.iter(|| AwsLc.sha256(black_box(&part))));
    g.bench_function("aes128_gcm_seal_4k", |b| {
        b.iter(|| AwsLc.aes128_gcm_seal(&cek, black_box(&part)))
    });
    g.bench_function("aes128_gcm_open_4k", |b| {
        b.iter(|| AwsLc.aes128_gcm_open(&cek, black_box(&sealed)))
    });
    g.finish();

    // trust: webpki path validation (one Ed25519 verify) vs the remembered path
    let mut g = c.benchmark_group("trust");
    g.bench_function("chain_uncached", |b| {
        b.iter_batched(
            || {
                let mut t = TrustStore::new();
                t.add_anchor(k.ca.clone());
                t
            },
            |t| {
                t.check(&k.blue_ed.cert, &[], at, Purpose::Signing)
                    .expect("trusted")
            },
            BatchSize::SmallInput,
        )
    });
    trust
        .check(&k.blue_ed.cert, &[], at, Purpose::Signing)
        .expect("trusted");
    g.bench_function("chain_cached", |b| {
        b.iter(|| {
            trust
                .check(black_box(&k.blue_ed.cert), &[], at, Purpose::Signing)
                .expect("trusted")
        })
    });
    g.finish();

    for (suite, name) in [(Suite::Edelivery115, "1.15"), (Suite::Edelivery20, "2.0")] {
        let mut g = c.benchmark_group(format!("suite_{name}"));
        for size in [4 * 1024usize, 1024 * 1024] {
            let payload = payload(size);
            let cfg = sender(&k, suite);
            g.throughput(Throughput::Bytes(size as u64));
            g.sample_size(if size > 100_000 { 20 } else { 50 });
            g.bench_with_input(BenchmarkId::new("sign_encrypt", size), &size, |b, _| {
                b.iter(|| {
                    secure_outbound(&AwsLc, MESSAGING, payload.clone(), &cfg).expect("secure")
                })
            });
            let msg = secure_outbound(&AwsLc, MESSAGING, payload.clone(), &cfg).expect("secure");
            let rx = Receiver {
                crypto: &AwsLc,
                trust: &trust,
                partners: &[],
                keys: &red_keys,
                at,
                policy: InboundPolicy::for_suite(suite),
            };
            g.bench_with_input(BenchmarkId::new("decrypt_verify", size), &size, |b, _| {
                b.iter(|| process_inbound(&rx, &msg.soap, msg.attachments.clone()).expect("verify"))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
