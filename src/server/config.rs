//! Observer configuration: typed structs, documented defaults, and the `serve` CLI flags.

use crate::flags::at_least;
use sockscope_payload::redact::{RedactConfig, Redactor, DEFAULT_MASK_KEYS};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default interval between frames sent to each browser (4 Hz).
pub const DEFAULT_TICK: &str = "250ms";
/// Default time a closed connection stays visible before it is evicted.
pub const DEFAULT_RETENTION: &str = "1h";
/// Default maximum number of tracked connections (open plus retained closed).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_000_000;
/// Default number of recent messages kept per connection.
pub const DEFAULT_CONN_MESSAGES: usize = 32;
/// Default number of messages stored across all connections.
pub const DEFAULT_MAX_STORED_MESSAGES: usize = 262_144;
/// Default payload bytes stored across all connections (256 MiB).
pub const DEFAULT_PAYLOAD_BUDGET: usize = 256 << 20;
/// Default most metadata bytes (path, headers, subprotocol) kept per connection; headers past
/// it are cut, and counted.
pub const DEFAULT_CONN_META_BYTES: usize = 16 << 10;
/// Default metadata bytes kept across all tracked connections (512 MiB); past it new
/// connections keep their path only, and are counted.
pub const DEFAULT_METADATA_BUDGET: usize = 512 << 20;
/// Default number of events in the global live-trace ring.
pub const DEFAULT_TRACE_CAPACITY: usize = 10_000;
/// Length of the one-second time series (15 minutes).
pub const SERIES_LEN: usize = 900;
/// Default largest ingest frame or POST body in bytes (16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;
/// Default frames queued per browser before it is considered behind and re-snapshotted.
pub const DEFAULT_BROWSER_QUEUE: usize = 8;
/// Default most browsers on `/live` at once.
pub const DEFAULT_MAX_BROWSERS: usize = 64;
/// Default most tap sessions on `/ingest` at once.
pub const DEFAULT_MAX_TAPS: usize = 1024;
/// Default most sources (tap ids) remembered; at the limit the longest-offline source with no
/// connection or trace record left is forgotten to make room, otherwise the new one is refused.
pub const DEFAULT_MAX_SOURCES: usize = 4096;
/// Default events per second accepted from one tap (source); above it message events are
/// dropped and counted. The observer handles about a million events/s in all.
pub const DEFAULT_MAX_TAP_EVENTS_PER_SEC: u32 = 1_000_000;
/// Default most client sockets at once (browsers, taps, API callers); lowered at start to what
/// the open-file limit holds.
pub const DEFAULT_MAX_CLIENTS: usize = 8192;
/// Default time a client has to send a request's headers, and the longest a kept-alive
/// connection idles between requests (nginx: 60 s and 75 s; a slow-header client is cut sooner).
pub const DEFAULT_HEADER_TIMEOUT: &str = "20s";
/// Default largest export body (256 MiB); an export stops there and says so.
pub const DEFAULT_MAX_EXPORT_BYTES: usize = 256 << 20;

/// What the aggregator task needs to know.
#[derive(Clone, Debug)]
pub struct AggConfig {
    pub retention: Duration,
    pub max_connections: usize,
    pub conn_messages: usize,
    pub max_stored_messages: usize,
    pub payload_budget: usize,
    pub trace_capacity: usize,
    pub series_len: usize,
    pub max_sources: usize,
    pub tick: Duration,
    pub browser_queue: usize,
    /// See [`DEFAULT_CONN_META_BYTES`].
    pub conn_meta_bytes: usize,
    /// See [`DEFAULT_METADATA_BUDGET`].
    pub metadata_budget: usize,
}

impl Default for AggConfig {
    fn default() -> Self {
        AggConfig {
            retention: humantime::parse_duration(DEFAULT_RETENTION).expect("valid default"),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            conn_messages: DEFAULT_CONN_MESSAGES,
            max_stored_messages: DEFAULT_MAX_STORED_MESSAGES,
            payload_budget: DEFAULT_PAYLOAD_BUDGET,
            trace_capacity: DEFAULT_TRACE_CAPACITY,
            series_len: SERIES_LEN,
            max_sources: DEFAULT_MAX_SOURCES,
            tick: humantime::parse_duration(DEFAULT_TICK).expect("valid default"),
            browser_queue: DEFAULT_BROWSER_QUEUE,
            conn_meta_bytes: DEFAULT_CONN_META_BYTES,
            metadata_budget: DEFAULT_METADATA_BUDGET,
        }
    }
}

/// Everything `sockscope serve` needs.
#[derive(Clone, Debug)]
pub struct ObserverConfig {
    pub listen: SocketAddr,
    /// Directory with the built dashboard (`pkg/sockscope.js`, `.wasm`, `.css`); `None` serves
    /// the copy embedded in the binary (see `server::assets`).
    pub site_root: Option<PathBuf>,
    pub agg: AggConfig,
    pub wire: sockscope_wire::Limits,
    pub max_frame_bytes: usize,
    pub auth: crate::server::auth::config::AuthConfig,
    pub max_browsers: usize,
    pub max_taps: usize,
    /// 0 turns the limit off.
    pub max_tap_events_per_sec: u32,
    pub max_export_bytes: usize,
    /// Masks payloads that arrive without a tap (`/ingest/apigw`) before they are stored.
    pub apigw_redactor: Arc<Redactor>,
    /// HTTPS and WSS on `listen` with this certificate; plain HTTP without.
    pub tls: Option<crate::server::tls::TlsFiles>,
    /// The record on disk; none: nothing is recorded (the default for embedding and tests;
    /// `sockscope serve` records unless `--no-record`).
    pub record: Option<crate::server::record::RecordConfig>,
    /// Client sockets at once (browsers, taps, API callers); past it a client gets 503.
    pub max_clients: usize,
    /// Time a client has to send a request's headers; also the longest a kept-alive
    /// connection may idle between requests.
    pub header_timeout: Duration,
    /// `--bus`: batches from NATS JetStream too.
    pub bus: Option<crate::server::bus::BusConfig>,
}

impl Default for ObserverConfig {
    fn default() -> Self {
        ObserverConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            site_root: None,
            agg: AggConfig::default(),
            wire: sockscope_wire::Limits::default(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            auth: Default::default(),
            max_browsers: DEFAULT_MAX_BROWSERS,
            max_taps: DEFAULT_MAX_TAPS,
            max_tap_events_per_sec: DEFAULT_MAX_TAP_EVENTS_PER_SEC,
            max_export_bytes: DEFAULT_MAX_EXPORT_BYTES,
            apigw_redactor: Arc::new(Redactor::default()),
            tls: None,
            record: None,
            max_clients: DEFAULT_MAX_CLIENTS,
            header_timeout: parse_duration(DEFAULT_HEADER_TIMEOUT).expect("valid default"),
            bus: None,
        }
    }
}

use crate::flags::duration as parse_duration;

fn parse_tick(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(50) || d > Duration::from_secs(10) {
        return Err(format!("{s} is outside 50ms..10s"));
    }
    Ok(d)
}

/// Flags of `sockscope serve`. Every flag also reads an environment variable.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML file whose [serve] table sets any of these flags (flags and environment win).
    #[arg(long, env = crate::flags::CONFIG_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on. Anything but loopback needs a dashboard credential and a tap token.
    #[arg(long, env = "SOCKSCOPE_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Serve the dashboard's files from this directory instead of the copy inside the binary
    /// (development: `cargo leptos watch` sets it).
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// Interval between live frames sent to each browser (50ms..10s).
    #[arg(long, env = "SOCKSCOPE_TICK", default_value = DEFAULT_TICK, value_parser = parse_tick)]
    pub tick: Duration,
    /// How long closed connections stay visible before eviction.
    #[arg(long, env = "SOCKSCOPE_RETENTION", default_value = DEFAULT_RETENTION, value_parser = parse_duration)]
    pub retention: Duration,
    /// Most connections tracked at once; the oldest closed ones are evicted first.
    #[arg(long, env = "SOCKSCOPE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = at_least(1))]
    pub max_connections: usize,
    /// Recent messages kept per connection (0 keeps none).
    #[arg(long, env = "SOCKSCOPE_CONN_MESSAGES", default_value_t = DEFAULT_CONN_MESSAGES)]
    pub conn_messages: usize,
    /// Messages stored across all connections.
    #[arg(long, env = "SOCKSCOPE_MAX_STORED_MESSAGES", default_value_t = DEFAULT_MAX_STORED_MESSAGES)]
    pub max_stored_messages: usize,
    /// Payload bytes stored across all connections; the oldest payloads are dropped first.
    #[arg(long, env = "SOCKSCOPE_PAYLOAD_BUDGET", default_value_t = DEFAULT_PAYLOAD_BUDGET)]
    pub payload_budget: usize,
    /// Events in the global live-trace ring.
    #[arg(long, env = "SOCKSCOPE_TRACE_CAPACITY", default_value_t = DEFAULT_TRACE_CAPACITY)]
    pub trace_capacity: usize,
    /// Largest ingest frame or POST body, in bytes.
    #[arg(long, env = "SOCKSCOPE_MAX_FRAME_BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES, value_parser = at_least(1024))]
    pub max_frame_bytes: usize,
    /// Most events in one ingest batch.
    #[arg(long, env = "SOCKSCOPE_MAX_BATCH_EVENTS", default_value_t = sockscope_wire::Limits::DEFAULT_MAX_EVENTS, value_parser = at_least(1))]
    pub max_batch_events: usize,
    /// Largest captured payload of one message accepted from a tap, in bytes.
    #[arg(long, env = "SOCKSCOPE_MAX_PAYLOAD", default_value_t = sockscope_wire::Limits::DEFAULT_MAX_PAYLOAD)]
    pub max_payload: usize,
    /// Frames queued per browser before it is re-snapshotted instead of waited for.
    #[arg(long, env = "SOCKSCOPE_BROWSER_QUEUE", default_value_t = DEFAULT_BROWSER_QUEUE, value_parser = at_least(1))]
    pub browser_queue: usize,
    /// Most browsers connected to /live at once; more are refused (503) and counted.
    #[arg(long, env = "SOCKSCOPE_MAX_BROWSERS", default_value_t = DEFAULT_MAX_BROWSERS, value_parser = at_least(1))]
    pub max_browsers: usize,
    /// Most tap sessions on /ingest at once; more are refused (503) and counted.
    #[arg(long, env = "SOCKSCOPE_MAX_TAPS", default_value_t = DEFAULT_MAX_TAPS, value_parser = at_least(1))]
    pub max_taps: usize,
    /// Most sources (tap ids) remembered. At the limit a new source replaces the longest-offline
    /// one that has no connection or trace record left; with none such it is refused and counted.
    #[arg(long, env = "SOCKSCOPE_MAX_SOURCES", default_value_t = DEFAULT_MAX_SOURCES, value_parser = at_least(1))]
    pub max_sources: usize,
    /// Events per second accepted from one tap (source id); message events above it are
    /// dropped and counted per source. 0 turns the limit off.
    #[arg(long, env = "SOCKSCOPE_MAX_TAP_EVENTS_PER_SEC", default_value_t = DEFAULT_MAX_TAP_EVENTS_PER_SEC)]
    pub max_tap_events_per_sec: u32,
    /// Largest export body in bytes; an export stops there and says so in its last record.
    #[arg(long, env = "SOCKSCOPE_MAX_EXPORT_BYTES", default_value_t = DEFAULT_MAX_EXPORT_BYTES, value_parser = at_least(4096))]
    pub max_export_bytes: usize,
    /// JSON keys whose values are masked as "[REDACTED]" in API Gateway payloads (which reach
    /// the observer without a tap), comma-separated; '' masks none.
    #[arg(
        long,
        env = "SOCKSCOPE_APIGW_MASK_KEYS",
        value_delimiter = ',',
        default_values = DEFAULT_MASK_KEYS
    )]
    pub apigw_mask_keys: Vec<String>,
    /// Regular expression whose matches in API Gateway payloads and close reasons are masked
    /// (repeatable).
    #[arg(long, env = "SOCKSCOPE_APIGW_MASK_REGEX")]
    pub apigw_mask_regex: Vec<String>,
    /// Keep transparent huge pages (off by default): about 20–27 % more ingest throughput with
    /// a million tracked connections, but RSS then moves in 2 MiB steps and jumps by tens of MiB
    /// when the kernel collapses sparse memory into huge pages.
    #[arg(long, env = "SOCKSCOPE_HUGE_PAGES")]
    pub huge_pages: bool,
    /// Metadata bytes (path, headers, subprotocol) kept per connection; headers past it are
    /// cut, and counted. Anonymous clients of the tapped app choose these bytes.
    #[arg(long, env = "SOCKSCOPE_CONN_META_BYTES", default_value_t = DEFAULT_CONN_META_BYTES, value_parser = at_least(256))]
    pub conn_meta_bytes: usize,
    /// Metadata bytes kept across all tracked connections; past it new connections keep their
    /// path only, and are counted.
    #[arg(long, env = "SOCKSCOPE_METADATA_BUDGET", default_value_t = DEFAULT_METADATA_BUDGET, value_parser = at_least(1 << 20))]
    pub metadata_budget: usize,
    /// Client sockets at once (browsers, taps, API callers); past it a client gets 503 and the
    /// refusal is logged. Lowered at start to what the open-file limit holds.
    #[arg(long, env = "SOCKSCOPE_MAX_CLIENTS", default_value_t = DEFAULT_MAX_CLIENTS, value_parser = at_least(1))]
    pub max_clients: usize,
    /// Time a client has to send a request's headers; also the longest a kept-alive
    /// connection may idle between requests. Slow or silent clients are cut off.
    #[arg(long, env = "SOCKSCOPE_HEADER_TIMEOUT", default_value = DEFAULT_HEADER_TIMEOUT, value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// PEM certificate chain: the port serves HTTPS and WSS (taps use wss://). Reloaded when
    /// the file changes or on SIGHUP. Needs --tls-key; makes the session cookie Secure.
    #[arg(
        long,
        env = "SOCKSCOPE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "SOCKSCOPE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Directory the record is kept in: every accepted tap event, so a restart or a crash
    /// loses nothing older than --record-sync. One observer per directory.
    #[arg(long, env = "SOCKSCOPE_DATA_DIR", default_value = crate::server::record::DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Record nothing: everything is in memory only, and lost on restart.
    #[arg(long, env = "SOCKSCOPE_NO_RECORD", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub no_record: bool,
    /// Bytes the record may take on disk; the oldest data is deleted past it.
    #[arg(long, env = "SOCKSCOPE_RECORD_MAX_BYTES", default_value_t = crate::server::record::DEFAULT_RECORD_MAX_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1 << 20..))]
    pub record_max_bytes: u64,
    /// Age past which recorded data is deleted.
    #[arg(long, env = "SOCKSCOPE_RECORD_MAX_AGE", default_value = crate::server::record::DEFAULT_RECORD_MAX_AGE, value_parser = parse_duration)]
    pub record_max_age: Duration,
    /// How often the record is flushed to disk: a crash (kill -9, power loss) loses at most
    /// this much of it.
    #[arg(long, env = "SOCKSCOPE_RECORD_SYNC", default_value = crate::server::record::DEFAULT_RECORD_SYNC, value_parser = parse_duration)]
    pub record_sync: Duration,
    /// Also take the taps' batches from this NATS JetStream server (taps publish there with
    /// `--observer nats://…`): nats://[user:password@]host:4222.
    #[arg(long, env = "SOCKSCOPE_BUS", value_name = "URL")]
    pub bus: Option<String>,
    /// The cluster this observer belongs to on the bus: the name of its durable consumer.
    #[arg(long, env = "SOCKSCOPE_CLUSTER", default_value = crate::server::bus::DEFAULT_CLUSTER, value_name = "NAME")]
    pub cluster: String,
    #[command(flatten)]
    pub auth: crate::server::auth::config::AuthArgs,
}

impl ServeArgs {
    pub fn into_config(self) -> anyhow::Result<ObserverConfig> {
        let client_ca = self.auth.tls_client_ca.clone();
        let mut auth = crate::server::auth::config::AuthConfig::from_args(self.auth, self.listen)?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => {
                let files = crate::server::tls::TlsFiles {
                    cert,
                    key,
                    client_ca,
                };
                crate::server::tls::load(&files)?;
                auth.secure_cookie = true;
                Some(files)
            }
            _ => None,
        };
        let apigw_redactor = Redactor::new(&RedactConfig {
            mask_keys: self
                .apigw_mask_keys
                .into_iter()
                .filter(|k| !k.trim().is_empty())
                .collect(),
            mask_regex: self.apigw_mask_regex,
        })
        .map_err(|e| anyhow::anyhow!("--apigw-mask-regex: {e}"))?;
        Ok(ObserverConfig {
            apigw_redactor: Arc::new(apigw_redactor),
            auth,
            max_browsers: self.max_browsers,
            max_taps: self.max_taps,
            max_tap_events_per_sec: self.max_tap_events_per_sec,
            max_export_bytes: self.max_export_bytes,
            listen: self.listen,
            site_root: self.site_root,
            agg: AggConfig {
                retention: self.retention,
                max_connections: self.max_connections,
                conn_messages: self.conn_messages,
                max_stored_messages: self.max_stored_messages,
                payload_budget: self.payload_budget,
                trace_capacity: self.trace_capacity,
                series_len: SERIES_LEN,
                max_sources: self.max_sources,
                tick: self.tick,
                browser_queue: self.browser_queue,
                conn_meta_bytes: self.conn_meta_bytes,
                metadata_budget: self.metadata_budget,
            },
            wire: sockscope_wire::Limits {
                max_events: self.max_batch_events,
                max_payload: self.max_payload,
            },
            max_frame_bytes: self.max_frame_bytes,
            tls,
            record: (!self.no_record).then_some(crate::server::record::RecordConfig {
                dir: self.data_dir,
                max_bytes: self.record_max_bytes,
                max_age: self.record_max_age,
                sync: self.record_sync,
            }),
            max_clients: self.max_clients,
            header_timeout: self.header_timeout,
            bus: self
                .bus
                .map(|url| crate::server::bus::BusConfig::new(url, self.cluster))
                .transpose()?,
        })
    }
}
