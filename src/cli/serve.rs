//! `as4gw serve [--config as4gw.toml]`: the gateway process. Wires the rooms together —
//! configuration, P-Mode registry (+ watcher), SQLite store, the AS4 HTTPS listener (inbound
//! pipeline), the backend listener, the outbound scheduler — and shuts down gracefully on
//! SIGTERM / Ctrl-C: stop accepting, finish requests and send attempts in flight, close the
//! store.
//!
//! The backend listener serves the backend room's REST API v1 (`backend::router`, axum; see
//! `docs/backend.md` and `docs/openapi.json`): multipart submissions handed to the MSH as its
//! `Submitter`, reads from the store, readiness (`GET /api/v1/health`: the store, the P-Mode
//! set, the AS4 listener and the outbound scheduler). The webhook pusher drains the store's
//! notification outbox to the backends' `webhook` URLs. On shutdown every part stops taking
//! new work, finishes what is in flight, and the store is closed last.
//!
//! Observability (`docs/operations.md`): the log subscriber follows `[log]` / `--log-format`
//! (so the configuration is read before it starts), `GET /metrics` is mounted on the backend
//! listener, and the loud-failure checker (certificate expiry, stuck messages) runs beside the
//! scheduler with the `[alerts]` settings.

use std::future::IntoFuture;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use as4gw::backend::metrics::{CertSource, MetricsEndpoint};
use as4gw::backend::{AppState, BackendAccess, HealthCheck, Readiness, WebhookSettings};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use time::OffsetDateTime;
use tokio::sync::watch;

use as4gw::config::{ClientAuth, Config, TlsVersion as CfgTls};
use as4gw::msh::api::Submitter;
use as4gw::msh::{HttpsTransport, Keyring, Msh, MshSettings, SystemClock};
use as4gw::pmode::{Registry, SetContext};
use as4gw::store::{MessageStore, SqliteStore};
use as4gw::telemetry::LogFormat;
use as4gw::transport::{
    limit_request, BodyLimits, ClientAuthMode, ClientSettings, ClientTlsFiles, HttpsClient,
    PeerInfo, Server, ServerLimits, ServerTlsFiles, TlsProtocols, TlsVersion,
};

/// What `GET /api/v1/health` reports besides the store (which the route checks itself): the
/// P-Mode set is loaded, the AS4 listener and the outbound scheduler are running, and the
/// gateway is not shutting down.
struct GatewayReadiness {
    registry: Arc<Registry>,
    as4_up: Arc<AtomicBool>,
    scheduler_up: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
}

impl Readiness for GatewayReadiness {
    fn check(&self) -> BoxFuture<'_, Vec<HealthCheck>> {
        Box::pin(async move {
            let n = self.registry.current().len();
            let flag = |name: &str, up: &AtomicBool, yes: &str, no: &str| {
                let ok = up.load(Ordering::SeqCst);
                HealthCheck {
                    name: name.into(),
                    ok,
                    detail: if ok { yes } else { no }.into(),
                }
            };
            let stopping = self.stopping.load(Ordering::SeqCst);
            vec![
                HealthCheck {
                    name: "pmodes".into(),
                    ok: n > 0,
                    detail: format!("{n} P-Modes loaded"),
                },
                flag(
                    "as4-listener",
                    &self.as4_up,
                    "accepting AS4 messages",
                    "not serving",
                ),
                flag(
                    "scheduler",
                    &self.scheduler_up,
                    "sending and retrying",
                    "not running",
                ),
                HealthCheck {
                    name: "lifecycle".into(),
                    ok: !stopping,
                    detail: if stopping { "shutting down" } else { "running" }.into(),
                },
            ]
        })
    }
}

/// Clears `flag` when dropped (the task owning it ended, however it ended).
struct DownOnDrop(Arc<AtomicBool>);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

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
    /// Longest wait for a partner's answer in seconds (the fault tests' "slow partner" must
    /// outlast it without taking two minutes). Default 120.
    #[arg(long, hide = true)]
    response_timeout_secs: Option<u64>,
    /// Webhook push lease in seconds (how soon a restarted process pushes again what a killed
    /// one had leased). Default 1800.
    #[arg(long, hide = true)]
    webhook_lease_secs: Option<u64>,
    /// Log line format on stderr: text or json (overrides `[log] format`).
    #[arg(long, value_name = "text|json")]
    log_format: Option<LogFormat>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rng = warm_rng();
    let cfg = match Config::load(&args.config, OffsetDateTime::now_utc()) {
        Ok(c) => c,
        Err(d) => {
            eprintln!(
                "as4gw: invalid configuration {}:\n{d}",
                args.config.display()
            );
            return Ok(ExitCode::from(1));
        }
    };
    // The configuration says how to log, so it is read before the subscriber starts.
    let mut log = cfg.observability.log.clone();
    if let Some(f) = args.log_format {
        log.format = f;
    }
    as4gw::telemetry::log::init(&log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(args, cfg, rng))
}

/// Seeds aws-lc's random generator on a thread of its own while the configuration loads.
///
/// aws-lc seeds its process-wide generator from CPU jitter entropy on the first random bytes
/// anyone asks for (`tree_jitter_initialize_once`): ~24 ms of CPU on this project's bench
/// machine. Left to the first message, it made every message of the first ~50 ms after a start
/// wait (p99 of a 1,000-message run at 600 msgs/s: 48 ms instead of ~20 ms). The gateway
/// reports ready only after the seed is in place (see `serve`).
fn warm_rng() -> std::thread::JoinHandle<()> {
    std::thread::spawn(|| {
        let mut seed = [0u8; 16];
        // A failure here would fail again where randomness is needed, with its own error.
        let _ = aws_lc_rs::rand::fill(&mut seed);
    })
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

/// SIGHUP: reads the configuration again and puts its keys in force (a key rollover without
/// restart, docs/lifecycle.md). The P-Mode registry's watcher reloads the P-Modes on the same
/// signal. An invalid configuration or an unreadable key keeps the keys in force.
fn spawn_key_reloader(config: PathBuf, msh: Arc<Msh>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("no SIGHUP handler: keys reload only on restart");
                return;
            };
            while hup.recv().await.is_some() {
                let now = OffsetDateTime::now_utc();
                let cfg = match Config::load(&config, now) {
                    Ok(c) => c,
                    Err(d) => {
                        tracing::error!(config = %config.display(), "key reload refused, keeping the keys in force:\n{d}");
                        continue;
                    }
                };
                match Keyring::from_config(&cfg) {
                    Ok(k) => {
                        let k = Arc::new(k);
                        let count = |s| k.signing_keys(s).len();
                        tracing::info!(
                            keys_115 = count(as4gw::security::Suite::Edelivery115),
                            keys_20 = count(as4gw::security::Suite::Edelivery20),
                            decryption = k.decryption().len(),
                            "keys reloaded"
                        );
                        msh.replace_keys(k);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "key reload refused, keeping the keys in force")
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (config, msh);
        }
    })
}

async fn serve(
    args: Args,
    cfg: Config,
    rng: std::thread::JoinHandle<()>,
) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
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
        SqliteStore::open_with(&cfg.store_dir, cfg.store_inline_max)
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
    let mut client_settings = ClientSettings {
        max_concurrent_per_partner: cfg.send_concurrency_per_partner,
        // As many idle connections as exchanges at once: fewer would close connections
        // that the next messages open again (a TLS handshake each).
        pool_max_idle_per_partner: cfg.send_concurrency_per_partner,
        ..ClientSettings::default()
    };
    if let Some(t) = args.response_timeout_secs {
        client_settings.response_timeout = Duration::from_secs(t);
    }
    let client = HttpsClient::new(client_tls, client_settings);
    let mut settings = MshSettings::from_config(&cfg);
    if let Some(s) = args.lease_secs {
        settings.lease_for = time::Duration::seconds(s as i64);
    }
    if let Some(ms) = args.poll_ms {
        settings.poll = Duration::from_millis(ms);
    }
    let msh = Msh::new(
        store.clone() as Arc<dyn MessageStore>,
        Arc::clone(&registry),
        keys,
        Arc::new(SystemClock),
        Arc::new(HttpsTransport::new(client)),
        settings,
    );

    let key_reloader = spawn_key_reloader(args.config.clone(), Arc::clone(&msh));

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    };
    // Ready means the first message pays no one-time set-up: the random generator is seeded.
    tokio::task::spawn_blocking(move || rng.join())
        .await
        .ok()
        .and_then(Result::ok)
        .context("seeding the random generator")?;
    let as4 = Server::bind_https(cfg.as4.listen, server_tls, ServerLimits::default())
        .await
        .with_context(|| format!("binding the AS4 listener {}", cfg.as4.listen))?;
    let api = tokio::net::TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("binding the backend listener {}", cfg.api_listen))?;
    // `[api.tls]`: the same TLS machinery as the AS4 listener, client certificates included.
    let api_tls = match &cfg.api_tls {
        Some(t) => Some(
            ServerTlsFiles {
                cert_chain: t.cert.path.clone(),
                private_key: t.key.clone(),
                client_auth: match t.client_auth {
                    ClientAuth::Off => ClientAuthMode::Off,
                    ClientAuth::Optional => ClientAuthMode::Optional,
                    ClientAuth::Required => ClientAuthMode::Required,
                },
                client_trust_anchors: t.client_ca.iter().map(|c| c.path.clone()).collect(),
                protocols: protocols(&t.versions, &t.cipher_suites),
            }
            .load()?
            .build()?,
        ),
        None => None,
    };
    let api_scheme = if api_tls.is_some() { "https" } else { "http" };
    tracing::info!(as4 = %cfg.as4.listen, path = %cfg.as4.path, api = %cfg.api_listen, store = %cfg.store_dir.display(), "as4gw serving");
    // Tests and operators wait for this line on stdout.
    println!(
        "as4gw: serving AS4 on https://{}{} and the backend API on {api_scheme}://{}",
        cfg.as4.listen, cfg.as4.path, cfg.api_listen
    );

    let as4_up = Arc::new(AtomicBool::new(true));
    let scheduler_up = Arc::new(AtomicBool::new(true));
    let stopping = Arc::new(AtomicBool::new(false));
    let m = Arc::clone(&msh);
    let path = cfg.as4.path.clone();
    let max = cfg.limits.max_message_size;
    let as4_serving = as4.serve(
        move |req: Request<Incoming>, _peer: PeerInfo| {
            let m = Arc::clone(&m);
            let path = path.clone();
            async move { as4_handler(m, path, max, req).await }
        },
        stopped(stop_rx.clone()),
    );
    let guard = DownOnDrop(Arc::clone(&as4_up));
    let as4_task = tokio::spawn(async move {
        let _guard = guard;
        as4_serving.await
    });

    // Loud failures (docs/operations.md "Alerts"): on whether or not [alerts] is configured.
    as4gw::telemetry::global()
        .alerts
        .configure(cfg.observability.alerts.clone());
    let certs: CertSource = {
        let (cfg, reg) = (cfg.clone(), Arc::clone(&registry));
        Arc::new(move || as4gw::telemetry::certificates(&cfg, &reg.current()))
    };
    let backends: Vec<BackendAccess> = cfg.backends.iter().map(BackendAccess::from).collect();
    let state = AppState::new(
        store.clone() as Arc<dyn MessageStore>,
        Arc::clone(&msh) as Arc<dyn Submitter>,
        backends.clone(),
    )
    .with_pmode_registry(Arc::clone(&registry))
    .with_metrics(MetricsEndpoint {
        public: cfg.observability.metrics_public,
        token_sha256: cfg.observability.metrics_token_sha256,
        certs: Arc::clone(&certs),
    })
    .with_readiness(Arc::new(GatewayReadiness {
        registry: Arc::clone(&registry),
        as4_up: Arc::clone(&as4_up),
        scheduler_up: Arc::clone(&scheduler_up),
        stopping: Arc::clone(&stopping),
    }));
    let app = as4gw::backend::router(state);
    let api_task = match api_tls {
        None => tokio::spawn(
            axum::serve(api, app)
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .into_future(),
        ),
        Some(tls) => {
            // The router behind the transport room's TLS server: handshakes (and required
            // client certificates) are checked before a request reaches the router.
            let server = Server::from_listener(api, Some(tls), ServerLimits::default());
            let serving = server.serve(
                move |req: Request<Incoming>, _peer: PeerInfo| {
                    let app = app.clone();
                    async move {
                        use tower::ServiceExt;
                        match app.oneshot(req.map(axum::body::Body::new)).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        }
                    }
                },
                stopped(stop_rx.clone()),
            );
            tokio::spawn(async move {
                serving.await;
                Ok::<(), std::io::Error>(())
            })
        }
    };
    let pusher = as4gw::backend::spawn_webhook_pusher(
        store.clone() as Arc<dyn MessageStore>,
        backends,
        {
            let mut w = WebhookSettings {
                recent: Some(msh.recent()),
                ..WebhookSettings::default()
            };
            if let Some(s) = args.webhook_lease_secs {
                w.lease_for = time::Duration::seconds(s as i64);
            }
            w
        },
        stopped(stop_rx.clone()),
    );
    // Retention (P-Mode [retention]): batches in the background, rules from the set in force.
    let purger = as4gw::msh::retention::spawn_purger(
        store.clone() as Arc<dyn MessageStore>,
        Arc::clone(&registry),
        Arc::new(SystemClock),
        cfg.purge_interval,
        stop_rx.clone(),
    );
    let checker = as4gw::telemetry::alerts::spawn_checker(
        store.clone() as Arc<dyn MessageStore>,
        certs,
        stopped(stop_rx.clone()),
    );
    let scheduling = Arc::clone(&msh).run_scheduler(stop_rx.clone());
    let guard = DownOnDrop(Arc::clone(&scheduler_up));
    let sched = tokio::spawn(async move {
        let _guard = guard;
        scheduling.await
    });

    as4gw::transport::shutdown_signal().await;
    tracing::info!("shutting down: no new requests, finishing what is in flight");
    stopping.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let _ = as4_task.await;
    match api_task.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "backend API listener ended with an error"),
        Err(e) => tracing::warn!(error = %e, "backend API task failed"),
        Ok(Ok(())) => {}
    }
    let _ = sched.await;
    let _ = pusher.await;
    let _ = purger.await;
    let _ = checker.await;
    watcher.abort();
    key_reloader.abort();
    store.close().await.context("closing the store")?;
    let w = store.writer_stats();
    tracing::info!(
        commits = w.commits,
        writes = w.jobs,
        largest_batch = w.largest_batch,
        "stopped"
    );
    Ok(ExitCode::SUCCESS)
}
