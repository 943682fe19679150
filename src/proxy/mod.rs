//! `sockscope proxy`: an HTTP/1.1 reverse proxy (hyper) that forwards plain requests and
//! proxies WebSocket upgrades message by message, mirroring them to the observer via the tap.

mod args;
mod deflate;
pub mod frames;
mod http;
mod relay;
mod relay_io;
pub mod tls;
mod ws;

use crate::proxy::http::{forward, Body};
pub use args::{Capture, ProxyArgs};
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use sockscope_tap::Tap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Default largest WebSocket message proxied (64 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// Default bytes read at once. The relay has one read buffer per worker thread, none per
/// connection, so it can be large: fewer system calls for big messages.
pub const DEFAULT_READ_BUFFER: usize = 64 << 10;
/// Time open connections get to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Default payload capture: the first `--payload-cap` bytes of each message, after masking.
pub const DEFAULT_PAYLOAD_MODE: &str = "truncated";
/// Default `--header-timeout`: a client has this long to send a request's headers, and a
/// kept-alive connection may sit idle this long between requests (nginx: 60 s and 75 s; a
/// slow-header client is cut sooner here).
pub const DEFAULT_HEADER_TIMEOUT: &str = "20s";
/// Default `--max-connections`: client connections open at once (each proxied WebSocket also
/// holds an upstream socket). Lowered at start to what the open-file limit allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default `--payload-cap`.
pub const DEFAULT_PAYLOAD_CAP: usize = sockscope_tap::DEFAULT_PAYLOAD_CAP;
/// Default `--mask-keys`: [`sockscope_tap::DEFAULT_MASK_KEYS`].
pub const DEFAULT_MASK_KEYS: &[&str] = sockscope_tap::DEFAULT_MASK_KEYS;
/// Default `--mirror-headers`: [`sockscope_tap::DEFAULT_MIRROR_HEADERS`].
pub const DEFAULT_MIRROR_HEADERS: &[&str] = sockscope_tap::DEFAULT_MIRROR_HEADERS;

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `host:port` of the upstream server (from `--upstream http://host:port`).
    pub upstream: String,
    /// Set for an `https://` upstream.
    pub upstream_tls: Option<tls::UpstreamTls>,
    /// Clients speak TLS to the proxy (`--tls-cert`, `--tls-key`).
    pub tls: Option<crate::server::tls::TlsFiles>,
    /// `--ws-idle-timeout`: a WebSocket with no bytes either way for this long is closed.
    pub ws_idle_timeout: Option<Duration>,
    pub trusted: Vec<IpNet>,
    pub max_message: usize,
    pub read_buffer: usize,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl ProxyConfig {
    /// Defaults for everything but the upstream (`host:port`).
    pub fn new(upstream: impl Into<String>) -> Self {
        ProxyConfig {
            upstream: upstream.into(),
            upstream_tls: None,
            tls: None,
            ws_idle_timeout: None,
            trusted: Vec::new(),
            max_message: DEFAULT_MAX_MESSAGE,
            read_buffer: DEFAULT_READ_BUFFER,
            header_timeout: crate::flags::duration(DEFAULT_HEADER_TIMEOUT).expect("valid default"),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

type UpstreamClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Incoming,
>;

pub(crate) struct Shared {
    pub cfg: ProxyConfig,
    pub tap: Tap,
    pub client: UpstreamClient,
    pub shutdown: watch::Receiver<bool>,
}

/// Accepts clients until `shutdown` resolves, then gives open connections [`SHUTDOWN_GRACE`]:
/// WebSockets are closed with 1001 on both sides.
pub async fn serve(
    listener: TcpListener,
    cfg: ProxyConfig,
    tap: Tap,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match cfg.tls.clone() {
        Some(files) => {
            let first = crate::server::tls::load(&files).map_err(std::io::Error::other)?;
            let listener = crate::server::tls::listen(listener, files, first);
            serve_on(listener, cfg, tap, shutdown).await
        }
        None => {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            serve_on(listener, cfg, tap, shutdown).await
        }
    }
}

async fn serve_on<L>(
    mut listener: L,
    cfg: ProxyConfig,
    tap: Tap,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = upstream_client(&cfg);
    let max_connections =
        crate::flags::clamp_to_open_files(cfg.max_connections, 2, "--max-connections");
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(cfg.header_timeout);
    let shared = Arc::new(Shared {
        cfg,
        tap,
        client,
        shutdown: stop_rx,
    });
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let Some(slot) = crate::server::Slot::take(&open, max_connections) else {
            let refused = refused.clone();
            tokio::spawn(async move {
                let body = format!("sockscope proxy: {max_connections} connections are open (--max-connections); retry later\n");
                let what = format!("--max-connections {max_connections} are open");
                let text = ("text/plain; charset=utf-8", body);
                crate::server::listen::refuse_over_cap(stream, &refused, &what, text).await;
            });
            continue;
        };
        let shared = shared.clone();
        let stop = shared.shutdown.clone();
        // The place is held by the HTTP connection (its service holds it), and handed on to
        // the relay of a WebSocket it becomes: the HTTP connection ends at the upgrade.
        let place: Place = Arc::new(std::sync::Mutex::new(Some(slot)));
        // The service holds `shared`: shutdown waits until every connection task is gone.
        let svc = service_fn(move |req: Request<Incoming>| {
            let (shared, place) = (shared.clone(), place.clone());
            async move {
                Ok::<Response<Body>, std::convert::Infallible>(
                    handle(req, peer, shared, place).await,
                )
            }
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        tokio::spawn(async move {
            crate::server::listen::run_connection(conn, stop, peer).await;
        });
    }
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while Arc::strong_count(&shared) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if Arc::strong_count(&shared) > 1 {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}

/// The client for plain requests: HTTP, or TLS to an https:// upstream.
fn upstream_client(cfg: &ProxyConfig) -> UpstreamClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let connector = match &cfg.upstream_tls {
        Some(tls) => builder
            .with_tls_config((*tls.config).clone())
            .https_only()
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
                tls.server_name.clone(),
            ))
            .enable_http1()
            .build(),
        None => builder
            .with_tls_config(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )
            .https_or_http()
            .enable_http1()
            .build(),
    };
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

/// A client connection's place under `--max-connections`: taken by the relay when the
/// connection becomes a WebSocket, freed with the connection otherwise.
type Place = Arc<std::sync::Mutex<Option<crate::server::Slot>>>;

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    place: Place,
) -> Response<Body> {
    if ws::is_upgrade(&req) {
        ws::upgrade(req, peer, shared, place).await
    } else {
        forward(req, peer, &shared).await
    }
}
