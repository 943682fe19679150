//! The live trace: connects, messages and disconnects, newest first, filtered by kind.

use crate::app::ViewControls;
use crate::format;
use crate::model::LiveModel;
use crate::protocol::{Direction, TraceEntry, TraceKind};
use leptos::prelude::*;

#[component]
fn KindToggle(label: &'static str, kind: TraceKind) -> impl IntoView {
    let controls = expect_context::<ViewControls>();
    // No kind selected means all kinds.
    let checked = move || {
        controls
            .trace_kinds
            .with(|k| k.is_empty() || k.contains(&kind))
    };
    let toggle = move |_| {
        controls.trace_kinds.update(|k| {
            if k.is_empty() {
                *k = vec![TraceKind::Open, TraceKind::Message, TraceKind::Close];
            }
            if let Some(i) = k.iter().position(|x| *x == kind) {
                k.remove(i);
            } else {
                k.push(kind);
            }
            if k.len() == 3 {
                k.clear();
            }
        })
    };
    view! {
        <label class="toggle">
            <input type="checkbox" prop:checked=checked on:change=toggle/>
            {label}
        </label>
    }
}

#[component]
pub fn TracePanel() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let entries = Memo::new(move |_| model.with(|m| m.trace.iter().cloned().collect::<Vec<_>>()));
    let skipped = Memo::new(move |_| model.with(|m| m.trace_skipped));
    let controls = expect_context::<ViewControls>();
    // Export links carry the current kind filter; the observer streams the file.
    let export = move |format: &'static str| {
        let kinds = controls.trace_kinds.with(|k| {
            k.iter()
                .map(|k| format!("{k:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(",")
        });
        if kinds.is_empty() {
            format!("/api/export?format={format}")
        } else {
            format!("/api/export?format={format}&kind={kinds}")
        }
    };
    view! {
        <section class="panel trace">
            <div class="panel-head">
                <h2>"Live trace"</h2>
                <KindToggle label="connect" kind=TraceKind::Open/>
                <KindToggle label="message" kind=TraceKind::Message/>
                <KindToggle label="disconnect" kind=TraceKind::Close/>
                <Show when=move || { skipped.get() > 0 }>
                    <span class="skipped" title="events that arrived faster than the trace shows; all are counted and kept by the observer">
                        {move || format!("{} not shown", format::count(skipped.get()))}
                    </span>
                </Show>
            </div>
            <div class="exports">
                "export: "
                <a href=move || export("har") download="sockscope-trace.har" data-testid="export-har">"HAR"</a>
                " · "
                <a href=move || export("ndjson") download="sockscope-trace.ndjson">"NDJSON"</a>
                " · "
                <a href=move || export("csv") download="sockscope-trace.csv">"CSV"</a>
            </div>
            <ol class="events" data-testid="trace">
                <For each=move || entries.get() key=|e: &TraceEntry| e.seq let:e>
                    <TraceRow e=e/>
                </For>
            </ol>
        </section>
    }
    .into_any()
}

#[component]
fn TraceRow(e: TraceEntry) -> impl IntoView {
    let (kind, detail) = match e.kind {
        TraceKind::Open => ("connect", String::new()),
        TraceKind::Close => (
            "disconnect",
            format!(
                "{}{}",
                e.code
                    .map(|c| format!("{c} {} ", format::close_code(c)))
                    .unwrap_or_default(),
                e.by.map(|b| format!("by {b:?}").to_lowercase())
                    .unwrap_or_default()
            ),
        ),
        TraceKind::Message => (
            match e.dir {
                Some(Direction::ClientToServer) => "→ in",
                _ => "← out",
            },
            format!(
                "{} {}{}",
                e.opcode
                    .map(|o| format!("{o:?}").to_lowercase())
                    .unwrap_or_default(),
                format::bytes(e.size),
                if e.truncated { " (truncated)" } else { "" }
            ),
        ),
    };
    view! {
        <li class=format!("ev {}", kind.replace(['→', '←', ' '], "")) data-kind=format!("{:?}", e.kind).to_lowercase()>
            <span class="time">{format::clock_us(e.ts_us)}</span>
            <span class="kind">{kind}</span>
            <span class="conn" title=format!("source {}", e.source)>{format!("#{}", e.conn)}</span>
            <span class="detail">{detail}</span>
            <span class="text">{e.text.clone()}</span>
        </li>
    }
}
