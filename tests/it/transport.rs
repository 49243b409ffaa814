//! Transport room: TLS configuration, HTTPS server and client, limits, shutdown.
//!
//! The PKI is generated per test with rcgen; servers listen on 127.0.0.1:0. No assertion
//! depends on elapsed time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use as4gw::transport::{
    limit_request, BodyError, BodyLimits, ClientAuthMode, ClientSettings, ClientTls,
    ClientTlsFiles, ErrorClass, HttpsClient, LimitedBody, OutboundBody, PeerInfo, Server,
    ServerLimits, ServerStats, ServerTls, ServerTlsFiles, ShutdownReport, TlsConfigError,
    TlsProtocols, TlsVersion, TransportError,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// Test PKI

struct Identity {
    cert_pem: String,
    key_pem: String,
}

impl Identity {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("cert pem")
    }
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key pem")
    }
}

struct Pki {
    ca_pem: String,
    server: Identity,
    client: Identity,
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("ca cert")
}

fn make_leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    eku: ExtendedKeyUsagePurpose,
) -> Identity {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![eku];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, ca).expect("leaf cert");
    Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn make_pki() -> Pki {
    let ca = make_ca("as4gw test CA");
    Pki {
        ca_pem: ca.pem(),
        server: make_leaf(&ca, "gw-server", ExtendedKeyUsagePurpose::ServerAuth),
        client: make_leaf(&ca, "gw-client", ExtendedKeyUsagePurpose::ClientAuth),
    }
}

fn anchors(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("anchor pem")
}

fn versions(v: &[TlsVersion]) -> TlsProtocols {
    TlsProtocols {
        versions: v.to_vec(),
        cipher_suites: None,
    }
}

fn server_config(
    pki: &Pki,
    mode: ClientAuthMode,
    protocols: TlsProtocols,
) -> Arc<rustls::ServerConfig> {
    ServerTls {
        cert_chain: pki.server.chain(),
        key: pki.server.key(),
        client_auth: mode,
        client_trust_anchors: if mode == ClientAuthMode::Off {
            Vec::new()
        } else {
            anchors(&pki.ca_pem)
        },
        protocols,
    }
    .build()
    .expect("server tls")
}

fn client_for(
    trust_pem: &str,
    identity: Option<&Identity>,
    protocols: TlsProtocols,
    settings: ClientSettings,
) -> HttpsClient {
    let tls = ClientTls {
        trust_anchors: anchors(trust_pem),
        identity: identity.map(|i| (i.chain(), i.key())),
        protocols,
    }
    .build()
    .expect("client tls");
    HttpsClient::new(tls, settings)
}

fn client(pki: &Pki, with_cert: bool) -> HttpsClient {
    client_for(
        &pki.ca_pem,
        with_cert.then_some(&pki.client),
        TlsProtocols::default(),
        ClientSettings::default(),
    )
}

// ---------------------------------------------------------------------------------------------
// Test servers

struct Running {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<ShutdownReport>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.addr.port(), path)
    }

    async fn shutdown(mut self) -> ShutdownReport {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.expect("server task")
    }
}

async fn start<H, Fut>(
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServerLimits,
    h: H,
) -> Running
where
    H: Fn(Request<Incoming>, PeerInfo) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = match tls {
        Some(t) => Server::bind_https(addr, t, limits).await,
        None => Server::bind_http(addr, limits).await,
    }
    .expect("bind");
    let addr = server.local_addr().expect("local addr");
    let stats = server.stats();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(h, async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stats,
        stop: Some(tx),
        task,
    }
}

/// Echoes the body back (bounded), with the request's Content-Type and the connection id.
async fn echo(req: Request<Incoming>, peer: PeerInfo) -> Response<Full<Bytes>> {
    let ct = req.headers().get(http::header::CONTENT_TYPE).cloned();
    let limited = match limit_request(
        req,
        BodyLimits {
            max_bytes: 1 << 20,
            idle_timeout: None,
        },
    ) {
        Ok(r) => r,
        Err(e) => return status(e.status()),
    };
    let body = match limited.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return status(e.status()),
    };
    let mut resp = Response::new(Full::new(body));
    if let Some(ct) = ct {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, ct);
    }
    resp.headers_mut().insert(
        "x-connection-id",
        http::HeaderValue::from(peer.connection_id),
    );
    resp
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

const SOAP: &str = "application/soap+xml; charset=UTF-8";

// ---------------------------------------------------------------------------------------------
// Echo, TLS versions, client authentication

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_over_tls_gets_the_echo() {
    let pki = make_pki();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        echo,
    )
    .await;
    let c = client(&pki, false);
    let resp = c
        .post(
            &srv.url("/as4"),
            SOAP,
            OutboundBody::from_bytes("hello AS4"),
        )
        .await
        .expect("post");
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(&resp.body[..], b"hello AS4");
    assert_eq!(resp.content_type(), Some(SOAP));
    assert_eq!(resp.partner, format!("127.0.0.1:{}", srv.addr.port()));
    assert_eq!(srv.stats.requests(), 1);
    assert_eq!(srv.shutdown().await.connections_aborted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_required_refuses_a_client_without_certificate() {
    let pki = make_pki();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Required,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        echo,
    )
    .await;
    let err = client(&pki, false)
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("x"))
        .await
        .expect_err("must be refused");
    assert_eq!(err.class(), ErrorClass::Tls, "{err}");
    assert_eq!(srv.stats.requests(), 0, "the handler must not run");
    srv.shutdown().await;
}

/// Client leaf DER and negotiated protocol, as the handler saw them.
type SeenPeer = (Vec<u8>, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_required_accepts_a_client_certificate_and_the_handler_sees_it() {
    let pki = make_pki();
    let seen: Arc<Mutex<Option<SeenPeer>>> = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Required,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        move |req, peer: PeerInfo| {
            let seen = seen2.clone();
            async move {
                let leaf = peer.client_leaf().map(|c| c.as_ref().to_vec());
                let proto = peer.tls.as_ref().and_then(|t| t.protocol.clone());
                *seen.lock().expect("lock") = leaf.map(|l| (l, proto));
                echo(req, peer).await
            }
        },
    )
    .await;
    let resp = client(&pki, true)
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("with cert"))
        .await
        .expect("post");
    assert_eq!(resp.status, StatusCode::OK);
    let (leaf, proto) = seen.lock().expect("lock").clone().expect("peer cert seen");
    assert_eq!(leaf, pki.client.chain()[0].as_ref().to_vec());
    assert_eq!(proto.as_deref(), Some("TLSv1_3"));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_auth_accepts_both_and_reports_the_difference() {
    let pki = make_pki();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Optional,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        |_req, peer: PeerInfo| async move {
            let n = peer.client_certs().map_or(0, |c| c.len());
            Response::new(Full::new(Bytes::from(n.to_string())))
        },
    )
    .await;
    let without = client(&pki, false)
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("a"))
        .await
        .expect("without cert");
    let with = client(&pki, true)
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("b"))
        .await
        .expect("with cert");
    assert_eq!(&without.body[..], b"0");
    assert_eq!(&with.body[..], b"1");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_only_server_and_tls13_only_client_fail_as_tls() {
    let pki = make_pki();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            versions(&[TlsVersion::Tls12]),
        )),
        ServerLimits::default(),
        echo,
    )
    .await;
    let c13 = client_for(
        &pki.ca_pem,
        None,
        versions(&[TlsVersion::Tls13]),
        ClientSettings::default(),
    );
    let err = c13
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("x"))
        .await
        .expect_err("no common version");
    assert_eq!(err.class(), ErrorClass::Tls, "{err}");
    assert!(!err.may_have_been_delivered());
    // The same server works with a TLS 1.2 client, negotiating an ECDHE suite.
    let c12 = client_for(
        &pki.ca_pem,
        None,
        versions(&[TlsVersion::Tls12]),
        ClientSettings::default(),
    );
    let ok = c12
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("y"))
        .await
        .expect("tls 1.2");
    assert_eq!(&ok.body[..], b"y");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_server_certificate_is_refused() {
    let pki = make_pki();
    let other = make_ca("some other CA");
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        echo,
    )
    .await;
    let c = client_for(
        &other.pem(),
        None,
        TlsProtocols::default(),
        ClientSettings::default(),
    );
    let err = c
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("x"))
        .await
        .expect_err("untrusted");
    match &err {
        TransportError::Tls {
            rustls: Some(rustls::Error::InvalidCertificate(_)),
            request_sent: false,
            ..
        } => {}
        other => panic!("expected an invalid-certificate TLS error, got {other:?}"),
    }
    assert!(!err.may_have_been_delivered());
    assert_eq!(srv.stats.requests(), 0);
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Client behaviour: errors, keep-alive, concurrency, limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_and_bad_urls_are_classified() {
    let pki = make_pki();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let c = client(&pki, false);
    let err = c
        .post(
            &format!("https://127.0.0.1:{port}/"),
            SOAP,
            OutboundBody::from_bytes("x"),
        )
        .await
        .expect_err("nothing listens");
    assert_eq!(err.class(), ErrorClass::ConnectionRefused, "{err}");
    assert!(!err.may_have_been_delivered());
    assert!(err.is_transient());

    let err = c
        .post("http://127.0.0.1:1/", SOAP, OutboundBody::from_bytes("x"))
        .await
        .expect_err("plain http");
    assert_eq!(err.class(), ErrorClass::Config);
    let err = c
        .post("not a url", SOAP, OutboundBody::from_bytes("x"))
        .await
        .expect_err("garbage");
    assert_eq!(err.class(), ErrorClass::Config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_one_connection() {
    let pki = make_pki();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        echo,
    )
    .await;
    let c = client(&pki, false);
    let mut ids = Vec::new();
    for i in 0..5 {
        let resp = c
            .post(
                &srv.url("/"),
                SOAP,
                OutboundBody::from_bytes(format!("msg {i}")),
            )
            .await
            .expect("post");
        assert_eq!(resp.body, Bytes::from(format!("msg {i}")));
        ids.push(resp.headers["x-connection-id"].clone());
    }
    assert_eq!(srv.stats.requests(), 5);
    assert_eq!(srv.stats.connections_accepted(), 1);
    assert_eq!(c.connections_opened(), 1);
    assert!(ids.iter().all(|id| *id == ids[0]));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_partner_concurrency_limit_is_respected() {
    let pki = make_pki();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Semaphore::new(0));
    let arrived = Arc::new(Notify::new());
    let (f, m, r, a) = (
        in_flight.clone(),
        max_seen.clone(),
        release.clone(),
        arrived.clone(),
    );
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        move |_req, _peer| {
            let (f, m, r, a) = (f.clone(), m.clone(), r.clone(), a.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                a.notify_one();
                if let Ok(p) = r.acquire().await {
                    p.forget();
                }
                f.fetch_sub(1, Ordering::SeqCst);
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }
        },
    )
    .await;
    let c = Arc::new(client_for(
        &pki.ca_pem,
        None,
        TlsProtocols::default(),
        ClientSettings {
            max_concurrent_per_partner: 2,
            ..ClientSettings::default()
        },
    ));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = c.clone();
        let url = srv.url("/");
        tasks.push(tokio::spawn(async move {
            c.post(&url, SOAP, OutboundBody::from_bytes(format!("{i}")))
                .await
        }));
    }
    while in_flight.load(Ordering::SeqCst) < 2 {
        arrived.notified().await;
    }
    // Give a third request every chance to slip through if the limit were broken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(in_flight.load(Ordering::SeqCst), 2);
    release.add_permits(100);
    for t in tasks {
        let resp = t.await.expect("task").expect("post");
        assert_eq!(resp.status, StatusCode::OK);
    }
    assert_eq!(max_seen.load(Ordering::SeqCst), 2);
    assert_eq!(srv.stats.requests(), 6);
    assert!(
        c.connections_opened() <= 2,
        "pool holds at most 2 per partner"
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_and_request_bodies_are_refused() {
    let pki = make_pki();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        |req: Request<Incoming>, peer| async move {
            if req.uri().path() == "/big" {
                return Response::new(Full::new(Bytes::from(vec![b'a'; 10_000])));
            }
            let limited = match limit_request(
                req,
                BodyLimits {
                    max_bytes: 1000,
                    idle_timeout: None,
                },
            ) {
                Ok(r) => r,
                Err(e) => return status(e.status()),
            };
            let _ = peer;
            match limited.into_body().collect().await {
                Ok(c) => Response::new(Full::new(c.to_bytes())),
                Err(e) => status(e.status()),
            }
        },
    )
    .await;
    let c = client_for(
        &pki.ca_pem,
        None,
        TlsProtocols::default(),
        ClientSettings {
            max_response_bytes: 1024,
            ..ClientSettings::default()
        },
    );
    let err = c
        .post(&srv.url("/big"), SOAP, OutboundBody::from_bytes("x"))
        .await
        .expect_err("response too large");
    assert_eq!(err.class(), ErrorClass::ResponseTooLarge);

    let resp = c
        .post(
            &srv.url("/"),
            SOAP,
            OutboundBody::from_bytes(vec![0u8; 5000]),
        )
        .await
        .expect("413 is a response");
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
    let err = resp.error_for_status().expect_err("413");
    assert_eq!(err.class(), ErrorClass::HttpStatus);
    assert!(!err.is_transient());
    srv.shutdown().await;
}

#[tokio::test]
async fn limited_body_stops_a_stream_past_its_limit() {
    let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = (0..10)
        .map(|_| Ok(http_body::Frame::data(Bytes::from(vec![1u8; 100]))))
        .collect();
    let stream = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
    let mut body = LimitedBody::new(
        stream,
        BodyLimits {
            max_bytes: 450,
            idle_timeout: None,
        },
    );
    let mut ok = 0;
    let err = loop {
        match body.frame().await {
            Some(Ok(_)) => ok += 1,
            Some(Err(e)) => break e,
            None => panic!("limit not enforced"),
        }
    };
    assert_eq!(ok, 4);
    assert!(matches!(err, BodyError::TooLarge { limit: 450 }));
    assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn limited_body_times_out_an_idle_stream() {
    let stream = http_body_util::StreamBody::new(futures_util::stream::pending::<
        Result<http_body::Frame<Bytes>, std::convert::Infallible>,
    >());
    let mut body = LimitedBody::new(
        stream,
        BodyLimits {
            max_bytes: 10,
            idle_timeout: Some(Duration::from_millis(50)),
        },
    );
    match body.frame().await {
        Some(Err(BodyError::IdleTimeout { .. })) => {}
        other => panic!("expected idle timeout, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Server: plain HTTP listener, header limit, graceful shutdown, streaming

async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_listener_serves_and_limits_header_size() {
    let srv = start(
        None,
        ServerLimits {
            max_header_bytes: 16 * 1024,
            ..ServerLimits::default()
        },
        |req: Request<Incoming>, peer: PeerInfo| async move {
            assert!(peer.tls.is_none());
            echo(req, peer).await
        },
    )
    .await;
    let ok = raw_exchange(
        srv.addr,
        b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with("hello"), "{ok}");

    let mut big = b"POST /api HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let refused = raw_exchange(srv.addr, &big).await;
    assert!(refused.starts_with("HTTP/1.1 431"), "{refused}");
    assert_eq!(srv.stats.requests(), 1);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_and_refuses_new_connections() {
    let pki = make_pki();
    let entered = Arc::new(Notify::new());
    let (finish_tx, finish_rx) = oneshot::channel::<()>();
    let finish_rx = Arc::new(tokio::sync::Mutex::new(Some(finish_rx)));
    let (e, fr) = (entered.clone(), finish_rx.clone());
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        move |_req, _peer| {
            let (e, fr) = (e.clone(), fr.clone());
            async move {
                e.notify_one();
                let rx = fr.lock().await.take();
                if let Some(rx) = rx {
                    let _ = rx.await;
                }
                Response::new(Full::new(Bytes::from_static(b"slow done")))
            }
        },
    )
    .await;
    let addr = srv.addr;
    let url = srv.url("/slow");
    let c = Arc::new(client(&pki, false));
    let c2 = c.clone();
    let in_flight =
        tokio::spawn(async move { c2.post(&url, SOAP, OutboundBody::from_bytes("x")).await });
    entered.notified().await;

    let Running {
        stop, task, stats, ..
    } = srv;
    let _ = stop.expect("stop").send(());
    // Wait (bounded) until the listening socket is gone.
    let mut refused = false;
    for _ in 0..200 {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(refused, "listener still accepting after shutdown");
    let fresh = client(&pki, false);
    let err = fresh
        .post(
            &format!("https://127.0.0.1:{}/", addr.port()),
            SOAP,
            OutboundBody::from_bytes("late"),
        )
        .await
        .expect_err("new connection after shutdown");
    assert_eq!(err.class(), ErrorClass::ConnectionRefused);

    let _ = finish_tx.send(());
    let resp = in_flight.await.expect("task").expect("in-flight completes");
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(&resp.body[..], b"slow done");
    let report = task.await.expect("server");
    assert_eq!(report.connections_aborted, 0);
    assert_eq!(stats.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_grace_expiry_drops_stuck_requests() {
    let pki = make_pki();
    let entered = Arc::new(Notify::new());
    let e = entered.clone();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits {
            shutdown_grace: Duration::from_millis(100),
            ..ServerLimits::default()
        },
        move |_req, _peer| {
            let e = e.clone();
            async move {
                e.notify_one();
                std::future::pending::<()>().await;
                Response::new(Full::new(Bytes::new()))
            }
        },
    )
    .await;
    let url = srv.url("/stuck");
    let c = client(&pki, false);
    let req = tokio::spawn(async move { c.post(&url, SOAP, OutboundBody::from_bytes("x")).await });
    entered.notified().await;
    let report = srv.shutdown().await;
    assert_eq!(report.connections_aborted, 1);
    let err = req.await.expect("task").expect_err("dropped");
    assert_eq!(err.class(), ErrorClass::Protocol, "{err}");
    assert!(err.may_have_been_delivered());
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_upload_streams_through_with_flat_memory() {
    const SIZE: u64 = 200 * 1024 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wire.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..200 {
            f.write_all(&block).expect("write");
        }
        f.flush().expect("flush");
    }
    let pki = make_pki();
    let max_frame = Arc::new(AtomicU64::new(0));
    let mf = max_frame.clone();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        move |req, _peer| {
            let mf = mf.clone();
            async move {
                let req = match limit_request(req, BodyLimits::default()) {
                    Ok(r) => r,
                    Err(e) => return status(e.status()),
                };
                let mut body = req.into_body();
                let mut total: u64 = 0;
                let mut sum: u64 = 0;
                while let Some(frame) = body.frame().await {
                    let frame = match frame {
                        Ok(f) => f,
                        Err(e) => return status(e.status()),
                    };
                    if let Some(d) = frame.data_ref() {
                        mf.fetch_max(d.len() as u64, Ordering::Relaxed);
                        total += d.len() as u64;
                        sum = d.iter().fold(sum, |s, b| s.wrapping_add(u64::from(*b)));
                    }
                }
                Response::new(Full::new(Bytes::from(format!("{total} {sum}"))))
            }
        },
    )
    .await;
    let expected_sum: u64 = 200 * (0..1024 * 1024u64).map(|i| i % 251).sum::<u64>();
    let before = rss_bytes();
    let c = client(&pki, false);
    let body = OutboundBody::from_file(&path).await.expect("open");
    assert_eq!(body.len(), SIZE);
    let resp = c
        .post(&srv.url("/upload"), "application/octet-stream", body)
        .await
        .expect("upload");
    let after = rss_bytes();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&resp.body),
        format!("{SIZE} {expected_sum}")
    );
    // Streaming, not collecting: no frame anywhere near the body size, and the process did
    // not grow by a sizeable fraction of it.
    assert!(max_frame.load(Ordering::Relaxed) <= 1024 * 1024);
    if let (Some(b), Some(a)) = (before, after) {
        assert!(
            a.saturating_sub(b) < 64 * 1024 * 1024,
            "RSS grew by {} bytes",
            a.saturating_sub(b)
        );
    }
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// TLS configuration

#[test]
fn default_suites_are_ecdhe_aead_for_tls12_and_all_tls13() {
    let (provider, versions) = TlsProtocols::default().resolve().expect("defaults");
    assert_eq!(versions.len(), 2);
    let names: Vec<String> = provider
        .cipher_suites
        .iter()
        .map(as4gw::transport::tls::iana_name)
        .collect();
    assert!(names.contains(&"TLS_AES_256_GCM_SHA384".to_string()));
    assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
    for n in &names {
        let tls13 = !n.contains("_WITH_");
        assert!(tls13 || n.starts_with("TLS_ECDHE_"), "{n}");
        assert!(n.contains("GCM") || n.contains("CHACHA20_POLY1305"), "{n}");
    }
}

#[test]
fn cipher_suite_names_are_checked() {
    let with = |v: &[TlsVersion], s: &[&str]| TlsProtocols {
        versions: v.to_vec(),
        cipher_suites: Some(s.iter().map(|x| x.to_string()).collect()),
    };
    let ok = with(
        &[TlsVersion::Tls12, TlsVersion::Tls13],
        &[
            "TLS_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ],
    )
    .resolve()
    .expect("valid");
    assert_eq!(ok.0.cipher_suites.len(), 2);
    assert!(matches!(
        with(&[TlsVersion::Tls13], &["TLS_AES_128_GCM_SHA257"]).resolve(),
        Err(TlsConfigError::UnknownCipherSuite { .. })
    ));
    assert!(matches!(
        with(&[TlsVersion::Tls13], &["TLS_AES_128_CCM_SHA256"]).resolve(),
        Err(TlsConfigError::UnsupportedCipherSuite { .. })
    ));
    assert!(matches!(
        with(
            &[TlsVersion::Tls13],
            &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
        )
        .resolve(),
        Err(TlsConfigError::SuiteForDisabledVersion { .. })
    ));
    assert!(matches!(
        with(
            &[TlsVersion::Tls12, TlsVersion::Tls13],
            &["TLS_AES_128_GCM_SHA256"]
        )
        .resolve(),
        Err(TlsConfigError::NoSuiteForVersion { .. })
    ));
    assert!(matches!(
        with(&[], &[]).resolve(),
        Err(TlsConfigError::NoVersion)
    ));
    let msg = with(&[TlsVersion::Tls13], &["nonsense"])
        .resolve()
        .expect_err("unknown")
        .to_string();
    assert!(
        msg.contains("nonsense") && msg.contains("TLS_AES_256_GCM_SHA384"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_from_toml_and_pem_files() {
    let pki = make_pki();
    let dir = tempfile::tempdir().expect("tempdir");
    let w = |name: &str, s: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, s).expect("write pem");
        p.display().to_string()
    };
    let (ca, sc, sk, cc, ck) = (
        w("ca.pem", &pki.ca_pem),
        w("server.pem", &pki.server.cert_pem),
        w("server.key", &pki.server.key_pem),
        w("client.pem", &pki.client.cert_pem),
        w("client.key", &pki.client.key_pem),
    );
    let server_toml = format!(
        r#"
cert_chain = "{sc}"
private_key = "{sk}"
client_auth = "required"
client_trust_anchors = ["{ca}"]
protocols = {{ versions = ["1.2"], cipher_suites = ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"] }}
"#
    );
    let files: ServerTlsFiles = toml::from_str(&server_toml).expect("server toml");
    assert_eq!(files.client_auth, ClientAuthMode::Required);
    let server_tls = files.load().expect("load").build().expect("build");

    let client_toml = format!(
        r#"
trust_anchors = ["{ca}"]
client_cert_chain = "{cc}"
client_private_key = "{ck}"
"#
    );
    let cfiles: ClientTlsFiles = toml::from_str(&client_toml).expect("client toml");
    let client_tls = cfiles.load().expect("load").build().expect("build");

    let suite = Arc::new(Mutex::new(None));
    let s2 = suite.clone();
    let srv = start(
        Some(server_tls),
        ServerLimits::default(),
        move |req, peer: PeerInfo| {
            *s2.lock().expect("lock") = peer.tls.as_ref().and_then(|t| t.cipher_suite.clone());
            echo(req, peer)
        },
    )
    .await;
    let c = HttpsClient::new(client_tls, ClientSettings::default());
    let resp = c
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("files"))
        .await
        .expect("post");
    assert_eq!(&resp.body[..], b"files");
    assert_eq!(
        suite.lock().expect("lock").as_deref(),
        Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
    );
    srv.shutdown().await;

    let bad: Result<ServerTlsFiles, _> =
        toml::from_str("cert_chain = \"a\"\nprivate_key = \"b\"\nbogus = 1\n");
    assert!(bad.is_err(), "unknown keys are rejected");
    let missing = ServerTlsFiles {
        cert_chain: dir.path().join("nope.pem"),
        private_key: dir.path().join("nope.key"),
        client_auth: ClientAuthMode::Off,
        client_trust_anchors: Vec::new(),
        protocols: TlsProtocols::default(),
    };
    assert!(matches!(missing.load(), Err(TlsConfigError::Read { .. })));
    let no_anchor = ServerTls {
        cert_chain: pki.server.chain(),
        key: pki.server.key(),
        client_auth: ClientAuthMode::Required,
        client_trust_anchors: Vec::new(),
        protocols: TlsProtocols::default(),
    };
    assert!(matches!(
        no_anchor.build(),
        Err(TlsConfigError::NoClientTrustAnchors { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_is_taken_from_the_url_host() {
    let pki = make_pki();
    let sni = Arc::new(Mutex::new(None));
    let s2 = sni.clone();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits::default(),
        move |req, peer: PeerInfo| {
            *s2.lock().expect("lock") = Some(peer.tls.as_ref().and_then(|t| t.server_name.clone()));
            echo(req, peer)
        },
    )
    .await;
    let c = client(&pki, false);
    let by_name = format!("https://localhost:{}/as4", srv.addr.port());
    c.post(&by_name, SOAP, OutboundBody::from_bytes("n"))
        .await
        .expect("by name");
    assert_eq!(
        sni.lock().expect("lock").clone(),
        Some(Some("localhost".to_string()))
    );
    // An IP-address URL is verified against the IP SAN and sends no SNI.
    c.post(&srv.url("/as4"), SOAP, OutboundBody::from_bytes("i"))
        .await
        .expect("by ip");
    assert_eq!(sni.lock().expect("lock").clone(), Some(None));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_that_never_answers_times_out_after_the_upload() {
    let pki = make_pki();
    let srv = start(
        Some(server_config(
            &pki,
            ClientAuthMode::Off,
            TlsProtocols::default(),
        )),
        ServerLimits {
            shutdown_grace: Duration::from_millis(10),
            ..ServerLimits::default()
        },
        |_req, _peer| async move {
            std::future::pending::<()>().await;
            Response::new(Full::new(Bytes::new()))
        },
    )
    .await;
    let c = client_for(
        &pki.ca_pem,
        None,
        TlsProtocols::default(),
        ClientSettings {
            response_timeout: Duration::from_millis(200),
            ..ClientSettings::default()
        },
    );
    let err = c
        .post(&srv.url("/"), SOAP, OutboundBody::from_bytes("x"))
        .await
        .expect_err("no answer");
    match &err {
        TransportError::Timeout {
            stage: as4gw::transport::TimeoutStage::Response,
            ..
        } => {}
        other => panic!("expected a response timeout, got {other:?}"),
    }
    assert!(err.may_have_been_delivered());
    assert!(err.is_transient());
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_cut_off() {
    let srv = start(
        None,
        ServerLimits {
            header_read_timeout: Duration::from_millis(200),
            ..ServerLimits::default()
        },
        echo,
    )
    .await;
    let mut s = tokio::net::TcpStream::connect(srv.addr)
        .await
        .expect("connect");
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // The head is never completed; the server must close the connection by itself. The
    // generous bound only keeps a broken build from hanging the suite.
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "server kept a half-sent request open");
    assert_eq!(srv.stats.requests(), 0);
    srv.shutdown().await;
}
