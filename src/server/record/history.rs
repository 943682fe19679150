//! History queries over the record, reaching back as far as it keeps: connections by time
//! range, source, close code or class, state and text; and every event of one connection over
//! its whole life. Answered by reading the segments in order (no index yet: the cost grows
//! with the record's size, see docs/storage.md).

use super::segment::{read_segment, segments, Entry, RECORDED};
use crate::protocol::close_code::CloseClass;
use crate::protocol::{HistoryConn, HistoryEvent, HistoryMessage, TraceEntry, TraceKind};
use sockscope_wire::{decode_batch, Event};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

/// Last messages kept per connection in a history row.
const LAST_MESSAGES: usize = 3;
/// Most events one connection's history returns.
pub(crate) const MAX_EVENTS: usize = 10_000;
/// Characters of a payload shown in a history row's last messages.
const PREVIEW: usize = 256;

/// Which connections (`GET /api/history/connections`).
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnFilter {
    /// Closed connections: closed within [from, to]; others: alive at some time in it (ms).
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// `Some(true)`: closed only; `Some(false)`: open at the record's end only.
    pub closed: Option<bool>,
    pub source: Option<String>,
    pub code: Option<u16>,
    pub class: Option<CloseClass>,
    /// Lower-case substring of IP, user agent, path or source.
    pub q: Option<String>,
    pub limit: usize,
    /// The record as it stood at this moment (ms): later events are not read, so connections
    /// closed after it are open, with their counts as of then.
    pub until_ms: Option<u64>,
}

impl ConnFilter {
    fn accepts(&self, c: &HistoryConn) -> bool {
        let (from, to) = (self.from_ms.unwrap_or(0), self.to_ms.unwrap_or(u64::MAX));
        let in_time = match c.closed_ms {
            Some(closed) if self.closed == Some(true) => (from..=to).contains(&closed),
            Some(closed) => c.opened_ms <= to && closed >= from,
            None => c.opened_ms <= to,
        };
        in_time
            && match self.closed {
                Some(true) => c.closed_ms.is_some(),
                Some(false) => c.closed_ms.is_none(),
                None => true,
            }
            && self.source.as_ref().is_none_or(|s| *s == c.source)
            && self.code.is_none_or(|code| c.close_code == Some(code))
            && self
                .class
                .is_none_or(|k| c.closed_ms.is_some() && CloseClass::of(c.close_code) == k)
            && self.q.as_ref().is_none_or(|q| {
                [&c.ip, &c.user_agent, &c.path, &c.source]
                    .iter()
                    .any(|f| f.to_lowercase().contains(q.as_str()))
            })
    }
}

/// What a history query found, newest first, and how much it read.
#[derive(Debug, Default)]
pub(crate) struct Found<T> {
    pub items: Vec<T>,
    pub scanned_events: u64,
    /// More matched than the limit.
    pub truncated: bool,
}

/// Applies `f` to every recorded event in order with its source and time (µs).
fn each_event(dir: &Path, mut f: impl FnMut(&Arc<str>, u64, Event)) -> std::io::Result<u64> {
    let mut current: HashMap<Option<Arc<str>>, Arc<str>> = HashMap::new();
    let mut n = 0u64;
    for seg in segments(dir)? {
        let mut on_entry = |e: Entry| {
            let Ok(batch) = decode_batch(e.encoding, &e.frame, &RECORDED) else {
                return;
            };
            for ev in batch.events {
                n += 1;
                if let Event::Hello(h) = &ev {
                    current.insert(e.source.clone(), Arc::from(h.source.as_str()));
                    continue;
                }
                // The session's source, or the one its first frame's hello named.
                let Some(src) = e.source.clone().or_else(|| current.get(&e.source).cloned()) else {
                    continue;
                };
                let ts = event_ts(&ev)
                    .unwrap_or(e.arrival_us)
                    .min(e.arrival_us + 60_000_000);
                f(&src, ts, ev);
            }
        };
        // A segment being written may end in a half-written block: read what is whole.
        let _ = read_segment(&seg, &mut on_entry);
    }
    Ok(n)
}

fn event_ts(ev: &Event) -> Option<u64> {
    match ev {
        Event::ConnOpen(o) => o.ts,
        Event::Message(m) => m.ts,
        Event::ConnClose(c) => c.ts,
        _ => None,
    }
}

fn preview(m: &sockscope_wire::Message) -> Option<String> {
    m.text.as_ref().map(|t| t.chars().take(PREVIEW).collect())
}

/// Connections in the record matching `filter`, newest first.
pub(crate) fn connections(dir: &Path, filter: &ConnFilter) -> std::io::Result<Found<HistoryConn>> {
    let mut open: HashMap<(Arc<str>, u64), HistoryConn> = HashMap::new();
    let mut matched: VecDeque<HistoryConn> = VecDeque::new();
    let mut truncated = false;
    let mut keep = |c: HistoryConn, matched: &mut VecDeque<HistoryConn>| {
        if filter.accepts(&c) {
            matched.push_back(c);
            // The newest are kept: older ones fall off the front.
            if matched.len() > filter.limit {
                matched.pop_front();
                truncated = true;
            }
        }
    };
    let until_us = filter.until_ms.map_or(u64::MAX, |t| t * 1000 + 999);
    let scanned = each_event(dir, |src, ts, ev| match ev {
        _ if ts > until_us => {}
        Event::ConnOpen(o) => {
            let c = HistoryConn {
                source: src.to_string(),
                conn: o.conn,
                ip: o.ip,
                user_agent: o.user_agent.unwrap_or_default(),
                path: o.path,
                opened_ms: o.ts.unwrap_or(ts) / 1000,
                ..HistoryConn::default()
            };
            // The same id opened again: the old record ends there (as the live view does).
            if let Some(old) = open.insert((src.clone(), o.conn), c) {
                keep(old, &mut matched);
            }
        }
        Event::Message(m) => {
            if let Some(c) = open.get_mut(&(src.clone(), m.conn)) {
                if !m.opcode.is_control() {
                    match m.dir {
                        sockscope_wire::Direction::ClientToServer => {
                            c.msgs_in += 1;
                            c.bytes_in += m.size;
                        }
                        sockscope_wire::Direction::ServerToClient => {
                            c.msgs_out += 1;
                            c.bytes_out += m.size;
                        }
                    }
                }
                if c.last_messages.len() == LAST_MESSAGES {
                    c.last_messages.remove(0);
                }
                c.last_messages.push(HistoryMessage {
                    ts_ms: ts / 1000,
                    dir: m.dir,
                    opcode: m.opcode,
                    size: m.size,
                    text: preview(&m),
                });
            }
        }
        Event::ConnClose(cl) => {
            if let Some(mut c) = open.remove(&(src.clone(), cl.conn)) {
                c.closed_ms = Some(ts / 1000);
                c.close_code = cl.code;
                c.close_reason = cl.reason;
                c.closed_by = Some(cl.by);
                keep(c, &mut matched);
            }
        }
        _ => {}
    })?;
    for (_, c) in open {
        keep(c, &mut matched);
    }
    let mut items: Vec<HistoryConn> = matched.into();
    items.sort_by(|a, b| {
        (b.closed_ms.unwrap_or(u64::MAX), b.opened_ms)
            .cmp(&(a.closed_ms.unwrap_or(u64::MAX), a.opened_ms))
    });
    items.truncate(filter.limit);
    Ok(Found {
        items,
        scanned_events: scanned,
        truncated,
    })
}

/// Trace entries of the record between `from_ms` and `to_ms`, newest first, at most `limit`,
/// that `keep` accepts.
pub(crate) fn trace(
    dir: &Path,
    from_ms: u64,
    to_ms: u64,
    limit: usize,
    keep: impl Fn(&TraceEntry) -> bool,
) -> std::io::Result<Vec<TraceEntry>> {
    let (from_us, to_us) = (from_ms * 1000, to_ms * 1000 + 999);
    let mut out: VecDeque<TraceEntry> = VecDeque::new();
    let mut seq = 0u64;
    // Where each connection was opened, for the open entry's text.
    each_event(dir, |src, ts, ev| {
        if ts < from_us || ts > to_us {
            return;
        }
        seq += 1;
        let base = TraceEntry {
            seq,
            ts_us: ts,
            conn: 0,
            source: src.to_string(),
            kind: TraceKind::Open,
            dir: None,
            opcode: None,
            size: 0,
            truncated: false,
            code: None,
            by: None,
            text: String::new(),
            flight: false,
        };
        let e = match ev {
            Event::ConnOpen(o) => TraceEntry {
                conn: o.conn,
                text: format!("{} {}", o.ip, o.path),
                ..base
            },
            Event::Message(m) => TraceEntry {
                conn: m.conn,
                kind: TraceKind::Message,
                dir: Some(m.dir),
                opcode: Some(m.opcode),
                size: m.size,
                truncated: m.truncated,
                text: preview(&m).unwrap_or_default(),
                flight: m.flight,
                ..base
            },
            Event::ConnClose(c) => TraceEntry {
                conn: c.conn,
                kind: TraceKind::Close,
                code: c.code,
                by: Some(c.by),
                text: c.reason.unwrap_or_default(),
                ..base
            },
            _ => return,
        };
        if keep(&e) {
            out.push_back(e);
            if out.len() > limit {
                out.pop_front();
            }
        }
    })?;
    Ok(out.into_iter().rev().collect())
}

/// Every recorded event of connection `conn` of `source` opened at `opened_ms` (or its last
/// life when not given), in order.
pub(crate) fn events(
    dir: &Path,
    source: &str,
    conn: u64,
    opened_ms: Option<u64>,
) -> std::io::Result<Found<HistoryEvent>> {
    let mut lives: Vec<Vec<HistoryEvent>> = Vec::new();
    let mut live = false;
    let mut truncated = false;
    let scanned = each_event(dir, |src, ts, ev| {
        if &**src != source {
            return;
        }
        let e = match ev {
            Event::ConnOpen(o) if o.conn == conn => {
                lives.push(Vec::new());
                live = true;
                HistoryEvent::Open {
                    ts_ms: o.ts.unwrap_or(ts) / 1000,
                    ip: o.ip,
                    user_agent: o.user_agent,
                    path: o.path,
                }
            }
            Event::Message(m) if m.conn == conn && live => HistoryEvent::Message {
                ts_ms: ts / 1000,
                dir: m.dir,
                opcode: m.opcode,
                size: m.size,
                truncated: m.truncated,
                text: m.text,
                data_b64: m.data.map(|d| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.encode(d.0)
                }),
            },
            Event::ConnClose(c) if c.conn == conn && live => {
                live = false;
                HistoryEvent::Close {
                    ts_ms: ts / 1000,
                    code: c.code,
                    reason: c.reason,
                    by: c.by,
                }
            }
            _ => return,
        };
        if let Some(cur) = lives.last_mut() {
            if cur.len() < MAX_EVENTS {
                cur.push(e);
            } else {
                truncated = true;
            }
        }
    })?;
    let pick = match opened_ms {
        Some(t) => lives
            .into_iter()
            .find(|l| matches!(l.first(), Some(HistoryEvent::Open { ts_ms, .. }) if *ts_ms == t)),
        None => lives.pop(),
    };
    Ok(Found {
        items: pick.unwrap_or_default(),
        scanned_events: scanned,
        truncated,
    })
}
