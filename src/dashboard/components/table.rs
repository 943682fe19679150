//! The connection table: sorted and filtered on the observer, virtualized in the browser —
//! scrolling asks for the rows on screen, the scrollbar spans every matching row.

use crate::dashboard::controls::ViewControls;
use crate::dashboard::format;
use crate::dashboard::model::LiveModel;
use crate::dashboard::virtual_scroll::{spacers, window};
use crate::protocol::{ConnRow, ConnState, SortKey, StateFilter};
use leptos::prelude::*;

#[component]
fn SortHeader(label: &'static str, key: SortKey) -> impl IntoView {
    let controls = expect_context::<ViewControls>();
    let arrow = move || {
        controls.table.with(|t| match (t.sort == key, t.desc) {
            (true, true) => " ▼",
            (true, false) => " ▲",
            _ => "",
        })
    };
    let click = move |_| {
        controls.table.update(|t| {
            if t.sort == key {
                t.desc = !t.desc;
            } else {
                t.sort = key;
                t.desc = true;
            }
            t.offset = 0;
        })
    };
    view! { <th class="sortable" on:click=click>{label}{arrow}</th> }
}

#[component]
pub(crate) fn ConnTable() -> impl IntoView {
    let model = expect_context::<RwSignal<LiveModel>>();
    let controls = expect_context::<ViewControls>();
    let rows = Memo::new(move |_| model.with(|m| m.visible_rows()));
    let now_ms = Memo::new(move |_| model.with(|m| m.now_ms));
    let total = Memo::new(move |_| model.with(|m| m.total));
    let shown = Memo::new(move |_| model.with(|m| (m.offset, m.ids.len())));
    let range = move || {
        let ((o, n), t) = (shown.get(), total.get());
        if t == 0 {
            "no connections".to_string()
        } else {
            format!(
                "{}–{} of {}",
                format::count(o as u64 + 1),
                format::count((o as u64 + n as u64).min(t)),
                format::count(t)
            )
        }
    };
    let scroller = NodeRef::<leptos::html::Div>::new();
    let viewport = RwSignal::new(600.0f64);
    // A new filter or sort starts at the top.
    let to_top = move || {
        controls.window.update(|w| w.0 = 0);
        if let Some(el) = scroller.get_untracked() {
            el.set_scroll_top(0);
        }
    };
    let on_scroll = move |_| {
        if let Some(el) = scroller.get_untracked() {
            let h = el.client_height() as f64;
            viewport.set(h);
            let w = window(el.scroll_top() as f64, h, total.get_untracked());
            if w != controls.window.get_untracked() {
                controls.window.set(w);
            }
        }
    };
    let pads = move || {
        let ((o, n), t) = (shown.get(), total.get());
        spacers(o, n, t, viewport.get())
    };
    let on_filter = move |ev| {
        let v = event_target_value(&ev);
        to_top();
        controls.table.update(|t| {
            t.q = v;
            t.offset = 0;
        })
    };
    let on_state = move |ev| {
        let state = match event_target_value(&ev).as_str() {
            "closed" => StateFilter::Closed,
            "all" => StateFilter::All,
            _ => StateFilter::Open,
        };
        to_top();
        controls.table.update(|t| {
            t.state = state;
            t.offset = 0;
        })
    };
    view! {
        <section class="panel conns">
            <div class="panel-head">
                <h2>"Connections"</h2>
                <input
                    type="search"
                    placeholder="filter: ip, user agent, path, source, id"
                    data-testid="conn-filter"
                    prop:value=move || controls.table.with(|t| t.q.clone())
                    on:input=on_filter
                />
                <select on:change=on_state data-testid="conn-state">
                    <option value="open" selected=true>"open"</option>
                    <option value="closed">"closed"</option>
                    <option value="all">"all"</option>
                </select>
                <span class="range" data-testid="conn-range">{range}</span>
            </div>
            <div class="scroll virtual" node_ref=scroller on:scroll=on_scroll>
                <table class="grid" data-testid="conn-table">
                    <thead>
                        <tr>
                            <SortHeader label="id" key=SortKey::Id/>
                            <SortHeader label="ip" key=SortKey::Ip/>
                            <SortHeader label="user agent" key=SortKey::UserAgent/>
                            <SortHeader label="path" key=SortKey::Path/>
                            <SortHeader label="source" key=SortKey::Source/>
                            <th>"connected for"</th>
                            <SortHeader label="msgs in" key=SortKey::MsgsIn/>
                            <SortHeader label="msgs out" key=SortKey::MsgsOut/>
                            <SortHeader label="bytes in" key=SortKey::BytesIn/>
                            <SortHeader label="bytes out" key=SortKey::BytesOut/>
                            <SortHeader label="rate" key=SortKey::Rate/>
                            <th>"state"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <tr class="pad" style=move || format!("height:{}px", pads().0)></tr>
                        <For each=move || rows.get() key=|r: &ConnRow| r.id let:r>
                            <Row id=r.id rows=rows now_ms=now_ms/>
                        </For>
                        <tr class="pad" style=move || format!("height:{}px", pads().1)></tr>
                    </tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}

/// One table row, kept (same DOM) while its connection stays in the window; each cell
/// updates on its own when that connection's figures change.
#[component]
fn Row(id: u64, rows: Memo<Vec<ConnRow>>, now_ms: Memo<u64>) -> impl IntoView {
    let controls = expect_context::<ViewControls>();
    // This row's data; `None` for the moment between leaving the window and being removed.
    let row = Memo::new(move |_| rows.with(|rs| rs.iter().find(|r| r.id == id).cloned()));
    let cell = move |f: fn(&ConnRow) -> String| {
        move || row.with(|r| r.as_ref().map(f).unwrap_or_default())
    };
    let age = move || {
        row.with(|r| {
            r.as_ref()
                .map(|r| {
                    format::duration_ms(
                        r.closed_ms
                            .unwrap_or_else(|| now_ms.get())
                            .saturating_sub(r.opened_ms),
                    )
                })
                .unwrap_or_default()
        })
    };
    // Everything a tap sent is shown as text with hidden characters made visible.
    let ua = cell(|r| format::visible(&r.user_agent));
    let path = cell(|r| format::visible(&r.path));
    let closed = move || row.with(|r| r.as_ref().is_some_and(|r| r.state == ConnState::Closed));
    view! {
        <tr
            data-conn=id
            class:closed=closed
            class="clickable"
            title="open in the inspector"
            on:click=move |_| controls.selected.set(Some(id))
        >
            <td class="num">{id}</td>
            <td>{cell(|r| r.ip.clone())}</td>
            <td class="ua" title=ua>{ua}</td>
            <td class="path" title=path>{path}</td>
            <td class="source">{cell(|r| format::visible(&r.source))}</td>
            <td class="num">{age}</td>
            <td class="num">{cell(|r| format::count(r.msgs_in))}</td>
            <td class="num">{cell(|r| format::count(r.msgs_out))}</td>
            <td class="num">{cell(|r| format::bytes(r.bytes_in))}</td>
            <td class="num">{cell(|r| format::bytes(r.bytes_out))}</td>
            <td class="num">{cell(|r| format!("{}/s", r.rate_msgs))}</td>
            <td class="state" title=cell(close_detail)>{cell(state_text)}</td>
        </tr>
    }
}

fn state_text(r: &ConnRow) -> String {
    match r.state {
        ConnState::Open if r.unknown_since_ms.is_some() => {
            "state unknown since restart".to_string()
        }
        ConnState::Open => "open".to_string(),
        ConnState::Closed => match r.close_code {
            Some(c) => format!("closed {c} ({})", crate::protocol::close_code::meaning(c)),
            None => "closed (no code)".to_string(),
        },
    }
}

/// The close reason (as visible text) and who closed, for the state cell's tooltip.
fn close_detail(r: &ConnRow) -> String {
    let reason = format::visible(r.close_reason.as_deref().unwrap_or_default());
    let by = r
        .closed_by
        .map(|b| format!("by {}", b.as_str()))
        .unwrap_or_default();
    format!("{reason} {by}")
}
