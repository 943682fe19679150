//! Pure chart geometry for the dashboard's SVG charts: one shared time axis, polylines, and
//! rounded axis maxima. Recomputed once per second (when a point arrives), not per frame.

/// Seconds shown on the time axis (the series length).
pub(crate) const WINDOW_S: u64 = 900;

/// A rounded-up maximum for the value axis: 1, 2, 5 × 10^n.
pub(crate) fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * base {
            return m * base;
        }
    }
    10.0 * base
}

/// An SVG path through `(t, v)` points on the window ending at `t_end`, in a `w`×`h` box with
/// values scaled to `vmax`. Gaps of more than one second break the line.
pub(crate) fn path(points: &[(u64, f64)], t_end: u64, w: f64, h: f64, vmax: f64) -> String {
    let t0 = t_end.saturating_sub(WINDOW_S);
    let x = |t: u64| (t.saturating_sub(t0)) as f64 / WINDOW_S as f64 * w;
    let y = |v: f64| h - (v / vmax).clamp(0.0, 1.0) * h;
    let mut out = String::with_capacity(points.len() * 14);
    let mut prev: Option<u64> = None;
    for &(t, v) in points.iter().filter(|(t, _)| *t >= t0 && *t <= t_end) {
        let cmd = if prev.is_some_and(|p| t == p + 1) {
            'L'
        } else {
            'M'
        };
        out.push_str(&format!("{cmd}{:.1} {:.1} ", x(t), y(v)));
        prev = Some(t);
    }
    out
}

/// The second under a point `frac` (0–1) of the way along the time axis ending at `t_end`.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(crate) fn time_at(frac: f64, t_end: u64) -> u64 {
    let t0 = t_end.saturating_sub(WINDOW_S);
    t0 + (frac.clamp(0.0, 1.0) * WINDOW_S as f64).round() as u64
}

/// Short axis label: 1.5k, 2.3M.
pub(crate) fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_on_the_axis_is_a_second() {
        assert_eq!(time_at(0.0, 10_000), 10_000 - WINDOW_S);
        assert_eq!(time_at(1.0, 10_000), 10_000);
        assert_eq!(time_at(0.5, 10_000), 10_000 - WINDOW_S / 2);
        assert_eq!(time_at(7.0, 10_000), 10_000);
    }

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(nice_max(1000.0), 1000.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
    }

    #[test]
    fn paths_share_the_time_axis_and_break_on_gaps() {
        let p = path(
            &[(1000, 0.0), (1001, 5.0), (1003, 10.0)],
            1000 + WINDOW_S,
            900.0,
            100.0,
            10.0,
        );
        assert_eq!(p, "M0.0 100.0 L1.0 50.0 M3.0 0.0 ");
        // Points before the window are not drawn; values above the max are clamped.
        let p = path(&[(10, 1.0), (2000, 50.0)], 2000, 900.0, 100.0, 10.0);
        assert_eq!(p, "M900.0 0.0 ");
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(2_300_000.0), "2.3M");
        assert_eq!(short(12.0), "12");
    }
}
