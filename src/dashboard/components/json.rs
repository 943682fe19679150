//! A collapsible JSON tree. Keys and values are text nodes only; depth and breadth are capped
//! so hostile payloads cannot exhaust the page.

use leptos::prelude::*;
use serde_json::Value;

/// Levels of objects and arrays shown; deeper ones are summarized.
pub(super) const MAX_DEPTH: usize = 64;
/// Members of one object or array shown; the rest are counted.
pub(super) const MAX_CHILDREN: usize = 500;

/// The "… N more" entry after the first [`MAX_CHILDREN`] members.
fn more(n: usize) -> impl IntoView {
    (n > MAX_CHILDREN).then(|| {
        view! { <li class="j-more">{format!("… {} more not shown", n - MAX_CHILDREN)}</li> }
    })
}

fn scalar(v: &Value) -> (String, &'static str) {
    match v {
        Value::Null => ("null".into(), "j-null"),
        Value::Bool(b) => (b.to_string(), "j-bool"),
        Value::Number(n) => (n.to_string(), "j-num"),
        // Masked by the tap: shown as such, not as a string the app sent.
        Value::String(s) if s == sockscope_payload::REDACTED => (s.clone(), "j-redacted"),
        Value::String(s) => (format!("{s:?}"), "j-str"),
        _ => (String::new(), ""),
    }
}

/// Renders `value` under `label`; objects and arrays fold, the first two levels open.
#[component]
pub(super) fn JsonTree(
    value: Value,
    #[prop(optional)] label: Option<String>,
    #[prop(default = 0)] depth: usize,
) -> impl IntoView {
    let key = label
        .map(|l| view! { <span class="j-key">{crate::dashboard::format::visible(&l)}": "</span> });
    match value {
        Value::Object(_) | Value::Array(_) if depth >= MAX_DEPTH => {
            let what = match &value {
                Value::Object(m) => format!("{{…}} {} keys", m.len()),
                Value::Array(a) => format!("[…] {} items", a.len()),
                _ => String::new(),
            };
            view! {
                <span class="j-leaf">{key}{what}<span class="j-more">" — deeper levels not shown"</span></span>
            }
            .into_any()
        }
        Value::Object(map) => {
            let n = map.len();
            let children = map
                .into_iter()
                .take(MAX_CHILDREN)
                .map(|(k, v)| view! { <li><JsonTree value=v label=k depth=depth + 1/></li> })
                .collect_view();
            view! {
                <details class="j-node" open=depth < 2>
                    <summary>{key}{format!("{{…}} {n} keys")}</summary>
                    <ul>{children}{more(n)}</ul>
                </details>
            }
            .into_any()
        }
        Value::Array(items) => {
            let n = items.len();
            let children = items
                .into_iter()
                .enumerate()
                .take(MAX_CHILDREN)
                .map(|(i, v)| view! { <li><JsonTree value=v label=i.to_string() depth=depth + 1/></li> })
                .collect_view();
            view! {
                <details class="j-node" open=depth < 2>
                    <summary>{key}{format!("[…] {n} items")}</summary>
                    <ul>{children}{more(n)}</ul>
                </details>
            }
            .into_any()
        }
        other => {
            let (text, class) = scalar(&other);
            view! { <span class="j-leaf">{key}<span class=class>{text}</span></span> }.into_any()
        }
    }
}
