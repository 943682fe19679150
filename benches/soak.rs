//! Soak: the demo stack as separate processes — the observer (`sockscope serve`), the sample
//! app and two tapped `sockscope proxy` — under connection churn for a set time, sampling the
//! RSS of the observer and of each proxy. Churn: three lanes of `sockscope load` runs per proxy,
//! each cycling broadcast, echo and chat from a different start so the mix stays even (every
//! fourth run killed mid-run, the others closing all their clients at their end), short-lived
//! clients ending with
//! close codes, FIN or RST, and a dashboard on `/live`; a short `--retention` makes the observer
//! retire closed connections all along. Writes a CSV as it goes; reports a coarse curve,
//! min/median/max after warm-up and PASS/FAIL against ±10 % (exit status 1 on FAIL).
//!
//! `cargo bench --features ssr --bench soak -- [--duration 30m] [--interval 10s] [--warmup 5m]
//! [--retention 2m] [--clients 150] [--out target/soak/soak.csv]` (or `./scripts/soak`)

#[path = "soak/churn.rs"]
mod churn;
#[path = "soak/report.rs"]
mod report;
mod support;

use churn::Counts;
use report::Sample;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, rss_kib, Proc};

/// `sockscope load` lanes per proxy; each starts its profile cycle at a different profile.
const LANES: usize = 3;

struct Args {
    duration: Duration,
    interval: Duration,
    warmup: Duration,
    retention: Duration,
    clients: u64,
    churn_every: Duration,
    out: PathBuf,
}

fn parse_args() -> Args {
    let (mut duration, mut interval, mut warmup, mut retention) = (
        Duration::from_secs(30 * 60),
        None::<Duration>,
        None::<Duration>,
        None::<Duration>,
    );
    let mut clients = 150u64;
    let mut churn_every = Duration::from_millis(150);
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/soak/soak.csv");
    let mut it = std::env::args().skip(1);
    let usage =
        "use --duration 30m --interval 10s --warmup 5m --retention 2m --clients N --churn-every 150ms --out FILE";
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| panic!("{a} needs a value; {usage}"))
        };
        let dur = |v: String| {
            humantime::parse_duration(&v).unwrap_or_else(|e| panic!("{a} {v}: {e}; {usage}"))
        };
        match a.as_str() {
            "--duration" => duration = dur(val()),
            "--interval" => interval = Some(dur(val())),
            "--warmup" => warmup = Some(dur(val())),
            "--retention" => retention = Some(dur(val())),
            "--clients" => clients = val().parse().expect("--clients takes a number"),
            "--churn-every" => churn_every = dur(val()),
            "--out" => out = PathBuf::from(val()),
            "--bench" => {}
            o => panic!("unknown argument {o}; {usage}"),
        }
    }
    // Retention short enough that closed connections are retired well within the run, and a
    // warm-up that covers filling it once more.
    let retention = retention.unwrap_or((duration / 8).min(Duration::from_secs(120)));
    let warmup = warmup.unwrap_or((duration / 6).max(retention * 2).min(duration / 2));
    let interval =
        interval.unwrap_or((duration / 120).clamp(Duration::from_secs(2), Duration::from_secs(10)));
    assert!(
        warmup < duration,
        "--warmup must be shorter than --duration"
    );
    Args {
        duration,
        interval,
        warmup,
        retention,
        clients,
        churn_every,
        out,
    }
}

fn spawn(bin: &str, args: &[&str], log: &std::path::Path) -> Proc {
    let file = std::fs::File::create(log).expect("create a log file");
    Proc(
        Command::new(bin)
            .args(args)
            .env("SOCKSCOPE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin} {args:?}: {e}")),
    )
}

async fn wait_listening(addr: SocketAddr) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {addr} after 10 s");
}

async fn get(http: &reqwest::Client, url: &str) -> Value {
    match http.get(url).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn drops(sources: &Value) -> u64 {
    sources
        .as_array()
        .map(|a| {
            a.iter()
                .flat_map(|s| s["drops"].as_object().into_iter().flatten())
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let bin = env!("CARGO_BIN_EXE_sockscope").to_string();
    let dir = args
        .out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).expect("create the output directory");
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let (obs, app) = (at(free_port()), at(free_port()));
    let proxies = [at(free_port()), at(free_port())];

    let retention = format!("{}s", args.retention.as_secs().max(1));
    let observer = spawn(
        &bin,
        &[
            "serve",
            "--listen",
            &obs.to_string(),
            "--site-root",
            "/nonexistent",
            "--retention",
            &retention,
            "--data-dir",
            dir.join("record").to_str().unwrap(),
        ],
        &dir.join("observer.log"),
    );
    let sample_app = spawn(
        &bin,
        &[
            "sample-app",
            "--listen",
            &app.to_string(),
            "--interval",
            "1000",
        ],
        &dir.join("sample-app.log"),
    );
    wait_listening(obs).await;
    wait_listening(app).await;
    let mut procs = vec![observer];
    for (i, p) in proxies.iter().enumerate() {
        procs.push(spawn(
            &bin,
            &[
                "proxy",
                "--listen",
                &p.to_string(),
                "--upstream",
                &format!("http://{app}"),
                "--observer",
                &format!("ws://{obs}/ingest"),
                "--name",
                &format!("soak-edge-{}", i + 1),
            ],
            &dir.join(format!("proxy-{}.log", i + 1)),
        ));
        wait_listening(*p).await;
    }
    let names: Vec<String> = std::iter::once("observer".to_string())
        .chain((1..=proxies.len()).map(|i| format!("proxy-{i}")))
        .collect();
    let http = reqwest::Client::new();
    let ov_url = format!("http://{obs}/api/overview");
    let sources_url = format!("http://{obs}/api/sources");
    // Both taps report before the traffic starts.
    for _ in 0..200 {
        let n = get(&http, &sources_url)
            .await
            .as_array()
            .map(|a| a.iter().filter(|s| s["online"] == true).count())
            .unwrap_or(0);
        if n == proxies.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!(
        "sockscope soak: {} sampled every {}, warm-up {}, observer retention {}",
        secs(args.duration),
        secs(args.interval),
        secs(args.warmup),
        secs(args.retention)
    );
    println!(
        "traffic per proxy: {LANES} lanes of `sockscope load` × {} clients (broadcast → echo → chat, 30–60 s runs, \
         every 4th killed); {:.1} short-lived clients/s (close codes, FIN, RST); one /live dashboard",
        (args.clients / LANES as u64).max(1),
        1.0 / args.churn_every.as_secs_f64()
    );
    println!(
        "samples → {}  (logs in {})",
        args.out.display(),
        dir.display()
    );
    println!();

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let lanes: Vec<_> = proxies
        .iter()
        .flat_map(|p| (0..LANES).map(move |i| (*p, i)))
        .enumerate()
        .map(|(k, (p, i))| {
            churn::load_lane(
                bin.clone(),
                p,
                (args.clients / LANES as u64).max(1),
                i,
                Duration::from_secs(3 * k as u64),
                stop.clone(),
                counts.clone(),
            )
        })
        .collect();
    let tasks = [
        tokio::spawn(churn::churn(
            proxies.to_vec(),
            args.churn_every,
            counts.clone(),
        )),
        tokio::spawn(churn::live_subscriber(obs, counts.clone())),
    ];

    let mut csv = std::fs::File::create(&args.out).expect("create the CSV");
    report::append(&mut csv, &report::csv_header(&names));
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut tick = tokio::time::interval(args.interval);
    let mut died = None;
    let mut last_print = 0u64;
    let mut last_ingested = 0u64;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed();
        if elapsed > args.duration + args.interval / 2 {
            break;
        }
        if let Some(i) = procs
            .iter_mut()
            .position(|p| !matches!(p.0.try_wait(), Ok(None)))
        {
            died = Some(names[i].clone());
            break;
        }
        let ov = get(&http, &ov_url).await;
        let sources = get(&http, &sources_url).await;
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let ingested = n(&ov["observer"]["events_ingested"]);
        let since = samples
            .last()
            .map(|p: &Sample| elapsed.as_secs_f64() - p.elapsed_s);
        let events_per_s = match since {
            Some(dt) if dt > 0.0 => (ingested.saturating_sub(last_ingested) as f64 / dt) as u64,
            _ => 0,
        };
        last_ingested = ingested;
        let s = Sample {
            elapsed_s: elapsed.as_secs_f64(),
            rss_kib: procs.iter().map(|p| rss_kib(p.0.id())).collect(),
            app_rss_kib: rss_kib(sample_app.0.id()),
            open: n(&ov["totals"]["open"]),
            proxy_open: (1..=proxies.len())
                .map(|i| {
                    let id = format!("soak-edge-{i}");
                    let src = sources
                        .as_array()
                        .and_then(|a| a.iter().find(|s| s["id"] == id));
                    src.map(|s| n(&s["open"])).unwrap_or(0)
                })
                .collect(),
            msgs_per_s: n(&ov["rates"]["msgs_in"]) + n(&ov["rates"]["msgs_out"]),
            events_per_s,
            tracked: n(&ov["totals"]["tracked"]),
            opened: n(&ov["totals"]["opened"]),
            evicted: n(&ov["observer"]["evicted"]),
            tap_drops: drops(&sources),
        };
        report::append(&mut csv, &report::csv_row(&s));
        if elapsed.as_secs() / 60 > last_print || samples.is_empty() {
            last_print = elapsed.as_secs() / 60;
            println!(
                "{:>4}s  observer {}  proxies {}  open {}  msgs/s {}  tracked {}  retired {}",
                elapsed.as_secs(),
                report::mib(s.rss_kib[0]),
                s.rss_kib[1..]
                    .iter()
                    .map(|k| report::mib(*k))
                    .collect::<Vec<_>>()
                    .join(" / "),
                s.open,
                s.msgs_per_s,
                s.tracked,
                s.evicted
            );
        }
        samples.push(s);
    }

    stop.store(true, Ordering::Relaxed);
    for t in &tasks {
        t.abort();
    }
    for l in lanes {
        let _ = l.join();
    }
    let ov = get(&http, &ov_url).await;
    let sources = get(&http, &sources_url).await;
    let (text, pass) = report::render(&names, &samples, args.warmup.as_secs_f64());
    let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    println!();
    println!("{text}");
    println!(
        "traffic: {} load runs completed, {} killed mid-run, {} failed; {} short-lived clients \
         ({} closed with a code, {} FIN, {} RST, {} failed); {} /live frames",
        c(&counts.load_runs),
        c(&counts.load_killed),
        c(&counts.load_failed),
        c(&counts.churn_clients),
        c(&counts.endings[0]),
        c(&counts.endings[1]),
        c(&counts.endings[2]),
        c(&counts.churn_failed),
        c(&counts.live_frames)
    );
    println!(
        "observer: {} connections opened, {} retired, {} tracked at the end; {} events ingested, \
         {} ingest errors; tap drops {}",
        ov["totals"]["opened"],
        ov["observer"]["evicted"],
        ov["totals"]["tracked"],
        ov["observer"]["events_ingested"],
        ov["observer"]["ingest_errors"],
        drops(&sources)
    );
    let retired = ov["observer"]["evicted"].as_u64().unwrap_or(0);
    let verdict = match &died {
        Some(p) => format!("FAIL: {p} exited during the run (see its log)"),
        None if retired == 0 => {
            "FAIL: the observer retired no connection; the run did not reach retention".into()
        }
        None if pass => format!(
            "PASS: observer and proxy RSS within ±{} % of their post-warm-up medians",
            report::TOLERANCE_PCT
        ),
        None => format!(
            "FAIL: RSS moved more than ±{} % after warm-up",
            report::TOLERANCE_PCT
        ),
    };
    println!("{verdict}");
    drop(procs);
    drop(sample_app);
    if !verdict.starts_with("PASS") {
        std::process::exit(1);
    }
}
