//! Limits and checks every decoded batch must pass before the observer applies it.

use crate::event::{Batch, Event, Opcode};
use std::net::IpAddr;

/// Size limits applied by [`crate::decode_batch`]. Defaults are documented in `docs/protocol.md`.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Maximum number of events in one batch.
    pub max_events: usize,
    /// Maximum captured payload bytes of one message.
    pub max_payload: usize,
}

impl Limits {
    pub const DEFAULT_MAX_EVENTS: usize = 4096;
    pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;
    pub const MAX_SOURCE_ID: usize = 64;
    pub const MAX_NAME: usize = 256;
    pub const MAX_USER_AGENT: usize = 2048;
    pub const MAX_PATH: usize = 8192;
    pub const MAX_HEADERS: usize = 64;
    pub const MAX_HEADER_NAME: usize = 256;
    pub const MAX_HEADER_VALUE: usize = 8192;
    pub const MAX_REASON: usize = 123;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: Self::DEFAULT_MAX_EVENTS,
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// Why a frame from a tap was rejected. The whole batch is rejected; nothing of it is applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("malformed {encoding} batch at `{path}`: {message}")]
    Malformed {
        encoding: &'static str,
        path: String,
        message: String,
    },
    #[error("unsupported protocol version {0}; this observer speaks v1 (send \"v\": 1)")]
    UnsupportedVersion(u32),
    #[error("batch has {count} events; the limit is {limit} (send smaller batches)")]
    TooManyEvents { count: usize, limit: usize },
    #[error("events[{index}].{field}: {message}")]
    Invalid {
        index: usize,
        field: &'static str,
        message: String,
    },
}

impl WireError {
    /// Stable machine-readable code, sent in error replies and used as a counter label.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::Malformed { .. } => "malformed",
            WireError::UnsupportedVersion(_) => "unsupported_version",
            WireError::TooManyEvents { .. } => "too_many_events",
            WireError::Invalid { .. } => "invalid_event",
        }
    }

    /// Index of the offending event, when one is to blame.
    pub fn index(&self) -> Option<usize> {
        match self {
            WireError::Invalid { index, .. } => Some(*index),
            _ => None,
        }
    }
}

fn bad(index: usize, field: &'static str, message: impl Into<String>) -> WireError {
    WireError::Invalid {
        index,
        field,
        message: message.into(),
    }
}

fn max_len(index: usize, field: &'static str, s: &str, limit: usize) -> Result<(), WireError> {
    if s.len() > limit {
        return Err(bad(
            index,
            field,
            format!("{} bytes; the limit is {limit}", s.len()),
        ));
    }
    Ok(())
}

fn valid_source_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= Limits::MAX_SOURCE_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Checks version, batch size and every event's fields.
pub fn validate(batch: &Batch, limits: &Limits) -> Result<(), WireError> {
    if batch.v != crate::PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion(batch.v));
    }
    if batch.events.len() > limits.max_events {
        return Err(WireError::TooManyEvents {
            count: batch.events.len(),
            limit: limits.max_events,
        });
    }
    for (i, ev) in batch.events.iter().enumerate() {
        validate_event(i, ev, limits)?;
    }
    Ok(())
}

fn validate_event(i: usize, ev: &Event, limits: &Limits) -> Result<(), WireError> {
    match ev {
        Event::Hello(h) => {
            if !valid_source_id(&h.source) {
                return Err(bad(
                    i,
                    "source",
                    "must be 1-64 characters of A-Z a-z 0-9 . _ : -",
                ));
            }
            max_len(i, "name", &h.name, Limits::MAX_NAME)?;
            max_len(i, "version", &h.version, Limits::MAX_NAME)?;
            max_len(i, "hostname", &h.hostname, Limits::MAX_NAME)?;
        }
        Event::ConnOpen(o) => {
            if o.ip.parse::<IpAddr>().is_err() {
                return Err(bad(
                    i,
                    "ip",
                    format!("{:?} is not an IPv4 or IPv6 address", truncate(&o.ip)),
                ));
            }
            if let Some(ua) = &o.user_agent {
                max_len(i, "user_agent", ua, Limits::MAX_USER_AGENT)?;
            }
            max_len(i, "path", &o.path, Limits::MAX_PATH)?;
            if o.headers.len() > Limits::MAX_HEADERS {
                return Err(bad(
                    i,
                    "headers",
                    format!(
                        "{} headers; the limit is {}",
                        o.headers.len(),
                        Limits::MAX_HEADERS
                    ),
                ));
            }
            for h in &o.headers {
                if h.0.is_empty() {
                    return Err(bad(i, "headers", "a header name is empty"));
                }
                max_len(i, "headers", &h.0, Limits::MAX_HEADER_NAME)?;
                max_len(i, "headers", &h.1, Limits::MAX_HEADER_VALUE)?;
            }
            if let Some(p) = &o.subprotocol {
                max_len(i, "subprotocol", p, Limits::MAX_NAME)?;
            }
            if o.capture_bytes.is_some()
                && o.capture != Some(crate::Capture::Truncated)
                && o.capture != Some(crate::Capture::Full)
            {
                return Err(bad(
                    i,
                    "capture_bytes",
                    "only a `truncated` or `full` capture has a byte count",
                ));
            }
            if o.redacted_headers.len() > Limits::MAX_HEADERS {
                return Err(bad(
                    i,
                    "redacted_headers",
                    format!(
                        "{} names; the limit is {}",
                        o.redacted_headers.len(),
                        Limits::MAX_HEADERS
                    ),
                ));
            }
            for h in &o.redacted_headers {
                if h.is_empty() {
                    return Err(bad(i, "redacted_headers", "a header name is empty"));
                }
                max_len(i, "redacted_headers", h, Limits::MAX_HEADER_NAME)?;
            }
        }
        Event::Message(m) => {
            if m.text.is_some() && m.data.is_some() {
                return Err(bad(i, "text", "give either `text` or `data`, not both"));
            }
            if m.opcode == Opcode::Text && m.data.is_some() {
                return Err(bad(
                    i,
                    "data",
                    "a text message carries its payload in `text`",
                ));
            }
            if m.opcode != Opcode::Text && m.text.is_some() {
                return Err(bad(
                    i,
                    "text",
                    "only text messages use `text`; send other payloads as `data`",
                ));
            }
            if m.opcode.is_control() && m.size > 125 {
                return Err(bad(
                    i,
                    "size",
                    format!("{} bytes; control frames carry at most 125", m.size),
                ));
            }
            let len = m.captured_len();
            if len > limits.max_payload {
                return Err(bad(
                    i,
                    "payload",
                    format!(
                        "{len} captured bytes; the limit is {} (truncate in the tap)",
                        limits.max_payload
                    ),
                ));
            }
            let captured = m.text.is_some() || m.data.is_some();
            if m.redacted > 0 && !captured {
                return Err(bad(
                    i,
                    "redacted",
                    format!("{} values redacted but no payload captured", m.redacted),
                ));
            }
            // Masking changes the length, so only unmasked payloads are held to `size`.
            if m.redacted == 0 && len as u64 > m.size {
                return Err(bad(
                    i,
                    "size",
                    format!("{} is smaller than the {len} captured bytes", m.size),
                ));
            }
            if m.redacted as u64 > m.size {
                return Err(bad(
                    i,
                    "redacted",
                    format!("{} values cannot hide in {} bytes", m.redacted, m.size),
                ));
            }
            if captured && m.redacted == 0 && m.truncated != ((len as u64) < m.size) {
                return Err(bad(
                    i,
                    "truncated",
                    format!(
                        "is {} but {len} of {} bytes were captured",
                        m.truncated, m.size
                    ),
                ));
            }
        }
        Event::ConnClose(c) => {
            if let Some(code) = c.code {
                if !(1000..=4999).contains(&code) {
                    return Err(bad(
                        i,
                        "code",
                        format!("{code} is outside the close-code range 1000-4999"),
                    ));
                }
            }
            if let Some(r) = &c.reason {
                max_len(i, "reason", r, Limits::MAX_REASON)?;
            }
        }
        Event::Host(h) => {
            if !h.cpu_pct.is_finite() || h.cpu_pct < 0.0 || h.cpu_pct > 100.0 {
                return Err(bad(
                    i,
                    "cpu_pct",
                    format!("{} is not within 0-100", h.cpu_pct),
                ));
            }
            if h.mem_used > h.mem_total {
                return Err(bad(
                    i,
                    "mem_used",
                    format!("{} exceeds mem_total {}", h.mem_used, h.mem_total),
                ));
            }
        }
        Event::Dropped(_) => {}
        Event::Counters(c) => {
            if c.conns.len() > limits.max_events {
                return Err(bad(
                    i,
                    "conns",
                    format!(
                        "has {} entries; the limit is {} (split the report)",
                        c.conns.len(),
                        limits.max_events
                    ),
                ));
            }
            for (k, cc) in c.conns.iter().enumerate() {
                if (cc.msgs_in == 0 && cc.bytes_in > 0) || (cc.msgs_out == 0 && cc.bytes_out > 0) {
                    return Err(bad(
                        i,
                        "conns",
                        format!("[{k}] counts bytes without messages"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
