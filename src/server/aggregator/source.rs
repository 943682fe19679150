//! One tap (proxy, gateway, app): its identity, health, host metrics and counters.

use super::series::{HostPoint, Ring};
use crate::protocol::{Drops, HostView, SourceView};
use sockscope_wire::{Dropped, SourceKind};
use std::sync::Arc;

/// Per-source counters for `/metrics` (bounded labels: source, direction, close class).
#[derive(Debug, Default, Clone)]
pub struct SourceCounts {
    pub opened: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Closes by [`crate::close_code::CloseClass`] index.
    pub closes: [u64; crate::close_code::CloseClass::ALL.len()],
}

#[derive(Debug)]
pub struct Source {
    pub id: Arc<str>,
    pub name: String,
    pub kind: SourceKind,
    pub version: String,
    pub hostname: String,
    pub instance: Option<u64>,
    pub sessions: u32,
    pub last_seen_us: u64,
    pub open: u64,
    pub host: Option<HostView>,
    pub host_series: Ring<HostPoint>,
    pub drops: Drops,
    /// Message events refused by the observer's per-tap rate limit.
    pub rate_limited: u64,
    /// Last cumulative counters the tap reported, to detect a restarted tap.
    pub(super) drops_reported: Drops,
    pub counts: SourceCounts,
    /// Data messages and bytes per second.
    pub rate: super::conn::Rate,
}

impl Source {
    /// The dashboard / API view; rates are the last complete second before `now_s`.
    pub fn view(&self, now_s: u64) -> SourceView {
        let (rate_msgs, rate_bytes) = self.rate.last_second(now_s);
        SourceView {
            id: self.id.to_string(),
            name: self.name.clone(),
            kind: self.kind,
            version: self.version.clone(),
            hostname: self.hostname.clone(),
            online: self.sessions > 0,
            last_seen_ms: self.last_seen_us / 1000,
            open: self.open,
            host: self.host.clone(),
            drops: self.drops.clone(),
            rate_limited: self.rate_limited,
            rate_msgs,
            rate_bytes,
        }
    }

    /// Adds a tap's cumulative drop report; a counter that went down means the tap restarted.
    pub fn dropped(&mut self, d: Dropped) {
        let s = self;
        let fields = [
            (
                &mut s.drops.conn_open,
                &mut s.drops_reported.conn_open,
                d.conn_open,
            ),
            (
                &mut s.drops.message,
                &mut s.drops_reported.message,
                d.message,
            ),
            (
                &mut s.drops.conn_close,
                &mut s.drops_reported.conn_close,
                d.conn_close,
            ),
            (&mut s.drops.host, &mut s.drops_reported.host, d.host),
        ];
        for (total, last, now) in fields {
            // A counter that went down means the tap restarted and counts from zero again.
            *total += if now >= *last { now - *last } else { now };
            *last = now;
        }
    }
}
