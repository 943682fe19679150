//! `sockscope demo`: everything on loopback in one process so a new user sees live traffic at
//! once — the observer, the sample app, two tapped proxies in front of it, a mixed load that
//! keeps running, and connection churn with varied close codes.

use crate::cli::load::{LoadArgs, Profile};
use crate::proxy::ProxyConfig;
use crate::server::config::ServeArgs;
use anyhow::Context;
use futures_util::SinkExt;
use sockscope_tap::{Tap, TapConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Scale of the demo load (1 = about 100 clients).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=50))]
    pub scale: u64,
}

fn stopped(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(
    mut args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // With tap tokens configured, the demo's own proxies use the first one.
    args.serve.auth.read_secret_files()?;
    let tap_token = args.serve.auth.ingest_tokens.first().cloned();
    let config = args.serve.into_config()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let obs_listener = bind(&config.listen.to_string()).await?;
    let obs = obs_listener.local_addr()?;
    let app_listener = bind("127.0.0.1:0").await?;
    let app = app_listener.local_addr()?;
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(crate::server::serve(
        obs_listener,
        config,
        stopped(&stop_rx),
    ));
    servers.spawn(crate::cli::sample_app::serve(
        app_listener,
        Duration::from_secs(1),
        stopped(&stop_rx),
    ));
    let mut proxies = Vec::new();
    for name in ["edge-1", "edge-2"] {
        let l = bind("127.0.0.1:0").await?;
        proxies.push(l.local_addr()?);
        let mut tc = TapConfig::new(format!("ws://{obs}/ingest"), name);
        tc.name = format!("{name} (demo proxy)");
        tc.token = tap_token.clone();
        // The second proxy shows capture on demand: it streams while the dashboard watches.
        if name == "edge-2" {
            tc.capture = sockscope_tap::wire::CaptureMode::OnDemand;
        }
        let tap = Tap::start(tc).map_err(|e| anyhow::anyhow!("{e}"))?;
        let cfg = ProxyConfig::new(app.to_string());
        servers.spawn(crate::proxy::serve(l, cfg, tap, stopped(&stop_rx)));
    }
    println!();
    println!("  sockscope demo is running.");
    println!("  Dashboard:   http://{obs}/");
    println!("  Sample app:  ws://{app}  (/broadcast, /echo, /chat) behind tapped proxies ws://{} and ws://{}", proxies[0], proxies[1]);
    println!("  Taps report to ws://{obs}/ingest. Ctrl-C stops everything.");
    println!();

    let s = args.scale;
    let mixes = [
        (
            Profile::Broadcast,
            proxies[0],
            30 * s,
            Duration::from_secs(1),
        ),
        (
            Profile::Echo,
            proxies[1],
            20 * s,
            Duration::from_millis(700),
        ),
        (
            Profile::Chat,
            proxies[0],
            30 * s,
            Duration::from_millis(150),
        ),
        (
            Profile::Chat,
            proxies[1],
            20 * s,
            Duration::from_millis(150),
        ),
    ];
    let mut load = tokio::task::JoinSet::new();
    for (profile, proxy, clients, interval) in mixes {
        let la = LoadArgs {
            url: format!("ws://{proxy}"),
            profile,
            clients,
            ramp: Duration::from_millis(40),
            duration: Duration::from_secs(45),
            interval,
            rooms: 4,
            payload_size: 96,
            json: false,
            allow_remote: false,
        };
        let stop = stopped(&stop_rx);
        load.spawn(async move {
            tokio::select! {
                _ = stop => {}
                _ = async {
                    loop {
                        // Each run is bounded; the demo starts the next one right away.
                        if let Err(e) = crate::cli::load::run(&la, false).await {
                            tracing::warn!(error = %e, "demo load run failed");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                } => {}
            }
        });
    }
    let churn_stop = stopped(&stop_rx);
    load.spawn(async move {
        tokio::select! { _ = churn_stop => {}, _ = churn(proxies) => {} }
    });

    shutdown.await;
    println!("stopping the demo…");
    let _ = stop_tx.send(true);
    load.abort_all();
    while load.join_next().await.is_some() {}
    let _ = tokio::time::timeout(Duration::from_secs(8), async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Short-lived connections that end in every way a dashboard should show.
async fn churn(proxies: Vec<SocketAddr>) {
    let endings: [Option<(u16, &str)>; 6] = [
        Some((1000, "done")),
        Some((1001, "page closed")),
        Some((1008, "policy: bad token")),
        Some((4000, "kicked by moderator")),
        Some((4001, "session expired")),
        None, // dropped without a close frame
    ];
    let mut n = 0usize;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        n += 1;
        let proxy = proxies[n % proxies.len()];
        let Ok((mut ws, _)) =
            tokio_tungstenite::connect_async(format!("ws://{proxy}/echo?visitor={n}")).await
        else {
            continue;
        };
        for i in 0..(n % 5 + 1) {
            let body = format!(
                "{{\"type\":\"churn\",\"visitor\":{n},\"i\":{i},\"note\":\"<b>not bold</b>\"}}"
            );
            if ws.send(Message::Text(body.into())).await.is_err() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        match endings[n % endings.len()] {
            Some((code, reason)) => {
                let _ = ws
                    .close(Some(CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    }))
                    .await;
            }
            None => drop(ws),
        }
    }
}
