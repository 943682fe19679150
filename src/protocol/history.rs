//! What the observer tells of the past: the record's counters, history rows and events
//! (`/api/history/*`), and the time-travel frame on `/live`.

use super::{Closer, ConnDetail, Direction, Opcode, TableDelta, TraceEntry};
use serde::{Deserialize, Serialize};

/// The record's counters (`observer.recording` in the overview).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingView {
    /// Tap frames written.
    pub frames: u64,
    /// Frames not recorded (the writer fell behind, or the disk refused them); live views
    /// still had them.
    pub dropped: u64,
    pub write_errors: u64,
    /// Bytes of segment files on disk, and how many.
    pub bytes: u64,
    pub segments: u64,
    /// Arrival time of the oldest recorded data, ms (0: nothing yet).
    pub oldest_ms: u64,
    /// Damage found at start (torn tails cut off, bad blocks or frames skipped).
    pub damaged: u64,
    /// Events restored from the record at start.
    pub restored_events: u64,
}

/// A connection as the record knows it (`/api/history/connections`): keyed by its source and
/// the tap's connection id, since observer ids do not outlive a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryConn {
    pub source: String,
    /// The tap's id of the connection.
    pub conn: u64,
    pub ip: String,
    pub user_agent: String,
    pub path: String,
    pub opened_ms: u64,
    pub closed_ms: Option<u64>,
    pub close_code: Option<u16>,
    pub close_reason: Option<String>,
    pub closed_by: Option<Closer>,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Its last messages, oldest first (payload previews of up to 256 characters).
    pub last_messages: Vec<HistoryMessage>,
}

/// One message in a history row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    pub ts_ms: u64,
    pub dir: Direction,
    pub opcode: Opcode,
    pub size: u64,
    pub text: Option<String>,
}

/// One event of a connection's whole life (`/api/history/events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryEvent {
    Open {
        ts_ms: u64,
        ip: String,
        user_agent: Option<String>,
        path: String,
    },
    Message {
        ts_ms: u64,
        dir: Direction,
        opcode: Opcode,
        size: u64,
        truncated: bool,
        text: Option<String>,
        data_b64: Option<String>,
    },
    Close {
        ts_ms: u64,
        code: Option<u16>,
        reason: Option<String>,
        by: Closer,
    },
}

/// The table and trace as they were at `at_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PastFrame {
    pub at_ms: u64,
    /// Observer clock when it was built (a replay stops there).
    #[serde(default)]
    pub now_ms: u64,
    /// Connections alive at the moment or closed in the minute before it (ids are local to
    /// this frame: the record keys connections by source and tap id).
    pub table: TableDelta,
    /// Trace entries of the minute before the moment, newest first.
    pub trace: Vec<TraceEntry>,
    /// The inspected row (by its id in `table`), as it was: its messages up to the moment.
    #[serde(default)]
    pub detail: Option<ConnDetail>,
    /// Why the moment could not be shown (no record, a read error).
    #[serde(default)]
    pub error: Option<String>,
}
