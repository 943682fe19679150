//! Capture on demand, the observer's side: from what every browser looks at, which messages
//! each on-demand tap must send one by one (a live trace: all of a source's; an inspected
//! connection: that one's). Published on a watch channel that each tap session follows.

use super::filter::TraceFilter;
use super::state::State;
use crate::protocol::{TraceKind, ViewSpec};
use sockscope_wire::Demand;
use std::collections::HashMap;
use std::sync::Arc;

/// The demand of every source that needs anything; a source not listed needs nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Demands {
    by_source: HashMap<Arc<str>, Demand>,
}

impl Demands {
    /// What the tap of `source` must send one by one.
    pub(crate) fn for_source(&self, source: &str) -> Demand {
        self.by_source.get(source).cloned().unwrap_or_default()
    }

    pub(crate) fn streaming(&self, source: &str) -> bool {
        self.by_source.get(source).is_some_and(|d| d.all)
    }
}

/// The demand of a set of views (each with its compiled trace filter, if any).
pub(crate) fn compute<'a>(
    state: &State,
    views: impl Iterator<Item = (&'a ViewSpec, Option<&'a TraceFilter>)>,
) -> Demands {
    let mut by_source: HashMap<Arc<str>, Demand> = HashMap::new();
    let want_conn = |by_source: &mut HashMap<Arc<str>, Demand>, id: u64| {
        let Some(c) = state.conns.get(&id).filter(|c| c.closed.is_none()) else {
            return;
        };
        let d = by_source
            .entry(state.sources[c.source].id.clone())
            .or_default();
        if !d.all && !d.conns.contains(&c.tap_conn) {
            d.conns.push(c.tap_conn);
        }
    };
    for (spec, trace) in views {
        if let Some(id) = spec.detail {
            want_conn(&mut by_source, id);
        }
        let Some(f) = trace else { continue };
        if !(f.q.kinds.is_empty() || f.q.kinds.contains(&TraceKind::Message)) {
            continue;
        }
        if let Some(id) = f.q.conn {
            want_conn(&mut by_source, id);
            continue;
        }
        for (si, s) in state.sources.iter_indexed() {
            if f.source_matches(state, si) {
                let d = by_source.entry(s.id.clone()).or_default();
                d.all = true;
                d.conns.clear();
            }
        }
    }
    for d in by_source.values_mut() {
        d.conns.sort_unstable();
    }
    Demands { by_source }
}
