//! A minimal DER reader and writer: just enough for the few structures aws-lc-rs and
//! x509-parser do not hand us (PKCS#1 → PKCS#8 wrapping, X25519 PKCS#8 keys, `X509PKIPathv1`
//! sequences, SubjectPublicKeyInfo for the AS4 2.0 originator key).
//!
//! Only definite lengths are accepted (DER); anything else is an error, never a panic.

/// One tag-length-value read from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet (single-byte tags only).
    pub tag: u8,
    /// The value octets.
    pub value: &'a [u8],
    /// The whole encoding (tag, length and value).
    pub raw: &'a [u8],
}

/// Reads one TLV from the start of `input`; returns it and the remaining bytes.
pub fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags are not used by the structures we read
    }
    let first = *input.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2usize)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some((
        Tlv {
            tag,
            value: &input[hdr..end],
            raw: &input[..end],
        },
        &input[end..],
    ))
}

/// All TLVs of a constructed value, in order; `None` if any is malformed.
pub fn read_all(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (t, rest) = read_tlv(input)?;
        out.push(t);
        input = rest;
    }
    Some(out)
}

/// Encodes a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Encodes one TLV.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    push_len(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

/// A SEQUENCE of already-encoded parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// OID 1.3.101.110 (X25519), DER value bytes.
pub const OID_X25519: &[u8] = &[0x2b, 0x65, 0x6e];
/// OID 1.3.101.112 (Ed25519), DER value bytes.
pub const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
/// OID 1.2.840.113549.1.1.1 (rsaEncryption), DER value bytes.
pub const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// SubjectPublicKeyInfo for a raw X25519 public key (RFC 8410 §4), as carried in
/// `dsig11:DEREncodedKeyValue` (digest §4.2).
pub fn x25519_spki(public: &[u8]) -> Vec<u8> {
    let alg = seq(&[&tlv(0x06, OID_X25519)]);
    let mut bits = vec![0u8];
    bits.extend_from_slice(public);
    seq(&[&alg, &tlv(0x03, &bits)])
}

/// Parses a SubjectPublicKeyInfo; returns (algorithm OID value bytes, public key bits).
pub fn parse_spki(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let (outer, rest) = read_tlv(spki)?;
    if outer.tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let items = read_all(outer.value)?;
    let [alg, key] = items.as_slice() else {
        return None;
    };
    if alg.tag != 0x30 || key.tag != 0x03 {
        return None;
    }
    let alg_items = read_all(alg.value)?;
    let oid = alg_items.first().filter(|t| t.tag == 0x06)?;
    let (unused, bits) = key.value.split_first()?;
    if *unused != 0 {
        return None;
    }
    Some((oid.value, bits))
}

/// Wraps a PKCS#1 `RSAPrivateKey` in a PKCS#8 `PrivateKeyInfo` (RFC 5208) so that aws-lc-rs'
/// decrypting key (which only reads PKCS#8) can load it.
pub fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let version = tlv(0x02, &[0]);
    let alg = seq(&[&tlv(0x06, OID_RSA), &[0x05, 0x00]]);
    seq(&[&version, &alg, &tlv(0x04, pkcs1)])
}

/// Reads a PKCS#8 `PrivateKeyInfo` (v1 or v2); returns (algorithm OID value bytes, the
/// privateKey OCTET STRING content).
pub fn parse_pkcs8(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (outer, _) = read_tlv(der)?;
    if outer.tag != 0x30 {
        return None;
    }
    let items = read_all(outer.value)?;
    let alg = items.get(1).filter(|t| t.tag == 0x30)?;
    let oid = read_all(alg.value)?
        .into_iter()
        .next()
        .filter(|t| t.tag == 0x06)?;
    let key = items.get(2).filter(|t| t.tag == 0x04)?;
    Some((oid.value, key.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_round_trip() {
        let pk = [7u8; 32];
        let spki = x25519_spki(&pk);
        assert_eq!(spki.len(), 44);
        let (oid, bits) = parse_spki(&spki).expect("parse");
        assert_eq!(oid, OID_X25519);
        assert_eq!(bits, &pk);
    }

    #[test]
    fn long_lengths() {
        let v = vec![1u8; 300];
        let enc = tlv(0x04, &v);
        let (t, rest) = read_tlv(&enc).expect("tlv");
        assert!(rest.is_empty());
        assert_eq!(t.value.len(), 300);
        assert!(read_tlv(&enc[..enc.len() - 1]).is_none());
    }
}
