//! `as4gw bench`: end-to-end throughput of two real gateways on this machine, next to the
//! crypto-bound ceiling measured in the same run.
//!
//! Starts a sending ("red") and a receiving ("blue") gateway as separate processes (this
//! binary, `serve --config` on temp copies of the demo configurations: free ports, temp stores,
//! HTTPS, the SQLite store, signed receipts), a webhook receiver standing in for both backends,
//! and drives `--messages` submissions through the sender's REST API with `--concurrency`
//! submissions in flight. A message counts when it is ACKNOWLEDGED at the sender (its `status`
//! webhook push, as a backend would learn it; the API is polled only when no push came within
//! a second) and delivered at the receiver (a `delivery` webhook, or, at the end, found
//! RECEIVED over the receiver's API and acknowledged there).
//!
//! Figures: msgs/s end to end, latency submit → ACKNOWLEDGED (p50/p95/p99), CPU time per
//! message of both processes (`/proc/<pid>/stat`), peak RSS per process (`VmHWM`), wire bytes
//! per message (the sender's spool: wire files minus submitted payloads), and the ceiling:
//! this machine's cost of the unavoidable crypto per message with aws-lc-rs, spread over the
//! available cores. See `docs/performance.md`.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use aws_lc_rs::{aead, agreement, digest, rand as lcrand, rsa, signature};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use signature::KeyPair as _;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    #[value(name = "edelivery-1.15")]
    V115,
    #[value(name = "edelivery-2.0")]
    V20,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::V115 => "edelivery-1.15",
            Suite::V20 => "edelivery-2.0",
        }
    }
    fn pmode(self) -> &'static str {
        match self {
            Suite::V115 => "oots-red-blue",
            Suite::V20 => "oots-v2-red-blue",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Security suite (P-Mode oots-red-blue or oots-v2-red-blue).
    #[arg(long, value_enum, default_value = "edelivery-1.15")]
    suite: Suite,
    /// Payload size in bytes (one payload per message).
    #[arg(long, default_value_t = 4096)]
    payload_size: usize,
    /// Messages to send.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Submissions in flight (each waits for its ACKNOWLEDGED before the next).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Open loop: submit at this many messages per second, evenly spaced, whatever the
    /// answers (latency at a given load, e.g. half the maximum throughput); `--concurrency`
    /// then only caps the messages in flight. Default: closed loop (`--concurrency` workers).
    #[arg(long)]
    rate: Option<f64>,
    /// Use a compressing leg (ExecuteQueryRequest); default: the uncompressed leg
    /// (ExecuteQueryResponse).
    #[arg(long)]
    compress: bool,
    /// Media type of the payload: the default is an ebRS XML document (its digest input is
    /// the exclusive canonical form of the parsed XML, SwA profile); any non-XML type (e.g.
    /// `application/pdf`, how large OOTS evidences travel) sends pseudo-random binary bytes,
    /// digested as they are.
    #[arg(long, default_value = PAYLOAD_TYPE)]
    payload_type: String,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Directory holding as4gw.toml, as4gw-blue.toml, pmodes/ and certs/ (the repository).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Give up waiting for acknowledgements / deliveries after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Start the gateways, measure idle RSS and start-up, stop (no messages).
    #[arg(long)]
    idle_only: bool,
    /// Keep the temp directory (configs, stores, logs) and print its path.
    #[arg(long)]
    keep: bool,
    /// Write one CSV line per message (`index,submitted_ms,latency_ms,ok`: submission order,
    /// time of submission since the start, submit → final status) to this file, to see when
    /// in a run the slow messages happened.
    #[arg(long)]
    latencies: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 || (args.messages == 0 && !args.idle_only) {
        bail!("--messages and --concurrency must be at least 1");
    }
    if matches!(args.rate, Some(r) if !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of messages per second");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(bench(args))
}

// ---------------------------------------------------------------------------------------------
// Machine description

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32, tck: f64) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15 → indexes 11, 12.
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / tck
}

/// A `/proc/<pid>/status` field in kB, as MiB.
fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A port that is free now, chosen below the kernel's ephemeral range (32768–60999 by
/// default): a port from `bind(0)` is an ephemeral one, and an outgoing connection of another
/// process can take it between this probe and the gateway's own bind (seen as "red gateway
/// exited at start" under parallel tests).
fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 21_000 + (std::process::id() % 500) as u16 * 20;
    for _ in 0..2_000 {
        let p = base + NEXT.fetch_add(1, Ordering::Relaxed) % 11_000;
        let p = if p >= 32_000 { p - 11_000 } else { p };
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return Ok(p);
        }
    }
    anyhow::bail!("no free port found between 21000 and 32000")
}

// ---------------------------------------------------------------------------------------------
// The ceiling: the crypto a message cannot avoid, measured with aws-lc-rs on this machine

/// Seconds per call of `f`, run for at least ~150 ms (and at least 3 times).
fn per_op(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?; // warm-up
    let start = Instant::now();
    let mut n = 0u32;
    while n < 3 || start.elapsed() < Duration::from_millis(150) {
        f()?;
        n += 1;
    }
    Ok(start.elapsed().as_secs_f64() / f64::from(n))
}

fn lc<T>(r: Result<T, aws_lc_rs::error::Unspecified>, what: &str) -> anyhow::Result<T> {
    r.map_err(|_| anyhow!("aws-lc-rs: {what} failed"))
}

/// Per-message crypto cost, seconds: (sender, receiver, the operations measured).
fn crypto_cost(suite: Suite, payload: usize) -> anyhow::Result<(f64, f64, Value)> {
    let rng = lcrand::SystemRandom::new();
    let signed_info = vec![0x5au8; 1024];
    let mut data = vec![0x42u8; payload];
    let key = [7u8; 16];
    let gcm = lc(
        aead::UnboundKey::new(&aead::AES_128_GCM, &key).map(aead::LessSafeKey::new),
        "AES-GCM key",
    )?;
    // AES-GCM over the payload, encrypt and decrypt.
    let mut ct = data.clone();
    let tag = lc(
        gcm.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key([1; 12]),
            aead::Aad::empty(),
            &mut ct,
        ),
        "seal",
    )?;
    ct.extend_from_slice(tag.as_ref());
    let gcm_enc = per_op(|| {
        lc(
            gcm.seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key([1; 12]),
                aead::Aad::empty(),
                &mut data,
            ),
            "seal",
        )
        .map(|_| ())
    })?;
    let mut buf = ct.clone();
    let gcm_dec = per_op(|| {
        buf.copy_from_slice(&ct);
        lc(
            gcm.open_in_place(
                aead::Nonce::assume_unique_for_key([1; 12]),
                aead::Aad::empty(),
                &mut buf,
            ),
            "open",
        )
        .map(|_| ())
    })?;
    // Exclude the copy from the decryption figure.
    let copy = per_op(|| {
        buf.copy_from_slice(&ct);
        Ok(())
    })?;
    let gcm_dec = (gcm_dec - copy).max(0.0);
    let sha = per_op(|| {
        let _ = digest::digest(&digest::SHA256, &data);
        Ok(())
    })?;

    let (sign, verify, kt_send, kt_recv, names) = match suite {
        Suite::V115 => {
            let kp = lc(rsa::KeyPair::generate(rsa::KeySize::Rsa2048), "RSA keygen")?;
            let mut sig = vec![0u8; kp.public_modulus_len()];
            let sign = per_op(|| {
                lc(
                    kp.sign(&signature::RSA_PKCS1_SHA256, &rng, &signed_info, &mut sig),
                    "RSA sign",
                )
            })?;
            let pk = signature::UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                kp.public_key().as_ref().to_vec(),
            );
            let verify = per_op(|| lc(pk.verify(&signed_info, &sig), "RSA verify"))?;
            let dk = lc(
                rsa::PrivateDecryptingKey::generate(rsa::KeySize::Rsa2048),
                "RSA keygen",
            )?;
            let ek = lc(
                rsa::OaepPublicEncryptingKey::new(dk.public_key()),
                "OAEP public key",
            )?;
            let dk = lc(rsa::OaepPrivateDecryptingKey::new(dk), "OAEP private key")?;
            let mut wrapped = vec![0u8; ek.ciphertext_size()];
            let kt_send = per_op(|| {
                lc(
                    ek.encrypt(&rsa::OAEP_SHA256_MGF1SHA256, &key, &mut wrapped, None),
                    "OAEP encrypt",
                )
                .map(|_| ())
            })?;
            let mut out = vec![0u8; dk.min_output_size()];
            let kt_recv = per_op(|| {
                lc(
                    dk.decrypt(&rsa::OAEP_SHA256_MGF1SHA256, &wrapped, &mut out, None),
                    "OAEP decrypt",
                )
                .map(|_| ())
            })?;
            (
                sign,
                verify,
                kt_send,
                kt_recv,
                [
                    "rsa2048_sign",
                    "rsa2048_verify",
                    "rsa_oaep_encrypt",
                    "rsa_oaep_decrypt",
                ],
            )
        }
        Suite::V20 => {
            let kp = lc(signature::Ed25519KeyPair::generate(), "Ed25519 keygen")?;
            let sign = per_op(|| {
                let _ = kp.sign(&signed_info);
                Ok(())
            })?;
            let sig = kp.sign(&signed_info);
            let pk = signature::UnparsedPublicKey::new(
                &signature::ED25519,
                kp.public_key().as_ref().to_vec(),
            );
            let verify = per_op(|| lc(pk.verify(&signed_info, sig.as_ref()), "Ed25519 verify"))?;
            let recipient = lc(
                agreement::PrivateKey::generate(&agreement::X25519),
                "X25519 keygen",
            )?;
            let recipient_pub = lc(recipient.compute_public_key(), "X25519 public")?;
            let recipient_pub = recipient_pub.as_ref().to_vec();
            // Sender: an ephemeral key per message + agreement.
            let kt_send = per_op(|| {
                let eph = lc(
                    agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng),
                    "X25519 ephemeral",
                )?;
                let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, &recipient_pub);
                lc(
                    agreement::agree_ephemeral(eph, peer, aws_lc_rs::error::Unspecified, |s| {
                        Ok(s.len())
                    }),
                    "X25519 agree",
                )
                .map(|_| ())
            })?;
            let eph = lc(
                agreement::PrivateKey::generate(&agreement::X25519),
                "X25519 keygen",
            )?;
            let eph_pub = lc(eph.compute_public_key(), "X25519 public")?;
            let eph_pub = eph_pub.as_ref().to_vec();
            let kt_recv = per_op(|| {
                let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, &eph_pub);
                lc(
                    agreement::agree(&recipient, peer, aws_lc_rs::error::Unspecified, |s| {
                        Ok(s.len())
                    }),
                    "X25519 agree",
                )
                .map(|_| ())
            })?;
            (
                sign,
                verify,
                kt_send,
                kt_recv,
                [
                    "ed25519_sign",
                    "ed25519_verify",
                    "x25519_ephemeral_agree",
                    "x25519_agree",
                ],
            )
        }
    };
    // Sender: sign + key transport/agreement + AES-GCM + SHA-256, and verifies the receipt.
    let sender = sign + kt_send + gcm_enc + sha + verify;
    // Receiver: key decryption/agreement + verify + AES-GCM + SHA-256, and signs the receipt.
    let receiver = kt_recv + verify + gcm_dec + sha + sign;
    let us = |s: f64| (s * 1e7).round() / 10.0;
    let ops = json!({
        names[0]: us(sign), names[1]: us(verify), names[2]: us(kt_send), names[3]: us(kt_recv),
        "aes128_gcm_seal_payload": us(gcm_enc), "aes128_gcm_open_payload": us(gcm_dec),
        "sha256_payload": us(sha),
    });
    Ok((sender, receiver, ops))
}

// ---------------------------------------------------------------------------------------------
// Gateways

struct Gateway {
    name: &'static str,
    token: &'static str,
    api: String,
    store: PathBuf,
    child: Child,
    log: PathBuf,
    startup: Duration,
}

impl Gateway {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Replaces the value of every line `key = …` (at any indentation) with `value`.
fn set_key(text: &str, key: &str, value: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

struct Layout {
    red_config: PathBuf,
    blue_config: PathBuf,
    red_api: String,
    blue_api: String,
}

/// Temp copies of the demo configurations and P-Modes: free ports, temp stores, the
/// webhook receiver as both backends, limits raised for large payloads, a short retry.
fn write_configs(repo: &Path, dir: &Path, hook: u16, big: bool) -> anyhow::Result<Layout> {
    let repo = std::fs::canonicalize(repo)
        .with_context(|| format!("the repository directory {}", repo.display()))?;
    let (red_as4, blue_as4, red_api, blue_api) =
        (free_port()?, free_port()?, free_port()?, free_port()?);
    let red_url = format!("https://127.0.0.1:{red_as4}/as4");
    let blue_url = format!("https://127.0.0.1:{blue_as4}/as4");
    let pm = dir.join("pmodes");
    std::fs::create_dir_all(&pm)?;
    let src = repo.join("pmodes");
    for e in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let p = e?.path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let mut text = std::fs::read_to_string(&p)?
            .replace("\"../certs/", &format!("\"{}/certs/", repo.display()))
            .replace("https://127.0.0.1:8443/as4", &red_url)
            .replace("https://127.0.0.1:9443/as4", &blue_url);
        text = set_key(
            &text,
            "retry",
            "{ attempts = 5, interval = \"2s\", backoff = \"constant\" }",
        );
        if big {
            text = set_key(&text, "max-part-size", "\"2GiB\"");
        }
        if let Some(name) = p.file_name() {
            std::fs::write(pm.join(name), text)?;
        }
    }
    let mk = |file: &str, name: &str, as4: u16, api: u16, demo_as4: &str, demo_api: &str| {
        let mut text = std::fs::read_to_string(repo.join(file))
            .with_context(|| format!("reading {file}"))?
            .replace("\"certs/", &format!("\"{}/certs/", repo.display()))
            .replace(demo_as4, &format!("https://127.0.0.1:{as4}/as4"))
            .replace(demo_api, &format!("http://127.0.0.1:{api}"));
        text = set_key(&text, "pmodes", &format!("\"{}\"", pm.display()));
        text = set_key(&text, "path", &format!("\"{}\"", dir.join(name).display()));
        text = set_key(
            &text,
            "webhook",
            &format!("\"http://127.0.0.1:{hook}/{name}/inbound\""),
        );
        if big {
            text = set_key(&text, "max-message-size", "\"4GiB\"");
            text = set_key(&text, "max-part-size", "\"2GiB\"");
            text = set_key(&text, "max-decompressed-size", "\"4GiB\"");
        }
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, text)?;
        anyhow::Ok(config)
    };
    Ok(Layout {
        red_config: mk(
            "as4gw.toml",
            "red",
            red_as4,
            red_api,
            "https://127.0.0.1:8443/as4",
            "http://127.0.0.1:8080",
        )?,
        blue_config: mk(
            "as4gw-blue.toml",
            "blue",
            blue_as4,
            blue_api,
            "https://127.0.0.1:9443/as4",
            "http://127.0.0.1:9080",
        )?,
        red_api: format!("http://127.0.0.1:{red_api}"),
        blue_api: format!("http://127.0.0.1:{blue_api}"),
    })
}

async fn start_gateway(
    http: &reqwest::Client,
    name: &'static str,
    token: &'static str,
    config: &Path,
    api: &str,
    dir: &Path,
) -> anyhow::Result<Gateway> {
    let exe = std::env::current_exe().context("locating the as4gw binary")?;
    let log = dir.join(format!("{name}.log"));
    let logf = std::fs::File::create(&log)?;
    let started = Instant::now();
    let child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--poll-ms", "200"])
        // The gateways' own log filter: `AS4GW_BENCH_LOG` (e.g. `debug`) to see what they do.
        .env(
            "RUST_LOG",
            std::env::var("AS4GW_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .with_context(|| format!("starting the {name} gateway"))?;
    let mut gw = Gateway {
        name,
        token,
        api: api.to_string(),
        store: dir.join(name),
        child,
        log,
        startup: Duration::ZERO,
    };
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http
            .get(format!("{api}/api/v1/health"))
            .bearer_auth(token)
            .send()
            .await;
        if let Ok(r) = r {
            if r.status().is_success() {
                gw.startup = started.elapsed();
                return Ok(gw);
            }
        }
        if let Ok(Some(st)) = gw.child.try_wait() {
            bail!(
                "the {name} gateway exited at start ({st}); log: {}",
                gw.log.display()
            );
        }
        if Instant::now() > end {
            bail!(
                "the {} gateway did not become ready; log: {}",
                gw.name,
                gw.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Backends: a webhook receiver (both gateways push to it), the REST API client

#[derive(Default)]
struct Hooks {
    delivered: HashSet<String>,
    status: HashMap<String, String>,
    /// Workers waiting for the final `status` push of a message they submitted.
    waiting: HashMap<String, tokio::sync::oneshot::Sender<String>>,
    pushes: u64,
}

/// A final sender-side state (the end of a message's wait).
fn is_final(state: &str) -> bool {
    matches!(state, "ACKNOWLEDGED" | "FAILED")
}

async fn hook_server(hooks: Arc<Mutex<Hooks>>) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().fallback(axum::routing::any(
        move |headers: http::HeaderMap, body: Bytes| {
            let hooks = Arc::clone(&hooks);
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let (event, mid) = (h("x-as4gw-event"), h("x-as4gw-message-id"));
                if let Ok(mut g) = hooks.lock() {
                    g.pushes += 1;
                    match event.as_str() {
                        "delivery" => {
                            g.delivered.insert(mid);
                        }
                        "status" => {
                            let state = serde_json::from_slice::<Value>(&body)
                                .ok()
                                .and_then(|v| v["message"]["state"].as_str().map(str::to_string))
                                .unwrap_or_default();
                            if is_final(&state) {
                                if let Some(w) = g.waiting.remove(&mid) {
                                    let _ = w.send(state.clone());
                                }
                            }
                            g.status.insert(mid, state);
                        }
                        _ => {}
                    }
                }
                http::StatusCode::NO_CONTENT
            }
        },
    ));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

/// Which backend API the gateway serves: the real router (multipart, docs/backend.md) or the
/// temporary JSON API `serve` mounted before it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Api {
    Backend,
    Temporary,
}

async fn detect_api(http: &reqwest::Client, gw: &Gateway) -> Api {
    match http
        .get(format!("{}/api/v1/openapi.json", gw.api))
        .bearer_auth(gw.token)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Api::Backend,
        _ => Api::Temporary,
    }
}

fn properties(suite: Suite) -> Vec<Value> {
    let t = "urn:oasis:names:tc:ebcore:partyid-type:unregistered";
    let mut p = vec![
        json!({"name": "originalSender", "value": "urn:cef.eu:names:identifier:EAS:9930:bench-c1", "type": t}),
        json!({"name": "finalRecipient", "value": "urn:cef.eu:names:identifier:EAS:9930:bench-c4", "type": t}),
    ];
    if suite == Suite::V20 {
        p.push(json!({"name": "ExchangeId", "value": uuid::Uuid::new_v4().to_string()}));
        p.push(json!({"name": "SpecificationId", "value": "oots-edm:v2.0"}));
    }
    p
}

const PAYLOAD_TYPE: &str = "application/x-ebrs+xml";

/// An XML payload of exactly `n` bytes (when n ≥ the wrapper): base64 text of pseudo-random
/// bytes, so gzip gains about a quarter, like real evidence.
/// Whether the payload type is XML for the Attachment-Content-Signature-Transform.
fn is_xml(media_type: &str) -> bool {
    as4gw::security::verify::digest_kind(media_type) == as4gw::security::verify::DigestKind::Xml
}

/// `n` pseudo-random bytes (a binary evidence: PDF, image, archive).
fn binary_payload(n: usize) -> Bytes {
    let mut v = Vec::with_capacity(n + 4);
    let mut x: u32 = 0x9e37_79b9;
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    Bytes::from(v)
}

fn payload(n: usize) -> Bytes {
    let head = b"<?xml version=\"1.0\"?><query:QueryResponse xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\"><data>";
    let tail = b"</data></query:QueryResponse>";
    let fill = n.saturating_sub(head.len() + tail.len());
    let mut raw = Vec::with_capacity(fill * 3 / 4 + 3);
    let mut x: u32 = 0x2545_f491;
    while raw.len() < fill * 3 / 4 + 3 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        raw.push((x >> 11) as u8);
    }
    let mut b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    b64.truncate(fill);
    let mut v = Vec::with_capacity(n.max(head.len() + tail.len()));
    v.extend_from_slice(head);
    v.extend_from_slice(b64.as_bytes());
    v.extend_from_slice(tail);
    Bytes::from(v)
}

struct Ctx {
    payload_type: String,
    http: reqwest::Client,
    api: Api,
    suite: Suite,
    action: &'static str,
    payload: Bytes,
    red_api: String,
    red_token: &'static str,
    hooks: Arc<Mutex<Hooks>>,
}

async fn submit(ctx: &Ctx) -> anyhow::Result<String> {
    let url = format!("{}/api/v1/messages", ctx.red_api);
    let resp = match ctx.api {
        Api::Backend => {
            // A binary evidence travels as OOTS sends it: after the ebRS document, which an
            // OOTS P-Mode requires as the first payload.
            let binary = !is_xml(&ctx.payload_type);
            let mut payloads = Vec::new();
            if binary {
                payloads.push(json!({"part": "response", "mimeType": PAYLOAD_TYPE}));
            }
            payloads.push(json!({"part": "evidence", "mimeType": ctx.payload_type}));
            let meta = json!({
                "pmode": ctx.suite.pmode(),
                "action": ctx.action,
                "properties": properties(ctx.suite),
                "payloads": payloads,
            });
            let mut form = reqwest::multipart::Form::new().part(
                "metadata",
                reqwest::multipart::Part::text(meta.to_string()).mime_str("application/json")?,
            );
            if binary {
                form = form.part(
                    "response",
                    reqwest::multipart::Part::bytes(payload(400).to_vec())
                        .file_name("response.xml")
                        .mime_str(PAYLOAD_TYPE)?,
                );
            }
            form = form.part(
                "evidence",
                reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::from(ctx.payload.clone()),
                    ctx.payload.len() as u64,
                )
                .file_name(if binary {
                    "evidence.bin"
                } else {
                    "evidence.xml"
                })
                .mime_str(&ctx.payload_type)?,
            );
            ctx.http
                .post(url)
                .bearer_auth(ctx.red_token)
                .multipart(form)
                .send()
                .await?
        }
        Api::Temporary if ctx.payload.len() > 32 << 20 => {
            // The temporary API's JSON body is capped at 64 MiB: one raw payload instead.
            let mut q = vec![
                ("pmode_id".to_string(), ctx.suite.pmode().to_string()),
                ("action".to_string(), ctx.action.to_string()),
                ("part_name".to_string(), "evidence".to_string()),
                ("mime_type".to_string(), ctx.payload_type.clone()),
            ];
            for p in properties(ctx.suite) {
                if let (Some(n), Some(v)) = (p["name"].as_str(), p["value"].as_str()) {
                    q.push((format!("prop.{n}"), v.to_string()));
                }
            }
            ctx.http
                .post(url)
                .query(&q)
                .bearer_auth(ctx.red_token)
                .header(http::header::CONTENT_TYPE, ctx.payload_type.clone())
                .body(ctx.payload.clone())
                .send()
                .await?
        }
        Api::Temporary => {
            let meta = json!({
                "pmode_id": ctx.suite.pmode(),
                "action": ctx.action,
                "properties": properties(ctx.suite),
                "payloads": [{"part_name": "evidence", "mime_type": ctx.payload_type,
                    "data_base64": base64::engine::general_purpose::STANDARD.encode(&ctx.payload)}],
            });
            ctx.http
                .post(url)
                .bearer_auth(ctx.red_token)
                .json(&meta)
                .send()
                .await?
        }
    };
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "submission refused: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: Value = serde_json::from_slice(&body).context("submission answer")?;
    v.get("messageId")
        .or_else(|| v.get("message_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no messageId in the submission answer: {v}"))
}

fn message_url(api_base: &str, api: Api, dir: &str, mid: &str) -> String {
    let mid: String = mid
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    match api {
        Api::Backend => format!("{api_base}/api/v1/messages/{mid}?direction={dir}"),
        Api::Temporary => format!("{api_base}/api/v1/messages/{dir}/{mid}"),
    }
}

async fn state(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<Option<String>> {
    let r = http.get(url).bearer_auth(token).send().await?;
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let v: Value = r.json().await?;
    Ok(v["state"].as_str().map(str::to_string))
}

/// One message: submit, then wait for its final `status` push (ACKNOWLEDGED or FAILED); when
/// none came within a second, ask the API (a lost push must not hang the bench, and an older
/// `serve` may not push). Returns (id, latency, ok).
async fn one(ctx: &Ctx, deadline: Instant) -> anyhow::Result<(String, Duration, bool)> {
    let t0 = Instant::now();
    let mid = submit(ctx).await?;
    let url = message_url(&ctx.red_api, ctx.api, "OUT", &mid);
    loop {
        let rx = {
            let mut g = ctx
                .hooks
                .lock()
                .map_err(|_| anyhow!("webhook state poisoned"))?;
            match g.status.get(&mid) {
                Some(s) if is_final(s) => {
                    let ok = s == "ACKNOWLEDGED";
                    return Ok((mid, t0.elapsed(), ok));
                }
                _ => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    g.waiting.insert(mid.clone(), tx);
                    rx
                }
            }
        };
        let state = match tokio::time::timeout(Duration::from_secs(1), rx).await {
            Ok(Ok(state)) => Some(state),
            _ => state(&ctx.http, &url, ctx.red_token).await?,
        };
        match state.as_deref() {
            Some("ACKNOWLEDGED") => return Ok((mid, t0.elapsed(), true)),
            Some("FAILED") => return Ok((mid, t0.elapsed(), false)),
            _ => {}
        }
        if Instant::now() > deadline {
            return Ok((mid, t0.elapsed(), false));
        }
    }
}

/// Wire bytes recorded by the sender so far: small wire messages live inline in the database
/// (issue 8), large ones in spool files; the recorded sizes cover both.
fn wire_bytes(store: &Path) -> u64 {
    let db = store.join("store.db");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    rusqlite::Connection::open_with_flags(db, flags)
        .and_then(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(wire_size), 0) FROM messages",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .map_or_else(|_| spool_bytes(store), |n| u64::try_from(n).unwrap_or(0))
}

fn spool_bytes(store: &Path) -> u64 {
    std::fs::read_dir(store.join("spool"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn bench(args: Args) -> anyhow::Result<ExitCode> {
    let load_start = loadavg();
    let cores = nproc();
    let tck = clk_tck();

    // 1. The ceiling, before the gateways run.
    let (crypto_sender, crypto_receiver, ops) = crypto_cost(args.suite, args.payload_size)?;
    let crypto_msg = crypto_sender + crypto_receiver;
    let ceiling = cores as f64 / crypto_msg;

    // 2. Gateways and the webhook receiver.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("as4gw-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&args, &dir, tck).await;
    if args.keep {
        eprintln!("as4gw bench: kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut out = result?;
    let ok = out["acknowledged"].as_u64() == Some(args.messages as u64)
        && out["delivered"].as_u64() == Some(args.messages as u64);
    let mps = out["msgs_per_sec"].as_f64().unwrap_or(0.0);
    if let Some(o) = out.as_object_mut() {
        o.insert("suite".into(), json!(args.suite.name()));
        o.insert("payload_size".into(), json!(args.payload_size));
        o.insert("payload_type".into(), json!(args.payload_type));
        o.insert("messages".into(), json!(args.messages));
        o.insert("concurrency".into(), json!(args.concurrency));
        o.insert("offered_rate".into(), json!(args.rate));
        o.insert("compress".into(), json!(args.compress));
        o.insert("ceiling_msgs_per_sec".into(), json!(r1(ceiling)));
        o.insert(
            "ratio".into(),
            json!(if args.idle_only {
                0.0
            } else {
                r3(mps / ceiling)
            }),
        );
        o.insert(
            "crypto_us_per_msg".into(),
            json!({"sender": r1(crypto_sender * 1e6), "receiver": r1(crypto_receiver * 1e6), "ops_us": ops}),
        );
        o.insert(
            "machine".into(),
            json!({"nproc": cores, "cpu_model": cpu_model(), "loadavg_start": load_start, "loadavg_end": loadavg()}),
        );
    }
    if args.json {
        println!("{out}");
    } else {
        print_table(&out);
    }
    Ok(if ok || args.idle_only {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn run_in(args: &Args, dir: &Path, tck: f64) -> anyhow::Result<Value> {
    let hooks = Arc::new(Mutex::new(Hooks::default()));
    let hook = hook_server(Arc::clone(&hooks)).await?;
    let big = args.payload_size > 16 << 20;
    let layout = write_configs(&args.repo, dir, hook, big)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let mut red = start_gateway(
        &http,
        "red",
        "red-demo-token",
        &layout.red_config,
        &layout.red_api,
        dir,
    )
    .await?;
    let mut blue = start_gateway(
        &http,
        "blue",
        "blue-demo-token",
        &layout.blue_config,
        &layout.blue_api,
        dir,
    )
    .await?;
    let api = detect_api(&http, &red).await;
    let idle = json!({
        "sender": r1(status_mb(red.pid(), "VmRSS")),
        "receiver": r1(status_mb(blue.pid(), "VmRSS")),
    });
    let startup = json!({
        "sender": r1(red.startup.as_secs_f64() * 1e3),
        "receiver": r1(blue.startup.as_secs_f64() * 1e3),
    });
    if args.idle_only {
        let out = json!({
            "api": format!("{api:?}").to_lowercase(),
            "idle_rss_mb": idle, "startup_ms": startup,
            "peak_rss_mb": {"sender": r1(status_mb(red.pid(), "VmHWM")), "receiver": r1(status_mb(blue.pid(), "VmHWM"))},
            "msgs_per_sec": 0.0, "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0,
            "acknowledged": 0, "delivered": 0,
        });
        red.stop();
        blue.stop();
        return Ok(out);
    }
    let ctx = Arc::new(Ctx {
        http: http.clone(),
        api,
        suite: args.suite,
        action: if args.compress {
            "ExecuteQueryRequest"
        } else {
            "ExecuteQueryResponse"
        },
        payload: if is_xml(&args.payload_type) {
            payload(args.payload_size)
        } else {
            binary_payload(args.payload_size)
        },
        payload_type: args.payload_type.clone(),
        red_api: red.api.clone(),
        red_token: red.token,
        hooks: Arc::clone(&hooks),
    });
    let spool_before = wire_bytes(&red.store);
    let (cpu_red0, cpu_blue0) = (cpu_secs(red.pid(), tck), cpu_secs(blue.pid(), tck));
    // The bench's own client and webhook receiver share the cores with the gateways.
    let cpu_bench0 = cpu_secs(std::process::id(), tck);
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    match args.rate {
        // Open loop: message i is due at start + i / rate; a late answer does not delay the
        // next submission (only the in-flight cap can).
        Some(rate) => {
            let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
            for i in 0..args.messages {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                let (ctx, slots) = (Arc::clone(&ctx), Arc::clone(&slots));
                workers.push(tokio::spawn(async move {
                    tokio::time::sleep_until(due.into()).await;
                    let _slot = slots.acquire_owned().await;
                    let at = start.elapsed();
                    vec![(i, at, one(&ctx, deadline).await)]
                }));
            }
        }
        None => {
            for _ in 0..args.concurrency.min(args.messages) {
                let (ctx, next) = (Arc::clone(&ctx), Arc::clone(&next));
                let n = args.messages;
                workers.push(tokio::spawn(async move {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if i >= n {
                            break;
                        }
                        let at = start.elapsed();
                        done.push((i, at, one(&ctx, deadline).await));
                    }
                    done
                }));
            }
        }
    }
    let mut ids = Vec::new();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    let mut failed = 0usize;
    let mut per_message = Vec::new();
    for w in workers {
        for (i, at, r) in w.await.context("worker")? {
            match r {
                Ok((mid, d, ok)) => {
                    per_message.push((i, at, d, ok));
                    if ok {
                        lat.push(d.as_secs_f64() * 1e3);
                    } else {
                        failed += 1;
                    }
                    ids.push(mid);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    // Deliveries: pushed to the webhook receiver, else RECEIVED at the receiver → ack.
    let mut delivered: HashSet<String> = HashSet::new();
    loop {
        if let Ok(g) = hooks.lock() {
            delivered.extend(ids.iter().filter(|m| g.delivered.contains(*m)).cloned());
        }
        let missing: Vec<&String> = ids.iter().filter(|m| !delivered.contains(*m)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        for mid in missing {
            let url = message_url(&blue.api, api, "IN", mid);
            match state(&http, &url, blue.token)
                .await
                .ok()
                .flatten()
                .as_deref()
            {
                Some("DELIVERED") => {
                    delivered.insert(mid.clone());
                }
                Some("RECEIVED") if api == Api::Temporary => {
                    delivered.insert(mid.clone());
                }
                Some("RECEIVED") => {
                    let r = http
                        .post(format!(
                            "{}/ack",
                            message_url(&blue.api, api, "IN", mid)
                                .split('?')
                                .next()
                                .unwrap_or_default()
                        ))
                        .bearer_auth(blue.token)
                        .send()
                        .await;
                    if matches!(r, Ok(ref r) if r.status().is_success()) {
                        delivered.insert(mid.clone());
                    }
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (cpu_red, cpu_blue) = (
        cpu_secs(red.pid(), tck) - cpu_red0,
        cpu_secs(blue.pid(), tck) - cpu_blue0,
    );
    let cpu_bench = cpu_secs(std::process::id(), tck) - cpu_bench0;
    let peak = json!({
        "sender": r1(status_mb(red.pid(), "VmHWM")),
        "receiver": r1(status_mb(blue.pid(), "VmHWM")),
    });
    let wire = wire_bytes(&red.store).saturating_sub(spool_before);
    red.stop();
    blue.stop();

    if let Some(path) = &args.latencies {
        per_message.sort_by_key(|m| m.0);
        let mut csv = String::from("index,submitted_ms,latency_ms,ok\n");
        for (i, at, d, ok) in &per_message {
            csv.push_str(&format!(
                "{i},{:.3},{:.3},{ok}\n",
                at.as_secs_f64() * 1e3,
                d.as_secs_f64() * 1e3
            ));
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    lat.sort_by(f64::total_cmp);
    let acked = lat.len();
    let n = args.messages.max(1) as f64;
    let wire_per_msg = (wire as f64 - (acked * args.payload_size) as f64).max(0.0) / n;
    let mps = acked.min(delivered.len()) as f64 / elapsed;
    let hook_pushes = hooks.lock().map(|g| g.pushes).unwrap_or(0);
    errors.truncate(5);
    Ok(json!({
        "api": format!("{api:?}").to_lowercase(),
        "acknowledged": acked,
        "delivered": delivered.len(),
        "failed": failed,
        "errors": errors,
        "elapsed_s": r3(elapsed),
        "msgs_per_sec": r1(mps),
        "mb_per_sec": r1(mps * args.payload_size as f64 / 1e6),
        "p50_ms": r1(pct(&lat, 50.0)),
        "p95_ms": r1(pct(&lat, 95.0)),
        "p99_ms": r1(pct(&lat, 99.0)),
        "max_ms": r1(lat.last().copied().unwrap_or(0.0)),
        "cpu_ms_per_msg": {"sender": r3(cpu_red * 1e3 / n), "receiver": r3(cpu_blue * 1e3 / n)},
        "bench_cpu_ms_per_msg": r3(cpu_bench * 1e3 / n),
        "peak_rss_mb": peak,
        "idle_rss_mb": idle,
        "startup_ms": startup,
        "wire_bytes_per_msg": wire_per_msg.round(),
        "webhook_pushes": hook_pushes,
    }))
}

fn print_table(v: &Value) {
    let g = |k: &str| v[k].to_string();
    let pair = |k: &str| format!("{} / {}", v[k]["sender"], v[k]["receiver"]);
    let rows = [
        ("suite", g("suite")),
        ("payload bytes", g("payload_size")),
        (
            "messages / concurrency",
            format!("{} / {}", g("messages"), g("concurrency")),
        ),
        ("offered rate msgs/s (open loop)", g("offered_rate")),
        ("backend API", g("api")),
        (
            "acknowledged / delivered",
            format!("{} / {}", g("acknowledged"), g("delivered")),
        ),
        ("msgs/s end to end", g("msgs_per_sec")),
        ("MB/s end to end", g("mb_per_sec")),
        (
            "latency p50 / p95 / p99 ms",
            format!("{} / {} / {}", g("p50_ms"), g("p95_ms"), g("p99_ms")),
        ),
        ("ceiling msgs/s (crypto)", g("ceiling_msgs_per_sec")),
        ("ratio achieved / ceiling", g("ratio")),
        ("CPU ms/msg sender / receiver", pair("cpu_ms_per_msg")),
        ("CPU ms/msg of the bench itself", g("bench_cpu_ms_per_msg")),
        ("crypto µs/msg sender / receiver", pair("crypto_us_per_msg")),
        ("peak RSS MB sender / receiver", pair("peak_rss_mb")),
        ("idle RSS MB sender / receiver", pair("idle_rss_mb")),
        ("start-up ms sender / receiver", pair("startup_ms")),
        ("wire bytes/msg", g("wire_bytes_per_msg")),
        ("nproc", v["machine"]["nproc"].to_string()),
        ("CPU", v["machine"]["cpu_model"].to_string()),
        (
            "load average start / end",
            format!(
                "{} / {}",
                v["machine"]["loadavg_start"], v["machine"]["loadavg_end"]
            ),
        ),
    ];
    for (k, val) in rows {
        println!("{k:<34} {val}");
    }
}
