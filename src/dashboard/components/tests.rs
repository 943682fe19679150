//! Rendering tests of the widgets that show untrusted payloads (server-side HTML, natively).

use super::json::{JsonTree, MAX_CHILDREN, MAX_DEPTH};
use leptos::prelude::*;
use serde_json::{json, Value};

fn html(value: Value) -> String {
    let owner = Owner::new();
    owner.with(|| view! { <JsonTree value=value/> }.to_html())
}

fn nested(levels: usize) -> Value {
    (0..levels).fold(json!("bottom"), |v, _| json!([v]))
}

#[test]
fn deep_json_stops_at_the_depth_limit_and_says_so() {
    let out = html(nested(MAX_DEPTH + 40));
    assert_eq!(out.matches("<details").count(), MAX_DEPTH);
    assert_eq!(out.matches("deeper levels not shown").count(), 1);
    assert!(!out.contains("bottom"));
}

#[test]
fn json_within_the_depth_limit_is_shown_whole() {
    let out = html(nested(MAX_DEPTH));
    assert_eq!(out.matches("<details").count(), MAX_DEPTH);
    assert!(out.contains("&quot;bottom&quot;") || out.contains("\"bottom\""));
    assert!(!out.contains("deeper levels not shown"));
}

#[test]
fn wide_json_shows_the_first_members_and_counts_the_rest() {
    let out = html(Value::Array(
        (0..MAX_CHILDREN + 7).map(|i| json!(i)).collect(),
    ));
    assert_eq!(out.matches("class=\"j-num\"").count(), MAX_CHILDREN);
    assert!(out.contains("… 7 more not shown"));
    let obj: serde_json::Map<String, Value> = (0..MAX_CHILDREN)
        .map(|i| (format!("k{i}"), json!(i)))
        .collect();
    assert!(!html(Value::Object(obj)).contains("more not shown"));
}

#[test]
fn keys_and_strings_are_escaped_text_with_hidden_characters_visible() {
    let out = html(json!({"<img src=x onerror=alert(1)>\u{202e}": "<script>alert(2)</script>"}));
    assert!(!out.contains("<img"), "{out}");
    assert!(!out.contains("<script"), "{out}");
    assert!(
        out.contains("&lt;img src=x onerror=alert(1)&gt;\\u{202e}"),
        "{out}"
    );
    assert!(!out.contains('\u{202e}'));
}
