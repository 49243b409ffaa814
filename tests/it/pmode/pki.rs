//! `as4gw pki demo`: the generated set parses, chains to the CA and has the stated key usages.

use std::path::Path;
use std::process::Command;

use x509_parser::prelude::*;

use crate::support::as4gw_bin;

fn pem_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pem.contents
}

#[derive(Debug, PartialEq)]
struct Usage {
    digital_signature: bool,
    key_encipherment: bool,
    key_agreement: bool,
    key_cert_sign: bool,
}

fn check_set(dir: &Path) {
    let ca_der = pem_der(&dir.join("ca.cert.pem"));
    let (_, ca) = X509Certificate::from_der(&ca_der).expect("CA parses");
    assert!(ca.is_ca(), "CA has basicConstraints CA:true");
    ca.verify_signature(None).expect("CA self-signature");
    assert!(std::fs::read_to_string(dir.join("ca.key.pem"))
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let expect = [
        ("rsa", "1.2.840.113549.1.1.1", (true, true, false)),
        ("ed25519", "1.3.101.112", (true, false, false)),
        ("x25519", "1.3.101.110", (false, false, true)),
        ("tls", "1.2.840.10045.2.1", (true, false, false)),
    ];
    for gw in ["red", "blue"] {
        for (name, spki_oid, (ds, ke, ka)) in expect {
            let path = dir.join(gw).join(format!("{name}.cert.pem"));
            let der = pem_der(&path);
            let (_, cert) = X509Certificate::from_der(&der).expect("leaf parses");
            assert_eq!(
                cert.public_key().algorithm.algorithm.to_id_string(),
                spki_oid,
                "{gw}/{name} key algorithm"
            );
            cert.verify_signature(Some(ca.public_key()))
                .unwrap_or_else(|e| panic!("{gw}/{name} chain: {e}"));
            assert_eq!(cert.issuer(), ca.subject());
            let ku = cert
                .key_usage()
                .expect("keyUsage parses")
                .expect("keyUsage present")
                .value;
            let got = Usage {
                digital_signature: ku.digital_signature(),
                key_encipherment: ku.key_encipherment(),
                key_agreement: ku.key_agreement(),
                key_cert_sign: ku.key_cert_sign(),
            };
            let want = Usage {
                digital_signature: ds,
                key_encipherment: ke,
                key_agreement: ka,
                key_cert_sign: false,
            };
            assert_eq!(got, want, "{gw}/{name} keyUsage");
            let eku = cert.extended_key_usage().expect("EKU parses");
            if name == "tls" {
                let eku = eku.expect("TLS cert has EKU").value;
                assert!(eku.server_auth && eku.client_auth);
                let san = cert.subject_alternative_name().unwrap().expect("SAN").value;
                let names: Vec<String> = san.general_names.iter().map(|n| format!("{n}")).collect();
                assert!(names.iter().any(|n| n.contains("localhost")), "{names:?}");
                assert_eq!(san.general_names.len(), 3, "{names:?}");
            } else {
                // digest §12.3: message certificates carry no TLS EKU.
                assert!(eku.is_none(), "{gw}/{name} must not carry an EKU");
            }
            let validity = cert.validity().time_to_expiration().expect("valid now");
            assert!(
                validity.whole_days() > 365 * 9,
                "{gw}/{name}: about 10 years"
            );
            let key =
                std::fs::read_to_string(dir.join(gw).join(format!("{name}.key.pem"))).unwrap();
            assert!(
                key.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{gw}/{name} key is PKCS#8"
            );
        }
    }
}

#[test]
fn pki_demo_generates_a_valid_set() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let status = Command::new(as4gw_bin())
        .args(["pki", "demo", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    check_set(&out);
}

#[test]
fn committed_demo_set_is_valid() {
    check_set(&Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/demo"));
}

#[test]
fn x25519_key_matches_certificate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/demo/red");
    let cert_der = pem_der(&dir.join("x25519.cert.pem"));
    let (_, cert) = X509Certificate::from_der(&cert_der).unwrap();
    let key_text = std::fs::read(dir.join("x25519.key.pem")).unwrap();
    let (_, key_pem) = x509_parser::pem::parse_x509_pem(&key_text).unwrap();
    // RFC 8410 PKCS#8: 16-byte header, then the 32-byte private scalar.
    let seed = &key_pem.contents[16..];
    let k = aws_lc_rs::agreement::PrivateKey::from_private_key(&aws_lc_rs::agreement::X25519, seed)
        .unwrap();
    let public = k.compute_public_key().unwrap();
    assert_eq!(
        public.as_ref(),
        cert.public_key().subject_public_key.data.as_ref()
    );
}
