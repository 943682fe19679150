//! The aggregator: one task that owns all observer state. Ingest, the API and `/live` talk to
//! it through one bounded channel; nothing else touches the state.

#[cfg(test)]
mod bounds_tests;
pub mod conn;
pub mod filter;
mod maintenance;
pub mod metrics;
pub mod query;
pub mod series;
pub mod source;
pub mod state;
pub mod store;
#[cfg(test)]
mod tests;
pub mod trace;

use crate::protocol::{
    ConnDetail, ConnPage, Overview, SourceView, TableQuery, TraceEntry, ViewSpec,
};
use crate::server::config::AggConfig;
use crate::server::hub::{overview, Hub};
use series::{HostPoint, Point};
use sockscope_wire::Event;
pub use state::EventError;
use state::State;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Entries per export page: the aggregator is never busy long for one export.
pub const EXPORT_PAGE: usize = 1000;

/// Inputs queued towards the aggregator.
pub const INPUT_QUEUE: usize = 1024;

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// `/api/series`: one point per second, whole observer and per source host metrics.
#[derive(Debug, serde::Serialize)]
pub struct SeriesView {
    pub points: Vec<Point>,
    pub hosts: std::collections::BTreeMap<String, Vec<HostPoint>>,
}

/// Read-only questions, answered on a oneshot.
pub enum Query {
    Overview(oneshot::Sender<Overview>),
    Sources(oneshot::Sender<Vec<SourceView>>),
    Connections(TableQuery, oneshot::Sender<ConnPage>),
    Connection(u64, oneshot::Sender<Option<ConnDetail>>),
    Trace(filter::TraceFilter, oneshot::Sender<Vec<TraceEntry>>),
    Series(oneshot::Sender<SeriesView>),
    /// Prometheus text exposition.
    Metrics(oneshot::Sender<String>),
    /// A page of trace entries older than a sequence number (exports stream these).
    TracePage(
        std::sync::Arc<filter::TraceFilter>,
        u64,
        oneshot::Sender<Vec<TraceEntry>>,
    ),
}

pub enum Input {
    /// A validated batch; `source` is the session's source once its hello was seen.
    Batch {
        source: Option<Arc<str>>,
        events: Vec<Event>,
        /// Number of the batch on its tap session, echoed in error reports.
        batch: u64,
        /// The batch's hello starts a tap session: the source is online from the same step on,
        /// so it cannot be forgotten (`--max-sources`) between its hello and its session.
        opens_session: bool,
        done: Option<oneshot::Sender<Vec<EventError>>>,
        errors: Option<mpsc::Sender<(u64, Vec<EventError>)>>,
    },
    /// A frame that failed decoding or validation, for the counters.
    Rejected,
    /// Something refused at the door (auth, Host, Origin, a limit), for the counters.
    Refused(crate::protocol::Refusal),
    /// Message events of `source` dropped by the per-tap events/s limit.
    RateLimited {
        source: Arc<str>,
        events: u64,
    },
    /// The observer's own host metrics, once a second.
    SelfSample(sockscope_wire::Host),
    /// A tap session ended (it started with its first batch, see `opens_session`).
    SessionEnded(Arc<str>),
    Query(Query),
    Subscribe {
        id: u64,
        tx: mpsc::Sender<String>,
        spec: ViewSpec,
        role: crate::protocol::Role,
    },
    View {
        id: u64,
        spec: ViewSpec,
    },
    /// A browser scrolled its table.
    Window {
        id: u64,
        offset: u32,
        limit: u32,
    },
    Unsubscribe {
        id: u64,
    },
}

/// Cheap, cloneable handle to the aggregator task.
#[derive(Clone)]
pub struct Aggregator {
    tx: mpsc::Sender<Input>,
}

/// The aggregator task stopped; only happens at shutdown.
#[derive(Debug, thiserror::Error)]
#[error("the aggregator task has stopped")]
pub struct Stopped;

impl Aggregator {
    /// Starts the task on the current runtime.
    pub fn spawn(cfg: AggConfig) -> Aggregator {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        tokio::spawn(run(State::new(cfg), rx));
        let me = tx.downgrade();
        // The observer's own CPU and RSS, sampled off the aggregator task.
        tokio::spawn(async move {
            let mut sampler = sockscope_tap::HostSampler::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(h) = sampler.sample(now_us()) else {
                    return;
                };
                match me.upgrade() {
                    Some(tx) if tx.send(Input::SelfSample(h)).await.is_ok() => {}
                    _ => return,
                }
            }
        });
        Aggregator { tx }
    }

    pub async fn send(&self, input: Input) -> Result<(), Stopped> {
        self.tx.send(input).await.map_err(|_| Stopped)
    }

    /// Counts something refused at the door.
    pub async fn send_refused(&self, r: crate::protocol::Refusal) -> Result<(), Stopped> {
        self.send(Input::Refused(r)).await
    }

    /// Asks a question and waits for the answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Query,
    ) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.send(Input::Query(make(tx))).await?;
        rx.await.map_err(|_| Stopped)
    }
}

async fn run(mut state: State, mut rx: mpsc::Receiver<Input>) {
    let mut hub = Hub::default();
    let mut publish = tokio::time::interval(state.cfg.tick);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = Vec::with_capacity(64);
    loop {
        tokio::select! {
            biased;
            _ = second.tick() => state.second(now_us()),
            _ = publish.tick() => hub.publish(&state, now_us(), None),
            n = rx.recv_many(&mut buf, 64) => {
                if n == 0 {
                    return;
                }
                let now = now_us();
                for input in buf.drain(..) {
                    handle(&mut state, &mut hub, input, now);
                }
            }
        }
    }
}

fn handle(state: &mut State, hub: &mut Hub, input: Input, now: u64) {
    let now_s = now / 1_000_000;
    match input {
        Input::Batch {
            source,
            events,
            batch,
            opens_session,
            done,
            errors,
        } => {
            let errs = state.apply(source.as_deref(), events, now);
            if let (true, Some(s)) = (opens_session, &source) {
                state.session(s, true);
            }
            if let Some(done) = done {
                let _ = done.send(errs);
            } else if let (Some(tx), false) = (errors, errs.is_empty()) {
                // Never wait on a tap: if its error queue is full the report is dropped.
                let _ = tx.try_send((batch, errs));
            }
        }
        Input::Rejected => state.stats.ingest_errors += 1,
        Input::Refused(r) => state.stats.refused.count(r),
        Input::RateLimited { source, events } => {
            if let Some(i) = state.source_index(&source) {
                state.sources[i].rate_limited += events;
            }
        }
        Input::SelfSample(h) => {
            state.stats.cpu_pct = h.cpu_pct;
            state.stats.rss = h.rss;
        }
        Input::SessionEnded(source) => state.session(&source, false),
        Input::Query(q) => match q {
            Query::Overview(tx) => {
                let _ = tx.send(overview(state, hub));
            }
            Query::TracePage(q, before, tx) => {
                let _ = tx.send(state.trace_page(&q, before, EXPORT_PAGE));
            }
            Query::Metrics(tx) => {
                let _ = tx.send(state.prometheus(hub.subscribers()));
            }
            Query::Sources(tx) => {
                let _ = tx.send(state.sources.iter().map(|s| s.view(now_s)).collect());
            }
            Query::Connections(q, tx) => {
                let _ = tx.send(state.page(&q, now_s));
            }
            Query::Connection(id, tx) => {
                let _ = tx.send(state.detail(id, now_s));
            }
            Query::Trace(q, tx) => {
                let _ = tx.send(state.trace_since(&q, 0).0);
            }
            Query::Series(tx) => {
                let _ = tx.send(SeriesView {
                    points: state.series.points.iter().cloned().collect(),
                    hosts: state
                        .sources
                        .iter()
                        .map(|s| (s.id.to_string(), s.host_series.iter().cloned().collect()))
                        .collect(),
                });
            }
        },
        Input::Subscribe { id, tx, spec, role } => {
            hub.subscribe(id, tx, spec, role);
            hub.publish(state, now, Some(id));
        }
        Input::View { id, spec } => {
            hub.set_view(id, spec);
            hub.publish(state, now, Some(id));
        }
        Input::Window { id, offset, limit } => {
            if hub.set_window(id, offset, limit) {
                hub.publish(state, now, Some(id));
            }
        }
        Input::Unsubscribe { id } => hub.unsubscribe(id),
    }
}
