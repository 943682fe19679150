//! `serve --bus nats://… --cluster NAME`: the observer takes the taps' batches from NATS
//! JetStream (the stream `sockscope-tap` publishes to) as well as from tap WebSockets. Each
//! batch is checked like a tap frame, rate-limited, recorded (with its stream sequence) and
//! applied, in stream order. The observer's consumer position is what its record holds: it
//! reads through an ordered consumer starting right after the last sequence the record
//! restored, so a restarted observer — even after `kill -9` — goes on from the first batch it
//! had not recorded: nothing lost, nothing applied twice. Without a record it starts at the
//! stream's beginning and rebuilds its picture from what the stream keeps. A bus it cannot reach is
//! retried with backoff and said once in the log.
//! (This round one member consumes every partition; sharing them out across members is next.)

use crate::server::aggregator::state::EventError;
use crate::server::aggregator::{BatchReply, Input};
use crate::server::ingest::{charge, record};
use crate::server::AppState;
use futures_util::StreamExt;
use sockscope_wire::{decode_batch, Encoding, Event};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default `--cluster`: the durable consumer's name.
pub const DEFAULT_CLUSTER: &str = "sockscope";
/// A source heard over the bus counts as online this long after its last batch (taps send
/// host samples every second).
const QUIET_AFTER: Duration = Duration::from_secs(10);

/// Where the bus is and which cluster this observer belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// `nats://[user:password@]host:4222` (or `tls://…`).
    pub url: String,
    pub cluster: String,
}

impl BusConfig {
    /// Checks the flags; errors name the flag and what to give.
    pub fn new(url: String, cluster: String) -> anyhow::Result<Self> {
        if !(url.starts_with("nats://") || url.starts_with("tls://")) {
            anyhow::bail!(
                "--bus {url:?} must be a NATS URL: nats://host:4222 (or tls://host:4222)"
            );
        }
        let ok = !cluster.is_empty()
            && cluster.len() <= 64
            && cluster
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !ok {
            anyhow::bail!("--cluster {cluster:?} must be 1-64 characters of A-Z a-z 0-9 _ -");
        }
        Ok(BusConfig { url, cluster })
    }
}

/// The consumer's counters, read by the overview and `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct BusStats {
    cluster: String,
    /// A consumer of the stream exists (the client resumes it after a reconnect).
    consuming: AtomicBool,
    connected: AtomicBool,
    consumed_seq: AtomicU64,
    pending: AtomicU64,
    lag_ms: AtomicU64,
    batches: AtomicU64,
    outages: AtomicU64,
}

impl BusStats {
    pub(crate) fn view(&self) -> crate::protocol::BusView {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        crate::protocol::BusView {
            cluster: self.cluster.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            consumed_seq: r(&self.consumed_seq),
            pending: r(&self.pending),
            lag_ms: r(&self.lag_ms),
            batches: r(&self.batches),
            outages: r(&self.outages),
        }
    }

    /// The client (re)connected: reading again once the consumer was made.
    fn up(&self) {
        if self.consuming.load(Ordering::Relaxed) {
            self.connected.store(true, Ordering::Relaxed);
        }
    }

    /// The link went down: an outage, unless it was down already.
    fn down(&self) {
        if self.connected.swap(false, Ordering::Relaxed) {
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A batch read: its sequence, what is left behind it, and when the stream stored it.
    fn read(&self, info: &async_nats::jetstream::message::Info<'_>) {
        self.consumed_seq
            .fetch_max(info.stream_sequence, Ordering::Relaxed);
        self.pending.store(info.pending, Ordering::Relaxed);
        let stored_ms = (info.published.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        let now_ms = sockscope_wire::now_us() / 1000;
        self.lag_ms
            .store(now_ms.saturating_sub(stored_ms), Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts the consumer task; it runs as long as the process.
pub(crate) fn spawn(cfg: BusConfig, app: AppState) {
    let stats = Arc::new(BusStats {
        cluster: cfg.cluster.clone(),
        ..BusStats::default()
    });
    tokio::spawn(async move {
        let _ = app.agg.send(Input::BusAttached(stats.clone())).await;
        // The record is restored before the aggregator answers: then its last bus sequence
        // is known, and consuming goes on right after it.
        let _ = app
            .agg
            .ask(crate::server::aggregator::Query::Overview)
            .await;
        let mut applied = app.recorder.bus_seq();
        let mut backoff = Duration::from_millis(200);
        let mut failures = 0u64;
        loop {
            let started = Instant::now();
            let why = consume(&cfg, &app, &stats, &mut applied).await;
            stats.consuming.store(false, Ordering::Relaxed);
            stats.down();
            if started.elapsed() > Duration::from_secs(10) {
                // It ran a while: a fresh outage.
                failures = 0;
                backoff = Duration::from_millis(200);
            }
            if failures == 0 {
                tracing::warn!(bus = %redacted(&cfg.url), error = %why, "bus unreachable; retrying");
            }
            failures += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

/// The URL without its credentials, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

/// Consumes from the position after `applied` until the bus fails; returns why.
async fn consume(
    cfg: &BusConfig,
    app: &AppState,
    stats: &Arc<BusStats>,
    applied: &mut u64,
) -> String {
    use async_nats::jetstream::consumer::{pull, DeliverPolicy};
    // The client reconnects on its own: its events say when the link is up or down.
    let link = stats.clone();
    let client = match async_nats::ConnectOptions::new()
        .event_callback(move |ev| {
            let link = link.clone();
            async move {
                match ev {
                    async_nats::Event::Connected => link.up(),
                    async_nats::Event::Disconnected => link.down(),
                    _ => {}
                }
            }
        })
        .connection_timeout(Duration::from_secs(3))
        .connect(&cfg.url)
        .await
    {
        Ok(c) => c,
        Err(e) => return format!("cannot connect: {e}"),
    };
    let js = async_nats::jetstream::new(client);
    let stream = match js
        .get_or_create_stream(sockscope_tap::bus::stream_config())
        .await
    {
        Ok(s) => s,
        Err(e) => return format!("cannot use the stream (is JetStream on: nats-server -js?): {e}"),
    };
    let deliver_policy = match *applied {
        0 => DeliverPolicy::All,
        n => DeliverPolicy::ByStartSequence {
            start_sequence: n + 1,
        },
    };
    let consumer = match stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy,
            ..Default::default()
        })
        .await
    {
        Ok(c) => c,
        Err(e) => return format!("cannot read the stream: {e}"),
    };
    let mut messages = match consumer.messages().await {
        Ok(m) => m,
        Err(e) => return format!("cannot read the stream: {e}"),
    };
    tracing::info!(bus = %redacted(&cfg.url), cluster = %cfg.cluster, from = *applied + 1, "consuming the tap stream");
    stats.consuming.store(true, Ordering::Relaxed);
    stats.up();
    let mut heard: HashMap<Arc<str>, Instant> = HashMap::new();
    let mut batches = 0u64;
    let mut sweep = tokio::time::interval(Duration::from_secs(2));
    // What the aggregator refused of a batch (there is no tap to tell): logged.
    let (err_tx, mut err_rx) = tokio::sync::mpsc::channel::<(u64, Vec<EventError>)>(16);
    let why = loop {
        let msg = tokio::select! {
            m = messages.next() => m,
            _ = sweep.tick() => {
                quiet(app, &mut heard).await;
                continue;
            }
            Some((batch, errs)) = err_rx.recv() => {
                tracing::debug!(batch, first = ?errs.first(), count = errs.len(), "bus batch events refused");
                continue;
            }
        };
        let msg = match msg {
            Some(Ok(m)) => m,
            Some(Err(e)) => break format!("reading the stream failed: {e}"),
            None => break "the stream ended".into(),
        };
        let info = msg.info().ok();
        let seq = info.as_ref().map_or(0, |i| i.stream_sequence);
        if seq != 0 && seq <= *applied {
            continue; // applied before (the record has it)
        }
        batches += 1;
        let reply = BatchReply::Report(err_tx.clone());
        apply(app, &mut heard, (batches, reply), msg.payload.clone(), seq).await;
        *applied = (*applied).max(seq);
        if let Some(i) = &info {
            stats.read(i);
        }
    };
    // The sources heard here are not heard any more.
    for (source, _) in heard.drain() {
        let _ = app.agg.send(Input::SessionEnded(source)).await;
    }
    why
}

/// Ends the session of sources not heard for [`QUIET_AFTER`].
async fn quiet(app: &AppState, heard: &mut HashMap<Arc<str>, Instant>) {
    let gone: Vec<Arc<str>> = heard
        .iter()
        .filter(|(_, t)| t.elapsed() > QUIET_AFTER)
        .map(|(s, _)| s.clone())
        .collect();
    for s in gone {
        heard.remove(&s);
        let _ = app.agg.send(Input::SessionEnded(s)).await;
    }
}

/// One batch off the bus: checked, rate-limited, recorded and applied like a tap frame.
async fn apply(
    app: &AppState,
    heard: &mut HashMap<Arc<str>, Instant>,
    (batch, reply): (u64, BatchReply),
    bytes: bytes::Bytes,
    seq: u64,
) {
    let mut events = match decode_batch(Encoding::MsgPack, &bytes, &app.config.wire) {
        Ok(b) => b.events,
        Err(e) => {
            let _ = app.agg.send(Input::Rejected).await;
            tracing::debug!(error = %e, "a bus batch was refused");
            return;
        }
    };
    // Every bus batch leads with its tap's hello.
    let Some(Event::Hello(h)) = events.first() else {
        let _ = app.agg.send(Input::Rejected).await;
        tracing::debug!("a bus batch without a hello first was refused");
        return;
    };
    let source: Arc<str> = h.source.as_str().into();
    let newly = heard.insert(source.clone(), Instant::now()).is_none();
    let dropped = charge(&app.agg, &app.tap_rate, &source, &mut events).await;
    let frame = (dropped == 0).then_some((Encoding::MsgPack, bytes));
    // Recorded with its stream sequence: a restarted observer goes on right after it.
    record(
        &app.recorder,
        Some(source.clone()),
        frame,
        &events,
        Some(seq),
    );
    let input = Input::Batch {
        source: Some(source),
        events,
        batch,
        opens_session: newly,
        credential: None,
        reply,
    };
    let _ = app.agg.send(input).await;
}
