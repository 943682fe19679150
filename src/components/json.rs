//! A collapsible JSON tree. Keys and values are text nodes only.

use leptos::prelude::*;
use serde_json::Value;

fn scalar(v: &Value) -> (String, &'static str) {
    match v {
        Value::Null => ("null".into(), "j-null"),
        Value::Bool(b) => (b.to_string(), "j-bool"),
        Value::Number(n) => (n.to_string(), "j-num"),
        // Masked by the tap: shown as such, not as a string the app sent.
        Value::String(s) if s == crate::decode::REDACTED => (s.clone(), "j-redacted"),
        Value::String(s) => (format!("{s:?}"), "j-str"),
        _ => (String::new(), ""),
    }
}

/// Renders `value` under `label`; objects and arrays fold, the first two levels open.
#[component]
pub fn JsonTree(
    value: Value,
    #[prop(optional)] label: Option<String>,
    #[prop(default = 0)] depth: usize,
) -> impl IntoView {
    let key = label.map(|l| view! { <span class="j-key">{l}": "</span> });
    match value {
        Value::Object(map) => {
            let n = map.len();
            let children = map
                .into_iter()
                .map(|(k, v)| view! { <li><JsonTree value=v label=k depth=depth + 1/></li> })
                .collect_view();
            view! {
                <details class="j-node" open=depth < 2>
                    <summary>{key}{format!("{{…}} {n} keys")}</summary>
                    <ul>{children}</ul>
                </details>
            }
            .into_any()
        }
        Value::Array(items) => {
            let n = items.len();
            let children = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| view! { <li><JsonTree value=v label=i.to_string() depth=depth + 1/></li> })
                .collect_view();
            view! {
                <details class="j-node" open=depth < 2>
                    <summary>{key}{format!("[…] {n} items")}</summary>
                    <ul>{children}</ul>
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
