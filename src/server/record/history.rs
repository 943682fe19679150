//! History queries over the record, reaching back as far as it keeps: connections by time
//! range, source, close code or class, state and text; trace entries by time range; and every
//! event of one connection over its whole life. Answered from the segments' indexes and only
//! the blocks they point at (see `index.rs` and docs/storage.md).

use super::index::{frame_events, index, read_some, span, SegIndex};
use super::segment::segments;
use crate::protocol::close_code::CloseClass;
use crate::protocol::{HistoryConn, HistoryEvent, TraceEntry, TraceKind};
use sockscope_wire::Event;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// Most events one connection's history returns.
pub(crate) const MAX_EVENTS: usize = 10_000;
/// Characters of a payload shown in a trace entry.
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
    /// The connection's address is in this prefix.
    pub ip: Option<ipnet::IpNet>,
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
            && self.ip.is_none_or(|net| {
                c.ip.parse::<std::net::IpAddr>()
                    .is_ok_and(|a| net.contains(&a))
            })
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
#[derive(Debug)]
pub(crate) struct Found<T> {
    pub items: Vec<T>,
    /// Recorded events decoded to answer (indexes answer most questions without any).
    pub scanned_events: u64,
    /// More matched than the limit.
    pub truncated: bool,
}

impl<T> Default for Found<T> {
    fn default() -> Self {
        Found {
            items: Vec::new(),
            scanned_events: 0,
            truncated: false,
        }
    }
}

/// A life's identity across segments: source, connection id, when it opened.
fn life_key(c: &HistoryConn) -> (u64, u64, u64) {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(c.source.as_str());
    (h, c.conn, c.opened_ms)
}

/// Connections in the record matching `filter`, newest first. Rows are as they stood at the
/// end of the window (`to_ms`, or `until_ms` if earlier), to within a block (≤ a second).
pub(crate) fn connections(dir: &Path, filter: &ConnFilter) -> std::io::Result<Found<HistoryConn>> {
    let segs = segments(dir)?;
    let end_ms = filter
        .to_ms
        .unwrap_or(u64::MAX)
        .min(filter.until_ms.unwrap_or(u64::MAX));
    let end_us = end_ms.saturating_mul(1000).saturating_add(999);
    let from_us = filter.from_ms.unwrap_or(0).saturating_mul(1000);
    let range = span(&segs, from_us, end_us)?;
    let mut seen: HashSet<(u64, u64, u64)> = HashSet::new();
    let mut matched: Vec<HistoryConn> = Vec::new();
    let consider = |c: HistoryConn, seen: &mut HashSet<_>, matched: &mut Vec<_>| {
        // Newest segment first: the first version of a life met is its latest.
        if seen.insert(life_key(&c)) && filter.accepts(&c) {
            matched.push(c);
        }
    };
    for k in range.clone().rev() {
        let ix = index(&segs, k)?;
        if k + 1 == range.end {
            // The lives open at the window's end without an event in its last segment.
            for c in ix.carried() {
                if c.opened_ms <= end_ms {
                    consider(c.clone(), &mut seen, &mut matched);
                }
            }
        }
        for life in ix.lives.iter().rev() {
            if let Some(c) = life.as_of(&ix.block_ts, end_us) {
                consider(c, &mut seen, &mut matched);
            }
        }
    }
    matched.sort_by(|a, b| {
        (b.closed_ms.unwrap_or(u64::MAX), b.opened_ms)
            .cmp(&(a.closed_ms.unwrap_or(u64::MAX), a.opened_ms))
    });
    let truncated = matched.len() > filter.limit;
    matched.truncate(filter.limit);
    Ok(Found {
        items: matched,
        scanned_events: 0,
        truncated,
    })
}

/// A trace entry for a recorded event (`None` for events the trace does not show).
fn trace_entry(src: &str, ts: u64, ev: Event) -> Option<TraceEntry> {
    let base = TraceEntry {
        seq: 0,
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
    Some(match ev {
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
            text: m
                .text
                .map(|t| t.chars().take(PREVIEW).collect())
                .unwrap_or_default(),
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
        _ => return None,
    })
}

/// Every event of the given blocks of a segment (of only the given `(block, entry)` pairs,
/// when `only` is given) with its source and time, in order.
fn each_in(
    path: &Path,
    ix: &SegIndex,
    which: impl IntoIterator<Item = u32>,
    only: Option<&HashSet<(u32, u32)>>,
    mut f: impl FnMut(&Arc<str>, u64, Event),
) -> std::io::Result<u64> {
    let mut n = 0u64;
    read_some(path, ix, which, |b, entries| {
        for (i, e) in entries.into_iter().enumerate() {
            if only.is_some_and(|o| !o.contains(&(b, i as u32))) {
                continue;
            }
            n += frame_events(&e, &mut f);
        }
    })?;
    Ok(n)
}

/// Trace entries of the record between `from_ms` and `to_ms`, newest first, at most `limit`,
/// that `keep` accepts. Blocks are read newest first, only as far back as needed. With
/// `lives`, only events of the connection lives it accepts are read (from their postings).
pub(crate) fn trace(
    dir: &Path,
    (from_ms, to_ms): (u64, u64),
    limit: usize,
    lives: Option<&(dyn Fn(&HistoryConn) -> bool + Sync)>,
    keep: impl Fn(&TraceEntry) -> bool,
) -> std::io::Result<Found<TraceEntry>> {
    let (from_us, to_us) = (from_ms * 1000, to_ms * 1000 + 999);
    let segs = segments(dir)?;
    let mut found = Found::default();
    let out = &mut found.items;
    'segments: for k in span(&segs, from_us, to_us)?.rev() {
        let ix = index(&segs, k)?;
        // The frames that hold events of the lives asked for, and those lives.
        let only = lives.map(|accepts| {
            let mut frames: HashSet<(u32, u32)> = HashSet::new();
            let mut who: HashSet<(&str, u64)> = HashSet::new();
            for l in ix.lives.iter().filter(|l| accepts(&l.sum)) {
                frames.extend(l.postings.iter().map(|(b, e, _)| (b, e)));
                who.insert((l.sum.source.as_str(), l.sum.conn));
            }
            let blocks: HashSet<u32> = frames.iter().map(|(b, _)| *b).collect();
            (frames, who, blocks)
        });
        // Blocks whose arrivals overlap the window (an event's time is near its arrival).
        let blocks: Vec<u32> = (0..ix.blocks.len() as u32)
            .rev()
            .filter(|b| {
                let (lo, hi) = ix.block_ts[*b as usize];
                lo <= to_us && hi >= from_us
            })
            .filter(|b| only.as_ref().is_none_or(|(_, _, bs)| bs.contains(b)))
            .collect();
        for b in blocks {
            let before = out.len();
            let frames = only.as_ref().map(|(f, _, _)| f);
            found.scanned_events += each_in(&segs[k], &ix, [b], frames, |src, ts, ev| {
                if (from_us..=to_us).contains(&ts) {
                    if let Some(e) = trace_entry(src, ts, ev).filter(|e| {
                        only.as_ref()
                            .is_none_or(|(_, who, _)| who.contains(&(e.source.as_str(), e.conn)))
                            && keep(e)
                    }) {
                        out.push(e);
                    }
                }
            })?;
            out[before..].reverse();
            if out.len() > limit {
                break 'segments;
            }
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.ts_us));
    found.truncated = out.len() > limit;
    out.truncate(limit);
    let n = out.len() as u64;
    for (i, e) in out.iter_mut().enumerate() {
        e.seq = n - i as u64;
    }
    Ok(found)
}

/// Every recorded event of connection `conn` of `source` opened at `opened_ms` (or its last
/// life when not given), in order, at most [`MAX_EVENTS`].
pub(crate) fn events(
    dir: &Path,
    source: &str,
    conn: u64,
    opened_ms: Option<u64>,
) -> std::io::Result<Found<HistoryEvent>> {
    let segs = segments(dir)?;
    let is = |c: &HistoryConn| c.source == source && c.conn == conn;
    // Which life: the one opened then, or the newest.
    let opened_ms = match opened_ms {
        Some(t) => t,
        None => {
            let mut newest = None;
            for k in (0..segs.len()).rev() {
                let ix = index(&segs, k)?;
                newest = ix
                    .lives
                    .iter()
                    .map(|l| &l.sum)
                    .chain(ix.carried())
                    .filter(|c| is(c))
                    .map(|c| c.opened_ms)
                    .max();
                if newest.is_some() {
                    break;
                }
            }
            match newest {
                Some(t) => t,
                None => return Ok(Found::default()),
            }
        }
    };
    let mut found = Found::default();
    let mut live = false;
    let first = span(&segs, opened_ms * 1000, u64::MAX)?.start;
    for k in first..segs.len() {
        let ix = index(&segs, k)?;
        let Some(life) = ix
            .lives
            .iter()
            .find(|l| is(&l.sum) && l.sum.opened_ms == opened_ms)
        else {
            if live && !ix.carried().any(|c| is(c) && c.opened_ms == opened_ms) {
                break; // ended without a close
            }
            continue;
        };
        let only: HashSet<(u32, u32)> = life.postings.iter().map(|(b, e, _)| (b, e)).collect();
        let blocks = life.postings.blocks();
        found.scanned_events += each_in(&segs[k], &ix, blocks, Some(&only), |src, ts, ev| {
            if &**src != source || found.items.len() >= MAX_EVENTS {
                if found.items.len() >= MAX_EVENTS {
                    found.truncated = true;
                }
                return;
            }
            let e = match ev {
                Event::ConnOpen(o) if o.conn == conn => {
                    live = o.ts.unwrap_or(ts) / 1000 == opened_ms;
                    if !live {
                        return;
                    }
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
            found.items.push(e);
        })?;
        if life.sum.closed_ms.is_some() || found.items.len() >= MAX_EVENTS {
            break;
        }
        // Still open at the segment's end: its events go on in the next.
        live = true;
    }
    Ok(found)
}
