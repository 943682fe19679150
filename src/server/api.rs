//! The JSON API: `/api/sources`, `/api/connections[/{id}]`, `/api/trace`, `/api/overview`,
//! `/api/series`, `/healthz`. Stable; tests and other tools use it.

use crate::protocol::{
    Direction, Refusal, SortKey, StateFilter, TableQuery, TraceKind, TraceQuery, MAX_WINDOW,
};
use crate::server::aggregator::filter::TraceFilter;
use crate::server::aggregator::Query as Q;
use crate::server::auth::Principal;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::scrub;
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// Most trace entries one `/api/trace` call returns.
pub(crate) const MAX_TRACE_LIMIT: u32 = 10_000;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad(msg)
}

fn stopped<E>(_: E) -> ApiError {
    ApiError::stopped()
}

pub(crate) type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

pub(crate) fn params<T>(q: QueryResult<T>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| bad(e.body_text()))
}

pub(crate) async fn sources(State(app): State<AppState>) -> Result<Response, ApiError> {
    let s = app.agg.ask(Q::Sources).await.map_err(stopped)?;
    Ok(Json(s).into_response())
}

pub(crate) async fn overview(State(app): State<AppState>) -> Result<Response, ApiError> {
    let o = app.agg.ask(Q::Overview).await.map_err(stopped)?;
    Ok(Json(o).into_response())
}

pub(crate) async fn series(State(app): State<AppState>) -> Result<Response, ApiError> {
    let s = app.agg.ask(Q::Series).await.map_err(stopped)?;
    Ok(Json(s).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ConnParams {
    state: Option<StateFilter>,
    q: Option<String>,
    sort: Option<SortKey>,
    order: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

pub(crate) async fn connections(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryResult<ConnParams>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_WINDOW {
        return Err(bad(format!("limit must be between 1 and {MAX_WINDOW}")));
    }
    let desc = match p.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => return Err(bad(format!("order {o:?} is not asc or desc"))),
    };
    let query = TableQuery {
        state: p.state.unwrap_or(StateFilter::All),
        q: p.q.unwrap_or_default(),
        sort: p.sort.unwrap_or_default(),
        desc,
        offset: p.offset.unwrap_or(0),
        limit,
    };
    let mut page = app
        .agg
        .ask(|tx| Q::Connections(query, tx))
        .await
        .map_err(stopped)?;
    page.items = page
        .items
        .into_iter()
        .map(|r| scrub::row(who.role, r))
        .collect();
    Ok(Json(page).into_response())
}

pub(crate) async fn connection(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        bad(format!(
            "{id:?} is not a connection id (a positive integer)"
        ))
    })?;
    match app
        .agg
        .ask(|tx| Q::Connection(id, tx))
        .await
        .map_err(stopped)?
    {
        Some(d) => Ok(Json(scrub::detail(who.role, d)).into_response()),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no connection {id}: it never existed or was evicted by retention"),
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct TraceParams {
    /// Comma-separated kinds: open, message, close.
    pub kind: Option<String>,
    pub conn: Option<u64>,
    pub source: Option<String>,
    pub ip: Option<String>,
    /// in / out (or c2s / s2c).
    pub dir: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub regex: bool,
    pub limit: Option<u32>,
}

/// Validates `/api/trace` and `/api/export` filters for the caller's role and compiles them;
/// a viewer asking to search payloads is refused (403) and counted.
pub(crate) async fn trace_filter(
    app: &AppState,
    who: Principal,
    p: TraceParams,
    max_limit: u32,
) -> Result<TraceFilter, ApiError> {
    let q = trace_query(p, max_limit)?;
    if let Err(message) = scrub::check_query(who.role, &q) {
        let _ = app.agg.send_refused(Refusal::Role).await;
        return Err(ApiError::new(ErrorCode::Forbidden, message));
    }
    TraceFilter::new(q).map_err(bad)
}

/// Validates `/api/trace` and `/api/export` filters.
fn trace_query(p: TraceParams, max_limit: u32) -> Result<TraceQuery, ApiError> {
    let mut kinds = Vec::new();
    for k in p
        .kind
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|k| !k.is_empty())
    {
        kinds.push(match k.trim() {
            "open" => TraceKind::Open,
            "message" => TraceKind::Message,
            "close" => TraceKind::Close,
            other => {
                return Err(bad(format!(
                    "kind {other:?} is not one of open, message, close"
                )))
            }
        });
    }
    let dir = match p.dir.as_deref() {
        None | Some("") => None,
        Some("in" | "c2s") => Some(Direction::ClientToServer),
        Some("out" | "s2c") => Some(Direction::ServerToClient),
        Some(d) => return Err(bad(format!("dir {d:?} is not in or out"))),
    };
    let limit = p.limit.unwrap_or(100.min(max_limit));
    if limit == 0 || limit > max_limit {
        return Err(bad(format!("limit must be between 1 and {max_limit}")));
    }
    let q = TraceQuery {
        kinds,
        conn: p.conn,
        source: p.source,
        ip: p.ip,
        dir,
        text: p.text,
        regex: p.regex,
        limit,
    };
    Ok(q)
}

pub(crate) async fn trace(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryResult<TraceParams>,
) -> Result<Response, ApiError> {
    let query = trace_filter(&app, who, params(q)?, MAX_TRACE_LIMIT).await?;
    let items = app
        .agg
        .ask(|tx| Q::Trace(query, tx))
        .await
        .map_err(stopped)?;
    let items = scrub::trace(who.role, items);
    Ok(Json(json!({ "items": items })).into_response())
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
    let body = app.agg.ask(Q::Metrics).await.map_err(stopped)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// The aggregator is stuck when it has not turned for this long (it turns every second).
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// `GET /healthz` (public): 200 while the aggregator task keeps turning, 503 when it has not for
/// [`STUCK_AFTER`]. Reads one atomic: it never queues work for the aggregator, however often
/// it is asked.
pub(crate) async fn healthz(State(app): State<AppState>) -> Response {
    let since_ms = app.agg.since_last_turn_us() / 1000;
    if since_ms < STUCK_AFTER.as_millis() as u64 {
        Json(json!({ "status": "ok", "aggregator_turned_ms_ago": since_ms })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "aggregator stuck", "aggregator_turned_ms_ago": since_ms })),
        )
            .into_response()
    }
}
