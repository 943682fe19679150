//! Keeping the state within its bounds: the per-second roll of series and host samples,
//! retention and limit eviction of closed connections, and the user-agent and tap-policy
//! interners.

use super::conn::TapPolicy;
use super::series::HostPoint;
use super::state::State;
use std::sync::Arc;

impl State {
    pub(super) fn intern_ua(&mut self, ua: &str) -> Arc<str> {
        if let Some(a) = self.user_agents.get(ua) {
            return a.clone();
        }
        let a: Arc<str> = ua.into();
        self.user_agents.insert(a.clone());
        a
    }

    pub(super) fn intern_policy(&mut self, p: TapPolicy) -> Option<Arc<TapPolicy>> {
        if p.capture.is_none() && p.capture_bytes.is_none() && p.redacted_headers.is_empty() {
            return None;
        }
        if let Some(a) = self.policies.get(&p) {
            return Some(a.clone());
        }
        let a = Arc::new(p);
        self.policies.insert(a.clone());
        Some(a)
    }

    /// Evicts the oldest closed connection; false when none is closed.
    pub(super) fn evict_oldest_closed(&mut self) -> bool {
        while let Some((_, id)) = self.closed_order.pop_front() {
            if self.evict(id) {
                return true;
            }
        }
        false
    }

    fn evict(&mut self, id: u64) -> bool {
        match self.conns.remove(&id) {
            Some(c) => {
                self.stats.metadata_bytes -= c.meta_bytes() as u64;
                self.sources[c.source].refs -= 1;
                self.store.forget(&c);
                self.stats.evicted += 1;
                self.totals.tracked = self.conns.len() as u64;
                true
            }
            None => false,
        }
    }

    /// Once a second: close the time-series second, sample host metrics, apply retention.
    pub(crate) fn second(&mut self, now_us: u64) {
        let now_s = now_us / 1_000_000;
        self.series.roll(now_s, self.totals.open);
        for s in &mut self.sources {
            if let Some(h) = &s.host {
                s.host_series.push(HostPoint {
                    t: now_s,
                    cpu_pct: h.cpu_pct,
                    mem_used: h.mem_used,
                    rss: h.rss,
                });
            }
        }
        let horizon = now_us.saturating_sub(self.cfg.retention.as_micros() as u64);
        if self.restarted_us.is_some_and(|r| r <= horizon) && !self.unknown.is_empty() {
            // Restored as open, never spoken of again within the retention: closed, saying so.
            let stale: Vec<u64> = std::mem::take(&mut self.unknown)
                .into_iter()
                .filter_map(|k| self.index.get(&k).copied())
                .collect();
            self.abort_all(
                stale,
                now_us,
                "state unknown since the observer restarted; its tap never spoke of it again",
            );
        }
        while let Some(&(at, id)) = self.closed_order.front() {
            if at > horizon {
                break;
            }
            self.closed_order.pop_front();
            self.evict(id);
        }
        if self.user_agents.len() > 4096 {
            self.user_agents.retain(|a| Arc::strong_count(a) > 1);
        }
        if self.policies.len() > 1024 {
            self.policies.retain(|a| Arc::strong_count(a) > 1);
        }
    }
}
