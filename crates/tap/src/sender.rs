//! The sender task: drains the queue into batches, sends them as MessagePack, reconnects with
//! capped backoff, and after an outage re-announces open connections so the observer's view
//! converges (the observer treats a repeated `conn_open` with the same timestamp as a no-op).

use crate::config::TapConfig;
use crate::handle::{now_us, Inner};
use crate::host::HostSampler;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use sockscope_wire::{
    encode_events, CaptureMode, ConnOpen, Counters, Demand, Encoding, Event, Hello, Limits, Reply,
};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How often an on-demand tap reports its per-connection counters.
const COUNTERS_INTERVAL: Duration = Duration::from_secs(1);

/// Where batches go: an observer's WebSocket, or NATS JetStream.
enum Link {
    Ws {
        sink: SplitSink<Ws, WsMessage>,
        stream: SplitStream<Ws>,
    },
    #[cfg(feature = "nats")]
    Bus(Box<crate::bus::BusLink>),
}

impl Link {
    /// Sends one encoded batch, the tap's `seq`th (on the bus, once JetStream stored it).
    async fn send(&mut self, bytes: Vec<u8>, seq: u64) -> Result<(), String> {
        match self {
            Link::Ws { sink, .. } => {
                tokio::time::timeout(SEND_TIMEOUT, sink.send(WsMessage::Binary(bytes.into())))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| e.to_string())
            }
            #[cfg(feature = "nats")]
            Link::Bus(b) => b.publish(bytes, seq).await,
        }
    }

    /// The largest message the link takes.
    fn max_message(&self) -> usize {
        match self {
            // The observer's --max-frame-bytes is 16 MiB by default; batches stay far below.
            Link::Ws { .. } => usize::MAX,
            #[cfg(feature = "nats")]
            Link::Bus(b) => b.max_payload(),
        }
    }

    async fn close(self) {
        match self {
            Link::Ws { mut sink, .. } => {
                let _ = sink.close().await;
            }
            #[cfg(feature = "nats")]
            Link::Bus(_) => {}
        }
    }
}

/// Whether `url` names a NATS server rather than an observer.
pub(crate) fn is_bus(url: &str) -> bool {
    url.starts_with("nats://") || url.starts_with("tls://")
}

/// What the task knows of each open connection, to re-announce it after an outage.
struct Open {
    event: ConnOpen,
    /// The observer has been sent this connection's open.
    announced: bool,
}

struct Sender {
    cfg: TapConfig,
    /// For a `wss://` observer.
    tls: Option<Arc<rustls::ClientConfig>>,
    inner: Weak<Inner>,
    instance: u64,
    /// This tap's hello: first on every session, and on the bus first in every batch.
    hello: Event,
    link: Option<Link>,
    open: HashMap<u64, Open>,
    /// Closes of announced connections that happened while the observer was away.
    pending_closes: Vec<Event>,
    backoff: Duration,
    retry_at: Instant,
    failures: u64,
    /// Batches sent so far (numbers them on the bus).
    batches: u64,
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_us());
    h.finish()
}

pub(crate) async fn run(
    cfg: TapConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    mut rx: mpsc::Receiver<Event>,
    inner: Weak<Inner>,
) {
    let mut tick = tokio::time::interval(cfg.host_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut host = HostSampler::new();
    let instance = random_u64();
    let mut s = Sender {
        // Made once: the host name is a system call, and the bus sends it with every batch.
        hello: Event::Hello(Hello {
            source: cfg.source.clone(),
            name: cfg.name.clone(),
            kind: cfg.kind,
            version: env!("CARGO_PKG_VERSION").into(),
            hostname: sysinfo::System::host_name().unwrap_or_default(),
            instance: Some(instance),
            capture: Some(cfg.capture),
        }),
        instance,
        inner,
        link: None,
        open: HashMap::new(),
        pending_closes: Vec::new(),
        backoff: FIRST_BACKOFF,
        retry_at: Instant::now(),
        failures: 0,
        batches: 0,
        cfg,
        tls,
    };
    let mut buf = Vec::with_capacity(s.cfg.batch);
    let on_demand = s.cfg.capture == CaptureMode::OnDemand;
    let mut counters = tokio::time::interval(COUNTERS_INTERVAL);
    counters.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if s.link.is_none() && Instant::now() >= s.retry_at {
            s.connect().await;
        }
        let retry_at = s.retry_at;
        let linked = s.link.is_some();
        let ended = tokio::select! {
            n = rx.recv_many(&mut buf, s.cfg.batch) => n == 0,
            _ = tick.tick() => {
                if let Some(i) = s.inner.upgrade() {
                    buf.extend(host.sample(now_us()).map(Event::Host));
                    buf.push(Event::Dropped(i.drops.snapshot()));
                }
                false
            }
            _ = counters.tick(), if on_demand => {
                if let Some(i) = s.inner.upgrade() {
                    let counts = i.demand.take_counts();
                    for chunk in counts.chunks(Limits::DEFAULT_MAX_EVENTS) {
                        buf.push(Event::Counters(Counters {
                            ts: Some(now_us()),
                            conns: chunk.to_vec(),
                        }));
                    }
                }
                false
            }
            reply = next_reply(&mut s.link), if linked => {
                match reply {
                    Heard::Demand(d) => {
                        if let Some(i) = s.inner.upgrade() {
                            i.demand.set(d);
                        }
                    }
                    Heard::Other => {}
                    Heard::Gone => {
                        tracing::warn!("observer closed the tap connection; reconnecting");
                        s.lost();
                    }
                }
                continue;
            }
            _ = tokio::time::sleep_until(retry_at), if !linked => continue,
        };
        if !ended && buf.len() < s.cfg.batch {
            // Give the batch a few milliseconds to fill: one send per batch, not per event.
            tokio::time::sleep(s.cfg.flush).await;
            while buf.len() < s.cfg.batch {
                match rx.try_recv() {
                    Ok(ev) => buf.push(ev),
                    Err(_) => break,
                }
            }
        }
        if let Some(i) = s.inner.upgrade() {
            // Out of the queue: their payload bytes no longer count against its budget.
            let taken: usize = buf
                .iter()
                .map(|e| match e {
                    Event::Message(m) => m.captured_len(),
                    _ => 0,
                })
                .sum();
            i.queued_bytes
                .fetch_sub(taken, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut late) = i.late_closes.lock() {
                buf.append(&mut late);
            }
        }
        if !buf.is_empty() {
            s.deliver(std::mem::take(&mut buf)).await;
            buf = Vec::with_capacity(s.cfg.batch);
        }
        if ended {
            if let Some(i) = s.inner.upgrade() {
                let last = vec![Event::Dropped(i.drops.snapshot())];
                let bytes = s.encode(&last);
                s.batches += 1;
                if let Some(link) = s.link.as_mut() {
                    let _ = link.send(bytes, s.batches).await;
                }
            }
            if let Some(link) = s.link.take() {
                link.close().await;
            }
            return;
        }
    }
}

/// A connection error with what to do about it.
fn explain(e: &tokio_tungstenite::tungstenite::Error, url: &str) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        // The observer's refusal says why (e.g. "this port speaks TLS: use wss://").
        Error::Http(r) => {
            let body = r
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            format!("{e}: {}", body.trim())
        }
        Error::Tls(_) | Error::Io(_) if url.starts_with("wss://") => format!(
            "{e} (TLS to the observer failed: is its certificate signed by the CA you trust — the system's, or observer_ca / --observer-ca?)"
        ),
        _ => e.to_string(),
    }
}

/// What the observer said on the tap connection.
enum Heard {
    Demand(Demand),
    /// An error report (logged), a ping, anything else.
    Other,
    Gone,
}

/// Reads one observer message.
async fn next_reply(link: &mut Option<Link>) -> Heard {
    let stream = match link.as_mut() {
        None => return Heard::Gone,
        Some(Link::Ws { stream, .. }) => stream,
        // The bus carries no replies (yet): nothing to hear.
        #[cfg(feature = "nats")]
        Some(Link::Bus(_)) => return std::future::pending().await,
    };
    match stream.next().await {
        Some(Ok(WsMessage::Text(t))) => match serde_json::from_str::<Reply>(t.as_str()) {
            Ok(Reply::Demand(d)) => Heard::Demand(d),
            Ok(_) | Err(_) => {
                tracing::warn!(reply = %t.as_str(), "observer rejected tap data");
                Heard::Other
            }
        },
        Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => Heard::Gone,
        Some(Ok(_)) => Heard::Other,
    }
}

impl Sender {
    /// The observer is gone: nobody can be watching, so an on-demand tap goes back to counting.
    fn lost(&mut self) {
        self.link = None;
        if let Some(i) = self.inner.upgrade() {
            i.demand.set(Demand::default());
        }
    }

    async fn connect(&mut self) {
        if is_bus(&self.cfg.observer) {
            return self.connect_bus().await;
        }
        let attempt = async {
            let mut req = self.cfg.observer.as_str().into_client_request()?;
            req.headers_mut().insert(
                "sec-websocket-protocol",
                sockscope_wire::SUBPROTOCOL_MSGPACK
                    .parse()
                    .expect("valid header"),
            );
            if let Some(t) = &self.cfg.token {
                if let Ok(v) = format!("Bearer {}", t.expose()).parse() {
                    req.headers_mut().insert("authorization", v);
                }
            }
            let config = WebSocketConfig::default().read_buffer_size(4096);
            let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
            tokio_tungstenite::connect_async_tls_with_config(req, Some(config), true, connector)
                .await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok((ws, _))) => {
                let (sink, stream) = ws.split();
                self.linked(Link::Ws { sink, stream }).await;
            }
            Ok(Err(e)) => self.unreachable(explain(&e, &self.cfg.observer)),
            Err(_) => self.unreachable("timed out".into()),
        }
    }

    #[cfg(feature = "nats")]
    async fn connect_bus(&mut self) {
        let url = self.cfg.observer.clone();
        let attempt = crate::bus::BusLink::connect(&url, &self.cfg.source, self.instance);
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt).await {
            Ok(Ok(b)) => self.linked(Link::Bus(Box::new(b))).await,
            Ok(Err(why)) => self.unreachable(why),
            Err(_) => self.unreachable("timed out".into()),
        }
    }

    #[cfg(not(feature = "nats"))]
    async fn connect_bus(&mut self) {
        // Refused by TapConfig::validate; never reached.
        self.unreachable("this tap was built without the `nats` feature".into());
    }

    /// Connected: announce everything again.
    async fn linked(&mut self, link: Link) {
        self.link = Some(link);
        if self.failures > 0 {
            tracing::info!(after = self.failures, "tap reconnected to the observer");
        }
        self.failures = 0;
        self.backoff = FIRST_BACKOFF;
        self.resync().await;
    }

    /// Not connected: say why once, and retry with backoff.
    fn unreachable(&mut self, why: String) {
        if self.failures == 0 {
            tracing::warn!(observer = %self.cfg.observer, error = %why, "tap cannot reach the observer; counting drops and retrying");
        }
        self.failures += 1;
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.cfg.max_backoff);
    }

    /// Whether every batch must lead with the hello: on the bus, whoever consumes the stream
    /// may start at any batch.
    fn hello_first(&self) -> bool {
        !matches!(self.link, Some(Link::Ws { .. }) | None)
    }

    /// A batch's bytes, led by the hello where [`Self::hello_first`] asks for it. Batches
    /// arrive here led by it already ([`Self::deliver`]); only the later halves of a batch
    /// split for size are copied to put it in front.
    fn encode(&self, events: &[Event]) -> Vec<u8> {
        if !self.hello_first() || matches!(events.first(), Some(Event::Hello(_))) {
            return encode_events(Encoding::MsgPack, events);
        }
        let mut all = Vec::with_capacity(events.len() + 1);
        all.push(self.hello.clone());
        all.extend_from_slice(events);
        encode_events(Encoding::MsgPack, &all)
    }

    /// After (re)connecting: hello, every open connection, closes missed meanwhile, drops.
    async fn resync(&mut self) {
        let mut events = vec![self.hello.clone()];
        let mut ids: Vec<u64> = self.open.keys().copied().collect();
        ids.sort_unstable();
        events.extend(
            ids.iter()
                .map(|id| Event::ConnOpen(self.open[id].event.clone())),
        );
        events.append(&mut self.pending_closes);
        if let Some(i) = self.inner.upgrade() {
            events.push(Event::Dropped(i.drops.snapshot()));
        }
        for chunk in events.chunks(self.cfg.batch.max(2)) {
            if !self.send(chunk).await {
                // Lost again: closes stay pending, opens stay unannounced.
                self.pending_closes.extend(
                    chunk
                        .iter()
                        .filter(|e| matches!(e, Event::ConnClose(_)))
                        .cloned(),
                );
                return;
            }
        }
        for o in self.open.values_mut() {
            o.announced = true;
        }
    }

    /// Sends `events`, in as many batches as the link's largest message needs (a NATS server
    /// takes 1 MiB per message by default); false when the link was lost.
    async fn send(&mut self, events: &[Event]) -> bool {
        let mut todo = vec![events];
        while let Some(part) = todo.pop() {
            let Some(max) = self.link.as_ref().map(Link::max_message) else {
                return false;
            };
            let bytes = self.encode(part);
            if bytes.len() > max && part.len() > 1 {
                let (a, b) = part.split_at(part.len() / 2);
                todo.push(b);
                todo.push(a);
                continue;
            }
            let Some(link) = self.link.as_mut() else {
                return false;
            };
            self.batches += 1;
            if let Err(why) = link.send(bytes, self.batches).await {
                tracing::warn!(error = %why, "tap lost the observer while sending; reconnecting");
                self.lost();
                self.retry_at = Instant::now();
                return false;
            }
        }
        true
    }

    async fn deliver(&mut self, mut events: Vec<Event>) {
        if self.hello_first() && !matches!(events.first(), Some(Event::Hello(_))) {
            events.insert(0, self.hello.clone());
        }
        let sent = self.link.is_some() && self.send(&events).await;
        for ev in events {
            self.track(ev, sent);
        }
    }

    /// Keeps the open-connection registry; counts what an outage cost.
    fn track(&mut self, ev: Event, sent: bool) {
        let inner = self.inner.upgrade();
        let drop = |ev: &Event| {
            if let Some(i) = &inner {
                i.drops.count(ev)
            }
        };
        match ev {
            Event::ConnOpen(o) => {
                self.open.insert(
                    o.conn,
                    Open {
                        event: o,
                        announced: sent,
                    },
                );
            }
            Event::ConnClose(ref c) => match self.open.remove(&c.conn) {
                Some(o) if !sent && o.announced => self.pending_closes.push(ev),
                Some(o) if !sent => {
                    // Opened and closed while the observer was away: count both.
                    drop(&Event::ConnOpen(o.event));
                    drop(&ev);
                }
                _ => {}
            },
            Event::Message(_) | Event::Host(_) | Event::Counters(_) if !sent => drop(&ev),
            _ => {}
        }
    }
}
