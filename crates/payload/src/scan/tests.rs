//! The JSON scanner's edits: in place, on cut documents, refusals and prefixes.

use super::*;

fn keys() -> KeySet {
    KeySet::new(&["password".into(), "token".into()]).unwrap()
}

fn mask(t: &str) -> Option<String> {
    json_edits(t, &keys(), usize::MAX).map(|(e, _)| apply_str(t, &e))
}

#[test]
fn masks_values_in_place() {
    assert_eq!(
        mask(r#"{ "a" : 1, "Password":  {"x":[1,2]} ,"b":"c"}"#).unwrap(),
        r#"{ "a" : 1, "Password":  "[REDACTED]" ,"b":"c"}"#
    );
    assert_eq!(
        mask(r#"[1,true,null,"x"]"#).unwrap(),
        r#"[1,true,null,"x"]"#
    );
    assert_eq!(
        mask(r#"{"pass\u0077ord":-1.5e3}"#).unwrap(),
        r#"{"pass\u0077ord":"[REDACTED]"}"#
    );
}

#[test]
fn cut_documents_mask_to_the_end() {
    assert_eq!(
        mask(r#"{"a":1,"token":"abc"#).unwrap(),
        r#"{"a":1,"token":"[REDACTED]""#
    );
    assert_eq!(mask(r#"{"token":12"#).unwrap(), r#"{"token":"[REDACTED]""#);
    assert_eq!(mask(r#"{"token":tr"#).unwrap(), r#"{"token":"[REDACTED]""#);
    assert_eq!(mask(r#"{"token":"#).unwrap(), r#"{"token":"#);
    assert_eq!(mask(r#"{"tok"#).unwrap(), r#"{"tok"#);
}

#[test]
fn not_json_is_refused() {
    assert_eq!(mask("password=1"), None);
    assert_eq!(mask(r#"{"token" 1}"#), None);
    assert_eq!(mask(r#"{"a":1]"#), None);
    assert_eq!(mask(r#"{"token":tx}"#), None);
    let deep = "[".repeat(MAX_DEPTH + 2);
    assert_eq!(mask(&deep), None);
}

#[test]
fn prefixes_are_skipped() {
    assert_eq!(socketio_prefix(b"42[1]"), 2);
    assert_eq!(socketio_prefix(b"451-[1]"), 4);
    assert_eq!(socketio_prefix(b"42/admin,13[1]"), 11);
    assert_eq!(socketio_prefix(b"40/admin"), 8);
    assert_eq!(socketio_prefix(b"[1]"), 0);
}
