//! The tap handle and per-connection guards: the hot path. Nothing here awaits or blocks on
//! the observer; a full queue increments a drop counter instead.

use crate::config::{TapConfig, TapError};
use sockscope_wire::{
    Closer, ConnClose, ConnOpen, Direction, Dropped, Event, Header, Message, Opcode, Payload,
};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

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
        let c = match ev {
            Event::ConnOpen(_) => &self.conn_open,
            Event::Message(_) => &self.message,
            Event::ConnClose(_) => &self.conn_close,
            Event::Host(_) => &self.host,
            Event::Hello(_) | Event::Dropped(_) => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct Inner {
    pub tx: mpsc::Sender<Event>,
    pub drops: DropCounts,
    next_conn: AtomicU64,
    payload_cap: usize,
    /// Closes that found the queue full: delivered late rather than lost.
    pub late_closes: Mutex<Vec<Event>>,
}

impl Inner {
    fn offer(&self, ev: Event) -> bool {
        match self.tx.try_send(ev) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev)) => {
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
    /// Headers allowed to be mirrored (never cookies or credentials unless you chose so).
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
    let mut n = max;
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    s[..n].to_string()
}

impl Tap {
    /// Starts the sender task on the current tokio runtime.
    pub fn start(cfg: TapConfig) -> Result<Tap, TapError> {
        cfg.validate()?;
        let rt = tokio::runtime::Handle::try_current().map_err(|_| TapError::NoRuntime)?;
        let (tx, rx) = mpsc::channel(cfg.queue);
        let inner = Arc::new(Inner {
            tx,
            drops: DropCounts::default(),
            next_conn: AtomicU64::new(1),
            payload_cap: cfg.payload_cap,
            late_closes: Mutex::new(Vec::new()),
        });
        rt.spawn(crate::sender::run(cfg, rx, Arc::downgrade(&inner)));
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
                closed: AtomicBool::new(true),
            };
        };
        let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let lim = sockscope_wire::Limits::MAX_HEADER_VALUE;
        let ev = Event::ConnOpen(ConnOpen {
            conn: id,
            ts: Some(now_us()),
            ip: info.ip.to_string(),
            user_agent: info
                .user_agent
                .map(|u| clip(u, sockscope_wire::Limits::MAX_USER_AGENT)),
            path: clip(info.path, sockscope_wire::Limits::MAX_PATH),
            headers: info
                .headers
                .into_iter()
                .take(sockscope_wire::Limits::MAX_HEADERS)
                .map(|(k, v)| {
                    Header(
                        clip(k, sockscope_wire::Limits::MAX_HEADER_NAME),
                        clip(v, lim),
                    )
                })
                .collect(),
            subprotocol: info
                .subprotocol
                .map(|p| clip(p, sockscope_wire::Limits::MAX_NAME)),
        });
        // If the open cannot be queued, the whole connection goes unrecorded (and counted),
        // so the observer never sees messages for a connection it does not know.
        let tracked = inner.offer(ev);
        ConnTap {
            inner: tracked.then(|| inner.clone()),
            id,
            closed: AtomicBool::new(!tracked),
        }
    }
}

/// One tapped connection. Records messages and the close; records an abort on drop.
/// Shareable (`Arc<ConnTap>`) between the two directions of a proxied connection.
pub struct ConnTap {
    inner: Option<Arc<Inner>>,
    id: u64,
    closed: AtomicBool,
}

impl ConnTap {
    /// Tap-side connection id (0 when not recorded).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records one whole message; copies at most the payload cap.
    pub fn message(&self, dir: Direction, opcode: Opcode, payload: &[u8]) {
        let Some(inner) = &self.inner else { return };
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let cap = inner.payload_cap.min(payload.len());
        let (text, data) = if inner.payload_cap == 0 {
            (None, None)
        } else if opcode == Opcode::Text {
            let prefix = &payload[..cap];
            let s = match std::str::from_utf8(prefix) {
                Ok(s) => s,
                // Cut inside a character: keep the valid prefix.
                Err(e) => std::str::from_utf8(&prefix[..e.valid_up_to()]).unwrap_or(""),
            };
            (Some(s.to_owned()), None)
        } else {
            (None, Some(Payload(payload[..cap].to_vec())))
        };
        let captured = text
            .as_ref()
            .map(|t| t.len())
            .or(data.as_ref().map(|d| d.0.len()));
        let size = payload.len() as u64;
        let ev = Event::Message(Message {
            conn: self.id,
            ts: Some(now_us()),
            dir,
            opcode,
            size,
            truncated: captured.is_some_and(|c| (c as u64) < size),
            text,
            data,
        });
        inner.offer(ev);
    }

    /// Records the end of the connection. Later calls do nothing.
    pub fn close(&self, code: Option<u16>, reason: Option<&str>, by: Closer) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(inner) = &self.inner else { return };
        let ev = Event::ConnClose(ConnClose {
            conn: self.id,
            ts: Some(now_us()),
            code: code.filter(|c| (1000..=4999).contains(c)),
            reason: reason.map(|r| clip(r.to_string(), sockscope_wire::Limits::MAX_REASON)),
            by,
        });
        if let Err(mpsc::error::TrySendError::Full(ev)) = inner.tx.try_send(ev) {
            // Never lose a close (the observer would keep a phantom open connection):
            // the sender task picks these up on its next round.
            if let Ok(mut late) = inner.late_closes.lock() {
                late.push(ev);
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
