//! All observer state and the rules that apply tap events to it. Owned by the aggregator task.

use super::conn::{count_data, Conn, Rate, StoredMessage, StoredPayload, TapPolicy};
use super::series::Series;
use super::source::Sources;
use super::store::MessageStore;
use super::trace::{preview_hex, preview_text, TraceRec};
use crate::protocol::{HostView, ObserverStats, Refusal, Totals, TraceKind};
use crate::server::config::AggConfig;
use crate::server::error::ErrorCode;
use sockscope_payload::subprotocol;
use sockscope_wire::{Closer, ConnOpen, Counters, Direction, Event, Message};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

mod close;
mod meta;
mod seed;
mod sources;

/// A problem with one event of an otherwise valid batch; the rest of the batch is applied.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EventError {
    pub code: ErrorCode,
    pub index: usize,
    pub message: String,
}

pub(crate) struct State {
    pub(crate) cfg: AggConfig,
    pub(crate) conns: super::conns::Conns,
    /// (source, tap connection id) → observer id, for open connections.
    /// (source, the tap's connection id) → observer id.
    pub(super) index: HashMap<(usize, u64), u64, foldhash::fast::RandomState>,
    pub(crate) sources: Sources,
    source_ids: HashMap<Arc<str>, usize>,
    pub(super) user_agents: HashSet<Arc<str>>,
    pub(super) policies: HashSet<Arc<TapPolicy>>,
    pub(crate) totals: Totals,
    pub(crate) stats: ObserverStats,
    pub(crate) trace: VecDeque<TraceRec>,
    pub(crate) trace_seq: u64,
    pub(crate) series: Series,
    /// (closed at, id) in close order: retention and the limit evict from the front.
    pub(super) closed_order: VecDeque<(u64, u64)>,
    pub(crate) store: MessageStore,
    next_id: u64,
    msg_seq: u64,
    /// Events accepted per second.
    pub(crate) ingest_rate: Rate,
    /// Connections restored from the record as open, whose tap has not spoken of them since
    /// the restart: (source, tap connection id).
    pub(crate) unknown: HashSet<(usize, u64)>,
    /// When the observer restarted with a record (µs), for "state unknown since".
    pub(crate) restarted_us: Option<u64>,
    /// The record's counters, when the observer records.
    pub(crate) record: Option<Arc<crate::server::record::RecordStats>>,
    /// The bus consumer's counters (`serve --bus`).
    pub(crate) bus: Option<Arc<crate::server::bus::BusStats>>,
}

impl State {
    /// A frame that failed decoding or validation.
    pub(crate) fn rejected(&mut self) {
        self.stats.ingest_errors += 1;
    }

    /// Something refused at the door.
    pub(crate) fn refused(&mut self, r: Refusal) {
        self.stats.refused.count(r);
    }

    /// The observer's own CPU and RSS.
    pub(crate) fn self_sample(&mut self, h: &sockscope_wire::Host) {
        self.stats.cpu_pct = h.cpu_pct;
        self.stats.rss = h.rss;
    }

    pub(crate) fn new(cfg: AggConfig) -> Self {
        State {
            store: MessageStore::new(
                cfg.conn_messages,
                cfg.max_stored_messages,
                cfg.payload_budget,
            ),
            series: Series::new(cfg.series_len),
            cfg,
            conns: Default::default(),
            index: HashMap::default(),
            sources: Sources::default(),
            source_ids: HashMap::new(),
            user_agents: HashSet::new(),
            policies: HashSet::new(),
            totals: Totals::default(),
            stats: ObserverStats::default(),
            trace: VecDeque::new(),
            trace_seq: 0,
            closed_order: VecDeque::new(),
            next_id: 1,
            msg_seq: 0,
            ingest_rate: Rate::default(),
            unknown: HashSet::new(),
            restarted_us: None,
            record: None,
            bus: None,
        }
    }

    /// After a restore: the connections still open are of unknown state from `now_us` on,
    /// until their tap speaks of them or retention passes. Returns how many.
    pub(crate) fn restarted(&mut self, now_us: u64) -> usize {
        self.restarted_us = Some(now_us);
        // The charts break where the observer was not running.
        self.series.close_for_gap(self.totals.open);
        self.unknown = self.index.keys().copied().collect();
        self.unknown.len()
    }

    /// "State unknown since restart" for a connection, in ms.
    pub(crate) fn unknown_since_ms(&self, c: &Conn) -> Option<u64> {
        if self.unknown.is_empty() || !c.is_open() {
            return None;
        }
        self.unknown
            .contains(&(c.source, c.tap_conn))
            .then(|| self.restarted_us.unwrap_or(0) / 1000)
    }

    /// Applies a validated batch whose first event is a `hello` unless `source` names the
    /// session's source. Returns the events that could not be applied.
    #[cfg(test)]
    pub(crate) fn apply(
        &mut self,
        source: Option<&str>,
        events: Vec<Event>,
        now_us: u64,
    ) -> Vec<EventError> {
        self.apply_as(source, events, now_us, None)
    }

    /// [`Self::apply`] for a tap that proved `credential` at the door: a source online under
    /// another credential refuses it ([`ErrorCode::SourceTaken`]).
    pub(crate) fn apply_as(
        &mut self,
        source: Option<&str>,
        events: Vec<Event>,
        now_us: u64,
        credential: Option<u64>,
    ) -> Vec<EventError> {
        let mut errors = Vec::new();
        let mut src = source.and_then(|s| self.source_index(s));
        let mut refused_code = ErrorCode::SourceLimit;
        if let Some(si) = src {
            if let Err(message) = self.sources.held_by_another(si, credential, now_us) {
                refused_code = ErrorCode::SourceTaken;
                errors.push(EventError {
                    code: refused_code,
                    index: 0,
                    message,
                });
                return errors;
            }
        }
        let mut refused = false;
        let now_s = now_us / 1_000_000;
        self.stats.events_ingested += events.len() as u64;
        self.ingest_rate.add(now_s, events.len() as u64, 0);
        for (index, ev) in events.into_iter().enumerate() {
            if let Event::Hello(h) = ev {
                match self.hello(h, now_us, credential) {
                    Ok(i) => src = Some(i),
                    Err((code, message)) => {
                        refused = true;
                        refused_code = code;
                        errors.push(EventError {
                            code,
                            index,
                            message,
                        });
                    }
                }
                continue;
            }
            let Some(si) = src else {
                let (code, message) = if refused {
                    (refused_code, "not applied: this batch's hello was refused")
                } else {
                    (
                        ErrorCode::NoHello,
                        "send a hello event before any other event",
                    )
                };
                errors.push(EventError {
                    code,
                    index,
                    message: message.into(),
                });
                continue;
            };
            if !self.unknown.is_empty() {
                // The tap speaks of the connection: its state is known again.
                let conn = match &ev {
                    Event::ConnOpen(o) => Some(o.conn),
                    Event::Message(m) => Some(m.conn),
                    Event::ConnClose(c) => Some(c.conn),
                    _ => None,
                };
                if let Some(c) = conn {
                    self.unknown.remove(&(si, c));
                }
            }
            let res = match ev {
                Event::Hello(_) => unreachable!("handled above"),
                Event::ConnOpen(o) => self.conn_open(si, o, now_us),
                Event::Message(m) => self.message(si, m, now_us, now_s),
                Event::ConnClose(c) => self.conn_close(si, c, now_us),
                Event::Host(h) => {
                    self.sources[si].host = Some(HostView {
                        cpu_pct: h.cpu_pct,
                        mem_used: h.mem_used,
                        mem_total: h.mem_total,
                        rss: h.rss,
                    });
                    Ok(())
                }
                Event::Dropped(d) => {
                    self.sources[si].dropped(d);
                    Ok(())
                }
                Event::Counters(c) => {
                    self.counters(si, c, now_s);
                    Ok(())
                }
            };
            if let Err((code, message)) = res {
                errors.push(EventError {
                    code,
                    index,
                    message,
                });
            }
        }
        if let Some(si) = src {
            self.sources[si].last_seen_us = now_us;
        }
        self.stats.ingest_errors += errors.len() as u64;
        errors
    }

    fn conn_open(
        &mut self,
        si: usize,
        o: ConnOpen,
        now_us: u64,
    ) -> Result<(), (ErrorCode, String)> {
        let mut result = Ok(());
        if let Some(&old) = self.index.get(&(si, o.conn)) {
            // A tap re-announces its open connections after an outage: same id and
            // timestamp means the same connection, which is kept as it is.
            if o.ts
                .is_some_and(|ts| self.conns.get(&old).is_some_and(|c| c.opened_us == ts))
            {
                return Ok(());
            }
            self.close(
                old,
                now_us,
                None,
                Some("replaced by a new conn_open with the same id".into()),
                Closer::Abort,
            );
            result = Err((
                ErrorCode::DuplicateConnection,
                format!(
                    "connection {} was already open; the old record was closed as abort",
                    o.conn
                ),
            ));
        }
        if self.conns.len() >= self.cfg.max_connections && !self.evict_oldest_closed() {
            self.stats.untracked += 1;
            return Err((
                ErrorCode::ConnectionLimit,
                format!(
                    "{} connections are tracked and none is closed; raise --max-connections",
                    self.conns.len()
                ),
            ));
        }
        let id = self.next_id;
        self.next_id += 1;
        let ts = event_time(o.ts, now_us);
        let ip = o.ip.parse().expect("validated by the wire crate");
        let user_agent = self.intern_ua(o.user_agent.as_deref().unwrap_or(""));
        let policy = self.intern_policy(TapPolicy {
            capture: o.capture,
            capture_bytes: o.capture_bytes,
            redacted_headers: o.redacted_headers.into_iter().map(Into::into).collect(),
        });
        self.push_trace(TraceRec {
            seq: 0,
            ts_us: ts,
            conn: id,
            source: si,
            kind: TraceKind::Open,
            dir: None,
            opcode: None,
            size: 0,
            truncated: false,
            code: None,
            by: None,
            text: format!("{} {}", o.ip, preview_text(&o.path)).into(),
            msg_seq: 0,
            flight: false,
        });
        self.conns.insert(
            id,
            Conn {
                id,
                source: si,
                tap_conn: o.conn,
                ip,
                user_agent,
                path: o.path.into(),
                // Whatever the tap did, tokens passed as subprotocols are never stored.
                headers: o
                    .headers
                    .into_iter()
                    .map(|h| {
                        let v = match h.0.eq_ignore_ascii_case("sec-websocket-protocol") {
                            true => subprotocol::mask(&h.1).0.into(),
                            false => h.1.into(),
                        };
                        (h.0.into(), v)
                    })
                    .collect(),
                subprotocol: o.subprotocol.map(|p| subprotocol::mask(&p).0.into()),
                policy,
                opened_us: ts,
                closed: None,
                msgs_in: 0,
                msgs_out: 0,
                bytes_in: 0,
                bytes_out: 0,
                rate: Rate::default(),
                recent: VecDeque::new(),
            },
        );
        self.fit_metadata(id);
        self.index.insert((si, o.conn), id);
        self.sources[si].refs += 1;
        self.totals.opened += 1;
        self.sources[si].counts.opened += 1;
        self.totals.open += 1;
        self.totals.tracked = self.conns.len() as u64;
        self.sources[si].open += 1;
        self.series.current.connects += 1;
        result
    }

    fn message(
        &mut self,
        si: usize,
        m: Message,
        now_us: u64,
        now_s: u64,
    ) -> Result<(), (ErrorCode, String)> {
        let Some(&id) = self.index.get(&(si, m.conn)) else {
            return Err(unknown(m.conn, "message"));
        };
        let ts = event_time(m.ts, now_us);
        let conn = self
            .conns
            .get_mut(&id)
            .expect("index points at a tracked connection");
        // Counters and rates are about data; ping, pong and close frames show in the trace and
        // the connection's messages only.
        // A flight recorder's message was counted in its connection's counters already.
        if !m.opcode.is_control() && !m.flight {
            conn.count(m.dir, 1, m.size, now_s);
            self.count_source(si, m.dir, 1, m.size, now_s);
        }
        let payload = match (m.text, m.data) {
            (Some(t), _) => StoredPayload::Text(t.into()),
            (None, Some(d)) => StoredPayload::Binary(d.0.into()),
            _ => StoredPayload::None,
        };
        let text: Box<str> = match &payload {
            StoredPayload::Text(t) => preview_text(t).into(),
            // A close frame's payload is its reason: show it as text.
            StoredPayload::Binary(b) if m.opcode == sockscope_wire::Opcode::Close => {
                preview_text(&String::from_utf8_lossy(b)).into()
            }
            StoredPayload::Binary(b) => preview_hex(b).into(),
            _ => "".into(),
        };
        self.msg_seq += 1;
        self.push_trace(TraceRec {
            seq: 0,
            ts_us: ts,
            conn: id,
            source: si,
            kind: TraceKind::Message,
            dir: Some(m.dir),
            opcode: Some(m.opcode),
            size: m.size,
            truncated: m.truncated,
            code: None,
            by: None,
            text,
            msg_seq: self.msg_seq,
            flight: m.flight,
        });
        let stored = StoredMessage {
            seq: self.msg_seq,
            ts_us: ts,
            dir: m.dir,
            opcode: m.opcode,
            size: m.size,
            truncated: m.truncated,
            redacted: m.redacted,
            flight: m.flight,
            payload,
        };
        self.store.store(&mut self.conns, id, stored);
        self.stats.payloads_evicted = self.store.payloads_evicted;
        Ok(())
    }

    /// Source, total and series counters for data messages.
    fn count_source(&mut self, si: usize, dir: Direction, msgs: u64, bytes: u64, now_s: u64) {
        self.sources[si].rate.add(now_s, msgs, bytes);
        count_data(&mut self.sources[si].counts, dir, msgs, bytes);
        count_data(&mut self.totals, dir, msgs, bytes);
        count_data(&mut self.series.current, dir, msgs, bytes);
    }

    /// An on-demand tap's per-connection counts: the messages it did not send one by one. A
    /// connection the observer no longer tracks (closed as `abort` meanwhile) is skipped.
    fn counters(&mut self, si: usize, c: Counters, now_s: u64) {
        for cc in c.conns {
            let Some(&id) = self.index.get(&(si, cc.conn)) else {
                continue;
            };
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            let both = [
                (Direction::ClientToServer, cc.msgs_in, cc.bytes_in),
                (Direction::ServerToClient, cc.msgs_out, cc.bytes_out),
            ];
            for &(dir, msgs, bytes) in both.iter().filter(|b| b.1 > 0) {
                conn.count(dir, msgs, bytes, now_s);
            }
            for &(dir, msgs, bytes) in both.iter().filter(|b| b.1 > 0) {
                self.count_source(si, dir, msgs, bytes, now_s);
            }
        }
    }
}

/// Most a tap's clock may run ahead of the observer's before its timestamps are clamped: a
/// time far in the future would keep a closed connection from ever expiring.
pub(crate) const MAX_CLOCK_AHEAD_US: u64 = 60_000_000;

/// An event's time: the tap's, at most [`MAX_CLOCK_AHEAD_US`] past the observer's clock, or
/// the observer's when the tap gave none.
pub(crate) fn event_time(ts: Option<u64>, now_us: u64) -> u64 {
    ts.map_or(now_us, |t| t.min(now_us + MAX_CLOCK_AHEAD_US))
}

fn unknown(conn: u64, what: &str) -> (ErrorCode, String) {
    (
        ErrorCode::UnknownConnection,
        format!(
            "{what} for connection {conn}, which is not open on this source (send conn_open first)"
        ),
    )
}
