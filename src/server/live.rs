//! `GET /live`: the dashboard's WebSocket. Checks Origin, registers the browser (with its
//! role) with the hub and forwards its frames; the browser's messages change what it is sent.

use crate::protocol::{ClientMsg, Refusal, ServerMsg, ViewSpec, MAX_WINDOW};
use crate::server::aggregator::{Aggregator, Command};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::{AppState, Slot};
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

static NEXT_BROWSER: AtomicU64 = AtomicU64::new(1);

/// Largest message a browser may send on `/live`.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// True when the request's `Origin` (if any) names the host it was sent to.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true; // not a browser
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

pub(crate) async fn live_ws(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        let _ = app.agg.send_refused(Refusal::Origin).await;
        return ApiError::new(
            ErrorCode::Origin,
            "cross-origin /live connections are refused: open the dashboard from this observer's own address",
        )
        .into_response();
    }
    let Some(slot) = Slot::take(&app.browsers, app.config.max_browsers) else {
        let _ = app.agg.send_refused(Refusal::Browsers).await;
        return ApiError::new(
            ErrorCode::TooManyBrowsers,
            format!(
                "this observer already serves {} browsers (--max-browsers); close another tab or raise the limit",
                app.config.max_browsers
            ),
        )
        .into_response();
    };
    let queue = app.config.agg.browser_queue;
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(4096)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            live_session(sink, stream, app.agg.clone(), queue, who).await;
            drop(slot);
        })
}

/// Clamps what a browser may ask for.
fn sanitize(mut spec: ViewSpec) -> ViewSpec {
    if let Some(t) = &mut spec.table {
        t.limit = t.limit.min(MAX_WINDOW);
    }
    if let Some(t) = &mut spec.trace {
        t.limit = t.limit.min(MAX_WINDOW);
    }
    spec
}

/// One browser. Generic over the socket halves so tests can drive it with channels.
pub(crate) async fn live_session<S, R, E>(
    mut sink: S,
    mut stream: R,
    agg: Aggregator,
    queue: usize,
    who: Principal,
) where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let id = NEXT_BROWSER.fetch_add(1, Ordering::Relaxed);
    let welcome = ServerMsg::Welcome {
        role: who.role,
        login: who.login,
    };
    let text = serde_json::to_string(&welcome).expect("serializes");
    if sink.send(Message::Text(text.into())).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<String>(queue);
    let mut subscribed = false;
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                if sink.send(Message::Text(frame.into())).await.is_err() {
                    break;
                }
            }
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let input = match serde_json::from_str::<ClientMsg>(text.as_str()) {
                    Ok(ClientMsg::Subscribe(spec)) if !subscribed => {
                        subscribed = true;
                        Command::Subscribe { id, tx: tx.clone(), spec: sanitize(spec), role: who.role }
                    }
                    Ok(ClientMsg::Subscribe(spec)) => Command::View { id, spec: sanitize(spec) },
                    Ok(ClientMsg::Window { offset, limit }) => Command::Window { id, offset, limit: limit.min(MAX_WINDOW) },
                    Err(e) => {
                        let err = ServerMsg::Error { message: format!("could not read that message: {e}") };
                        let text = serde_json::to_string(&err).expect("serializes");
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                if agg.command(input).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = agg.command(Command::Unsubscribe { id }).await;
}
