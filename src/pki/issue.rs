//! Issuing an X25519 end-entity certificate (RFC 8410) under an Ed25519 CA.
//!
//! X25519 keys cannot sign, so no CSR or self-signed certificate exists for them and rcgen has no
//! signature algorithm to describe their SPKI (rust-stack §1.11). AS4 2.0 needs them as
//! key-agreement certificates (digest §4.2), so the TBSCertificate is assembled here in DER.

use time::OffsetDateTime;

use super::cert::{Certificate, KeyType};
use super::der::{seq, tlv, x25519_spki, OID_ED25519};
use super::keys::{KeyInner, PrivateKey};
use super::PkiError;

fn utc_time(t: OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let s = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year().rem_euclid(100),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    tlv(0x17, s.as_bytes())
}

/// Issues a certificate for the raw X25519 `public` key with CN `common_name`, keyUsage
/// keyAgreement (critical), an SKI, signed by `issuer_key` (Ed25519) whose certificate is
/// `issuer`. Validity years must lie in 1950..2049 (UTCTime).
pub fn issue_x25519(
    issuer_key: &PrivateKey,
    issuer: &Certificate,
    common_name: &str,
    public: &[u8],
    serial: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Certificate, PkiError> {
    let KeyInner::Ed25519(ca) = &issuer_key.inner else {
        return Err(PkiError::BadKey("the issuing key must be Ed25519".into()));
    };
    if issuer.key_type() != KeyType::Ed25519 || !issuer_key.matches(issuer) {
        return Err(PkiError::BadKey(
            "issuer key and certificate do not match".into(),
        ));
    }
    if public.len() != 32 || serial.is_empty() || serial.len() > 20 {
        return Err(PkiError::BadKey(
            "X25519 key must be 32 bytes, serial 1..20 bytes".into(),
        ));
    }
    let mut serial = serial.to_vec();
    if serial[0] & 0x80 != 0 {
        serial.insert(0, 0);
    }
    let alg = seq(&[&tlv(0x06, OID_ED25519)]);
    let cn = seq(&[
        &tlv(0x06, &[0x55, 0x04, 0x03]),
        &tlv(0x0c, common_name.as_bytes()),
    ]);
    let subject = seq(&[&tlv(0x31, &cn)]);
    let ku = seq(&[
        &tlv(0x06, &[0x55, 0x1d, 0x0f]),
        &[0x01, 0x01, 0xff],
        &tlv(0x04, &[0x03, 0x02, 0x03, 0x08]),
    ]);
    let ski_val = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, public);
    let ski = seq(&[
        &tlv(0x06, &[0x55, 0x1d, 0x0e]),
        &tlv(0x04, &tlv(0x04, ski_val.as_ref())),
    ]);
    let aki = seq(&[
        &tlv(0x06, &[0x55, 0x1d, 0x23]),
        &tlv(0x04, &seq(&[&tlv(0x80, issuer.ski())])),
    ]);
    let tbs = seq(&[
        &tlv(0xa0, &tlv(0x02, &[2])),
        &tlv(0x02, &serial),
        &alg,
        issuer_subject(issuer)?,
        &seq(&[&utc_time(not_before), &utc_time(not_after)]),
        &subject,
        &x25519_spki(public),
        &tlv(0xa3, &seq(&[&ku, &ski, &aki])),
    ]);
    let sig = ca.sign(&tbs);
    let mut bits = vec![0u8];
    bits.extend_from_slice(sig.as_ref());
    Certificate::from_der(&seq(&[&tbs, &alg, &tlv(0x03, &bits)]))
}

/// The subject Name DER of a certificate (the sixth TBSCertificate field).
fn issuer_subject(c: &Certificate) -> Result<&[u8], PkiError> {
    use super::der::{read_all, read_tlv};
    let bad = || PkiError::BadCertificate("cannot read the issuer's subject".into());
    let (cert, _) = read_tlv(c.der()).ok_or_else(bad)?;
    let (tbs, _) = read_tlv(cert.value).ok_or_else(bad)?;
    let fields = read_all(tbs.value).ok_or_else(bad)?;
    let offset = usize::from(fields.first().is_some_and(|f| f.tag == 0xa0));
    fields.get(offset + 4).map(|t| t.raw).ok_or_else(bad)
}
