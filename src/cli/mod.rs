//! The `sockscope` command line: subcommands, and `--config FILE` merged under flags and
//! environment (flag > environment > file > default).

pub(crate) mod config_file;
pub mod demo;
pub mod dev_cert;
pub mod load;
pub mod sample_app;

use crate::flags::CONFIG_ENV;
use crate::proxy::ProxyArgs;
use crate::server::config::ServeArgs;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use config_file::{ConfigError, ConfigFile};
use demo::DemoArgs;
use load::LoadArgs;
use sample_app::SampleAppArgs;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "sockscope",
    version,
    about = "Real-time observability for WebSocket traffic"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the observer: tap ingest, live dashboard, JSON API.
    Serve(ServeArgs),
    /// Run a tapped reverse proxy in front of a WebSocket / HTTP server.
    Proxy(ProxyArgs),
    /// Run the sample WebSocket app (broadcast, echo, chat rooms).
    SampleApp(SampleAppArgs),
    /// Load a WebSocket server with the classic profiles and report what arrived.
    Load(LoadArgs),
    /// Observer, sample app, two tapped proxies and live load, all on loopback.
    Demo(DemoArgs),
    /// Read a dashboard password from stdin and print its Argon2 hash for
    /// SOCKSCOPE_VIEWER_PASSWORD_HASH / SOCKSCOPE_INSPECTOR_PASSWORD_HASH.
    HashPassword,
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write a private CA and a certificate for this machine's names (PEM files), to try TLS
    /// locally or in tests. Not for production.
    DevCert(dev_cert::DevCertArgs),
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and print the effective configuration (flags, environment,
    /// file and defaults merged; secrets shown as ***).
    Check {
        /// The TOML file, with [serve] and/or [proxy] tables.
        file: PathBuf,
    },
}

/// What stopped the command line from parsing.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The config section a subcommand reads, if any.
fn section_of(subcommand: &str) -> Option<&'static str> {
    match subcommand {
        "serve" | "demo" => Some("serve"),
        "proxy" => Some("proxy"),
        _ => None,
    }
}

/// `--config FILE` / `--config=FILE` after the subcommand, else `$SOCKSCOPE_CONFIG`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Parses `args` (program name first), applying the subcommand's section of the config file.
pub fn try_parse_from(args: Vec<OsString>) -> Result<Cli, CliError> {
    let mut cmd = Cli::command();
    let subcommand = args.get(1).map(|s| s.to_string_lossy().into_owned());
    if let Some((sub, section)) = subcommand
        .as_deref()
        .and_then(|s| section_of(s).map(|sec| (s, sec)))
    {
        if let Some(path) = config_path(&args) {
            cmd = ConfigFile::load(&path)?.apply(cmd, section, sub)?;
        }
    }
    let matches = cmd.try_get_matches_from(args)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

/// Parses the process's arguments; on an error prints it and exits (2, as clap does).
pub fn parse() -> Cli {
    match try_parse_from(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(CliError::Clap(e)) => e.exit(),
        Err(CliError::Config(e)) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}

/// `sockscope config check FILE`: every table validated as its command would at start
/// (including the cross-flag rules), then the effective configuration.
/// Raises the open-file soft limit to the hard limit (often 1024 → 20 000 or more), so a
/// server is not stopped by ~1000 idle sockets. Returns the limits before and after.
pub fn raise_open_file_limit() -> Option<(u64, u64)> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    if soft < hard {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).ok()?;
    }
    let (now, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    Some((soft, now))
}

pub fn check(file: &std::path::Path) -> anyhow::Result<String> {
    let config = ConfigFile::load(file)?;
    let mut out = format!("# {}: valid\n", file.display());
    let sections: Vec<String> = config.section_names().map(str::to_string).collect();
    anyhow::ensure!(
        !sections.is_empty(),
        "{}: no [serve] or [proxy] table: nothing to configure",
        file.display()
    );
    for section in sections {
        let args: Vec<OsString> = vec![
            "sockscope".into(),
            section.clone().into(),
            "--config".into(),
            file.into(),
        ];
        match try_parse_from(args)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .command
        {
            Command::Serve(a) => {
                a.into_config()
                    .map_err(|e| anyhow::anyhow!("[serve]: {e:#}"))?;
            }
            Command::Proxy(a) => {
                a.into_config()
                    .map_err(|e| anyhow::anyhow!("[proxy]: {e:#}"))?;
            }
            _ => unreachable!("sections are serve and proxy"),
        }
        out.push('\n');
        out.push_str(&config.effective(Cli::command(), &section)?);
    }
    Ok(out)
}
