//! Private keys, loaded once into aws-lc-rs key objects.
//!
//! Supported encodings: PEM or DER; PKCS#8 (`PRIVATE KEY`) for RSA, Ed25519 (v1 and v2),
//! X25519 (RFC 8410) and P-256, PKCS#1 (`RSA PRIVATE KEY`) for RSA, SEC1 (`EC PRIVATE KEY`) for
//! P-256. Copies of the encoded key live in [`Zeroizing`] buffers; aws-lc-rs clears its own key
//! memory on drop. `Debug` prints only the key type.

use aws_lc_rs::agreement;
use aws_lc_rs::rsa::PrivateDecryptingKey;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use zeroize::Zeroizing;

use super::cert::{Certificate, KeyType};
use super::der;
use super::PkiError;

/// A private key usable by the crypto seam (`security::crypto`).
pub struct PrivateKey {
    pub(crate) inner: KeyInner,
}

pub(crate) enum KeyInner {
    Rsa {
        pair: RsaKeyPair,
        decrypt: PrivateDecryptingKey,
    },
    Ed25519(Ed25519KeyPair),
    X25519(agreement::PrivateKey),
    P256(EcdsaKeyPair),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PrivateKey({}, secret redacted)",
            self.key_type().as_str()
        )
    }
}

/// Loads a private key from PEM (first key block) or DER bytes.
pub fn load_private_key(bytes: &[u8]) -> Result<PrivateKey, PkiError> {
    let trimmed = bytes
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(11)
        .copied()
        .collect::<Vec<_>>();
    if trimmed.starts_with(b"-----BEGIN") {
        let key = PrivateKeyDer::from_pem_slice(bytes)
            .map_err(|_| PkiError::BadKey("no private key PEM block".into()))?;
        let (kind, der) = match &key {
            PrivateKeyDer::Pkcs8(k) => (Enc::Pkcs8, Zeroizing::new(k.secret_pkcs8_der().to_vec())),
            PrivateKeyDer::Pkcs1(k) => (Enc::Pkcs1, Zeroizing::new(k.secret_pkcs1_der().to_vec())),
            PrivateKeyDer::Sec1(k) => (Enc::Sec1, Zeroizing::new(k.secret_sec1_der().to_vec())),
            _ => return Err(PkiError::BadKey("unsupported PEM key type".into())),
        };
        drop(key);
        PrivateKey::from_encoded(kind, &der)
    } else {
        PrivateKey::from_der(bytes)
    }
}

#[derive(Clone, Copy)]
enum Enc {
    Pkcs8,
    Pkcs1,
    Sec1,
}

impl PrivateKey {
    /// Loads DER: PKCS#8 first, then PKCS#1 RSA, then SEC1 P-256.
    pub fn from_der(der: &[u8]) -> Result<Self, PkiError> {
        Self::from_encoded(Enc::Pkcs8, der)
            .or_else(|_| Self::from_encoded(Enc::Pkcs1, der))
            .or_else(|_| Self::from_encoded(Enc::Sec1, der))
    }

    fn from_encoded(enc: Enc, der: &[u8]) -> Result<Self, PkiError> {
        let bad = |what: &str| PkiError::BadKey(what.to_string());
        match enc {
            Enc::Pkcs1 => {
                let pkcs8 = Zeroizing::new(der::pkcs1_to_pkcs8(der));
                Self::rsa_from_pkcs8(&pkcs8)
            }
            Enc::Sec1 => EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
                .map(|k| PrivateKey {
                    inner: KeyInner::P256(k),
                })
                .map_err(|_| bad("SEC1 key is not a P-256 key")),
            Enc::Pkcs8 => {
                let (oid, inner) =
                    der::parse_pkcs8(der).ok_or_else(|| bad("not a PKCS#8 PrivateKeyInfo"))?;
                match oid {
                    o if o == der::OID_RSA => Self::rsa_from_pkcs8(der),
                    o if o == der::OID_ED25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                        .map(|k| PrivateKey {
                            inner: KeyInner::Ed25519(k),
                        })
                        .map_err(|_| bad("Ed25519 PKCS#8 rejected")),
                    o if o == der::OID_X25519 => {
                        // RFC 8410: privateKey is an OCTET STRING holding the 32-byte scalar.
                        let (t, _) =
                            der::read_tlv(inner).ok_or_else(|| bad("X25519 key malformed"))?;
                        if t.tag != 0x04 || t.value.len() != 32 {
                            return Err(bad("X25519 key malformed"));
                        }
                        agreement::PrivateKey::from_private_key(&agreement::X25519, t.value)
                            .map(|k| PrivateKey {
                                inner: KeyInner::X25519(k),
                            })
                            .map_err(|_| bad("X25519 key rejected"))
                    }
                    _ => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
                        .map(|k| PrivateKey {
                            inner: KeyInner::P256(k),
                        })
                        .map_err(|_| bad("unsupported PKCS#8 key algorithm")),
                }
            }
        }
    }

    fn rsa_from_pkcs8(pkcs8: &[u8]) -> Result<Self, PkiError> {
        let pair = RsaKeyPair::from_pkcs8(pkcs8)
            .map_err(|e| PkiError::BadKey(format!("RSA key rejected: {e}")))?;
        let decrypt = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|e| PkiError::BadKey(format!("RSA key rejected: {e}")))?;
        Ok(PrivateKey {
            inner: KeyInner::Rsa { pair, decrypt },
        })
    }

    /// Generates a fresh key (tests, demo PKI). RSA keys are 2048 bits.
    pub fn generate(kind: KeyType) -> Result<Self, PkiError> {
        fn e<E>(_: E) -> PkiError {
            PkiError::BadKey("key generation failed".into())
        }
        Ok(match kind {
            KeyType::Rsa => {
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(e)?;
                let pkcs8 =
                    aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                        .map_err(e)?;
                return Self::rsa_from_pkcs8(pkcs8.as_ref());
            }
            KeyType::Ed25519 => PrivateKey {
                inner: KeyInner::Ed25519(Ed25519KeyPair::generate().map_err(e)?),
            },
            KeyType::X25519 => PrivateKey {
                inner: KeyInner::X25519(
                    agreement::PrivateKey::generate(&agreement::X25519).map_err(e)?,
                ),
            },
            KeyType::P256 => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(e)?;
                PrivateKey {
                    inner: KeyInner::P256(
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref())
                            .map_err(e)?,
                    ),
                }
            }
            KeyType::Other => return Err(PkiError::BadKey("cannot generate this key type".into())),
        })
    }

    /// The PKCS#8 DER of this key (for writing demo keys and for test oracles). Zeroized on drop.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        fn e<E>(_: E) -> PkiError {
            PkiError::BadKey("cannot encode key".into())
        }
        Ok(Zeroizing::new(match &self.inner {
            KeyInner::Rsa { pair, .. } => AsDer::<Pkcs8V1Der>::as_der(pair)
                .map_err(e)?
                .as_ref()
                .to_vec(),
            KeyInner::Ed25519(k) => k.to_pkcs8v1().map_err(e)?.as_ref().to_vec(),
            KeyInner::X25519(k) => {
                // aws-lc-rs does not encode X25519 keys as PKCS#8; RFC 8410 §7 is simple enough.
                use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
                let seed = AsBigEndian::<Curve25519SeedBin>::as_be_bytes(k).map_err(e)?;
                let inner = Zeroizing::new(der::tlv(0x04, seed.as_ref()));
                let alg = der::seq(&[&der::tlv(0x06, der::OID_X25519)]);
                der::seq(&[&der::tlv(0x02, &[0]), &alg, &der::tlv(0x04, &inner)])
            }
            KeyInner::P256(k) => k.to_pkcs8v1().map_err(e)?.as_ref().to_vec(),
        }))
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        match self.inner {
            KeyInner::Rsa { .. } => KeyType::Rsa,
            KeyInner::Ed25519(_) => KeyType::Ed25519,
            KeyInner::X25519(_) => KeyType::X25519,
            KeyInner::P256(_) => KeyType::P256,
        }
    }

    /// The public key as it appears in a certificate's subjectPublicKey BIT STRING
    /// (RSAPublicKey DER, 32 raw bytes for Ed25519/X25519, uncompressed point for P-256).
    pub fn public_key_bits(&self) -> Vec<u8> {
        match &self.inner {
            KeyInner::Rsa { pair, .. } => pair.public_key().as_ref().to_vec(),
            KeyInner::Ed25519(k) => k.public_key().as_ref().to_vec(),
            KeyInner::X25519(k) => k
                .compute_public_key()
                .map(|p| p.as_ref().to_vec())
                .unwrap_or_default(),
            KeyInner::P256(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// True when `cert` carries this key's public key (used to pick our decryption key and to
    /// refuse a mismatched key/certificate configuration).
    pub fn matches(&self, cert: &Certificate) -> bool {
        use subtle::ConstantTimeEq;
        let mine = self.public_key_bits();
        !mine.is_empty() && bool::from(mine.as_slice().ct_eq(cert.public_key_bits()))
    }
}
