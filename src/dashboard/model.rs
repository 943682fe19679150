//! The browser-side live model: applies `/live` snapshots and deltas. Plain Rust with no
//! Leptos in it, so it is unit-tested natively; components only render it.
// The server build renders only the page shell; the browser build (`hydrate`) and the
// native unit tests drive the rest.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use crate::dashboard::trace_buffer::TraceBuffer;
use crate::protocol::{ConnDetail, ConnRow, Frame, HostPoint, Overview, Point, Role, ServerMsg};
use std::collections::HashMap;
use std::collections::{BTreeMap, VecDeque};

/// Trace entries a browser keeps at most.
pub(crate) const DEFAULT_TRACE_KEEP: usize = 200;

/// State of the dashboard's own socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkStatus {
    Connecting,
    Live,
    /// Lost; the next attempt is number `attempt`.
    Reconnecting {
        attempt: u32,
    },
}

impl LinkStatus {
    pub(crate) fn label(self) -> String {
        match self {
            LinkStatus::Connecting => "connecting…".into(),
            LinkStatus::Live => "live".into(),
            LinkStatus::Reconnecting { attempt } => format!("reconnecting (attempt {attempt})"),
        }
    }

    pub(crate) fn css(self) -> &'static str {
        match self {
            LinkStatus::Connecting => "connecting",
            LinkStatus::Live => "live",
            LinkStatus::Reconnecting { .. } => "reconnecting",
        }
    }
}

/// What applying a message asks of the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Ok,
    /// A delta did not follow the last frame: subscribe again to get a snapshot.
    Resubscribe,
    /// The observer reported an error for the last request.
    ServerError(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LiveModel {
    pub status: LinkStatus,
    /// Who this browser is signed in as (from the observer's welcome).
    pub role: Role,
    /// The observer asks for a login, so a logout button makes sense.
    pub login: bool,
    /// Sequence number of the last applied frame; 0 before the first snapshot.
    pub seq: u64,
    pub now_ms: u64,
    pub overview: Overview,
    rows: HashMap<u64, ConnRow>,
    pub ids: Vec<u64>,
    pub total: u64,
    pub offset: u32,
    /// Newest first, with gap rows; pausable.
    pub trace: TraceBuffer,
    /// Matching trace entries the observer did not send because too many arrived at once.
    pub trace_skipped: u64,
    /// Tap drop counters seen so far, per source id (to turn increases into gap rows).
    drops_seen: HashMap<String, u64>,
    pub snapshots: u64,
    pub last_error: Option<String>,
    /// The connection open in the inspector, as last sent.
    pub detail: Option<ConnDetail>,
    /// The inspected connection was evicted.
    pub detail_gone: bool,
    /// The inspected connection's (second, msgs/s, bytes/s) since it was opened in the inspector.
    pub detail_rates: VecDeque<(u64, u64, u64)>,
    /// One-second points for the charts, oldest first (at most 15 minutes).
    pub series: VecDeque<Point>,
    /// Host samples per source id, oldest first.
    pub hosts: BTreeMap<String, VecDeque<HostPoint>>,
    /// The moment (ms) whose table and trace are shown, from the record; live frames are not
    /// applied meanwhile.
    pub past: Option<u64>,
    /// Why that moment could not be shown.
    pub past_error: Option<String>,
}

impl Default for LiveModel {
    fn default() -> Self {
        LiveModel {
            status: LinkStatus::Connecting,
            role: Role::Inspector,
            login: false,
            seq: 0,
            now_ms: 0,
            overview: Overview::default(),
            rows: HashMap::new(),
            ids: Vec::new(),
            total: 0,
            offset: 0,
            trace: TraceBuffer::default(),
            trace_skipped: 0,
            drops_seen: HashMap::new(),
            snapshots: 0,
            last_error: None,
            detail: None,
            detail_gone: false,
            detail_rates: VecDeque::new(),
            series: VecDeque::new(),
            hosts: BTreeMap::new(),
            past: None,
            past_error: None,
        }
    }
}

impl LiveModel {
    pub(crate) fn apply(&mut self, msg: ServerMsg) -> Applied {
        match msg {
            ServerMsg::Welcome { role, login } => {
                self.role = role;
                self.login = login;
                Applied::Ok
            }
            // Looking at the past: live frames (in flight when the browser asked) wait.
            ServerMsg::Snapshot(_) | ServerMsg::Delta(_) if self.past.is_some() => Applied::Ok,
            ServerMsg::Past(p) => {
                self.past = Some(p.at_ms);
                self.past_error = p.error;
                self.now_ms = self.now_ms.max(p.now_ms);
                self.rows = p.table.rows.into_iter().map(|r| (r.id, r)).collect();
                self.ids = p.table.ids;
                self.total = p.table.total;
                self.offset = 0;
                self.trace.reset();
                self.trace.push(p.trace, 0);
                self.detail = p.detail;
                self.detail_gone = false;
                Applied::Ok
            }
            ServerMsg::Snapshot(f) => {
                self.rows.clear();
                self.ids.clear();
                self.total = 0;
                self.offset = 0;
                self.trace.reset();
                self.trace_skipped = 0;
                self.snapshots += 1;
                self.detail = None;
                self.detail_gone = false;
                self.last_error = f.trace_error.clone();
                self.series.clear();
                self.hosts.clear();
                self.take(f);
                Applied::Ok
            }
            ServerMsg::Delta(f) => {
                if self.seq == 0 || f.seq != self.seq + 1 {
                    return Applied::Resubscribe;
                }
                self.take(f);
                Applied::Ok
            }
            ServerMsg::Error { message } => {
                self.last_error = Some(message.clone());
                Applied::ServerError(message)
            }
        }
    }

    fn take(&mut self, f: Frame) {
        self.seq = f.seq;
        self.now_ms = f.now_ms;
        self.overview = f.overview;
        if let Some(t) = f.table {
            for r in t.rows {
                self.rows.insert(r.id, r);
            }
            self.ids = t.ids;
            self.total = t.total;
            self.offset = t.offset;
            let keep: std::collections::HashSet<u64> = self.ids.iter().copied().collect();
            self.rows.retain(|id, _| keep.contains(id));
        }
        let cap = crate::dashboard::chart::WINDOW_S as usize;
        for p in f.series {
            if self.series.back().is_none_or(|last| p.t > last.t) {
                self.series.push_back(p);
            }
        }
        while self.series.len() > cap {
            self.series.pop_front();
        }
        for (id, points) in f.hosts {
            let ring = self.hosts.entry(id).or_default();
            for p in points {
                if ring.back().is_none_or(|last| p.t > last.t) {
                    ring.push_back(p);
                }
            }
            while ring.len() > cap {
                ring.pop_front();
            }
        }
        self.trace.push(f.trace, f.trace_skipped);
        self.trace_skipped += f.trace_skipped;
        for src in &self.overview.sources {
            let total = src.drops.total();
            let seen = self.drops_seen.insert(src.id.clone(), total);
            if let Some(before) = seen.filter(|b| total > *b) {
                self.trace.gap(
                    total - before,
                    &format!("dropped by tap {} (queue full or observer away)", src.name),
                );
            }
        }
        if let Some(d) = f.detail {
            let second = self.now_ms / 1000;
            if self
                .detail
                .as_ref()
                .is_some_and(|old| old.row.id != d.row.id)
            {
                self.detail_rates.clear();
            }
            if self.detail_rates.back().is_none_or(|(t, _, _)| *t < second) {
                self.detail_rates
                    .push_back((second, d.row.rate_msgs, d.row.rate_bytes));
                if self.detail_rates.len() > crate::dashboard::chart::WINDOW_S as usize {
                    self.detail_rates.pop_front();
                }
            }
            self.detail = Some(d);
            self.detail_gone = false;
        } else if f.detail_gone {
            self.detail = None;
            self.detail_gone = true;
        }
    }

    /// Leaves the past: the next snapshot (the browser subscribes again) brings live back.
    pub(crate) fn back_to_live(&mut self) {
        self.past = None;
        self.past_error = None;
        self.seq = 0;
    }

    /// The table window in display order.
    pub(crate) fn visible_rows(&self) -> Vec<ConnRow> {
        self.ids
            .iter()
            .filter_map(|id| self.rows.get(id).cloned())
            .collect()
    }

    /// The link dropped: keep showing the last data, mark it stale.
    pub(crate) fn disconnected(&mut self, attempt: u32) {
        self.status = LinkStatus::Reconnecting { attempt };
        self.seq = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ConnState, TableDelta, TraceEntry, TraceKind};

    fn row(id: u64, msgs: u64) -> ConnRow {
        ConnRow {
            id,
            source: "p1".into(),
            ip: "127.0.0.1".into(),
            user_agent: "ua".into(),
            path: "/ws".into(),
            state: ConnState::Open,
            opened_ms: 1,
            closed_ms: None,
            close_code: None,
            close_reason: None,
            closed_by: None,
            msgs_in: msgs,
            msgs_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            rate_msgs: 0,
            rate_bytes: 0,
            unknown_since_ms: None,
        }
    }

    fn trace(seq: u64) -> TraceEntry {
        TraceEntry {
            flight: false,
            seq,
            ts_us: seq,
            conn: 1,
            source: "p1".into(),
            kind: TraceKind::Message,
            dir: None,
            opcode: None,
            size: 0,
            truncated: false,
            code: None,
            by: None,
            text: format!("m{seq}"),
        }
    }

    fn frame(seq: u64, table: Option<TableDelta>, trace: Vec<TraceEntry>) -> Frame {
        Frame {
            seq,
            now_ms: 1000 * seq,
            table,
            trace,
            ..Default::default()
        }
    }

    #[test]
    fn snapshot_then_deltas_update_rows_order_and_trace() {
        let mut m = LiveModel::default();
        let snap = TableDelta {
            total: 2,
            offset: 0,
            ids: vec![2, 1],
            rows: vec![row(2, 0), row(1, 0)],
        };
        assert_eq!(
            m.apply(ServerMsg::Snapshot(frame(
                1,
                Some(snap),
                vec![trace(2), trace(1)]
            ))),
            Applied::Ok
        );
        assert_eq!(
            m.visible_rows().iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert_eq!(m.trace.seqs(), vec![2, 1]);

        // Row 1 changed, row 3 arrived on top, row 2 left the window (pushed out).
        let d = TableDelta {
            total: 3,
            offset: 0,
            ids: vec![3, 1],
            rows: vec![row(3, 0), row(1, 5)],
        };
        assert_eq!(
            m.apply(ServerMsg::Delta(frame(
                2,
                Some(d),
                vec![trace(4), trace(3)]
            ))),
            Applied::Ok
        );
        let rows = m.visible_rows();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(rows[1].msgs_in, 5);
        assert_eq!(m.total, 3);
        assert_eq!(m.trace.seqs(), vec![4, 3, 2, 1]);

        // A delta without table changes keeps the table.
        assert_eq!(
            m.apply(ServerMsg::Delta(frame(3, None, vec![]))),
            Applied::Ok
        );
        assert_eq!(m.visible_rows().len(), 2);
    }

    #[test]
    fn the_past_replaces_the_view_and_holds_live_frames_until_back_to_live() {
        let mut m = LiveModel::default();
        m.apply(ServerMsg::Snapshot(frame(1, None, vec![trace(1)])));
        let past = crate::protocol::PastFrame {
            at_ms: 1_700_000_000_000,
            now_ms: 1_700_000_100_000,
            table: TableDelta {
                total: 2,
                offset: 0,
                ids: vec![2, 1],
                rows: vec![row(1, 3), row(2, 4)],
            },
            trace: vec![trace(9), trace(8)],
            error: None,
            detail: None,
        };
        assert_eq!(m.apply(ServerMsg::Past(past)), Applied::Ok);
        assert_eq!(m.past, Some(1_700_000_000_000));
        assert_eq!(
            m.visible_rows().iter().map(|r| r.id).collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(m.trace.len(), 2);
        // A live frame in flight is not applied over the past.
        assert_eq!(
            m.apply(ServerMsg::Delta(frame(2, None, vec![trace(3)]))),
            Applied::Ok
        );
        assert_eq!(m.trace.len(), 2);
        // Back to live: the next delta without a snapshot asks for one.
        m.back_to_live();
        assert_eq!(m.past, None);
        assert_eq!(
            m.apply(ServerMsg::Delta(frame(3, None, vec![]))),
            Applied::Resubscribe
        );
    }

    #[test]
    fn gap_in_deltas_asks_for_resubscribe() {
        let mut m = LiveModel::default();
        assert_eq!(
            m.apply(ServerMsg::Delta(frame(1, None, vec![]))),
            Applied::Resubscribe
        );
        m.apply(ServerMsg::Snapshot(frame(5, None, vec![])));
        assert_eq!(
            m.apply(ServerMsg::Delta(frame(7, None, vec![]))),
            Applied::Resubscribe
        );
        assert_eq!(
            m.apply(ServerMsg::Delta(frame(6, None, vec![]))),
            Applied::Ok
        );
    }

    #[test]
    fn trace_is_bounded_and_skips_are_summed() {
        let mut m = LiveModel {
            trace: TraceBuffer::with_capacity(3),
            ..Default::default()
        };
        m.apply(ServerMsg::Snapshot(frame(
            1,
            None,
            vec![trace(2), trace(1)],
        )));
        let mut f = frame(2, None, vec![trace(5), trace(4), trace(3)]);
        f.trace_skipped = 7;
        m.apply(ServerMsg::Delta(f));
        assert_eq!(m.trace.seqs(), vec![5, 4, 3]);
        assert_eq!(m.trace_skipped, 7);
    }

    #[test]
    fn snapshot_replaces_everything_and_disconnect_forces_one() {
        let mut m = LiveModel::default();
        let snap = TableDelta {
            total: 1,
            offset: 0,
            ids: vec![1],
            rows: vec![row(1, 0)],
        };
        m.apply(ServerMsg::Snapshot(frame(1, Some(snap), vec![trace(1)])));
        m.disconnected(1);
        assert_eq!(m.status, LinkStatus::Reconnecting { attempt: 1 });
        assert_eq!(
            m.apply(ServerMsg::Delta(frame(2, None, vec![]))),
            Applied::Resubscribe
        );
        let snap = TableDelta {
            total: 0,
            offset: 0,
            ids: vec![],
            rows: vec![],
        };
        m.apply(ServerMsg::Snapshot(frame(1, Some(snap), vec![])));
        assert!(m.visible_rows().is_empty());
        assert!(m.trace.is_empty());
        assert_eq!(m.snapshots, 2);
    }

    #[test]
    fn detail_is_replaced_kept_or_gone() {
        use crate::protocol::ConnDetail;
        let detail = |n: u64| ConnDetail {
            row: row(1, n),
            tap_conn: 1,
            subprotocol: None,
            headers: vec![],
            messages: vec![],
            capture: None,
            capture_bytes: None,
            redacted_headers: vec![],
            payloads_hidden: false,
        };
        let mut m = LiveModel::default();
        let mut f = frame(1, None, vec![]);
        f.detail = Some(detail(1));
        m.apply(ServerMsg::Snapshot(f));
        assert_eq!(m.detail.as_ref().unwrap().row.msgs_in, 1);
        m.apply(ServerMsg::Delta(frame(2, None, vec![])));
        assert_eq!(
            m.detail.as_ref().unwrap().row.msgs_in,
            1,
            "absent means unchanged"
        );
        let mut f = frame(3, None, vec![]);
        f.detail = Some(detail(5));
        m.apply(ServerMsg::Delta(f));
        assert_eq!(m.detail.as_ref().unwrap().row.msgs_in, 5);
        let mut f = frame(4, None, vec![]);
        f.detail_gone = true;
        m.apply(ServerMsg::Delta(f));
        assert!(m.detail.is_none() && m.detail_gone);
    }

    #[test]
    fn series_append_in_order_and_stay_bounded() {
        let pt = |t| Point {
            t,
            ..Default::default()
        };
        let mut m = LiveModel::default();
        let mut f = frame(1, None, vec![]);
        f.series = (1..=1000).map(pt).collect();
        m.apply(ServerMsg::Snapshot(f));
        assert_eq!(m.series.len(), 900);
        assert_eq!(m.series.front().unwrap().t, 101);
        let mut f = frame(2, None, vec![]);
        f.series = vec![pt(1000), pt(1001)]; // 1000 again is ignored
        m.apply(ServerMsg::Delta(f));
        assert_eq!(m.series.back().unwrap().t, 1001);
        assert_eq!(m.series.len(), 900);
    }

    #[test]
    fn server_error_is_kept() {
        let mut m = LiveModel::default();
        let r = m.apply(ServerMsg::Error {
            message: "bad".into(),
        });
        assert_eq!(r, Applied::ServerError("bad".into()));
        assert_eq!(m.last_error.as_deref(), Some("bad"));
    }
}
