//! Gateway configuration: the shipped files load; relative paths resolve against the file.

use std::path::PathBuf;

use as4gw::config::{ClientAuth, Config, TlsVersion};
use time::OffsetDateTime;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn red_and_blue_configs_load() {
    let now = OffsetDateTime::now_utc();
    let red = Config::load(&root().join("as4gw.toml"), now).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(red.party.id, "red_gw");
    assert_eq!(red.as4.listen.port(), 8443);
    assert_eq!(red.as4.path, "/as4");
    assert_eq!(red.api_listen.port(), 8080);
    assert_eq!(
        red.as4.tls_versions,
        vec![TlsVersion::Tls12, TlsVersion::Tls13]
    );
    assert_eq!(red.as4.client_auth, ClientAuth::Optional);
    assert_eq!(red.store_dir, root().join("data/red"));
    assert_eq!(red.pmode_dir, root().join("pmodes"));
    assert!(red.keys_115.is_some() && red.keys_20.is_some());
    assert_eq!(red.backends[0].name, "oots");
    let blue = Config::load(&root().join("as4gw-blue.toml"), now).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        (
            blue.party.id.as_str(),
            blue.as4.listen.port(),
            blue.api_listen.port()
        ),
        ("blue_gw", 9443, 9080)
    );
}

#[test]
fn config_errors_point_at_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("as4gw.toml")).unwrap();
    let text = text
        .replace("\"certs/", &format!("\"{}/certs/", root().display()))
        .replace(
            "pmodes = \"pmodes\"",
            &format!("pmodes = \"{}/pmodes\"", root().display()),
        );
    // TLS 1.1 is refused by the parser (digest §3.3).
    let bad = text.replace(
        "versions = [\"1.2\", \"1.3\"]",
        "versions = [\"1.1\", \"1.2\"]",
    );
    let f = tmp.path().join("c.toml");
    std::fs::write(&f, &bad).unwrap();
    let d = Config::load(&f, OffsetDateTime::now_utc()).unwrap_err().0;
    let line = bad
        .lines()
        .position(|l| l.starts_with("versions ="))
        .unwrap()
        + 1;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].line, line, "{d:?}");
    // Semantic errors: http AS4 listener, wrong certificate for the 2.0 signing key.
    let bad = text
        .replace(
            "url = \"https://127.0.0.1:8443/as4\"",
            "url = \"http://127.0.0.1:8443/as4\"",
        )
        .replace("red/ed25519.cert.pem", "red/rsa.cert.pem");
    std::fs::write(&f, &bad).unwrap();
    let d = Config::load(&f, OffsetDateTime::now_utc()).unwrap_err().0;
    let msgs: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(d.len(), 2, "{msgs:#?}");
    assert_eq!(
        d[0].line,
        bad.lines()
            .position(|l| l.starts_with("url = \"http://127.0.0.1:8443"))
            .unwrap()
            + 1
    );
    assert!(d[1].message.contains("eDelivery 2.0 signing"), "{msgs:#?}");
}

/// `[[keys.<suite>]]` repeated: a rollover list. The demo key plus itself under a second path
/// loads as two sets; checked at a time when the demo certificates are not valid yet, the list
/// is refused at its line with the reason; `purge-interval` is read and checked.
#[test]
fn key_rollover_lists_and_purge_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("as4gw.toml")).unwrap();
    let text = text
        .replace("\"certs/", &format!("\"{}/certs/", root().display()))
        .replace(
            "pmodes = \"pmodes\"",
            &format!("pmodes = \"{}/pmodes\"", root().display()),
        );
    let start = text.find("\n[keys.edelivery-1_15]\n").unwrap() + 1;
    let end = text.find("\n[keys.edelivery-2_0]\n").unwrap() + 1;
    let rsa = root().join("certs/demo/red/rsa.cert.pem");
    std::fs::copy(&rsa, tmp.path().join("copy.cert.pem")).unwrap();
    let set = |cert: &str| {
        format!(
            "[[keys.edelivery-1_15]]\nsigning-cert = \"{cert}\"\nsigning-key = \"{k}\"\n\
             encryption-cert = \"{cert}\"\nencryption-key = \"{k}\"\n\n",
            k = root().join("certs/demo/red/rsa.key.pem").display()
        )
    };
    let list = format!(
        "{}{}{}{}",
        &text[..start],
        set(&rsa.display().to_string()),
        set("copy.cert.pem"),
        &text[end..]
    )
    .replace("purge-interval = \"1h\"", "purge-interval = \"15m\"");
    let f = tmp.path().join("c.toml");
    std::fs::write(&f, &list).unwrap();
    let now = OffsetDateTime::now_utc();
    let cfg = Config::load(&f, now).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(cfg.key_sets_115().len(), 2);
    assert_eq!(
        cfg.key_sets_20().len(),
        1,
        "the single-table syntax still works"
    );
    assert_eq!(cfg.purge_interval, std::time::Duration::from_secs(900));
    let keys = as4gw::msh::Keyring::from_config(&cfg).expect("keys");
    assert_eq!(
        keys.decryption().len(),
        3,
        "two 1.15 keys and the 2.0 key decrypt"
    );

    // Long before the demo certificates' windows: every set is "not yet valid", which a list
    // accepts per entry, but one set must be in force.
    let d = Config::load(&f, now - time::Duration::days(3650))
        .unwrap_err()
        .0;
    let line = list
        .lines()
        .position(|l| l == "[[keys.edelivery-1_15]]")
        .unwrap()
        + 1;
    let msgs: Vec<String> = d
        .iter()
        .map(|x| format!("{}: {}", x.line, x.message))
        .collect();
    assert!(
        d.iter()
            .any(|x| x.line == line && x.message.contains("no key set of the list is valid now")),
        "{msgs:#?}"
    );

    std::fs::write(
        &f,
        list.replace("purge-interval = \"15m\"", "purge-interval = \"0s\""),
    )
    .unwrap();
    let d = Config::load(&f, now).unwrap_err().0;
    assert!(d[0].message.contains("must not be zero"), "{d:?}");
}

/// `[gateway] send-concurrency`: 32 by default, read when given, refused at its line outside
/// 1..=1024.
#[test]
fn send_concurrency_defaults_reads_and_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("as4gw.toml")).unwrap();
    let text = text
        .replace("\"certs/", &format!("\"{}/certs/", root().display()))
        .replace(
            "pmodes = \"pmodes\"",
            &format!("pmodes = \"{}/pmodes\"", root().display()),
        );
    let f = tmp.path().join("c.toml");
    let now = OffsetDateTime::now_utc();
    std::fs::write(&f, &text).unwrap();
    let cfg = Config::load(&f, now).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        cfg.send_concurrency,
        as4gw::config::DEFAULT_SEND_CONCURRENCY
    );
    let given = text.replace("# send-concurrency = 32", "send-concurrency = 100");
    assert_ne!(given, text, "the demo file documents the key");
    std::fs::write(&f, &given).unwrap();
    let cfg = Config::load(&f, now).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(cfg.send_concurrency, 100);
    let bad = text.replace("# send-concurrency = 32", "send-concurrency = 0");
    std::fs::write(&f, &bad).unwrap();
    let d = Config::load(&f, now).unwrap_err().0;
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("send-concurrency 0"), "{d:?}");
    assert_eq!(
        d[0].line,
        bad.lines()
            .position(|l| l.starts_with("send-concurrency = 0"))
            .unwrap()
            + 1
    );
    // Per partner: documented in the demo file, default 16, read, checked.
    let cfg = Config::load(f_with(&f, &text), now).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        cfg.send_concurrency_per_partner,
        as4gw::config::DEFAULT_SEND_CONCURRENCY_PER_PARTNER
    );
    let given = text.replace(
        "# send-concurrency-per-partner = 16",
        "send-concurrency-per-partner = 3",
    );
    assert_ne!(given, text, "the demo file documents the key");
    let cfg = Config::load(f_with(&f, &given), now).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(cfg.send_concurrency_per_partner, 3);
    let bad = text.replace(
        "# send-concurrency-per-partner = 16",
        "send-concurrency-per-partner = 0",
    );
    let d = Config::load(f_with(&f, &bad), now).unwrap_err().0;
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].message.contains("send-concurrency-per-partner 0"),
        "{d:?}"
    );
}

/// Writes `text` to `f` and returns it.
fn f_with<'a>(f: &'a std::path::Path, text: &str) -> &'a std::path::Path {
    std::fs::write(f, text).unwrap();
    f
}
