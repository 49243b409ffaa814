//! Two in-process MSHs (red, blue) on temp stores, wired by an in-memory transport.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use as4gw::config::Config;
use as4gw::msh::api::{PayloadIn, PropertyIn, SubmitRequest};
use as4gw::msh::{
    Keyring, ManualClock, Msh, MshSettings, SendError, Transport, WireRequest, WireResponse,
};
use as4gw::pmode::{Registry, SetContext};
use as4gw::store::{MessageStore, SqliteStore};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use time::OffsetDateTime;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies the demo P-Modes into `to`, with absolute certificate paths, `ports` mapping demo
/// endpoints (8443 red, 9443 blue) and a short retry schedule: `resends` resends `interval`
/// apart.
pub fn copy_pmodes(to: &Path, red_as4: &str, blue_as4: &str, resends: u32, interval: &str) {
    std::fs::create_dir_all(to).expect("pmode dir");
    for e in std::fs::read_dir(repo().join("pmodes")).expect("pmodes") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let retry = format!(
            "retry = {{ attempts = {resends}, interval = \"{interval}\", backoff = \"constant\" }}"
        );
        let text = std::fs::read_to_string(&p)
            .expect("read pmode")
            .replace("\"../certs/", &format!("\"{}/certs/", repo().display()))
            .replace("https://127.0.0.1:8443/as4", red_as4)
            .replace("https://127.0.0.1:9443/as4", blue_as4)
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
        assert!(
            !text.contains("retry = {") || text.contains(&retry),
            "{}",
            p.display()
        );
        std::fs::write(to.join(p.file_name().expect("name")), text).expect("write pmode");
    }
}

/// In-memory transport: URL → peer MSH; can be switched off or made to alter the bytes.
#[derive(Default)]
pub struct Loopback {
    peers: Mutex<HashMap<String, Weak<Msh>>>,
    pub down: AtomicBool,
    pub posts: AtomicUsize,
    /// Every wire body POSTed, in order.
    pub seen: Mutex<Vec<Vec<u8>>>,
}

impl Loopback {
    pub fn add(&self, url: &str, msh: &Arc<Msh>) {
        self.peers
            .lock()
            .expect("lock")
            .insert(url.to_string(), Arc::downgrade(msh));
    }
}

impl Transport for Loopback {
    fn post(&self, req: WireRequest) -> BoxFuture<'_, Result<WireResponse, SendError>> {
        Box::pin(async move {
            self.posts.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(SendError::Network {
                    detail: "connection refused (test)".into(),
                    may_have_been_delivered: false,
                });
            }
            let body = req
                .read_body()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| SendError::Local(e.to_string()))?;
            self.seen.lock().expect("lock").push(body.clone());
            let peer = self
                .peers
                .lock()
                .expect("lock")
                .get(&req.url)
                .and_then(Weak::upgrade)
                .ok_or_else(|| SendError::Network {
                    detail: format!("no peer at {}", req.url),
                    may_have_been_delivered: false,
                })?;
            let r = peer
                .receive(
                    Some(&req.content_type),
                    futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]),
                )
                .await;
            Ok(WireResponse {
                status: r.status,
                content_type: Some(r.content_type.to_string()),
                body: Bytes::from(r.body),
            })
        })
    }
}

pub const RED_URL: &str = "https://red.test/as4";
pub const BLUE_URL: &str = "https://blue.test/as4";

pub struct Side {
    pub msh: Arc<Msh>,
    pub store: Arc<SqliteStore>,
    pub cfg: Config,
}

pub struct World {
    pub _dir: tempfile::TempDir,
    pub red: Side,
    pub blue: Side,
    pub clock: Arc<ManualClock>,
    pub net: Arc<Loopback>,
}

impl World {
    pub async fn new(resends: u32) -> World {
        World::new_with(resends, |_, _| {}).await
    }

    /// As [`World::new`], with `tweak(side name, settings)` applied before each MSH is built.
    pub async fn new_with(resends: u32, tweak: impl Fn(&str, &mut MshSettings)) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let pm = dir.path().join("pmodes");
        copy_pmodes(&pm, RED_URL, BLUE_URL, resends, "1m");
        let now = OffsetDateTime::now_utc();
        let clock = Arc::new(ManualClock::new(now));
        let net = Arc::new(Loopback::default());
        let side = |name: &str, file: &str| {
            let cfg = Config::load(&repo().join(file), now).expect("config");
            let reg = Registry::load(
                &pm,
                SetContext {
                    backends: Some(cfg.backend_names()),
                },
                now,
            )
            .expect("pmodes");
            (name.to_string(), cfg, Arc::new(reg))
        };
        let mut sides = Vec::new();
        for (name, file) in [("red", "as4gw.toml"), ("blue", "as4gw-blue.toml")] {
            let (name, cfg, reg) = side(name, file);
            let store = Arc::new(
                SqliteStore::open(dir.path().join(&name))
                    .await
                    .expect("store"),
            );
            let keys = Arc::new(Keyring::from_config(&cfg).expect("keys"));
            let mut settings = MshSettings::from_config(&cfg);
            settings.limits.max_part_size = 256 << 20;
            settings.limits.max_message_size = 512 << 20;
            tweak(&name, &mut settings);
            let msh = Msh::new(
                store.clone() as Arc<dyn MessageStore>,
                reg,
                keys,
                clock.clone(),
                net.clone(),
                settings,
            );
            sides.push(Side { msh, store, cfg });
        }
        let blue = sides.pop().expect("blue");
        let red = sides.pop().expect("red");
        net.add(RED_URL, &red.msh);
        net.add(BLUE_URL, &blue.msh);
        World {
            _dir: dir,
            red,
            blue,
            clock,
            net,
        }
    }
}

pub fn prop(name: &str, value: &str) -> PropertyIn {
    PropertyIn {
        name: name.into(),
        value: value.into(),
        prop_type: Some("urn:oasis:names:tc:ebcore:partyid-type:unregistered".into()),
    }
}

/// A submission on `pmode` with the properties its P-Mode wants and `payloads` (name, type,
/// bytes) spooled into `store`.
pub async fn request(
    store: &SqliteStore,
    pmode: &str,
    action: &str,
    payloads: &[(&str, &str, Vec<u8>)],
) -> SubmitRequest {
    let mut properties = vec![
        prop("originalSender", "urn:oots:red:sender"),
        prop("finalRecipient", "urn:oots:blue:recipient"),
    ];
    if pmode.contains("-v2-") {
        properties.push(PropertyIn {
            name: "ExchangeId".into(),
            value: uuid::Uuid::new_v4().to_string(),
            prop_type: None,
        });
        properties.push(PropertyIn {
            name: "SpecificationId".into(),
            value: "oots-edm:v2.0".into(),
            prop_type: None,
        });
    }
    if pmode.starts_with("ebms-test") {
        properties.clear();
    }
    let mut ps = Vec::new();
    for (name, mt, data) in payloads {
        let file = store.spool().write_bytes(data).await.expect("spool");
        ps.push(PayloadIn {
            part_name: name.to_string(),
            mime_type: mt.to_string(),
            properties: vec![],
            file,
        });
    }
    SubmitRequest {
        pmode_id: Some(pmode.into()),
        action: Some(action.into()),
        properties,
        payloads: ps,
        ..Default::default()
    }
}

/// An XML payload that compresses well, and a PDF-ish binary one.
pub fn regrep(n: usize) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\"?><query:QueryRequest xmlns:query=\"urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\">");
    for i in 0..n {
        s.push_str(&format!("<slot n=\"{i}\">value {i}</slot>"));
    }
    s.push_str("</query:QueryRequest>");
    s.into_bytes()
}

pub fn binary(n: usize, seed: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut x = seed as u32 + 1;
    for _ in 0..n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        v.push((x >> 16) as u8);
    }
    v
}
