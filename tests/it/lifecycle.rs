//! Key rollover across two real `as4gw serve` processes (issue 10 point 5): blue holds its old
//! and a new RSA key (and a successor whose window has not opened), red encrypts first to the
//! old certificate, then — after a P-Mode reload — to the new one; every message decrypts.
//! Then blue drops the old key with SIGHUP (no restart) and traffic goes on; no message fails.
//! Also: blue's receipts are signed with the newest key valid now, never the staged successor.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, RsaKeySize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::msh::e2e::{meta, pair, Gateway};

/// An RSA-2048 signing + key-transport certificate under the demo CA, valid from `from` for
/// `days`. Returns (cert PEM path, key PEM path, DER).
fn rsa_cert(dir: &Path, name: &str, from: OffsetDateTime, days: i64) -> (String, String, Vec<u8>) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ca_pem = std::fs::read_to_string(repo.join("certs/demo/ca.cert.pem")).expect("ca cert");
    let ca_key = KeyPair::from_pem(
        &std::fs::read_to_string(repo.join("certs/demo/ca.key.pem")).expect("ca key"),
    )
    .expect("ca key parses");
    let ca = Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048).expect("rsa");
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, format!("blue {name} (rollover test)"));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.use_authority_key_identifier_extension = true;
    p.not_before = from;
    p.not_after = from + time::Duration::days(days);
    let cert = p.signed_by(&key, &ca).expect("sign");
    let (c, k) = (
        dir.join(format!("{name}.cert.pem")),
        dir.join(format!("{name}.key.pem")),
    );
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (
        c.display().to_string(),
        k.display().to_string(),
        cert.der().to_vec(),
    )
}

fn key_table(cert: &str, key: &str) -> String {
    format!(
        "[[keys.edelivery-1_15]]\nsigning-cert = \"{cert}\"\nsigning-key = \"{key}\"\n\
         encryption-cert = \"{cert}\"\nencryption-key = \"{key}\"\n\n"
    )
}

/// Replaces blue's `[keys.edelivery-1_15]` table with `tables`.
fn set_blue_keys(blue: &Gateway, tables: &str) {
    let text = std::fs::read_to_string(&blue.config).expect("config");
    // Table headers start a line (the comments above them mention the names too).
    let start = text
        .find("\n[keys.edelivery-1_15]\n")
        .or_else(|| text.find("\n[[keys.edelivery-1_15]]\n"))
        .expect("1.15 keys")
        + 1;
    let end = text.find("\n[keys.edelivery-2_0]\n").expect("2.0 keys") + 1;
    let text = format!("{}{tables}{}", &text[..start], &text[end..]);
    std::fs::write(&blue.config, text).expect("write config");
}

fn hup(pid: u32) {
    let st = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(st.success());
}

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// The wire bytes red sent for `mid` (inline in its store, or its store's spool).
fn wire_of(red: &Gateway, mid: &str) -> Vec<u8> {
    let db = rusqlite::Connection::open(red.store.join("store.db")).expect("open red db");
    let (f, inline): (String, Option<Vec<u8>>) = db
        .query_row(
            "SELECT wire_file, (SELECT data FROM wire_inline WHERE message = messages.id) \
             FROM messages WHERE message_id = ?1 AND direction = 'OUT'",
            [mid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("wire file");
    match inline {
        Some(b) => b,
        None => std::fs::read(red.store.join("spool").join(f)).expect("wire bytes"),
    }
}

fn send(red: &Gateway, blue: &Gateway, n: usize) -> String {
    let doc = format!(
        "<?xml version=\"1.0\"?><query:QueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\" id=\"{n}\"/>"
    );
    let doc_len = doc.len();
    let sub = meta(
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("doc", "application/x-ebrs+xml", doc.into_bytes())],
    );
    let (st, res) = red.submit(&sub, None).expect("submit");
    assert_eq!(st, 202, "{res}");
    let mid = res["messageId"].as_str().expect("mid").to_string();
    let done = |v: &Value| v["state"] == "ACKNOWLEDGED" || v["state"] == "FAILED";
    let v = red.wait_state("OUT", &mid, Duration::from_secs(120), done);
    assert_eq!(v["state"], "ACKNOWLEDGED", "message {n} failed: {v}");
    // Decrypted, verified and stored (the minimal query is answered by blue's OOTS rules with
    // EDM:ERR:0003, which marks it DELIVERED: either state means it was decrypted).
    let got = blue.message("IN", &mid).expect("blue received it");
    assert!(
        got["state"] == "RECEIVED" || got["state"] == "DELIVERED",
        "{got}"
    );
    assert_eq!(got["payloads"][0]["size"], doc_len, "{got}");
    mid
}

#[test]
fn key_rollover_without_downtime_or_failed_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut red, mut blue) = pair(dir.path(), 5, "1s", 30);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let old_cert = repo
        .join("certs/demo/blue/rsa.cert.pem")
        .display()
        .to_string();
    let old_key = repo
        .join("certs/demo/blue/rsa.key.pem")
        .display()
        .to_string();
    let old_der = rustls_pki_types::pem::PemObject::from_pem_file(&old_cert)
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .expect("old cert DER");
    let now = OffsetDateTime::now_utc();
    let (new_cert, new_key, new_der) =
        rsa_cert(dir.path(), "new", now - time::Duration::hours(1), 365);
    let (next_cert, next_key, next_der) =
        rsa_cert(dir.path(), "next", now + time::Duration::days(30), 365);

    // Blue: old + new + staged successor. Red's P-Mode: blue signs with either of old/new,
    // payloads are encrypted to the old certificate for now.
    set_blue_keys(
        &blue,
        &(key_table(&old_cert, &old_key)
            + &key_table(&new_cert, &new_key)
            + &key_table(&next_cert, &next_key)),
    );
    let pm = dir.path().join("pmodes/oots-red-blue.toml");
    let original = std::fs::read_to_string(&pm).expect("pmode");
    let sign_line = format!("signing-cert = \"{old_cert}\"");
    let enc_line = format!("encryption-cert = \"{old_cert}\"");
    assert!(original.contains(&sign_line) && original.contains(&enc_line));
    let with_enc = |enc: &str| {
        original
            .replace(
                &sign_line,
                &format!("signing-cert = [\"{old_cert}\", \"{new_cert}\"]"),
            )
            .replace(&enc_line, &format!("encryption-cert = \"{enc}\""))
    };
    std::fs::write(&pm, with_enc(&old_cert)).expect("pmode");
    red.start();
    blue.start();

    let mut sent = Vec::new();
    for i in 0..3 {
        let mid = send(&red, &blue, i);
        let wire = String::from_utf8_lossy(&wire_of(&red, &mid)).into_owned();
        assert!(
            wire.contains(&b64(&old_der)),
            "encrypted to the old certificate"
        );
        assert!(!wire.contains(&b64(&new_der)));
        sent.push(mid);
    }
    // Blue's receipt is signed with the newest key valid now: "new", not the staged "next".
    let (st, receipt) = crate::msh::e2e::http(
        red.api,
        "GET",
        &format!(
            "/api/v1/messages/{}/receipt",
            crate::msh::e2e::pct(&sent[0])
        ),
        red.token,
        "text/plain",
        b"",
    )
    .expect("receipt");
    assert_eq!(st, 200);
    let receipt = String::from_utf8_lossy(&receipt).into_owned();
    assert!(
        receipt.contains(&b64(&new_der)),
        "receipt signed with the new key"
    );
    assert!(!receipt.contains(&b64(&old_der)) && !receipt.contains(&b64(&next_der)));

    // Red switches to the new certificate (file change + SIGHUP: the registry reloads).
    std::fs::write(&pm, with_enc(&new_cert)).expect("pmode");
    hup(red.pid().expect("red running"));
    std::thread::sleep(Duration::from_secs(3));
    for i in 3..6 {
        let mid = send(&red, &blue, i);
        let wire = String::from_utf8_lossy(&wire_of(&red, &mid)).into_owned();
        assert!(
            wire.contains(&b64(&new_der)),
            "encrypted to the new certificate"
        );
        assert!(!wire.contains(&b64(&old_der)));
        sent.push(mid);
    }

    // Blue drops the old key without a restart; traffic to the new key goes on.
    set_blue_keys(
        &blue,
        &(key_table(&new_cert, &new_key) + &key_table(&next_cert, &next_key)),
    );
    let blue_pid = blue.pid().expect("blue running");
    hup(blue_pid);
    std::thread::sleep(Duration::from_secs(2));
    for i in 6..9 {
        sent.push(send(&red, &blue, i));
    }
    assert_eq!(blue.pid(), Some(blue_pid), "blue was not restarted");
    let log = std::fs::read_to_string(dir.path().join("blue.log")).unwrap_or_default();
    assert!(!log.contains("key reload refused"), "{log}");

    // A message encrypted to the dropped key is now refused: the reload really took effect.
    std::fs::write(&pm, with_enc(&old_cert)).expect("pmode");
    hup(red.pid().expect("red running"));
    std::thread::sleep(Duration::from_secs(3));
    let doc = b"<?xml version=\"1.0\"?><q/>".to_vec();
    let (st, res) = red
        .submit(
            &meta(
                "oots-red-blue",
                "ExecuteQueryRequest",
                &[("doc", "application/x-ebrs+xml", doc)],
            ),
            None,
        )
        .expect("submit");
    assert_eq!(st, 202, "{res}");
    let mid = res["messageId"].as_str().expect("mid").to_string();
    let v = red.wait_state("OUT", &mid, Duration::from_secs(120), |v| {
        v["state"] == "FAILED" || v["attempts"].as_u64().unwrap_or(0) >= 2
    });
    assert_ne!(v["state"], "ACKNOWLEDGED", "{v}");
    assert!(
        blue.message("IN", &mid).is_none(),
        "blue could not decrypt it"
    );

    // The nine rollover messages: all acknowledged, none failed.
    for mid in &sent {
        let v = red.message("OUT", mid).expect("sent");
        assert_eq!(v["state"], "ACKNOWLEDGED", "{v}");
    }
    // The container health probe: readiness with a token, liveness without, refusal with a
    // wrong token.
    let probe = |token: Option<&str>| {
        let mut c = Command::new(crate::support::as4gw_bin());
        c.args(["health", "--url", &format!("http://127.0.0.1:{}", red.api)])
            .env_remove("AS4GW_TOKEN");
        if let Some(t) = token {
            c.args(["--token", t]);
        }
        let out = c.output().expect("as4gw health");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = probe(Some(red.token));
    assert!(
        ok && text.starts_with("ready") && text.contains("scheduler"),
        "{text}"
    );
    let (ok, text) = probe(None);
    assert!(ok && text.starts_with("alive"), "{text}");
    let (ok, text) = probe(Some("wrong-token"));
    assert!(!ok, "{text}");
    assert!(red.stop() && blue.stop());
}

/// `as4gw messages purge` on a gateway's configuration: the OOTS presets' retention (payloads
/// 30 days, metadata 365) applied to its store, dry run first, then for real.
#[test]
fn messages_purge_applies_the_presets_retention() {
    use as4gw::store::{MessageStore, NewInbound, Received, SqliteStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let (_red, blue) = pair(dir.path(), 5, "1s", 30);
    let t0 = OffsetDateTime::now_utc() - time::Duration::days(400);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let files = rt.block_on(async {
        let s = SqliteStore::open(&blue.store).await.expect("store");
        let mut files = Vec::new();
        for (i, days) in [(0, 0), (1, 0), (2, 360), (3, 390)] {
            let f = s.spool().write_bytes(b"evidence").await.expect("spool");
            files.push(s.spool().path(&f));
            let msg = NewInbound {
                message_id: format!("m{i}"),
                conversation_id: "c".into(),
                pmode_id: "oots-red-blue".into(),
                payloads: vec![as4gw::store::Payload {
                    part_id: "cid:p".into(),
                    mime_type: "application/pdf".into(),
                    file: f,
                }],
                ..Default::default()
            };
            let at = t0 + time::Duration::days(days);
            let Received::New(id) = s
                .record_received(at, msg, time::Duration::days(7), None)
                .await
                .expect("receive")
            else {
                panic!("duplicate")
            };
            // m1 was never taken by the backend: its payload must survive any purge.
            if i != 1 {
                s.mark_delivered(id, at, "fetched")
                    .await
                    .expect("delivered");
            }
        }
        s.close().await.expect("close");
        files
    });
    let purge = |extra: &[&str]| {
        let out = Command::new(crate::support::as4gw_bin())
            .args(["messages", "purge", "--config"])
            .arg(&blue.config)
            .args(extra)
            .output()
            .expect("run purge");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON report")
    };
    let dry = purge(&["--dry-run"]);
    // m0 (400 days, delivered): metadata; m2 (40 days): payload; m3 (10 days): nothing;
    // m1 (400 days, not delivered): nothing.
    assert_eq!(dry["dryRun"], true, "{dry}");
    assert_eq!(dry["messages"], 1, "{dry}");
    assert_eq!(dry["payloadMessages"], 2, "m0 and m2: {dry}");
    assert!(
        files.iter().all(|f| f.exists()),
        "a dry run removes nothing"
    );
    let r = purge(&["--batch", "1"]);
    assert_eq!(
        (r["payloadMessages"].as_u64(), r["messages"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(r["files"], 2, "{r}");
    assert!(!files[0].exists() && !files[2].exists());
    assert!(files[1].exists(), "undelivered payload kept");
    assert!(files[3].exists(), "recent payload kept");
    // A preview a year ahead: m1 still kept (never delivered), m2 and m3 forgotten.
    let later = (OffsetDateTime::now_utc() + time::Duration::days(400))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let r = purge(&["--dry-run", "--now", &later]);
    assert_eq!(r["messages"], 2, "{r}");
}
