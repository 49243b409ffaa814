//! The demo PKI (`certs/demo/`, made by `as4gw pki demo`) works end to end for both suites.

use std::path::PathBuf;

use as4gw::pki::{load_certificates, load_private_key, Purpose, TrustStore};
use as4gw::security::crypto::AwsLc;
use as4gw::security::sign::{secure_outbound, SenderConfig};
use as4gw::security::{
    process_inbound, InboundPolicy, KeyReference, OwnKey, Receiver, Suite, TokenType,
};

use super::msg::{cids, messaging, payloads};

fn demo(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("certs/demo")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn own(party: &str, kind: &str) -> OwnKey {
    let key = load_private_key(&demo(&format!("{party}/{kind}.key.pem"))).expect("key");
    let mut certs = load_certificates(&demo(&format!("{party}/{kind}.cert.pem"))).expect("cert");
    let cert = certs.remove(0);
    assert!(key.matches(&cert), "{party}/{kind}");
    OwnKey {
        key,
        cert,
        chain: certs,
    }
}

#[test]
fn demo_certificates_round_trip_both_suites() {
    let mut trust = TrustStore::new();
    trust.add_anchor(
        load_certificates(&demo("ca.cert.pem"))
            .expect("ca")
            .remove(0),
    );
    let at = own("red", "rsa").cert.not_before() + time::Duration::days(1);
    for (suite, sig, enc) in [
        (Suite::Edelivery115, "rsa", "rsa"),
        (Suite::Edelivery20, "ed25519", "x25519"),
    ] {
        let blue = own("blue", sig);
        let red_enc = own("red", enc);
        trust
            .check(&blue.cert, &blue.chain, at, Purpose::Signing)
            .expect("blue signing cert trusted");
        trust
            .check(&red_enc.cert, &red_enc.chain, at, Purpose::Encryption)
            .expect("red encryption cert trusted");
        let cfg = SenderConfig {
            suite,
            signer: &blue,
            token_type: TokenType::PkiPath,
            recipient: Some(&red_enc.cert),
            recipient_reference: KeyReference::Ski,
        };
        let m = secure_outbound(&AwsLc, &messaging(&cids()), payloads(), &cfg).expect("secure");
        let keys = [red_enc];
        let rx = Receiver {
            crypto: &AwsLc,
            trust: &trust,
            partners: &[],
            keys: &keys,
            at,
            policy: InboundPolicy::for_suite(suite),
        };
        let v = process_inbound(&rx, &m.soap, m.attachments)
            .unwrap_or_else(|e| panic!("{suite:?}: {e}"));
        assert_eq!(v.value().payloads, payloads());
    }
}
