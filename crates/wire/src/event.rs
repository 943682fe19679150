//! The v1 event types. Field names here are the wire names; `docs/protocol.md` documents them.

use crate::payload::Payload;
use serde::{Deserialize, Serialize};

/// One frame from a tap: a version and a list of events, applied in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Protocol version; must be [`crate::PROTOCOL_VERSION`].
    pub v: u32,
    pub events: Vec<Event>,
}

impl Batch {
    pub fn new(events: Vec<Event>) -> Self {
        Batch {
            v: crate::PROTOCOL_VERSION,
            events,
        }
    }
}

/// Every event a tap can send, tagged by `"type"` (decoded in `event_de.rs`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Hello(Hello),
    ConnOpen(ConnOpen),
    Message(Message),
    ConnClose(ConnClose),
    Host(Host),
    Dropped(Dropped),
    Counters(Counters),
}

/// The kind of an event, used for counters and filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Hello,
    ConnOpen,
    Message,
    ConnClose,
    Host,
    Dropped,
    Counters,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Hello(_) => EventKind::Hello,
            Event::ConnOpen(_) => EventKind::ConnOpen,
            Event::Message(_) => EventKind::Message,
            Event::ConnClose(_) => EventKind::ConnClose,
            Event::Host(_) => EventKind::Host,
            Event::Dropped(_) => EventKind::Dropped,
            Event::Counters(_) => EventKind::Counters,
        }
    }
}

/// Identifies the tap. Must be the first event a tap sends on a connection (and in a POST).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Stable id of this tap, `[A-Za-z0-9._:-]{1,64}`. Reconnects reuse it.
    pub source: String,
    /// Display name; defaults to `source`.
    #[serde(default)]
    pub name: String,
    pub kind: SourceKind,
    /// Version of the tap software.
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub hostname: String,
    /// Random per tap process start. When it changes for a known source, connections the
    /// previous instance left open are closed as `abort`.
    #[serde(default)]
    pub instance: Option<u64>,
    /// How the tap sends messages; absent from taps that do not say (they send every one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureMode>,
}

/// When a tap sends per-message events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMode {
    /// Every message, always.
    #[default]
    Full,
    /// Messages only for what the observer says somebody needs ([`crate::Reply::Demand`]);
    /// otherwise per-connection [`Counters`] once a second, and a flight recorder of each
    /// connection's last messages, sent when it closes abnormally.
    OnDemand,
}

impl CaptureMode {
    /// The serde name, for display.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::Full => "full",
            CaptureMode::OnDemand => "on_demand",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Proxy,
    Gateway,
    App,
}

impl SourceKind {
    /// The serde name, for display.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Proxy => "proxy",
            SourceKind::Gateway => "gateway",
            SourceKind::App => "app",
        }
    }
}

/// A header the tap was allowed to mirror, as `[name, value]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header(pub String, pub String);

/// A client connection was accepted (after the WebSocket handshake).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnOpen {
    /// Tap-side connection id, unique per source while the connection is open.
    pub conn: u64,
    /// Microseconds since the Unix epoch; the observer's receive time when absent.
    #[serde(default)]
    pub ts: Option<u64>,
    /// Client IP address (v4 or v6, text form).
    pub ip: String,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Request path including the query string.
    pub path: String,
    #[serde(default)]
    pub headers: Vec<Header>,
    #[serde(default)]
    pub subprotocol: Option<String>,
    /// How the tap captures this connection's payloads; absent from taps that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
    /// Bytes captured per message when `capture` is `truncated` (or the bound of `full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_bytes: Option<u64>,
    /// Names (never values) of request headers the tap withheld: not on its allow-list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted_headers: Vec<String>,
}

impl ConnOpen {
    /// A connection with only the required fields; set the rest with struct update syntax.
    pub fn new(conn: u64, ip: impl Into<String>, path: impl Into<String>) -> Self {
        ConnOpen {
            conn,
            ts: None,
            ip: ip.into(),
            user_agent: None,
            path: path.into(),
            headers: Vec::new(),
            subprotocol: None,
            capture: None,
            capture_bytes: None,
            redacted_headers: Vec::new(),
        }
    }
}

/// A tap's payload capture mode for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capture {
    /// No message events at all (the open and the close are still sent).
    Off,
    /// Message events with size, opcode and direction, never a payload.
    Metadata,
    /// The first `capture_bytes` of each payload, after masking.
    Truncated,
    /// Whole payloads after masking, up to the wire limit.
    Full,
}

impl Capture {
    /// The serde name, for display.
    pub fn as_str(self) -> &'static str {
        match self {
            Capture::Off => "off",
            Capture::Metadata => "metadata",
            Capture::Truncated => "truncated",
            Capture::Full => "full",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Client to server ("in" from the proxy's point of view).
    #[serde(rename = "c2s")]
    ClientToServer,
    /// Server to client ("out").
    #[serde(rename = "s2c")]
    ServerToClient,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Opcode {
    Text,
    Binary,
    Ping,
    Pong,
    Close,
}

impl Opcode {
    /// The serde name, for display.
    pub fn as_str(self) -> &'static str {
        match self {
            Opcode::Text => "text",
            Opcode::Binary => "binary",
            Opcode::Ping => "ping",
            Opcode::Pong => "pong",
            Opcode::Close => "close",
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Ping | Opcode::Pong | Opcode::Close)
    }
}

/// One WebSocket message (a whole message, after reassembly of fragments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub conn: u64,
    #[serde(default)]
    pub ts: Option<u64>,
    pub dir: Direction,
    pub opcode: Opcode,
    /// Original payload length in bytes, before any truncation.
    pub size: u64,
    /// Captured payload of a text message (UTF-8), possibly truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Captured payload of any other message, possibly truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Payload>,
    /// True when the captured payload is shorter than the (masked) payload.
    #[serde(default)]
    pub truncated: bool,
    /// Values the tap masked in the captured payload (replaced by `"[REDACTED]"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redacted: u32,
    /// Sent late by an on-demand tap's flight recorder when the connection closed abnormally;
    /// already counted in that connection's [`Counters`], so not counted again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub flight: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Message {
    /// Length of the captured payload (0 when none was captured).
    pub fn captured_len(&self) -> usize {
        self.text.as_ref().map(|t| t.len()).unwrap_or(0)
            + self.data.as_ref().map(|d| d.0.len()).unwrap_or(0)
    }
}

/// Who ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    Client,
    Server,
    Proxy,
    /// No close handshake: reset, task aborted, process gone.
    Abort,
}

impl Closer {
    /// The serde name, for display.
    pub fn as_str(self) -> &'static str {
        match self {
            Closer::Client => "client",
            Closer::Server => "server",
            Closer::Proxy => "proxy",
            Closer::Abort => "abort",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnClose {
    pub conn: u64,
    #[serde(default)]
    pub ts: Option<u64>,
    /// RFC 6455 close code, absent when none was received.
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub reason: Option<String>,
    pub by: Closer,
}

/// Host and process metrics of the machine the tap runs on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    #[serde(default)]
    pub ts: Option<u64>,
    /// Whole-host CPU use in percent (0–100).
    pub cpu_pct: f32,
    pub mem_used: u64,
    pub mem_total: u64,
    /// Resident set size of the tapped process in bytes.
    pub rss: u64,
}

/// Events the tap could not send (queue full, observer down), cumulative since the tap started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropped {
    #[serde(default)]
    pub conn_open: u64,
    #[serde(default)]
    pub message: u64,
    #[serde(default)]
    pub conn_close: u64,
    #[serde(default)]
    pub host: u64,
}

/// Messages an on-demand tap did not send one by one: per connection, what passed since its
/// last report (only connections that had traffic).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    #[serde(default)]
    pub ts: Option<u64>,
    pub conns: Vec<ConnCounts>,
}

/// One connection's traffic since the last [`Counters`] report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnCounts {
    pub conn: u64,
    /// Messages client → server, and their bytes.
    #[serde(default)]
    pub msgs_in: u64,
    #[serde(default)]
    pub bytes_in: u64,
    /// Messages server → client, and their bytes.
    #[serde(default)]
    pub msgs_out: u64,
    #[serde(default)]
    pub bytes_out: u64,
}
