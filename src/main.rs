//! The `sockscope` binary: parses the command line (`cli`) and runs the subcommand.

use anyhow::Context;
use sockscope::cli::{Cli, Command, ConfigCommand};
use sockscope::proxy::ProxyArgs;
use sockscope::server::config::ServeArgs;

// The aggregator churns many small allocations across runtime threads; mimalloc keeps RSS
// close to live memory where glibc's per-thread arenas fragment (measured: see README).
// mimalloc asks for transparent huge pages; `main` turns them off: with them a proxy held
// ~8 MiB more, and RSS jumped by 5–20 MiB for minutes when the kernel collapsed sparse memory
// into huge pages (README, Soak). `serve --huge-pages` keeps them for 20–27 % more ingest
// throughput with a million tracked connections.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = sockscope::cli::parse();
    // Commands that only print: no runtime, no log set-up.
    let printed = match &cli.command {
        Command::DevCert(args) => Some(sockscope::cli::dev_cert::run(args)),
        Command::Config(ConfigCommand::Check { file }) => Some(sockscope::cli::check(file)),
        _ => None,
    };
    match printed {
        Some(Ok(text)) => {
            print!("{text}");
            return Ok(());
        }
        Some(Err(e)) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        None => {}
    }
    #[cfg(target_os = "linux")]
    if !matches!(&cli.command, Command::Serve(a) if a.huge_pages) {
        without_huge_pages();
    }
    // Servers hold a socket per client (two for a proxied one): never stop at 1024.
    let files = sockscope::cli::raise_open_file_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?
        .block_on(run(cli, files))
}

/// Transparent huge pages off for this process from its first allocation on. The allocator
/// has already touched memory before `main`, so set the flag (which survives `execve`) and
/// start this same command over once; if anything fails, go on as we are.
#[cfg(target_os = "linux")]
fn without_huge_pages() {
    use std::os::unix::process::CommandExt;
    if rustix::thread::transparent_huge_pages_are_disabled().unwrap_or(true)
        || rustix::thread::disable_transparent_huge_pages(true).is_err()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        again.arg0(arg0);
    }
    // Only returns if the exec failed.
    let _ = again.args(args).exec();
}

async fn run(cli: Cli, files: Option<(u64, u64)>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SOCKSCOPE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match files {
        Some((before, now)) if now > before => {
            tracing::debug!(before, now, "open-file limit raised");
        }
        Some((_, now)) if now < 4096 => tracing::warn!(
            limit = now,
            "the open-file limit is low: each client takes a socket (two through the proxy); raise the hard limit (`ulimit -Hn`, LimitNOFILE=)"
        ),
        _ => {}
    }
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Proxy(args) => proxy(args).await,
        Command::SampleApp(args) => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            tracing::info!(
                "sample app on ws://{} (/broadcast, /echo, /chat?room=…)",
                listener.local_addr()?
            );
            sockscope::cli::sample_app::serve(
                listener,
                std::time::Duration::from_millis(args.interval),
                shutdown_signal(),
            )
            .await
            .context("sample app failed")
        }
        Command::Load(args) => {
            let report = sockscope::cli::load::run(&args, !args.json).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                sockscope::cli::load::print(&report);
            }
            Ok(())
        }
        Command::Demo(args) => sockscope::cli::demo::run(args, shutdown_signal()).await,
        Command::HashPassword => {
            use std::io::IsTerminal;
            let password = if std::io::stdin().is_terminal() {
                rpassword::prompt_password("password: ").context("cannot read the password")?
            } else {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("cannot read the password from stdin")?;
                line.trim_end_matches(['\r', '\n']).to_string()
            };
            println!("{}", sockscope::server::hash_password(&password)?);
            Ok(())
        }
        Command::Config(_) | Command::DevCert(_) => {
            unreachable!("handled before the runtime starts")
        }
    }
}

async fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    let (cfg, tap) = args.into_parts()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        "sockscope proxy on {}://{} → {}://{} (tap {})",
        if cfg.tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
        if cfg.upstream_tls.is_some() {
            "https"
        } else {
            "http"
        },
        cfg.upstream,
        if tap.is_enabled() { "on" } else { "off" }
    );
    sockscope::proxy::serve(listener, cfg, tap, shutdown_signal())
        .await
        .context("proxy failed")
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    // A file-size limit (RLIMIT_FSIZE) reached by the record must be a failed write the record
    // counts, not SIGXFSZ ending the observer: the signal gets a handler that ignores it.
    #[cfg(target_os = "linux")]
    let _file_size_limit = {
        const SIGXFSZ: i32 = 25;
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ)).ok()
    };
    match &config.site_root {
        Some(root) if !root.join("pkg/sockscope.js").exists() => tracing::warn!(
            "no dashboard at --site-root {}: the API and ingest work, the page will not hydrate. \
             Build it with ./scripts/build (or cargo leptos build), or leave out --site-root to \
             serve the copy inside this binary",
            root.display()
        ),
        None if !sockscope::server::dashboard_embedded() => tracing::warn!(
            "this binary carries no dashboard (it was built without ./scripts/build): the API \
             and ingest work, the page will not hydrate. Build it with ./scripts/build, or pass \
             --site-root DIR with a built dashboard"
        ),
        _ => {}
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let auth = &config.auth;
    let door = match (auth.dashboard_open(), auth.ingest_open()) {
        (true, true) => "open on loopback: no login, any local tap",
        (true, false) => "no dashboard login (loopback); taps need a token",
        (false, true) => "dashboard login required; any local tap",
        (false, false) => "dashboard login and tap tokens required",
    };
    tracing::info!("sockscope observer on http://{addr}  (taps: ws://{addr}/ingest; {door})");
    sockscope::server::serve(listener, config, shutdown_signal())
        .await
        .context("server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
