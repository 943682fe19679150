//! `/api/history/*`: questions about the past, answered from the record rather than from
//! memory, as far back as it keeps. Viewers see what they see live: no payloads, no close
//! reasons, query values hidden.

use crate::protocol::close_code::CloseClass;
use crate::protocol::{HistoryConn, HistoryEvent};
use crate::server::api::{params, QueryResult};
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::history_export as export;
use crate::server::past;
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

pub(crate) fn record_dir(app: &AppState) -> Result<PathBuf, ApiError> {
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
    let format = format_of(p.format.clone(), &["json", "ndjson", "csv", "har"])?;
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
        Some(c) => Some(CloseClass::from_label(c).ok_or_else(|| {
            ApiError::bad(format!(
                "class {c:?} is not one of {}",
                CloseClass::labels()
            ))
        })?),
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
        return har_download("history.har", who.role, move || {
            let found = history::connections(&dir, &filter)?;
            found
                .items
                .into_iter()
                .map(|c| {
                    let events = history::events(&dir, &c.source, c.conn, Some(c.opened_ms))?;
                    Ok((c, events.items))
                })
                .collect()
        })
        .await;
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
    let format = format_of(p.format.clone(), &["json", "ndjson", "har"])?;
    if format.as_deref() == Some("har") {
        return har_download("connection.har", who.role, move || {
            let found = history::events(&dir, &p.source, p.conn, p.opened_ms)?;
            Ok(summary(&p.source, p.conn, &found.items)
                .map(|c| (c, found.items))
                .into_iter()
                .collect())
        })
        .await;
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

/// Runs a reading of the record on a blocking thread (it reads files).
pub(crate) async fn scan<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::stopped())?
        .map_err(|e| ApiError::new(ErrorCode::NotFound, format!("cannot read the record: {e}")))
}

/// The `format` asked for, if it is one of `offered` (the first is the default).
pub(crate) fn format_of(
    format: Option<String>,
    offered: &[&str],
) -> Result<Option<String>, ApiError> {
    match format {
        Some(f) if !offered.contains(&f.as_str()) => {
            let (last, rest) = offered.split_last().expect("formats are offered");
            Err(ApiError::bad(format!(
                "format {f:?} is not {} or {last}",
                rest.join(", ")
            )))
        }
        f => Ok(f),
    }
}

/// A HAR download (`name`) of recorded connections: `lives` finds each with its events.
async fn har_download(
    name: &str,
    role: crate::protocol::Role,
    lives: impl FnOnce() -> std::io::Result<Vec<(HistoryConn, Vec<HistoryEvent>)>> + Send + 'static,
) -> Result<Response, ApiError> {
    let lives = scan(lives).await?;
    let entries = lives
        .into_iter()
        .map(|(c, events)| {
            crate::server::export::har_entry(&past::detail_of(&c, 1, events, None, role))
        })
        .collect();
    let body = export::har_log(entries).to_string();
    Ok(export::download(body, "application/json", name))
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
pub(crate) fn parse_prefix(s: &str) -> Result<ipnet::IpNet, ApiError> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            ApiError::bad(format!(
                "ip {s:?} is neither an address nor a CIDR prefix (e.g. 10.1.0.0/16)"
            ))
        })
}

/// A history answer: the items as the caller may see them, and how much was read.
pub(crate) fn found_json<T: serde::Serialize, U>(items: &[T], found: &Found<U>) -> Response {
    Json(json!({
        "items": items,
        "truncated": found.truncated,
        "scanned_events": found.scanned_events,
    }))
    .into_response()
}
