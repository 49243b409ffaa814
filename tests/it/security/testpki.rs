//! A throw-away test PKI: an Ed25519 root, RSA / Ed25519 / X25519 leaves for two parties, an
//! untrusted ("rogue") CA with its own leaves, and an expired RSA leaf. X25519 leaves cannot be
//! made by rcgen (no signature algorithm for the key); they come from `as4gw::pki::issue`.

use std::sync::OnceLock;

use as4gw::pki::{Certificate, KeyType, PrivateKey, TrustStore};
use as4gw::security::crypto::{AwsLc, Crypto};
use as4gw::security::OwnKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::macros::datetime;
use time::OffsetDateTime;

/// A moment inside every test certificate's validity (except the expired one).
pub const AT: OffsetDateTime = datetime!(2026-06-01 0:00 UTC);

pub struct Party {
    pub rsa: OwnKey,
    pub ed: OwnKey,
    pub x: OwnKey,
}

pub struct World {
    pub ca: Certificate,
    pub red: Party,
    pub blue: Party,
    /// Issued by an untrusted CA.
    pub rogue: Party,
    /// Red's RSA key under a certificate that expired in 2021.
    pub expired_rsa: OwnKey,
    /// A PEM CRL of the test root revoking `revoked_rsa`.
    pub crl_pem: String,
    pub revoked_rsa: OwnKey,
}

impl World {
    pub fn trust(&self) -> TrustStore {
        let mut t = TrustStore::new();
        t.add_anchor(self.ca.clone());
        t
    }
}

pub fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(make_world)
}

struct Ca {
    params: CertificateParams,
    key: PrivateKey,
    rc: KeyPair,
    cert: Certificate,
}

fn rc_key(k: &PrivateKey) -> KeyPair {
    let der = k.to_pkcs8_der().expect("pkcs8");
    KeyPair::try_from(der.as_slice()).expect("rcgen key")
}

fn make_ca(name: &str) -> Ca {
    let key = PrivateKey::generate(KeyType::Ed25519).expect("ca key");
    let rc = rc_key(&key);
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "as4gw tests");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = datetime!(2025-01-01 0:00 UTC);
    params.not_after = datetime!(2035-01-01 0:00 UTC);
    let c = params.self_signed(&rc).expect("ca cert");
    let cert = Certificate::from_der(c.der()).expect("parse ca");
    Ca {
        params,
        key,
        rc,
        cert,
    }
}

fn leaf(ca: &Ca, cn: &str, kind: KeyType, nb: OffsetDateTime, na: OffsetDateTime) -> OwnKey {
    let key = PrivateKey::generate(kind).expect("leaf key");
    let cert = if kind == KeyType::X25519 {
        x25519_cert(ca, cn, &key.public_key_bits(), nb, na)
    } else {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.key_usages = match kind {
            KeyType::Rsa => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::ContentCommitment,
                KeyUsagePurpose::KeyEncipherment,
            ],
            _ => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::ContentCommitment,
            ],
        };
        params.not_before = nb;
        params.not_after = na;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&ca.params, &ca.rc);
        let c = params.signed_by(&rc_key(&key), &issuer).expect("leaf cert");
        Certificate::from_der(c.der()).expect("parse leaf")
    };
    OwnKey {
        key,
        cert,
        chain: vec![ca.cert.clone()],
    }
}

/// An X25519 end-entity certificate (RFC 8410) signed by the Ed25519 CA, issued by the library
/// (`as4gw::pki::issue`), with a random positive serial.
fn x25519_cert(
    ca: &Ca,
    cn: &str,
    public: &[u8],
    nb: OffsetDateTime,
    na: OffsetDateTime,
) -> Certificate {
    let mut serial = [0u8; 8];
    AwsLc.random(&mut serial).expect("rand");
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    as4gw::pki::issue::issue_x25519(&ca.key, &ca.cert, cn, public, &serial, nb, na)
        .expect("x25519 leaf")
}

fn party(ca: &Ca, name: &str) -> Party {
    let (nb, na) = (
        datetime!(2025-01-01 0:00 UTC),
        datetime!(2030-01-01 0:00 UTC),
    );
    Party {
        rsa: leaf(ca, &format!("{name} rsa"), KeyType::Rsa, nb, na),
        ed: leaf(ca, &format!("{name} ed25519"), KeyType::Ed25519, nb, na),
        x: leaf(ca, &format!("{name} x25519"), KeyType::X25519, nb, na),
    }
}

fn make_world() -> World {
    let ca = make_ca("as4gw test root");
    let rogue_ca = make_ca("as4gw test root");
    let red = party(&ca, "red");
    let blue = party(&ca, "blue");
    let rogue = party(&rogue_ca, "rogue");
    let expired_rsa = leaf(
        &ca,
        "red expired",
        KeyType::Rsa,
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2021-01-01 0:00 UTC),
    );
    let revoked_rsa = leaf(
        &ca,
        "red revoked",
        KeyType::Rsa,
        datetime!(2025-01-01 0:00 UTC),
        datetime!(2030-01-01 0:00 UTC),
    );
    let crl = rcgen::CertificateRevocationListParams {
        this_update: datetime!(2026-01-01 0:00 UTC),
        next_update: datetime!(2027-01-01 0:00 UTC),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(revoked_rsa.cert.serial()),
            revocation_time: datetime!(2026-02-01 0:00 UTC),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&Issuer::from_params(&ca.params, &ca.rc))
    .expect("crl");
    let crl_pem = crl.pem().expect("pem");
    World {
        ca: ca.cert,
        red,
        blue,
        rogue,
        expired_rsa,
        crl_pem,
        revoked_rsa,
    }
}
