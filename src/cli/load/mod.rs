//! `sockscope load`: the classic WebSocket load profiles (broadcast, echo, chat) against any
//! server, with the classic report line, p50/p99, connect failures, and a warning when the
//! generator itself was the bottleneck. Bounded: it stops by itself.

mod clients;
pub mod stats;

use anyhow::Context;
use hdrhistogram::Histogram;
use stats::{latency_histogram, Report, Spread};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Broadcast,
    Echo,
    Chat,
}

impl Profile {
    /// The serde (and flag) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Broadcast => "broadcast",
            Profile::Echo => "echo",
            Profile::Chat => "chat",
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 100ms, 30s, 2m)"))
}

#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// Server to load, e.g. ws://127.0.0.1:5000 (the profile's path is added when none is given).
    #[arg(long)]
    pub url: String,
    #[arg(long, value_enum)]
    pub profile: Profile,
    /// Number of clients.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub clients: u64,
    /// Delay between starting two clients.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub ramp: Duration,
    /// How long to run after the last client started.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Broadcast: the server's tick (what intervals are checked against). Echo: send interval.
    /// Chat: the base interval (posters post every 11 or 59 of them).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Chat rooms; clients are spread over them round robin.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub rooms: u64,
    /// Bytes per message sent (echo, chat).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=16_777_216))]
    pub payload_size: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Allow a target that is not on this machine's loopback.
    #[arg(long)]
    pub allow_remote: bool,
}

/// Counters shared by all clients of a run.
pub struct Shared {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub connected: AtomicU64,
    pub chat_expected: AtomicU64,
    pub room_members: Vec<AtomicU64>,
    pub started_ms: f64,
}

/// Refuses anything but loopback unless allowed: a load generator is a weapon.
pub async fn check_target(url: &str, allow_remote: bool) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| anyhow::anyhow!("--url {url:?} must start with ws:// or wss://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<_> = tokio::net::lookup_host(&hostport)
        .await
        .with_context(|| format!("cannot resolve {authority:?}"))?
        .collect();
    anyhow::ensure!(!addrs.is_empty(), "{authority:?} resolves to no address");
    if !allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
        anyhow::bail!("{authority} is not a loopback address; pass --allow-remote to load a remote server you are allowed to load");
    }
    Ok(())
}

fn profile_url(url: &str, profile: Profile, room: u64) -> String {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    let has_path = !path.is_empty() && path != "/";
    let base = url.trim_end_matches('/');
    match profile {
        _ if has_path && profile != Profile::Chat => url.to_string(),
        Profile::Broadcast => format!("{base}/broadcast"),
        Profile::Echo => format!("{base}/echo"),
        Profile::Chat => {
            let u = if has_path {
                url.to_string()
            } else {
                format!("{base}/chat")
            };
            let sep = if u.contains('?') { '&' } else { '?' };
            format!("{u}{sep}room=room-{room}")
        }
    }
}

/// CPU seconds this process has used so far (Linux; 0 elsewhere).
fn own_cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Runs one load profile and returns its report.
pub async fn run(args: &LoadArgs, progress: bool) -> anyhow::Result<Report> {
    check_target(&args.url, args.allow_remote).await?;
    crate::cli::raise_open_file_limit();
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        connected: AtomicU64::new(0),
        chat_expected: AtomicU64::new(0),
        room_members: (0..args.rooms).map(|_| AtomicU64::new(0)).collect(),
        started_ms: crate::cli::sample_app::now_ms(),
    });
    let start = Instant::now();
    let end = start + args.ramp * (args.clients.saturating_sub(1) as u32) + args.duration;
    // Event-loop lag probe: how late a 10 ms timer fires tells whether the generator keeps up.
    let lag = tokio::spawn(async move {
        let mut h = latency_histogram();
        while Instant::now() < end {
            let t = Instant::now();
            tokio::time::sleep(Duration::from_millis(10)).await;
            stats::record_ms(
                &mut h,
                (t.elapsed().as_secs_f64() * 1000.0 - 10.0).max(0.001),
            );
        }
        h
    });
    let cpu0 = own_cpu_secs();
    let bar = progress.then(|| {
        let total = (end - start).as_secs();
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    });
    let mut tasks = Vec::with_capacity(args.clients as usize);
    let interval_ms = args.interval.as_secs_f64() * 1000.0;
    for i in 0..args.clients as usize {
        let room = i as u64 % args.rooms;
        let url = profile_url(&args.url, args.profile, room);
        let shared = shared.clone();
        let (interval, size, profile) = (args.interval, args.payload_size as usize, args.profile);
        let at = start + args.ramp * i as u32;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let o = match profile {
                Profile::Broadcast => clients::broadcast(url, end, interval_ms, &shared).await,
                Profile::Echo => clients::echo(url, end, interval, size, i, &shared).await,
                Profile::Chat => {
                    clients::chat(url, room as usize, end, interval, size, i, &shared).await
                }
            };
            if o.connected {
                shared.connected.fetch_add(1, Ordering::Relaxed);
            }
            o
        }));
    }
    let ticker = bar.clone().map(|b| {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                b.set_position(start.elapsed().as_secs());
                b.set_message(format!(
                    "sent {} received {}",
                    shared.sent.load(Ordering::Relaxed),
                    shared.received.load(Ordering::Relaxed)
                ));
            }
        })
    });
    let mut report = Report {
        profile: args.profile.as_str().to_string(),
        clients: args.clients,
        ..Default::default()
    };
    let mut latency: Histogram<u64> = latency_histogram();
    let mut intervals = Spread::default();
    for t in tasks {
        let o = t.await.context("a client task panicked")?;
        if !o.connected {
            report.connect_failures += 1;
            continue;
        }
        report.disconnects += o.dropped as u64;
        report.sent += o.sent;
        report.expected += o.expected;
        report.received += o.received;
        intervals.merge(&o.intervals);
        latency.add(&o.latency).ok();
    }
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.profile == Profile::Chat {
        report.expected = shared.chat_expected.load(Ordering::Relaxed);
    }
    report.received_total = shared.received.load(Ordering::Relaxed);
    if args.profile == Profile::Broadcast && intervals.count > 0 {
        report.interval_ms_min = Some(intervals.min);
        report.interval_ms_max = Some(intervals.max);
        report.interval_ms_avg = Some(intervals.mean());
    }
    report.fill_latency(&latency);
    report.fill_missed();
    report.duration_s = start.elapsed().as_secs_f64();
    let lag = lag.await.unwrap_or_else(|_| latency_histogram());
    report.generator_lag_ms_p99 = lag.value_at_quantile(0.99) as f64 / 1000.0;
    report.generator_cpu_pct = (own_cpu_secs() - cpu0) * 100.0 / report.duration_s.max(0.001);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    report.generator_saturated =
        report.generator_lag_ms_p99 > 50.0 || report.generator_cpu_pct > 90.0 * cores;
    Ok(report)
}

/// Prints a report: the classic line, percentiles, failures, and the bottleneck warning.
pub fn print(report: &Report) {
    println!("{}", report.classic_line());
    println!(
        "p50 latency={:.2} ms, p99 latency={:.2} ms, sent={}, expected={}, connect failures={}, dropped connections={}",
        report.latency_ms_p50, report.latency_ms_p99, report.sent, report.expected, report.connect_failures, report.disconnects
    );
    println!(
        "generator: {:.0} % CPU (of one core), timer lag p99 {:.1} ms",
        report.generator_cpu_pct, report.generator_lag_ms_p99
    );
    if report.generator_saturated {
        println!("WARNING: the load generator itself was the bottleneck (CPU or timer lag); latencies and intervals are understated. Use fewer clients or another machine.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_profile_path() {
        assert_eq!(
            profile_url("ws://h:1", Profile::Broadcast, 0),
            "ws://h:1/broadcast"
        );
        assert_eq!(profile_url("ws://h:1/", Profile::Echo, 0), "ws://h:1/echo");
        assert_eq!(
            profile_url("ws://h:1/custom", Profile::Echo, 0),
            "ws://h:1/custom"
        );
        assert_eq!(
            profile_url("ws://h:1", Profile::Chat, 3),
            "ws://h:1/chat?room=room-3"
        );
        assert_eq!(
            profile_url("ws://h:1/hub?x=1", Profile::Chat, 2),
            "ws://h:1/hub?x=1&room=room-2"
        );
    }

    #[tokio::test]
    async fn only_loopback_unless_allowed() {
        assert!(check_target("ws://127.0.0.1:9/x", false).await.is_ok());
        assert!(check_target("ws://[::1]:9/x", false).await.is_ok());
        let e = check_target("ws://192.0.2.1:9/x", false).await.unwrap_err();
        assert!(e.to_string().contains("--allow-remote"), "{e}");
        assert!(check_target("ws://192.0.2.1:9/x", true).await.is_ok());
        assert!(check_target("http://127.0.0.1:9", false)
            .await
            .unwrap_err()
            .to_string()
            .contains("ws://"));
    }
}
