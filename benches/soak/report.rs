//! The soak's samples, CSV and report: a coarse text curve, min/median/max after warm-up, the
//! largest deviation from the post-warm-up median and the verdict against ±10 %.

use std::fmt::Write as _;
use std::io::Write as _;

/// The largest deviation from the post-warm-up median that still passes, in percent.
pub const TOLERANCE_PCT: f64 = 10.0;

/// One sampling instant.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub elapsed_s: f64,
    /// Resident memory in KiB: observer, then each proxy.
    pub rss_kib: Vec<u64>,
    pub app_rss_kib: u64,
    /// Open connections as the observer counts them, and per proxy.
    pub open: u64,
    pub proxy_open: Vec<u64>,
    /// Messages per second (in + out) in the observer's last second.
    pub msgs_per_s: u64,
    /// Tap events the observer applied per second since the last sample.
    pub events_per_s: u64,
    /// Connections the observer tracks (open and retained closed).
    pub tracked: u64,
    pub opened: u64,
    /// Closed connections retired by retention or the connection limit.
    pub evicted: u64,
    /// Events the taps could not send.
    pub tap_drops: u64,
}

pub fn csv_header(procs: &[String]) -> String {
    let rss: Vec<String> = procs.iter().map(|p| format!("{p}_rss_kib")).collect();
    let open: Vec<String> = procs[1..].iter().map(|p| format!("{p}_open")).collect();
    format!(
        "elapsed_s,{},app_rss_kib,open_conns,{},msgs_per_s,events_per_s,tracked_conns,opened_total,evicted_total,tap_drops",
        rss.join(","),
        open.join(",")
    )
}

pub fn csv_row(s: &Sample) -> String {
    let rss: Vec<String> = s.rss_kib.iter().map(u64::to_string).collect();
    let open: Vec<String> = s.proxy_open.iter().map(u64::to_string).collect();
    format!(
        "{:.1},{},{},{},{},{},{},{},{},{},{}",
        s.elapsed_s,
        rss.join(","),
        s.app_rss_kib,
        s.open,
        open.join(","),
        s.msgs_per_s,
        s.events_per_s,
        s.tracked,
        s.opened,
        s.evicted,
        s.tap_drops
    )
}

/// Appends one row to the CSV (written as the run goes, so a cut-short run keeps its data).
pub fn append(out: &mut std::fs::File, line: &str) {
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Min, median and max of a series, and its largest deviation from the median in percent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: u64,
    pub median: u64,
    pub max: u64,
    pub max_dev_pct: f64,
}

pub fn spread(values: &[u64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    let (min, max) = (v[0], v[n - 1]);
    let dev = median.abs_diff(min).max(median.abs_diff(max)) as f64;
    Some(Spread {
        min,
        median,
        max,
        max_dev_pct: if median == 0 {
            0.0
        } else {
            100.0 * dev / median as f64
        },
    })
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn clock(s: f64) -> String {
    let s = s.round() as u64;
    format!("{:>3}:{:02}", s / 60, s % 60)
}

fn bar(v: u64, max: u64, width: usize) -> String {
    let eighths = if max == 0 {
        0
    } else {
        (v as f64 / max as f64 * (width * 8) as f64).round() as usize
    };
    let mut out = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        out.push(['▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8 - 1]);
    }
    format!("{out:<width$}")
}

/// The text report: curve, post-warm-up spread per process and the verdict (true = PASS).
pub fn render(procs: &[String], samples: &[Sample], warmup_s: f64) -> (String, bool) {
    let mut out = String::new();
    let after: Vec<&Sample> = samples.iter().filter(|s| s.elapsed_s >= warmup_s).collect();
    let spreads: Vec<Option<Spread>> = (0..procs.len())
        .map(|i| spread(&after.iter().map(|s| s.rss_kib[i]).collect::<Vec<_>>()))
        .collect();
    let obs_max = samples.iter().map(|s| s.rss_kib[0]).max().unwrap_or(0);
    // About 30 lines: each the mean of its samples.
    let per_line = samples.len().div_ceil(30).max(1);
    let _ = writeln!(
        out,
        "   time  observer RSS                               {}      open  msgs/s  tracked  retired",
        procs[1..]
            .iter()
            .map(|p| format!("{p:>9}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for chunk in samples.chunks(per_line) {
        let mean =
            |f: &dyn Fn(&Sample) -> u64| chunk.iter().map(f).sum::<u64>() / chunk.len() as u64;
        let t = chunk.last().map(|s| s.elapsed_s).unwrap_or(0.0);
        let obs = mean(&|s| s.rss_kib[0]);
        let dev = match spreads[0] {
            Some(sp) if sp.median > 0 => format!(
                "{:>+6.1} %",
                100.0 * (obs as f64 - sp.median as f64) / sp.median as f64
            ),
            _ => String::new(),
        };
        let proxies: Vec<String> = (1..procs.len())
            .map(|i| format!("{:>9}", mib(mean(&|s| s.rss_kib[i]))))
            .collect();
        let _ = writeln!(
            out,
            "{}{} {:>9} {} {dev:>8} {} {:>9} {:>7} {:>8} {:>8}",
            if t < warmup_s { "w" } else { " " },
            clock(t),
            mib(obs),
            bar(obs, obs_max, 20),
            proxies.join(" "),
            mean(&|s| s.open),
            mean(&|s| s.msgs_per_s),
            mean(&|s| s.tracked),
            chunk.last().map(|s| s.evicted).unwrap_or(0),
        );
    }
    let _ = writeln!(
        out,
        "(w = warm-up; % = observer RSS against its post-warm-up median; retired = closed connections evicted so far)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "after warm-up ({} samples from {}):",
        after.len(),
        clock(warmup_s).trim()
    );
    let _ = writeln!(
        out,
        "| process | min | median | max | max deviation from median | within ±{TOLERANCE_PCT} % |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let mut pass = !after.is_empty();
    for (p, sp) in procs.iter().zip(&spreads) {
        match sp {
            Some(sp) => {
                let ok = sp.max_dev_pct <= TOLERANCE_PCT;
                pass &= ok;
                let _ = writeln!(
                    out,
                    "| {p} | {} | {} | {} | {:.1} % | {} |",
                    mib(sp.min),
                    mib(sp.median),
                    mib(sp.max),
                    sp.max_dev_pct,
                    if ok { "yes" } else { "NO" }
                );
            }
            None => {
                let _ = writeln!(out, "| {p} | – | – | – | – | no samples |");
            }
        }
    }
    (out, pass)
}
