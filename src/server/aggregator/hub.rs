//! The hub: every browser's subscription, and the frames built for it on each tick.
//! Runs on the aggregator task; a browser that falls behind is re-snapshotted, never awaited.

use crate::protocol::{
    ConnDetail, ConnRow, Frame, Overview, Role, ServerMsg, TableDelta, ViewSpec,
};
use crate::server::aggregator::filter::TraceFilter;
use crate::server::aggregator::state::State;
use crate::server::scrub;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most trace entries in one delta (per tick): keeps a browser's traffic bounded whatever the
/// event rate; what does not fit is counted and shown as a gap row.
pub(crate) const MAX_TRACE_PER_DELTA: usize = 50;

/// Most host-metric points in one frame, over all sources.
pub(crate) const MAX_HOST_POINTS_PER_FRAME: usize = 20_000;

/// One browser's view and what it was last sent.
struct Subscriber {
    tx: mpsc::Sender<String>,
    /// Viewers get metadata only: payloads and headers are scrubbed from their frames.
    role: Role,
    spec: ViewSpec,
    /// The compiled trace filter of `spec.trace`, or why it could not be compiled.
    trace: Option<TraceFilter>,
    trace_error: Option<String>,
    need_snapshot: bool,
    seq: u64,
    trace_after: u64,
    rows: HashMap<u64, ConnRow>,
    ids: Vec<u64>,
    total: u64,
    detail: Option<ConnDetail>,
    /// Last series second sent, and last host-sample second sent.
    series_after: u64,
    hosts_after: u64,
}

/// Aggregator time snapshots may take per second, all browsers together: past it, further
/// snapshots wait for the next second (the first of each second is always built), so however
/// many browsers change their view at once with a million tracked connections, ingest keeps
/// most of the task.
pub(crate) const SNAPSHOT_BUDGET: Duration = Duration::from_millis(200);

#[derive(Default)]
pub(crate) struct Hub {
    subs: HashMap<u64, Subscriber>,
    pub resnapshots: u64,
    /// Snapshots put off to a later second by [`SNAPSHOT_BUDGET`].
    pub deferred: u64,
    /// The second being accounted, and snapshot time spent in it.
    spent: (u64, Duration),
    /// Overrides [`SNAPSHOT_BUDGET`] (tests).
    budget: Option<Duration>,
}

impl Hub {
    pub(crate) fn subscribe(
        &mut self,
        id: u64,
        tx: mpsc::Sender<String>,
        spec: ViewSpec,
        role: Role,
    ) {
        let (trace, trace_error) = compile(&spec, role);
        self.subs.insert(
            id,
            Subscriber {
                role,
                trace,
                trace_error,
                tx,
                spec,
                need_snapshot: true,
                seq: 0,
                trace_after: 0,
                rows: HashMap::new(),
                ids: Vec::new(),
                total: 0,
                detail: None,
                series_after: 0,
                hosts_after: 0,
            },
        );
    }

    /// A browser changed what it looks at: it gets a fresh snapshot.
    pub(crate) fn set_view(&mut self, id: u64, spec: ViewSpec) {
        if let Some(s) = self.subs.get_mut(&id) {
            (s.trace, s.trace_error) = compile(&spec, s.role);
            s.spec = spec;
            s.need_snapshot = true;
        }
    }

    /// Moves a browser's table window; its next frame carries every row of the new window.
    /// False when the browser has no table view.
    pub(crate) fn set_window(&mut self, id: u64, offset: u32, limit: u32) -> bool {
        let Some(s) = self.subs.get_mut(&id) else {
            return false;
        };
        let Some(t) = s.spec.table.as_mut() else {
            return false;
        };
        t.offset = offset;
        t.limit = limit;
        s.rows.clear();
        s.ids.clear();
        s.total = u64::MAX;
        true
    }

    #[cfg(test)]
    pub(crate) fn set_budget(&mut self, budget: Duration) {
        self.budget = Some(budget);
    }

    pub(crate) fn unsubscribe(&mut self, id: u64) {
        self.subs.remove(&id);
    }

    pub(crate) fn subscribers(&self) -> usize {
        self.subs.len()
    }

    /// What each browser looks at, with its compiled trace filter.
    pub(crate) fn views(&self) -> impl Iterator<Item = (&ViewSpec, Option<&TraceFilter>)> {
        self.subs.values().map(|s| (&s.spec, s.trace.as_ref()))
    }

    /// Sends a frame to every subscriber (`only` limits it to one, for an immediate snapshot).
    pub(crate) fn publish(&mut self, state: &State, now_us: u64, only: Option<u64>) {
        if self.subs.is_empty() {
            return;
        }
        let now_s = now_us / 1_000_000;
        let overview = overview(state, self, now_us);
        let mut gone = Vec::new();
        for (&id, sub) in self.subs.iter_mut() {
            if only.is_some_and(|o| o != id) {
                continue;
            }
            if sub.tx.is_closed() {
                gone.push(id);
                continue;
            }
            // A browser that is not reading gets nothing built for it: no frame (and no
            // snapshot, however large) until its queue has room again.
            if sub.tx.capacity() == 0 {
                if !sub.need_snapshot {
                    sub.need_snapshot = true;
                    self.resnapshots += 1;
                }
                continue;
            }
            let snapshot = sub.need_snapshot;
            if self.spent.0 != now_s {
                self.spent = (now_s, Duration::ZERO);
            }
            let budget = self.budget.unwrap_or(SNAPSHOT_BUDGET);
            if snapshot && self.spent.1 > Duration::ZERO && self.spent.1 >= budget {
                self.deferred += 1;
                continue;
            }
            let started = snapshot.then(Instant::now);
            let frame = build(sub, state, &overview, now_us, now_s, snapshot);
            if let Some(t) = started {
                // Never zero, so a snapshot always counts against the second's budget.
                self.spent.1 += t.elapsed().max(Duration::from_nanos(1));
            }
            let msg = if snapshot {
                ServerMsg::Snapshot(frame)
            } else {
                ServerMsg::Delta(frame)
            };
            let text = serde_json::to_string(&msg).expect("frames serialize");
            match sub.tx.try_send(text) {
                Ok(()) => sub.need_snapshot = false,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The browser is behind: forget what it has; the next frame is a snapshot.
                    sub.need_snapshot = true;
                    self.resnapshots += 1;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(id),
            }
        }
        for id in gone {
            self.subs.remove(&id);
        }
    }
}

/// The overview cards, as of the aggregator's clock `now_us`.
pub(crate) fn overview(state: &State, hub: &Hub, now_us: u64) -> Overview {
    let now_s = now_us / 1_000_000;
    let mut observer = state.stats.clone();
    observer.ingest_rate = state.ingest_rate.last_second(now_s).0;
    observer.browser_resnapshots = hub.resnapshots;
    observer.snapshots_deferred = hub.deferred;
    observer.browsers = hub.subscribers() as u64;
    observer.recording = state.record.as_ref().map(|r| r.view());
    observer.bus = state.bus.as_ref().map(|b| b.view());
    Overview {
        totals: state.totals.clone(),
        rates: state.series.last(),
        sources: state.sources.iter().map(|s| s.view(now_s)).collect(),
        observer,
    }
}

fn build(
    sub: &mut Subscriber,
    state: &State,
    overview: &Overview,
    now_us: u64,
    now_s: u64,
    snapshot: bool,
) -> Frame {
    if snapshot {
        sub.rows.clear();
        sub.ids.clear();
        sub.trace_after = 0;
        sub.total = u64::MAX;
        sub.detail = None;
        sub.series_after = 0;
        sub.hosts_after = 0;
    }
    sub.seq += 1;
    let mut frame = Frame {
        seq: sub.seq,
        now_ms: now_us / 1000,
        overview: overview.clone(),
        table: None,
        trace: Vec::new(),
        trace_skipped: 0,
        detail: None,
        detail_gone: false,
        trace_error: if snapshot {
            sub.trace_error.clone()
        } else {
            None
        },
        series: Vec::new(),
        hosts: Vec::new(),
    };
    if sub.spec.charts {
        let (after, hosts_after) = (sub.series_after, sub.hosts_after);
        frame.series = state
            .series
            .points
            .iter()
            .filter(|p| p.t > after)
            .cloned()
            .collect();
        // Thousands of sources with 15 minutes each would make one frame huge: each gets an
        // equal share of MAX_HOST_POINTS_PER_FRAME, its newest points.
        let share = MAX_HOST_POINTS_PER_FRAME / state.sources.len().max(1);
        frame.hosts = state
            .sources
            .iter()
            .map(|s| {
                let fresh: Vec<_> = s
                    .host_series
                    .iter()
                    .filter(|p| p.t > hosts_after)
                    .cloned()
                    .collect();
                let skip = fresh.len().saturating_sub(share.max(1));
                (
                    s.id.to_string(),
                    fresh.into_iter().skip(skip).collect::<Vec<_>>(),
                )
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if let Some(last) = state.series.points.last() {
            sub.series_after = last.t;
        }
        let newest_host = frame
            .hosts
            .iter()
            .filter_map(|(_, v)| v.last().map(|p| p.t))
            .max();
        sub.hosts_after = sub.hosts_after.max(newest_host.unwrap_or(0));
    }
    if let Some(id) = sub.spec.detail {
        let d = state.detail(id, now_s).map(|d| scrub::detail(sub.role, d));
        match &d {
            Some(d) if sub.detail.as_ref() != Some(d) => frame.detail = Some(d.clone()),
            None if snapshot || sub.detail.is_some() => frame.detail_gone = true,
            _ => {}
        }
        sub.detail = d;
    }
    if let Some(q) = &sub.spec.table {
        let (total, window) = state.table(q, now_s);
        let ids: Vec<u64> = window.iter().map(|c| c.id).collect();
        let mut changed = Vec::new();
        let mut rows = HashMap::with_capacity(window.len());
        for c in window {
            let row = scrub::row(sub.role, c.row(state.source_name(c.source), now_s));
            if sub.rows.get(&c.id) != Some(&row) {
                changed.push(row.clone());
            }
            rows.insert(c.id, row);
        }
        if snapshot || !changed.is_empty() || ids != sub.ids || total != sub.total {
            frame.table = Some(TableDelta {
                total,
                offset: q.offset,
                ids: ids.clone(),
                rows: changed,
            });
        }
        sub.rows = rows;
        sub.ids = ids;
        sub.total = total;
    }
    if let Some(q) = &sub.trace {
        let (mut entries, mut skipped) = state.trace_since(q, sub.trace_after);
        if !snapshot && entries.len() > MAX_TRACE_PER_DELTA {
            // More than a person can read: the newest ones are shown, the rest become a gap row.
            skipped += (entries.len() - MAX_TRACE_PER_DELTA) as u64;
            entries.truncate(MAX_TRACE_PER_DELTA);
        }
        sub.trace_after = state.trace_seq;
        frame.trace = scrub::trace(sub.role, entries);
        frame.trace_skipped = if snapshot { 0 } else { skipped };
    }
    frame
}

/// Compiles a browser's trace filter. A bad one is reported (with the next snapshot) and the
/// trace is shown without the text filter until the browser sends a good one.
fn compile(spec: &ViewSpec, role: Role) -> (Option<TraceFilter>, Option<String>) {
    let Some(q) = spec.trace.clone() else {
        return (None, None);
    };
    let checked = scrub::check_query(role, &q).and_then(|()| TraceFilter::new(q.clone()));
    match checked {
        Ok(f) => (Some(f), None),
        Err(message) => (
            TraceFilter::new(crate::protocol::TraceQuery { text: None, ..q }).ok(),
            Some(message),
        ),
    }
}
