//! The tap's link to NATS JetStream (`nats://` observer URLs, cargo feature `nats`): each
//! batch is published to the stream under its source's subject, led by the tap's hello (a
//! consumer may start anywhere in the stream) and carrying a message id the server
//! deduplicates on, and is sent only once JetStream acknowledged it as stored.

use sockscope_wire::bus;
use std::time::Duration;

/// How long a publish may wait for JetStream's acknowledgement before the bus counts as lost.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the stream keeps batches by default (the cluster's shared record).
pub const DEFAULT_STREAM_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct BusLink {
    js: async_nats::jetstream::Context,
    subject: String,
    /// `<source>.<instance>.`: with the batch's sequence, its id.
    id_prefix: String,
    /// The server's largest message (less room for headers).
    max_payload: usize,
}

/// The stream's settings, the same from every tap and observer (whoever comes first creates
/// it; an existing stream is used as it is).
pub fn stream_config() -> async_nats::jetstream::stream::Config {
    async_nats::jetstream::stream::Config {
        name: bus::STREAM.into(),
        subjects: vec![format!("{}.>", bus::SUBJECT_PREFIX)],
        max_age: DEFAULT_STREAM_MAX_AGE,
        duplicate_window: Duration::from_secs(120),
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    }
}

impl BusLink {
    /// Connects to the NATS server of `url` (credentials in it: `nats://user:pass@host` or
    /// `nats://token@host`; `tls://` for TLS) and makes sure the stream exists.
    pub(crate) async fn connect(url: &str, source: &str, instance: u64) -> Result<Self, String> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .request_timeout(Some(ACK_TIMEOUT))
            .connect(url)
            .await
            .map_err(|e| format!("cannot connect to NATS: {e}"))?;
        let max_payload = client
            .server_info()
            .max_payload
            .saturating_sub(1024)
            .max(1024);
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(stream_config())
            .await
            .map_err(|e| {
                format!(
                    "cannot use the JetStream stream {}: {e} (is JetStream on: nats-server -js?)",
                    bus::STREAM
                )
            })?;
        Ok(BusLink {
            js,
            subject: bus::subject(source),
            id_prefix: format!("{source}.{instance}."),
            max_payload,
        })
    }

    /// The largest batch (encoded) the server takes.
    pub(crate) fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Publishes one encoded batch and waits for JetStream to have stored it. `seq` numbers
    /// the tap's batches across reconnects (a number is never reused by one tap instance).
    pub(crate) async fn publish(&mut self, bytes: Vec<u8>, seq: u64) -> Result<(), String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(bus::MSG_ID, format!("{}{seq}", self.id_prefix).as_str());
        let ack = self
            .js
            .publish_with_headers(self.subject.clone(), headers, bytes.into())
            .await
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(ACK_TIMEOUT, ack).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("JetStream did not acknowledge in time".into()),
        }
    }
}
