//! Tap configuration with documented defaults: where to report, the queue, and what may leave
//! the process (header allow-list, payload capture mode per route, masking).

use sockscope_payload::redact::{RedactConfig, RedactError};
use sockscope_wire::{Capture, CaptureMode, Limits, SourceKind};
use std::time::Duration;

/// Events queued between the traffic and the sender task before new ones are dropped.
pub const DEFAULT_QUEUE: usize = 65_536;
/// Captured payload bytes queued before new messages are dropped: with full capture 65,536
/// queued events could otherwise hold 4 GiB.
pub const DEFAULT_QUEUE_BYTES: usize = 64 << 20;
/// Closes kept for late delivery when the queue is full; past it they are dropped and counted.
pub const MAX_LATE_CLOSES: usize = 65_536;
/// Most events in one batch.
pub const DEFAULT_BATCH: usize = 1024;
/// Longest time an event waits for its batch to fill.
pub const DEFAULT_FLUSH: Duration = Duration::from_millis(5);
/// Captured payload bytes per message in the default [`PayloadMode::Truncated`] mode.
pub const DEFAULT_PAYLOAD_CAP: usize = 4096;
/// Interval of host metrics and drop counters.
pub const DEFAULT_HOST_INTERVAL: Duration = Duration::from_secs(1);
/// Messages an on-demand tap keeps per connection for its flight recorder.
pub const DEFAULT_FLIGHT_MESSAGES: usize = 16;
/// Bytes of each message the flight recorder keeps (at most the connection's payload cap).
pub const DEFAULT_FLIGHT_BYTES: usize = 256;
/// Most messages the flight recorder may keep per connection.
pub const MAX_FLIGHT_MESSAGES: usize = 1024;
/// Longest wait between reconnect attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Request headers mirrored by default. Everything else (notably `cookie`, `authorization`,
/// `proxy-authorization` and `set-cookie`) is withheld, and only its name is reported, unless
/// listed in [`TapConfig::mirror_headers`].
pub const DEFAULT_MIRROR_HEADERS: &[&str] = &[
    "origin",
    "sec-websocket-protocol",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
];

/// How much of a connection's payloads the tap captures. Masking
/// ([`TapConfig::redact`]) applies before any payload leaves the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    /// No message events for the connection; its open and close are still recorded.
    Off,
    /// Message events with direction, opcode and size, no payload.
    Metadata,
    /// The first N bytes of each payload, after masking (at most [`Limits::DEFAULT_MAX_PAYLOAD`];
    /// 0 is metadata only).
    Truncated(usize),
    /// Whole payloads after masking, bounded by the wire limit [`Limits::DEFAULT_MAX_PAYLOAD`].
    Full,
}

impl PayloadMode {
    /// Parses `off`, `metadata`, `truncated` (with `cap` bytes), `truncated:BYTES` or `full`.
    pub fn parse(s: &str, cap: usize) -> Result<PayloadMode, String> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "off" => Ok(PayloadMode::Off),
            "metadata" => Ok(PayloadMode::Metadata),
            "truncated" => Ok(PayloadMode::Truncated(cap)),
            "full" => Ok(PayloadMode::Full),
            _ => match s.strip_prefix("truncated:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(PayloadMode::Truncated(n)),
                _ => Err(format!(
                    "{s:?} is not a payload mode: write off, metadata, truncated, truncated:BYTES or full"
                )),
            },
        }
    }

    /// Bytes captured per message (0: none).
    pub fn cap(self) -> usize {
        match self {
            PayloadMode::Off | PayloadMode::Metadata => 0,
            PayloadMode::Truncated(n) => n.min(Limits::DEFAULT_MAX_PAYLOAD),
            PayloadMode::Full => Limits::DEFAULT_MAX_PAYLOAD,
        }
    }

    /// As announced in `conn_open`.
    pub fn wire(self) -> (Capture, Option<u64>) {
        match self {
            PayloadMode::Off => (Capture::Off, None),
            PayloadMode::Metadata | PayloadMode::Truncated(0) => (Capture::Metadata, None),
            PayloadMode::Truncated(n) => (Capture::Truncated, Some(n as u64)),
            PayloadMode::Full => (Capture::Full, Some(Limits::DEFAULT_MAX_PAYLOAD as u64)),
        }
    }
}

/// A payload mode for the connections whose path starts with `prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePayload {
    /// Matches whole path segments: `/chat` covers `/chat`, `/chat/7` and `/chat?room=1`, not
    /// `/chatter`. The longest matching prefix wins.
    pub prefix: String,
    pub mode: PayloadMode,
}

impl RoutePayload {
    /// Parses `PREFIX=MODE`, e.g. `/admin=off` (modes as in [`PayloadMode::parse`]).
    pub fn parse(s: &str, cap: usize) -> Result<RoutePayload, String> {
        let (prefix, mode) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("{s:?} is not PREFIX=MODE (e.g. /admin=off or /chat=full)"))?;
        Ok(RoutePayload {
            prefix: prefix.trim().to_string(),
            mode: PayloadMode::parse(mode, cap)?,
        })
    }

    fn covers(&self, path: &str) -> bool {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/') || self.prefix.ends_with('/'),
            None => false,
        }
    }
}

/// Where and how a tap reports.
#[derive(Clone, Debug)]
pub struct TapConfig {
    /// `ws://host:port/ingest` of the observer, or `wss://` for TLS.
    pub observer: String,
    /// PEM file of the CA that signed a `wss://` observer's certificate (a private CA); only
    /// it is trusted then. Without it the system's roots are.
    pub observer_ca: Option<std::path::PathBuf>,
    /// PEM certificate chain and private key this tap presents to a `wss://` observer (mutual
    /// TLS): an observer that trusts its CA (`serve --tls-client-ca`) takes it instead of a
    /// token. Both or neither.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Sent as `Authorization: Bearer …` when set; never printed (`Debug` shows `***`).
    pub token: Option<sockscope_wire::Secret>,
    /// Stable id of this tap, `[A-Za-z0-9._:-]{1,64}`.
    pub source: String,
    pub name: String,
    pub kind: SourceKind,
    pub queue: usize,
    /// Captured payload bytes the queue may hold ([`DEFAULT_QUEUE_BYTES`]).
    pub queue_bytes: usize,
    pub batch: usize,
    pub flush: Duration,
    /// Payload capture for connections no route rule covers.
    pub payload: PayloadMode,
    /// Per-route payload capture; the longest matching prefix wins.
    pub route_payload: Vec<RoutePayload>,
    /// What is masked in payloads, close reasons and query strings before they leave.
    pub redact: RedactConfig,
    /// Request headers (case-insensitive) mirrored to the observer; the names of the others
    /// are reported as withheld. Default [`DEFAULT_MIRROR_HEADERS`].
    pub mirror_headers: Vec<String>,
    pub host_interval: Duration,
    pub max_backoff: Duration,
    /// `Full`: every message is sent. `OnDemand`: only what the observer says somebody needs;
    /// the rest is counted per connection once a second and kept in the flight recorder.
    pub capture: CaptureMode,
    /// On demand: messages kept per connection for the flight recorder (0: none).
    pub flight_messages: usize,
    /// On demand: bytes kept of each recorded message.
    pub flight_bytes: usize,
}

impl TapConfig {
    pub fn new(observer: impl Into<String>, source: impl Into<String>) -> Self {
        let source = source.into();
        TapConfig {
            observer: observer.into(),
            observer_ca: None,
            client_cert: None,
            token: None,
            name: source.clone(),
            source,
            kind: SourceKind::Proxy,
            queue: DEFAULT_QUEUE,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            batch: DEFAULT_BATCH,
            flush: DEFAULT_FLUSH,
            payload: PayloadMode::Truncated(DEFAULT_PAYLOAD_CAP),
            route_payload: Vec::new(),
            redact: RedactConfig::default(),
            mirror_headers: DEFAULT_MIRROR_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect(),
            host_interval: DEFAULT_HOST_INTERVAL,
            max_backoff: DEFAULT_MAX_BACKOFF,
            capture: CaptureMode::Full,
            flight_messages: DEFAULT_FLIGHT_MESSAGES,
            flight_bytes: DEFAULT_FLIGHT_BYTES,
        }
    }

    pub fn validate(&self) -> Result<(), TapError> {
        let bus = crate::sender::is_bus(&self.observer);
        if bus && !cfg!(feature = "nats") {
            return Err(TapError::Config(format!(
                "observer URL {:?} names a NATS server, and this tap was built without \
                 sockscope-tap's `nats` feature: enable it, or give a ws:// observer",
                self.observer
            )));
        }
        if bus && self.capture == CaptureMode::OnDemand {
            return Err(TapError::Config(
                "capture on demand needs an observer's ws:// link (the bus carries no demand \
                 back to taps): use full capture with a nats:// observer"
                    .into(),
            ));
        }
        if bus && self.token.is_some() {
            return Err(TapError::Config(
                "a tap token is for an observer: give NATS credentials in the URL \
                 (nats://user:password@host:4222 or nats://token@host:4222)"
                    .into(),
            ));
        }
        if !(bus || self.observer.starts_with("ws://") || self.observer.starts_with("wss://")) {
            return Err(TapError::Config(format!(
                "observer URL {:?} must start with ws:// or wss:// (e.g. ws://127.0.0.1:3000/ingest), \
                 or nats:// for a NATS JetStream bus",
                self.observer
            )));
        }
        if self.observer_ca.is_some() && !self.observer.starts_with("wss://") {
            return Err(TapError::Config(format!(
                "an observer CA is only used for TLS: the observer URL {:?} must start with wss://",
                self.observer
            )));
        }
        if self.client_cert.is_some() && !self.observer.starts_with("wss://") {
            return Err(TapError::Config(format!(
                "a client certificate is only used for TLS: the observer URL {:?} must start with wss://",
                self.observer
            )));
        }
        let ok_id = !self.source.is_empty()
            && self.source.len() <= 64
            && self
                .source
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !ok_id {
            return Err(TapError::Config(format!(
                "source id {:?} must be 1-64 characters of A-Z a-z 0-9 . _ : -",
                self.source
            )));
        }
        if self.queue_bytes == 0 {
            return Err(TapError::Config(
                "the queue's byte budget (queue_bytes) must be at least 1".into(),
            ));
        }
        if self.queue == 0 || self.batch == 0 {
            return Err(TapError::Config(
                "queue and batch sizes must be at least 1".into(),
            ));
        }
        let modes =
            std::iter::once(&self.payload).chain(self.route_payload.iter().map(|r| &r.mode));
        for m in modes {
            if let PayloadMode::Truncated(n) = m {
                if *n > Limits::DEFAULT_MAX_PAYLOAD {
                    return Err(TapError::Config(format!(
                        "a payload cap of {n} bytes is over the wire limit of {} (use the full mode for whole payloads)",
                        Limits::DEFAULT_MAX_PAYLOAD
                    )));
                }
            }
        }
        if self.flight_messages > MAX_FLIGHT_MESSAGES {
            return Err(TapError::Config(format!(
                "a flight recorder of {} messages is over the limit of {MAX_FLIGHT_MESSAGES} per connection",
                self.flight_messages
            )));
        }
        if self.flight_bytes > Limits::DEFAULT_MAX_PAYLOAD {
            return Err(TapError::Config(format!(
                "{} flight-recorder bytes per message is over the wire limit of {}",
                self.flight_bytes,
                Limits::DEFAULT_MAX_PAYLOAD
            )));
        }
        if let Some(r) = self
            .route_payload
            .iter()
            .find(|r| !r.prefix.starts_with('/'))
        {
            return Err(TapError::Config(format!(
                "route prefix {:?} must start with / (e.g. /admin)",
                r.prefix
            )));
        }
        Ok(())
    }

    /// The payload mode for a connection to `path`.
    pub fn payload_mode(&self, path: &str) -> PayloadMode {
        self.route_payload
            .iter()
            .filter(|r| r.covers(path))
            .max_by_key(|r| r.prefix.len())
            .map_or(self.payload, |r| r.mode)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("invalid tap configuration: {0}")]
    Config(String),
    #[error("invalid tap configuration: {0}")]
    Redact(#[from] RedactError),
    #[error("the tap needs a tokio runtime: call Tap::start from within one")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_routes_pick_the_longest_prefix() {
        assert_eq!(PayloadMode::parse("Full", 9), Ok(PayloadMode::Full));
        assert_eq!(
            PayloadMode::parse("truncated", 9),
            Ok(PayloadMode::Truncated(9))
        );
        assert_eq!(
            PayloadMode::parse("truncated:100", 9),
            Ok(PayloadMode::Truncated(100))
        );
        assert!(PayloadMode::parse("most", 9)
            .unwrap_err()
            .contains("off, metadata"));
        assert!(RoutePayload::parse("/x", 9)
            .unwrap_err()
            .contains("PREFIX=MODE"));
        let mut c = TapConfig::new("ws://x/ingest", "t");
        c.route_payload = vec![
            RoutePayload::parse("/chat=full", 9).unwrap(),
            RoutePayload::parse("/chat/admin=off", 9).unwrap(),
            RoutePayload::parse("/metrics/=metadata", 9).unwrap(),
        ];
        assert_eq!(c.payload_mode("/chat?room=1"), PayloadMode::Full);
        assert_eq!(c.payload_mode("/chat/admin/x"), PayloadMode::Off);
        assert_eq!(c.payload_mode("/chatter"), c.payload);
        assert_eq!(c.payload_mode("/metrics/cpu"), PayloadMode::Metadata);
        assert_eq!(c.payload_mode("/"), c.payload);
        c.route_payload
            .push(RoutePayload::parse("admin=off", 9).unwrap());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("start with /"));
        c.route_payload.clear();
        c.payload = PayloadMode::Truncated(1 << 20);
        assert!(c.validate().unwrap_err().to_string().contains("wire limit"));
        assert_eq!(PayloadMode::Truncated(0).wire(), (Capture::Metadata, None));
    }
}
