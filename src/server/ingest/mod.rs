//! Ingest: taps deliver batches over `GET /ingest` (WebSocket, JSON or MessagePack) or
//! `POST /ingest`. Every frame is decoded and validated here; only valid batches reach the
//! aggregator, and every rejection is answered with a clear error and counted.

mod post;
pub(crate) use post::{apply_batch, ingest_post};

use crate::protocol::Refusal;
use crate::server::aggregator::demand::Demands;
use crate::server::aggregator::{BatchReply, EventError, Input};
use crate::server::auth::TapCredential;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::record::segment::Entry;
use crate::server::record::Recorder;
use crate::server::{AppState, Slot};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use sockscope_wire::{decode_batch, CaptureMode, Demand, Encoding, Event, Limits, Reply};
use std::num::NonZeroU32;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// The per-tap events/s limiter, keyed by source id.
pub(crate) type TapRate = Option<Arc<governor::DefaultKeyedRateLimiter<Arc<str>>>>;

/// Charges a batch to its source's events/s budget. Over budget, the batch's message events
/// are dropped (opens, closes and host samples always pass, so the picture stays consistent)
/// and counted for the source; returns how many were dropped.
pub(crate) async fn charge(
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
    // Keys of sources that went quiet are dropped now and then, so the limiter stays small.
    if rl.len() > 1024 {
        rl.retain_recent();
    }
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
    Extension(credential): Extension<TapCredential>,
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
        let setup = SessionSetup {
            agg: app.agg.clone(),
            limits,
            max_frame: app.config.max_frame_bytes,
            rate: (app.tap_rate.clone(), app.config.max_tap_events_per_sec),
            credential: credential.0,
            recorder: app.recorder.clone(),
        };
        ingest_session(sink, stream, setup).await;
        drop(slot);
    })
}

/// Hands an accepted batch to the record: the frame as it arrived when given, else the events
/// encoded afresh (what is applied is what is recorded).
pub(crate) fn record(
    recorder: &Recorder,
    source: Option<Arc<str>>,
    frame: Option<(Encoding, Bytes)>,
    events: &[Event],
    bus_seq: Option<u64>,
) {
    if !recorder.is_on() {
        return;
    }
    let (encoding, frame) = frame.unwrap_or_else(|| {
        let bytes = sockscope_wire::encode_events(Encoding::MsgPack, events);
        (Encoding::MsgPack, Bytes::from(bytes))
    });
    recorder.record(Entry {
        bus_seq,
        arrival_us: sockscope_wire::now_us(),
        encoding,
        source,
        frame,
    });
}

/// What a tap session knows about itself.
struct Session {
    source: Option<Arc<str>>,
    batches: u64,
    /// The tap's hello says it captures on demand: it is told what to send.
    on_demand: bool,
    /// The demand it was last told.
    told: Option<Demand>,
}

impl Session {
    fn new(batches: u64) -> Self {
        Session {
            source: None,
            batches,
            on_demand: false,
            told: None,
        }
    }

    /// Checks the hello rules: the first event of a session is a hello, and a session speaks
    /// for one source only.
    fn bind(&mut self, events: &[Event]) -> Result<Option<Arc<str>>, (ErrorCode, String)> {
        let mut newly = None;
        for (i, ev) in events.iter().enumerate() {
            if let Event::Hello(h) = ev {
                self.on_demand = h.capture == Some(CaptureMode::OnDemand);
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
/// What a tap session works with besides its socket.
pub(crate) struct SessionSetup {
    pub agg: crate::server::aggregator::Aggregator,
    pub limits: Limits,
    pub max_frame: usize,
    /// The per-tap events/s limiter and its rate.
    pub rate: (TapRate, u32),
    /// What the tap proved at the door.
    pub credential: Option<u64>,
    pub recorder: Recorder,
}

pub(crate) async fn ingest_session<S, R, E>(mut sink: S, mut stream: R, setup: SessionSetup)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: SocketError,
{
    let SessionSetup {
        agg,
        limits,
        max_frame,
        rate: (rate, rate_limit),
        credential,
        recorder,
    } = setup;
    let mut session = Session::new(0);
    let mut demands = agg.demands();
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
            Ok(()) = demands.changed(), if session.on_demand => {
                if tell_demand(&mut sink, &mut session, &mut demands).await.is_err() {
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
        let mut dropped = 0;
        if let Some(source) = &session.source {
            dropped = charge(&agg, &rate, source, &mut events).await;
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
        // The frame as it came, unless the rate limit took events out of it.
        let frame = (dropped == 0).then_some((enc, bytes));
        record(&recorder, session.source.clone(), frame, &events, None);
        let input = Input::Batch {
            source: session.source.clone(),
            events,
            batch,
            opens_session: newly.is_some(),
            credential,
            reply: BatchReply::Report(err_tx.clone()),
        };
        if agg.send(input).await.is_err() {
            break;
        }
        if session.on_demand
            && tell_demand(&mut sink, &mut session, &mut demands)
                .await
                .is_err()
        {
            break;
        }
    }
    if let Some(source) = session.source {
        let _ = agg.send(Input::SessionEnded(source)).await;
    }
}

/// Tells an on-demand tap what to send one by one, if that changed since it was last told.
async fn tell_demand<S: Sink<Message> + Unpin>(
    sink: &mut S,
    session: &mut Session,
    demands: &mut watch::Receiver<Arc<Demands>>,
) -> Result<(), S::Error> {
    let Some(source) = &session.source else {
        return Ok(());
    };
    let d = demands.borrow_and_update().for_source(source);
    if session.told.as_ref() == Some(&d) {
        return Ok(());
    }
    let text = serde_json::to_string(&Reply::Demand(d.clone())).expect("demand serializes");
    sink.send(Message::Text(text.into())).await?;
    session.told = Some(d);
    Ok(())
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

#[cfg(test)]
mod tests;
