//! The live trace: connects, messages and disconnects, newest first; filters that run on the
//! observer (kind, source, connection, IP, direction, text or regex over payloads); pause that
//! keeps buffering and counts what arrives; gap rows for what was not shown or was dropped.

use crate::dashboard::controls::ViewControls;
use crate::dashboard::format;
use crate::dashboard::model::{LiveModel, DEFAULT_TRACE_KEEP};
use crate::dashboard::trace_buffer::TraceItem;
use crate::protocol::{Direction, TraceEntry, TraceKind, TraceQuery};
use leptos::prelude::*;

#[component]
fn KindToggle(label: &'static str, kind: TraceKind) -> impl IntoView {
    let controls = expect_context::<ViewControls>();
    // No kind selected means all kinds.
    let checked = move || {
        controls
            .trace
            .with(|q| q.kinds.is_empty() || q.kinds.contains(&kind))
    };
    let toggle = move |_| {
        controls.trace.update(|q| {
            let k = &mut q.kinds;
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

/// The export URL for the current filter.
fn export_url(format: &str, q: &TraceQuery) -> String {
    let mut url = format!("/api/export?format={format}");
    let mut add = |k: &str, v: &str| {
        if !v.is_empty() {
            url.push_str(&format!("&{k}={}", urlencode(v)));
        }
    };
    add(
        "kind",
        &q.kinds
            .iter()
            .map(|k| k.as_str().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    add("source", q.source.as_deref().unwrap_or(""));
    add("ip", q.ip.as_deref().unwrap_or(""));
    add("text", q.text.as_deref().unwrap_or(""));
    add("conn", &q.conn.map(|c| c.to_string()).unwrap_or_default());
    add(
        "dir",
        match q.dir {
            Some(Direction::ClientToServer) => "in",
            Some(Direction::ServerToClient) => "out",
            None => "",
        },
    );
    if q.regex {
        url.push_str("&regex=true");
    }
    url
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn opt(v: String) -> Option<String> {
    let v = v.trim().to_string();
    (!v.is_empty()).then_some(v)
}

#[component]
pub(crate) fn TracePanel() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let controls = expect_context::<ViewControls>();
    let shown = RwSignal::new(DEFAULT_TRACE_KEEP);
    let items = Memo::new(move |_| model.with(|m| m.trace.visible(shown.get())));
    let paused = Memo::new(move |_| model.with(|m| m.trace.is_paused()));
    let fresh = Memo::new(move |_| model.with(|m| m.trace.new_since_pause()));
    let error = Memo::new(move |_| model.with(|m| m.last_error.clone()));
    let set = move |f: fn(&mut TraceQuery, String)| {
        move |ev| {
            let v = event_target_value(&ev);
            controls.trace.update(|q| f(q, v));
        }
    };
    view! {
        <section class="panel trace">
            <div class="panel-head">
                <h2>"Live trace"</h2>
                <KindToggle label="connect" kind=TraceKind::Open/>
                <KindToggle label="message" kind=TraceKind::Message/>
                <KindToggle label="disconnect" kind=TraceKind::Close/>
                <span class="spacer"></span>
                <Show
                    when=move || paused.get()
                    fallback=move || view! {
                        <button data-testid="pause" on:click=move |_| model.update(|m| m.trace.pause(shown.get_untracked()))>"pause"</button>
                    }
                >
                    <button data-testid="resume" on:click=move |_| model.update(|m| m.trace.resume())>
                        {move || format!("resume ({} new)", format::count(fresh.get()))}
                    </button>
                </Show>
                <button on:click=move |_| model.update(|m| m.trace.clear())>"clear"</button>
            </div>
            <div class="filters">
                <input type="search" placeholder="payload text" data-testid="trace-text"
                    disabled=move || !model.with(|m| m.role.sees_payloads())
                    title=move || if model.with(|m| m.role.sees_payloads()) { "" } else { "searching payloads needs the inspector role" }
                    on:input=set(|q, v| q.text = opt(v))/>
                <label class="toggle"><input type="checkbox" data-testid="trace-regex"
                    on:change=move |ev| { let on = event_target_checked(&ev); controls.trace.update(|q| q.regex = on) }/>"regex"</label>
                <select on:change=set(|q, v| q.dir = match v.as_str() { "in" => Some(Direction::ClientToServer), "out" => Some(Direction::ServerToClient), _ => None })>
                    <option value="">"both directions"</option>
                    <option value="in">"→ in"</option>
                    <option value="out">"← out"</option>
                </select>
                <input type="search" placeholder="source" class="narrow" on:input=set(|q, v| q.source = opt(v))/>
                <input type="search" placeholder="IP prefix" class="narrow" on:input=set(|q, v| q.ip = opt(v))/>
                <input type="search" placeholder="conn #" class="narrow" on:input=set(|q, v| q.conn = v.trim().trim_start_matches('#').parse().ok())/>
            </div>
            <Show when=move || error.get().is_some()>
                <p class="error" data-testid="trace-error">{move || error.get().unwrap_or_default()}</p>
            </Show>
            <div class="exports">
                "export: "
                <a href=move || controls.trace.with(|q| export_url("har", q)) download="sockscope-trace.har" data-testid="export-har">"HAR"</a>
                " · "
                <a href=move || controls.trace.with(|q| export_url("ndjson", q)) download="sockscope-trace.ndjson">"NDJSON"</a>
                " · "
                <a href=move || controls.trace.with(|q| export_url("csv", q)) download="sockscope-trace.csv">"CSV"</a>
            </div>
            <ol class="events" data-testid="trace">
                <For each=move || items.get() key=|i: &TraceItem| i.key() let:item>
                    {match item {
                        TraceItem::Event(e) => view! { <TraceRow e=e/> }.into_any(),
                        TraceItem::Gap { count, why, .. } => view! {
                            <li class="gap" data-kind="gap">{format!("⋯ {} events not shown: {why}", format::count(count))}</li>
                        }.into_any(),
                    }}
                </For>
            </ol>
            <button class="more" on:click=move |_| shown.update(|n| *n += DEFAULT_TRACE_KEEP)>"show older"</button>
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
                    .map(|c| format!("{c} {} ", crate::protocol::close_code::meaning(c)))
                    .unwrap_or_default(),
                e.by.map(|b| format!("by {}", b.as_str()))
                    .unwrap_or_default()
            ),
        ),
        TraceKind::Message => (
            match e.dir {
                Some(Direction::ClientToServer) => "→ in",
                _ => "← out",
            },
            format!(
                "{} {}{}{}",
                e.opcode.map(|o| o.as_str().to_string()).unwrap_or_default(),
                format::bytes(e.size),
                if e.truncated { " (truncated)" } else { "" },
                if e.flight { " · flight recorder" } else { "" },
            ),
        ),
    };
    view! {
        <li class=format!("ev {}", kind.replace(['→', '←', ' '], "")) data-kind=e.kind.as_str()>
            <span class="time">{format::clock_us(e.ts_us)}</span>
            <span class="kind">{kind}</span>
            <span class="conn" title=format!("source {}", format::visible(&e.source))>{format!("#{}", e.conn)}</span>
            <span class="detail">{detail}</span>
            <span class="text">{format::visible(&e.text)}</span>
        </li>
    }
}
