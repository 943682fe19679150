//! The browser's trace buffer: newest first, bounded, with gap rows for what was not shown or
//! was dropped, and a pause that freezes the view while events keep being buffered and counted.
// The server build renders only the page shell; the browser build (`hydrate`) and the
// native unit tests drive the rest.
#![cfg_attr(not(feature = "hydrate"), allow(dead_code))]

use crate::protocol::TraceEntry;
use std::collections::VecDeque;

/// Entries buffered in the browser (a pause of a few minutes at typical rates loses nothing).
pub(crate) const TRACE_BUFFER: usize = 5000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TraceItem {
    Event(TraceEntry),
    /// Events that exist but are not in this list: too fast to send, or dropped by a tap.
    Gap {
        id: u64,
        count: u64,
        why: String,
    },
}

impl TraceItem {
    pub(crate) fn key(&self) -> (u8, u64) {
        match self {
            TraceItem::Event(e) => (0, e.seq),
            TraceItem::Gap { id, .. } => (1, *id),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TraceBuffer {
    items: VecDeque<TraceItem>,
    cap: usize,
    paused: Option<Vec<TraceItem>>,
    new_since_pause: u64,
    gaps: u64,
    /// Events up to this sequence number were cleared by the user.
    cleared_upto: u64,
}

impl Default for TraceBuffer {
    fn default() -> Self {
        TraceBuffer::with_capacity(TRACE_BUFFER)
    }
}

impl TraceBuffer {
    pub(crate) fn with_capacity(cap: usize) -> Self {
        TraceBuffer {
            items: VecDeque::new(),
            cap,
            paused: None,
            new_since_pause: 0,
            gaps: 0,
            cleared_upto: 0,
        }
    }

    /// A snapshot replaces the buffer (a pause stays frozen).
    pub(crate) fn reset(&mut self) {
        self.items.clear();
    }

    /// New entries (newest first), and how many more matched but were not sent.
    pub(crate) fn push(&mut self, entries: Vec<TraceEntry>, skipped: u64) {
        if skipped > 0 {
            self.gap(
                skipped,
                "arrived faster than the trace shows; they are in the observer's ring and exports",
            );
        }
        for e in entries.into_iter().rev() {
            if e.seq <= self.cleared_upto {
                continue;
            }
            if self.paused.is_some() {
                self.new_since_pause += 1;
            }
            self.items.push_front(TraceItem::Event(e));
        }
        self.items.truncate(self.cap);
    }

    pub(crate) fn gap(&mut self, count: u64, why: &str) {
        self.gaps += 1;
        self.items.push_front(TraceItem::Gap {
            id: self.gaps,
            count,
            why: why.to_string(),
        });
        if self.paused.is_some() {
            self.new_since_pause += count;
        }
    }

    pub(crate) fn pause(&mut self, show: usize) {
        if self.paused.is_none() {
            self.paused = Some(self.items.iter().take(show).cloned().collect());
            self.new_since_pause = 0;
        }
    }

    pub(crate) fn resume(&mut self) {
        self.paused = None;
        self.new_since_pause = 0;
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// Events (and gaps) that arrived since the pause.
    pub(crate) fn new_since_pause(&self) -> u64 {
        self.new_since_pause
    }

    /// Empties the list; events already seen do not come back with the next snapshot.
    pub(crate) fn clear(&mut self) {
        let top = self.items.iter().find_map(|i| match i {
            TraceItem::Event(e) => Some(e.seq),
            _ => None,
        });
        self.cleared_upto = self.cleared_upto.max(top.unwrap_or(0));
        self.items.clear();
        if self.paused.is_some() {
            self.paused = Some(Vec::new());
        }
    }

    /// What to render: the frozen view while paused, else the newest `n` items.
    pub(crate) fn visible(&self, n: usize) -> Vec<TraceItem> {
        match &self.paused {
            Some(frozen) => frozen.clone(),
            None => self.items.iter().take(n).cloned().collect(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[cfg(test)]
    /// Sequence numbers of the buffered events, newest first.
    pub(crate) fn seqs(&self) -> Vec<u64> {
        self.items
            .iter()
            .filter_map(|i| match i {
                TraceItem::Event(e) => Some(e.seq),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TraceKind;

    fn e(seq: u64) -> TraceEntry {
        TraceEntry {
            flight: false,
            seq,
            ts_us: seq,
            conn: 1,
            source: "s".into(),
            kind: TraceKind::Message,
            dir: None,
            opcode: None,
            size: 0,
            truncated: false,
            code: None,
            by: None,
            text: String::new(),
        }
    }

    #[test]
    fn pause_freezes_the_view_and_counts_without_losing() {
        let mut b = TraceBuffer::with_capacity(100);
        b.push(vec![e(2), e(1)], 0);
        b.pause(50);
        b.push(vec![e(5), e(4), e(3)], 0);
        assert_eq!(b.visible(50).len(), 2, "frozen");
        assert_eq!(b.new_since_pause(), 3);
        b.resume();
        assert_eq!(b.seqs(), vec![5, 4, 3, 2, 1], "nothing was lost");
        assert_eq!(b.new_since_pause(), 0);
    }

    #[test]
    fn skipped_events_and_drops_become_gap_rows() {
        let mut b = TraceBuffer::default();
        b.push(vec![e(1)], 0);
        b.push(vec![e(9)], 7);
        b.gap(3, "dropped by tap edge-1");
        let v = b.visible(10);
        assert!(matches!(&v[0], TraceItem::Gap { count: 3, .. }));
        assert!(matches!(&v[1], TraceItem::Event(x) if x.seq == 9));
        assert!(matches!(&v[2], TraceItem::Gap { count: 7, .. }));
        assert!(matches!(&v[3], TraceItem::Event(x) if x.seq == 1));
    }

    #[test]
    fn clear_keeps_old_events_out_of_later_snapshots_and_is_bounded() {
        let mut b = TraceBuffer::with_capacity(3);
        b.push(vec![e(4), e(3), e(2), e(1)], 0);
        assert_eq!(b.seqs(), vec![4, 3, 2]);
        b.clear();
        assert!(b.is_empty());
        b.reset();
        b.push(vec![e(5), e(4), e(3)], 0); // a snapshot resends old ones
        assert_eq!(b.seqs(), vec![5]);
    }
}
