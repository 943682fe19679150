//! Trace filters: kind, connection, source, client IP, direction, and text or regex over the
//! payload (the full captured payload while it is stored, else the preview).

use super::conn::StoredPayload;
use super::state::State;
use super::trace::TraceRec;
use crate::protocol::{TraceKind, TraceQuery};

/// Largest compiled regex accepted (the regex crate matches in linear time; this bounds memory).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

enum Text {
    Plain(String),
    Regex(regex::Regex),
}

/// A validated, compiled [`TraceQuery`].
pub(crate) struct TraceFilter {
    pub q: TraceQuery,
    text: Option<Text>,
    /// The source filter, lower-cased once.
    source_lc: Option<String>,
}

impl TraceFilter {
    /// Compiles the query; a bad regex is reported with the reason.
    pub(crate) fn new(q: TraceQuery) -> Result<TraceFilter, String> {
        let text = match q.text.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(t) if q.regex => Some(Text::Regex(
                regex::RegexBuilder::new(t)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("invalid regular expression: {e}"))?,
            )),
            Some(t) => Some(Text::Plain(t.to_lowercase())),
        };
        let source_lc = q
            .source
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
        Ok(TraceFilter { q, text, source_lc })
    }

    pub(crate) fn limit(&self) -> usize {
        self.q.limit as usize
    }

    fn text_ok(&self, hay: &str) -> bool {
        match &self.text {
            None => true,
            Some(Text::Plain(n)) => super::conn::contains_ci(hay, n),
            Some(Text::Regex(r)) => r.is_match(hay),
        }
    }

    /// Whether the source filter (exact id, or a substring of the name) lets source `si` in.
    pub(crate) fn source_matches(&self, state: &State, si: usize) -> bool {
        let (Some(s), Some(lc)) = (self.q.source.as_deref(), &self.source_lc) else {
            return true;
        };
        let src = &state.sources[si];
        &*src.id == s || super::conn::contains_ci(&src.name, lc)
    }

    /// The source filter on a recorded source id (the record keeps ids, not names): the id
    /// itself, or a part of it, any case.
    pub(crate) fn source_id_matches(&self, id: &str) -> bool {
        match (self.q.source.as_deref(), &self.source_lc) {
            (Some(s), Some(lc)) => id == s || super::conn::contains_ci(id, lc),
            _ => true,
        }
    }

    /// Whether a recorded trace entry passes the kind, source, direction and text filters
    /// (connection and address are matched on the record's connection lives instead).
    pub(crate) fn entry_matches(&self, e: &crate::protocol::TraceEntry) -> bool {
        (self.q.kinds.is_empty() || self.q.kinds.contains(&e.kind))
            && self.source_id_matches(&e.source)
            && self.q.dir.is_none_or(|d| e.dir == Some(d))
            && self.text_ok(&e.text)
    }

    pub(crate) fn matches(&self, state: &State, r: &TraceRec) -> bool {
        let q = &self.q;
        if !(q.kinds.is_empty() || q.kinds.contains(&r.kind)) || q.conn.is_some_and(|c| c != r.conn)
        {
            return false;
        }
        if q.dir.is_some() && q.dir != r.dir {
            return false;
        }
        if !self.source_matches(state, r.source) {
            return false;
        }
        let conn = state.conns.get(&r.conn);
        if let Some(ip) = q.ip.as_deref().filter(|i| !i.is_empty()) {
            if !conn.is_some_and(|c| c.ip.to_string().starts_with(ip)) {
                return false;
            }
        }
        if self.text.is_none() {
            return true;
        }
        // Search the full captured payload while it is stored; otherwise the preview.
        if r.kind == TraceKind::Message {
            if let Some(m) = conn.and_then(|c| {
                c.recent
                    .binary_search_by_key(&r.msg_seq, |m| m.seq)
                    .ok()
                    .map(|i| &c.recent[i])
            }) {
                return match &m.payload {
                    StoredPayload::Text(t) => self.text_ok(t),
                    StoredPayload::Binary(b) => self.text_ok(&String::from_utf8_lossy(b)),
                    _ => self.text_ok(&r.text),
                };
            }
        }
        self.text_ok(&r.text)
    }
}
