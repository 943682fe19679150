//! WebSocket upgrades: the client's handshake goes to the upstream unchanged (extensions and
//! subprotocols are negotiated end to end); a refusal or an unreachable upstream reaches the
//! client as an HTTP answer, not a hang. After the 101 the bytes are relayed as they are
//! ([`super::relay`]) and read in passing for the tap.

use super::deflate;
use super::http::{add_forwarded, strip_hop_by_hop, text, Body};
use super::relay::{self, Idle, Setup};
use super::tls::Stream;
use super::Shared;
use crate::client_ip::client_ip;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use sockscope_tap::ConnInfo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest refusal body from the upstream passed on to the client.
const MAX_REFUSAL_BODY: usize = 64 << 10;

pub(super) fn is_upgrade(req: &Request<Incoming>) -> bool {
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

fn bad_gateway(status: StatusCode, msg: String) -> Response<Body> {
    text(status, format!("sockscope proxy: {msg}"))
}

pub(super) async fn upgrade(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    place: super::Place,
) -> Response<Body> {
    if req.headers().get(header::SEC_WEBSOCKET_KEY).is_none() {
        return text(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrade without Sec-WebSocket-Key",
        );
    }
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        let mut r = text(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is supported",
        );
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    // The client's handshake as it is (key, version, extensions, subprotocols), minus what
    // belongs to this hop, plus X-Forwarded-*.
    let mut fwd = req.headers().clone();
    strip_hop_by_hop(&mut fwd);
    add_forwarded(&mut fwd, peer, &shared);
    let upstream = &shared.cfg.upstream;
    let mut up_req = Request::new(Empty::<Bytes>::new());
    *up_req.uri_mut() = match path.parse() {
        Ok(u) => u,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request target: {e}")),
    };
    *up_req.headers_mut() = fwd;
    let h = up_req.headers_mut();
    h.insert(
        header::HOST,
        HeaderValue::from_str(upstream).expect("validated host:port"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return bad_gateway(
                StatusCode::BAD_GATEWAY,
                format!("upstream {upstream} is unreachable ({e})"),
            )
        }
        Err(_) => {
            return bad_gateway(
                StatusCode::GATEWAY_TIMEOUT,
                format!("upstream {upstream} did not accept within {CONNECT_TIMEOUT:?}"),
            )
        }
    };
    let _ = tcp.set_nodelay(true);
    let tls = shared.cfg.upstream_tls.clone();
    let handshake = async {
        let io = match &tls {
            None => Stream::Tcp(tcp),
            Some(tls) => match tls.connect(tcp).await {
                Ok(s) => Stream::Client(Box::new(s)),
                Err(e) => return Err(format!("TLS handshake with the upstream failed ({e})")),
            },
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("upstream WebSocket handshake failed ({e})"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream handshake connection ended");
            }
        });
        sender
            .send_request(up_req)
            .await
            .map_err(|e| format!("upstream WebSocket handshake failed ({e})"))
    };
    let up_resp = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return bad_gateway(StatusCode::BAD_GATEWAY, e),
        Err(_) => {
            return bad_gateway(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "upstream {upstream} did not answer the handshake within {CONNECT_TIMEOUT:?}"
                ),
            )
        }
    };
    let mut headers = up_resp.headers().clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    if up_resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The upstream refused the upgrade (401, 404, …): the client gets its answer.
        let status = up_resp.status();
        let body = Limited::new(up_resp.into_body(), MAX_REFUSAL_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut r = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        return r;
    }
    let accepted = |name| up_resp.headers().get(name).cloned();
    let protocol = accepted(header::SEC_WEBSOCKET_PROTOCOL);
    let deflate = deflate::negotiated(
        accepted(header::SEC_WEBSOCKET_EXTENSIONS)
            .as_ref()
            .and_then(|v| v.to_str().ok()),
    );
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
    let client_side = hyper::upgrade::on(&mut req);
    let upstream_side = hyper::upgrade::on(up_resp);
    let shutdown = shared.shutdown.clone();
    let (read_size, max_message) = (shared.cfg.read_buffer, shared.cfg.max_message as u64);
    let idle = shared.cfg.ws_idle_timeout;
    // The relay holds `shared` so shutdown waits for it, and the connection's place under
    // --max-connections for as long as the WebSocket lives.
    let held = shared.clone();
    let place = place.lock().ok().and_then(|mut p| p.take());
    tokio::spawn(async move {
        let _place = place;
        let tap = held.tap.clone();
        let (client, upstream) = match (client_side.await, upstream_side.await) {
            (Ok(c), Ok(u)) => (c, u),
            (c, u) => {
                tracing::debug!(client = ?c.err(), upstream = ?u.err(), "upgrade failed");
                return;
            }
        };
        let Some((client, client_early)) = client_stream(client) else {
            tracing::warn!("the upgraded client connection is of an unknown kind: not relayed");
            return;
        };
        let hyper::upgrade::Parts { io, read_buf, .. } =
            match upstream.downcast::<TokioIo<Stream>>() {
                Ok(u) => u,
                Err(_) => {
                    tracing::warn!(
                        "the upgraded upstream connection is of an unknown kind: not relayed"
                    );
                    return;
                }
            };
        // Only the sockets and a copy of the early bytes go on: the rest of the HTTP layer's
        // state, its read buffer included, is dropped here. (Copying out of `read_buf` and
        // keeping it would hold the whole 8 KiB buffer for the life of the connection.)
        let upstream_early = read_buf.to_vec();
        drop(read_buf);
        let setup = Setup {
            client_early,
            upstream_early,
            deflate,
            read_size,
            max_message,
            idle: Idle::new(idle),
        };
        let upstream = io.into_inner();
        let conn = tap.open(info);
        relay::run(client, upstream, setup, &conn, shutdown).await;
        drop(held);
    });
    let mut resp = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *resp.headers_mut() = headers;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    resp
}

/// The client's socket out of the upgrade (plain or TLS), and a copy of the bytes the HTTP
/// layer read past the handshake (usually none): its `Bytes` would keep the whole read buffer
/// alive for the life of the connection (8 KiB, measured).
fn client_stream(up: hyper::upgrade::Upgraded) -> Option<(Stream, Vec<u8>)> {
    let up = match up.downcast::<TokioIo<TcpStream>>() {
        Ok(p) => return Some((Stream::Tcp(p.io.into_inner()), p.read_buf.to_vec())),
        Err(up) => up,
    };
    match up.downcast::<TokioIo<tokio_rustls::server::TlsStream<TcpStream>>>() {
        Ok(p) => Some((
            Stream::Server(Box::new(p.io.into_inner())),
            p.read_buf.to_vec(),
        )),
        Err(_) => None,
    }
}

/// Request headers that only carry the upgrade itself: not offered to the tap.
const HANDSHAKE_HEADERS: [header::HeaderName; 4] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
];
