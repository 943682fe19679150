//! A tiny axum WebSocket echo gateway with the tap built in.
//!
//! ```sh
//! sockscope serve &                                   # the observer on 127.0.0.1:3000
//! cargo run -p sockscope-tap --features axum --example gateway
//! websocat ws://127.0.0.1:4000/echo                   # type lines; watch http://127.0.0.1:3000
//! ```

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use sockscope_tap::{ConnInfo, Side, Tap, TapConfig, Tapped};
use std::net::SocketAddr;

async fn echo(socket: WebSocket, tap: Tap, info: ConnInfo) {
    // Everything read and written through `ws` is mirrored; the close (or an abort, if this
    // task ends early) is recorded too.
    let mut ws = Tapped::new(socket, tap.open(info), Side::Client);
    while let Some(Ok(msg)) = ws.next().await {
        if matches!(msg, Message::Close(_)) {
            break;
        }
        let is_data = matches!(msg, Message::Text(_) | Message::Binary(_));
        if is_data && ws.send(msg).await.is_err() {
            break;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let observer =
        std::env::var("SOCKSCOPE_OBSERVER").unwrap_or_else(|_| "ws://127.0.0.1:3000/ingest".into());
    let mut cfg = TapConfig::new(observer, "example-gateway");
    cfg.kind = sockscope_tap::wire::SourceKind::Gateway;
    let tap = Tap::start(cfg)?;
    let app = Router::new()
        .route(
            "/echo",
            get(
                |ws: WebSocketUpgrade,
                 State(tap): State<Tap>,
                 ConnectInfo(peer): ConnectInfo<SocketAddr>,
                 h: HeaderMap| async move {
                    let mut info = ConnInfo::new(peer.ip(), "/echo");
                    info.user_agent = h
                        .get("user-agent")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    ws.read_buffer_size(4096)
                        .on_upgrade(move |s| echo(s, tap, info))
                },
            ),
        )
        .with_state(tap);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
    println!("echo gateway on ws://127.0.0.1:4000/echo, tapped");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
