//! The Redactor never panics, never captures more than asked, and for every input that is
//! valid JSON the output is valid JSON in which every value under a masked key, at any depth,
//! is "[REDACTED]" (checked against serde_json's reading of the output).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sockscope_payload::redact::{RedactConfig, Redactor, DEFAULT_MASK_KEYS};
use sockscope_payload::REDACTED;
use std::sync::OnceLock;

fn redactors() -> &'static (Redactor, Redactor) {
    static R: OnceLock<(Redactor, Redactor)> = OnceLock::new();
    R.get_or_init(|| {
        let with_regex = Redactor::new(&RedactConfig {
            mask_regex: vec![r"\d{4}-\d{4}".into(), r"(?i)bearer \S+".into()],
            ..RedactConfig::default()
        })
        .unwrap();
        (Redactor::default(), with_regex)
    })
}

fn masked(key: &str) -> bool {
    DEFAULT_MASK_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
}

/// Every value under a masked key is the sentinel.
fn check(v: &Value, input: &str, output: &str) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                if masked(k) {
                    assert_eq!(
                        val,
                        &Value::String(REDACTED.into()),
                        "key {k:?} not masked\ninput:  {input}\noutput: {output}"
                    );
                } else {
                    check(val, input, output);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| check(i, input, output)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (keys_only, with_regex) = redactors();
    let cap = data.first().map_or(0, |b| *b as usize * 4);
    for r in [keys_only, with_regex] {
        let _ = r.redact_bytes(data);
        let c = r.capture_bytes(data, cap);
        assert!(c.payload.len() <= cap);
        if let Ok(text) = std::str::from_utf8(data) {
            let c = r.capture_text(text, cap);
            assert!(c.payload.len() <= cap);
            let _ = r.redact_path(text);
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if serde_json::from_str::<Value>(text).is_err() {
        return;
    }
    let (out, _) = keys_only.redact_str(text);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("output is not JSON ({e})\ninput:  {text}\noutput: {out}"));
    check(&v, text, &out);
});
