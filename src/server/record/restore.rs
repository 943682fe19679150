//! Restoring the picture at start: every recorded frame is applied again, in order, at the
//! time it first arrived, with the clock's seconds rolled as they pass, so closed connections,
//! the trace and the series come back as they were. Connections still open at the end are
//! "state unknown since restart" until their tap re-announces them. Damage is counted and
//! logged, never fatal: a torn tail is cut off, a bad block skipped.

use super::segment::{read_segment, Entry, RECORDED};
use super::RecordStats;
use crate::server::aggregator::state::State;
use sockscope_wire::decode_batch;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What is on disk from before, to restore.
pub(crate) struct Restore {
    pub segments: Vec<PathBuf>,
    pub stats: Arc<RecordStats>,
}

impl Restore {
    /// Applies the record to `state` (before the aggregator serves anything).
    pub(crate) fn into_state(self, mut state: State) -> State {
        let started = std::time::Instant::now();
        let (mut events, mut frames, mut bad_frames, mut damaged) = (0u64, 0u64, 0u64, 0u64);
        let mut second = 0u64;
        let mut last_us = 0u64;
        for path in &self.segments {
            let mut apply = |e: Entry| {
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
        if frames > 0 || damaged > 0 {
            tracing::info!(
                frames,
                events,
                damaged = damaged + bad_frames,
                open_unknown = unknown,
                took_ms = started.elapsed().as_millis() as u64,
                "record restored"
            );
        }
        state
    }
}
