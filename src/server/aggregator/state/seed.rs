//! Seeding the state at a restart from the record's index: connection lives put back as they
//! stood, without replaying their events (the tail of the record is replayed after).

use super::State;
use crate::protocol::close_code::CloseClass;
use crate::protocol::HistoryConn;
use crate::server::aggregator::conn::{count_data, CloseInfo, Conn, Rate};
use sockscope_wire::{Closer, Direction};
use std::collections::VecDeque;

impl State {
    /// Puts back one connection life from the record (closed ones in order of closing).
    /// Returns false when it cannot be held: its source is unknown, or the connection limit is
    /// reached with nothing closed to evict.
    pub(crate) fn seed(&mut self, c: &HistoryConn) -> bool {
        let Some(si) = self.source_index(&c.source) else {
            return false;
        };
        let Ok(ip) = c.ip.parse() else {
            return false;
        };
        if self.conns.len() >= self.cfg.max_connections && !self.evict_oldest_closed() {
            self.stats.untracked += 1;
            return false;
        }
        if c.closed_ms.is_none() && self.index.contains_key(&(si, c.conn)) {
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        let user_agent = self.intern_ua(&c.user_agent);
        let closed = c.closed_ms.map(|t| CloseInfo {
            at_us: t * 1000,
            code: c.close_code,
            reason: c.close_reason.clone().map(Into::into),
            by: c.closed_by.unwrap_or(Closer::Abort),
        });
        let conn = Conn {
            id,
            source: si,
            tap_conn: c.conn,
            ip,
            user_agent,
            path: c.path.clone().into(),
            headers: Box::default(),
            subprotocol: None,
            policy: None,
            opened_us: c.opened_ms * 1000,
            closed,
            msgs_in: c.msgs_in,
            msgs_out: c.msgs_out,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            rate: Rate::default(),
            recent: VecDeque::new(),
        };
        self.conns.insert(id, conn);
        self.fit_metadata(id);
        let src = &mut self.sources[si];
        src.refs += 1;
        src.counts.opened += 1;
        self.totals.opened += 1;
        for (dir, msgs, bytes) in [
            (Direction::ClientToServer, c.msgs_in, c.bytes_in),
            (Direction::ServerToClient, c.msgs_out, c.bytes_out),
        ] {
            count_data(&mut self.sources[si].counts, dir, msgs, bytes);
            count_data(&mut self.totals, dir, msgs, bytes);
        }
        match c.closed_ms {
            Some(t) => {
                self.closed_order.push_back((t * 1000, id));
                self.totals.closed += 1;
                self.sources[si].counts.closes[CloseClass::of(c.close_code).index()] += 1;
            }
            None => {
                self.index.insert((si, c.conn), id);
                self.totals.open += 1;
                self.sources[si].open += 1;
            }
        }
        self.totals.tracked = self.conns.len() as u64;
        true
    }
}
