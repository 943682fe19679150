//! sockscope-payload: what sockscope does with WebSocket payloads, without Leptos or tokio so
//! the dashboard (wasm32), the tap and the fuzz targets share it.
//!
//! - [`decode`]: hex + ASCII, JSON, SignalR JSON hub protocol and Socket.IO / Engine.IO
//!   decoders for the inspector.
//! - [`redact`] (feature `redact`, on by default): masking of secrets (JSON keys such as
//!   `password` or `access_token`, and user regexes) before a payload leaves the tap, then
//!   truncation to the capture limit.

pub mod decode;
#[cfg(feature = "redact")]
pub mod redact;
#[cfg(feature = "redact")]
mod scan;
pub mod subprotocol;
#[cfg(feature = "redact")]
mod textpat;

/// What a masked value is replaced with. JSON values become the string `"[REDACTED]"`;
/// regex matches become the bare text `[REDACTED]`. The dashboard styles it.
pub const REDACTED: &str = "[REDACTED]";
