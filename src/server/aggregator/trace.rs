//! Records of the live trace and the short previews they carry.

use crate::protocol::{TraceEntry, TraceKind};
use sockscope_wire::Closer;

/// Longest payload preview kept in the trace, in characters.
pub(crate) const PREVIEW_CHARS: usize = 120;
/// Longest binary preview, in bytes (shown as hex).
pub(crate) const PREVIEW_BYTES: usize = 32;

/// A trace record as stored; turned into a [`TraceEntry`] only when someone looks.
#[derive(Clone, Debug)]
pub(crate) struct TraceRec {
    pub seq: u64,
    pub ts_us: u64,
    pub conn: u64,
    pub source: usize,
    pub kind: TraceKind,
    pub dir: Option<sockscope_wire::Direction>,
    pub opcode: Option<sockscope_wire::Opcode>,
    pub size: u64,
    pub truncated: bool,
    pub code: Option<u16>,
    pub by: Option<Closer>,
    pub text: Box<str>,
    /// The stored message this record is about (0 for opens and closes).
    pub msg_seq: u64,
    /// From an on-demand tap's flight recorder.
    pub flight: bool,
}

/// The first [`PREVIEW_CHARS`] characters of a text payload.
pub(crate) fn preview_text(s: &str) -> String {
    match s.char_indices().nth(PREVIEW_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Hex of the first [`PREVIEW_BYTES`] bytes of a binary payload.
pub(crate) fn preview_hex(b: &[u8]) -> String {
    let mut out = String::with_capacity(PREVIEW_BYTES * 3 + 1);
    for (i, byte) in b.iter().take(PREVIEW_BYTES).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        sockscope_payload::decode::push_hex(&mut out, *byte);
    }
    if b.len() > PREVIEW_BYTES {
        out.push('…');
    }
    out
}

impl super::state::State {
    /// Appends to the live-trace ring, dropping its oldest record when full.
    pub(super) fn push_trace(&mut self, mut rec: TraceRec) {
        if self.cfg.trace_capacity == 0 {
            return;
        }
        self.trace_seq += 1;
        rec.seq = self.trace_seq;
        if self.trace.len() == self.cfg.trace_capacity {
            if let Some(old) = self.trace.pop_front() {
                self.sources[old.source].refs -= 1;
            }
        }
        self.sources[rec.source].refs += 1;
        self.trace.push_back(rec);
    }

    /// The wire form of a stored trace record.
    pub(crate) fn trace_entry(&self, r: &TraceRec) -> TraceEntry {
        TraceEntry {
            seq: r.seq,
            ts_us: r.ts_us,
            conn: r.conn,
            source: self.sources[r.source].name.clone(),
            kind: r.kind,
            dir: r.dir,
            opcode: r.opcode,
            size: r.size,
            truncated: r.truncated,
            code: r.code,
            by: r.by,
            text: r.text.to_string(),
            flight: r.flight,
        }
    }
}
