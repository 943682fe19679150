//! sockscope wire protocol v1: the events a tap mirrors to the observer, their validation,
//! and their two encodings (JSON for humans, MessagePack for speed). See `docs/protocol.md`.
//!
//! This crate has no Leptos and no runtime dependency so any proxy or gateway can link it.

mod codec;
mod event;
mod event_de;
mod payload;
mod secret;
mod validate;

pub use codec::{
    decode_batch, encode_batch, encode_events, Demand, Encoding, Reply, LOCATE_MAX_BYTES,
};
pub mod apigw;
pub mod bus;

pub use event::{
    Batch, Capture, CaptureMode, Closer, ConnClose, ConnCounts, ConnOpen, Counters, Direction,
    Dropped, Event, EventKind, Header, Hello, Host, Message, Opcode, SourceKind,
};
pub use payload::Payload;
pub use secret::Secret;
pub use validate::{validate, Limits, WireError};

/// Version carried in every batch (`"v": 1`). A v2 would use new subprotocol names.
pub const PROTOCOL_VERSION: u32 = 1;
/// WebSocket subprotocol selecting JSON text frames.
pub const SUBPROTOCOL_JSON: &str = "sockscope.v1.json";
/// WebSocket subprotocol selecting MessagePack binary frames.
pub const SUBPROTOCOL_MSGPACK: &str = "sockscope.v1.msgpack";
/// The wall clock in microseconds since the Unix epoch: the time base of every event (`ts`),
/// of the observer's series and frames. 0 if the clock is before 1970.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary:
/// how every text field is cut to a wire limit.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut n = max;
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// `Content-Type` of a MessagePack batch posted over HTTP.
pub const CONTENT_TYPE_MSGPACK: &str = "application/vnd.sockscope.v1+msgpack";
