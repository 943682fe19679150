//! WebSocket upgrades: handshake with the upstream first (so a refusal or an unreachable
//! upstream reaches the client as an HTTP answer, not a hang), then answer 101 and relay
//! messages both ways, mirroring each one to the tap.

use super::client_ip::client_ip;
use super::http::{add_forwarded, strip_hop_by_hop, text, Body};
use super::Shared;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sockscope_tap::wire::{Closer, Direction};
use sockscope_tap::{ConnInfo, ConnTap, Mirror};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After one side closed, how long the other gets to finish the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    req.method() == Method::GET
        && has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, "websocket")
}

/// A header value as text: bytes that are not UTF-8 (obs-text) become U+FFFD rather than the
/// whole value being lost.
fn lossy(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

fn ws_config(shared: &Shared) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(shared.cfg.read_buffer)
        .max_message_size(Some(shared.cfg.max_message))
        .max_frame_size(Some(shared.cfg.max_message))
}

/// Headers the client sent that belong to this hop's handshake, not the upstream's.
const HANDSHAKE: [&str; 5] = [
    "host",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
];

pub async fn upgrade(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrade without Sec-WebSocket-Key",
        );
    };
    if req
        .headers()
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        let mut r = text(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is supported",
        );
        r.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return r;
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut up_req = match format!("ws://{}{}", shared.cfg.upstream, path).into_client_request() {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request target: {e}")),
    };
    let mut fwd = req.headers().clone();
    strip_hop_by_hop(&mut fwd);
    add_forwarded(&mut fwd, peer, &shared);
    for name in HANDSHAKE {
        fwd.remove(name);
    }
    for (k, v) in fwd.iter() {
        up_req.headers_mut().append(k, v.clone());
    }
    let config = ws_config(&shared);
    let tcp = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(&shared.cfg.upstream),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "sockscope proxy: upstream {} is unreachable ({e})",
                    shared.cfg.upstream
                ),
            )
        }
        Err(_) => {
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "sockscope proxy: upstream {} did not accept within {CONNECT_TIMEOUT:?}",
                    shared.cfg.upstream
                ),
            )
        }
    };
    let _ = tcp.set_nodelay(true);
    let (upstream, up_resp) =
        match tokio_tungstenite::client_async_with_config(up_req, tcp, Some(config)).await {
            Ok(x) => x,
            Err(WsError::Http(resp)) => {
                // The upstream refused the upgrade (401, 404, …): the client gets its answer.
                let (parts, body) = resp.into_parts();
                let mut r = Response::new(
                    Full::new(Bytes::from(body.unwrap_or_default()))
                        .map_err(|never| match never {})
                        .boxed(),
                );
                *r.status_mut() = parts.status;
                for (k, v) in parts.headers.iter() {
                    if k != header::CONNECTION
                        && k != header::TRANSFER_ENCODING
                        && k != header::CONTENT_LENGTH
                    {
                        r.headers_mut().append(k, v.clone());
                    }
                }
                return r;
            }
            Err(e) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    format!("sockscope proxy: upstream WebSocket handshake failed ({e})"),
                )
            }
        };
    let protocol = up_resp
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .cloned();
    let info = ConnInfo {
        ip: client_ip(peer.ip(), req.headers(), &shared.cfg.trusted),
        user_agent: req.headers().get(header::USER_AGENT).map(lossy),
        path,
        // The tap mirrors the headers on its allow-list and names the rest as withheld; the
        // handshake's own mechanics are neither.
        headers: if shared.tap.is_enabled() {
            req.headers()
                .iter()
                .filter(|(k, _)| !HANDSHAKE_HEADERS.contains(k))
                .map(|(k, v)| (k.as_str().to_string(), lossy(v)))
                .collect()
        } else {
            Vec::new()
        },
        subprotocol: protocol.as_ref().map(lossy),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let shutdown = shared.shutdown.clone();
    let tap = shared.tap.clone();
    // The relay holds `shared` so shutdown waits for it.
    let held = shared.clone();
    tokio::spawn(async move {
        let _held = held;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "client upgrade failed");
                return;
            }
        };
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let conn = Arc::new(tap.open(info));
        relay_both(client, upstream, conn, shutdown).await;
    });
    let mut resp = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header"),
    );
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    resp
}

/// Request headers that only carry the upgrade itself: not offered to the tap.
const HANDSHAKE_HEADERS: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
];

/// How one direction ended.
enum End {
    /// A close frame was read (and forwarded).
    Closed,
    /// The socket failed; the close code to send back on it, if any can still be sent.
    Failed(Option<u16>),
    /// Nothing more to read (TCP gone).
    Gone,
}

/// Which part finished first.
enum First {
    Client(End),
    Upstream(End),
    Shutdown,
}

/// The close code a protocol failure deserves (RFC 6455 7.4.1).
fn failure_code(e: &WsError) -> Option<u16> {
    match e {
        WsError::Protocol(_) => Some(1002),
        WsError::Utf8(_) => Some(1007),
        WsError::Capacity(_) => Some(1009),
        _ => None,
    }
}

fn close_msg(code: u16, reason: &str) -> Message {
    Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: code.into(),
        reason: reason.to_string().into(),
    }))
}

/// Relays both directions. When one side ends, its pending close reply is flushed, the other
/// side is told (close code passed through, or a failure code) and given [`CLOSE_GRACE`] to
/// finish its close handshake.
pub async fn relay_both<C, U>(
    client: C,
    upstream: U,
    conn: Arc<ConnTap>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    C: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    U: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_tx, mut u_rx) = upstream.split();
    let first = {
        let c2u = relay(&mut c_rx, &mut u_tx, &conn, Direction::ClientToServer);
        let u2c = relay(&mut u_rx, &mut c_tx, &conn, Direction::ServerToClient);
        tokio::pin!(c2u, u2c);
        tokio::select! {
            e = &mut c2u => First::Client(e),
            e = &mut u2c => First::Upstream(e),
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => First::Shutdown,
        }
    };
    match first {
        First::Client(end) => {
            finish(&mut c_tx, &end).await;
            if !matches!(end, End::Closed) {
                conn.close(None, Some("client connection failed"), Closer::Abort);
                let _ = tokio::time::timeout(
                    CLOSE_GRACE,
                    u_tx.send(close_msg(1001, "client went away")),
                )
                .await;
            }
            let _ = tokio::time::timeout(CLOSE_GRACE, drain(&mut u_rx)).await;
            let _ = tokio::time::timeout(CLOSE_GRACE, u_tx.close()).await;
        }
        First::Upstream(end) => {
            finish(&mut u_tx, &end).await;
            if !matches!(end, End::Closed) {
                conn.close(None, Some("upstream connection failed"), Closer::Abort);
                let _ = tokio::time::timeout(
                    CLOSE_GRACE,
                    c_tx.send(close_msg(1014, "upstream connection lost")),
                )
                .await;
            }
            let _ = tokio::time::timeout(CLOSE_GRACE, drain(&mut c_rx)).await;
            let _ = tokio::time::timeout(CLOSE_GRACE, c_tx.close()).await;
        }
        First::Shutdown => {
            conn.close(Some(1001), Some("proxy shutting down"), Closer::Proxy);
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                c_tx.send(close_msg(1001, "proxy shutting down")),
            )
            .await;
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                u_tx.send(close_msg(1001, "proxy shutting down")),
            )
            .await;
        }
    }
}

/// Completes the ended side: flushes its queued close reply, or fails it with a code.
async fn finish<W: Sink<Message, Error = WsError> + Unpin>(tx: &mut W, end: &End) {
    let op = async {
        match end {
            End::Closed => {
                let _ = tx.flush().await;
            }
            End::Failed(Some(code)) => {
                let _ = tx.send(close_msg(*code, "")).await;
            }
            End::Failed(None) | End::Gone => {}
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, op).await;
}

/// Reads a side until its close handshake completes or it goes away.
async fn drain<R: Stream<Item = Result<Message, WsError>> + Unpin>(rx: &mut R) {
    while let Some(Ok(_)) = rx.next().await {}
}

/// One direction. Pongs are not forwarded: each side's pings are answered by its own socket.
async fn relay<R, W>(rx: &mut R, tx: &mut W, conn: &ConnTap, dir: Direction) -> End
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
    W: Sink<Message, Error = WsError> + Unpin,
{
    let by = match dir {
        Direction::ClientToServer => Closer::Client,
        Direction::ServerToClient => Closer::Server,
    };
    while let Some(item) = rx.next().await {
        let msg = match item {
            Ok(m) => m,
            Err(e) => {
                conn.close(None, Some(&format!("{e}")), Closer::Abort);
                return End::Failed(failure_code(&e));
            }
        };
        if let Some((op, bytes)) = msg.parts() {
            conn.message(dir, op, bytes);
        }
        match msg {
            Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let reason = frame
                    .as_ref()
                    .map(|f| f.reason.to_string())
                    .filter(|r| !r.is_empty());
                conn.close(code, reason.as_deref(), by);
                let _ = tx.send(Message::Close(frame)).await;
                return End::Closed;
            }
            other => {
                if tx.send(other).await.is_err() {
                    // The other side is gone; its own relay reports how.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    conn.close(
        None,
        Some("connection ended without a close frame"),
        Closer::Abort,
    );
    End::Gone
}
