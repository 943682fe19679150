//! The load generator's arithmetic: intervals, latency percentiles, and "missed" computed from
//! the expected schedule (so loss at the end of a run counts, not only gaps).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Min / max / mean of a series of milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    sum: f64,
}

impl Spread {
    pub fn add(&mut self, v: f64) {
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        if self.count == 0 || v > self.max {
            self.max = v;
        }
        self.count += 1;
        self.sum += v;
    }

    pub fn merge(&mut self, o: &Spread) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 || o.min < self.min {
            self.min = o.min;
        }
        if self.count == 0 || o.max > self.max {
            self.max = o.max;
        }
        self.count += o.count;
        self.sum += o.sum;
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }
}

/// Latencies in microseconds (1 µs .. 60 s, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records a latency given in milliseconds (clamped into the histogram's range).
pub fn record_ms(h: &mut Histogram<u64>, ms: f64) {
    let us = (ms * 1000.0).round().clamp(1.0, 60_000_000.0) as u64;
    h.saturating_record(us);
}

/// Ticks of a server schedule that a client should have received: from the first tick it saw
/// (server timestamp `first_ts_ms`) up to `end_ms - grace_ms`, one every `interval_ms`.
pub fn expected_ticks(first_ts_ms: f64, end_ms: f64, interval_ms: f64, grace_ms: f64) -> u64 {
    if interval_ms <= 0.0 {
        return 0;
    }
    let window = end_ms - grace_ms - first_ts_ms;
    if window < 0.0 {
        return 1; // it saw one tick, the window closed right after
    }
    (window / interval_ms).floor() as u64 + 1
}

/// Percentage of `expected` that did not arrive (0 when nothing was expected).
pub fn missed_pct(expected: u64, received: u64) -> f64 {
    if expected == 0 {
        return 0.0;
    }
    expected.saturating_sub(received) as f64 * 100.0 / expected as f64
}

/// What a run measured; `--json` prints it as is.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub profile: String,
    pub clients: u64,
    pub connect_failures: u64,
    pub disconnects: u64,
    pub sent: u64,
    pub expected: u64,
    /// Messages received within the measurement window (what `missed` is computed from).
    pub received: u64,
    /// Every message received, including those in flight when the window closed.
    pub received_total: u64,
    pub missed: u64,
    pub missed_pct: f64,
    pub interval_ms_min: Option<f64>,
    pub interval_ms_max: Option<f64>,
    pub interval_ms_avg: Option<f64>,
    pub latency_ms_min: f64,
    pub latency_ms_max: f64,
    pub latency_ms_avg: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub duration_s: f64,
    /// CPU the generator used, in percent of one core, and whether it was the bottleneck.
    pub generator_cpu_pct: f64,
    pub generator_lag_ms_p99: f64,
    pub generator_saturated: bool,
}

impl Report {
    pub fn fill_latency(&mut self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        self.latency_ms_min = ms(h.min());
        self.latency_ms_max = ms(h.max());
        self.latency_ms_avg = h.mean() / 1000.0;
        self.latency_ms_p50 = ms(h.value_at_quantile(0.5));
        self.latency_ms_p99 = ms(h.value_at_quantile(0.99));
    }

    pub fn fill_missed(&mut self) {
        self.missed = self.expected.saturating_sub(self.received);
        self.missed_pct = missed_pct(self.expected, self.received);
    }

    /// The classic one-line summary, as the dotNetify load tester printed it.
    pub fn classic_line(&self) -> String {
        match (self.interval_ms_min, self.interval_ms_max, self.interval_ms_avg) {
            (Some(min), Some(max), Some(avg)) => format!(
                "Clients={}, Received={}, Missed={}%, Min interval={:.2}, Max interval={:.2}, Avg interval: {:.2}",
                self.clients,
                self.received,
                pct(self.missed_pct),
                min,
                max,
                avg
            ),
            _ => format!(
                "Clients={}, Min latency={:.2}, Max latency={:.2}, Avg Latency={:.2}, Received={}, Missed={}%",
                self.clients,
                self.latency_ms_min,
                self.latency_ms_max,
                self.latency_ms_avg,
                self.received,
                pct(self.missed_pct)
            ),
        }
    }
}

fn pct(p: f64) -> String {
    if p == 0.0 {
        "0".into()
    } else if p < 0.01 {
        format!("{p:.4}")
    } else {
        format!("{p:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_tracks_min_max_mean_and_merges() {
        let mut a = Spread::default();
        for v in [3003.35, 3088.73, 3010.0] {
            a.add(v);
        }
        let mut b = Spread::default();
        b.add(2999.0);
        a.merge(&b);
        a.merge(&Spread::default());
        assert_eq!((a.count, a.min, a.max), (4, 2999.0, 3088.73));
        assert!((a.mean() - 3025.27).abs() < 0.01);
        assert_eq!(Spread::default().mean(), 0.0);
    }

    #[test]
    fn expected_ticks_count_tail_loss() {
        // First tick at t=1000, ticks every 1000 ms, run ends at 10_400 with a 200 ms grace:
        // ticks 1000..=10_000 → 10 expected.
        assert_eq!(expected_ticks(1000.0, 10_400.0, 1000.0, 200.0), 10);
        // A tick right at the edge of the grace is not expected yet.
        assert_eq!(expected_ticks(1000.0, 10_100.0, 1000.0, 200.0), 9);
        // The server went silent after 3 ticks: the tail is counted as missed.
        let expected = expected_ticks(0.0, 10_000.0, 1000.0, 0.0);
        assert_eq!(expected, 11);
        assert!((missed_pct(expected, 3) - 72.727).abs() < 0.01);
        assert_eq!(expected_ticks(5000.0, 5100.0, 1000.0, 200.0), 1);
        assert_eq!(expected_ticks(0.0, 1.0, 0.0, 0.0), 0);
    }

    #[test]
    fn missed_counts_gaps_and_never_goes_negative() {
        assert_eq!(missed_pct(0, 0), 0.0);
        assert_eq!(missed_pct(100, 100), 0.0);
        assert_eq!(missed_pct(100, 97), 3.0);
        assert_eq!(
            missed_pct(100, 120),
            0.0,
            "duplicates never make loss negative"
        );
        let mut r = Report {
            expected: 200,
            received: 150,
            ..Default::default()
        };
        r.fill_missed();
        assert_eq!((r.missed, r.missed_pct), (50, 25.0));
    }

    #[test]
    fn latency_percentiles_and_classic_lines() {
        let mut h = latency_histogram();
        for ms in 1..=100 {
            record_ms(&mut h, ms as f64);
        }
        record_ms(&mut h, -5.0); // clock skew: clamped, not a panic
        let mut r = Report {
            clients: 500,
            received: 101,
            ..Default::default()
        };
        r.fill_latency(&h);
        assert!(
            (r.latency_ms_p50 - 50.0).abs() < 0.1,
            "{}",
            r.latency_ms_p50
        );
        assert!(
            (r.latency_ms_p99 - 99.0).abs() < 0.2,
            "{}",
            r.latency_ms_p99
        );
        assert!(
            (r.latency_ms_max - 100.0).abs() < 0.1,
            "{}",
            r.latency_ms_max
        );
        assert_eq!(
            r.classic_line(),
            format!(
                "Clients=500, Min latency={:.2}, Max latency={:.2}, Avg Latency={:.2}, Received=101, Missed=0%",
                r.latency_ms_min, r.latency_ms_max, r.latency_ms_avg
            )
        );
        let b = Report {
            clients: 1000,
            received: 134262,
            interval_ms_min: Some(3003.35),
            interval_ms_max: Some(3088.73),
            interval_ms_avg: Some(3034.29),
            ..Default::default()
        };
        assert_eq!(
            b.classic_line(),
            "Clients=1000, Received=134262, Missed=0%, Min interval=3003.35, Max interval=3088.73, Avg interval: 3034.29"
        );
    }
}
