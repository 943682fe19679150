//! The dashboard in the past: the view a browser subscribed to, as it was at a moment, built
//! from the record (time travel on `/live`), and recorded connections shown as the live table
//! and inspector show theirs.

use crate::protocol::{HistoryConn, HistoryEvent, Role};
use crate::server::record::history::{self, ConnFilter};
use crate::server::scrub;

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
        (at_ms.saturating_sub(PAST_WINDOW_MS), at_ms),
        limit,
        None,
        keep,
    )
    .map(|t| scrub::trace(role, t.items))
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
