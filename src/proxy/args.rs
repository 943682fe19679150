//! The flags of `sockscope proxy` and their validation into a [`ProxyConfig`] and the tap's
//! [`TapConfig`]: errors name the flag and what to do.

use super::{
    tls, ProxyConfig, DEFAULT_HEADER_TIMEOUT, DEFAULT_MASK_KEYS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_MESSAGE, DEFAULT_MIRROR_HEADERS, DEFAULT_PAYLOAD_CAP, DEFAULT_PAYLOAD_MODE,
    DEFAULT_READ_BUFFER,
};
use ipnet::IpNet;
use sockscope_tap::payload::redact::Redactor;
use sockscope_tap::{PayloadMode, RedactConfig, RoutePayload, Tap, TapConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Flags of `sockscope proxy`.
#[derive(Clone, Debug, clap::Args)]
pub struct ProxyArgs {
    /// TOML file whose [proxy] table sets any of these flags (flags and environment win).
    #[arg(long, env = crate::flags::CONFIG_ENV, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Address to accept clients on.
    #[arg(long, env = "SOCKSCOPE_PROXY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The server to forward to, e.g. http://127.0.0.1:5000, or https://app.internal:443 to
    /// speak TLS to it (WebSockets too).
    #[arg(long, env = "SOCKSCOPE_UPSTREAM")]
    pub upstream: String,
    /// PEM file of the CA that signed an https:// upstream's certificate: only it is trusted
    /// then. Without it, the system's roots are.
    #[arg(long, env = "SOCKSCOPE_UPSTREAM_CA", value_name = "FILE")]
    pub upstream_ca: Option<std::path::PathBuf>,
    /// PEM certificate chain: clients reach the proxy over https:// and wss://. Reloaded when
    /// the file changes or on SIGHUP. Needs --tls-key.
    #[arg(
        long,
        env = "SOCKSCOPE_PROXY_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "SOCKSCOPE_PROXY_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// A proxied WebSocket with no bytes in either direction for this long is closed with
    /// 1001 both ways (e.g. 10m). Off by default: WebSockets may idle for hours.
    #[arg(long, env = "SOCKSCOPE_WS_IDLE_TIMEOUT", value_parser = crate::flags::duration)]
    pub ws_idle_timeout: Option<Duration>,
    /// Observer ingest URL, e.g. ws://127.0.0.1:3000/ingest, or a NATS JetStream server for a
    /// cluster of observers (nats://[user:password@]host:4222). Without it the tap is off.
    #[arg(long, env = "SOCKSCOPE_OBSERVER")]
    pub observer: Option<String>,
    /// PEM file of the CA that signed a wss:// observer's certificate (a private CA): only it
    /// is trusted then. Without it, the system's roots are.
    #[arg(long, env = "SOCKSCOPE_OBSERVER_CA", value_name = "FILE")]
    pub observer_ca: Option<std::path::PathBuf>,
    /// PEM certificate chain this proxy's tap presents to a wss:// observer (mutual TLS,
    /// instead of a token, with an observer run with --tls-client-ca). Needs --tap-key.
    #[arg(
        long,
        env = "SOCKSCOPE_TAP_CERT",
        value_name = "FILE",
        requires = "tap_key"
    )]
    pub tap_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tap-cert.
    #[arg(
        long,
        env = "SOCKSCOPE_TAP_KEY",
        value_name = "FILE",
        requires = "tap_cert"
    )]
    pub tap_key: Option<std::path::PathBuf>,
    /// Token sent to the observer as `Authorization: Bearer`.
    #[arg(long, env = "SOCKSCOPE_TAP_TOKEN", hide_env_values = true)]
    pub token: Option<sockscope_wire::Secret>,
    /// File holding the observer token (first non-empty line), instead of --token.
    #[arg(long, env = "SOCKSCOPE_TAP_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Name of this proxy on the dashboard (also its source id).
    #[arg(long, env = "SOCKSCOPE_NAME", default_value = "proxy")]
    pub name: String,
    /// Peers whose Forwarded / X-Forwarded-For headers are believed (CIDR, repeatable).
    #[arg(
        long = "trusted-proxy",
        env = "SOCKSCOPE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<IpNet>,
    /// Largest WebSocket message in bytes; a bigger one ends the connection (1009 to its
    /// sender when possible). Messages are never buffered, whatever their size.
    #[arg(long, env = "SOCKSCOPE_MAX_MESSAGE", default_value_t = DEFAULT_MAX_MESSAGE, value_parser = crate::flags::at_least(1024))]
    pub max_message: usize,
    /// Bytes read at once when relaying (one buffer per worker thread, not per connection).
    #[arg(long, env = "SOCKSCOPE_READ_BUFFER", default_value_t = DEFAULT_READ_BUFFER,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(256..=1 << 20))]
    pub read_buffer: usize,
    /// Time a client has to send a request's headers; also the longest a kept-alive
    /// connection may sit idle between requests. Slow or silent clients are cut off.
    #[arg(long, env = "SOCKSCOPE_HEADER_TIMEOUT", default_value = DEFAULT_HEADER_TIMEOUT, value_parser = crate::flags::duration)]
    pub header_timeout: Duration,
    /// Client connections open at once; past it a client gets 503 and the refusal is counted
    /// and logged. Lowered at start if the open-file limit cannot hold two sockets for each.
    #[arg(long, env = "SOCKSCOPE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = crate::flags::at_least(1))]
    pub max_connections: usize,
    /// How much of each payload is mirrored: off (no message events), metadata (sizes only),
    /// truncated (the first --payload-cap bytes), full (up to 64 KiB). Masking comes first.
    #[arg(long, env = "SOCKSCOPE_PAYLOAD_MODE", default_value = DEFAULT_PAYLOAD_MODE)]
    pub payload_mode: String,
    /// Payload mode for paths under a prefix, as PREFIX=MODE (repeatable, e.g. /admin=off);
    /// the longest matching prefix wins.
    #[arg(
        long = "route-payload-mode",
        env = "SOCKSCOPE_ROUTE_PAYLOAD_MODES",
        value_delimiter = ','
    )]
    pub route_payload_mode: Vec<String>,
    /// Payload bytes mirrored per message in the truncated mode (0: metadata only).
    #[arg(long, env = "SOCKSCOPE_PAYLOAD_CAP", default_value_t = DEFAULT_PAYLOAD_CAP)]
    pub payload_cap: usize,
    /// JSON keys whose values are masked as "[REDACTED]" at any depth (comma-separated,
    /// ASCII case-insensitive); --mask-keys '' masks none.
    #[arg(
        long,
        env = "SOCKSCOPE_MASK_KEYS",
        value_delimiter = ',',
        default_values = DEFAULT_MASK_KEYS
    )]
    pub mask_keys: Vec<String>,
    /// Regular expression whose matches in payloads, close reasons and paths are masked
    /// (repeatable).
    #[arg(long, env = "SOCKSCOPE_MASK_REGEX")]
    pub mask_regex: Vec<String>,
    /// Request headers mirrored to the observer (comma-separated); the others are withheld and
    /// only their names are sent. Cookie, Authorization, Set-Cookie and Proxy-Authorization
    /// are never mirrored unless listed here.
    #[arg(
        long,
        env = "SOCKSCOPE_MIRROR_HEADERS",
        value_delimiter = ',',
        default_values = DEFAULT_MIRROR_HEADERS
    )]
    pub mirror_headers: Vec<String>,
    /// When messages are sent to the observer: full (every message), or on-demand (only
    /// what somebody watches on the dashboard: a live trace, an inspected connection; the
    /// rest is counted per connection once a second, and the last --flight-messages of a
    /// connection that dies abnormally are sent with its close).
    #[arg(long, env = "SOCKSCOPE_CAPTURE", value_enum, default_value_t = Capture::Full)]
    pub capture: Capture,
    /// On-demand capture: messages kept per connection for the flight recorder (0: none);
    /// each keeps its first 256 bytes (at most the payload cap).
    #[arg(long, env = "SOCKSCOPE_FLIGHT_MESSAGES", default_value_t = sockscope_tap::DEFAULT_FLIGHT_MESSAGES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=sockscope_tap::MAX_FLIGHT_MESSAGES as u64))]
    pub flight_messages: usize,
}

/// `--capture`: when the tap sends messages one by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Capture {
    /// Every message.
    Full,
    /// Only what somebody watches; counters and a flight recorder otherwise.
    OnDemand,
}

impl ProxyArgs {
    /// Validates the flags and starts the tap (if an observer is given).
    pub fn into_parts(self) -> anyhow::Result<(ProxyConfig, Tap)> {
        let (cfg, tap) = self.into_config()?;
        let tap = match tap {
            Some(tap) => Tap::start(tap).map_err(|e| anyhow::anyhow!("{e}"))?,
            None => Tap::disabled(),
        };
        Ok((cfg, tap))
    }

    /// Validates the flags: the proxy's settings and the tap's (if an observer is given).
    pub fn into_config(mut self) -> anyhow::Result<(ProxyConfig, Option<TapConfig>)> {
        crate::flags::read_single_secret(
            "--token",
            &mut self.token,
            self.token_file.take().as_deref(),
        )?;
        let (upstream, upstream_tls) = parse_upstream(&self.upstream)?;
        let upstream_tls = match upstream_tls {
            true => Some(tls::UpstreamTls::new(
                &upstream,
                self.upstream_ca.as_deref(),
            )?),
            false => {
                anyhow::ensure!(
                    self.upstream_ca.is_none(),
                    "--upstream-ca is only used for TLS: write the upstream as https://{upstream}"
                );
                None
            }
        };
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => {
                let files = crate::server::tls::TlsFiles {
                    cert,
                    key,
                    client_ca: None,
                };
                crate::server::tls::load(&files)?;
                Some(files)
            }
            _ => None,
        };
        if let Some(idle) = self.ws_idle_timeout {
            anyhow::ensure!(
                idle >= Duration::from_secs(1),
                "--ws-idle-timeout {idle:?} is too short: give at least 1s (leave it out for no limit)"
            );
        }
        let wire_max = sockscope_tap::wire::Limits::DEFAULT_MAX_PAYLOAD;
        anyhow::ensure!(
            self.payload_cap <= wire_max,
            "--payload-cap {} is over the wire limit of {wire_max} bytes (for whole payloads write --payload-mode full)",
            self.payload_cap
        );
        let payload = PayloadMode::parse(&self.payload_mode, self.payload_cap)
            .map_err(|e| anyhow::anyhow!("--payload-mode: {e}"))?;
        let route_payload = self
            .route_payload_mode
            .iter()
            .filter(|r| !r.trim().is_empty())
            .map(|r| {
                let rp = RoutePayload::parse(r, self.payload_cap)
                    .map_err(|e| anyhow::anyhow!("--route-payload-mode: {e}"))?;
                anyhow::ensure!(
                    rp.prefix.starts_with('/'),
                    "--route-payload-mode {r:?}: the prefix must start with / (e.g. /admin=off)"
                );
                Ok(rp)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let redact = RedactConfig {
            mask_keys: self.mask_keys,
            mask_regex: self.mask_regex,
        };
        Redactor::new(&redact).map_err(|e| anyhow::anyhow!("--mask-regex: {e}"))?;
        let tap = match self.observer {
            Some(url) => {
                let mut cfg = TapConfig::new(url, self.name.clone());
                cfg.token = self.token;
                cfg.observer_ca = self.observer_ca;
                cfg.client_cert = self.tap_cert.zip(self.tap_key);
                cfg.payload = payload;
                cfg.route_payload = route_payload;
                cfg.redact = redact;
                cfg.mirror_headers = self.mirror_headers;
                cfg.capture = match self.capture {
                    Capture::Full => sockscope_tap::wire::CaptureMode::Full,
                    Capture::OnDemand => sockscope_tap::wire::CaptureMode::OnDemand,
                };
                cfg.flight_messages = self.flight_messages;
                cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
                Some(cfg)
            }
            None => None,
        };
        Ok((
            ProxyConfig {
                upstream,
                upstream_tls,
                tls,
                ws_idle_timeout: self.ws_idle_timeout,
                trusted: self.trusted_proxy,
                max_message: self.max_message,
                read_buffer: self.read_buffer,
                header_timeout: self.header_timeout,
                max_connections: self.max_connections,
            },
            tap,
        ))
    }
}

/// `host:port` of `--upstream`, and whether it speaks TLS.
fn parse_upstream(url: &str) -> anyhow::Result<(String, bool)> {
    let (rest, tls) = if let Some(r) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("wss://"))
    {
        (r, true)
    } else if let Some(r) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
    {
        (r, false)
    } else {
        anyhow::bail!("--upstream {url:?} must look like http://host:port or https://host:port");
    };
    let authority = rest.trim_end_matches('/');
    anyhow::ensure!(
        !authority.is_empty() && !authority.contains('/'),
        "--upstream {url:?} must be a scheme and host:port without a path"
    );
    // A port is needed to dial: the scheme's own when none is written.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok());
    let authority = match has_port {
        true => authority.to_string(),
        false => format!("{authority}:{}", if tls { 443 } else { 80 }),
    };
    Ok((authority, tls))
}
