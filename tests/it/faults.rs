//! Fault tests (docs/faults.md): what happens to messages when the partner, the network, a
//! process, the disk or the backend's webhook fails. The invariant is always the same: every
//! accepted message ends ACKNOWLEDGED or FAILED with the right EBMS code, nothing accepted is
//! lost, nothing is delivered twice (counted on the receiving backend's side).
//!
//! * `partner`: a fake partner over real TLS (the demo certificates) in front of a real
//!   receiving gateway: down, slow, reset mid-body, HTTP 500, 200 with garbage, recovering;
//! * `crash`: SIGKILL of either `serve` process at random moments under concurrent load;
//! * `disk`: the store on a small tmpfs in a private mount namespace, filled and read-only;
//! * `webhook`: the backend's webhook down for a simulated hour.
//!
//! Long variants run with `AS4GW_LONG_TESTS=1` (README "Fault tests").

mod crash;
mod disk;
mod partner;
mod webhook;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::msh::e2e::Gateway;

/// Whether the long variants run (`AS4GW_LONG_TESTS=1`).
pub fn long_tests() -> bool {
    std::env::var("AS4GW_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// What the receiving backend saw through its webhook.
#[derive(Debug, Default, Clone)]
pub struct Deliveries {
    /// Accepted pushes (answered 200, valid signature) per MessageId, each with its delivery
    /// (outbox item) id.
    pub by_message: HashMap<String, Vec<String>>,
    /// Pushes with a bad or missing signature.
    pub bad_signature: usize,
}

impl Deliveries {
    /// Distinct outbox items that delivered `mid`: the backend deduplicates pushes of the same
    /// item (webhooks are at-least-once, `X-As4gw-Delivery`), so two *items* for one MessageId
    /// is a duplicate delivery, while the same item pushed twice is the documented retry.
    pub fn distinct(&self, mid: &str) -> usize {
        let mut v = self.by_message.get(mid).cloned().unwrap_or_default();
        v.sort();
        v.dedup();
        v.len()
    }

    /// Pushes of an item already accepted before (a push repeated after a crash).
    pub fn repeated_pushes(&self) -> usize {
        self.by_message
            .keys()
            .map(|m| self.by_message[m].len() - self.distinct(m))
            .sum()
    }
}

/// A backend that receives a gateway's webhook pushes and counts them (plain HTTP/1.1 on a
/// thread per connection: the test does not depend on the gateway's own HTTP stack here).
pub struct CountingBackend {
    pub port: u16,
    seen: Arc<Mutex<Deliveries>>,
    stop: Arc<AtomicBool>,
}

impl CountingBackend {
    /// Listens on a free port; `token` is the backend's bearer token (the default webhook key
    /// is its SHA-256).
    pub fn start(token: &str) -> CountingBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let seen = Arc::new(Mutex::new(Deliveries::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let key = as4gw::backend::auth::token_digest(token).to_vec();
        {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let (seen, key) = (Arc::clone(&seen), key.clone());
                            std::thread::spawn(move || serve_push(s, &seen, &key));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        CountingBackend { port, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/as4gw/inbound", self.port)
    }

    /// MessageIds delivered so far.
    pub fn delivered(&self) -> usize {
        self.seen.lock().expect("lock").by_message.len()
    }

    pub fn snapshot(&self) -> Deliveries {
        self.seen.lock().expect("lock").clone()
    }

    /// Polls until `mids` have all been delivered (or the deadline passes); returns the
    /// snapshot either way, the caller asserts.
    pub fn wait_for<'a>(
        &self,
        mids: impl IntoIterator<Item = &'a String> + Clone,
        deadline: Duration,
    ) -> Deliveries {
        let end = Instant::now() + deadline;
        loop {
            let d = self.snapshot();
            if mids
                .clone()
                .into_iter()
                .all(|m| d.by_message.contains_key(m))
                || Instant::now() > end
            {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for CountingBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One webhook request: read it whole, check the signature, count it, answer 200.
fn serve_push(mut s: std::net::TcpStream, seen: &Mutex<Deliveries>, key: &[u8]) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    loop {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let header = |name: &str| -> String {
            head.lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let len: usize = header("content-length").parse().unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ok =
            as4gw::backend::webhook::verify(key, &header("x-as4gw-signature"), &body, now, 600);
        let mid = header("x-as4gw-message-id");
        {
            let mut d = seen.lock().expect("lock");
            if !ok {
                d.bad_signature += 1;
            } else if header("x-as4gw-event") == "delivery" {
                d.by_message
                    .entry(mid)
                    .or_default()
                    .push(header("x-as4gw-delivery"));
            }
        }
        let status = if ok { "200 OK" } else { "401 Unauthorized" };
        let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        if s.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Points `gw`'s backend webhook at `url` (before it is started).
pub fn set_webhook(gw: &Gateway, url: &str) {
    let text = std::fs::read_to_string(&gw.config).expect("config");
    let mut n = 0;
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("webhook = ") {
                n += 1;
                format!("webhook = \"{url}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_eq!(n, 1, "one webhook line in {}", gw.config.display());
    std::fs::write(&gw.config, text.join("\n") + "\n").expect("write config");
}

/// The `[as4] url` of a gateway's configuration.
pub fn as4_url(gw: &Gateway) -> String {
    let v: toml::Value =
        toml::from_str(&std::fs::read_to_string(&gw.config).expect("config")).expect("toml");
    v["as4"]["url"].as_str().expect("as4 url").to_string()
}

/// Replaces `from` by `to` in every P-Mode file under `dir/pmodes` (or only in `only`).
pub fn edit_pmodes(dir: &Path, only: Option<&str>, from: &str, to: &str) {
    for e in std::fs::read_dir(dir.join("pmodes")).expect("pmodes") {
        let p = e.expect("entry").path();
        if only.is_some_and(|o| p.file_stem().and_then(|s| s.to_str()) != Some(o)) {
            continue;
        }
        let t = std::fs::read_to_string(&p).expect("pmode");
        std::fs::write(&p, t.replace(from, to)).expect("write pmode");
    }
}
