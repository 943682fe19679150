//! Ending connections: a tap's close, aborts when the observer gives up on some, and what a
//! close records (counts, the close order for retention, the trace).

use super::{event_time, unknown, State};
use crate::protocol::close_code::CloseClass;
use crate::protocol::TraceKind;
use crate::server::aggregator::conn::CloseInfo;
use crate::server::aggregator::trace::{preview_text, TraceRec};
use crate::server::error::ErrorCode;
use sockscope_wire::{Closer, ConnClose};

impl State {
    pub(super) fn conn_close(
        &mut self,
        si: usize,
        c: ConnClose,
        now_us: u64,
    ) -> Result<(), (ErrorCode, String)> {
        let Some(&id) = self.index.get(&(si, c.conn)) else {
            return Err(unknown(c.conn, "conn_close"));
        };
        self.close(id, event_time(c.ts, now_us), c.code, c.reason, c.by);
        Ok(())
    }

    /// Closes connections the observer gave up on, as aborted, with `reason`.
    pub(in crate::server::aggregator) fn abort_all(
        &mut self,
        ids: Vec<u64>,
        now_us: u64,
        reason: &str,
    ) {
        for id in ids {
            self.close(id, now_us, None, Some(reason.into()), Closer::Abort);
        }
    }

    pub(in crate::server::aggregator) fn close(
        &mut self,
        id: u64,
        at_us: u64,
        code: Option<u16>,
        reason: Option<String>,
        by: Closer,
    ) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closed.is_some() {
            return;
        }
        let text = reason.as_deref().map(preview_text).unwrap_or_default();
        conn.closed = Some(CloseInfo {
            at_us,
            code,
            reason: reason.map(Into::into),
            by,
        });
        let (si, tap_conn) = (conn.source, conn.tap_conn);
        self.index.remove(&(si, tap_conn));
        self.closed_order.push_back((at_us, id));
        self.totals.open -= 1;
        self.totals.closed += 1;
        self.sources[si].open -= 1;
        self.sources[si].counts.closes[CloseClass::of(code).index()] += 1;
        self.series.current.disconnects += 1;
        self.push_trace(TraceRec {
            seq: 0,
            ts_us: at_us,
            conn: id,
            source: si,
            kind: TraceKind::Close,
            dir: None,
            opcode: None,
            size: 0,
            truncated: false,
            code,
            by: Some(by),
            text: text.into(),
            msg_seq: 0,
            flight: false,
        });
    }
}
