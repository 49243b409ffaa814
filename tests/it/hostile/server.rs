//! A `serve` process on a temp copy of a configuration under `conformance/hostile/`, and a raw
//! HTTPS client for its AS4 endpoint (the project's own client, so TLS is the real thing).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use as4gw::transport::{ClientSettings, ClientTls, HttpsClient, OutboundBody};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

use crate::hostile::repo;
use crate::msh::e2e::{free_port, http};
use crate::support::as4gw_bin;

pub const BLUE_TOKEN: &str = "blue-demo-token";

pub struct Served {
    pub child: Child,
    pub api: u16,
    pub as4: u16,
    pub log: PathBuf,
    pub stdout: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/as4", self.as4)
    }

    /// `GET /api/v1/health` → status and body.
    pub fn health(&self) -> (u16, Vec<u8>) {
        http(
            self.api,
            "GET",
            "/api/v1/health",
            BLUE_TOKEN,
            "text/plain",
            b"",
        )
        .unwrap_or((0, Vec::new()))
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Writes `conformance/hostile/<file>` to `dir/gateway.toml` with absolute paths, free ports
/// (the AS4 and API ports are returned) and a temp store, after `edit`.
pub fn write_config(
    dir: &Path,
    file: &str,
    edit: impl FnOnce(String) -> String,
) -> (PathBuf, u16, u16) {
    let base = repo().join("conformance/hostile");
    let (as4, api) = (free_port(), free_port());
    let text = std::fs::read_to_string(base.join(file)).expect("config");
    let text = text
        .replace("\"../../", &format!("\"{}/", repo().display()))
        .replace("\"certs/", &format!("\"{}/certs/", base.display()))
        .replace("127.0.0.1:19443", &format!("127.0.0.1:{as4}"))
        .replace("127.0.0.1:19080", &format!("127.0.0.1:{api}"))
        .replace(
            "path = \"data\"",
            &format!("path = \"{}\"", dir.join("store").display()),
        );
    let config = dir.join("gateway.toml");
    std::fs::write(&config, edit(text)).expect("write config");
    (config, as4, api)
}

/// Copies `conformance/hostile/<file>` into `dir` with absolute paths, free ports and a temp
/// store, applies `edit` to the text, and starts `as4gw serve` on it (RUST_LOG = `log`).
pub fn serve(dir: &Path, file: &str, log: &str, edit: impl FnOnce(String) -> String) -> Served {
    let (config, as4, api) = write_config(dir, file, edit);
    let log_path = dir.join("stderr.log");
    let out_path = dir.join("stdout.log");
    let child = Command::new(as4gw_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", log)
        .stdout(std::fs::File::create(&out_path).expect("stdout"))
        .stderr(std::fs::File::create(&log_path).expect("stderr"))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn as4gw serve");
    let mut s = Served {
        child,
        api,
        as4,
        log: log_path,
        stdout: out_path,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if s.health().0 == 200 {
            return s;
        }
        if !s.alive() {
            panic!("serve exited at start:\n{}", s.log_text());
        }
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTPS client trusting the demo CA; with red's demo TLS certificate as client
/// certificate when `client_cert`.
pub fn client(client_cert: bool) -> HttpsClient {
    let r = repo();
    let anchors = as4gw::transport::tls::load_certs(&r.join("certs/demo/ca.cert.pem")).expect("ca");
    let identity = client_cert.then(|| {
        (
            as4gw::transport::tls::load_certs(&r.join("certs/demo/red/tls.cert.pem"))
                .expect("cert"),
            as4gw::transport::tls::load_key(&r.join("certs/demo/red/tls.key.pem")).expect("key"),
        )
    });
    let tls: Arc<rustls::ClientConfig> = ClientTls {
        trust_anchors: anchors,
        identity,
        protocols: Default::default(),
    }
    .build()
    .expect("client tls");
    HttpsClient::new(
        tls,
        ClientSettings {
            max_concurrent_per_partner: 1,
            ..ClientSettings::default()
        },
    )
}

/// POSTs `body` to `url`: Ok((status, body)) or the transport error's text.
pub async fn post(
    c: &HttpsClient,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let mut h = HeaderMap::new();
    if let Some(ct) = content_type {
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(ct).map_err(|e| format!("content-type: {e}"))?,
        );
    }
    c.post_with_headers(url, h, OutboundBody::from_bytes(body))
        .await
        .map(|r| (r.status.as_u16(), r.body.to_vec()))
        .map_err(|e| format!("{e:#}"))
}

/// Peak resident set (VmHWM) of a process, KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
