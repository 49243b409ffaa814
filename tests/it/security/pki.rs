//! Keys, certificate facts, trust decisions.

use as4gw::pki::{
    load_certificates, load_private_key, KeyType, PkiError, Purpose, TrustPath, TrustStore,
};
use time::macros::datetime;

use super::testpki::{world, AT};
use crate::support::read_fixture;

#[test]
fn domibus_keys_and_certificate_facts() {
    let cert = load_certificates(&read_fixture(
        "interop/domibus/keystores/default/gateway_keystore/blue_gw.cert.pem",
    ))
    .expect("cert")
    .remove(0);
    assert_eq!(
        hex::encode(cert.ski()),
        "1cfa958ec80337dd3408280bc00bc6d37c7e4762"
    );
    assert_eq!(cert.key_type(), KeyType::Rsa);
    assert!(cert.subject().contains("CN=blue_gw"), "{}", cert.subject());
    assert_eq!(cert.not_after(), datetime!(2025-12-01 07:27:39 UTC));
    assert_eq!(cert.sha256_hex().len(), 64);
    let key = load_private_key(&read_fixture(
        "interop/domibus/keystores/default/gateway_keystore/blue_gw.key.pem",
    ))
    .expect("key");
    assert!(key.matches(&cert));
    let red = load_private_key(&read_fixture(
        "interop/domibus/keystores/default/gateway_keystore/red_gw.key.pem",
    ))
    .expect("key");
    assert!(!red.matches(&cert));
}

#[test]
fn pkcs1_rsa_key_loads() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let k = world();
    let der = k.red.rsa.key.to_pkcs8_der().expect("der");
    let pkcs1 = rsa::PrivateKey::from_pkcs8_der(&der)
        .expect("k")
        .to_pkcs1_pem(Default::default())
        .expect("pem");
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let back = load_private_key(pkcs1.as_bytes()).expect("pkcs1");
    assert!(back.matches(&k.red.rsa.cert));
    assert!(
        load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .is_err()
    );
}

#[test]
fn chains_key_usage_validity_and_pinning() {
    let w = world();
    let trust = w.trust();
    for (c, p) in [
        (&w.red.rsa.cert, Purpose::Signing),
        (&w.red.rsa.cert, Purpose::Encryption),
        (&w.red.ed.cert, Purpose::Signing),
        (&w.red.x.cert, Purpose::Encryption),
    ] {
        assert!(
            matches!(trust.check(c, &[], AT, p), Ok(TrustPath::Chain { .. })),
            "{c:?} {p:?}"
        );
    }
    // keyUsage: an Ed25519 signing certificate cannot encrypt, an X25519 one cannot sign
    assert!(matches!(
        trust.check(&w.red.ed.cert, &[], AT, Purpose::Encryption),
        Err(PkiError::WrongKeyType { .. })
    ));
    assert!(matches!(
        trust.check(&w.red.x.cert, &[], AT, Purpose::Signing),
        Err(PkiError::WrongKeyType { .. })
    ));
    // validity with the time passed in
    let e = trust
        .check(
            &w.red.rsa.cert,
            &[],
            datetime!(2031-01-01 0:00 UTC),
            Purpose::Signing,
        )
        .expect_err("expired");
    assert!(matches!(e, PkiError::Expired { .. }));
    assert!(
        e.to_string().contains("red rsa") && e.to_string().contains("sha256"),
        "names the cert: {e}"
    );
    assert!(matches!(
        trust.check(
            &w.red.rsa.cert,
            &[],
            datetime!(2024-01-01 0:00 UTC),
            Purpose::Signing
        ),
        Err(PkiError::NotYetValid { .. })
    ));
    // untrusted issuer (same CA name, other key)
    assert!(matches!(
        trust.check(&w.rogue.rsa.cert, &[], AT, Purpose::Signing),
        Err(PkiError::Untrusted { .. })
    ));
    // pinning a partner certificate needs no chain
    let mut pinned = TrustStore::new();
    pinned.add_pinned(w.rogue.rsa.cert.clone());
    assert_eq!(
        pinned.check(&w.rogue.rsa.cert, &[], AT, Purpose::Signing),
        Ok(TrustPath::Pinned)
    );
    assert!(pinned
        .check(&w.red.rsa.cert, &[], AT, Purpose::Signing)
        .is_err());
}

#[test]
fn crl_from_a_local_file_revokes() {
    let w = world();
    let mut trust = w.trust();
    trust.add_crl(w.crl_pem.as_bytes()).expect("crl");
    let e = trust
        .check(&w.revoked_rsa.cert, &[], AT, Purpose::Signing)
        .expect_err("revoked");
    assert!(matches!(e, PkiError::Revoked { .. }), "{e}");
    assert!(
        trust
            .check(&w.red.rsa.cert, &[], AT, Purpose::Signing)
            .is_ok(),
        "sibling unaffected"
    );
}

#[test]
fn peppol_chain_at_a_pinned_clock() {
    let mut trust = TrustStore::new();
    trust
        .add_file_contents(&read_fixture(
            "interop/oxalis-ng/peppol_trust_g3/peppol_test_g3_root_ca.cert.pem",
        ))
        .expect("root")
        .add_file_contents(&read_fixture(
            "interop/oxalis-ng/peppol_trust_g3/peppol_test_g3_ap_ca.cert.pem",
        ))
        .expect("ap ca");
    let signer = load_certificates(&read_fixture(
        "interop/phase4/testfiles/bst-certs/TestReceipt12.signer.cert.pem",
    ))
    .expect("c");
    assert!(matches!(
        trust.check(
            &signer[0],
            &[],
            datetime!(2025-12-05 0:00 UTC),
            Purpose::Signing
        ),
        Ok(TrustPath::Chain { .. })
    ));
    assert!(matches!(
        trust.check(
            &signer[0],
            &[],
            datetime!(2028-01-01 0:00 UTC),
            Purpose::Signing
        ),
        Err(PkiError::Expired { .. })
    ));
}

/// A remembered path is reused only while the message time lies inside the validity of every
/// certificate on it; the leaf's validity and key usage are re-checked on every call; changing
/// the store (here: a CRL) forgets the paths.
#[test]
fn cached_chain_rechecks_time_usage_and_revocation() {
    use as4gw::pki::{Certificate, PrivateKey};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let rc = |k: &PrivateKey| {
        KeyPair::try_from(k.to_pkcs8_der().expect("der").as_slice()).expect("rcgen key")
    };
    let ca_params = |cn: &str, nb, na| {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("p");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = nb;
        p.not_after = na;
        p
    };
    let root_key = rc(&PrivateKey::generate(KeyType::Ed25519).expect("k"));
    let root_p = ca_params(
        "cache root",
        datetime!(2025-01-01 0:00 UTC),
        datetime!(2035-01-01 0:00 UTC),
    );
    let root =
        Certificate::from_der(root_p.self_signed(&root_key).expect("root").der()).expect("root");
    // the intermediate expires in 2027, three years before the leaf
    let inter_key = rc(&PrivateKey::generate(KeyType::Ed25519).expect("k"));
    let inter_p = ca_params(
        "cache intermediate",
        datetime!(2025-01-01 0:00 UTC),
        datetime!(2027-01-01 0:00 UTC),
    );
    let root_issuer = Issuer::from_params(&root_p, &root_key);
    let inter = Certificate::from_der(
        inter_p
            .signed_by(&inter_key, &root_issuer)
            .expect("inter")
            .der(),
    )
    .expect("inter");
    let leaf_key = rc(&PrivateKey::generate(KeyType::Ed25519).expect("k"));
    let mut leaf_p = CertificateParams::new(Vec::<String>::new()).expect("p");
    leaf_p
        .distinguished_name
        .push(DnType::CommonName, "cache leaf");
    leaf_p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_p.not_before = datetime!(2025-01-01 0:00 UTC);
    leaf_p.not_after = datetime!(2030-01-01 0:00 UTC);
    let inter_issuer = Issuer::from_params(&inter_p, &inter_key);
    let leaf = Certificate::from_der(
        leaf_p
            .signed_by(&leaf_key, &inter_issuer)
            .expect("leaf")
            .der(),
    )
    .expect("leaf");

    let mut trust = TrustStore::new();
    trust.add_anchor(root);
    let chain = [inter];
    let at = datetime!(2026-06-01 0:00 UTC);
    let first = trust
        .check(&leaf, &chain, at, Purpose::Signing)
        .expect("trusted");
    assert!(matches!(first, TrustPath::Chain { .. }));
    assert_eq!(trust.cached_chains(), 1);
    assert_eq!(trust.check(&leaf, &chain, at, Purpose::Signing), Ok(first));
    assert_eq!(
        trust.cached_chains(),
        1,
        "second check served from the cache"
    );
    // without the presented intermediate there is no path, cache or not
    assert!(matches!(
        trust.check(&leaf, &[], at, Purpose::Signing),
        Err(PkiError::Untrusted { .. })
    ));
    // the leaf is still valid in 2028 but the intermediate is not: not from the cache
    let e = trust
        .check(
            &leaf,
            &chain,
            datetime!(2028-01-01 0:00 UTC),
            Purpose::Signing,
        )
        .expect_err("intermediate expired");
    assert!(matches!(e, PkiError::Untrusted { .. }), "{e}");
    // leaf validity and key usage are checked on every call
    assert!(matches!(
        trust.check(
            &leaf,
            &chain,
            datetime!(2031-01-01 0:00 UTC),
            Purpose::Signing
        ),
        Err(PkiError::Expired { .. })
    ));
    assert!(matches!(
        trust.check(&leaf, &chain, at, Purpose::Encryption),
        Err(PkiError::WrongKeyType { .. })
    ));
    // a CRL added later revokes the leaf although its path was remembered
    let crl = rcgen::CertificateRevocationListParams {
        this_update: datetime!(2026-01-01 0:00 UTC),
        next_update: datetime!(2027-01-01 0:00 UTC),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(leaf.serial()),
            revocation_time: datetime!(2026-02-01 0:00 UTC),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&inter_issuer)
    .expect("crl");
    trust
        .add_crl(crl.pem().expect("pem").as_bytes())
        .expect("crl");
    assert_eq!(trust.cached_chains(), 0, "a store change forgets paths");
    assert!(matches!(
        trust.check(&leaf, &chain, at, Purpose::Signing),
        Err(PkiError::Revoked { .. })
    ));
}
