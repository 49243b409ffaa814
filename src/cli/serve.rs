//! `as4gw serve [--config as4gw.toml]`: the gateway process. Wires the rooms together —
//! configuration, P-Mode registry (+ watcher), SQLite store, the AS4 HTTPS listener (inbound
//! pipeline), the backend listener, the outbound scheduler — and shuts down gracefully on
//! SIGTERM / Ctrl-C: stop accepting, finish requests and send attempts in flight, close the
//! store.
//!
//! The backend listener serves a **TEMPORARY** minimal API (`temporary_api`) until the backend
//! room's `backend::router(AppState)` lands on main: `GET /api/v1/health`, `POST
//! /api/v1/messages` (JSON metadata + base64 payloads, or raw payload bytes with the metadata in
//! the query string for large payloads) and two read-only lookups used by the end-to-end tests.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use time::OffsetDateTime;
use tokio::sync::watch;

use as4gw::config::{ClientAuth, Config, TlsVersion as CfgTls};
use as4gw::msh::{HttpsTransport, Keyring, Msh, MshSettings, SystemClock};
use as4gw::pmode::{Registry, SetContext};
use as4gw::store::{MessageStore, SqliteStore};
use as4gw::transport::{
    limit_request, BodyLimits, ClientAuthMode, ClientSettings, ClientTlsFiles, HttpsClient,
    PeerInfo, Server, ServerLimits, ServerTlsFiles, TlsProtocols, TlsVersion,
};

mod temporary_api;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gateway configuration.
    #[arg(long, default_value = "as4gw.toml")]
    config: PathBuf,
    /// Send-lease duration in seconds (how soon another process may take over a crashed
    /// sender's message). Default 600.
    #[arg(long, hide = true)]
    lease_secs: Option<u64>,
    /// Scheduler poll period in milliseconds (retries becoming due). Default 1000.
    #[arg(long, hide = true)]
    poll_ms: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(args))
}

fn protocols(versions: &[CfgTls], suites: &[String]) -> TlsProtocols {
    TlsProtocols {
        versions: versions
            .iter()
            .map(|v| match v {
                CfgTls::Tls12 => TlsVersion::Tls12,
                CfgTls::Tls13 => TlsVersion::Tls13,
            })
            .collect(),
        cipher_suites: (!suites.is_empty()).then(|| suites.to_vec()),
    }
}

type Resp = Response<Full<Bytes>>;

fn plain(status: StatusCode, ct: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(ct) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

async fn as4_handler(msh: Arc<Msh>, path: String, max: u64, req: Request<Incoming>) -> Resp {
    if req.uri().path() != path {
        return plain(StatusCode::NOT_FOUND, "text/plain", "not found");
    }
    if req.method() != http::Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "POST only");
    }
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let req = match limit_request(
        req,
        BodyLimits {
            max_bytes: max,
            idle_timeout: Some(Duration::from_secs(60)),
        },
    ) {
        Ok(r) => r,
        Err(e) => return plain(e.status(), "text/plain", e.to_string()),
    };
    let stream = req.into_body().into_data_stream();
    let r = msh.receive(ct.as_deref(), stream).await;
    plain(
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        r.content_type,
        r.body,
    )
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    let cfg = match Config::load(&args.config, now) {
        Ok(c) => c,
        Err(d) => {
            eprintln!(
                "as4gw: invalid configuration {}:\n{d}",
                args.config.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    let registry = Arc::new(
        Registry::load(
            &cfg.pmode_dir,
            SetContext {
                backends: Some(cfg.backend_names()),
            },
            now,
        )
        .map_err(|d| anyhow::anyhow!("invalid P-Modes:\n{d}"))?,
    );
    let watcher = registry.spawn_watcher(Duration::from_secs(1));
    let store = Arc::new(
        SqliteStore::open(&cfg.store_dir)
            .await
            .with_context(|| format!("opening the store {}", cfg.store_dir.display()))?,
    );
    let keys = Arc::new(Keyring::from_config(&cfg).context("loading keys")?);
    let protos = protocols(&cfg.as4.tls_versions, &cfg.as4.cipher_suites);
    let server_tls = ServerTlsFiles {
        cert_chain: cfg.as4.tls_cert.path.clone(),
        private_key: cfg.as4.tls_key.clone(),
        client_auth: match cfg.as4.client_auth {
            ClientAuth::Off => ClientAuthMode::Off,
            ClientAuth::Optional => ClientAuthMode::Optional,
            ClientAuth::Required => ClientAuthMode::Required,
        },
        client_trust_anchors: cfg.as4.client_ca.iter().map(|c| c.path.clone()).collect(),
        protocols: protos.clone(),
    }
    .load()?
    .build()?;
    // Partners' TLS server certificates chain to the configured trust anchors; our TLS pair is
    // the client certificate when a partner asks for one (as4gw.toml, [as4.tls]).
    let client_tls = ClientTlsFiles {
        trust_anchors: cfg.trust_anchors.iter().map(|c| c.path.clone()).collect(),
        client_cert_chain: Some(cfg.as4.tls_cert.path.clone()),
        client_private_key: Some(cfg.as4.tls_key.clone()),
        protocols: protos,
    }
    .load()?
    .build()?;
    let client = HttpsClient::new(client_tls, ClientSettings::default());
    let mut settings = MshSettings::from_config(&cfg);
    if let Some(s) = args.lease_secs {
        settings.lease_for = time::Duration::seconds(s as i64);
    }
    if let Some(ms) = args.poll_ms {
        settings.poll = Duration::from_millis(ms);
    }
    let msh = Msh::new(
        store.clone() as Arc<dyn MessageStore>,
        registry,
        keys,
        Arc::new(SystemClock),
        Arc::new(HttpsTransport::new(client)),
        settings,
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };
    let as4 = Server::bind_https(cfg.as4.listen, server_tls, ServerLimits::default())
        .await
        .with_context(|| format!("binding the AS4 listener {}", cfg.as4.listen))?;
    let api = Server::bind_http(cfg.api_listen, ServerLimits::default())
        .await
        .with_context(|| format!("binding the backend listener {}", cfg.api_listen))?;
    tracing::info!(as4 = %cfg.as4.listen, path = %cfg.as4.path, api = %cfg.api_listen, store = %cfg.store_dir.display(), "as4gw serving");
    // Tests and operators wait for this line on stdout.
    println!(
        "as4gw: serving AS4 on https://{}{} and the backend API on http://{}",
        cfg.as4.listen, cfg.as4.path, cfg.api_listen
    );

    let m = Arc::clone(&msh);
    let path = cfg.as4.path.clone();
    let max = cfg.limits.max_message_size;
    let as4_task = tokio::spawn(as4.serve(
        move |req: Request<Incoming>, _peer: PeerInfo| {
            let m = Arc::clone(&m);
            let path = path.clone();
            async move { as4_handler(m, path, max, req).await }
        },
        stopped(stop_rx.clone()),
    ));
    let api_state = Arc::new(temporary_api::State {
        msh: Arc::clone(&msh),
        store: Arc::clone(&store),
        backends: cfg.backends.clone(),
        max_body: cfg.limits.max_message_size.max(1 << 30),
    });
    let api_task = tokio::spawn(api.serve(
        move |req: Request<Incoming>, _peer: PeerInfo| {
            let s = Arc::clone(&api_state);
            async move { temporary_api::handle(s, req).await }
        },
        stopped(stop_rx.clone()),
    ));
    let sched = tokio::spawn(Arc::clone(&msh).run_scheduler(stop_rx.clone()));

    as4gw::transport::shutdown_signal().await;
    tracing::info!("shutting down: no new requests, finishing what is in flight");
    let _ = stop_tx.send(true);
    let _ = as4_task.await;
    let _ = api_task.await;
    let _ = sched.await;
    watcher.abort();
    store.close().await.context("closing the store")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
