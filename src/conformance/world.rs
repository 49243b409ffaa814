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
    Clock, Keyring, ManualClock, Msh, MshSettings, SendError, Transport, WireRequest, WireResponse,
};
use crate::pmode::{Registry, SetContext};
use crate::store::{MessageStore, SqliteStore};
use crate::transport::{ClientSettings, ClientTlsFiles, HttpsClient, OutboundBody, TlsProtocols};

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
    copy_pmodes_from(&base.join("pmodes"), to, resends, &|url: &str| match url {
        "https://127.0.0.1:8443/as4" => Some(RED_URL.to_string()),
        "https://127.0.0.1:9443/as4" => Some(BLUE_URL.to_string()),
        _ => None,
    })
}

/// Copies every `*.toml` of `from` into `to`: relative paths (`"../…"`, `"./…"`) made
/// absolute against `from`, each `endpoint = "…"` passed through `endpoint` (`None` keeps
/// it), and the retry schedule set to `resends` resends one minute apart.
pub fn copy_pmodes_from(
    from: &Path,
    to: &Path,
    resends: u32,
    endpoint: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    let from =
        std::fs::canonicalize(from).map_err(|e| anyhow::anyhow!("{}: {e}", from.display()))?;
    let retry =
        format!("retry = {{ attempts = {resends}, interval = \"1m\", backoff = \"constant\" }}");
    let mut copied = 0;
    for e in std::fs::read_dir(&from)? {
        let p = e?.path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&p)?;
        let mut out = Vec::new();
        for l in text.lines() {
            let t = l.trim_start();
            if t.starts_with("retry = {") {
                out.push(retry.clone());
                continue;
            }
            if let Some(rest) = t.strip_prefix("endpoint = \"") {
                if let Some(url) = rest.split('"').next().and_then(endpoint) {
                    out.push(format!("endpoint = \"{url}\""));
                    continue;
                }
            }
            out.push(absolute_paths(l, &from));
        }
        let name = p
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("{}: no file name", p.display()))?;
        std::fs::write(to.join(name), out.join("\n"))?;
        copied += 1;
    }
    if copied == 0 {
        anyhow::bail!("{}: no P-Mode files", from.display());
    }
    Ok(())
}

/// Every quoted string of `line` that starts with `../` or `./` resolved against `dir`.
fn absolute_paths(line: &str, dir: &Path) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let Some(j) = rest.find('"') else {
            break;
        };
        let s = &rest[..j];
        if s.starts_with("../") || s.starts_with("./") {
            let p = dir.join(s);
            let p = std::fs::canonicalize(&p).unwrap_or(p);
            out.push_str(&p.display().to_string());
        } else {
            out.push_str(s);
        }
        out.push('"');
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    out
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
    /// When set, messages go over HTTPS to their URL instead of to an in-process peer (a
    /// `--target` partner or the Python partner); the mutations still apply here.
    remote: Option<HttpsClient>,
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

/// The EBMS code of an error signal in an answer body (`errorCode="EBMS:…"`), if any.
pub fn error_code(body: &[u8]) -> Option<String> {
    let (_, v) = between(body, b"errorCode=\"", b"\"")?;
    Some(String::from_utf8_lossy(v).into_owned())
}

impl Net {
    /// A transport that POSTs over HTTPS with `client`.
    pub fn remote(client: HttpsClient) -> Net {
        Net {
            remote: Some(client),
            ..Net::default()
        }
    }

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
        if let Some(client) = &self.remote {
            let r = client
                .post(
                    url,
                    ct.unwrap_or("application/soap+xml"),
                    OutboundBody::from_bytes(body),
                )
                .await;
            let ex = match r {
                Ok(r) => Exchange {
                    status: r.status.as_u16(),
                    code: error_code(&r.body),
                    body: r.body.to_vec(),
                },
                Err(e) => {
                    tracing::warn!(%url, error = %e, "conformance: POST failed");
                    return None;
                }
            };
            lock(&self.answers).push(ex.clone());
            return Some(ex);
        }
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
            let body = req
                .read_body()
                .await
                .map(|b| b.to_vec())
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
    pub url: String,
}

/// Red and, in-process, blue back to back; against a remote partner only red (the sender).
pub struct World {
    pub dir: TempDir,
    pub red: Side,
    /// `None` when the partner is remote (`--target`, the Python partner).
    pub blue: Option<Side>,
    pub clock: Arc<ManualClock>,
    pub net: Arc<Net>,
    pub pmode_dir: PathBuf,
}

/// Resends every P-Mode gets in the conformance world (so at most 3 attempts).
pub const RESENDS: u32 = 2;

/// One gateway: `cfg` with the P-Modes of `pm`, a fresh store under `dir/name`, registered
/// with `net` at `url`.
pub async fn side(
    dir: &Path,
    name: &str,
    cfg: Config,
    pm: &Path,
    clock: &Arc<ManualClock>,
    net: &Arc<Net>,
    url: &str,
) -> anyhow::Result<Side> {
    let now = clock.now();
    let reg = Registry::load(
        pm,
        SetContext {
            backends: Some(cfg.backend_names()),
        },
        now,
    )
    .map_err(|e| anyhow::anyhow!("pmodes {}: {e:?}", pm.display()))?;
    let store = Arc::new(SqliteStore::open(dir.join(name)).await?);
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
    Ok(Side {
        msh,
        store,
        cfg,
        url: url.to_string(),
    })
}

/// A remote partner: where it listens and how we reach it.
pub struct RemoteTarget {
    /// Our configuration (identity, keys, TLS client pair, trust anchors).
    pub config: PathBuf,
    /// The P-Modes agreed with the partner (copied; every endpoint that is not our own
    /// `[as4] url` becomes `url`).
    pub pmodes: PathBuf,
    /// The partner's AS4 endpoint.
    pub url: String,
    /// Our PartyId towards this partner instead of `[gateway] party-id` (one gateway, one
    /// PartyId: the Python partner needs a Peppol-typed one, see docs/interop.md).
    pub party: Option<crate::pmode::model::PartyId>,
}

/// The HTTPS client a sender uses towards `cfg`'s partners (as `serve` builds it).
pub fn https_client(cfg: &Config) -> anyhow::Result<HttpsClient> {
    let tls = ClientTlsFiles {
        trust_anchors: cfg.trust_anchors.iter().map(|c| c.path.clone()).collect(),
        client_cert_chain: Some(cfg.as4.tls_cert.path.clone()),
        client_private_key: Some(cfg.as4.tls_key.clone()),
        protocols: TlsProtocols::default(),
    }
    .load()?
    .build()?;
    Ok(HttpsClient::new(tls, ClientSettings::default()))
}

impl World {
    /// `base`: the directory with `as4gw.toml`, `as4gw-blue.toml`, `pmodes/` and `certs/`.
    pub async fn new(base: &Path) -> anyhow::Result<World> {
        let dir = TempDir::new("as4gw-conformance")?;
        let pm = dir.path().join("pmodes");
        copy_pmodes(base, &pm, RESENDS)?;
        let now = OffsetDateTime::now_utc();
        let clock = Arc::new(ManualClock::new(now));
        let net = Arc::new(Net::default());
        let load = |file: &str| {
            Config::load(&base.join(file), now).map_err(|e| anyhow::anyhow!("{file}: {e:?}"))
        };
        let red = side(
            dir.path(),
            "red",
            load("as4gw.toml")?,
            &pm,
            &clock,
            &net,
            RED_URL,
        )
        .await?;
        let blue = side(
            dir.path(),
            "blue",
            load("as4gw-blue.toml")?,
            &pm,
            &clock,
            &net,
            BLUE_URL,
        )
        .await?;
        Ok(World {
            dir,
            red,
            blue: Some(blue),
            clock,
            net,
            pmode_dir: pm,
        })
    }

    /// Red alone, sending over real HTTPS to `t.url`.
    pub async fn remote(t: &RemoteTarget) -> anyhow::Result<World> {
        let dir = TempDir::new("as4gw-conformance")?;
        let now = OffsetDateTime::now_utc();
        let mut cfg = Config::load(&t.config, now)
            .map_err(|e| anyhow::anyhow!("{}: {e:?}", t.config.display()))?;
        if let Some(p) = &t.party {
            cfg.party = p.clone();
        }
        let own = format!("https://{}{}", cfg.as4.listen, cfg.as4.path);
        let pm = dir.path().join("pmodes");
        let url = t.url.clone();
        copy_pmodes_from(&t.pmodes, &pm, RESENDS, &|e: &str| {
            (e != own).then(|| url.clone())
        })?;
        let clock = Arc::new(ManualClock::new(now));
        let net = Arc::new(Net::remote(https_client(&cfg)?));
        let red = side(dir.path(), "red", cfg, &pm, &clock, &net, RED_URL).await?;
        Ok(World {
            dir,
            red,
            blue: None,
            clock,
            net,
            pmode_dir: pm,
        })
    }
}

/// Red's AS4 endpoint over real HTTPS for a partner that sends (the Python library): the
/// listener `serve` would open, on a free loopback port, until dropped.
pub struct Listener {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Serves `side`'s MSH at `https://127.0.0.1:<free port>/as4` with its `[as4.tls]` pair
/// (client certificates optional, checked against `[as4.tls] client-ca`).
pub async fn listen(side: &Side) -> anyhow::Result<Listener> {
    use crate::transport::{ClientAuthMode, Server, ServerLimits, ServerTlsFiles};
    use http_body_util::Full;
    let cfg = &side.cfg;
    let tls = ServerTlsFiles {
        cert_chain: cfg.as4.tls_cert.path.clone(),
        private_key: cfg.as4.tls_key.clone(),
        client_auth: ClientAuthMode::Optional,
        client_trust_anchors: cfg.as4.client_ca.iter().map(|c| c.path.clone()).collect(),
        protocols: TlsProtocols::default(),
    }
    .load()?
    .build()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let server = Server::from_listener(listener, Some(tls), ServerLimits::default());
    let url = format!("https://127.0.0.1:{}/as4", server.local_addr()?.port());
    let msh = Arc::clone(&side.msh);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(
        move |req: http::Request<hyper::body::Incoming>, _peer| {
            let msh = Arc::clone(&msh);
            async move {
                let ct = req
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let stream = http_body_util::BodyExt::into_data_stream(req.into_body());
                let r = msh.receive(ct.as_deref(), stream).await;
                let mut resp = http::Response::new(Full::new(Bytes::from(r.body)));
                *resp.status_mut() = http::StatusCode::from_u16(r.status)
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(r.content_type),
                );
                resp
            }
        },
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Listener {
        url,
        stop: Some(stop),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_become_absolute_and_others_stay() {
        let dir = Path::new("/repo/pmodes/interop");
        assert_eq!(
            absolute_paths("signing-cert = \"../../certs/x.pem\" # \"kept\"", dir),
            "signing-cert = \"/repo/pmodes/interop/../../certs/x.pem\" # \"kept\""
        );
        assert_eq!(
            absolute_paths("a = [\"./k.pem\", \"/abs.pem\"]", dir),
            "a = [\"/repo/pmodes/interop/./k.pem\", \"/abs.pem\"]"
        );
        assert_eq!(absolute_paths("no quotes", dir), "no quotes");
    }

    #[test]
    fn error_code_is_read_from_a_signal_and_absent_from_a_receipt() {
        let err = br#"<eb:Error errorCode="EBMS:0101" severity="failure"/>"#;
        assert_eq!(error_code(err).as_deref(), Some("EBMS:0101"));
        assert_eq!(error_code(b"<eb:Receipt/>"), None);
    }
}
