//! Holding each connection's metadata (path, headers, subprotocol) to its own budget and to
//! what is left of the observer's.

use super::State;

impl State {
    /// Holds a new connection's metadata to `--conn-meta-bytes` and what is left of
    /// `--metadata-budget`: headers are dropped from the last one on, then the path is cut.
    pub(super) fn fit_metadata(&mut self, id: u64) {
        let room = self.cfg.conn_meta_bytes.min(
            self.cfg
                .metadata_budget
                .saturating_sub(self.stats.metadata_bytes as usize),
        );
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut cut = false;
        while c.meta_bytes() > room && !c.headers.is_empty() {
            let mut h = std::mem::take(&mut c.headers).into_vec();
            h.pop();
            c.headers = h.into_boxed_slice();
            cut = true;
        }
        if c.meta_bytes() > room {
            let keep = room.saturating_sub(c.subprotocol.as_ref().map_or(0, |s| s.len()));
            let clipped = sockscope_wire::clip(&c.path, keep.max(1)).to_string();
            c.path = clipped.into();
            cut = true;
        }
        if cut {
            self.stats.metadata_cut += 1;
        }
        self.stats.metadata_bytes += c.meta_bytes() as u64;
    }
}
