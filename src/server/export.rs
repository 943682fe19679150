//! `GET /api/export?format=har|ndjson|csv`: the trace (with the `/api/trace` filters) or one
//! connection's messages, streamed page by page — never built in memory.
//! HAR puts each connection's stored messages in `_webSocketMessages` (Chrome DevTools opens it).
//! Viewers get metadata only; a body never grows past `--max-export-bytes` and says when cut.

use crate::protocol::{ConnDetail, MessageView, Refusal, Role, TraceEntry, TraceKind};
use crate::server::aggregator::filter::TraceFilter;
use crate::server::aggregator::{Aggregator, Query as Q, EXPORT_PAGE};
use crate::server::api::{trace_filter, TraceParams};
use crate::server::auth::Principal;
use crate::server::error::ApiError;
use crate::server::scrub;
use crate::server::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use sockscope_wire::{Direction, Opcode};

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    Har,
    Ndjson,
    Csv,
}

/// The `/api/trace` filters plus the format. (Not `#[serde(flatten)]`: flattened query
/// values arrive as strings and numbers would fail to parse.)
#[derive(Deserialize)]
pub(crate) struct ExportParams {
    format: Format,
    kind: Option<String>,
    conn: Option<u64>,
    source: Option<String>,
    ip: Option<String>,
    dir: Option<String>,
    text: Option<String>,
    #[serde(default)]
    regex: bool,
    limit: Option<u32>,
}

pub(crate) async fn export(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    q: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) =
        q.map_err(|e| ApiError::bad(format!("{}; format is har, ndjson or csv", e.body_text())))?;
    let max = app.config.agg.trace_capacity.max(1) as u32;
    // An export takes the whole ring unless told otherwise.
    let params = TraceParams {
        kind: p.kind,
        conn: p.conn,
        source: p.source,
        ip: p.ip,
        dir: p.dir,
        text: p.text,
        regex: p.regex,
        limit: p.limit.or(Some(max)),
    };
    let query = trace_filter(&app, who, params, max).await?;
    let role = who.role;
    let cap = app.config.max_export_bytes;
    let agg = app.agg.clone();
    let on_cut = move || {
        tokio::spawn(async move {
            let _ = agg.send_refused(Refusal::ExportTruncated).await;
        });
    };
    let why = format!(
        "export stopped at {cap} bytes (--max-export-bytes): narrow the filter or raise the limit"
    );
    let (ctype, ext) = match p.format {
        Format::Har => ("application/json", "har"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let ok = |b| Ok::<_, std::convert::Infallible>(b);
    let body = match p.format {
        Format::Ndjson => {
            let lines = entries(app.agg.clone(), query, role).map(|e| {
                let mut line = serde_json::to_vec(&e).expect("entries serialize");
                line.push(b'\n');
                Bytes::from(line)
            });
            let mut cut = serde_json::to_vec(&json!({"type": "truncated", "message": why}))
                .expect("serializes");
            cut.push(b'\n');
            let parts = Parts {
                head: Bytes::new(),
                tail: Bytes::new(),
                cut: cut.into(),
            };
            Body::from_stream(capped(parts, lines, cap, on_cut).map(ok))
        }
        Format::Csv => {
            let rows = entries(app.agg.clone(), query, role).map(|e| Bytes::from(csv_row(&e)));
            let parts = Parts {
                head: Bytes::from_static(TRACE_CSV_HEADER.as_bytes()),
                tail: Bytes::new(),
                cut: Bytes::from(format!(",,truncated,,,,,,,,,{}\n", csv_field(&why))),
            };
            Body::from_stream(capped(parts, rows, cap, on_cut).map(ok))
        }
        Format::Har => {
            let head = Bytes::from(
                json!({"version": "1.2", "creator": {"name": "sockscope", "version": env!("CARGO_PKG_VERSION")}})
                    .to_string()
                    .trim_end_matches('}')
                    .to_string()
                    + ",\"pages\":[],\"entries\":[",
            );
            let parts = Parts {
                head: Bytes::from([b"{\"log\":".as_slice(), &head].concat()),
                tail: Bytes::from_static(b"]}}"),
                cut: Bytes::from(format!("],\"comment\":{}}}}}", json!(why))),
            };
            Body::from_stream(capped(parts, har(app.agg.clone(), query, role), cap, on_cut).map(ok))
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"sockscope-trace.{ext}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// The fixed parts of an export body around its items.
struct Parts {
    head: Bytes,
    /// Closes a complete body.
    tail: Bytes,
    /// Closes a body cut at the size limit, saying so in the format's own terms.
    cut: Bytes,
}

/// `head`, then items while the body stays within `max` bytes (room kept for `cut`), then
/// `tail` — or `cut` and a call to `on_cut` when the next item would not fit.
fn capped(
    parts: Parts,
    items: impl Stream<Item = Bytes> + Send + 'static,
    max: usize,
    on_cut: impl FnOnce() + Send + 'static,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let Parts { head, tail, cut } = parts;
    let start = head.len();
    let rest = stream::unfold(Some((Box::pin(items), start, on_cut)), move |state| {
        let (tail, cut) = (tail.clone(), cut.clone());
        async move {
            let (mut items, sent, on_cut) = state?;
            match items.next().await {
                Some(b) if sent + b.len() + cut.len() <= max => {
                    let sent = sent + b.len();
                    Some((b, Some((items, sent, on_cut))))
                }
                Some(_) => {
                    on_cut();
                    Some((cut, None))
                }
                None => Some((tail, None)),
            }
        }
    });
    stream::once(async move { head }).chain(rest)
}

/// A quoted CSV field. Text a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return: OWASP's list) gets a leading `'`, so it shows as text.
pub(crate) fn csv_field(s: &str) -> String {
    let guard = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        "'"
    } else {
        ""
    };
    format!("\"{guard}{}\"", s.replace('"', "\"\""))
}

/// Matching trace entries as `role` may see them, newest first, fetched a page at a time.
fn entries(
    agg: Aggregator,
    q: TraceFilter,
    role: Role,
) -> impl Stream<Item = TraceEntry> + Send + 'static {
    let limit = q.limit();
    let q = std::sync::Arc::new(q);
    stream::unfold(
        (agg, q, u64::MAX, 0usize, false),
        move |(agg, q, before, sent, done)| async move {
            if done || sent >= limit {
                return None;
            }
            let page = agg
                .ask(|tx| Q::TracePage(q.clone(), before, tx))
                .await
                .ok()?;
            let done = page.len() < EXPORT_PAGE;
            let next = page.last().map(|e| e.seq).unwrap_or(0);
            let take = page.into_iter().take(limit - sent).collect::<Vec<_>>();
            let take = scrub::trace(role, take);
            let n = take.len();
            Some((stream::iter(take), (agg, q, next, sent + n, done || n == 0)))
        },
    )
    .flatten()
}

/// The first line of a trace CSV.
pub(crate) const TRACE_CSV_HEADER: &str =
    "seq,time_us,kind,connection,source,direction,opcode,size,truncated,close_code,closed_by,text\n";

/// One trace entry as a CSV line.
pub(crate) fn csv_row(e: &TraceEntry) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let kind = match e.kind {
        TraceKind::Open => "open",
        TraceKind::Message => "message",
        TraceKind::Close => "close",
    };
    let dir = match e.dir {
        Some(Direction::ClientToServer) => "c2s",
        Some(Direction::ServerToClient) => "s2c",
        None => "",
    };
    let opcode = e.opcode.map(|o| o.as_str().to_string()).unwrap_or_default();
    let code = e.code.map(|c| c.to_string()).unwrap_or_default();
    let by = e.by.map(|b| b.as_str().to_string()).unwrap_or_default();
    let _ = w.write_record([
        e.seq.to_string().as_str(),
        &e.ts_us.to_string(),
        kind,
        &e.conn.to_string(),
        &e.source,
        dir,
        &opcode,
        &e.size.to_string(),
        if e.truncated { "true" } else { "false" },
        &code,
        &by,
        &e.text,
    ]);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn iso(ts_us: u64) -> String {
    chrono::DateTime::from_timestamp_micros(ts_us as i64)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// HAR 1.2 entries (the log's head and tail come from [`Parts`]): one per connection in the
/// filtered trace, with its stored messages.
fn har(agg: Aggregator, q: TraceFilter, role: Role) -> impl Stream<Item = Bytes> + Send + 'static {
    {
        let agg = agg.clone();
        entries(agg.clone(), q, role)
            .scan(std::collections::HashSet::new(), |seen, e| {
                let new = seen.insert(e.conn);
                async move { Some(new.then_some(e.conn)) }
            })
            .filter_map(|c| async move { c })
            .then(move |id| {
                let agg = agg.clone();
                async move {
                    let d = agg.ask(|tx| Q::Connection(id, tx)).await.ok().flatten();
                    d.map(|d| scrub::detail(role, d))
                }
            })
            .filter_map(|d| async move { d })
            .enumerate()
            .map(|(i, d)| {
                let mut b = if i == 0 { Vec::new() } else { b",".to_vec() };
                b.extend(serde_json::to_vec(&har_entry(&d)).expect("entries serialize"));
                Bytes::from(b)
            })
    }
}

fn har_message(m: &MessageView, opened_us: u64) -> serde_json::Value {
    let (opcode, data) = match (m.opcode, &m.text, &m.data_b64) {
        (Opcode::Text, Some(t), _) => (1, t.clone()),
        (Opcode::Binary, _, Some(b)) => (2, b.clone()),
        (Opcode::Text, None, _) => (1, String::new()),
        (op, _, b) => (
            match op {
                Opcode::Close => 8,
                Opcode::Ping => 9,
                Opcode::Pong => 10,
                _ => 2,
            },
            b.clone().unwrap_or_default(),
        ),
    };
    let _ = opened_us;
    json!({
        "type": if m.dir == Direction::ClientToServer { "send" } else { "receive" },
        "time": m.ts_us as f64 / 1e6,
        "opcode": opcode,
        "data": data,
        "_size": m.size,
        "_truncated": m.truncated,
    })
}

pub(crate) fn har_entry(d: &ConnDetail) -> serde_json::Value {
    let r = &d.row;
    let opened_us = r.opened_ms * 1000;
    let mut headers: Vec<serde_json::Value> = d
        .headers
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    headers.push(json!({"name": "User-Agent", "value": r.user_agent}));
    json!({
        "startedDateTime": iso(opened_us),
        "time": r.closed_ms.map(|c| c.saturating_sub(r.opened_ms)).unwrap_or(0),
        "_resourceType": "websocket",
        "_sockscope": {"id": r.id, "source": r.source, "close_code": r.close_code, "close_reason": r.close_reason},
        "request": {
            "method": "GET",
            "url": format!("ws://{}{}", r.source, r.path),
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": headers,
            "queryString": [],
            "headersSize": -1,
            "bodySize": 0
        },
        "response": {
            "status": 101,
            "statusText": "Switching Protocols",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": 0
        },
        "cache": {},
        "timings": {"send": 0, "wait": 0, "receive": 0},
        "serverIPAddress": "",
        "_webSocketMessages": d.messages.iter().map(|m| har_message(m, opened_us)).collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_never_start_a_formula() {
        assert_eq!(
            super::csv_field("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        for f in ["+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(super::csv_field(f).starts_with("\"'"), "{f}");
        }
        assert_eq!(
            super::csv_field("plain, \"quoted\""),
            "\"plain, \"\"quoted\"\"\""
        );
    }
}
