//! The connection inspector: metadata, mirrored and withheld headers, the tap's payload
//! capture, close details with the code's meaning, and the recent messages with a payload
//! inspector (JSON tree, hex + ASCII, SignalR and Socket.IO decoding) that marks what the tap
//! redacted. Payloads are rendered as text only.

use super::json::JsonTree;
use crate::dashboard::controls::ViewControls;
use crate::dashboard::format;
use crate::dashboard::model::LiveModel;
use crate::protocol::{ConnDetail, Direction, MessageView};
use base64::Engine as _;
use leptos::prelude::*;
use sockscope_payload::decode;

#[component]
pub(crate) fn DetailPanel() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let controls = expect_context::<ViewControls>();
    let detail = Memo::new(move |_| model.with(|m| m.detail.clone()));
    let gone = Memo::new(move |_| model.with(|m| m.detail_gone));
    let picked = RwSignal::new(None::<u64>);
    view! {
        <Show when=move || controls.selected.with(|s| s.is_some())>
            <section class="panel detail" data-testid="inspector">
                <div class="panel-head">
                    <h2>{move || format!("Connection #{}", controls.selected.get().unwrap_or(0))}</h2>
                    <button on:click=move |_| { controls.selected.set(None); picked.set(None); }>"close ×"</button>
                </div>
                <Show when=move || gone.get()>
                    <p class="empty">"This connection is no longer tracked (evicted by retention or the connection limit)."</p>
                </Show>
                {move || detail.get().map(|d| view! { <Body d=d picked=picked/> })}
            </section>
        </Show>
    }
    .into_any()
}

#[component]
fn Body(d: ConnDetail, picked: RwSignal<Option<u64>>) -> impl IntoView {
    let r = d.row.clone();
    let close = match (r.close_code, &r.closed_by) {
        (_, None) => "open".to_string(),
        (Some(c), Some(by)) => format!(
            "{c} {} (by {})",
            crate::protocol::close_code::meaning(c),
            by.as_str()
        ),
        (None, Some(by)) => format!("no close frame (by {})", by.as_str()),
    };
    let meta = vec![
        ("source", r.source.clone()),
        ("client IP", r.ip.clone()),
        ("user agent", r.user_agent.clone()),
        ("path", r.path.clone()),
        (
            "subprotocol",
            d.subprotocol.clone().unwrap_or_else(|| "–".into()),
        ),
        ("opened", format::clock_us(r.opened_ms * 1000)),
        ("state", close),
        (
            "close reason",
            r.close_reason.clone().unwrap_or_else(|| "–".into()),
        ),
        (
            "messages in · out",
            format!(
                "{} · {}",
                format::count(r.msgs_in),
                format::count(r.msgs_out)
            ),
        ),
        (
            "bytes in · out",
            format!(
                "{} · {}",
                format::bytes(r.bytes_in),
                format::bytes(r.bytes_out)
            ),
        ),
        (
            "rate",
            format!("{} msg/s · {}/s", r.rate_msgs, format::bytes(r.rate_bytes)),
        ),
        ("tap connection id", d.tap_conn.to_string()),
        (
            "payload capture",
            format::capture(d.capture, d.capture_bytes),
        ),
    ];
    let model = expect_context::<RwSignal<LiveModel>>();
    let spark = Memo::new(move |_| {
        model.with(|m| {
            let pts: Vec<(u64, f64)> = m
                .detail_rates
                .iter()
                .map(|(t, n, _)| (*t, *n as f64))
                .collect();
            let end = pts.last().map(|p| p.0).unwrap_or(0);
            let max =
                crate::dashboard::chart::nice_max(pts.iter().map(|p| p.1).fold(0.0, f64::max));
            (
                crate::dashboard::chart::path(&pts, end, 300.0, 40.0, max),
                max,
            )
        })
    });
    let export = format!("/api/export?format=har&conn={}", r.id);
    let past = model.with_untracked(|m| m.past.is_some());
    let headers = d.headers.clone();
    let withheld = d.redacted_headers.clone();
    let messages = d.messages.clone();
    let inspected = {
        let messages = messages.clone();
        move || {
            picked
                .get()
                .and_then(|seq| messages.iter().find(|m| m.seq == seq).cloned())
        }
    };
    view! {
        <div class="detail-grid">
            <dl class="meta">
                {meta.into_iter().map(|(k, v)| view! { <dt>{k}</dt><dd>{format::visible(&v)}</dd> }).collect_view()}
            </dl>
            <div>
                <h3>"Throughput since opened (msgs/s)"</h3>
                <svg class="spark" viewBox="0 0 300 40" preserveAspectRatio="none" data-testid="sparkline">
                    <path d=move || spark.get().0 stroke="#4fb3ff" fill="none" stroke-width="1.2" vector-effect="non-scaling-stroke"/>
                </svg>
                <span class="axis">{move || format!("max {}", crate::dashboard::chart::short(spark.get().1))}</span>
                // A past row's id is local to that moment's view: no live export for it.
                {(!past).then(|| view! {
                    <p><a href=export download="sockscope-connection.har" data-testid="export-conn">"export this connection (HAR)"</a></p>
                })}
                <h3>"Headers mirrored by the tap"</h3>
                <div class="headers">
                    <table class="grid small">
                        <tbody>
                            {headers.into_iter().map(|(k, v)| view! { <tr><td>{format::visible(&k)}</td><td>{format::visible(&v)}</td></tr> }).collect_view()}
                            {withheld.into_iter().map(|k| view! {
                                <tr class="withheld" data-testid="withheld-header"><td>{format::visible(&k)}</td><td>"withheld by the tap"</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </div>
        </div>
        {d.payloads_hidden.then(|| view! {
            <p class="role-note" data-testid="payloads-hidden">
                "Payloads and headers are hidden: you are signed in as a viewer. An inspector login shows them."
            </p>
        })}
        <h3>{format!("Recent messages ({})", messages.len())}</h3>
        <div class="msg-split">
            <ol class="msgs" data-testid="messages">
                {messages.into_iter().rev().map(|m| {
                    let seq = m.seq;
                    let dir = if m.dir == Direction::ClientToServer { "→ in" } else { "← out" };
                    let preview = m.text.as_deref().map(|t| format::visible(&t.chars().take(80).collect::<String>()))
                        .or_else(|| m.data_b64.as_ref().map(|_| "(binary)".to_string()))
                        .unwrap_or_default();
                    view! {
                        <li class:picked=move || picked.get() == Some(seq) on:click=move |_| picked.set(Some(seq))>
                            <span class="time">{format::clock_us(m.ts_us)}</span>
                            <span class="kind">{dir}</span>
                            <span>{m.opcode.as_str()}</span>
                            <span class="num">{format::bytes(m.size)}</span>
                            {(m.redacted > 0).then(|| view! { <span class="redacted-badge" title="values redacted at the tap">"masked"</span> })}
                            <span class="text">{preview}</span>
                        </li>
                    }
                }).collect_view()}
            </ol>
            <div class="inspector">
                {move || match inspected() {
                    Some(m) => view! { <Inspect m=m/> }.into_any(),
                    None => view! { <p class="empty">"Pick a message to inspect its payload."</p> }.into_any(),
                }}
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn Inspect(m: MessageView) -> impl IntoView {
    let captured = m
        .text
        .as_ref()
        .map(|t| t.len() as u64)
        .or(m.data_b64.as_ref().map(|b| (b.len() as u64 / 4) * 3));
    let flight = m.flight.then(|| {
        view! {
            <span class="flight-note" data-testid="flight-note" title="kept by an on-demand tap while nobody watched, and sent because the connection died abnormally">
                {" · flight recorder"}
            </span>
        }
    });
    let note = if m.payload_evicted {
        "payload dropped by the observer's payload budget".to_string()
    } else if m.truncated {
        format!(
            "truncated by the tap: original length {} bytes",
            format::count(m.size)
        )
    } else if captured.is_none() {
        "no payload captured (metadata only)".to_string()
    } else {
        format!("{} bytes", format::count(m.size))
    };
    let redacted = (m.redacted > 0).then(|| {
        let n = m.redacted;
        view! {
            <span class="redacted-note" data-testid="redacted-note">
                {format!(" · {n} value{} redacted at the tap", if n == 1 { "" } else { "s" })}
            </span>
        }
    });
    let body = match (&m.text, &m.data_b64) {
        (Some(t), _) => text_views(t).into_any(),
        (None, Some(b)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default();
            hex_view(&bytes).into_any()
        }
        _ => ().into_any(),
    };
    view! {
        <div class="inspect" data-testid="inspect">
            <div class="inspect-head">
                {format!("{} {} · {}", if m.dir == Direction::ClientToServer { "client → server" } else { "server → client" }, m.opcode.as_str(), format::clock_us(m.ts_us))}
                <span class:warn=m.truncated || m.payload_evicted>{" · "}{note}</span>
                {redacted}
                {flight}
            </div>
            {body}
        </div>
    }
}

fn text_views(t: &str) -> impl IntoView {
    let decoded = if let Some(msgs) = decode::signalr(t) {
        view! {
            <div class="decoded" data-testid="signalr">
                <h4>"SignalR hub protocol"</h4>
                {msgs.into_iter().map(|s| view! {
                    <div class="sig">
                        <b>{s.kind}</b>
                        {s.target.map(|t| format!(" target {}", format::visible(&t)))}
                        {s.invocation_id.map(|i| format!(" · invocation {}", format::visible(&i)))}
                        {s.body.map(|b| view! { <JsonTree value=b label="body".to_string()/> })}
                    </div>
                }).collect_view()}
            </div>
        }
        .into_any()
    } else if let Some(p) =
        decode::socketio(t).filter(|p| p.packet.is_some() || p.engine != "message")
    {
        view! {
            <div class="decoded" data-testid="socketio">
                <h4>"Socket.IO / Engine.IO"</h4>
                <p>
                    {format!("engine {} · packet {} · namespace {}", p.engine, p.packet.unwrap_or("–"), format::visible(&p.namespace))}
                    {p.ack_id.map(|a| format!(" · ack {a}"))}
                    {p.event.map(|e| format!(" · event {}", format::visible(&e)))}
                </p>
                {p.data.map(|d| view! { <JsonTree value=d label="data".to_string()/> })}
            </div>
        }
        .into_any()
    } else if let Some(v) = decode::json(t) {
        view! { <div class="decoded" data-testid="json-tree"><JsonTree value=v/></div> }.into_any()
    } else {
        ().into_any()
    };
    view! {
        {decoded}
        <h4>"Text"</h4>
        <pre class="raw">
            {format::redaction_parts(t).into_iter().map(|(piece, masked)| {
                if masked {
                    view! { <mark class="redacted">{piece.to_string()}</mark> }.into_any()
                } else {
                    format::visible_lines(piece).into_any()
                }
            }).collect_view()}
        </pre>
    }
}

fn hex_view(bytes: &[u8]) -> impl IntoView {
    let lines = decode::hexdump(bytes);
    view! {
        <table class="hex" data-testid="hex">
            <tbody>
                {lines.into_iter().map(|l| view! {
                    <tr><td class="off">{format!("{:08x}", l.offset)}</td><td>{l.hex}</td><td class="asc">{l.ascii}</td></tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}
