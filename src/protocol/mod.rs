//! The dashboard protocol: JSON messages on `/live` and the view types `/api/*` returns.
//! Shared by the observer (ssr) and the browser (hydrate); tap-side types live in `sockscope-wire`.

mod access;
mod bus;
pub mod close_code;
mod history;
mod view;

pub use access::{Refusal, Refusals, Role};
pub use bus::BusView;
pub use history::{HistoryConn, HistoryEvent, HistoryMessage, PastFrame, RecordingView};
use serde::{Deserialize, Serialize};
pub use sockscope_wire::{Capture, CaptureMode, Closer, Direction, Opcode, SourceKind};
pub use view::{
    ClientMsg, SortKey, StateFilter, TableQuery, TraceKind, TraceQuery, ViewSpec, MAX_WINDOW,
};

/// Observer → browser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First message on every `/live` socket: who the browser is signed in as.
    Welcome {
        role: Role,
        /// The observer asks for a login (false: open on loopback, no credentials configured).
        login: bool,
    },
    /// Full state of the subscribed view; replaces everything the browser holds.
    Snapshot(Frame),
    /// Changes since the previous frame on this socket.
    Delta(Frame),
    /// The last client message was not understood.
    Error { message: String },
    /// The view as it was at a moment, from the record (the answer to `At`); live frames stop
    /// until the browser goes back to live.
    Past(PastFrame),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Increases by one per frame on a socket; a gap means frames were lost.
    pub seq: u64,
    /// Observer clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
    pub overview: Overview,
    #[serde(default)]
    pub table: Option<TableDelta>,
    /// New trace entries, newest first (all of them in a snapshot).
    #[serde(default)]
    pub trace: Vec<TraceEntry>,
    /// Matching entries that arrived since the last frame but were not sent (over the limit).
    #[serde(default)]
    pub trace_skipped: u64,
    /// The inspected connection, when it changed (always in a snapshot).
    #[serde(default)]
    pub detail: Option<ConnDetail>,
    /// The inspected connection no longer exists (evicted).
    #[serde(default)]
    pub detail_gone: bool,
    /// Why the trace filter could not be applied (a bad regex); sent with snapshots.
    #[serde(default)]
    pub trace_error: Option<String>,
    /// Series points the browser does not have yet (all 15 minutes in a snapshot).
    #[serde(default)]
    pub series: Vec<Point>,
    /// New host points per source id.
    #[serde(default)]
    pub hosts: Vec<(String, Vec<HostPoint>)>,
}

/// The table window: the order of ids, plus the rows that are new or changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableDelta {
    /// Rows matching the filter in total.
    pub total: u64,
    pub offset: u32,
    /// Ids of the window in display order.
    pub ids: Vec<u64>,
    /// Rows the browser does not have yet or that changed.
    pub rows: Vec<ConnRow>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    pub totals: Totals,
    /// The last complete second.
    pub rates: Point,
    pub sources: Vec<SourceView>,
    pub observer: ObserverStats,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub open: u64,
    pub tracked: u64,
    pub opened: u64,
    pub closed: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Whole-observer counts for one second (`/api/series`; the overview's last-second rates).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Unix second this point covers.
    pub t: u64,
    /// Open connections at the end of the second.
    pub open: u64,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connects: u64,
    pub disconnects: u64,
}

/// Host metrics of one source for one second.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostPoint {
    pub t: u64,
    pub cpu_pct: f32,
    pub mem_used: u64,
    pub rss: u64,
}

/// `/api/series`: one point per second, whole observer and per source host metrics.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesView {
    pub points: Vec<Point>,
    pub hosts: std::collections::BTreeMap<String, Vec<HostPoint>>,
}

/// The observer's own health, and counters of what it refused, evicted or could not deliver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObserverStats {
    /// Host CPU use where the observer runs, percent.
    #[serde(default)]
    pub cpu_pct: f32,
    /// The observer process's resident memory, bytes.
    #[serde(default)]
    pub rss: u64,
    /// Browsers connected to `/live`.
    #[serde(default)]
    pub browsers: u64,
    /// Events accepted from taps in the last complete second.
    #[serde(default)]
    pub ingest_rate: u64,
    /// Batches or events rejected at ingest, all reasons.
    pub ingest_errors: u64,
    pub events_ingested: u64,
    /// Closed connections evicted by retention or the connection limit.
    pub evicted: u64,
    /// Connections not tracked because the limit was reached with none closed to evict.
    pub untracked: u64,
    /// Stored payloads dropped to stay within the payload budget.
    pub payloads_evicted: u64,
    /// Offline sources forgotten to make room under `--max-sources`.
    #[serde(default)]
    pub sources_forgotten: u64,
    /// Times a browser fell behind and was re-snapshotted.
    pub browser_resnapshots: u64,
    /// Snapshots put off to a later second: browsers' view changes all together may use only
    /// part of the aggregator's time.
    #[serde(default)]
    pub snapshots_deferred: u64,
    /// Connections whose headers were cut to the metadata budgets (`--conn-meta-bytes`,
    /// `--metadata-budget`).
    #[serde(default)]
    pub metadata_cut: u64,
    /// Metadata bytes held for tracked connections.
    #[serde(default)]
    pub metadata_bytes: u64,
    /// Requests refused at the door, by reason.
    #[serde(default)]
    pub refused: Refusals,
    /// The record on disk (`--data-dir`); none when the observer does not record.
    #[serde(default)]
    pub recording: Option<RecordingView>,
    /// The link to the bus (`--bus`); none when the observer consumes no bus.
    #[serde(default)]
    pub bus: Option<BusView>,
}

/// Drop counters a tap reported, cumulative.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    pub conn_open: u64,
    pub message: u64,
    pub conn_close: u64,
    pub host: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.conn_open + self.message + self.conn_close + self.host
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    pub cpu_pct: f32,
    pub mem_used: u64,
    pub mem_total: u64,
    pub rss: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceView {
    pub id: String,
    pub name: String,
    pub kind: SourceKind,
    pub version: String,
    pub hostname: String,
    /// A tap session is connected right now.
    pub online: bool,
    pub last_seen_ms: u64,
    pub open: u64,
    pub host: Option<HostView>,
    pub drops: Drops,
    /// Message events the observer refused because this tap sent more than
    /// `--max-tap-events-per-sec`.
    #[serde(default)]
    pub rate_limited: u64,
    /// Data messages and bytes in the last complete second, both directions.
    #[serde(default)]
    pub rate_msgs: u64,
    #[serde(default)]
    pub rate_bytes: u64,
    /// How the tap sends messages (`full`, `on_demand`); `None` for taps that do not say.
    #[serde(default)]
    pub capture: Option<CaptureMode>,
    /// An on-demand tap is currently asked for every message (somebody watches its trace).
    #[serde(default)]
    pub streaming: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnState {
    Open,
    Closed,
}

/// One row of the connection table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnRow {
    pub id: u64,
    pub source: String,
    pub ip: String,
    pub user_agent: String,
    pub path: String,
    pub state: ConnState,
    pub opened_ms: u64,
    pub closed_ms: Option<u64>,
    pub close_code: Option<u16>,
    pub close_reason: Option<String>,
    pub closed_by: Option<Closer>,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Messages in the last complete second, both directions.
    pub rate_msgs: u64,
    pub rate_bytes: u64,
    /// Restored from the record as open when the observer restarted (this time, ms), and not
    /// spoken of by its tap since: it may have closed meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_since_ms: Option<u64>,
}

/// One entry of the live trace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceEntry {
    /// Observer-wide sequence number, increasing.
    pub seq: u64,
    pub ts_us: u64,
    pub conn: u64,
    pub source: String,
    pub kind: TraceKind,
    #[serde(default)]
    pub dir: Option<Direction>,
    #[serde(default)]
    pub opcode: Option<Opcode>,
    /// Original size of a message.
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub by: Option<Closer>,
    /// Short text: the path and IP of an open, a payload preview, a close reason.
    pub text: String,
    /// Sent late by an on-demand tap's flight recorder when the connection died.
    #[serde(default, skip_serializing_if = "is_false")]
    pub flight: bool,
}

/// A stored message of one connection, as `/api/connections/{id}` returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub seq: u64,
    pub ts_us: u64,
    pub dir: Direction,
    pub opcode: Opcode,
    pub size: u64,
    pub truncated: bool,
    /// Text payload as captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Other payloads, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_b64: Option<String>,
    /// The payload was captured but dropped to keep the observer's payload budget.
    #[serde(default)]
    pub payload_evicted: bool,
    /// Values the tap masked in the payload (shown as `"[REDACTED]"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redacted: u32,
    /// Sent late by an on-demand tap's flight recorder when the connection died.
    #[serde(default, skip_serializing_if = "is_false")]
    pub flight: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `/api/connections/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnDetail {
    #[serde(flatten)]
    pub row: ConnRow,
    pub tap_conn: u64,
    pub subprotocol: Option<String>,
    pub headers: Vec<(String, String)>,
    pub messages: Vec<MessageView>,
    /// The tap's payload capture for this connection (absent: the tap did not say).
    #[serde(default)]
    pub capture: Option<Capture>,
    /// Bytes captured per message, for a truncated (or full) capture.
    #[serde(default)]
    pub capture_bytes: Option<u64>,
    /// Request headers the tap withheld (names only).
    #[serde(default)]
    pub redacted_headers: Vec<String>,
    /// Payloads and headers were withheld: the reader is a viewer.
    #[serde(default)]
    pub payloads_hidden: bool,
}

/// `/api/connections`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnPage {
    pub total: u64,
    pub offset: u32,
    pub items: Vec<ConnRow>,
}
