//! `as4gw message verify` on fixtures and on generated messages.

use std::path::Path;
use std::process::Command;

use as4gw::security::{KeyReference, Suite, TokenType};
use base64::Engine;
use serde_json::Value;

use super::msg::{payloads, send};
use super::testpki::world;
use crate::support::{as4gw_bin, fixture};

fn run(args: &[&str]) -> (i32, Value) {
    let out = Command::new(as4gw_bin())
        .args(args)
        .output()
        .expect("run as4gw");
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, v)
}

fn f(rel: &str) -> String {
    fixture(rel).display().to_string()
}

#[test]
fn verifies_a_real_peppol_receipt() {
    let (code, v) = run(&[
        "message",
        "verify",
        "--trust",
        &f("interop/oxalis-ng/peppol_trust_g3/peppol_test_g2_root_ca.cert.pem"),
        "--trust",
        &f("interop/oxalis-ng/peppol_trust_g3/peppol_test_g2_ap_ca.cert.pem"),
        "--at",
        "2022-03-07T17:40:00Z",
        &f("interop/phase4/peppol-receipts/governikus.as4in"),
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["ebms"]["kind"], "Receipt");
    assert_eq!(v["signature"]["signed_info"], "valid");
    let refs = v["references"].as_array().expect("refs");
    assert_eq!(refs.len(), 2);
    assert!(refs.iter().all(|r| r["verdict"] == "match"));
}

#[test]
fn rejects_dataport1_on_the_messaging_digest() {
    let (code, v) = run(&[
        "message",
        "verify",
        "--trust",
        &f("interop/oxalis-ng/peppol_trust_g3/peppol_test_g2_root_ca.cert.pem"),
        "--trust",
        &f("interop/oxalis-ng/peppol_trust_g3/peppol_test_g2_ap_ca.cert.pem"),
        "--at",
        "2022-03-07T17:40:00Z",
        &f("interop/phase4/peppol-receipts/dataport1.as4in"),
    ]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["ebms_code"], "EBMS:0101");
    let refs = v["references"].as_array().expect("refs");
    assert_eq!(refs[0]["target"], "Messaging");
    assert_eq!(refs[0]["verdict"], "mismatch");
    assert_eq!(refs[1]["verdict"], "match");
}

#[test]
fn domibus_soap_request_signature_valid_but_incomplete() {
    let (code, v) = run(&[
        "message",
        "verify",
        "--key",
        &f("interop/domibus/keystores/default/gateway_keystore/red_gw.key.pem"),
        "--trust",
        &f("interop/domibus/keystores/default/gateway_truststore/blue_gw.cert.pem"),
        "--at",
        "2024-01-01T00:00:00Z",
        "--allow-legacy-oaep",
        &f("interop/domibus/messages/SoapRequest.xml"),
    ]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["signature"]["signed_info"], "valid");
    assert_eq!(v["references"][1]["verdict"], "attachment not in file");
    assert_eq!(v["ebms_code"], "EBMS:0101");
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn write_mime(
    dir: &Path,
    m: &as4gw::security::sign::SecuredMessage,
    with_headers: bool,
) -> (String, String) {
    let boundary = "MIMEBoundary_as4gw_test";
    let ct = format!(
        "multipart/related; type=\"application/soap+xml\"; boundary=\"{boundary}\"; start=\"<root@as4gw>\"; start-info=\"application/soap+xml\""
    );
    let mut body = Vec::new();
    if with_headers {
        body.extend_from_slice(
            format!("Content-Type: {ct}\r\nMIME-Version: 1.0\r\n\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/soap+xml; charset=UTF-8\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <root@as4gw>\r\n\r\n").as_bytes());
    body.extend_from_slice(&m.soap);
    for a in &m.attachments {
        body.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{}>\r\n\r\n", a.mime_type, a.content_id)
                .as_bytes(),
        );
        body.extend_from_slice(&a.data);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let path = dir.join(if with_headers { "msg.mime" } else { "msg.body" });
    std::fs::write(&path, body).expect("write");
    (path.display().to_string(), ct)
}

#[test]
fn decrypts_and_verifies_a_generated_message_and_writes_payloads() {
    let w = world();
    let dir = tempfile::tempdir().expect("tmp");
    for (suite, key) in [
        (Suite::Edelivery20, &w.red.x),
        (Suite::Edelivery115, &w.red.rsa),
    ] {
        let m = send(suite, KeyReference::Ski, TokenType::PkiPath);
        let key_file = dir.path().join("red.key.pem");
        std::fs::write(
            &key_file,
            pem("PRIVATE KEY", &key.key.to_pkcs8_der().expect("der")),
        )
        .expect("key");
        std::fs::write(
            dir.path().join("red.cert.pem"),
            pem("CERTIFICATE", key.cert.der()),
        )
        .expect("cert");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem("CERTIFICATE", w.ca.der())).expect("ca");
        let out = dir.path().join("out");
        for with_headers in [true, false] {
            let (file, ct) = write_mime(dir.path(), &m, with_headers);
            let mut args = vec![
                "message".to_string(),
                "verify".into(),
                "--key".into(),
                key_file.display().to_string(),
                "--trust".into(),
                ca.display().to_string(),
                "--at".into(),
                "2026-06-01T00:00:00Z".into(),
                "--out".into(),
                out.display().to_string(),
            ];
            if !with_headers {
                args.push("--content-type".into());
                args.push(ct);
            }
            args.push(file);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, v) = run(&refs);
            assert_eq!(code, 0, "{suite:?}: {v:#}");
            let parts = v["parts"].as_array().expect("parts");
            assert_eq!(parts.len(), 2);
            for (p, orig) in parts.iter().zip(payloads()) {
                assert_eq!(
                    p["sha256"],
                    hex::encode(as4gw::security::crypto::Crypto::sha256(
                        &as4gw::security::crypto::AwsLc,
                        &orig.data
                    ))
                );
                assert_eq!(p["decrypted"], true);
                assert_eq!(
                    std::fs::read(out.join(&orig.content_id)).expect("written"),
                    orig.data
                );
            }
            assert_eq!(v["references"].as_array().expect("refs").len(), 4);
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(as4gw_bin())
        .args(["message", "verify", "/nonexistent/file"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}
