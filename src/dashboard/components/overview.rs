//! Totals, rates, observer counters and the sources (taps) with host metrics and drops.

use crate::dashboard::format;
use crate::dashboard::model::LiveModel;
use crate::protocol::{CaptureMode, SourceView};
use leptos::prelude::*;

#[component]
fn Card(label: &'static str, testid: &'static str, value: Signal<String>) -> impl IntoView {
    view! {
        <div class="card">
            <div class="label">{label}</div>
            <div class="value" data-testid=testid>{move || value.get()}</div>
        </div>
    }
}

#[component]
pub(crate) fn Overview() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let ov = Memo::new(move |_| model.with(|m| m.overview.clone()));
    let t = move |f: fn(&crate::protocol::Overview) -> String| Signal::derive(move || ov.with(f));
    let sources = Memo::new(move |_| ov.with(|o| o.sources.clone()));
    let now_ms = Memo::new(move |_| model.with(|m| m.now_ms));
    view! {
        <section class="overview">
            <div class="cards">
                <Card label="open connections" testid="open" value=t(|o| format::count(o.totals.open))/>
                <Card label="connections seen" testid="opened" value=t(|o| format::count(o.totals.opened))/>
                <Card label="msgs/s in · out" testid="msg-rate" value=t(|o| format!("{} · {}", format::count(o.rates.msgs_in), format::count(o.rates.msgs_out)))/>
                <Card label="bytes/s in · out" testid="byte-rate" value=t(|o| format!("{} · {}", format::bytes(o.rates.bytes_in), format::bytes(o.rates.bytes_out)))/>
                <Card label="messages in · out" testid="msgs" value=t(|o| format!("{} · {}", format::count(o.totals.msgs_in), format::count(o.totals.msgs_out)))/>
                <Card label="connects · disconnects /s" testid="churn" value=t(|o| format!("{} · {}", o.rates.connects, o.rates.disconnects))/>
                <Card label="tap drops" testid="drops" value=t(|o| format::count(o.sources.iter().map(|s| s.drops.total()).sum()))/>
                <Card label="ingest errors" testid="ingest-errors" value=t(|o| format::count(o.observer.ingest_errors))/>
                <Card label="observer CPU · RSS" testid="observer" value=t(|o| format!("{:.0} % · {}", o.observer.cpu_pct, format::bytes(o.observer.rss)))/>
                <Card label="ingest events/s · browsers" testid="ingest-rate" value=t(|o| format!("{} · {}", format::count(o.observer.ingest_rate), o.observer.browsers))/>
                <Card label="browser re-snapshots · payloads evicted · metadata cut" testid="observer-drops" value=t(|o| format!("{} · {} · {}", format::count(o.observer.browser_resnapshots), format::count(o.observer.payloads_evicted), format::count(o.observer.metadata_cut)))/>
                <Card label="refused at the door" testid="refused" value=t(|o| refused_summary(&o.observer.refused))/>
                <Card label="record on disk · dropped · damaged" testid="recording" value=t(|o| format::recording(o.observer.recording.as_ref()))/>
                <Show when=move || model.with(|m| m.overview.observer.bus.is_some())>
                    <Card label="bus · behind · lag" testid="bus" value=t(|o| format::bus(o.observer.bus.as_ref()))/>
                </Show>
            </div>
            <table class="sources" data-testid="sources">
                <thead>
                    <tr>
                        <th>"source"</th><th>"kind"</th><th>"host"</th><th>"version"</th><th>"state"</th><th>"capture"</th>
                        <th>"open"</th><th>"msgs/s"</th><th>"CPU"</th><th>"memory"</th><th>"RSS"</th><th>"dropped"</th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || sources.get() key=|s: &SourceView| s.id.clone() let:s>
                        <SourceRow id=s.id sources=sources now_ms=now_ms/>
                    </For>
                </tbody>
            </table>
            <Show when=move || sources.with(|s| s.is_empty())>
                <p class="empty">"No tap has connected yet. Point a tap or `sockscope proxy` at /ingest."</p>
            </Show>
        </section>
    }
    .into_any()
}

/// "0", or the total with its non-zero reasons, e.g. "7 (host 4, bad_login 3)".
fn refused_summary(r: &crate::protocol::Refusals) -> String {
    let parts: Vec<String> = r
        .entries()
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{} {}", k.replace('_', " "), format::count(*v)))
        .collect();
    let total: u64 = r.entries().iter().map(|(_, v)| v).sum();
    if parts.is_empty() {
        "0".into()
    } else {
        format!("{} ({})", format::count(total), parts.join(", "))
    }
}

/// One source's row, kept while the source is listed; its cells are redrawn when its figures
/// change.
#[component]
fn SourceRow(id: String, sources: Memo<Vec<SourceView>>, now_ms: Memo<u64>) -> impl IntoView {
    let source = Memo::new(move |_| sources.with(|all| all.iter().find(|s| s.id == id).cloned()));
    view! { <tr>{move || source.get().map(|s| source_cells(s, now_ms))}</tr> }
}

fn capture_title(s: &SourceView) -> &'static str {
    match (s.capture, s.streaming) {
        (Some(CaptureMode::OnDemand), true) => {
            "on demand: somebody watches this source's live trace, so every message is sent"
        }
        (Some(CaptureMode::OnDemand), false) => {
            "on demand: nobody watches, so the tap sends counts once a second and keeps each \
             connection's last messages, sent if it dies abnormally"
        }
        (Some(CaptureMode::Full), _) => "every message is sent",
        (None, _) => "the tap does not say (it sends every message)",
    }
}

fn source_cells(s: SourceView, now_ms: Memo<u64>) -> impl IntoView {
    let last_seen = s.last_seen_ms;
    let online = s.online;
    // Sources that post over HTTP have no session; "last seen" is their health.
    let silent_ms = move || now_ms.get().saturating_sub(last_seen);
    let state = move || {
        if online {
            "online".to_string()
        } else {
            format!("last seen {} ago", format::duration_ms(silent_ms()))
        }
    };
    let (cpu, mem, rss) = match &s.host {
        Some(h) => (
            format!("{:.1} %", h.cpu_pct),
            format!(
                "{} / {}",
                format::bytes(h.mem_used),
                format::bytes(h.mem_total)
            ),
            format::bytes(h.rss),
        ),
        None => ("–".into(), "–".into(), "–".into()),
    };
    let mut drops = format!(
        "{} (open {}, msg {}, close {}, host {})",
        s.drops.total(),
        s.drops.conn_open,
        s.drops.message,
        s.drops.conn_close,
        s.drops.host
    );
    if s.rate_limited > 0 {
        drops.push_str(&format!(
            " + {} over the events/s limit",
            format::count(s.rate_limited)
        ));
    }
    view! {
            <td class="text" title=format!("{} ({})", format::visible(&s.name), s.id)>{format::visible(&s.name)}</td>
            <td>{s.kind.as_str()}</td>
            <td class="text" title=format::visible(&s.hostname)>{format::visible(&s.hostname)}</td>
            <td class="text" title=format::visible(&s.version)>{format::visible(&s.version)}</td>
            <td class:offline=move || { !online && silent_ms() > 10_000 }>{state}</td>
            <td data-testid="source-capture" title=capture_title(&s)>{format::source_capture(s.capture, s.streaming)}</td>
            <td class="num">{format::count(s.open)}</td>
            <td class="num" title=format!("{}/s", format::bytes(s.rate_bytes))>{format::count(s.rate_msgs)}</td>
            <td class="num">{cpu}</td>
            <td class="num">{mem}</td>
            <td class="num">{rss}</td>
            <td class="num" data-testid="source-drops">{drops}</td>
    }
}
