//! Restoring the picture at start. The record's tail (the last segments, up to
//! [`REPLAY_BYTES`] and back to the series' length) is applied again frame by frame at the
//! times the frames arrived, with the clock's seconds rolled as they pass, so the trace, the
//! series and stored messages come back as they were. What came before it is put back from
//! the index without replaying: the sources, the connections closed within retention and the
//! ones open where the tail begins. Connections still open at the end are "state unknown since
//! restart" until their tap re-announces them. Damage is counted and logged, never fatal: a
//! torn tail is cut off, a bad block skipped.

use super::index::index;
use super::segment::segment_start;
use super::segment::{read_segment, Entry, RECORDED};
use super::RecordStats;
use crate::protocol::HistoryConn;
use crate::server::aggregator::state::State;
use sockscope_wire::decode_batch;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most segment bytes replayed event by event at a restart (more recorded before them is put
/// back from the index): a restart serves within seconds however large the record.
const REPLAY_BYTES: u64 = 24 << 20;

/// What is on disk from before, to restore.
pub(crate) struct Restore {
    pub segments: Vec<PathBuf>,
    pub stats: Arc<RecordStats>,
}

impl Restore {
    /// Applies the record to `state` (before the aggregator serves anything).
    pub(crate) fn into_state(self, mut state: State) -> State {
        let started = std::time::Instant::now();
        let (first, seeded, mut bus_seq) = self.seed(&mut state);
        let (mut events, mut frames, mut bad_frames, mut damaged) = (0u64, 0u64, 0u64, 0u64);
        let mut second = 0u64;
        let mut last_us = 0u64;
        for path in &self.segments[first..] {
            let mut apply = |e: Entry| {
                bus_seq = bus_seq.max(e.bus_seq.unwrap_or(0));
                let Ok(batch) = decode_batch(e.encoding, &e.frame, &RECORDED) else {
                    bad_frames += 1;
                    return;
                };
                // Roll the seconds the record passes through, as the live clock did.
                let s = e.arrival_us / 1_000_000;
                if second == 0 {
                    // The first second opens the series where the record starts.
                    state.second(s * 1_000_000);
                } else if s > second {
                    state.second(s * 1_000_000);
                }
                second = second.max(s);
                last_us = last_us.max(e.arrival_us);
                frames += 1;
                events += batch.events.len() as u64;
                state.apply_as(e.source.as_deref(), batch.events, e.arrival_us, None);
            };
            match read_segment(path, &mut apply) {
                Ok(r) if r.foreign => {
                    damaged += 1;
                    tracing::warn!(path = %path.display(), "record: not a segment file; skipped");
                }
                Ok(r) => {
                    damaged += r.damaged_blocks + u64::from(r.torn_tail);
                    if r.damaged_blocks > 0 {
                        tracing::warn!(path = %path.display(), blocks = r.damaged_blocks, "record: damaged blocks skipped");
                    }
                    if r.torn_tail {
                        // A write cut off by a crash: the good part stays, the rest goes.
                        tracing::warn!(path = %path.display(), kept = r.valid_len, "record: torn tail cut off");
                        if let Err(e) = std::fs::OpenOptions::new()
                            .write(true)
                            .open(path)
                            .and_then(|f| f.set_len(r.valid_len))
                        {
                            tracing::warn!(path = %path.display(), error = %e, "record: cannot cut off the torn tail");
                        }
                    }
                }
                Err(e) => {
                    damaged += 1;
                    tracing::warn!(path = %path.display(), error = %e, "record: segment unreadable; skipped");
                }
            }
        }
        let unknown = state.restarted(sockscope_wire::now_us());
        self.stats
            .damaged
            .fetch_add(damaged + bad_frames, Ordering::Relaxed);
        self.stats.restored_events.store(events, Ordering::Relaxed);
        self.stats.bus_seq.store(bus_seq, Ordering::Relaxed);
        self.stats.restored.store(true, Ordering::Release);
        if frames > 0 || damaged > 0 {
            tracing::info!(
                frames,
                events,
                seeded,
                damaged = damaged + bad_frames,
                open_unknown = unknown,
                took_ms = started.elapsed().as_millis() as u64,
                "record restored"
            );
        }
        state
    }

    /// Puts back what comes before the tail from the index; returns where the tail starts
    /// (an index into the segments), how many connections were seeded, and the last bus
    /// sequence recorded before the tail.
    fn seed(&self, state: &mut State) -> (usize, usize, u64) {
        let segs = &self.segments;
        let Some(last) = segs.len().checked_sub(1) else {
            return (0, 0, 0);
        };
        let size = |k: usize| std::fs::metadata(&segs[k]).map_or(0, |m| m.len());
        let start = |k: usize| segment_start(&segs[k]).unwrap_or(0);
        let series_from = start(last).saturating_sub(state.cfg.series_len as u64 * 1_000_000);
        let (mut first, mut bytes) = (last, size(last));
        while first > 0 && start(first) > series_from && bytes + size(first - 1) <= REPLAY_BYTES {
            first -= 1;
            bytes += size(first);
        }
        if first == 0 {
            return (0, 0, 0);
        }
        let before = match index(segs, first - 1) {
            Ok(ix) => ix,
            Err(e) => {
                tracing::warn!(error = %e, "record: no index before the tail; replaying it all");
                return (0, 0, 0);
            }
        };
        let at = before.hi.min(sockscope_wire::now_us());
        for h in before.hellos.values() {
            state.apply_as(
                None,
                vec![sockscope_wire::Event::Hello(h.clone())],
                at,
                None,
            );
        }
        // Closed within retention, oldest close first; then the open ones.
        let horizon_ms = at.saturating_sub(state.cfg.retention.as_micros() as u64) / 1000;
        let mut closed = Vec::new();
        for k in (0..first).rev() {
            let Ok(ix) = index(segs, k) else { continue };
            closed.extend(
                ix.lives
                    .iter()
                    .filter(|l| l.sum.closed_ms.is_some_and(|t| t >= horizon_ms))
                    .map(|l| l.sum.clone()),
            );
            if ix.hi / 1000 < horizon_ms {
                break;
            }
        }
        closed.sort_by_key(|c| c.closed_ms);
        let mut open: Vec<HistoryConn> = before.open_lives().collect();
        open.sort_by_key(|c| c.opened_ms);
        let mut n = 0;
        for c in closed.iter().chain(&open) {
            n += usize::from(state.seed(c));
        }
        (first, n, before.bus_seq)
    }
}
