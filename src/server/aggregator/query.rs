//! Read-only questions about the state: the sorted, filtered table window, trace and detail.

use super::conn::Conn;
use super::filter::TraceFilter;
use super::state::State;
use crate::protocol::{
    ConnDetail, ConnPage, SortKey, StateFilter, TableQuery, TraceEntry, MAX_WINDOW,
};
use std::cmp::Ordering;

impl State {
    fn state_ok(filter: StateFilter, c: &Conn) -> bool {
        match filter {
            StateFilter::All => true,
            StateFilter::Open => c.is_open(),
            StateFilter::Closed => !c.is_open(),
        }
    }

    /// The window of the connection table a query asks for, and how many rows match in all.
    pub(crate) fn table(&self, q: &TableQuery, now_s: u64) -> (u64, Vec<&Conn>) {
        let limit = q.limit.min(MAX_WINDOW) as usize;
        let offset = q.offset as usize;
        let needle = q.q.trim().to_lowercase();
        let keep = |c: &&Conn| {
            Self::state_ok(q.state, c) && c.matches(&needle, self.source_name(c.source))
        };
        if q.sort == SortKey::Id {
            // Connect order is the map's order: walk only as far as the window needs.
            let window: Vec<&Conn> = if q.desc {
                self.conns
                    .values()
                    .rev()
                    .filter(keep)
                    .skip(offset)
                    .take(limit)
                    .collect()
            } else {
                self.conns
                    .values()
                    .filter(keep)
                    .skip(offset)
                    .take(limit)
                    .collect()
            };
            let total = if needle.is_empty() {
                match q.state {
                    StateFilter::All => self.conns.len() as u64,
                    StateFilter::Open => self.totals.open,
                    StateFilter::Closed => self.conns.len() as u64 - self.totals.open,
                }
            } else {
                self.conns.unordered().filter(keep).count() as u64
            };
            return (total, window);
        }
        let mut all: Vec<&Conn> = self.conns.unordered().filter(keep).collect();
        let total = all.len() as u64;
        let cmp = |a: &&Conn, b: &&Conn| {
            let o = self.compare(q.sort, a, b, now_s).then(a.id.cmp(&b.id));
            if q.desc {
                o.reverse()
            } else {
                o
            }
        };
        let end = (offset + limit).min(all.len());
        if end == 0 || offset >= all.len() {
            return (total, Vec::new());
        }
        if end < all.len() {
            all.select_nth_unstable_by(end - 1, cmp);
            all.truncate(end);
        }
        all.sort_unstable_by(cmp);
        (total, all.split_off(offset))
    }

    fn compare(&self, key: SortKey, a: &Conn, b: &Conn, now_s: u64) -> Ordering {
        match key {
            SortKey::Id => a.id.cmp(&b.id),
            SortKey::Ip => a.ip.cmp(&b.ip),
            SortKey::UserAgent => a.user_agent.cmp(&b.user_agent),
            SortKey::Path => a.path.cmp(&b.path),
            SortKey::Source => self.source_name(a.source).cmp(self.source_name(b.source)),
            SortKey::MsgsIn => a.msgs_in.cmp(&b.msgs_in),
            SortKey::MsgsOut => a.msgs_out.cmp(&b.msgs_out),
            SortKey::BytesIn => a.bytes_in.cmp(&b.bytes_in),
            SortKey::BytesOut => a.bytes_out.cmp(&b.bytes_out),
            SortKey::Rate => a
                .rate
                .last_second(now_s)
                .0
                .cmp(&b.rate.last_second(now_s).0),
        }
    }

    fn row_of(&self, c: &Conn, now_s: u64) -> crate::protocol::ConnRow {
        let mut row = c.row(self.source_name(c.source), now_s);
        row.unknown_since_ms = self.unknown_since_ms(c);
        row
    }

    pub(crate) fn page(&self, q: &TableQuery, now_s: u64) -> ConnPage {
        let (total, rows) = self.table(q, now_s);
        ConnPage {
            total,
            offset: q.offset,
            items: rows.into_iter().map(|c| self.row_of(c, now_s)).collect(),
        }
    }

    pub(crate) fn detail(&self, id: u64, now_s: u64) -> Option<ConnDetail> {
        let c = self.conns.get(&id)?;
        Some(ConnDetail {
            row: self.row_of(c, now_s),
            tap_conn: c.tap_conn,
            subprotocol: c.subprotocol.as_ref().map(|s| s.to_string()),
            headers: c
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            messages: c.recent.iter().map(|m| m.view()).collect(),
            capture: c.policy.as_ref().and_then(|p| p.capture),
            capture_bytes: c.policy.as_ref().and_then(|p| p.capture_bytes),
            redacted_headers: c
                .policy
                .as_ref()
                .map(|p| p.redacted_headers.iter().map(|h| h.to_string()).collect())
                .unwrap_or_default(),
            payloads_hidden: false,
        })
    }

    /// Newest-first trace entries matching `q` with a sequence number above `after`, at most
    /// `q.limit`; also returns how many more matched.
    pub(crate) fn trace_since(&self, q: &TraceFilter, after: u64) -> (Vec<TraceEntry>, u64) {
        let limit = q.limit();
        let mut out = Vec::new();
        let mut skipped = 0;
        for r in self.trace.iter().rev() {
            if r.seq <= after {
                break;
            }
            if !q.matches(self, r) {
                continue;
            }
            if out.len() < limit {
                out.push(self.trace_entry(r));
            } else {
                skipped += 1;
            }
        }
        (out, skipped)
    }

    /// One page of an export: matching entries with a sequence number below `before`, newest
    /// first, at most `max`.
    pub(crate) fn trace_page(&self, q: &TraceFilter, before: u64, max: usize) -> Vec<TraceEntry> {
        self.trace
            .iter()
            .rev()
            .filter(|r| r.seq < before && q.matches(self, r))
            .take(max)
            .map(|r| self.trace_entry(r))
            .collect()
    }
}
