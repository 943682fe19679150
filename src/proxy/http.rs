//! Plain HTTP forwarding (SignalR negotiate, long polling, health checks) with hop-by-hop
//! headers removed and X-Forwarded-* added.

use super::Shared;
use crate::client_ip::forwarded_for;
use axum::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;

pub(super) type Body = BoxBody<Bytes, hyper::Error>;

pub(super) fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(msg.into() + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Removes hop-by-hop headers, including those the `Connection` header names. A message that
/// came with `Transfer-Encoding` loses `Content-Length` too: the two together are how requests
/// are smuggled past a proxy.
pub(super) fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(header::TRANSFER_ENCODING) {
        h.remove(header::CONTENT_LENGTH);
    }
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for n in HOP_BY_HOP.iter().map(|s| s.to_string()).chain(named) {
        h.remove(n.as_str());
    }
    h.remove(header::UPGRADE);
}

/// Removes sockscope's own session cookie from a request going upstream: when the observer
/// and the app share a host, the app never sees the observer's session.
pub(super) fn strip_observer_cookie(h: &mut HeaderMap) {
    // Only touched when it holds ours: other cookies pass byte for byte.
    let ours = h.get_all(header::COOKIE).iter().any(|v| {
        v.as_bytes()
            .windows(crate::server::SESSION_COOKIES[0].len())
            .any(|w| w == crate::server::SESSION_COOKIES[0].as_bytes())
    });
    if !ours {
        return;
    }
    let kept: Vec<String> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            !c.is_empty()
                && !crate::server::SESSION_COOKIES
                    .iter()
                    .any(|n| c.strip_prefix(n).is_some_and(|r| r.starts_with('=')))
        })
        .map(str::to_string)
        .collect();
    let had = h.contains_key(header::COOKIE);
    h.remove(header::COOKIE);
    if had && !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            h.insert(header::COOKIE, v);
        }
    }
}

/// Adds X-Forwarded-For / -Proto / -Host for the upstream.
pub(super) fn add_forwarded(h: &mut HeaderMap, peer: SocketAddr, shared: &Shared) {
    let xff = forwarded_for(peer.ip(), h, &shared.cfg.trusted);
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    if let Some(host) = h.get(header::HOST).cloned() {
        h.insert("x-forwarded-host", host);
    }
    strip_observer_cookie(h);
    // What the client says of itself goes no further: the upstream hears it from us.
    h.remove("forwarded");
    h.remove("x-real-ip");
    // The scheme the client used: https when it spoke TLS to us; otherwise what a trusted
    // proxy in front (which may have terminated TLS) says, or plain http.
    let trusted = crate::client_ip::is_trusted(peer.ip(), &shared.cfg.trusted);
    let ours = if shared.cfg.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let proto = h
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| trusted && ours == "http" && matches!(*p, "http" | "https"))
        .map(|p| HeaderValue::from_static(if p == "https" { "https" } else { "http" }))
        .unwrap_or(HeaderValue::from_static(ours));
    h.insert("x-forwarded-proto", proto);
}

pub(super) async fn forward(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
) -> Response<Body> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let scheme = if shared.cfg.upstream_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let uri: Uri = match format!("{scheme}://{}{}", shared.cfg.upstream, path).parse() {
        Ok(u) => u,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request target: {e}")),
    };
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    strip_hop_by_hop(h);
    add_forwarded(h, peer, shared);
    match shared.client.request(req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => {
            tracing::debug!(error = %e, "upstream request failed");
            text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "sockscope proxy: upstream {} is unreachable ({e})",
                    shared.cfg.upstream
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_observers_session_cookie_never_reaches_the_app() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("app=1; sockscope_session=abc; __Host-sockscope_session=def"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("other=2"));
        strip_observer_cookie(&mut h);
        assert_eq!(h.get(header::COOKIE).unwrap(), "app=1; other=2");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("only=1;x=2"));
        strip_observer_cookie(&mut h);
        assert_eq!(h.get(header::COOKIE).unwrap(), "only=1;x=2", "untouched");
    }

    #[test]
    fn transfer_encoding_takes_content_length_with_it() {
        let mut h = HeaderMap::new();
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.insert(header::CONNECTION, HeaderValue::from_static("x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        strip_hop_by_hop(&mut h);
        assert!(h.contains_key(header::CONTENT_LENGTH));
    }
}
