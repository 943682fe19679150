//! `GET /api/history/trace`: the trace of a past window from the record, with the live
//! trace's filters, as JSON, NDJSON or CSV.

use crate::protocol::HistoryConn;
use crate::server::api::{params, trace_filter, QueryResult, TraceParams};
use crate::server::auth::Principal;
use crate::server::error::ApiError;
use crate::server::history::{format_of, found_json, parse_prefix, record_dir, scan};
use crate::server::history_export as export;
use crate::server::record::history;
use crate::server::{scrub, AppState};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;

/// The window when none is given: the last hour.
pub(crate) const DEFAULT_WINDOW_MS: u64 = 3_600_000;
/// Most entries in a JSON answer.
pub(crate) const MAX_TRACE_LIMIT: u32 = 10_000;
/// Most entries in an NDJSON or CSV download.
pub(crate) const MAX_TRACE_EXPORT: u32 = 1_000_000;

/// The `/api/trace` filters, a window and a format. `conn` is the tap's connection id (as
/// `/api/history/connections` gives it), so it goes with `source`; `ip` is an address or a
/// CIDR prefix.
#[derive(Deserialize)]
pub(crate) struct HistoryTraceParams {
    /// Window, ms since the epoch (default: the hour before `to`, which defaults to now).
    from: Option<u64>,
    to: Option<u64>,
    kind: Option<String>,
    conn: Option<u64>,
    source: Option<String>,
    ip: Option<String>,
    dir: Option<String>,
    text: Option<String>,
    #[serde(default)]
    regex: bool,
    limit: Option<u32>,
    /// json (default), ndjson or csv.
    format: Option<String>,
}

/// `GET /api/history/trace`.
pub(crate) async fn trace(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: QueryResult<HistoryTraceParams>,
) -> Result<Response, ApiError> {
    let p = params(q)?;
    let dir = record_dir(&app)?;
    let format = format_of(p.format, &["json", "ndjson", "csv"])?;
    let to = p.to.unwrap_or_else(|| sockscope_wire::now_us() / 1000);
    let from = p.from.unwrap_or(to.saturating_sub(DEFAULT_WINDOW_MS));
    if from > to {
        return Err(ApiError::bad(format!(
            "from ({from}) is after to ({to}): both are ms since the epoch"
        )));
    }
    // As in `/api/history/connections` (an address or a CIDR prefix), or as in `/api/trace`
    // (the start of the address as text, `10.1.`).
    let ip =
        p.ip.filter(|i| !i.is_empty())
            .map(|i| match parse_prefix(&i) {
                Ok(net) => Address::In(net),
                Err(_) => Address::StartsWith(i),
            });
    let max = match format.as_deref() {
        Some("ndjson" | "csv") => MAX_TRACE_EXPORT,
        _ => MAX_TRACE_LIMIT,
    };
    let role = who.role;
    let filter = trace_filter(
        &app,
        who,
        TraceParams {
            kind: p.kind,
            conn: p.conn,
            source: p.source,
            // The address is matched on the connection lives, below.
            ip: None,
            dir: p.dir,
            text: p.text,
            regex: p.regex,
            limit: p.limit,
        },
        max,
    )
    .await?;
    let limit = filter.limit();
    let mut found = scan(move || {
        let lives = |c: &HistoryConn| {
            filter.q.conn.is_none_or(|n| n == c.conn)
                && filter.source_id_matches(&c.source)
                && ip.as_ref().is_none_or(|a| a.matches(&c.ip))
        };
        let narrow = filter.q.conn.is_some() || ip.is_some();
        let lives: Option<&(dyn Fn(&HistoryConn) -> bool + Sync)> = narrow.then_some(&lives);
        history::trace(&dir, (from, to), limit, lives, |e| filter.entry_matches(e))
    })
    .await?;
    let items = scrub::trace(role, std::mem::take(&mut found.items));
    Ok(match format.as_deref() {
        Some("ndjson") => export::ndjson(&items, "trace.ndjson"),
        Some("csv") => {
            let mut body = crate::server::export::TRACE_CSV_HEADER.to_string();
            for e in &items {
                body.push_str(&crate::server::export::csv_row(e));
            }
            export::download(body, "text/csv; charset=utf-8", "trace.csv")
        }
        _ => found_json(&items, &found),
    })
}

/// An `ip` filter.
enum Address {
    In(ipnet::IpNet),
    StartsWith(String),
}

impl Address {
    fn matches(&self, ip: &str) -> bool {
        match self {
            Address::In(net) => ip
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| net.contains(&a)),
            Address::StartsWith(p) => ip.starts_with(p.as_str()),
        }
    }
}
