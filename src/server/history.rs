//! `/api/history/*`: questions about the past, answered from the record rather than from
//! memory, as far back as it keeps. Viewers see what they see live: no payloads, no close
//! reasons, query values hidden.

use crate::protocol::close_code::CloseClass;
use crate::protocol::{HistoryConn, HistoryEvent, Role};
use crate::server::api::{params, QueryResult};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::history_export as export;
use crate::server::record::history::{self, ConnFilter, Found};
use crate::server::scrub;
use crate::server::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

/// Most connections one history query returns.
pub(crate) const MAX_HISTORY_LIMIT: usize = 1000;
/// Most connections in one HAR download (each with up to its last 10,000 events).
pub(crate) const MAX_HAR_CONNS: usize = 100;

fn record_dir(app: &AppState) -> Result<PathBuf, ApiError> {
    app.config
        .record
        .as_ref()
        .map(|r| r.dir.clone())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                "this observer keeps no record (--no-record): history reaches back only as far as \
             /api/connections and /api/trace hold in memory",
            )
        })
}

#[derive(Deserialize)]
pub(crate) struct ConnParams {
    /// Time range, ms since the epoch.
    from: Option<u64>,
    to: Option<u64>,
    /// open | closed | all (default all).
    state: Option<String>,
    source: Option<String>,
    code: Option<u16>,
    /// A close class: normal, going_away, abnormal, protocol, policy, too_big, server_error,
    /// application, other.
    class: Option<String>,
    q: Option<String>,
    /// An address or a CIDR prefix (`10.1.0.0/16`, `2001:db8::/32`).
    ip: Option<String>,
    limit: Option<usize>,
    /// json (default), ndjson, csv or har.
    format: Option<String>,
}

/// `GET /api/history/connections`.
pub(crate) async fn connections(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryResult<ConnParams>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let dir = record_dir(&app)?;
    let format = p.format.clone();
    if let Some(f) = format
        .as_deref()
        .filter(|f| !matches!(*f, "json" | "ndjson" | "csv" | "har"))
    {
        return Err(ApiError::bad(format!(
            "format {f:?} is not json, ndjson, csv or har"
        )));
    }
    let har = format.as_deref() == Some("har");
    let max = if har {
        MAX_HAR_CONNS
    } else {
        MAX_HISTORY_LIMIT
    };
    let limit = p.limit.unwrap_or(100.min(max));
    if limit == 0 || limit > max {
        return Err(ApiError::bad(format!(
            "limit must be between 1 and {max}{}",
            if har {
                " for a HAR (each connection carries its messages)"
            } else {
                ""
            }
        )));
    }
    let ip = p.ip.as_deref().map(parse_prefix).transpose()?;
    if let (Some(f), Some(t)) = (p.from, p.to) {
        if f > t {
            return Err(ApiError::bad(format!("from ({f}) is after to ({t})")));
        }
    }
    let closed = match p.state.as_deref() {
        None | Some("all") => None,
        Some("closed") => Some(true),
        Some("open") => Some(false),
        Some(s) => {
            return Err(ApiError::bad(format!(
                "state {s:?} is not open, closed or all"
            )))
        }
    };
    let class = match p.class.as_deref() {
        None => None,
        Some(c) => Some(
            CloseClass::ALL
                .into_iter()
                .find(|k| k.label() == c)
                .ok_or_else(|| {
                    let names: Vec<&str> = CloseClass::ALL.iter().map(|k| k.label()).collect();
                    ApiError::bad(format!("class {c:?} is not one of {}", names.join(", ")))
                })?,
        ),
    };
    if p.q.is_some() && !who.role.sees_payloads() {
        // The text search covers paths with their query values, which viewers do not see.
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "searching history text needs the inspector role; filter by time, source, state, \
             code or class instead",
        ));
    }
    let filter = ConnFilter {
        from_ms: p.from,
        to_ms: p.to,
        closed,
        source: p.source,
        code: p.code,
        class,
        q: p.q.map(|q| q.to_lowercase()),
        ip,
        limit,
        until_ms: None,
    };
    if har {
        let role = who.role;
        let body = tokio::task::spawn_blocking(move || {
            let found = history::connections(&dir, &filter)?;
            let mut entries = Vec::new();
            for c in found.items {
                let events = history::events(&dir, &c.source, c.conn, Some(c.opened_ms))?;
                entries.push(crate::server::export::har_entry(&detail_of(
                    &c,
                    1,
                    events.items,
                    None,
                    role,
                )));
            }
            Ok::<_, std::io::Error>(export::har_log(entries))
        })
        .await
        .map_err(|_| ApiError::stopped())?
        .map_err(unreadable)?;
        return Ok(export::download(
            body.to_string(),
            "application/json",
            "history.har",
        ));
    }
    let mut found = scan(move || history::connections(&dir, &filter)).await?;
    let items: Vec<HistoryConn> = std::mem::take(&mut found.items)
        .into_iter()
        .map(|c| scrub::history_conn(who.role, c))
        .collect();
    match format.as_deref() {
        Some("ndjson") => return Ok(export::ndjson(&items, "history.ndjson")),
        Some("csv") => return Ok(export::csv(&items)),
        _ => {}
    }
    Ok(found_json(&items, &found))
}

#[derive(Deserialize)]
pub(crate) struct EventParams {
    source: String,
    conn: u64,
    /// Which life of a reused id (its open time, ms); the last one without it.
    opened_ms: Option<u64>,
    /// json (default), ndjson or har.
    format: Option<String>,
}

/// `GET /api/history/events?source=S&conn=N[&opened_ms=T]`: one connection's whole life.
pub(crate) async fn events(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryResult<EventParams>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let dir = record_dir(&app)?;
    let format = p.format.clone();
    if let Some(f) = format
        .as_deref()
        .filter(|f| !matches!(*f, "json" | "ndjson" | "har"))
    {
        return Err(ApiError::bad(format!(
            "format {f:?} is not json, ndjson or har"
        )));
    }
    if format.as_deref() == Some("har") {
        let role = who.role;
        let body = tokio::task::spawn_blocking(move || {
            let found = history::events(&dir, &p.source, p.conn, p.opened_ms)?;
            let mut entries = Vec::new();
            if let Some(c) = summary(&p.source, p.conn, &found.items) {
                entries.push(crate::server::export::har_entry(&detail_of(
                    &c,
                    1,
                    found.items,
                    None,
                    role,
                )));
            }
            Ok::<_, std::io::Error>(export::har_log(entries))
        })
        .await
        .map_err(|_| ApiError::stopped())?
        .map_err(unreadable)?;
        return Ok(export::download(
            body.to_string(),
            "application/json",
            "connection.har",
        ));
    }
    let mut found = scan(move || history::events(&dir, &p.source, p.conn, p.opened_ms)).await?;
    let items: Vec<HistoryEvent> = std::mem::take(&mut found.items)
        .into_iter()
        .map(|e| scrub::history_event(who.role, e))
        .collect();
    if format.as_deref() == Some("ndjson") {
        return Ok(export::ndjson(&items, "connection.ndjson"));
    }
    Ok(found_json(&items, &found))
}

/// Runs a scan of the record on a blocking thread (it reads files).
async fn scan<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<Found<T>> + Send + 'static,
) -> Result<Found<T>, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::stopped())?
        .map_err(unreadable)
}

fn unreadable(e: std::io::Error) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("cannot read the record: {e}"))
}

/// One connection's history row, from its events (they begin with its open).
fn summary(source: &str, conn: u64, events: &[HistoryEvent]) -> Option<HistoryConn> {
    let Some(HistoryEvent::Open {
        ts_ms,
        ip,
        user_agent,
        path,
    }) = events.first()
    else {
        return None;
    };
    let mut c = HistoryConn {
        source: source.to_string(),
        conn,
        ip: ip.clone(),
        user_agent: user_agent.clone().unwrap_or_default(),
        path: path.clone(),
        opened_ms: *ts_ms,
        ..HistoryConn::default()
    };
    for e in events {
        match e {
            HistoryEvent::Message {
                dir, opcode, size, ..
            } if !opcode.is_control() => match dir {
                crate::protocol::Direction::ClientToServer => {
                    c.msgs_in += 1;
                    c.bytes_in += size;
                }
                crate::protocol::Direction::ServerToClient => {
                    c.msgs_out += 1;
                    c.bytes_out += size;
                }
            },
            HistoryEvent::Close {
                ts_ms,
                code,
                reason,
                by,
            } => {
                c.closed_ms = Some(*ts_ms);
                c.close_code = *code;
                c.close_reason = reason.clone();
                c.closed_by = Some(*by);
            }
            _ => {}
        }
    }
    Some(c)
}

/// An `ip` filter: one address, or a CIDR prefix.
fn parse_prefix(s: &str) -> Result<ipnet::IpNet, ApiError> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            ApiError::bad(format!(
                "ip {s:?} is neither an address nor a CIDR prefix (e.g. 10.1.0.0/16)"
            ))
        })
}

/// A history answer: the items as the caller may see them, and how much was read.
fn found_json<T: serde::Serialize, U>(items: &[T], found: &Found<U>) -> Response {
    Json(json!({
        "items": items,
        "truncated": found.truncated,
        "scanned_events": found.scanned_events,
    }))
    .into_response()
}

/// How far before the moment the past view reaches: connections closed and trace entries of
/// this last minute are shown with it.
const PAST_WINDOW_MS: u64 = 60_000;

/// The view `spec` as it was at `at_ms`, from the record in `dir`, as `role` may see it.
pub(crate) fn past_frame(
    dir: Option<&std::path::Path>,
    at_ms: u64,
    spec: &crate::protocol::ViewSpec,
    role: Role,
) -> crate::protocol::PastFrame {
    use crate::protocol::{ConnRow, PastFrame, StateFilter, TableDelta};
    let Some(dir) = dir else {
        return PastFrame {
            at_ms,
            error: Some(
                "this observer keeps no record (--no-record): it cannot show the past".into(),
            ),
            ..PastFrame::default()
        };
    };
    let table = spec.table.clone().unwrap_or_default();
    let closed = match table.state {
        StateFilter::Open => Some(false),
        StateFilter::Closed => Some(true),
        StateFilter::All => None,
    };
    let filter = ConnFilter {
        from_ms: Some(at_ms.saturating_sub(PAST_WINDOW_MS)),
        to_ms: Some(at_ms),
        closed,
        q: (role.sees_payloads() && !table.q.is_empty()).then(|| table.q.to_lowercase()),
        limit: crate::protocol::MAX_WINDOW as usize,
        until_ms: Some(at_ms),
        ..ConnFilter::default()
    };
    let conns = match history::connections(dir, &filter) {
        Ok(f) => f.items,
        Err(e) => {
            return PastFrame {
                at_ms,
                error: Some(format!("cannot read the record: {e}")),
                ..PastFrame::default()
            }
        }
    };
    let rows: Vec<ConnRow> = conns
        .iter()
        .enumerate()
        .map(|(i, c)| row_of(i as u64 + 1, scrub::history_conn(role, c.clone())))
        .collect();
    let tq = spec.trace.clone().unwrap_or_default();
    let text = tq
        .text
        .as_ref()
        .filter(|t| !t.is_empty() && role.sees_payloads())
        .map(|t| t.to_lowercase());
    let keep = |e: &crate::protocol::TraceEntry| {
        (tq.kinds.is_empty() || tq.kinds.contains(&e.kind))
            && tq.source.as_ref().is_none_or(|s| *s == e.source)
            && tq.dir.is_none_or(|d| e.dir == Some(d))
            && text
                .as_ref()
                .is_none_or(|t| e.text.to_lowercase().contains(t.as_str()))
    };
    let limit = (tq.limit as usize).clamp(1, crate::protocol::MAX_WINDOW as usize);
    let trace = history::trace(
        dir,
        at_ms.saturating_sub(PAST_WINDOW_MS),
        at_ms,
        limit,
        keep,
    )
    .map(|t| scrub::trace(role, t))
    .unwrap_or_default();
    let detail = spec
        .detail
        .and_then(|id| Some((id, conns.get(usize::try_from(id).ok()?.checked_sub(1)?)?)))
        .and_then(|(id, c)| {
            let events = history::events(dir, &c.source, c.conn, Some(c.opened_ms)).ok()?;
            Some(detail_of(c, id, events.items, Some(at_ms), role))
        });
    PastFrame {
        at_ms,
        now_ms: sockscope_wire::now_us() / 1000,
        detail,
        table: TableDelta {
            total: rows.len() as u64,
            offset: 0,
            ids: rows.iter().map(|r| r.id).collect(),
            rows,
        },
        trace,
        error: None,
    }
}

/// Messages the inspector shows of a past connection, at most.
const PAST_DETAIL_MESSAGES: usize = 200;

/// A connection from the record as the table shows rows (`id`: its place in the answer).
fn row_of(id: u64, c: HistoryConn) -> crate::protocol::ConnRow {
    use crate::protocol::{ConnRow, ConnState};
    ConnRow {
        id,
        source: c.source,
        ip: c.ip,
        user_agent: c.user_agent,
        path: c.path,
        state: if c.closed_ms.is_some() {
            ConnState::Closed
        } else {
            ConnState::Open
        },
        opened_ms: c.opened_ms,
        closed_ms: c.closed_ms,
        close_code: c.close_code,
        close_reason: c.close_reason,
        closed_by: c.closed_by,
        msgs_in: c.msgs_in,
        msgs_out: c.msgs_out,
        bytes_in: c.bytes_in,
        bytes_out: c.bytes_out,
        rate_msgs: 0,
        rate_bytes: 0,
        unknown_since_ms: None,
    }
}

/// A connection from the record as the inspector (and a HAR) shows it, as `role` may see it:
/// its messages, up to `at_ms` and the newest [`PAST_DETAIL_MESSAGES`] of them when viewing a
/// moment, else all the record gave.
pub(crate) fn detail_of(
    c: &HistoryConn,
    id: u64,
    events: Vec<HistoryEvent>,
    at_ms: Option<u64>,
    role: Role,
) -> crate::protocol::ConnDetail {
    use crate::protocol::{ConnDetail, MessageView};
    let mut messages: Vec<MessageView> = events
        .into_iter()
        .filter_map(|e| match e {
            HistoryEvent::Message {
                ts_ms,
                dir,
                opcode,
                size,
                truncated,
                text,
                data_b64,
            } if at_ms.is_none_or(|at| ts_ms <= at) => Some(MessageView {
                seq: 0,
                ts_us: ts_ms * 1000,
                dir,
                opcode,
                size,
                truncated,
                text,
                data_b64,
                payload_evicted: false,
                redacted: 0,
                flight: false,
            }),
            _ => None,
        })
        .collect();
    if at_ms.is_some() {
        let skip = messages.len().saturating_sub(PAST_DETAIL_MESSAGES);
        messages.drain(..skip);
    }
    for (i, m) in messages.iter_mut().enumerate() {
        m.seq = i as u64 + 1;
    }
    let d = ConnDetail {
        row: row_of(id, scrub::history_conn(role, c.clone())),
        tap_conn: c.conn,
        subprotocol: None,
        headers: Vec::new(),
        messages,
        capture: None,
        capture_bytes: None,
        redacted_headers: Vec::new(),
        payloads_hidden: false,
    };
    scrub::detail(role, d)
}
