//! Two in-process gateways (red, blue): real `Msh` engines, real crypto, SQLite stores in a
//! temp directory, an in-memory transport with a mutation hook and a manual clock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use time::OffsetDateTime;

use crate::config::Config;
use crate::msh::{
    Keyring, ManualClock, Msh, MshSettings, SendError, Transport, WireRequest, WireResponse,
};
use crate::pmode::{Registry, SetContext};
use crate::store::{MessageStore, SqliteStore};

use super::scenario::MutationKind;

pub const RED_URL: &str = "https://red.conformance.test/as4";
pub const BLUE_URL: &str = "https://blue.conformance.test/as4";

/// A temp directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> std::io::Result<TempDir> {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the P-Modes of `base/pmodes` into `to` with absolute certificate paths, the demo
/// endpoints mapped to the in-memory URLs and a retry schedule of `resends` resends one minute
/// apart.
pub fn copy_pmodes(base: &Path, to: &Path, resends: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let retry =
        format!("retry = {{ attempts = {resends}, interval = \"1m\", backoff = \"constant\" }}");
    for e in std::fs::read_dir(base.join("pmodes"))? {
        let p = e?.path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p)?
            .replace("\"../certs/", &format!("\"{}/certs/", base.display()))
            .replace("https://127.0.0.1:8443/as4", RED_URL)
            .replace("https://127.0.0.1:9443/as4", BLUE_URL)
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("retry = {") {
                    retry.as_str()
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let name = p
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("{}: no file name", p.display()))?;
        std::fs::write(to.join(name), text)?;
    }
    Ok(())
}

/// One answer seen by the transport.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub status: u16,
    pub code: Option<String>,
    pub body: Vec<u8>,
}

/// In-memory transport: URL → peer MSH, with the scenario's mutation applied.
#[derive(Default)]
pub struct Net {
    peers: Mutex<HashMap<String, Weak<Msh>>>,
    mutation: Mutex<Option<(MutationKind, u32)>>,
    /// Attempts POSTed by a sender (including failed ones).
    pub posts: Mutex<u32>,
    /// Every answer a receiver gave, in order.
    pub answers: Mutex<Vec<Exchange>>,
    /// Every wire body a sender POSTed (before mutation), in order.
    pub wires: Mutex<Vec<Vec<u8>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    h.windows(n.len()).position(|w| w == n)
}

fn rfind(h: &[u8], n: &[u8]) -> Option<usize> {
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    h.windows(n.len()).rposition(|w| w == n)
}

fn replace_first(h: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let i = find(h, from)?;
    let mut v = h[..i].to_vec();
    v.extend_from_slice(to);
    v.extend_from_slice(&h[i + from.len()..]);
    Some(v)
}

fn between<'a>(h: &'a [u8], start: &[u8], end: &[u8]) -> Option<(usize, &'a [u8])> {
    let i = find(h, start)? + start.len();
    let j = find(&h[i..], end)?;
    Some((i, &h[i..i + j]))
}

/// Applies a request mutation to (content type, body). `None` when the message does not have
/// what the mutation needs (the case then fails).
pub fn mutate_request(kind: MutationKind, ct: &str, body: &[u8]) -> Option<(String, Vec<u8>)> {
    use MutationKind::*;
    match kind {
        TamperPayload => {
            let boundary = ct.split("boundary=").nth(1)?.trim_matches('"');
            let boundary = boundary.split(';').next()?.trim_matches('"');
            let end = rfind(body, format!("--{boundary}--").as_bytes())?;
            let i = end.checked_sub(40)?;
            let mut b = body.to_vec();
            b[i] ^= 0x5a;
            Some((ct.to_string(), b))
        }
        TamperHeader => {
            let (_, conv) = between(body, b"ConversationId>", b"<")?;
            let changed: Vec<u8> = conv
                .iter()
                .map(|c| if c.is_ascii_hexdigit() { b'7' } else { *c })
                .collect();
            if changed == conv {
                return Option::None;
            }
            let from = [b"ConversationId>".as_slice(), conv].concat();
            let to = [b"ConversationId>".as_slice(), &changed].concat();
            Some((ct.to_string(), replace_first(body, &from, &to)?))
        }
        DropReference => {
            let i = find(body, b"<ds:Reference URI=\"cid:")?;
            let j = i + find(&body[i..], b"</ds:Reference>")? + b"</ds:Reference>".len();
            let mut b = body[..i].to_vec();
            b.extend_from_slice(&body[j..]);
            Some((ct.to_string(), b))
        }
        SwapContentIds => {
            // the SOAP part has a Content-ID too; the attachments are the 2nd and 3rd
            let hdr = b"Content-ID: <";
            let mut pos = Vec::new();
            let mut from = 0;
            while let Some(i) = find(&body[from..], hdr) {
                let s = from + i + hdr.len();
                let e = s + find(&body[s..], b">")?;
                pos.push((s, e));
                from = e;
            }
            if pos.len() < 3 {
                return Option::None;
            }
            let (a, b) = (pos[1], pos[2]);
            let mut v = body[..a.0].to_vec();
            v.extend_from_slice(&body[b.0..b.1]);
            v.extend_from_slice(&body[a.1..b.0]);
            v.extend_from_slice(&body[a.0..a.1]);
            v.extend_from_slice(&body[b.1..]);
            Some((ct.to_string(), v))
        }
        NoBoundary => Some(("multipart/related".to_string(), body.to_vec())),
        TruncateMime => Some((ct.to_string(), body[..body.len() / 2].to_vec())),
        _ => Some((ct.to_string(), body.to_vec())),
    }
}

/// Alters the first `ds:DigestValue` of a receipt.
pub fn tamper_receipt(body: &[u8]) -> Vec<u8> {
    let Some((i, v)) = between(body, b"DigestValue>", b"<") else {
        return body.to_vec();
    };
    let mut b = body.to_vec();
    if !v.is_empty() {
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    }
    b
}

impl Net {
    pub fn add(&self, url: &str, msh: &Arc<Msh>) {
        lock(&self.peers).insert(url.to_string(), Arc::downgrade(msh));
    }

    pub fn set_mutation(&self, kind: Option<MutationKind>, times: u32) {
        *lock(&self.mutation) = kind.map(|k| (k, times));
    }

    fn peer(&self, url: &str) -> Option<Arc<Msh>> {
        lock(&self.peers).get(url).and_then(Weak::upgrade)
    }

    /// Delivers (content type, body) to the MSH at `url` as one POST; records the answer.
    pub async fn deliver(
        &self,
        url: &str,
        ct: Option<&str>,
        body: Vec<u8>,
        break_stream: bool,
    ) -> Option<Exchange> {
        let peer = self.peer(url)?;
        let r = if break_stream {
            let half = body.len() / 2;
            let first = Bytes::copy_from_slice(&body[..half]);
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(first),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset (conformance)",
                )),
            ];
            peer.receive(ct, futures_util::stream::iter(chunks)).await
        } else {
            peer.receive(
                ct,
                futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]),
            )
            .await
        };
        let ex = Exchange {
            status: r.status,
            code: r.code.map(|c| c.code().to_string()),
            body: r.body,
        };
        lock(&self.answers).push(ex.clone());
        Some(ex)
    }
}

fn down() -> SendError {
    SendError::Network {
        detail: "connection refused (conformance)".into(),
        may_have_been_delivered: false,
    }
}

impl Transport for Net {
    fn post(&self, req: WireRequest) -> BoxFuture<'_, Result<WireResponse, SendError>> {
        Box::pin(async move {
            let attempt = {
                let mut p = lock(&self.posts);
                *p += 1;
                *p
            };
            let body = tokio::fs::read(&req.file)
                .await
                .map_err(|e| SendError::Local(e.to_string()))?;
            lock(&self.wires).push(body.clone());
            let mutation = *lock(&self.mutation);
            let mut tamper_answer = false;
            let mut break_stream = false;
            let mut replay = false;
            let (ct, body) = match mutation {
                Some((MutationKind::ReceiverDown, _)) => return Err(down()),
                Some((MutationKind::TransientFailure, n)) if attempt <= n.max(1) => {
                    return Err(down())
                }
                Some((MutationKind::TamperReceipt, _)) => {
                    tamper_answer = true;
                    (req.content_type.clone(), body)
                }
                Some((MutationKind::StreamError, _)) => {
                    break_stream = true;
                    (req.content_type.clone(), body)
                }
                Some((MutationKind::Replay, _)) => {
                    replay = true;
                    (req.content_type.clone(), body)
                }
                Some((k, _)) => mutate_request(k, &req.content_type, &body)
                    .ok_or_else(|| SendError::Local(format!("mutation {k:?} not applicable")))?,
                None => (req.content_type.clone(), body),
            };
            if replay {
                self.deliver(&req.url, Some(&ct), body.clone(), false)
                    .await
                    .ok_or_else(down)?;
            }
            let ex = self
                .deliver(&req.url, Some(&ct), body, break_stream)
                .await
                .ok_or_else(down)?;
            let answer = if tamper_answer {
                tamper_receipt(&ex.body)
            } else {
                ex.body
            };
            Ok(WireResponse {
                status: ex.status,
                content_type: Some("application/soap+xml".to_string()),
                body: Bytes::from(answer),
            })
        })
    }
}

pub struct Side {
    pub msh: Arc<Msh>,
    pub store: Arc<SqliteStore>,
    pub cfg: Config,
    pub url: &'static str,
}

/// Red and blue, back to back.
pub struct World {
    pub dir: TempDir,
    pub red: Side,
    pub blue: Side,
    pub clock: Arc<ManualClock>,
    pub net: Arc<Net>,
    pub pmode_dir: PathBuf,
}

/// Resends every P-Mode gets in the conformance world (so at most 3 attempts).
pub const RESENDS: u32 = 2;

impl World {
    /// `base`: the directory with `as4gw.toml`, `as4gw-blue.toml`, `pmodes/` and `certs/`.
    pub async fn new(base: &Path) -> anyhow::Result<World> {
        let dir = TempDir::new("as4gw-conformance")?;
        let pm = dir.path().join("pmodes");
        copy_pmodes(base, &pm, RESENDS)?;
        let now = OffsetDateTime::now_utc();
        let clock = Arc::new(ManualClock::new(now));
        let net = Arc::new(Net::default());
        let mut sides = Vec::new();
        for (name, file, url) in [
            ("red", "as4gw.toml", RED_URL),
            ("blue", "as4gw-blue.toml", BLUE_URL),
        ] {
            let cfg = Config::load(&base.join(file), now)
                .map_err(|e| anyhow::anyhow!("{file}: {e:?}"))?;
            let reg = Registry::load(
                &pm,
                SetContext {
                    backends: Some(cfg.backend_names()),
                },
                now,
            )
            .map_err(|e| anyhow::anyhow!("pmodes: {e:?}"))?;
            let store = Arc::new(SqliteStore::open(dir.path().join(name)).await?);
            let keys = Arc::new(Keyring::from_config(&cfg)?);
            let settings = MshSettings::from_config(&cfg);
            let msh = Msh::new(
                store.clone() as Arc<dyn MessageStore>,
                Arc::new(reg),
                keys,
                clock.clone(),
                net.clone(),
                settings,
            );
            net.add(url, &msh);
            sides.push(Side {
                msh,
                store,
                cfg,
                url,
            });
        }
        let blue = sides
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no blue gateway"))?;
        let red = sides
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no red gateway"))?;
        Ok(World {
            dir,
            red,
            blue,
            clock,
            net,
            pmode_dir: pm,
        })
    }
}
