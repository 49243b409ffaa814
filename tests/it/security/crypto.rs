//! The crypto seam against a second implementation (RustCrypto) and published vectors
//! (RFC 8032, RFC 7748, RFC 5869, RFC 3394, FIPS 180-2, the GCM specification).

use as4gw::pki::{load_private_key, KeyType, PrivateKey};
use as4gw::security::crypto::{AwsLc, Crypto, Oaep};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

fn pkcs8_for(oid_last: u8, seed: &[u8]) -> PrivateKey {
    let mut der = h(&format!("302e020100300506032b65{oid_last:02x}04220420"));
    der.extend_from_slice(seed);
    load_private_key(&der).expect("pkcs8")
}

#[test]
fn sha256_fips_vector() {
    assert_eq!(
        hex::encode(AwsLc.sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn ed25519_rfc8032_test1_and_dalek() {
    let seed = h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let key = pkcs8_for(0x70, &seed);
    assert_eq!(key.key_type(), KeyType::Ed25519);
    let public = h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    assert_eq!(key.public_key_bits(), public);
    let sig = AwsLc.ed25519_sign(&key, b"").expect("sign");
    assert_eq!(
        hex::encode(&sig),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    AwsLc.ed25519_verify(&public, b"", &sig).expect("verify");
    // dalek signs a message, aws-lc-rs verifies; and the other way round
    use ed25519_dalek::{Signer, Verifier};
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed.clone().try_into().expect("32"));
    let msg = b"AS4 SignedInfo bytes";
    let dsig = sk.sign(msg);
    AwsLc
        .ed25519_verify(&public, msg, &dsig.to_bytes())
        .expect("dalek sig verifies");
    assert!(AwsLc
        .ed25519_verify(&public, b"other", &dsig.to_bytes())
        .is_err());
    let asig = AwsLc.ed25519_sign(&key, msg).expect("sign");
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&public.clone().try_into().expect("32"))
        .expect("vk");
    vk.verify(
        msg,
        &ed25519_dalek::Signature::from_bytes(&asig.try_into().expect("64")),
    )
    .expect("dalek verifies");
}

#[test]
fn x25519_rfc7748_and_dalek() {
    let alice = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let bob_pub = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let key = pkcs8_for(0x6e, &alice);
    assert_eq!(key.key_type(), KeyType::X25519);
    assert_eq!(
        hex::encode(key.public_key_bits()),
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    );
    let shared = AwsLc.x25519_static(&key, &bob_pub).expect("agree");
    assert_eq!(
        hex::encode(shared.as_slice()),
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    );
    // aws-lc-rs ephemeral sender ↔ dalek static receiver
    let recv =
        x25519_dalek::StaticSecret::from(<[u8; 32]>::try_from(alice.as_slice()).expect("32"));
    let recv_pub = x25519_dalek::PublicKey::from(&recv);
    let (eph, s1) = AwsLc.x25519_ephemeral(recv_pub.as_bytes()).expect("eph");
    let s2 = recv.diffie_hellman(&x25519_dalek::PublicKey::from(eph));
    assert_eq!(s1.as_slice(), s2.as_bytes());
}

#[test]
fn hkdf_rfc5869_case1_and_rustcrypto_any_salt_info() {
    let okm = AwsLc
        .hkdf_sha256(
            &[0x0b; 22],
            &h("000102030405060708090a0b0c"),
            &h("f0f1f2f3f4f5f6f7f8f9"),
            42,
        )
        .expect("hkdf");
    assert_eq!(
        hex::encode(okm.as_slice()),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    for (salt_len, info_len) in [(0usize, 0usize), (16, 0), (32, 0), (64, 7), (5, 100)] {
        let salt = vec![0x5a; salt_len];
        let info = vec![0xa5; info_len];
        let ikm = [7u8; 32];
        let ours = AwsLc.hkdf_sha256(&ikm, &salt, &info, 16).expect("hkdf");
        let mut theirs = [0u8; 16];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut theirs)
            .expect("expand");
        assert_eq!(ours.as_slice(), &theirs, "salt {salt_len} info {info_len}");
    }
}

#[test]
fn aes_kw_rfc3394_and_rustcrypto() {
    let kek = h("000102030405060708090A0B0C0D0E0F");
    let key = h("00112233445566778899AABBCCDDEEFF");
    let wrapped = AwsLc.aes128_kw_wrap(&kek, &key).expect("wrap");
    assert_eq!(
        hex::encode_upper(&wrapped),
        "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
    );
    assert_eq!(
        AwsLc
            .aes128_kw_unwrap(&kek, &wrapped)
            .expect("unwrap")
            .as_slice(),
        key.as_slice()
    );
    use aes_kw::cipher::KeyInit;
    let kw = aes_kw::KwAes128::new_from_slice(&kek).expect("kek");
    let mut buf = [0u8; 24];
    assert_eq!(
        kw.wrap_key(&key, &mut buf).expect("wrap"),
        wrapped.as_slice()
    );
    let mut bad = wrapped.clone();
    bad[3] ^= 1;
    assert!(
        AwsLc.aes128_kw_unwrap(&kek, &bad).is_err(),
        "integrity check"
    );
}

#[test]
fn aes_gcm_spec_vector_layout_and_rustcrypto() {
    // GCM specification test case 2: K = 0^128, IV = 0^96, P = 0^128.
    let mut buf = [0u8; 16];
    let tag = AwsLc
        .aes128_gcm_seal_in_place(&[0u8; 16], &[0u8; 12], &mut buf)
        .expect("seal");
    assert_eq!(hex::encode(buf), "0388dace60b6a392f328c2b971b2fe78");
    assert_eq!(hex::encode(tag), "ab6e47d42cec13bdf53a67b21257bddf");
    // IV ‖ CT ‖ TAG, opened by aes-gcm
    use aes_gcm::aead::{Aead, KeyInit};
    let key = [0x42u8; 16];
    let pt = b"a compressed payload part".repeat(50);
    let sealed = AwsLc.aes128_gcm_seal(&key, &pt).expect("seal");
    assert_eq!(sealed.len(), 12 + pt.len() + 16);
    let c = aes_gcm::Aes128Gcm::new_from_slice(&key).expect("key");
    let nonce = aes_gcm::Nonce::try_from(&sealed[..12]).expect("nonce");
    assert_eq!(c.decrypt(&nonce, &sealed[12..]).expect("open"), pt);
    // and the other way round
    let theirs = c.encrypt(&nonce, pt.as_slice()).expect("seal");
    let mut framed = sealed[..12].to_vec();
    framed.extend_from_slice(&theirs);
    assert_eq!(AwsLc.aes128_gcm_open(&key, &framed).expect("open"), pt);
    framed[20] ^= 1;
    assert!(AwsLc.aes128_gcm_open(&key, &framed).is_err());
    // streaming API
    let mut out = Vec::new();
    as4gw::security::sign::encrypt_part_stream(&AwsLc, &key, &mut pt.as_slice(), &mut out)
        .expect("enc");
    let mut back = Vec::new();
    as4gw::security::sign::decrypt_part_stream(&AwsLc, &key, &mut out.as_slice(), &mut back)
        .expect("dec");
    assert_eq!(back, pt);
}

#[test]
fn rsa_sha256_and_oaep_against_rustcrypto() {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = PrivateKey::generate(KeyType::Rsa).expect("rsa");
    let der = key.to_pkcs8_der().expect("der");
    let theirs = rsa::PrivateKey::from_pkcs8_der(&der).expect("rsa crate key");
    let public = rsa::PublicKey::from_pkcs1_der(&key.public_key_bits()).expect("public");
    let msg = b"canonical SignedInfo";
    // aws-lc-rs signs, rsa verifies; rsa signs, aws-lc-rs verifies
    let sig = AwsLc.rsa_sha256_sign(&key, msg).expect("sign");
    public
        .pkcs1v15_verify::<sha2::Sha256>(msg, &sig)
        .expect("rsa crate verifies");
    let sig2 = theirs
        .pkcs1v15_sign::<sha2::Sha256>(msg)
        .expect("rsa crate signs");
    assert_eq!(sig, sig2, "PKCS#1 v1.5 is deterministic");
    AwsLc
        .rsa_sha256_verify(&key.public_key_bits(), msg, &sig2)
        .expect("verify");
    assert!(AwsLc
        .rsa_sha256_verify(&key.public_key_bits(), b"x", &sig2)
        .is_err());
    // OAEP SHA-256/MGF1-SHA-256 both ways
    let cek = [9u8; 16];
    let ct = public.oaep_encrypt::<sha2::Sha256>(&cek).expect("encrypt");
    assert_eq!(
        AwsLc
            .rsa_oaep_decrypt(&key, Oaep::Sha256Mgf1Sha256, &ct)
            .expect("decrypt")
            .as_slice(),
        &cek
    );
    let ct2 = AwsLc
        .rsa_oaep_encrypt(&key.public_key_bits(), Oaep::Sha256Mgf1Sha256, &cek)
        .expect("encrypt");
    assert_eq!(
        theirs
            .oaep_decrypt::<sha2::Sha256>(&ct2)
            .expect("rsa crate decrypts"),
        cek
    );
    // legacy mgf1p (SHA-1 / MGF1-SHA-1)
    let ct3 = public.oaep_encrypt::<sha1::Sha1>(&cek).expect("encrypt");
    assert_eq!(
        AwsLc
            .rsa_oaep_decrypt(&key, Oaep::Sha1Mgf1Sha1, &ct3)
            .expect("decrypt")
            .as_slice(),
        &cek
    );
    assert!(
        AwsLc
            .rsa_oaep_decrypt(&key, Oaep::Sha256Mgf1Sha256, &ct3)
            .is_err(),
        "parameters matter"
    );
}

#[test]
fn keys_never_show_in_debug() {
    let key = PrivateKey::generate(KeyType::Ed25519).expect("key");
    let d = format!("{key:?}");
    assert_eq!(d, "PrivateKey(Ed25519, secret redacted)");
}

/// Streaming GCM (aws-lc-rs CTR + RustCrypto GHASH) against aws-lc-rs's one-shot GCM, both
/// directions, on the boundary sizes and random splits into `update` calls.
#[test]
fn streaming_gcm_matches_one_shot() {
    use as4gw::security::crypto::GcmStream;
    use rand::{Rng, RngCore};
    let mut rng = rand::rng();
    let sizes = [
        0usize,
        1,
        15,
        16,
        17,
        31,
        33,
        255,
        4096,
        65535,
        65536,
        65537,
        (1 << 20) + 7,
        3 * (1 << 20) + 13,
    ];
    for &n in &sizes {
        for round in 0..3 {
            let mut key = [0u8; 16];
            let mut iv = [0u8; 12];
            rng.fill_bytes(&mut key);
            rng.fill_bytes(&mut iv);
            let mut plain = vec![0u8; n];
            rng.fill_bytes(&mut plain);
            // one-shot reference
            let mut reference = plain.clone();
            let ref_tag = AwsLc
                .aes128_gcm_seal_in_place(&key, &iv, &mut reference)
                .expect("seal");
            // streaming seal in random pieces (round 0: one piece)
            let mut ct = plain.clone();
            let mut s = GcmStream::seal(&key, &iv).expect("stream");
            let mut at = 0;
            while at < n {
                let step = if round == 0 {
                    n
                } else {
                    rng.random_range(1..=(n - at).min(if round == 1 { 40 } else { 200_000 }))
                };
                s.update(&mut ct[at..at + step]).expect("update");
                at += step;
            }
            let tag = s.finish().expect("finish");
            assert_eq!(ct, reference, "ciphertext, {n} bytes, round {round}");
            assert_eq!(tag, ref_tag, "tag, {n} bytes, round {round}");
            // streaming open of the one-shot output
            let mut pt = reference.clone();
            let mut o = GcmStream::open(&key, &iv).expect("stream");
            let mut at = 0;
            while at < n {
                let step = rng.random_range(1..=(n - at).min(100_000));
                o.update(&mut pt[at..at + step]).expect("update");
                at += step;
            }
            o.verify(&ref_tag).expect("tag verifies");
            assert_eq!(pt, plain, "plaintext, {n} bytes");
            // and the one-shot open of IV ‖ CT ‖ TAG
            let mut wire = iv.to_vec();
            wire.extend_from_slice(&ct);
            wire.extend_from_slice(&tag);
            assert_eq!(AwsLc.aes128_gcm_open(&key, &wire).expect("open"), plain);
            // a flipped bit anywhere (ciphertext or tag) fails the tag
            if n > 0 {
                let mut bad = reference.clone();
                let i = rng.random_range(0..n);
                bad[i] ^= 1 << rng.random_range(0..8);
                let mut o = GcmStream::open(&key, &iv).expect("stream");
                o.update(&mut bad).expect("update");
                assert!(o.verify(&ref_tag).is_err(), "tampered ciphertext accepted");
            }
            let mut bad_tag = ref_tag;
            bad_tag[15] ^= 0x80;
            let mut o = GcmStream::open(&key, &iv).expect("stream");
            o.update(&mut reference.clone()).expect("update");
            assert!(o.verify(&bad_tag).is_err(), "tampered tag accepted");
            let o = GcmStream::open(&key, &iv).expect("stream");
            assert!(o.verify(&ref_tag[..15]).is_err(), "short tag accepted");
        }
    }
}

/// The GCM specification's test case 4 (no AAD variant is case 3) through the stream.
#[test]
fn streaming_gcm_spec_vector() {
    use as4gw::security::crypto::GcmStream;
    let key = h("feffe9928665731c6d6a8f9467308308");
    let iv: [u8; 12] = h("cafebabefacedbaddecaf888").try_into().expect("iv");
    let mut data = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
    let mut s = GcmStream::seal(&key, &iv).expect("stream");
    s.update(&mut data[..7]).expect("update");
    s.update(&mut data[7..]).expect("update");
    assert_eq!(
        hex::encode(&data),
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
    );
    assert_eq!(
        hex::encode(s.finish().expect("tag")),
        "4d5c2af327cd64a62cf35abd2ba6fab4"
    );
}

/// The part streams (`IV ‖ CT ‖ TAG` over Read/Write, 256 KiB steps) against the one-shot
/// seal/open, around the chunk and tag boundaries; a flipped last ciphertext byte or tag byte
/// is an error.
#[test]
fn part_streams_cross_check_one_shot() {
    use as4gw::security::sign::{decrypt_part_stream, encrypt_part_stream};
    use rand::RngCore;
    let mut rng = rand::rng();
    let k = 256 * 1024;
    for n in [
        0usize,
        1,
        15,
        16,
        17,
        65535,
        65536,
        65537,
        k - 16,
        k - 1,
        k,
        k + 1,
        k + 17,
        5 * k + 3,
    ] {
        let mut key = [0u8; 16];
        rng.fill_bytes(&mut key);
        let mut pt = vec![0u8; n];
        rng.fill_bytes(&mut pt);
        let mut wire = Vec::new();
        let w = encrypt_part_stream(&AwsLc, &key, &mut pt.as_slice(), &mut wire).expect("enc");
        assert_eq!(w as usize, wire.len());
        assert_eq!(wire.len(), n + 28);
        assert_eq!(
            AwsLc.aes128_gcm_open(&key, &wire).expect("one-shot open"),
            pt,
            "{n}"
        );
        let sealed = AwsLc.aes128_gcm_seal(&key, &pt).expect("seal");
        let mut back = Vec::new();
        let r = decrypt_part_stream(&AwsLc, &key, &mut sealed.as_slice(), &mut back).expect("dec");
        assert_eq!(r as usize, n);
        assert_eq!(back, pt, "{n}");
        for at in [sealed.len() - 1, sealed.len() - 17, 12] {
            if at < 12 || (n == 0 && at < sealed.len() - 16) {
                continue;
            }
            let mut bad = sealed.clone();
            bad[at] ^= 0x01;
            let mut sink = Vec::new();
            assert!(
                decrypt_part_stream(&AwsLc, &key, &mut bad.as_slice(), &mut sink).is_err(),
                "{n} bytes, byte {at} flipped"
            );
        }
        let mut sink = Vec::new();
        assert!(
            decrypt_part_stream(&AwsLc, &key, &mut &sealed[..sealed.len() - 1], &mut sink).is_err()
        );
        assert!(decrypt_part_stream(&AwsLc, &key, &mut &sealed[..20], &mut sink).is_err());
    }
}
