//! The sources on the state: who a tap is (its hello), its sessions and per-source counters.

use super::State;
use crate::protocol::{Drops, Refusal};
use crate::server::aggregator::conn::Rate;
use crate::server::aggregator::series::Ring;
use crate::server::aggregator::source::{Source, SourceCounts};
use crate::server::error::ErrorCode;
use sockscope_wire::Hello;
use std::sync::Arc;

impl State {
    pub(crate) fn source_index(&self, id: &str) -> Option<usize> {
        self.source_ids.get(id).copied()
    }

    pub(crate) fn source_name(&self, idx: usize) -> &str {
        &self.sources[idx].name
    }

    /// A tap session bound to `source` went up or down.
    pub(crate) fn session(&mut self, source: &str, up: bool) {
        if let Some(i) = self.source_index(source) {
            let s = &mut self.sources[i];
            s.sessions = if up {
                s.sessions + 1
            } else {
                s.sessions.saturating_sub(1)
            };
        }
    }

    /// Message events of `source` dropped by the per-tap events/s limit.
    pub(crate) fn rate_limited(&mut self, source: &str, events: u64) {
        if let Some(i) = self.source_index(source) {
            self.sources[i].rate_limited += events;
        }
    }

    /// Registers or updates the hello's source; at `--max-sources` a new one replaces the
    /// longest-offline source nothing points at, or is refused (the error says what to do).
    pub(super) fn hello(
        &mut self,
        h: Hello,
        now_us: u64,
        credential: Option<u64>,
    ) -> Result<usize, (ErrorCode, String)> {
        let name = if h.name.is_empty() {
            h.source.clone()
        } else {
            h.name
        };
        let idx = match self.source_ids.get(h.source.as_str()) {
            Some(&i) => i,
            None => {
                if self.sources.len() >= self.cfg.max_sources {
                    let Some(old) = self.sources.forgettable() else {
                        self.stats.refused.count(Refusal::Sources);
                        return Err((ErrorCode::SourceLimit, format!(
                            "source {:?} refused: {} sources are known and each is online or still \
                             has connections or trace records; raise --max-sources or lower --retention",
                            h.source,
                            self.sources.len()
                        )));
                    };
                    let gone = self.sources.remove(old);
                    self.source_ids.remove(&gone.id);
                    self.stats.sources_forgotten += 1;
                }
                let id: Arc<str> = h.source.as_str().into();
                let idx = self.sources.insert(Source {
                    id: id.clone(),
                    name: String::new(),
                    kind: h.kind,
                    version: String::new(),
                    hostname: String::new(),
                    instance: h.instance,
                    credential,
                    sessions: 0,
                    last_seen_us: now_us,
                    open: 0,
                    host: None,
                    host_series: Ring::new(self.cfg.series_len),
                    drops: Drops::default(),
                    capture: None,
                    streaming: false,
                    rate_limited: 0,
                    drops_reported: Drops::default(),
                    counts: SourceCounts::default(),
                    rate: Rate::default(),
                    refs: 0,
                });
                self.source_ids.insert(id, idx);
                idx
            }
        };
        // A tap with another token may not speak for (or close the connections of) a source
        // that is online under its own.
        self.sources
            .held_by_another(idx, credential, now_us)
            .map_err(|m| (ErrorCode::SourceTaken, m))?;
        self.sources[idx].credential = credential;
        let restarted = {
            let s = &self.sources[idx];
            matches!((s.instance, h.instance), (Some(a), Some(b)) if a != b)
        };
        if restarted {
            let stale: Vec<u64> = self
                .index
                .iter()
                .filter(|((si, _), _)| *si == idx)
                .map(|(_, &id)| id)
                .collect();
            self.abort_all(stale, now_us, "tap restarted");
            self.sources[idx].drops_reported = Drops::default();
        }
        let s = &mut self.sources[idx];
        s.name = name;
        s.kind = h.kind;
        s.version = h.version;
        s.hostname = h.hostname;
        s.instance = h.instance.or(s.instance);
        s.capture = h.capture;
        Ok(idx)
    }
}
