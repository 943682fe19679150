//! Who may use the observer: credential flags, their validation, and the start-up rule that a
//! non-loopback observer must have credentials.

use super::host::HostPolicy;
use crate::flags::{read_secret_file, read_single_secret};
use crate::protocol::Role;
use sha2::{Digest as _, Sha256};
pub(crate) use sockscope_wire::Secret;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default lifetime of a dashboard login.
pub(crate) const DEFAULT_SESSION_TTL: &str = "12h";
/// Default number of dashboard logins kept at once (the oldest is ended first).
pub(crate) const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Default login attempts per minute from one client address.
pub(crate) const DEFAULT_LOGINS_PER_MINUTE: u32 = 10;
/// Shortest token accepted: shorter ones are guessable.
pub(crate) const MIN_TOKEN_LEN: usize = 16;

/// SHA-256 of a secret: only digests are kept in memory and compared.
pub(crate) type Digest = [u8; 32];

pub(crate) fn digest(secret: &str) -> Digest {
    Sha256::digest(secret.as_bytes()).into()
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 30m, 12h)"))
}

/// Credential flags of `sockscope serve`. Prefer the environment variables: flags show up in
/// the process list.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AuthArgs {
    /// Dashboard/API token that signs in as a viewer (metadata only, no payloads or headers).
    /// Repeatable; the variable takes a comma-separated list. At least 16 characters.
    #[arg(
        long = "viewer-token",
        env = "SOCKSCOPE_VIEWER_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub viewer_tokens: Vec<Secret>,
    /// Dashboard/API token that signs in as an inspector (may see payloads and headers).
    #[arg(
        long = "inspector-token",
        env = "SOCKSCOPE_INSPECTOR_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub inspector_tokens: Vec<Secret>,
    /// Argon2 hash of the viewer password, made by `sockscope hash-password`.
    #[arg(long, env = "SOCKSCOPE_VIEWER_PASSWORD_HASH", hide_env_values = true)]
    pub viewer_password_hash: Option<Secret>,
    /// Argon2 hash of the inspector password, made by `sockscope hash-password`.
    #[arg(
        long,
        env = "SOCKSCOPE_INSPECTOR_PASSWORD_HASH",
        hide_env_values = true
    )]
    pub inspector_password_hash: Option<Secret>,
    /// Files of viewer tokens (one per line; blank lines and # comments skipped), instead of
    /// putting them in the process list or environment.
    #[arg(
        long = "viewer-token-file",
        env = "SOCKSCOPE_VIEWER_TOKENS_FILE",
        value_name = "FILE"
    )]
    pub viewer_token_file: Option<PathBuf>,
    /// File of inspector tokens (one per line).
    #[arg(
        long = "inspector-token-file",
        env = "SOCKSCOPE_INSPECTOR_TOKENS_FILE",
        value_name = "FILE"
    )]
    pub inspector_token_file: Option<PathBuf>,
    /// File holding the viewer password's Argon2 hash.
    #[arg(long, env = "SOCKSCOPE_VIEWER_PASSWORD_HASH_FILE", value_name = "FILE")]
    pub viewer_password_hash_file: Option<PathBuf>,
    /// File holding the inspector password's Argon2 hash.
    #[arg(
        long,
        env = "SOCKSCOPE_INSPECTOR_PASSWORD_HASH_FILE",
        value_name = "FILE"
    )]
    pub inspector_password_hash_file: Option<PathBuf>,
    /// Token taps must send to /ingest (`Authorization: Bearer …`); separate from dashboard
    /// credentials. Repeatable / comma-separated. Without one, only a loopback observer
    /// accepts taps.
    #[arg(
        long = "ingest-token",
        env = "SOCKSCOPE_INGEST_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub ingest_tokens: Vec<Secret>,
    /// File of tap tokens (one per line).
    #[arg(
        long = "ingest-token-file",
        env = "SOCKSCOPE_INGEST_TOKENS_FILE",
        value_name = "FILE"
    )]
    pub ingest_token_file: Option<PathBuf>,
    /// Host names this observer answers to (DNS-rebinding defence). Loopback names, the
    /// listen address, and any IP address when listening on 0.0.0.0/[::] are always allowed.
    #[arg(
        long = "allowed-host",
        env = "SOCKSCOPE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// How long a dashboard login lasts.
    #[arg(long, env = "SOCKSCOPE_SESSION_TTL", default_value = DEFAULT_SESSION_TTL, value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (set it when the observer is served over HTTPS).
    #[arg(long, env = "SOCKSCOPE_SECURE_COOKIE")]
    pub secure_cookie: bool,
    /// Login attempts allowed per minute from one client address.
    #[arg(long, env = "SOCKSCOPE_LOGINS_PER_MINUTE", default_value_t = DEFAULT_LOGINS_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..))]
    pub logins_per_minute: u32,
    /// Dashboard logins kept at once; the oldest is ended first.
    #[arg(long, env = "SOCKSCOPE_MAX_SESSIONS", default_value_t = DEFAULT_MAX_SESSIONS, value_parser = crate::flags::at_least(1))]
    pub max_sessions: usize,
    /// PEM file of the CA whose client certificates admit taps (mutual TLS, with --tls-cert):
    /// a tap presenting one needs no token. Browsers are not asked for a certificate.
    #[arg(
        long,
        env = "SOCKSCOPE_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Reverse proxies in front of the observer (CIDR, repeatable) whose X-Forwarded-For /
    /// Forwarded name the client: login and token limits then key on that client, not on the
    /// proxy everybody shares.
    #[arg(
        long = "trusted-proxy",
        env = "SOCKSCOPE_OBSERVER_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<ipnet::IpNet>,
}

impl AuthArgs {
    /// Moves the secrets of every `--…-file` flag into their lists (idempotent).
    pub fn read_secret_files(&mut self) -> anyhow::Result<()> {
        let lists = [
            (
                "--viewer-token-file",
                self.viewer_token_file.take(),
                &mut self.viewer_tokens,
            ),
            (
                "--inspector-token-file",
                self.inspector_token_file.take(),
                &mut self.inspector_tokens,
            ),
            (
                "--ingest-token-file",
                self.ingest_token_file.take(),
                &mut self.ingest_tokens,
            ),
        ];
        for (flag, path, list) in lists {
            if let Some(path) = path {
                list.extend(read_secret_file(flag, &path)?);
            }
        }
        read_single_secret(
            "--viewer-password-hash",
            &mut self.viewer_password_hash,
            self.viewer_password_hash_file.take().as_deref(),
        )?;
        read_single_secret(
            "--inspector-password-hash",
            &mut self.inspector_password_hash,
            self.inspector_password_hash_file.take().as_deref(),
        )?;
        Ok(())
    }
}

/// The validated credentials. Secrets are kept only as digests (tokens) or Argon2 hashes.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    tokens: HashMap<Digest, Role>,
    passwords: Vec<(Secret, Role)>,
    ingest: HashSet<Digest>,
    pub hosts: HostPolicy,
    pub session_ttl: Duration,
    pub secure_cookie: bool,
    pub logins_per_minute: u32,
    pub max_sessions: usize,
    /// A tap presenting a client certificate the TLS layer verified (`--tls-client-ca`) is
    /// admitted without a token.
    pub tap_certs: bool,
    /// Peers whose forwarded headers name the client (`--trusted-proxy`).
    pub trusted: Vec<ipnet::IpNet>,
}

impl Default for AuthConfig {
    /// Open: no credentials, loopback names only.
    fn default() -> Self {
        AuthConfig {
            tokens: HashMap::new(),
            passwords: Vec::new(),
            ingest: HashSet::new(),
            hosts: HostPolicy::default(),
            session_ttl: parse_duration(DEFAULT_SESSION_TTL).expect("valid default"),
            secure_cookie: false,
            logins_per_minute: DEFAULT_LOGINS_PER_MINUTE,
            max_sessions: DEFAULT_MAX_SESSIONS,
            tap_certs: false,
            trusted: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Adds a dashboard token (for tests and embedding; the CLI validates lengths first).
    pub fn with_token(mut self, role: Role, token: &str) -> Self {
        self.tokens.insert(digest(token), role);
        self
    }

    /// Adds an Argon2 PHC password hash.
    pub fn with_password_hash(mut self, role: Role, phc: &str) -> Self {
        self.passwords.push((Secret::new(phc), role));
        self
    }

    pub fn with_ingest_token(mut self, token: &str) -> Self {
        self.ingest.insert(digest(token));
        self
    }

    /// No dashboard credential is configured: everyone who reaches the observer is an
    /// inspector. Only allowed on loopback.
    pub fn dashboard_open(&self) -> bool {
        self.tokens.is_empty() && self.passwords.is_empty()
    }

    /// No tap token or client CA is configured: any local tap may report. Only allowed on
    /// loopback.
    pub fn ingest_open(&self) -> bool {
        self.ingest.is_empty() && !self.tap_certs
    }

    pub fn token_role(&self, token: &str) -> Option<Role> {
        self.tokens.get(&digest(token)).copied()
    }

    pub fn ingest_token_ok(&self, token: &str) -> bool {
        self.ingest.contains(&digest(token))
    }

    pub fn passwords(&self) -> &[(Secret, Role)] {
        &self.passwords
    }

    /// Validates the flags and applies the start-up rule for `listen`.
    pub fn from_args(mut args: AuthArgs, listen: SocketAddr) -> anyhow::Result<AuthConfig> {
        args.read_secret_files()?;
        let mut cfg = AuthConfig {
            hosts: HostPolicy::for_listen(listen, &args.allowed_hosts)?,
            session_ttl: args.session_ttl,
            secure_cookie: args.secure_cookie,
            logins_per_minute: args.logins_per_minute,
            max_sessions: args.max_sessions,
            tap_certs: args.tls_client_ca.is_some(),
            trusted: args.trusted_proxy.clone(),
            ..AuthConfig::default()
        };
        // The flags' parsers refuse 0 already; this guards arguments built in code.
        anyhow::ensure!(
            args.logins_per_minute > 0,
            "--logins-per-minute must be at least 1"
        );
        anyhow::ensure!(args.max_sessions > 0, "--max-sessions must be at least 1");
        let mut seen: HashMap<Digest, &str> = HashMap::new();
        let groups = [
            ("--viewer-token", &args.viewer_tokens, Some(Role::Viewer)),
            (
                "--inspector-token",
                &args.inspector_tokens,
                Some(Role::Inspector),
            ),
            ("--ingest-token", &args.ingest_tokens, None),
        ];
        for (flag, tokens, role) in groups {
            for t in tokens.iter().map(Secret::expose) {
                anyhow::ensure!(
                    t.chars().count() >= MIN_TOKEN_LEN,
                    "{flag}: a token must be at least {MIN_TOKEN_LEN} characters \
                     (make one with `openssl rand -hex 32`)"
                );
                let d = digest(t);
                if let Some(other) = seen.insert(d, flag) {
                    anyhow::ensure!(
                        other == flag,
                        "the same token is given to {other} and {flag}: each role and the taps \
                         need their own token"
                    );
                }
                match role {
                    Some(r) => {
                        cfg.tokens.insert(d, r);
                    }
                    None => {
                        cfg.ingest.insert(d);
                    }
                }
            }
        }
        let hashes = [
            (
                "--viewer-password-hash",
                args.viewer_password_hash,
                Role::Viewer,
            ),
            (
                "--inspector-password-hash",
                args.inspector_password_hash,
                Role::Inspector,
            ),
        ];
        for (flag, hash, role) in hashes {
            let Some(h) = hash else { continue };
            argon2::PasswordHash::new(h.expose()).map_err(|e| {
                anyhow::anyhow!(
                    "{flag} is not a password hash ({e}): make one with `sockscope hash-password`"
                )
            })?;
            cfg.passwords.push((h, role));
        }
        if !listen.ip().is_loopback() {
            let mut missing = Vec::new();
            if cfg.dashboard_open() {
                missing.push(
                    "a dashboard credential (SOCKSCOPE_INSPECTOR_TOKENS or --inspector-token, \
                     SOCKSCOPE_VIEWER_TOKENS or --viewer-token, or a password hash from \
                     `sockscope hash-password` in SOCKSCOPE_INSPECTOR_PASSWORD_HASH)",
                );
            }
            if cfg.ingest_open() {
                missing.push(
                    "a tap token (SOCKSCOPE_INGEST_TOKENS or --ingest-token) or a CA for tap \
                     certificates (--tls-client-ca)",
                );
            }
            anyhow::ensure!(
                missing.is_empty(),
                "refusing to listen on {listen} without credentials: anyone who can reach it \
                 could read or forge your traffic. Set {}, or listen on 127.0.0.1.",
                missing.join(" and ")
            );
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> AuthArgs {
        AuthArgs {
            session_ttl: Duration::from_secs(60),
            logins_per_minute: 10,
            max_sessions: 10,
            ..AuthArgs::default()
        }
    }

    #[test]
    fn non_loopback_without_credentials_names_what_to_set() {
        let e = AuthConfig::from_args(args(), "0.0.0.0:3000".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing to listen on 0.0.0.0:3000"), "{e}");
        assert!(e.contains("SOCKSCOPE_INSPECTOR_TOKENS"), "{e}");
        assert!(e.contains("SOCKSCOPE_INGEST_TOKENS"), "{e}");
        let mut a = args();
        a.inspector_tokens = vec![Secret::new("i".repeat(20))];
        let e = AuthConfig::from_args(a.clone(), "10.0.0.1:3000".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("dashboard credential"), "{e}");
        a.ingest_tokens = vec![Secret::new("t".repeat(20))];
        let cfg = AuthConfig::from_args(a, "10.0.0.1:3000".parse().unwrap()).unwrap();
        assert_eq!(cfg.token_role(&"i".repeat(20)), Some(Role::Inspector));
        assert!(cfg.ingest_token_ok(&"t".repeat(20)));
        assert_eq!(
            cfg.token_role(&"t".repeat(20)),
            None,
            "tap tokens do not open the dashboard"
        );
    }

    #[test]
    fn loopback_may_run_open() {
        let cfg = AuthConfig::from_args(args(), "127.0.0.1:3000".parse().unwrap()).unwrap();
        assert!(cfg.dashboard_open() && cfg.ingest_open());
    }

    #[test]
    fn weak_shared_and_malformed_secrets_are_refused() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut a = args();
        a.viewer_tokens = vec![Secret::new("short")];
        let e = AuthConfig::from_args(a, lo).unwrap_err().to_string();
        assert!(
            e.contains("--viewer-token") && e.contains("16 characters"),
            "{e}"
        );
        assert!(
            !e.contains("short"),
            "the secret itself is never echoed: {e}"
        );
        let mut a = args();
        a.viewer_tokens = vec![Secret::new("x".repeat(16))];
        a.ingest_tokens = vec![Secret::new("x".repeat(16))];
        let e = AuthConfig::from_args(a, lo).unwrap_err().to_string();
        assert!(e.contains("--viewer-token and --ingest-token"), "{e}");
        let mut a = args();
        a.inspector_password_hash = Some(Secret::new("hunter2"));
        let e = AuthConfig::from_args(a, lo).unwrap_err().to_string();
        assert!(e.contains("sockscope hash-password"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut a = args();
        a.inspector_tokens = vec![Secret::new("supersecret-token-123")];
        a.inspector_password_hash = Some(Secret::new("$argon2id$v=19$m=1,t=1,p=1$abc$def"));
        let shown = format!("{a:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(!shown.contains("argon2id"), "{shown}");
        let cfg = AuthConfig::default().with_token(Role::Viewer, "supersecret-token-123");
        assert!(!format!("{cfg:?}").contains("supersecret"));
    }
}
