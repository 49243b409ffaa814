//! Security-header processing on the receive path (`as4gw::security`).
//!
//! The input is a capture as `security::capture::parse_capture` reads it (a bare SOAP envelope,
//! or MIME headers + multipart body), then goes through every receive-side entry point with
//! fixed keys (Domibus blue_gw/red_gw, phase4 ph-as4, demo red RSA and X25519) and a fixed trust
//! store (Domibus gateway certificates pinned, PEPPOL test CAs, demo CA):
//! `process_inbound` (verify, then decrypt), `inspect_message` (decrypt first, report the
//! signature), `inspect_signature`, `decrypt_all_keys` and `receipt::verify_receipt`.
//! Property: every one of them returns (Ok or Err), none panics.
#![no_main]

use std::sync::OnceLock;

use as4gw::pki::{load_certificates, load_private_key, Certificate, TrustStore};
use as4gw::security::capture::parse_capture;
use as4gw::security::crypto::AwsLc;
use as4gw::security::decrypt::decrypt_all_keys;
use as4gw::security::receipt::verify_receipt;
use as4gw::security::verify::{inspect_message, inspect_signature};
use as4gw::security::{process_inbound, InboundPolicy, OwnKey, Receiver, Suite};
use as4gw::xml::Document;
use libfuzzer_sys::fuzz_target;
use time::macros::datetime;

macro_rules! fixture {
    ($p:literal) => {
        include_bytes!(concat!("../../tests/fixtures/", $p)) as &[u8]
    };
}
macro_rules! demo {
    ($p:literal) => {
        include_bytes!(concat!("../../certs/demo/", $p)) as &[u8]
    };
}

struct Env {
    trust: TrustStore,
    partners: Vec<Certificate>,
    keys: Vec<OwnKey>,
}

fn cert(pem: &[u8]) -> Certificate {
    load_certificates(pem).expect("cert").remove(0)
}

fn own(key: &[u8], c: &[u8]) -> OwnKey {
    OwnKey {
        key: load_private_key(key).expect("key"),
        cert: cert(c),
        chain: Vec::new(),
    }
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let partners = vec![
            cert(fixture!(
                "interop/domibus/keystores/default/gateway_keystore/blue_gw.cert.pem"
            )),
            cert(fixture!(
                "interop/domibus/keystores/default/gateway_keystore/red_gw.cert.pem"
            )),
            cert(fixture!(
                "interop/phase4/keys/dummy-pw-test/ph-as4.cert.pem"
            )),
            cert(demo!("blue/rsa.cert.pem")),
            cert(demo!("blue/ed25519.cert.pem")),
        ];
        let mut trust = TrustStore::new();
        for c in &partners {
            trust.add_pinned(c.clone());
        }
        trust.add_anchor(cert(demo!("ca.cert.pem")));
        trust.add_anchor(cert(fixture!(
            "interop/oxalis-ng/peppol_trust_g3/peppol_test_g3_root_ca.cert.pem"
        )));
        trust.add_intermediate(cert(fixture!(
            "interop/oxalis-ng/peppol_trust_g3/peppol_test_g3_ap_ca.cert.pem"
        )));
        let keys = vec![
            own(
                fixture!("interop/domibus/keystores/default/gateway_keystore/blue_gw.key.pem"),
                fixture!("interop/domibus/keystores/default/gateway_keystore/blue_gw.cert.pem"),
            ),
            own(
                fixture!("interop/domibus/keystores/default/gateway_keystore/red_gw.key.pem"),
                fixture!("interop/domibus/keystores/default/gateway_keystore/red_gw.cert.pem"),
            ),
            own(
                fixture!("interop/phase4/keys/dummy-pw-test/ph-as4.key.pem"),
                fixture!("interop/phase4/keys/dummy-pw-test/ph-as4.cert.pem"),
            ),
            own(demo!("red/rsa.key.pem"), demo!("red/rsa.cert.pem")),
            own(demo!("red/x25519.key.pem"), demo!("red/x25519.cert.pem")),
        ];
        Env {
            trust,
            partners,
            keys,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let Ok(cap) = parse_capture(data, None) else {
        return;
    };
    let policies = [
        InboundPolicy::default(),
        InboundPolicy {
            require_encryption: false,
            allow_legacy_oaep: true,
            ..InboundPolicy::for_suite(Suite::Edelivery115)
        },
        InboundPolicy::for_suite(Suite::Edelivery20),
    ];
    for policy in policies {
        let rx = Receiver {
            crypto: &AwsLc,
            trust: &env.trust,
            partners: &env.partners,
            keys: &env.keys,
            at: datetime!(2024-06-01 12:00 UTC),
            policy,
        };
        if let Err(e) = process_inbound(&rx, &cap.soap, cap.attachments.clone()) {
            let _ = e.ebms_code();
            let _ = e.to_string();
        }
        if policy.suite.is_none() {
            let _ = inspect_message(&rx, &cap.soap, &cap.attachments);
            let _ = verify_receipt(&rx, &cap.soap, "fuzz@as4gw", &[]);
        }
    }
    let _ = inspect_signature(
        &AwsLc,
        &cap.soap,
        &cap.attachments,
        &env.trust,
        &env.partners,
    );
    if let Ok(doc) = Document::parse(&cap.soap) {
        let _ = decrypt_all_keys(&AwsLc, &doc, &env.keys);
    }
});
