//! Pure formatting helpers for the dashboard (sizes, durations, close codes).

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `3725_000` ms → `1h 2m`; under a minute shows seconds.
pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Thousands separators: `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `HH:MM:SS.mmm` (UTC) of a microsecond timestamp.
pub fn clock_us(ts_us: u64) -> String {
    let ms = ts_us / 1000;
    let day_ms = ms % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        (day_ms / 60_000) % 60,
        (day_ms / 1000) % 60,
        day_ms % 1000
    )
}

/// A tap's payload capture mode as the inspector states it.
pub fn capture(mode: Option<crate::protocol::Capture>, bytes_cap: Option<u64>) -> String {
    use crate::protocol::Capture;
    let cap = bytes_cap.map(bytes).unwrap_or_else(|| "a limit".into());
    match mode {
        None => "not stated by the tap".into(),
        Some(Capture::Off) => "off: messages are not recorded".into(),
        Some(Capture::Metadata) => "metadata only: payloads are not captured".into(),
        Some(Capture::Truncated) => {
            format!("truncated: the first {cap} of each payload, after masking")
        }
        Some(Capture::Full) => format!("full: whole payloads up to {cap}, after masking"),
    }
}

/// Splits text around the redaction sentinel: `(piece, is_sentinel)` in order.
pub fn redaction_parts(text: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(crate::decode::REDACTED) {
        if i > 0 {
            out.push((&rest[..i], false));
        }
        out.push((&rest[i..i + crate::decode::REDACTED.len()], true));
        rest = &rest[i + crate::decode::REDACTED.len()..];
    }
    if !rest.is_empty() {
        out.push((rest, false));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_is_explained() {
        use crate::protocol::Capture;
        assert_eq!(
            capture(Some(Capture::Metadata), None),
            "metadata only: payloads are not captured"
        );
        assert_eq!(
            capture(Some(Capture::Truncated), Some(4096)),
            "truncated: the first 4.0 KiB of each payload, after masking"
        );
        assert_eq!(capture(None, None), "not stated by the tap");
        assert_eq!(
            redaction_parts(r#"{"a":"[REDACTED]","b":[REDACTED]}"#),
            vec![
                (r#"{"a":""#, false),
                ("[REDACTED]", true),
                (r#"","b":"#, false),
                ("[REDACTED]", true),
                ("}", false)
            ]
        );
        assert!(redaction_parts("").is_empty());
    }

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 20), "5.0 MiB");
        assert_eq!(duration_ms(59_999), "59s");
        assert_eq!(duration_ms(3_725_000), "1h 2m");
        assert_eq!(duration_ms(90_061_000), "1d 1h");
        assert_eq!(count(0), "0");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(clock_us(3_723_004_000), "01:02:03.004");
    }
}
