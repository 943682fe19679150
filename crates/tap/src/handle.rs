//! The tap handle and per-connection guards: the hot path. Nothing here awaits or blocks on
//! the observer; a full queue increments a drop counter instead. What leaves the process is
//! decided here too: the header allow-list, the payload mode, masking and truncation.

use crate::config::{PayloadMode, TapConfig, TapError};
use crate::demand::{abnormal, DemandState, OnDemand, Recorded};
use sockscope_payload::redact::Redactor;
use sockscope_payload::subprotocol;
use sockscope_wire::{
    CaptureMode, Closer, ConnClose, ConnOpen, Counters, Direction, Dropped, Event, Header, Limits,
    Message, Opcode, Payload,
};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

pub(crate) use sockscope_wire::now_us;

/// Events the tap could not deliver, by kind (cumulative).
#[derive(Debug, Default)]
pub struct DropCounts {
    pub conn_open: AtomicU64,
    pub message: AtomicU64,
    pub conn_close: AtomicU64,
    pub host: AtomicU64,
}

impl DropCounts {
    pub fn snapshot(&self) -> Dropped {
        Dropped {
            conn_open: self.conn_open.load(Ordering::Relaxed),
            message: self.message.load(Ordering::Relaxed),
            conn_close: self.conn_close.load(Ordering::Relaxed),
            host: self.host.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count(&self, ev: &Event) {
        if let Event::Counters(c) = ev {
            // The messages those counts stood for are lost to the observer.
            let n: u64 = c.conns.iter().map(|c| c.msgs_in + c.msgs_out).sum();
            self.message.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let c = match ev {
            Event::ConnOpen(_) => &self.conn_open,
            Event::Message(_) => &self.message,
            Event::ConnClose(_) => &self.conn_close,
            Event::Host(_) => &self.host,
            Event::Hello(_) | Event::Dropped(_) | Event::Counters(_) => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct Inner {
    pub tx: mpsc::Sender<Event>,
    pub drops: DropCounts,
    next_conn: AtomicU64,
    /// Payload mode per path, header allow-list (lower-cased).
    cfg: TapConfig,
    redactor: Redactor,
    /// Closes that found the queue full: delivered late rather than lost.
    pub late_closes: Mutex<Vec<Event>>,
    /// What the observer needs now (capture on demand).
    pub demand: DemandState,
    /// Captured payload bytes in the queue (bounded by `queue_bytes`).
    pub queued_bytes: std::sync::atomic::AtomicUsize,
}

impl Inner {
    /// Whether `bytes` more payload fit the queue's byte budget.
    fn has_room(&self, bytes: usize) -> bool {
        self.queued_bytes.load(Ordering::Relaxed) + bytes <= self.cfg.queue_bytes
    }

    fn offer(&self, ev: Event) -> bool {
        let bytes = match &ev {
            Event::Message(m) => m.captured_len(),
            _ => 0,
        };
        if !self.has_room(bytes) {
            self.drops.count(&ev);
            return false;
        }
        self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        match self.tx.try_send(ev) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev)) => {
                self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.drops.count(&ev);
                false
            }
        }
    }
}

/// Handle to a running tap; cheap to clone. A disabled tap does nothing at all.
#[derive(Clone)]
pub struct Tap {
    inner: Option<Arc<Inner>>,
}

/// What the tap records about a new connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    /// Path and query.
    pub path: String,
    /// Request headers. Only those on [`TapConfig::mirror_headers`] are mirrored; the names
    /// of the others are reported as withheld.
    pub headers: Vec<(String, String)>,
    pub subprotocol: Option<String>,
}

impl ConnInfo {
    pub fn new(ip: IpAddr, path: impl Into<String>) -> Self {
        ConnInfo {
            ip,
            user_agent: None,
            path: path.into(),
            headers: Vec::new(),
            subprotocol: None,
        }
    }
}

fn clip(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    sockscope_wire::clip(&s, max).to_string()
}

impl Tap {
    /// Starts the sender task on the current tokio runtime.
    pub fn start(cfg: TapConfig) -> Result<Tap, TapError> {
        cfg.validate()?;
        let redactor = Redactor::new(&cfg.redact)?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| TapError::NoRuntime)?;
        let tls = match cfg.observer.starts_with("wss://") {
            true => Some(crate::tls::client_config(crate::tls::ClientTls {
                ca: cfg.observer_ca.as_deref(),
                identity: cfg
                    .client_cert
                    .as_ref()
                    .map(|(c, k)| (c.as_path(), k.as_path())),
                ca_flag: "observer CA file (--observer-ca)",
                identity_flags: ("--tap-cert", "--tap-key"),
            })?),
            false => None,
        };
        let (tx, rx) = mpsc::channel(cfg.queue);
        let mut own = cfg.clone();
        for h in &mut own.mirror_headers {
            *h = h.trim().to_ascii_lowercase();
        }
        let inner = Arc::new(Inner {
            tx,
            drops: DropCounts::default(),
            next_conn: AtomicU64::new(1),
            cfg: own,
            redactor,
            late_closes: Mutex::new(Vec::new()),
            demand: DemandState::default(),
            queued_bytes: std::sync::atomic::AtomicUsize::new(0),
        });
        rt.spawn(crate::sender::run(cfg, tls, rx, Arc::downgrade(&inner)));
        Ok(Tap { inner: Some(inner) })
    }

    /// A tap that records nothing (for "tap off").
    pub fn disabled() -> Tap {
        Tap { inner: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Drops counted so far.
    pub fn drops(&self) -> Dropped {
        self.inner
            .as_ref()
            .map(|i| i.drops.snapshot())
            .unwrap_or_default()
    }

    /// Records a new connection and returns its guard. Dropping the guard without
    /// [`ConnTap::close`] records an `abort`.
    pub fn open(&self, info: ConnInfo) -> ConnTap {
        let Some(inner) = &self.inner else {
            return ConnTap {
                inner: None,
                id: 0,
                mode: PayloadMode::Off,
                closed: AtomicBool::new(true),
                on_demand: None,
            };
        };
        let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let mode = inner.cfg.payload_mode(&info.path);
        let (capture, capture_bytes) = mode.wire();
        let (headers, redacted_headers) =
            allowed_headers(info.headers, &inner.cfg.mirror_headers, &inner.redactor);
        let path = match inner.redactor.redact_path(&info.path) {
            (std::borrow::Cow::Owned(p), _) => p,
            (std::borrow::Cow::Borrowed(_), _) => info.path,
        };
        let ev = Event::ConnOpen(ConnOpen {
            conn: id,
            ts: Some(now_us()),
            ip: info.ip.to_string(),
            user_agent: info.user_agent.map(|u| clip(u, Limits::MAX_USER_AGENT)),
            path: clip(path, Limits::MAX_PATH),
            headers,
            // Browser apps pass tokens as subprotocols: only protocol names leave as they are.
            subprotocol: info
                .subprotocol
                .map(|p| clip(subprotocol::mask(&p).0.into_owned(), Limits::MAX_NAME)),
            capture: Some(capture),
            capture_bytes,
            redacted_headers,
        });
        // If the open cannot be queued, the whole connection goes unrecorded (and counted),
        // so the observer never sees messages for a connection it does not know.
        let tracked = inner.offer(ev);
        let on_demand = (inner.cfg.capture == CaptureMode::OnDemand && mode != PayloadMode::Off)
            .then(|| Box::new(OnDemand::new(id)));
        ConnTap {
            inner: tracked.then(|| inner.clone()),
            id,
            mode,
            closed: AtomicBool::new(!tracked),
            on_demand,
        }
    }
}

/// Splits request headers into those on the allow-list (mirrored masked, then clipped to the
/// wire limits) and the names of the rest (withheld), lower-cased and without repeats.
fn allowed_headers(
    headers: Vec<(String, String)>,
    allow: &[String],
    redactor: &sockscope_payload::redact::Redactor,
) -> (Vec<Header>, Vec<String>) {
    let mut kept = Vec::new();
    let mut withheld: Vec<String> = Vec::new();
    for (k, v) in headers {
        let name = k.trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        if allow.contains(&name) {
            if kept.len() < Limits::MAX_HEADERS {
                let v = match name.as_str() {
                    "sec-websocket-protocol" => subprotocol::mask(&v).0.into_owned(),
                    _ => v,
                };
                let v = match redactor.redact_str(&v) {
                    (std::borrow::Cow::Owned(masked), _) => masked,
                    (std::borrow::Cow::Borrowed(_), _) => v,
                };
                kept.push(Header(
                    clip(name, Limits::MAX_HEADER_NAME),
                    clip(v, Limits::MAX_HEADER_VALUE),
                ));
            }
        } else {
            let name = clip(name, Limits::MAX_HEADER_NAME);
            if withheld.len() < Limits::MAX_HEADERS && !withheld.contains(&name) {
                withheld.push(name);
            }
        }
    }
    (kept, withheld)
}

/// One tapped connection. Records messages and the close; records an abort on drop.
/// Shareable (`Arc<ConnTap>`) between the two directions of a proxied connection.
pub struct ConnTap {
    inner: Option<Arc<Inner>>,
    id: u64,
    mode: PayloadMode,
    closed: AtomicBool,
    /// Counters and flight recorder, for an on-demand tap.
    on_demand: Option<Box<OnDemand>>,
}

impl ConnTap {
    /// Tap-side connection id (0 when not recorded).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The payload mode this connection got.
    pub fn payload_mode(&self) -> PayloadMode {
        self.mode
    }

    /// Bytes of the next message worth capturing: the mode's cap, or on demand while nobody
    /// watches, what the flight recorder keeps. A proxy unmasks and inflates only this much.
    pub fn capture_len(&self) -> usize {
        let Some(inner) = &self.inner else { return 0 };
        let cap = self.mode.cap();
        match &self.on_demand {
            Some(od) if !od.watched(&inner.demand) => match inner.cfg.flight_messages {
                0 => 0,
                _ => cap.min(inner.cfg.flight_bytes),
            },
            _ => cap,
        }
    }

    /// Records one whole message: masks its payload, then copies at most the mode's cap.
    /// Runs on the caller's task, so it stays cheap: room in the queue is taken first, so a
    /// full queue costs one counter and nothing is masked or copied; a payload without a
    /// masked key name is scanned once and not parsed.
    pub fn message(&self, dir: Direction, opcode: Opcode, payload: &[u8]) {
        self.message_seen(dir, opcode, payload, payload.len() as u64);
    }

    /// Records a message the caller saw only in part, as a proxy relaying bytes does: its
    /// first bytes (`payload`, at least the mode's cap when the message is that long) and its
    /// whole `size`. Masked and cut like [`ConnTap::message`]; marked truncated when
    /// `payload` is shorter than `size`.
    pub fn message_seen(&self, dir: Direction, opcode: Opcode, payload: &[u8], size: u64) {
        let Some(inner) = &self.inner else { return };
        if self.closed.load(Ordering::Relaxed) || self.mode == PayloadMode::Off {
            return;
        }
        if let Some(od) = &self.on_demand {
            if !od.watched(&inner.demand) {
                if !opcode.is_control() {
                    od.count(&inner.demand, dir, size);
                }
                if inner.cfg.flight_messages > 0 {
                    let keep = self.mode.cap().min(inner.cfg.flight_bytes);
                    let limits = (inner.cfg.flight_messages, keep);
                    od.record(limits, (now_us(), dir, opcode), payload, size);
                }
                return;
            }
        }
        // Room first (events and payload bytes): a full queue costs a counter, no copy.
        let room = inner.has_room(payload.len().min(self.mode.cap()));
        let Some(permit) = room.then(|| inner.tx.try_reserve().ok()).flatten() else {
            inner.drops.message.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let m = self.captured(inner, (now_us(), dir, opcode), payload, size);
        inner
            .queued_bytes
            .fetch_add(m.captured_len(), Ordering::Relaxed);
        permit.send(Event::Message(m));
    }

    /// The message event: the payload masked, then cut to the mode's cap.
    fn captured(
        &self,
        inner: &Inner,
        (ts, dir, opcode): (u64, Direction, Opcode),
        payload: &[u8],
        size: u64,
    ) -> Message {
        let cap = self.mode.cap();
        let mut m = Message {
            conn: self.id,
            ts: Some(ts),
            dir,
            opcode,
            size,
            flight: false,
            text: None,
            data: None,
            truncated: false,
            redacted: 0,
        };
        let partial = (payload.len() as u64) < size;
        if cap > 0 && opcode == Opcode::Text {
            let (text, cut_bad) = match std::str::from_utf8(payload) {
                Ok(s) => (s, false),
                // Not UTF-8 (or cut inside a character): keep the valid prefix.
                Err(e) => (
                    std::str::from_utf8(&payload[..e.valid_up_to()]).unwrap_or(""),
                    true,
                ),
            };
            let c = inner.redactor.capture_text(text, cap);
            m.truncated = c.truncated || cut_bad || partial;
            m.redacted = c.redacted;
            m.text = Some(c.payload.into_owned());
        } else if cap > 0 {
            let c = inner.redactor.capture_bytes(payload, cap);
            m.truncated = c.truncated || partial;
            m.redacted = c.redacted;
            m.data = Some(Payload(c.payload.into_owned()));
        }
        m
    }

    /// On demand, at the close: the counts not yet reported, then (if the connection died
    /// abnormally) the flight recorder's messages, so they reach the observer before the close.
    fn flush_on_demand(&self, inner: &Inner, code: Option<u16>, by: Closer) {
        let Some(od) = &self.on_demand else { return };
        if let Some(c) = od.stats.take() {
            inner.offer(Event::Counters(Counters {
                ts: Some(now_us()),
                conns: vec![c],
            }));
        }
        let flight = od.take_flight();
        if !abnormal(code, by) {
            return;
        }
        for Recorded {
            ts,
            dir,
            opcode,
            size,
            head,
        } in flight
        {
            let mut m = self.captured(inner, (ts, dir, opcode), &head, size);
            m.flight = true;
            inner.offer(Event::Message(m));
        }
    }

    /// Records the end of the connection. Later calls do nothing.
    pub fn close(&self, code: Option<u16>, reason: Option<&str>, by: Closer) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(inner) = &self.inner else { return };
        self.flush_on_demand(inner, code, by);
        let ev = Event::ConnClose(ConnClose {
            conn: self.id,
            ts: Some(now_us()),
            code: code.filter(|c| (1000..=4999).contains(c)),
            // A peer's close reason is payload: not sent when payloads are not captured (the
            // proxy's own reasons, for aborts and shutdown, are).
            reason: reason
                .filter(|_| self.mode.cap() > 0 || matches!(by, Closer::Proxy | Closer::Abort))
                .map(|r| {
                    clip(
                        inner.redactor.redact_str(r).0.into_owned(),
                        Limits::MAX_REASON,
                    )
                }),
            by,
        });
        if let Err(mpsc::error::TrySendError::Full(ev)) = inner.tx.try_send(ev) {
            // Never lose a close (the observer would keep a phantom open connection):
            // the sender task picks these up on its next round.
            match inner.late_closes.lock() {
                Ok(mut late) if late.len() < crate::config::MAX_LATE_CLOSES => late.push(ev),
                _ => inner.drops.count(&ev),
            }
        }
    }
}

impl Drop for ConnTap {
    fn drop(&mut self) {
        self.close(
            None,
            Some("connection task ended without a close"),
            Closer::Abort,
        );
    }
}
