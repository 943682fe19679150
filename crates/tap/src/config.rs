//! Tap configuration with documented defaults.

use sockscope_wire::SourceKind;
use std::time::Duration;

/// Events queued between the traffic and the sender task before new ones are dropped.
pub const DEFAULT_QUEUE: usize = 65_536;
/// Most events in one batch.
pub const DEFAULT_BATCH: usize = 1024;
/// Longest time an event waits for its batch to fill.
pub const DEFAULT_FLUSH: Duration = Duration::from_millis(5);
/// Captured payload bytes per message (the rest is counted, not copied).
pub const DEFAULT_PAYLOAD_CAP: usize = 4096;
/// Interval of host metrics and drop counters.
pub const DEFAULT_HOST_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between reconnect attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where and how a tap reports.
#[derive(Clone, Debug)]
pub struct TapConfig {
    /// `ws://host:port/ingest` of the observer.
    pub observer: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<String>,
    /// Stable id of this tap, `[A-Za-z0-9._:-]{1,64}`.
    pub source: String,
    pub name: String,
    pub kind: SourceKind,
    pub queue: usize,
    pub batch: usize,
    pub flush: Duration,
    pub payload_cap: usize,
    pub host_interval: Duration,
    pub max_backoff: Duration,
}

impl TapConfig {
    pub fn new(observer: impl Into<String>, source: impl Into<String>) -> Self {
        let source = source.into();
        TapConfig {
            observer: observer.into(),
            token: None,
            name: source.clone(),
            source,
            kind: SourceKind::Proxy,
            queue: DEFAULT_QUEUE,
            batch: DEFAULT_BATCH,
            flush: DEFAULT_FLUSH,
            payload_cap: DEFAULT_PAYLOAD_CAP,
            host_interval: DEFAULT_HOST_INTERVAL,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }

    pub fn validate(&self) -> Result<(), TapError> {
        if !(self.observer.starts_with("ws://") || self.observer.starts_with("wss://")) {
            return Err(TapError::Config(format!(
                "observer URL {:?} must start with ws:// or wss:// (e.g. ws://127.0.0.1:3000/ingest)",
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
        if self.queue == 0 || self.batch == 0 {
            return Err(TapError::Config(
                "queue and batch sizes must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("invalid tap configuration: {0}")]
    Config(String),
    #[error("the tap needs a tokio runtime: call Tap::start from within one")]
    NoRuntime,
}
