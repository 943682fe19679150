//! sockscope-tap: mirrors WebSocket traffic (connects, messages, disconnects) and host metrics
//! to a sockscope observer. The tap never awaits the observer: events go into a bounded queue
//! with `try_send`; what does not fit is counted per kind and the counters reach the observer.
//! A background task batches events (by count or every few milliseconds), encodes them as
//! MessagePack, reconnects with capped backoff and re-announces open connections after an
//! outage. A connection's close is recorded in `Drop`, so an aborted task still closes it.
//!
//! ```no_run
//! use sockscope_tap::{ConnInfo, Tap, TapConfig};
//! use sockscope_tap::wire::{Closer, Direction, Opcode};
//!
//! # async fn demo() -> Result<(), sockscope_tap::TapError> {
//! let tap = Tap::start(TapConfig::new("ws://127.0.0.1:3000/ingest", "my-gateway"))?;
//! let conn = tap.open(ConnInfo::new("203.0.113.7".parse().unwrap(), "/chat"));
//! conn.message(Direction::ClientToServer, Opcode::Text, b"hello");
//! conn.close(Some(1000), Some("bye"), Closer::Client);
//! # Ok(()) }
//! ```
//!
//! What leaves the process is limited in [`TapConfig`]: request headers pass an allow-list
//! ([`DEFAULT_MIRROR_HEADERS`]; `cookie`, `authorization` and `set-cookie` are withheld unless
//! listed, and only the withheld names are reported), payloads are captured per
//! [`PayloadMode`] (globally or per route: off, metadata, truncated, full), and JSON keys such
//! as `password` or `access_token` plus any regexes are masked ([`RedactConfig`]) before
//! truncation, in message payloads, close reasons and query strings.
//!
//! With feature `nats`, the observer URL may name a NATS server instead (`nats://host:4222`):
//! batches are published to JetStream (see [`bus`]) for a cluster of observers to share.
//!
//! To tap a tokio-tungstenite stream (or, with feature `axum`, an axum `WebSocket`), wrap it in
//! [`Tapped`]: every message read or written is mirrored.

#[cfg(feature = "nats")]
pub mod bus;
mod config;
mod demand;
mod handle;
mod host;
mod sender;
pub mod tls;
mod wrap;

pub use config::{
    PayloadMode, RoutePayload, TapConfig, TapError, DEFAULT_FLIGHT_BYTES, DEFAULT_FLIGHT_MESSAGES,
    DEFAULT_MIRROR_HEADERS, DEFAULT_PAYLOAD_CAP, DEFAULT_QUEUE_BYTES, MAX_FLIGHT_MESSAGES,
};
pub use handle::{ConnInfo, ConnTap, DropCounts, Tap};
pub use host::HostSampler;
pub use sockscope_payload as payload;
pub use sockscope_payload::redact::{RedactConfig, DEFAULT_MASK_KEYS};
pub use sockscope_wire as wire;
pub use wrap::{Mirror, Side, Tapped};
