//! What masking costs on the tap's hot path, per message (`cargo bench -p sockscope-payload`).
//! Compares against copying the captured prefix, which is what the tap did before redaction.

use sockscope_payload::redact::{RedactConfig, Redactor};
use std::hint::black_box;
use std::time::Instant;

fn per_op(label: &str, iters: u32, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / iters as f64;
    println!("{label:<58} {ns:>9.0} ns/message");
}

/// About 1 KiB of chat-like JSON with no masked key.
fn no_hit() -> String {
    let mut s = String::from(r#"{"type":1,"target":"SendMessage","arguments":["#);
    while s.len() < 1000 {
        s.push_str(r#"{"user":"alice","text":"hello there, how are you doing"},"#);
    }
    s.push_str(r#"{"user":"bob"}]}"#);
    s
}

fn main() {
    let cap = 4096;
    let quiet = no_hit();
    let hit = quiet.replacen(r#""user":"bob""#, r#""user":"bob","password":"hunter2""#, 1);
    let signalr = format!("{hit}\u{1e}");
    let escaped = quiet.replacen("hello", "h\\u00e9llo", 1);
    let defaults = Redactor::default();
    let regexes = Redactor::new(&RedactConfig {
        mask_regex: vec![
            r"\b\d{4}-\d{4}-\d{4}-\d{4}\b".into(),
            r"(?i)bearer [a-z0-9._-]+".into(),
        ],
        ..RedactConfig::default()
    })
    .unwrap();
    let n = 200_000;
    println!(
        "payloads: {} B without a key, {} B with one",
        quiet.len(),
        hit.len()
    );
    per_op("copy of the captured prefix (before redaction)", n, || {
        black_box(black_box(quiet.as_bytes())[..cap.min(quiet.len())].to_vec());
    });
    per_op(
        "default keys, 1 KiB, no key (pre-scan only) + copy",
        n,
        || {
            black_box(
                defaults
                    .capture_text(black_box(&quiet), cap)
                    .payload
                    .into_owned(),
            );
        },
    );
    per_op("default keys, 1 KiB, one password (scan + mask)", n, || {
        black_box(
            defaults
                .capture_text(black_box(&hit), cap)
                .payload
                .into_owned(),
        );
    });
    per_op(
        "default keys, 1 KiB SignalR record, one password",
        n,
        || {
            black_box(
                defaults
                    .capture_text(black_box(&signalr), cap)
                    .payload
                    .into_owned(),
            );
        },
    );
    per_op(
        "default keys, 1 KiB with a \\u escape (scanned, nothing masked)",
        n,
        || {
            black_box(
                defaults
                    .capture_text(black_box(&escaped), cap)
                    .payload
                    .into_owned(),
            );
        },
    );
    per_op("default keys + 2 regexes, 1 KiB, no key", n, || {
        black_box(
            regexes
                .capture_text(black_box(&quiet), cap)
                .payload
                .into_owned(),
        );
    });
    let big = no_hit().repeat(64);
    per_op("default keys, 64 KiB, no key, cap 4 KiB", n / 20, || {
        black_box(
            defaults
                .capture_text(black_box(&big), cap)
                .payload
                .into_owned(),
        );
    });
    let big_hit = format!("{}{}", hit, big);
    per_op(
        "default keys, 65 KiB, password first, cap 4 KiB",
        n / 20,
        || {
            black_box(
                defaults
                    .capture_text(black_box(&big_hit), cap)
                    .payload
                    .into_owned(),
            );
        },
    );
    // What the proxy benchmark sends: one byte repeated, binary; the proxy hands the tap
    // only the captured prefix.
    let filler = vec![b'x'; cap];
    per_op(
        "default keys, 4 KiB binary of one byte (proxy bench)",
        n / 10,
        || {
            black_box(
                defaults
                    .capture_bytes(black_box(&filler), cap)
                    .payload
                    .into_owned(),
            );
        },
    );
    let prose = "The quick brown fox jumps over the lazy dog; hello there, how are you? "
        .repeat(cap / 70 + 1);
    per_op("default keys, 4 KiB of prose, no key", n / 10, || {
        black_box(
            defaults
                .capture_text(black_box(&prose[..cap]), cap)
                .payload
                .into_owned(),
        );
    });
}
