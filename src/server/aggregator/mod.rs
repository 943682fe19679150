//! The aggregator: one task that owns all observer state, and its hub (the per-browser views,
//! published on the task's own clock). Two bounded queues feed it: tap input, and the
//! commands of browsers, the API and the door; nothing else touches the state.

#[cfg(test)]
mod bounds_tests;
pub(crate) mod conn;
mod conns;
pub(crate) mod demand;
pub(crate) mod filter;
pub(crate) mod hub;
mod maintenance;
pub(crate) mod metrics;
pub(crate) mod query;
pub(crate) mod series;
pub(crate) mod source;
pub(crate) mod state;
pub(crate) mod store;
#[cfg(test)]
mod tests;
pub(crate) mod trace;

use crate::protocol::{
    ConnDetail, ConnPage, Overview, SeriesView, SourceView, TableQuery, TraceEntry, ViewSpec,
};
use crate::server::config::AggConfig;
use hub::{overview, Hub};
use sockscope_wire::Event;
pub(crate) use state::EventError;
use state::State;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Entries per export page: the aggregator is never busy long for one export.
pub(crate) const EXPORT_PAGE: usize = 1000;

/// Tap inputs queued towards the aggregator.
pub(crate) const INPUT_QUEUE: usize = 1024;
/// Browser/API commands queued towards the aggregator.
pub(crate) const COMMAND_QUEUE: usize = 256;
/// Commands handled per turn of the loop while tap input is waiting: commands are never
/// starved, and a burst of them delays ingest by at most this many.
pub(crate) const COMMANDS_PER_TURN: usize = 8;

pub(crate) use sockscope_wire::now_us;

/// Read-only questions, answered on a oneshot.
pub(crate) enum Query {
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

/// What taps feed the aggregator, on its own queue: browser and API work never delays it.
pub(crate) enum Input {
    /// A validated batch; `source` is the session's source once its hello was seen.
    Batch {
        source: Option<Arc<str>>,
        events: Vec<Event>,
        /// Number of the batch on its tap session, echoed in error reports.
        batch: u64,
        /// The batch's hello starts a tap session: the source is online from the same step on,
        /// so it cannot be forgotten (`--max-sources`) between its hello and its session.
        opens_session: bool,
        /// What the tap proved at the door: its sources are bound to it.
        credential: Option<u64>,
        reply: BatchReply,
    },
    /// A frame that failed decoding or validation, for the counters.
    Rejected,
    /// Message events of `source` dropped by the per-tap events/s limit.
    RateLimited { source: Arc<str>, events: u64 },
    /// The observer's own host metrics, once a second.
    SelfSample(sockscope_wire::Host),
    /// A tap session ended (it started with its first batch, see `opens_session`).
    SessionEnded(Arc<str>),
    /// The bus consumer's counters, shown with the observer's own (`serve --bus`).
    BusAttached(Arc<crate::server::bus::BusStats>),
}

/// Where the errors of a batch go.
pub(crate) enum BatchReply {
    /// `POST /ingest` waits for them (an empty list: all applied).
    Wait(oneshot::Sender<Vec<EventError>>),
    /// A tap session is told when there are some, never waited on: if its queue is full the
    /// report is dropped.
    Report(mpsc::Sender<(u64, Vec<EventError>)>),
}

/// What browsers, the API and the door ask of the aggregator, on the second queue.
pub(crate) enum Command {
    Query(Query),
    /// Something refused at the door (auth, Host, Origin, a limit), for the counters.
    Refused(crate::protocol::Refusal),
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
pub(crate) struct Aggregator {
    inputs: mpsc::Sender<Input>,
    commands: mpsc::Sender<Command>,
    demands: watch::Receiver<Arc<demand::Demands>>,
    /// When the task last turned (µs since the epoch): `/healthz` reads it without asking.
    alive: Arc<std::sync::atomic::AtomicU64>,
}

/// The aggregator task stopped; only happens at shutdown.
#[derive(Debug, thiserror::Error)]
#[error("the aggregator task has stopped")]
pub(crate) struct Stopped;

impl Aggregator {
    /// Starts the task on the current runtime.
    #[cfg(test)]
    pub(crate) fn spawn(cfg: AggConfig) -> Aggregator {
        Self::spawn_restoring(cfg, None)
    }

    /// Starts the task; with a record, its state is first restored from it (input waits
    /// meanwhile, in the queue).
    pub(crate) fn spawn_restoring(
        cfg: AggConfig,
        restore: Option<crate::server::record::restore::Restore>,
    ) -> Aggregator {
        let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (demand_tx, demands) = watch::channel(Arc::default());
        let alive = Arc::new(std::sync::atomic::AtomicU64::new(now_us()));
        let alive2 = alive.clone();
        tokio::spawn(async move {
            let mut state = State::new(cfg);
            if let Some(r) = restore {
                state.record = Some(r.stats.clone());
                state = match tokio::task::spawn_blocking(move || r.into_state(state)).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!("restoring the record failed: {e}");
                        return;
                    }
                };
            }
            run(state, input_rx, command_rx, (demand_tx, alive2)).await
        });
        let me = inputs.downgrade();
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
        Aggregator {
            inputs,
            commands,
            demands,
            alive,
        }
    }

    /// Microseconds since the task's last turn (it turns at least once a second).
    pub(crate) fn since_last_turn_us(&self) -> u64 {
        now_us().saturating_sub(self.alive.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// What on-demand taps must send one by one; changes as browsers change their views.
    pub(crate) fn demands(&self) -> watch::Receiver<Arc<demand::Demands>> {
        self.demands.clone()
    }

    /// Queues tap input (waits for room: a tap session is paced by the aggregator).
    pub(crate) async fn send(&self, input: Input) -> Result<(), Stopped> {
        self.inputs.send(input).await.map_err(|_| Stopped)
    }

    /// Queues a browser/API command.
    pub(crate) async fn command(&self, command: Command) -> Result<(), Stopped> {
        self.commands.send(command).await.map_err(|_| Stopped)
    }

    /// Counts something refused at the door.
    pub(crate) async fn send_refused(&self, r: crate::protocol::Refusal) -> Result<(), Stopped> {
        self.command(Command::Refused(r)).await
    }

    /// Asks a question and waits for the answer.
    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Query,
    ) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Query(make(tx))).await?;
        rx.await.map_err(|_| Stopped)
    }
}

async fn run(
    mut state: State,
    mut inputs: mpsc::Receiver<Input>,
    mut commands: mpsc::Receiver<Command>,
    (demands, alive): (
        watch::Sender<Arc<demand::Demands>>,
        Arc<std::sync::atomic::AtomicU64>,
    ),
) {
    let mut hub = Hub::default();
    let mut publish = tokio::time::interval(state.cfg.tick);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = Vec::with_capacity(64);
    let mut cbuf = Vec::with_capacity(COMMANDS_PER_TURN);
    loop {
        // One clock reading per turn: everything handled in it (and every frame it
        // publishes) agrees on "now".
        tokio::select! {
            biased;
            _ = second.tick() => {
                let now = now_us();
                alive.store(now, std::sync::atomic::Ordering::Relaxed);
                state.second(now);
                // New sources and connections can fall under a view that did not change.
                update_demands(&mut state, &hub, &demands);
            }
            _ = publish.tick() => hub.publish(&state, now_us(), None),
            n = inputs.recv_many(&mut buf, 64) => {
                if n == 0 {
                    return;
                }
                let now = now_us();
                for input in buf.drain(..) {
                    handle_input(&mut state, input, now);
                }
                // Commands still get a turn while taps keep the input queue busy.
                while cbuf.len() < COMMANDS_PER_TURN {
                    match commands.try_recv() {
                        Ok(c) => cbuf.push(c),
                        Err(_) => break,
                    }
                }
                let views_changed = !cbuf.is_empty();
                for c in cbuf.drain(..) {
                    handle_command(&mut state, &mut hub, c, now);
                }
                if views_changed {
                    update_demands(&mut state, &hub, &demands);
                }
            }
            n = commands.recv_many(&mut cbuf, COMMANDS_PER_TURN) => {
                if n == 0 {
                    return;
                }
                let now = now_us();
                for c in cbuf.drain(..) {
                    handle_command(&mut state, &mut hub, c, now);
                }
                update_demands(&mut state, &hub, &demands);
            }
        }
    }
}

/// Recomputes what on-demand taps must stream; tap sessions hear of it only if it changed.
fn update_demands(state: &mut State, hub: &Hub, tx: &watch::Sender<Arc<demand::Demands>>) {
    let d = demand::compute(state, hub.views());
    for s in &mut state.sources {
        s.streaming = d.streaming(&s.id);
    }
    tx.send_if_modified(|cur| {
        let changed = **cur != d;
        if changed {
            *cur = Arc::new(d);
        }
        changed
    });
}

fn handle_input(state: &mut State, input: Input, now: u64) {
    match input {
        Input::Batch {
            source,
            events,
            batch,
            opens_session,
            credential,
            reply,
        } => {
            let errs = state.apply_as(source.as_deref(), events, now, credential);
            if let (true, Some(s)) = (opens_session, &source) {
                state.session(s, true);
            }
            match reply {
                BatchReply::Wait(done) => {
                    let _ = done.send(errs);
                }
                BatchReply::Report(tx) if !errs.is_empty() => {
                    // Never wait on a tap: if its error queue is full the report is dropped.
                    let _ = tx.try_send((batch, errs));
                }
                BatchReply::Report(_) => {}
            }
        }
        Input::Rejected => state.rejected(),
        Input::RateLimited { source, events } => state.rate_limited(&source, events),
        Input::SelfSample(h) => state.self_sample(&h),
        Input::SessionEnded(source) => state.session(&source, false),
        Input::BusAttached(stats) => state.bus = Some(stats),
    }
}

fn handle_command(state: &mut State, hub: &mut Hub, command: Command, now: u64) {
    match command {
        Command::Refused(r) => state.refused(r),
        Command::Query(q) => answer(state, hub, q, now),
        Command::Subscribe { id, tx, spec, role } => {
            hub.subscribe(id, tx, spec, role);
            hub.publish(state, now, Some(id));
        }
        Command::View { id, spec } => {
            hub.set_view(id, spec);
            hub.publish(state, now, Some(id));
        }
        Command::Window { id, offset, limit } => {
            if hub.set_window(id, offset, limit) {
                hub.publish(state, now, Some(id));
            }
        }
        Command::Unsubscribe { id } => hub.unsubscribe(id),
    }
}

fn answer(state: &mut State, hub: &Hub, q: Query, now: u64) {
    let now_s = now / 1_000_000;
    match q {
        Query::Overview(tx) => {
            let _ = tx.send(overview(state, hub, now));
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
    }
}
