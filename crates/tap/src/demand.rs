//! Capture on demand: what the observer says somebody needs, each connection's counters, and
//! its flight recorder (the last messages, shipped only when the connection dies abnormally).
//! The hot path reads one atomic to learn whether its connection is watched.

use sockscope_wire::{ConnCounts, Demand, Direction, Opcode};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The observer's current demand, shared by every connection of the tap.
#[derive(Debug)]
pub(crate) struct DemandState {
    /// Bumped on every change; connections re-read [`DemandState::current`] only then.
    epoch: AtomicU64,
    current: RwLock<Demand>,
    /// Connections with traffic since the last counters report.
    active: Mutex<Vec<Arc<ConnStats>>>,
}

impl Default for DemandState {
    fn default() -> Self {
        DemandState {
            epoch: AtomicU64::new(1),
            current: RwLock::new(Demand::default()),
            active: Mutex::new(Vec::new()),
        }
    }
}

impl DemandState {
    /// Replaces the demand (the observer's latest word, or nothing once it is gone).
    pub(crate) fn set(&self, mut d: Demand) {
        d.conns.sort_unstable();
        d.conns.dedup();
        if let Ok(mut cur) = self.current.write() {
            if *cur == d {
                return;
            }
            *cur = d;
        }
        self.epoch.fetch_add(1, Ordering::Release);
    }

    fn wants(&self, conn: u64) -> bool {
        self.current
            .read()
            .map(|d| d.all || d.conns.binary_search(&conn).is_ok())
            .unwrap_or(false)
    }

    /// The counts of every connection with traffic since the last call.
    pub(crate) fn take_counts(&self) -> Vec<ConnCounts> {
        let active = match self.active.lock() {
            Ok(mut a) => std::mem::take(&mut *a),
            Err(_) => return Vec::new(),
        };
        active.iter().filter_map(|s| s.take()).collect()
    }
}

/// One connection's traffic since its last report.
#[derive(Debug)]
pub(crate) struct ConnStats {
    conn: u64,
    /// Listed in [`DemandState::active`].
    dirty: AtomicBool,
    msgs_in: AtomicU64,
    bytes_in: AtomicU64,
    msgs_out: AtomicU64,
    bytes_out: AtomicU64,
}

impl ConnStats {
    /// Takes the counts (`None` when there were none). Unlisted first, so a message counted
    /// meanwhile lists the connection again and is reported next time.
    pub(crate) fn take(&self) -> Option<ConnCounts> {
        self.dirty.store(false, Ordering::Release);
        let c = ConnCounts {
            conn: self.conn,
            msgs_in: self.msgs_in.swap(0, Ordering::AcqRel),
            bytes_in: self.bytes_in.swap(0, Ordering::AcqRel),
            msgs_out: self.msgs_out.swap(0, Ordering::AcqRel),
            bytes_out: self.bytes_out.swap(0, Ordering::AcqRel),
        };
        (c.msgs_in > 0 || c.msgs_out > 0).then_some(c)
    }
}

/// A message kept by the flight recorder: its first bytes, unmasked until shipped (masking
/// happens only for what leaves the process).
#[derive(Debug)]
pub(crate) struct Recorded {
    pub ts: u64,
    pub dir: Direction,
    pub opcode: Opcode,
    pub size: u64,
    pub head: Vec<u8>,
}

/// The per-connection part of capture on demand.
#[derive(Debug)]
pub(crate) struct OnDemand {
    pub stats: Arc<ConnStats>,
    /// `(epoch << 1) | watched`, as last evaluated.
    seen: AtomicU64,
    flight: Mutex<VecDeque<Recorded>>,
}

impl OnDemand {
    pub(crate) fn new(conn: u64) -> Self {
        OnDemand {
            stats: Arc::new(ConnStats {
                conn,
                dirty: AtomicBool::new(false),
                msgs_in: AtomicU64::new(0),
                bytes_in: AtomicU64::new(0),
                msgs_out: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
            }),
            seen: AtomicU64::new(0),
            flight: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether somebody needs this connection's messages one by one.
    pub(crate) fn watched(&self, state: &DemandState) -> bool {
        let epoch = state.epoch.load(Ordering::Acquire);
        let seen = self.seen.load(Ordering::Relaxed);
        if seen >> 1 == epoch {
            return seen & 1 == 1;
        }
        let w = state.wants(self.stats.conn);
        self.seen.store(epoch << 1 | w as u64, Ordering::Relaxed);
        w
    }

    /// Counts a data message that is not sent one by one.
    pub(crate) fn count(&self, state: &DemandState, dir: Direction, size: u64) {
        let s = &self.stats;
        let (m, b) = match dir {
            Direction::ClientToServer => (&s.msgs_in, &s.bytes_in),
            Direction::ServerToClient => (&s.msgs_out, &s.bytes_out),
        };
        m.fetch_add(1, Ordering::Relaxed);
        b.fetch_add(size, Ordering::Relaxed);
        if !s.dirty.swap(true, Ordering::AcqRel) {
            if let Ok(mut a) = state.active.lock() {
                a.push(s.clone());
            }
        }
    }

    /// Keeps the message's first `max_bytes` in the ring of the last `max_msgs`, reusing the
    /// oldest slot's buffer once the ring is full.
    pub(crate) fn record(
        &self,
        (max_msgs, max_bytes): (usize, usize),
        (ts, dir, opcode): (u64, Direction, Opcode),
        payload: &[u8],
        size: u64,
    ) {
        if max_msgs == 0 {
            return;
        }
        let Ok(mut ring) = self.flight.lock() else {
            return;
        };
        let mut head = if ring.len() >= max_msgs {
            ring.pop_front().map(|r| r.head).unwrap_or_default()
        } else {
            Vec::new()
        };
        head.clear();
        head.extend_from_slice(&payload[..payload.len().min(max_bytes)]);
        ring.push_back(Recorded {
            ts,
            dir,
            opcode,
            size,
            head,
        });
    }

    /// The recorded messages, oldest first; the ring is emptied.
    pub(crate) fn take_flight(&self) -> VecDeque<Recorded> {
        self.flight
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

/// Closes worth a flight recorder: no close handshake (abort, 1006) or a server-side failure
/// (1011 internal error, 1014 bad gateway).
pub(crate) fn abnormal(code: Option<u16>, by: sockscope_wire::Closer) -> bool {
    by == sockscope_wire::Closer::Abort || matches!(code, Some(1006 | 1011 | 1014))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_follows_the_demand_and_caches_per_epoch() {
        let state = DemandState::default();
        let od = OnDemand::new(7);
        assert!(!od.watched(&state));
        state.set(Demand {
            all: false,
            conns: vec![9, 7],
        });
        assert!(od.watched(&state));
        state.set(Demand::default());
        assert!(!od.watched(&state));
        state.set(Demand {
            all: true,
            conns: vec![],
        });
        assert!(od.watched(&state));
    }

    #[test]
    fn counts_are_reported_once_and_listed_again_after_more_traffic() {
        let state = DemandState::default();
        let od = OnDemand::new(3);
        od.count(&state, Direction::ClientToServer, 10);
        od.count(&state, Direction::ClientToServer, 5);
        od.count(&state, Direction::ServerToClient, 7);
        let c = state.take_counts();
        assert_eq!(
            c,
            vec![ConnCounts {
                conn: 3,
                msgs_in: 2,
                bytes_in: 15,
                msgs_out: 1,
                bytes_out: 7
            }]
        );
        assert!(state.take_counts().is_empty());
        od.count(&state, Direction::ServerToClient, 1);
        assert_eq!(state.take_counts()[0].msgs_out, 1);
    }

    #[test]
    fn the_flight_recorder_keeps_the_last_messages_and_their_first_bytes() {
        let od = OnDemand::new(1);
        for i in 0..5u8 {
            let payload = vec![b'a' + i; 10];
            od.record(
                (3, 4),
                (u64::from(i), Direction::ClientToServer, Opcode::Text),
                &payload,
                10,
            );
        }
        let got = od.take_flight();
        let heads: Vec<&[u8]> = got.iter().map(|r| r.head.as_slice()).collect();
        assert_eq!(heads, [&b"cccc"[..], b"dddd", b"eeee"]);
        assert!(got.iter().all(|r| r.size == 10));
        assert!(od.take_flight().is_empty());
    }
}
