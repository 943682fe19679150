//! The observer's accept loop, for plain TCP and TLS alike: a cap on client sockets (503 past
//! it, counted), a header-read timeout that also ends idle kept-alive connections, WebSocket
//! upgrades, and a graceful shutdown with a deadline.

use crate::server::error::ErrorCode;
use crate::server::Slot;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tower_layer::Layer;

/// Longest wait for open requests to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What one client socket may hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientLimits {
    /// Client sockets at once (browsers, taps, API callers).
    pub max_clients: usize,
    /// Time to send a request's headers; also the longest idle time between requests.
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub(crate) async fn serve_on<L>(
    mut listener: L,
    app: Router,
    limits: ClientLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    L::Io: crate::server::tls::ClientCertified,
{
    let max = crate::flags::clamp_to_open_files(limits.max_clients, 1, "--max-clients");
    let open = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            c = listener.accept() => c,
            _ = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&open, max) else {
            let refused = refused.clone();
            tokio::spawn(async move {
                let body = serde_json::json!({
                    "type": "error",
                    "code": ErrorCode::TooManyClients.as_str(),
                    "message": format!("this observer already has {max} client connections (--max-clients); retry later"),
                })
                .to_string();
                let what = format!("--max-clients {max} are connected");
                refuse_over_cap(io, &refused, &what, ("application/json", body)).await;
            });
            continue;
        };
        // The client's address, where axum's `ConnectInfo` extractor looks for it: wrapped
        // around the router (as `axum::serve` does), not layered into every route.
        let cert = crate::server::tls::ClientCert {
            fingerprint: crate::server::tls::ClientCertified::client_cert(&io),
        };
        let app = Extension(cert).layer(app.clone());
        let svc = TowerToHyperService::new(Extension(ConnectInfo(addr)).layer(app));
        let conn = http.serve_connection(TokioIo::new(io), svc).with_upgrades();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            run_connection(conn, stop, addr).await;
        });
    }
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while open.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Answers a client over a connection cap with a 503 it can read, then closes the socket; the
/// refusal is counted and logged (at 1, 2, 4, 8, … refusals, so a flood does not flood the log).
pub(crate) async fn refuse_over_cap(
    mut io: impl AsyncWrite + Unpin,
    refused: &AtomicU64,
    what: &str,
    (content_type, body): (&str, String),
) {
    let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(refused = n, "client refused: {what}");
    }
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {content_type}\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), io.write_all(resp.as_bytes())).await;
    let _ = io.shutdown().await;
}

/// Serves one HTTP/1 connection (and what it upgrades to) until it ends, or until `stop` turns
/// true: then in-flight requests finish and the connection closes.
pub(crate) async fn run_connection<I, S, B>(
    conn: hyper::server::conn::http1::UpgradeableConnection<I, S>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
