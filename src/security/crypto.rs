//! The crypto seam: every primitive the two eDelivery suites need, behind one trait.
//!
//! Production uses [`AwsLc`] (aws-lc-rs; rust-stack §1.4). Tests check each function against
//! an independent implementation (RustCrypto crates) and published known-answer vectors, so each
//! suite is checked against two implementations (architecture "Crypto seam").
//!
//! Conventions:
//! - AES-128-GCM output is `IV (12) ‖ ciphertext ‖ tag (16)`, the XML Encryption 1.1 §5.2.4
//!   layout used by both suites (digest §4.6 note);
//! - secrets come back in [`Zeroizing`] buffers.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use aws_lc_rs::agreement;
use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrap, AES_128};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use zeroize::{Zeroize, Zeroizing};

use crate::pki::keys::KeyInner;
use crate::pki::PrivateKey;

/// A primitive failed. Deliberately without detail: callers map it to the right EBMS code, and
/// detail on decryption failures would be an oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cryptographic operation failed")]
pub struct CryptoError;

/// RSA-OAEP parameter sets we accept (digest §3.2 key transport, legacy tolerance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oaep {
    /// xmlenc11#rsa-oaep with SHA-256 digest and MGF1-SHA-256 (eDelivery 1.15).
    Sha256Mgf1Sha256,
    /// xmlenc#rsa-oaep-mgf1p with SHA-1 digest (pre-1.13 senders, receive only by default).
    Sha1Mgf1Sha1,
}

/// AES-128-GCM IV length (96 bits).
pub const GCM_IV_LEN: usize = 12;
/// AES-128-GCM tag length (128 bits).
pub const GCM_TAG_LEN: usize = 16;

/// The primitives. Object safe, so a test can run the same code over another provider.
pub trait Crypto: Send + Sync {
    /// SHA-256.
    fn sha256(&self, data: &[u8]) -> [u8; 32];
    /// Fills `out` with random bytes.
    fn random(&self, out: &mut [u8]) -> Result<(), CryptoError>;
    /// RSASSA-PKCS1-v1_5 with SHA-256 (xmldsig-more#rsa-sha256).
    fn rsa_sha256_sign(&self, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Verifies RSASSA-PKCS1-v1_5 SHA-256; `public` is the RSAPublicKey DER (certificate key bits).
    fn rsa_sha256_verify(&self, public: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;
    /// Ed25519 (RFC 8032) signature.
    fn ed25519_sign(&self, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Ed25519 verification with the raw 32-byte public key.
    fn ed25519_verify(&self, public: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError>;
    /// RSA-OAEP encryption to the RSAPublicKey DER `public`.
    fn rsa_oaep_encrypt(
        &self,
        public: &[u8],
        params: Oaep,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;
    /// RSA-OAEP decryption.
    fn rsa_oaep_decrypt(
        &self,
        key: &PrivateKey,
        params: Oaep,
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
    /// Ephemeral-static X25519: returns (ephemeral public key, shared secret).
    fn x25519_ephemeral(
        &self,
        peer_public: &[u8],
    ) -> Result<([u8; 32], Zeroizing<Vec<u8>>), CryptoError>;
    /// Static X25519 with our private key.
    fn x25519_static(
        &self,
        key: &PrivateKey,
        peer_public: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
    /// HKDF-SHA256 (RFC 5869) with any salt (empty allowed) and info (empty allowed).
    fn hkdf_sha256(
        &self,
        ikm: &[u8],
        salt: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
    /// AES-128 key wrap (RFC 3394).
    fn aes128_kw_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// AES-128 key unwrap (RFC 3394); the integrity check failing is an error.
    fn aes128_kw_unwrap(
        &self,
        kek: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError>;
    /// AES-128-GCM seal with a fresh random IV → `IV ‖ CT ‖ TAG`.
    fn aes128_gcm_seal(&self, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut iv = [0u8; GCM_IV_LEN];
        self.random(&mut iv)?;
        let mut out = Vec::with_capacity(GCM_IV_LEN + plaintext.len() + GCM_TAG_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(plaintext);
        let tag = self.aes128_gcm_seal_in_place(key, &iv, &mut out[GCM_IV_LEN..])?;
        out.extend_from_slice(&tag);
        Ok(out)
    }
    /// AES-128-GCM encryption of `buf` in place with the given IV; returns the tag.
    fn aes128_gcm_seal_in_place(
        &self,
        key: &[u8],
        iv: &[u8; GCM_IV_LEN],
        buf: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], CryptoError>;
    /// AES-128-GCM open of `IV ‖ CT ‖ TAG`.
    fn aes128_gcm_open(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// [`Crypto::aes128_gcm_open`] within the same buffer (no second copy of the part): `data`
    /// goes in as `IV ‖ CT ‖ TAG` and comes out as the plaintext. On failure it comes out
    /// empty and zeroed: no unauthenticated plaintext survives a failed tag check.
    fn aes128_gcm_open_in_place(&self, key: &[u8], data: &mut Vec<u8>) -> Result<(), CryptoError> {
        match self.aes128_gcm_open(key, data) {
            Ok(plain) => {
                *data = plain;
                Ok(())
            }
            Err(e) => {
                data.zeroize();
                Err(e)
            }
        }
    }
}

/// The aws-lc-rs provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct AwsLc;

fn rsa_public(public: &[u8]) -> Result<OaepPublicEncryptingKey, CryptoError> {
    // aws-lc-rs reads SubjectPublicKeyInfo; certificates give us the RSAPublicKey bits, so wrap them.
    let k = match PublicEncryptingKey::from_der(public) {
        Ok(k) => k,
        Err(_) => {
            use crate::pki::der::{seq, tlv, OID_RSA};
            let alg = seq(&[&tlv(0x06, OID_RSA), &[0x05, 0x00]]);
            let mut bits = vec![0u8];
            bits.extend_from_slice(public);
            PublicEncryptingKey::from_der(&seq(&[&alg, &tlv(0x03, &bits)]))
                .map_err(|_| CryptoError)?
        }
    };
    OaepPublicEncryptingKey::new(k).map_err(|_| CryptoError)
}

fn oaep_alg(p: Oaep) -> &'static aws_lc_rs::rsa::OaepAlgorithm {
    match p {
        Oaep::Sha256Mgf1Sha256 => &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
        Oaep::Sha1Mgf1Sha1 => &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
    }
}

impl Crypto for AwsLc {
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref());
        out
    }

    fn random(&self, out: &mut [u8]) -> Result<(), CryptoError> {
        SystemRandom::new().fill(out).map_err(|_| CryptoError)
    }

    fn rsa_sha256_sign(&self, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let KeyInner::Rsa { pair, .. } = &key.inner else {
            return Err(CryptoError);
        };
        let mut sig = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            msg,
            &mut sig,
        )
        .map_err(|_| CryptoError)?;
        Ok(sig)
    }

    fn rsa_sha256_verify(&self, public: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public)
            .verify(msg, sig)
            .map_err(|_| CryptoError)
    }

    fn ed25519_sign(&self, key: &PrivateKey, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let KeyInner::Ed25519(k) = &key.inner else {
            return Err(CryptoError);
        };
        Ok(k.sign(msg).as_ref().to_vec())
    }

    fn ed25519_verify(&self, public: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        UnparsedPublicKey::new(&signature::ED25519, public)
            .verify(msg, sig)
            .map_err(|_| CryptoError)
    }

    fn rsa_oaep_encrypt(
        &self,
        public: &[u8],
        params: Oaep,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let k = rsa_public(public)?;
        let mut out = vec![0u8; k.ciphertext_size()];
        let n = k
            .encrypt(oaep_alg(params), plaintext, &mut out, None)
            .map_err(|_| CryptoError)?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn rsa_oaep_decrypt(
        &self,
        key: &PrivateKey,
        params: Oaep,
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let KeyInner::Rsa { decrypt, .. } = &key.inner else {
            return Err(CryptoError);
        };
        let k = OaepPrivateDecryptingKey::new(decrypt.clone()).map_err(|_| CryptoError)?;
        let mut out = Zeroizing::new(vec![0u8; k.min_output_size()]);
        let n = k
            .decrypt(oaep_alg(params), ct, &mut out, None)
            .map_err(|_| CryptoError)?
            .len();
        out.truncate(n);
        Ok(out)
    }

    fn x25519_ephemeral(
        &self,
        peer_public: &[u8],
    ) -> Result<([u8; 32], Zeroizing<Vec<u8>>), CryptoError> {
        let eph = agreement::PrivateKey::generate(&agreement::X25519).map_err(|_| CryptoError)?;
        let pubk = eph.compute_public_key().map_err(|_| CryptoError)?;
        let mut p = [0u8; 32];
        if pubk.as_ref().len() != 32 {
            return Err(CryptoError);
        }
        p.copy_from_slice(pubk.as_ref());
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_public);
        let shared = agreement::agree(&eph, peer, CryptoError, |s| Ok(Zeroizing::new(s.to_vec())))?;
        Ok((p, shared))
    }

    fn x25519_static(
        &self,
        key: &PrivateKey,
        peer_public: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let KeyInner::X25519(k) = &key.inner else {
            return Err(CryptoError);
        };
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_public);
        agreement::agree(k, peer, CryptoError, |s| Ok(Zeroizing::new(s.to_vec())))
    }

    fn hkdf_sha256(
        &self,
        ikm: &[u8],
        salt: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        struct Len(usize);
        impl aws_lc_rs::hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        if len == 0 || len > 255 * 32 {
            return Err(CryptoError);
        }
        let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, salt).extract(ikm);
        let info_parts = [info];
        let okm = prk.expand(&info_parts, Len(len)).map_err(|_| CryptoError)?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        okm.fill(&mut out).map_err(|_| CryptoError)?;
        Ok(out)
    }

    fn aes128_kw_wrap(&self, kek: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if kek.len() != 16 {
            return Err(CryptoError);
        }
        let k = KeyEncryptionKey::new(&AES_128, kek).map_err(|_| CryptoError)?;
        let mut out = vec![0u8; key.len() + 8];
        let n = k.wrap(key, &mut out).map_err(|_| CryptoError)?.len();
        out.truncate(n);
        Ok(out)
    }

    fn aes128_kw_unwrap(
        &self,
        kek: &[u8],
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if kek.len() != 16 || wrapped.len() < 24 {
            return Err(CryptoError);
        }
        let k = KeyEncryptionKey::new(&AES_128, kek).map_err(|_| CryptoError)?;
        let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
        let n = k.unwrap(wrapped, &mut out).map_err(|_| CryptoError)?.len();
        out.truncate(n);
        Ok(out)
    }

    fn aes128_gcm_seal_in_place(
        &self,
        key: &[u8],
        iv: &[u8; GCM_IV_LEN],
        buf: &mut [u8],
    ) -> Result<[u8; GCM_TAG_LEN], CryptoError> {
        let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).map_err(|_| CryptoError)?);
        let tag = k
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*iv), Aad::empty(), buf)
            .map_err(|_| CryptoError)?;
        let mut t = [0u8; GCM_TAG_LEN];
        t.copy_from_slice(tag.as_ref());
        Ok(t)
    }

    fn aes128_gcm_open(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if data.len() < GCM_IV_LEN + GCM_TAG_LEN {
            return Err(CryptoError);
        }
        let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).map_err(|_| CryptoError)?);
        let mut iv = [0u8; GCM_IV_LEN];
        iv.copy_from_slice(&data[..GCM_IV_LEN]);
        let mut buf = data[GCM_IV_LEN..].to_vec();
        let n = k
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut buf)
            .map_err(|_| CryptoError)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    fn aes128_gcm_open_in_place(&self, key: &[u8], data: &mut Vec<u8>) -> Result<(), CryptoError> {
        if data.len() < GCM_IV_LEN + GCM_TAG_LEN {
            data.zeroize();
            return Err(CryptoError);
        }
        let k = match UnboundKey::new(&AES_128_GCM, key) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => {
                data.zeroize();
                return Err(CryptoError);
            }
        };
        let mut iv = [0u8; GCM_IV_LEN];
        iv.copy_from_slice(&data[..GCM_IV_LEN]);
        let opened = k
            .open_in_place(
                Nonce::assume_unique_for_key(iv),
                Aad::empty(),
                &mut data[GCM_IV_LEN..],
            )
            .map(|p| p.len());
        match opened {
            Ok(n) => {
                data.copy_within(GCM_IV_LEN..GCM_IV_LEN + n, 0);
                data.truncate(n);
                Ok(())
            }
            Err(_) => {
                data.zeroize();
                Err(CryptoError)
            }
        }
    }
}

/// Largest AES-GCM plaintext (NIST SP 800-38D §5.2.1.1: 2^39 − 256 bits). Within it the 32-bit
/// GCM counter never wraps, so aws-lc-rs's CTR mode (128-bit counter) produces the same key
/// stream as GCM's `inc32`.
pub const GCM_MAX_LEN: u64 = (1 << 36) - 32;

/// Bytes per CTR call: keeps the scratch buffer small whatever the caller's chunk size.
const GCM_STEP: usize = 64 * 1024;

/// Which way a [`GcmStream`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GcmDir {
    Seal,
    Open,
}

/// Incremental AES-128-GCM (96-bit IV, no AAD) for parts too large to hold in memory.
///
/// aws-lc-rs exposes GCM only as a one-shot AEAD, so this is GCM composed from its two halves
/// (SP 800-38D §7): the key stream from aws-lc-rs's streaming AES-CTR starting at `J0 = IV ‖ 1`
/// (its first block is `E(K, J0)`, the tag mask; the data starts at `inc32(J0)`), and GHASH from
/// the RustCrypto `ghash` crate over the ciphertext and the length block. Cross-checked against
/// the one-shot [`AwsLc`] GCM on many sizes and splits (`tests/it/security/crypto.rs`).
///
/// Decryption releases plaintext as it goes: the caller must treat it as untrusted (spool it,
/// never hand it on) until [`GcmStream::verify`] accepted the tag.
pub struct GcmStream {
    dir: GcmDir,
    ctr: aws_lc_rs::cipher::StreamingDecryptingKey,
    ghash: ghash::GHash,
    /// `E(K, J0)`, XORed into the GHASH output.
    tag_mask: Zeroizing<[u8; 16]>,
    /// Ciphertext not yet a whole GHASH block.
    pending: [u8; 16],
    pending_len: usize,
    len: u64,
    scratch: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for GcmStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcmStream({:?}, {} bytes)", self.dir, self.len)
    }
}

fn ctr_at(
    key: &[u8],
    block: [u8; 16],
) -> Result<aws_lc_rs::cipher::StreamingDecryptingKey, CryptoError> {
    use aws_lc_rs::cipher::{DecryptionContext, StreamingDecryptingKey, UnboundCipherKey, AES_128};
    let k = UnboundCipherKey::new(&AES_128, key).map_err(|_| CryptoError)?;
    StreamingDecryptingKey::ctr(
        k,
        DecryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(block)),
    )
    .map_err(|_| CryptoError)
}

/// The CTR key stream applied to `data` (CTR decryption is encryption).
fn ctr_apply(
    ctr: &mut aws_lc_rs::cipher::StreamingDecryptingKey,
    scratch: &mut Vec<u8>,
    data: &mut [u8],
) -> Result<(), CryptoError> {
    for chunk in data.chunks_mut(GCM_STEP) {
        let need = chunk.len() + 16;
        if scratch.len() < need {
            scratch.resize(need, 0);
        }
        let out = ctr.update(chunk, scratch).map_err(|_| CryptoError)?;
        let w = out.written();
        if w.len() != chunk.len() {
            return Err(CryptoError);
        }
        chunk.copy_from_slice(w);
    }
    Ok(())
}

impl GcmStream {
    fn new(dir: GcmDir, key: &[u8], iv: &[u8; GCM_IV_LEN]) -> Result<Self, CryptoError> {
        if key.len() != 16 {
            return Err(CryptoError);
        }
        let mut scratch = Zeroizing::new(vec![0u8; 64]);
        // H = E(K, 0^128)
        let mut h = Zeroizing::new([0u8; 16]);
        ctr_apply(&mut ctr_at(key, [0u8; 16])?, &mut scratch, h.as_mut())?;
        let ghash = ghash::GHash::new(&ghash::Key::from(*h));
        // J0 = IV ‖ 0^31 ‖ 1; the first key-stream block is E(K, J0), the rest starts at inc32(J0).
        let mut j0 = [0u8; 16];
        j0[..GCM_IV_LEN].copy_from_slice(iv);
        j0[15] = 1;
        let mut ctr = ctr_at(key, j0)?;
        let mut tag_mask = Zeroizing::new([0u8; 16]);
        ctr_apply(&mut ctr, &mut scratch, tag_mask.as_mut())?;
        Ok(GcmStream {
            dir,
            ctr,
            ghash,
            tag_mask,
            pending: [0u8; 16],
            pending_len: 0,
            len: 0,
            scratch,
        })
    }

    /// A sealing stream: [`update`](Self::update) turns plaintext into ciphertext.
    pub fn seal(key: &[u8], iv: &[u8; GCM_IV_LEN]) -> Result<Self, CryptoError> {
        Self::new(GcmDir::Seal, key, iv)
    }

    /// An opening stream: [`update`](Self::update) turns ciphertext into (unverified) plaintext.
    pub fn open(key: &[u8], iv: &[u8; GCM_IV_LEN]) -> Result<Self, CryptoError> {
        Self::new(GcmDir::Open, key, iv)
    }

    /// Bytes processed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was processed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn absorb(&mut self, mut ct: &[u8]) {
        use ghash::universal_hash::UniversalHash;
        if self.pending_len > 0 {
            let take = (16 - self.pending_len).min(ct.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&ct[..take]);
            self.pending_len += take;
            ct = &ct[take..];
            if self.pending_len < 16 {
                return;
            }
            self.ghash.update_padded(&self.pending);
            self.pending_len = 0;
        }
        let whole = ct.len() - ct.len() % 16;
        if whole > 0 {
            // Whole blocks: `update_padded` pads nothing here.
            self.ghash.update_padded(&ct[..whole]);
        }
        let rest = &ct[whole..];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// Encrypts (seal) or decrypts (open) `data` in place.
    pub fn update(&mut self, data: &mut [u8]) -> Result<(), CryptoError> {
        let new_len = self.len.checked_add(data.len() as u64).ok_or(CryptoError)?;
        if new_len > GCM_MAX_LEN {
            return Err(CryptoError);
        }
        self.len = new_len;
        if self.dir == GcmDir::Open {
            self.absorb(data);
        }
        ctr_apply(&mut self.ctr, &mut self.scratch, data)?;
        if self.dir == GcmDir::Seal {
            self.absorb(data);
        }
        Ok(())
    }

    fn tag(mut self) -> [u8; GCM_TAG_LEN] {
        use ghash::universal_hash::UniversalHash;
        if self.pending_len > 0 {
            self.ghash.update_padded(&self.pending[..self.pending_len]);
        }
        let mut lens = [0u8; 16];
        // len(A) = 0 (no AAD); len(C) in bits.
        lens[8..].copy_from_slice(&(self.len * 8).to_be_bytes());
        self.ghash.update_padded(&lens);
        let s = self.ghash.finalize();
        let mut t = [0u8; GCM_TAG_LEN];
        for (o, (a, b)) in t.iter_mut().zip(s.iter().zip(self.tag_mask.iter())) {
            *o = a ^ b;
        }
        t
    }

    /// Ends a sealing stream: the tag.
    pub fn finish(self) -> Result<[u8; GCM_TAG_LEN], CryptoError> {
        if self.dir != GcmDir::Seal {
            return Err(CryptoError);
        }
        Ok(self.tag())
    }

    /// Ends an opening stream: `Ok` only if `tag` is the tag of everything processed (compared
    /// in constant time).
    pub fn verify(self, tag: &[u8]) -> Result<(), CryptoError> {
        use subtle::ConstantTimeEq;
        if self.dir != GcmDir::Open || tag.len() != GCM_TAG_LEN {
            return Err(CryptoError);
        }
        let t = Zeroizing::new(self.tag());
        if bool::from(t.as_slice().ct_eq(tag)) {
            Ok(())
        } else {
            Err(CryptoError)
        }
    }
}
