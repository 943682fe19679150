//! Charts on one time axis (the last 15 minutes at 1-second resolution): messages/s, bytes/s,
//! open connections, connects/disconnects per second, and CPU and memory per source. Plain SVG
//! paths recomputed once per second, when a point arrives.

use crate::dashboard::chart::{nice_max, path, short};
use crate::dashboard::model::LiveModel;
use crate::protocol::Point;
use leptos::prelude::*;

const W: f64 = 300.0;
const H: f64 = 70.0;
const COLORS: [&str; 6] = [
    "#4fb3ff", "#f0a35e", "#3fb950", "#d2a8ff", "#f85149", "#e3b341",
];

/// One chart: several named lines over (t, value) points.
#[derive(Clone, PartialEq)]
struct Lines {
    title: &'static str,
    unit: &'static str,
    lines: Vec<(String, Vec<(u64, f64)>)>,
}

/// A named field of a series point.
type Field = (&'static str, fn(&Point) -> u64);

fn from_series(series: &[Point], title: &'static str, unit: &'static str, f: &[Field]) -> Lines {
    Lines {
        title,
        unit,
        lines: f
            .iter()
            .map(|(name, get)| {
                (
                    name.to_string(),
                    series.iter().map(|p| (p.t, get(p) as f64)).collect(),
                )
            })
            .collect(),
    }
}

/// A click on a chart's time axis: the view as it was at that second (from the record).
fn scrub(ev: leptos::ev::MouseEvent, t_end: u64) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::JsCast;
        let Some(svg) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
        else {
            return;
        };
        let width = svg.client_width().max(1) as f64;
        let t = crate::dashboard::chart::time_at(ev.offset_x() as f64 / width, t_end);
        if t > 0 {
            let controls = expect_context::<crate::dashboard::controls::ViewControls>();
            controls.at.set(Some(t * 1000 + 999));
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (ev, t_end);
}

#[component]
fn Chart(l: Lines, t_end: u64) -> impl IntoView {
    let vmax = nice_max(
        l.lines
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let latest: Vec<String> = l
        .lines
        .iter()
        .map(|(name, pts)| {
            format!(
                "{name} {}{}",
                short(pts.last().map(|p| p.1).unwrap_or(0.0)),
                l.unit
            )
        })
        .collect();
    view! {
        <figure class="chart" data-testid="chart">
            <figcaption>
                <b>{l.title}</b>
                {latest.into_iter().enumerate().map(|(i, s)| view! {
                    <span class="legend" style=format!("color:{}", COLORS[i % COLORS.len()])>{s}</span>
                }).collect_view()}
            </figcaption>
            <svg viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none"
                data-testid="chart-axis"
                title="click a moment to see the table and trace as they were then"
                on:click=move |ev| scrub(ev, t_end)>
                <line x1="0" y1="0.5" x2=W y2="0.5" class="grid-line"/>
                <line x1="0" y1=H - 0.5 x2=W y2=H - 0.5 class="grid-line"/>
                {l.lines.iter().enumerate().map(|(i, (_, pts))| view! {
                    <path d=path(pts, t_end, W, H, vmax) stroke=COLORS[i % COLORS.len()] fill="none" stroke-width="1.2" vector-effect="non-scaling-stroke"/>
                }).collect_view()}
            </svg>
            <span class="axis">{format!("max {}{}", short(vmax), l.unit)}</span>
        </figure>
    }
}

#[component]
pub(crate) fn Charts() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    // Only changes when a new second arrives.
    let charts = Memo::new(move |_| {
        model.with(|m| {
            let series: Vec<Point> = m.series.iter().cloned().collect();
            let t_end = series.last().map(|p| p.t).unwrap_or(0);
            let mut out = vec![
                from_series(
                    &series,
                    "messages/s",
                    "",
                    &[("in", |p| p.msgs_in), ("out", |p| p.msgs_out)],
                ),
                from_series(
                    &series,
                    "bytes/s",
                    "B",
                    &[("in", |p| p.bytes_in), ("out", |p| p.bytes_out)],
                ),
                from_series(&series, "open connections", "", &[("open", |p| p.open)]),
                from_series(
                    &series,
                    "connects · disconnects /s",
                    "",
                    &[
                        ("connects", |p| p.connects),
                        ("disconnects", |p| p.disconnects),
                    ],
                ),
            ];
            out.push(Lines {
                title: "CPU per source",
                unit: "%",
                lines: m
                    .hosts
                    .iter()
                    .map(|(id, pts)| {
                        (
                            id.clone(),
                            pts.iter().map(|p| (p.t, p.cpu_pct as f64)).collect(),
                        )
                    })
                    .collect(),
            });
            out.push(Lines {
                title: "memory used per source",
                unit: "B",
                lines: m
                    .hosts
                    .iter()
                    .map(|(id, pts)| {
                        (
                            id.clone(),
                            pts.iter().map(|p| (p.t, p.mem_used as f64)).collect(),
                        )
                    })
                    .collect(),
            });
            (t_end, out)
        })
    });
    view! {
        <section class="charts" data-testid="charts">
            {move || {
                let (t_end, all) = charts.get();
                all.into_iter().map(|l| view! { <Chart l=l t_end=t_end/> }).collect_view()
            }}
        </section>
    }
    .into_any()
}
