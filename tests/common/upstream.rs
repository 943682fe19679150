//! A real upstream app on 127.0.0.1:0 for proxy tests: a WebSocket echo at `/ws` (subprotocol
//! `chat.v1`; a text `close:<code>:<reason>` makes the server close) and `GET /headers`, which
//! answers with the request headers it received.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;

async fn echo(mut ws: WebSocket) {
    while let Some(Ok(m)) = ws.recv().await {
        match m {
            Message::Text(t) if t.as_str().starts_with("close:") => {
                let mut parts = t.as_str().splitn(3, ':').skip(1);
                let code: u16 = parts.next().unwrap().parse().unwrap();
                let reason = parts.next().unwrap_or("").to_string();
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
                // Wait for the client's close reply.
                while let Some(Ok(_)) = ws.recv().await {}
                return;
            }
            Message::Text(_) | Message::Binary(_) => {
                let sent = ws.send(m).await;
                if sent.is_err() {
                    return;
                }
            }
            Message::Close(_) => return,
            _ => {}
        }
    }
}

pub async fn start() -> SocketAddr {
    let app = Router::new()
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.protocols(["chat.v1"])
                    .max_message_size(64 << 20)
                    .max_frame_size(64 << 20)
                    .on_upgrade(echo)
            }),
        )
        .route(
            "/headers",
            get(|h: HeaderMap| async move {
                let m: std::collections::BTreeMap<String, String> = h
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                Json(m)
            }),
        )
        .route(
            "/denied",
            get(|| async { (axum::http::StatusCode::UNAUTHORIZED, "no entry") }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}
