//! "Search the record": connections by time range, state, close code or class, source,
//! address and text, answered from the record and shown in a table (a row jumps the
//! dashboard to that moment), or downloaded as CSV, NDJSON or HAR.

use crate::dashboard::controls::ViewControls;
use crate::dashboard::format;
use crate::dashboard::history_search::{parse_utc, HistoryAnswer, HistorySearch};
use leptos::prelude::*;

#[component]
pub(crate) fn HistoryPanel() -> impl IntoView {
    let controls = expect_context::<ViewControls>();
    let (from, to) = (RwSignal::new(String::new()), RwSignal::new(String::new()));
    let state = RwSignal::new("closed".to_string());
    let close = RwSignal::new(String::new());
    let source = RwSignal::new(String::new());
    let ip = RwSignal::new(String::new());
    let text = RwSignal::new(String::new());
    let answer: RwSignal<Option<Result<HistoryAnswer, String>>> = RwSignal::new(None);
    let search = move || -> Result<HistorySearch, String> {
        let time = |label: &str, v: String| -> Result<Option<u64>, String> {
            match v.trim() {
                "" => Ok(None),
                t => parse_utc(t)
                    .map(Some)
                    .ok_or_else(|| format!("“{label}” {t:?} is not a date and time")),
            }
        };
        Ok(HistorySearch {
            from_ms: time("from", from.get())?,
            to_ms: time("to", to.get())?,
            state: state.get(),
            close: close.get(),
            source: source.get(),
            ip: ip.get(),
            text: text.get(),
        })
    };
    let download = move |f: &'static str| search().and_then(|s| s.url(Some(f))).unwrap_or_default();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match search().and_then(|s| s.url(None)) {
            Err(e) => answer.set(Some(Err(e))),
            Ok(url) => {
                #[cfg(feature = "hydrate")]
                leptos::task::spawn_local(async move {
                    answer.set(Some(fetch_answer(&url).await));
                });
                #[cfg(not(feature = "hydrate"))]
                let _ = url;
            }
        }
    };
    let field = |sig: RwSignal<String>| move |ev| sig.set(event_target_value(&ev));
    let rows = move || {
        match answer.get() {
        None => view! { <p class="hint">"Closed with 1006 in the last hour? Pick a code or class and a window."</p> }.into_any(),
        Some(Err(e)) => view! { <p class="error" data-testid="history-error">{e}</p> }.into_any(),
        Some(Ok(a)) if a.items.is_empty() => view! { <p class="hint" data-testid="history-empty">"Nothing in the record matches."</p> }.into_any(),
        Some(Ok(a)) => {
            let more = a.truncated.then(|| view! { <p class="hint">"More matched: narrow the search or download it."</p> });
            let items = a.items.into_iter().map(|c| {
                let at = c.closed_ms.unwrap_or(c.opened_ms);
                let code = c.close_code.map(|k| k.to_string()).unwrap_or_else(|| if c.closed_ms.is_some() { "—".into() } else { "open".into() });
                let last = c.last_messages.last().and_then(|m| m.text.clone()).unwrap_or_default();
                view! {
                    <tr data-testid="history-row" title="show the dashboard at this moment" on:click=move |_| controls.at.set(Some(at))>
                        <td>{format::visible(&c.source)}</td>
                        <td class="num">{c.conn}</td>
                        <td>{format::visible(&c.ip)}</td>
                        <td class="path">{format::visible(&c.path)}</td>
                        <td>{format::clock(c.opened_ms)}</td>
                        <td>{c.closed_ms.map(format::clock).unwrap_or_default()}</td>
                        <td class="num" data-testid="history-code">{code}</td>
                        <td class="num">{format::count(c.msgs_in)} " / " {format::count(c.msgs_out)}</td>
                        <td class="payload">{format::visible(&last)}</td>
                    </tr>
                }
            }).collect_view();
            view! {
                <table class="history" data-testid="history-table">
                    <thead><tr><th>"source"</th><th>"conn"</th><th>"address"</th><th>"path"</th><th>"opened"</th><th>"closed"</th><th>"code"</th><th>"msgs in / out"</th><th>"last message"</th></tr></thead>
                    <tbody>{items}</tbody>
                </table>
                {more}
            }.into_any()
        }
    }
    };
    view! {
        <details class="card history-search" data-testid="history-search">
            <summary>"Search the record"</summary>
            <form class="history-form" on:submit=submit>
                <label>"from (UTC)" <input type="datetime-local" step="1" data-testid="history-from" on:input=field(from)/></label>
                <label>"to (UTC)" <input type="datetime-local" step="1" data-testid="history-to" on:input=field(to)/></label>
                <select data-testid="history-state" on:change=field(state) prop:value=move || state.get()>
                    <option value="closed">"closed"</option>
                    <option value="open">"open"</option>
                    <option value="all">"all"</option>
                </select>
                <input type="search" class="narrow" placeholder="code or class" data-testid="history-close" on:input=field(close)/>
                <input type="search" class="narrow" placeholder="source" on:input=field(source)/>
                <input type="search" class="narrow" placeholder="address or CIDR" data-testid="history-ip" on:input=field(ip)/>
                <input type="search" placeholder="address, agent or path text" on:input=field(text)/>
                <button type="submit" data-testid="history-go">"Search"</button>
                <a data-testid="history-csv" href=move || download("csv") download="history.csv">"CSV"</a>
                <a href=move || download("ndjson") download="history.ndjson">"NDJSON"</a>
                <a data-testid="history-har" href=move || download("har") download="history.har">"HAR"</a>
            </form>
            {rows}
        </details>
    }
}

/// Fetches a search's answer; an error says what went wrong.
#[cfg(feature = "hydrate")]
async fn fetch_answer(url: &str) -> Result<HistoryAnswer, String> {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|_| "the observer could not be reached".to_string())?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "not a response")?;
    let body = JsFuture::from(resp.text().map_err(|_| "no body")?)
        .await
        .ok()
        .and_then(|t| t.as_string())
        .unwrap_or_default();
    if !resp.ok() {
        // The API's errors are JSON with a message that names the problem.
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        return Err(format!("{}: {message}", resp.status()));
    }
    serde_json::from_str(&body).map_err(|e| format!("unexpected answer: {e}"))
}
