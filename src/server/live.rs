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
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

static NEXT_BROWSER: AtomicU64 = AtomicU64::new(1);

/// Least time between two view changes a browser's socket passes on to the aggregator (each
/// builds a snapshot); faster changes are coalesced: the latest wins.
const MIN_COMMAND_GAP: Duration = Duration::from_millis(100);

/// A browser's view changes, rate-limited: at most one per [`MIN_COMMAND_GAP`], later ones
/// held and merged (a new view supersedes a held scroll; a scroll updates a held view).
#[derive(Default)]
struct Coalescer {
    next_at: Option<Instant>,
    view: Option<ViewSpec>,
    window: Option<(u32, u32)>,
}

impl Coalescer {
    /// Takes a change; returns it at once when the gap has passed and nothing is held.
    fn push(&mut self, now: Instant, change: Change) -> Option<Change> {
        let free =
            self.next_at.is_none_or(|t| now >= t) && self.view.is_none() && self.window.is_none();
        if free {
            self.next_at = Some(now + MIN_COMMAND_GAP);
            return Some(change);
        }
        match change {
            Change::View(v) => {
                self.view = Some(v);
                self.window = None;
            }
            Change::Window(o, l) => match &mut self.view {
                Some(v) => {
                    if let Some(t) = v.table.as_mut() {
                        (t.offset, t.limit) = (o, l);
                    }
                }
                None => self.window = Some((o, l)),
            },
        }
        None
    }

    /// When held changes are due.
    fn due_at(&self) -> Option<Instant> {
        (self.view.is_some() || self.window.is_some())
            .then(|| self.next_at.unwrap_or_else(Instant::now))
    }

    /// The held change, merged into one, once due.
    fn take(&mut self, now: Instant) -> Option<Change> {
        let change = match (self.view.take(), self.window.take()) {
            (Some(v), _) => Change::View(v),
            (None, Some((o, l))) => Change::Window(o, l),
            (None, None) => return None,
        };
        self.next_at = Some(now + MIN_COMMAND_GAP);
        Some(change)
    }
}

/// A view change from a browser.
#[derive(Debug, PartialEq)]
enum Change {
    View(ViewSpec),
    Window(u32, u32),
}

impl Change {
    fn command(self, id: u64) -> Command {
        match self {
            Change::View(spec) => Command::View { id, spec },
            Change::Window(offset, limit) => Command::Window { id, offset, limit },
        }
    }
}

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
            let record = app.config.record.as_ref().map(|r| r.dir.clone());
            live_session(sink, stream, app.agg.clone(), queue, who, record).await;
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
    record: Option<std::path::PathBuf>,
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
    let mut held = Coalescer::default();
    // The last view asked for, and whether the browser looks at the past (live frames are
    // then not passed on).
    let mut view = ViewSpec::default();
    let mut past = false;
    loop {
        let due = held.due_at();
        tokio::select! {
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                if let Some(c) = held.take(Instant::now()) {
                    if agg.command(c.command(id)).await.is_err() {
                        break;
                    }
                }
            }
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                if past {
                    continue;
                }
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
                let change = match serde_json::from_str::<ClientMsg>(text.as_str()) {
                    Ok(ClientMsg::At { at_ms }) => {
                        past = at_ms.is_some();
                        let Some(at_ms) = at_ms else { continue };
                        let (dir, spec, role) = (record.clone(), view.clone(), who.role);
                        let frame = tokio::task::spawn_blocking(move || {
                            crate::server::past::past_frame(dir.as_deref(), at_ms, &spec, role)
                        })
                        .await
                        .unwrap_or_default();
                        let text = serde_json::to_string(&ServerMsg::Past(frame)).expect("serializes");
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Ok(ClientMsg::Subscribe(spec)) if !subscribed => {
                        subscribed = true;
                        view = spec.clone();
                        held.next_at = Some(Instant::now() + MIN_COMMAND_GAP);
                        let first = Command::Subscribe { id, tx: tx.clone(), spec: sanitize(spec), role: who.role };
                        if agg.command(first).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Ok(ClientMsg::Subscribe(spec)) => {
                        view = spec.clone();
                        Change::View(sanitize(spec))
                    }
                    Ok(ClientMsg::Window { offset, limit }) => Change::Window(offset, limit.min(MAX_WINDOW)),
                    Err(e) => {
                        let err = ServerMsg::Error { message: format!("could not read that message: {e}") };
                        let text = serde_json::to_string(&err).expect("serializes");
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let Some(now) = held.push(Instant::now(), change) else {
                    continue;
                };
                if agg.command(now.command(id)).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = agg.command(Command::Unsubscribe { id }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: u32) -> ViewSpec {
        ViewSpec {
            table: Some(crate::protocol::TableQuery {
                offset,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_burst_of_view_changes_becomes_one_per_gap_the_latest_winning() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        assert_eq!(
            c.push(t0, Change::View(view(0))),
            Some(Change::View(view(0)))
        );
        // A hundred changes inside the gap: held, merged.
        for i in 1..=100 {
            assert_eq!(c.push(t0, Change::View(view(i))), None);
        }
        assert_eq!(c.push(t0, Change::Window(500, 40)), None);
        assert_eq!(c.due_at(), Some(t0 + MIN_COMMAND_GAP));
        let mut want = view(500);
        want.table.as_mut().unwrap().limit = 40;
        assert_eq!(c.take(t0 + MIN_COMMAND_GAP), Some(Change::View(want)));
        assert_eq!(c.due_at(), None);
        // Scrolls alone merge into the last one.
        let t1 = t0 + MIN_COMMAND_GAP;
        assert_eq!(c.push(t1, Change::Window(1, 10)), None);
        assert_eq!(c.push(t1, Change::Window(2, 10)), None);
        assert_eq!(c.take(t1 + MIN_COMMAND_GAP), Some(Change::Window(2, 10)));
        // After a quiet gap a change passes at once.
        let t2 = t1 + MIN_COMMAND_GAP * 3;
        assert_eq!(
            c.push(t2, Change::Window(3, 10)),
            Some(Change::Window(3, 10))
        );
    }
}
