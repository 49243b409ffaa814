//! Access (issue 9 point 4) against real `serve` processes on the corpus configuration:
//! bearer tokens on the backend API, TLS client authentication required on the AS4 listener,
//! and no secret (bearer token, webhook key, private key PEM / DER) in logs or API answers at
//! `RUST_LOG=trace`. The AS4 side ("only the matched P-Mode's party may sign") is checked by the
//! corpus cases `cert-other-party-trusted-ca` and `cert-impersonation-blue` (EBMS:0101).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;

use super::corpus::{load_cases, outcome};
use super::repo;
use super::server::{client, post, serve, BLUE_TOKEN};
use crate::msh::e2e::{http, http_with, meta, multipart, pct};

/// One HTTP/1.1 request with exactly the given header lines; the status and the whole answer.
fn raw(port: u16, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn backend_api_needs_the_right_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = serve(dir.path(), "gateway.toml", "warn", |t| t);
    for path in [
        "/api/v1/messages?direction=IN",
        "/api/v1/health",
        "/api/v1/openapi.json",
        "/api/v1/messages/x@y",
        "/api/v1/oots/exchanges/abc",
    ] {
        // no Authorization header at all
        let (st, text) = raw(
            gw.api,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(st, 401, "{path} without token: {text}");
        assert!(text.contains("application/problem+json"), "{text}");
        // other schemes and wrong tokens
        for auth in [
            "Basic Ymx1ZTpibHVlLWRlbW8tdG9rZW4=",
            "Bearer",
            "Bearer red-demo-token",
            "Bearer blue-demo-token-",
            "Bearer BLUE-DEMO-TOKEN",
            "bearer  blue-demo-tokeN",
        ] {
            let (st, text) = raw(
                gw.api,
                &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"),
            );
            assert_eq!(st, 401, "{path} with {auth:?}: {text}");
        }
    }
    // the right token
    for path in [
        "/api/v1/messages?direction=IN",
        "/api/v1/health",
        "/api/v1/openapi.json",
    ] {
        let (st, b) = http(gw.api, "GET", path, BLUE_TOKEN, "text/plain", b"").expect("get");
        assert_eq!(st, 200, "{path}: {}", String::from_utf8_lossy(&b));
    }
    // the right token, a P-Mode this backend may not submit on: 403, not 401
    let (ct, body) = multipart(&meta(
        "oots-red-blue",
        "ExecuteQueryRequest",
        &[("doc", "application/x-ebrs+xml", b"<q/>".to_vec())],
    ));
    let (st, _, b) = http_with(
        gw.api,
        "POST",
        "/api/v1/messages",
        BLUE_TOKEN,
        &ct,
        &[],
        &body,
    )
    .expect("submit");
    assert_eq!(st, 403, "{}", String::from_utf8_lossy(&b));
}

#[test]
fn as4_listener_can_require_tls_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = serve(dir.path(), "gateway.toml", "warn", |t| {
        let t2 = t.replace("client-auth = \"optional\"", "client-auth = \"required\"");
        assert_ne!(t, t2, "client-auth not found in the corpus config");
        t2
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let valid = load_cases()
        .into_iter()
        .find(|c| c.name.ends_with("valid-compressed"))
        .expect("valid case");
    // without a client certificate: no HTTP answer at all
    let without = rt.block_on(post(
        &client(false),
        &gw.url(),
        valid.meta.content_type.as_deref(),
        valid.body.clone(),
    ));
    let e = without.expect_err("a request without client certificate must fail in TLS");
    assert!(
        e.to_lowercase().contains("tls")
            || e.to_lowercase().contains("certificate")
            || e.to_lowercase().contains("handshake")
            || e.to_lowercase().contains("connection"),
        "{e}"
    );
    // with the demo CA's client certificate: the message is received
    let (st, b) = rt
        .block_on(post(
            &client(true),
            &gw.url(),
            valid.meta.content_type.as_deref(),
            valid.body,
        ))
        .expect("with a client certificate");
    assert_eq!((st, outcome(&b).0.as_str()), (200, "receipt"));
    // optional (the corpus default) accepts both: see corpus_against_a_running_gateway
}

/// The private keys the gateway holds and the secrets it is given.
struct Secrets {
    /// (what, needle)
    needles: Vec<(String, String)>,
}

impl Secrets {
    fn collect(webhook_key: &str) -> Secrets {
        let mut needles = vec![
            ("bearer token".to_string(), BLUE_TOKEN.to_string()),
            ("webhook key".to_string(), webhook_key.to_string()),
        ];
        for f in [
            "rsa.key.pem",
            "ed25519.key.pem",
            "x25519.key.pem",
            "tls.key.pem",
        ] {
            let pem = std::fs::read_to_string(repo().join("certs/demo/blue").join(f)).expect("key");
            let b64: String = pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<Vec<_>>()
                .concat();
            // every 64-character slice of the PEM body at a 16-character stride, and the last 64
            let step = 16;
            let mut i = 0;
            while i + 64 <= b64.len() {
                needles.push((format!("{f} base64 at {i}"), b64[i..i + 64].to_string()));
                i += step;
            }
            if b64.len() < 64 {
                needles.push((format!("{f} base64"), b64.clone()));
            } else {
                needles.push((
                    format!("{f} base64 tail"),
                    b64[b64.len() - 64..].to_string(),
                ));
            }
            let der = base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .expect("pem base64");
            // raw key bytes in hex: 32-byte windows at a 16-byte stride and the last 32 bytes
            // (the Ed25519 / X25519 seed), lower and upper case. Windows that also occur in the
            // key's certificate are public (an RSA modulus, the EC point in PKCS#8) and may be
            // logged, e.g. by TLS tracing.
            let cert_pem = std::fs::read(
                repo()
                    .join("certs/demo/blue")
                    .join(f.replace(".key.pem", ".cert.pem")),
            )
            .expect("cert");
            let cert_der = as4gw::pki::load_certificates(&cert_pem).expect("cert")[0]
                .der()
                .to_vec();
            let public = |w: &[u8]| cert_der.windows(w.len()).any(|c| c == w);
            let mut windows: Vec<&[u8]> = der.windows(32).step_by(16).collect();
            windows.push(&der[der.len() - 32..]);
            windows.retain(|w| !public(w));
            assert!(windows.len() >= 2, "{f}: no secret window left");
            for (j, w) in windows.into_iter().enumerate() {
                let h: String = w.iter().map(|b| format!("{b:02x}")).collect();
                needles.push((format!("{f} hex window {j}"), h.to_uppercase()));
                needles.push((format!("{f} hex window {j}"), h));
            }
        }
        Secrets { needles }
    }

    fn leaks(&self, what: &str, text: &str) -> Vec<String> {
        self.needles
            .iter()
            .filter(|(_, n)| n.len() >= 16 && text.contains(n.as_str()))
            .map(|(k, _)| format!("{what} contains {k}"))
            .collect()
    }
}

#[test]
fn no_secret_in_logs_or_api_answers() {
    let webhook_key = "hostile-webhook-key-0123456789abcdef";
    let dir = tempfile::tempdir().expect("tempdir");
    let hook_port = crate::msh::e2e::free_port();
    let key_file = dir.path().join("webhook.key");
    std::fs::write(&key_file, webhook_key).expect("key file");
    let mut gw = serve(dir.path(), "gateway.toml", "trace", |t| {
        t.replace(
            "allowed-pmodes = [\"oots-blue-red\"",
            &format!(
                "webhook = \"http://127.0.0.1:{hook_port}/hook\"\nwebhook-secret = {{ file = \"{}\" }}\nallowed-pmodes = [\"oots-blue-red\"",
                key_file.display()
            ),
        )
    });
    let mut answers: Vec<(String, String)> = Vec::new();
    let mut keep = |what: String, st: u16, b: &[u8]| {
        answers.push((
            format!("{what} (HTTP {st})"),
            String::from_utf8_lossy(b).into_owned(),
        ));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // receive: an accepted message, a replay and refusals of several kinds
    let cases = load_cases();
    let wanted = [
        "valid-compressed",
        "replay-identical-bytes",
        "cert-expired",
        "sec-tampered-ciphertext",
        "xml-xxe-external-entity",
        "mime-truncated",
        "gzip-bomb-128mib",
    ];
    let c = client(true);
    let mut received = None;
    for case in cases
        .iter()
        .filter(|c| wanted.iter().any(|w| c.name.ends_with(w)))
    {
        let (st, b) = rt
            .block_on(post(
                &c,
                &gw.url(),
                case.meta.content_type.as_deref(),
                case.body.clone(),
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        keep(format!("AS4 {}", case.name), st, &b);
        if case.name.ends_with("valid-compressed") {
            received = case.meta.message_id.clone();
        }
    }
    let received = received.expect("the valid case");
    // send: a submission on blue -> red (red is not running: signing, encryption, a failed
    // attempt and its retry are logged)
    let (ct, body) = multipart(&meta(
        "oots-blue-red",
        "ExecuteQueryResponse",
        &[(
            "doc",
            "application/x-ebrs+xml",
            b"<q:QueryResponse xmlns:q=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\"/>"
                .to_vec(),
        )],
    ));
    let (st, _, b) = http_with(
        gw.api,
        "POST",
        "/api/v1/messages",
        BLUE_TOKEN,
        &ct,
        &[],
        &body,
    )
    .expect("submit");
    assert_eq!(st, 202, "{}", String::from_utf8_lossy(&b));
    keep("submit".into(), st, &b);
    let sent: serde_json::Value = serde_json::from_slice(&b).expect("json");
    let sent = sent["messageId"].as_str().expect("messageId").to_string();
    // wait for the first send attempt
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, b) = http(
            gw.api,
            "GET",
            &format!("/api/v1/messages/{}?direction=OUT", pct(&sent)),
            BLUE_TOKEN,
            "text/plain",
            b"",
        )
        .expect("get");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
        if v["attempts"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < end, "no send attempt: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // API calls: reads, inspection, error paths
    let r = pct(&received);
    let s = pct(&sent);
    let gets = [
        "/api/v1/health".to_string(),
        "/api/v1/openapi.json".to_string(),
        "/api/v1/messages?direction=IN".to_string(),
        "/api/v1/messages?direction=OUT".to_string(),
        format!("/api/v1/messages/{r}?direction=IN"),
        format!("/api/v1/messages/{r}/payloads/regrep@red.hostile.as4gw?direction=IN"),
        format!("/api/v1/messages/{r}/receipt?direction=IN"),
        format!("/api/v1/messages/{s}?direction=OUT"),
        "/api/v1/messages/nothing@here".to_string(),
        "/api/v1/messages?direction=SIDEWAYS".to_string(),
        "/api/v1/oots/exchanges/unknown".to_string(),
        "/api/v1/no/such/route".to_string(),
    ];
    for p in &gets {
        let (st, h, b) =
            http_with(gw.api, "GET", p, BLUE_TOKEN, "text/plain", &[], b"").expect("get");
        keep(format!("GET {p} headers"), st, format!("{h:?}").as_bytes());
        keep(format!("GET {p}"), st, &b);
    }
    for tok in ["wrong-token", "red-demo-token"] {
        let (st, b) = http(gw.api, "GET", "/api/v1/messages", tok, "text/plain", b"").expect("get");
        keep(format!("GET with {tok}"), st, &b);
    }
    let (st, _, b) = http_with(
        gw.api,
        "POST",
        "/api/v1/messages",
        BLUE_TOKEN,
        "application/json",
        &[],
        b"{not json",
    )
    .expect("post");
    keep("POST broken".into(), st, &b);
    let (st, _, b) = http_with(
        gw.api,
        "POST",
        &format!("/api/v1/messages/{r}/ack?direction=IN"),
        BLUE_TOKEN,
        "application/json",
        &[],
        b"",
    )
    .expect("ack");
    keep("ack".into(), st, &b);
    // the operator's inspection commands: configuration check and the messages CLI (also
    // with a wrong token)
    let api = format!("http://127.0.0.1:{}", gw.api);
    let cli: [Vec<String>; 4] = [
        vec![
            "pmode".into(),
            "check".into(),
            "--config".into(),
            dir.path().join("gateway.toml").display().to_string(),
        ],
        vec![
            "messages".into(),
            "--api".into(),
            api.clone(),
            "--token".into(),
            BLUE_TOKEN.into(),
            "list".into(),
        ],
        vec![
            "messages".into(),
            "--api".into(),
            api.clone(),
            "--token".into(),
            BLUE_TOKEN.into(),
            "show".into(),
            received.clone(),
        ],
        vec![
            "messages".into(),
            "--api".into(),
            api,
            "--token".into(),
            "wrong-token".into(),
            "list".into(),
        ],
    ];
    for (i, args) in cli.iter().enumerate() {
        let o = std::process::Command::new(crate::support::as4gw_bin())
            .args(args)
            .env("RUST_LOG", "trace")
            .output()
            .expect("as4gw cli");
        // the three good calls succeed, the wrong token does not
        assert_eq!(o.status.success(), i < 3, "{args:?}: {o:?}");
        let what = format!("as4gw {}", args[..2].join(" "));
        keep(
            format!("{what} stdout"),
            o.status.code().unwrap_or(-1) as u16,
            &o.stdout,
        );
        keep(
            format!("{what} stderr"),
            o.status.code().unwrap_or(-1) as u16,
            &o.stderr,
        );
    }
    // let the webhook attempt (nobody listens) and a retry of the send happen, then stop
    std::thread::sleep(Duration::from_secs(2));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status();
    let end = Instant::now() + Duration::from_secs(60);
    while gw.alive() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = gw.log_text();
    let out = std::fs::read_to_string(&gw.stdout).unwrap_or_default();
    assert!(
        log.len() + out.len() > 10_000 && (log.contains("TRACE") || out.contains("TRACE")),
        "trace logging did not happen ({} + {} bytes)",
        log.len(),
        out.len()
    );
    let secrets = Secrets::collect(webhook_key);
    // the needles must be findable: a positive control on a text that has them
    let pem = std::fs::read_to_string(repo().join("certs/demo/blue/rsa.key.pem")).expect("pem");
    assert!(
        !secrets.leaks("control", &pem).is_empty(),
        "needles do not match a PEM"
    );
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("der");
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        secrets.leaks("control", &hex).len() >= 4,
        "hex needles do not match the key's hex dump"
    );
    let mut leaks = secrets.leaks("stderr", &log);
    leaks.extend(secrets.leaks("stdout", &out));
    for (what, text) in &answers {
        leaks.extend(secrets.leaks(what, text));
    }
    eprintln!(
        "secrets: {} needles over {} log bytes and {} API answers; {} leaks",
        secrets.needles.len(),
        log.len() + out.len(),
        answers.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

/// `[api.tls]` with `client-auth = "required"`: the backend API speaks HTTPS, a client without a
/// certificate from the configured CA gets no HTTP answer at all, one with it still needs the
/// bearer token (the certificate is a second factor, not a replacement).
#[test]
fn backend_api_can_require_tls_client_certificates() {
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().expect("tempdir");
    let demo = repo().join("certs/demo");
    let (config, _, api) = super::server::write_config(dir.path(), "gateway.toml", |text| {
        let text2 = text.replacen("[api]\nurl = \"http://", "[api]\nurl = \"https://", 1);
        assert_ne!(text, text2, "[api] not found in the corpus config");
        // the [api.tls] table right after the [api] table's url line
        let url_line = text2
            .find("[api]\n")
            .map(|i| i + "[api]\n".len())
            .expect("[api]");
        let after = url_line + text2[url_line..].find('\n').expect("url line") + 1;
        let tls = format!(
            "\n[api.tls]\ncert = \"{b}/blue/tls.cert.pem\"\nkey = \"{b}/blue/tls.key.pem\"\nversions = [\"1.2\", \"1.3\"]\nclient-auth = \"required\"\nclient-ca = [\"{b}/ca.cert.pem\"]\n",
            b = demo.display()
        );
        format!("{}{tls}{}", &text2[..after], &text2[after..])
    });
    let out = dir.path().join("stdout.log");
    let err = dir.path().join("stderr.log");
    let mut child = Command::new(crate::support::as4gw_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&out).expect("stdout"))
        .stderr(std::fs::File::create(&err).expect("stderr"))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn as4gw serve");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let said = std::fs::read_to_string(&out).unwrap_or_default();
        if said.contains(&format!("backend API on https://127.0.0.1:{api}")) {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "serve exited at start ({st}):\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _child = Kill(child);

    let tls = |with_cert: bool| -> rustls::ClientConfig {
        let anchors =
            as4gw::transport::tls::load_certs(&demo.join("ca.cert.pem")).expect("demo CA");
        let identity = with_cert.then(|| {
            (
                as4gw::transport::tls::load_certs(&demo.join("red/tls.cert.pem")).expect("cert"),
                as4gw::transport::tls::load_key(&demo.join("red/tls.key.pem")).expect("key"),
            )
        });
        let cfg = as4gw::transport::ClientTls {
            trust_anchors: anchors,
            identity,
            protocols: Default::default(),
        }
        .build()
        .expect("client tls");
        (*cfg).clone()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("https://127.0.0.1:{api}/api/v1/health");
    let get = |with_cert: bool, token: Option<&str>| -> Result<u16, String> {
        let c = reqwest::Client::builder()
            .use_preconfigured_tls(tls(with_cert))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = c.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        rt.block_on(async move { req.send().await })
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("{e:?}"))
    };
    // plain HTTP to the TLS listener: no HTTP answer
    let (st, _) = raw(
        api,
        "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(st, 0, "plain HTTP must not be answered by the TLS listener");
    // TLS without a client certificate: the handshake fails, no status
    let e = get(false, Some(BLUE_TOKEN)).expect_err("no client certificate must fail in TLS");
    assert!(!e.is_empty());
    // with the client certificate: the token is still checked
    assert_eq!(get(true, None), Ok(401));
    assert_eq!(get(true, Some("wrong-token")), Ok(401));
    assert_eq!(get(true, Some(BLUE_TOKEN)), Ok(200));

    // The operator commands reach the same listener with --api-ca / --api-cert / --api-key.
    let api_url = format!("https://127.0.0.1:{api}");
    let cli = |args: &[&str], with_cert: bool| {
        let mut c = Command::new(crate::support::as4gw_bin());
        c.args(args)
            .arg("--api-ca")
            .arg(demo.join("ca.cert.pem"))
            .env("AS4GW_TOKEN", BLUE_TOKEN);
        if with_cert {
            c.arg("--api-cert")
                .arg(demo.join("red/tls.cert.pem"))
                .arg("--api-key")
                .arg(demo.join("red/tls.key.pem"));
        }
        c.output().expect("run as4gw")
    };
    let ok = cli(&["health", "--url", &api_url], true);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success() && out.contains("ready"), "{out}");
    let refused = cli(&["health", "--url", &api_url], false);
    assert!(
        !refused.status.success(),
        "health without a client certificate must fail"
    );
    let listed = cli(&["messages", "--api", &api_url, "list"], true);
    assert!(
        listed.status.success(),
        "messages list: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
}
