//! Ingest: taps deliver batches over `GET /ingest` (WebSocket, JSON or MessagePack) or
//! `POST /ingest`. Every frame is decoded and validated here; only valid batches reach the
//! aggregator, and every rejection is answered with a clear error and counted.

use crate::protocol::Refusal;
use crate::server::aggregator::{BatchReply, EventError, Input};
use crate::server::error::{ApiError, ErrorCode};
use crate::server::{AppState, Slot};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::json;
use sockscope_wire::{decode_batch, Encoding, Event, Limits, Reply};
use std::num::NonZeroU32;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The per-tap events/s limiter, keyed by source id.
pub(crate) type TapRate = Option<Arc<governor::DefaultKeyedRateLimiter<Arc<str>>>>;

/// Charges a batch to its source's events/s budget. Over budget, the batch's message events
/// are dropped (opens, closes and host samples always pass, so the picture stays consistent)
/// and counted for the source; returns how many were dropped.
async fn charge(
    agg: &crate::server::aggregator::Aggregator,
    rate: &TapRate,
    source: &Arc<str>,
    events: &mut Vec<Event>,
) -> u64 {
    let dropped = over_rate(rate, source, events);
    if dropped > 0 {
        let input = Input::RateLimited {
            source: source.clone(),
            events: dropped,
        };
        let _ = agg.send(input).await;
    }
    dropped
}

fn over_rate(rate: &TapRate, source: &Arc<str>, events: &mut Vec<Event>) -> u64 {
    let (Some(rl), Some(n)) = (
        rate,
        NonZeroU32::new(events.len().min(u32::MAX as usize) as u32),
    ) else {
        return 0;
    };
    if matches!(rl.check_key_n(source, n), Ok(Ok(()))) {
        return 0;
    }
    let before = events.len();
    events.retain(|e| !matches!(e, Event::Message(_)));
    (before - events.len()) as u64
}

fn rate_message(dropped: u64, limit: u32) -> String {
    format!(
        "{dropped} message events dropped: this tap sends more than {limit} events/s \
         (the observer's --max-tap-events-per-sec)"
    )
}

/// Read buffer per tap socket; tungstenite's 128 KiB default is far more than batches need.
const READ_BUFFER: usize = 8 * 1024;

/// `GET /ingest`: the WebSocket a tap streams batches on.
pub(crate) async fn ingest_ws(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(offered) = headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        let offered = offered.to_str().unwrap_or("");
        if !offered
            .split(',')
            .any(|p| Encoding::from_subprotocol(p.trim()).is_some())
        {
            return ApiError::new(
                ErrorCode::UnsupportedSubprotocol,
                format!(
                    "offered subprotocols {offered:?} are not spoken here; use {} or {}",
                    sockscope_wire::SUBPROTOCOL_MSGPACK,
                    sockscope_wire::SUBPROTOCOL_JSON
                ),
            )
            .into_response();
        }
    }
    let Some(slot) = Slot::take(&app.taps, app.config.max_taps) else {
        let _ = app.agg.send_refused(Refusal::Taps).await;
        return ApiError::new(
            ErrorCode::TooManyTaps,
            format!(
                "this observer already has {} tap sessions (--max-taps)",
                app.config.max_taps
            ),
        )
        .into_response();
    };
    let limits = app.config.wire.clone();
    ws.protocols([
        sockscope_wire::SUBPROTOCOL_MSGPACK,
        sockscope_wire::SUBPROTOCOL_JSON,
    ])
    .max_message_size(app.config.max_frame_bytes)
    .max_frame_size(app.config.max_frame_bytes)
    .read_buffer_size(READ_BUFFER)
    .on_upgrade(move |socket| async move {
        let (sink, stream) = socket.split();
        ingest_session(
            sink,
            stream,
            app.agg.clone(),
            limits,
            app.config.max_frame_bytes,
            (app.tap_rate.clone(), app.config.max_tap_events_per_sec),
        )
        .await;
        drop(slot);
    })
}

/// What a tap session knows about itself.
struct Session {
    source: Option<Arc<str>>,
    batches: u64,
}

impl Session {
    /// Checks the hello rules: the first event of a session is a hello, and a session speaks
    /// for one source only.
    fn bind(&mut self, events: &[Event]) -> Result<Option<Arc<str>>, (ErrorCode, String)> {
        let mut newly = None;
        for (i, ev) in events.iter().enumerate() {
            if let Event::Hello(h) = ev {
                match &self.source {
                    Some(s) if **s != *h.source => {
                        return Err((
                            ErrorCode::SourceMismatch,
                            format!(
                                "events[{i}]: this session speaks for source {s:?}; open another connection for {:?}",
                                h.source
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        let s: Arc<str> = h.source.as_str().into();
                        self.source = Some(s.clone());
                        newly = Some(s);
                    }
                }
            } else if self.source.is_none() {
                return Err((
                    ErrorCode::NoHello,
                    format!("events[{i}]: the first event of a tap session must be a hello"),
                ));
            }
        }
        Ok(newly)
    }
}

fn reply_text(code: ErrorCode, message: String, batch: u64, index: Option<usize>) -> Message {
    let r = Reply::Error {
        code: code.as_str().into(),
        message,
        batch,
        index,
    };
    Message::Text(serde_json::to_string(&r).expect("reply serializes").into())
}

/// What went wrong on a tap's socket, by kind: it decides the close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketFault {
    /// A text frame that is not UTF-8: 1007.
    NotUtf8,
    /// A frame or message over the size limit: 1009.
    TooBig,
    /// Any other protocol violation: 1002.
    Protocol,
}

/// An error of the socket a tap session reads from.
pub(crate) trait SocketError: std::fmt::Display {
    fn fault(&self) -> SocketFault;
}

impl SocketError for axum::Error {
    fn fault(&self) -> SocketFault {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match std::error::Error::source(self).and_then(|e| e.downcast_ref::<WsError>()) {
            Some(WsError::Utf8(_)) => SocketFault::NotUtf8,
            Some(WsError::Capacity(_)) => SocketFault::TooBig,
            _ => SocketFault::Protocol,
        }
    }
}

/// Channel-driven sessions (tests) fail as protocol errors.
impl SocketError for String {
    fn fault(&self) -> SocketFault {
        SocketFault::Protocol
    }
}

/// The close frame for a frame the socket refused: 1007 for a text frame that is not UTF-8,
/// 1009 for one over the size limit, 1002 for any other protocol violation.
fn socket_error_close(e: &impl SocketError, max_frame: usize) -> CloseFrame {
    let (code, reason) = match e.fault() {
        SocketFault::NotUtf8 => (
            1007,
            format!("frame rejected: a text frame must be UTF-8 JSON ({e})"),
        ),
        SocketFault::TooBig => (
            1009,
            format!("frame rejected: {e}; the limit is {max_frame} bytes"),
        ),
        SocketFault::Protocol => (1002, format!("frame rejected: {e}")),
    };
    CloseFrame {
        code,
        reason: sockscope_wire::clip(&reason, 123).to_string().into(),
    }
}

/// One tap connection. Generic over the socket halves so it can be driven by channels in tests.
pub(crate) async fn ingest_session<S, R, E>(
    mut sink: S,
    mut stream: R,
    agg: crate::server::aggregator::Aggregator,
    limits: Limits,
    max_frame: usize,
    (rate, rate_limit): (TapRate, u32),
) where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: SocketError,
{
    let mut session = Session {
        source: None,
        batches: 0,
    };
    let (err_tx, mut err_rx) = mpsc::channel::<(u64, Vec<EventError>)>(16);
    loop {
        let frame = tokio::select! {
            Some((batch, errs)) = err_rx.recv() => {
                if send_event_errors(&mut sink, batch, &errs).await.is_err() {
                    break;
                }
                if let Some(code) = errs[0].code.ends_tap_session() {
                    // Never went up: no session end to report.
                    session.source = None;
                    // The tap reconnects with backoff and says hello again: room may free up.
                    let close = CloseFrame {
                        code,
                        reason: "source refused: the observer's --max-sources is reached".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    break;
                }
                continue;
            }
            frame = stream.next() => frame,
        };
        let (enc, bytes) = match frame {
            None | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Text(t))) => (Encoding::Json, Bytes::from(t)),
            Some(Ok(Message::Binary(b))) => (Encoding::MsgPack, b),
            Some(Ok(_)) => continue, // ping / pong
            Some(Err(e)) => {
                let _ = agg.send(Input::Rejected).await;
                tracing::debug!(error = %e, "tap socket error");
                let _ = sink
                    .send(Message::Close(Some(socket_error_close(&e, max_frame))))
                    .await;
                break;
            }
        };
        session.batches += 1;
        let batch = session.batches;
        let events = match decode_batch(enc, &bytes, &limits) {
            Ok(b) => b.events,
            Err(e) => {
                let _ = agg.send(Input::Rejected).await;
                if sink
                    .send(reply_text(
                        ErrorCode::of_wire(&e),
                        e.to_string(),
                        batch,
                        e.index(),
                    ))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let mut events = events;
        let newly = match session.bind(&events) {
            Ok(n) => n,
            Err((code, message)) => {
                let _ = agg.send(Input::Rejected).await;
                if sink
                    .send(reply_text(code, message, batch, None))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        if let Some(source) = &session.source {
            let dropped = charge(&agg, &rate, source, &mut events).await;
            if dropped > 0 {
                let reply = reply_text(
                    ErrorCode::RateLimited,
                    rate_message(dropped, rate_limit),
                    batch,
                    None,
                );
                if sink.send(reply).await.is_err() {
                    break;
                }
            }
        }
        let input = Input::Batch {
            source: session.source.clone(),
            events,
            batch,
            opens_session: newly.is_some(),
            reply: BatchReply::Report(err_tx.clone()),
        };
        if agg.send(input).await.is_err() {
            break;
        }
    }
    if let Some(source) = session.source {
        let _ = agg.send(Input::SessionEnded(source)).await;
    }
}

/// Reports events of an applied batch that could not be applied: one reply per batch.
async fn send_event_errors<S: Sink<Message> + Unpin>(
    sink: &mut S,
    batch: u64,
    errs: &[EventError],
) -> Result<(), S::Error> {
    let first = &errs[0];
    let more = if errs.len() > 1 {
        format!(" ({} events of this batch were not applied)", errs.len())
    } else {
        String::new()
    };
    let message = format!("events[{}]: {}{more}", first.index, first.message);
    sink.send(reply_text(first.code, message, batch, Some(first.index)))
        .await
}

/// `POST /ingest`: one batch, which must start with a hello. Answers once it is applied.
pub(crate) async fn ingest_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let _ = app.agg.send(Input::Rejected).await;
            return ApiError::new(
                ErrorCode::Body,
                format!(
                    "{}; bodies are limited to {} bytes",
                    e.body_text(),
                    app.config.max_frame_bytes
                ),
            )
            .with_status(e.status())
            .into_response();
        }
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let enc = if ctype.starts_with("application/json") {
        Encoding::Json
    } else if ctype.starts_with(sockscope_wire::CONTENT_TYPE_MSGPACK)
        || ctype.starts_with("application/msgpack")
    {
        Encoding::MsgPack
    } else {
        let _ = app.agg.send(Input::Rejected).await;
        return ApiError::new(
            ErrorCode::ContentType,
            format!(
                "content type {ctype:?} is not accepted; send application/json or {}",
                sockscope_wire::CONTENT_TYPE_MSGPACK
            ),
        )
        .into_response();
    };
    let events = match decode_batch(enc, &body, &app.config.wire) {
        Ok(b) => b.events,
        Err(e) => {
            let _ = app.agg.send(Input::Rejected).await;
            return ApiError::wire(&e).into_response();
        }
    };
    apply_batch(&app, events).await
}

/// Applies one self-contained batch (it must start with a hello) and answers once applied:
/// 200 with the count, or 422 listing the events that could not be applied (and those the
/// per-tap rate limit dropped).
pub(crate) async fn apply_batch(app: &AppState, mut events: Vec<Event>) -> Response {
    let mut session = Session {
        source: None,
        batches: 1,
    };
    if let Err((code, message)) = session.bind(&events) {
        let _ = app.agg.send(Input::Rejected).await;
        return ApiError::new(code, message).into_response();
    }
    let mut rate_limited = 0;
    if let Some(source) = &session.source {
        rate_limited = charge(&app.agg, &app.tap_rate, source, &mut events).await;
    }
    let total = events.len();
    let (tx, rx) = oneshot::channel();
    let input = Input::Batch {
        source: session.source,
        events,
        batch: 1,
        opens_session: false,
        reply: BatchReply::Wait(tx),
    };
    let errs = match app.agg.send(input).await {
        Ok(()) => rx.await.unwrap_or_default(),
        Err(_) => return ApiError::stopped().into_response(),
    };
    let status = if errs.is_empty() && rate_limited == 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut errors: Vec<_> = errs
        .iter()
        .map(|e| json!({ "code": e.code, "index": e.index, "message": e.message }))
        .collect();
    if rate_limited > 0 {
        errors.push(json!({
            "code": ErrorCode::RateLimited,
            "message": rate_message(rate_limited, app.config.max_tap_events_per_sec),
        }));
    }
    (
        status,
        Json(json!({ "accepted": total - errs.len(), "errors": errors })),
    )
        .into_response()
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
