//! What a browser asks of the observer on `/live`: its view (table window, trace filter,
//! inspected connection, charts) and the moment it looks at.

use serde::{Deserialize, Serialize};
use sockscope_wire::Direction;

/// Largest table window a browser or API client may ask for.
pub const MAX_WINDOW: u32 = 500;

/// Browser → observer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Replaces what this browser looks at; the observer answers with a fresh snapshot.
    Subscribe(ViewSpec),
    /// Moves the table window (scrolling) without a full snapshot.
    Window { offset: u32, limit: u32 },
    /// Shows the view as it was at a moment (ms), from the record; `None` goes back to live
    /// (the browser then subscribes again).
    At { at_ms: Option<u64> },
}

/// What a browser shows. Anything absent is not sent to it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ViewSpec {
    #[serde(default)]
    pub table: Option<TableQuery>,
    #[serde(default)]
    pub trace: Option<TraceQuery>,
    /// A connection open in the inspector.
    #[serde(default)]
    pub detail: Option<u64>,
    /// Send the 1-second series for the charts.
    #[serde(default)]
    pub charts: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    #[default]
    Open,
    Closed,
    All,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    /// Observer id, i.e. connect order.
    #[default]
    Id,
    Ip,
    UserAgent,
    Path,
    Source,
    MsgsIn,
    MsgsOut,
    BytesIn,
    BytesOut,
    Rate,
}

/// A window onto the connection table; sorting and filtering run on the observer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableQuery {
    #[serde(default)]
    pub state: StateFilter,
    /// Case-insensitive substring over IP, user agent, path, source and id.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: SortKey,
    #[serde(default = "yes")]
    pub desc: bool,
    #[serde(default)]
    pub offset: u32,
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn yes() -> bool {
    true
}
fn default_limit() -> u32 {
    50
}

impl Default for TableQuery {
    fn default() -> Self {
        TableQuery {
            state: StateFilter::Open,
            q: String::new(),
            sort: SortKey::Id,
            desc: true,
            offset: 0,
            limit: default_limit(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    Open,
    Message,
    Close,
}

impl TraceKind {
    /// The serde name, for display.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceKind::Open => "open",
            TraceKind::Message => "message",
            TraceKind::Close => "close",
        }
    }
}

/// Which trace events a browser wants, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceQuery {
    /// Empty means every kind.
    #[serde(default)]
    pub kinds: Vec<TraceKind>,
    #[serde(default)]
    pub conn: Option<u64>,
    /// Source id or name (exact id, or a substring of the name).
    #[serde(default)]
    pub source: Option<String>,
    /// Client IP prefix, e.g. `10.1.` or `2001:db8:`.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub dir: Option<Direction>,
    /// Text searched in payloads (the full captured payload while it is stored), paths and
    /// close reasons; case-insensitive.
    #[serde(default)]
    pub text: Option<String>,
    /// `text` is a regular expression.
    #[serde(default)]
    pub regex: bool,
    #[serde(default = "default_limit")]
    pub limit: u32,
}

impl Default for TraceQuery {
    fn default() -> Self {
        TraceQuery {
            kinds: Vec::new(),
            conn: None,
            source: None,
            ip: None,
            dir: None,
            text: None,
            regex: false,
            limit: 100,
        }
    }
}
