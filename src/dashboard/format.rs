//! Pure formatting helpers for the dashboard (sizes, durations, close codes) and the display
//! of untrusted text: control, bidi and invisible characters made visible.

use std::fmt::Write as _;

/// `1536` → `1.5 KiB`.
pub(crate) fn bytes(n: u64) -> String {
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

/// The record's card: size on disk, frames it could not keep, damage found at start; "off"
/// when the observer does not record.
pub(crate) fn recording(r: Option<&crate::protocol::RecordingView>) -> String {
    match r {
        None => "off (in memory only)".into(),
        Some(r) => format!(
            "{} · {} · {}",
            bytes(r.bytes),
            count(r.dropped),
            count(r.damaged)
        ),
    }
}

/// The bus card: the link, how many batches behind, how late the last one was read.
pub(crate) fn bus(b: Option<&crate::protocol::BusView>) -> String {
    match b {
        None => "no bus".into(),
        Some(b) => format!(
            "{} · {} batches · {} ms{}",
            if b.connected { "reading" } else { "down" },
            count(b.pending),
            b.lag_ms,
            match b.outages {
                0 => String::new(),
                n => format!(" · {n} outages"),
            }
        ),
    }
}

/// A moment as `2026-12-03 02:14:07 UTC` (ms since the epoch).
pub(crate) fn clock(ms: u64) -> String {
    let s = ms / 1000;
    let (days, rem) = (s / 86_400, s % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `3725_000` ms → `1h 2m`; under a minute shows seconds.
pub(crate) fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Thousands separators: `1234567` → `1,234,567`.
pub(crate) fn count(n: u64) -> String {
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
pub(crate) fn clock_us(ts_us: u64) -> String {
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
pub(crate) fn capture(mode: Option<crate::protocol::Capture>, bytes_cap: Option<u64>) -> String {
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

/// When a source's tap sends messages, for the sources table.
pub(crate) fn source_capture(
    mode: Option<crate::protocol::CaptureMode>,
    streaming: bool,
) -> String {
    use crate::protocol::CaptureMode;
    match (mode, streaming) {
        (Some(CaptureMode::OnDemand), true) => "on demand · streaming".into(),
        (Some(CaptureMode::OnDemand), false) => "on demand · counting".into(),
        (Some(CaptureMode::Full), _) | (None, _) => "full".into(),
    }
}

/// Splits text around the redaction sentinel: `(piece, is_sentinel)` in order.
pub(crate) fn redaction_parts(text: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(sockscope_payload::REDACTED) {
        if i > 0 {
            out.push((&rest[..i], false));
        }
        out.push((&rest[i..i + sockscope_payload::REDACTED.len()], true));
        rest = &rest[i + sockscope_payload::REDACTED.len()..];
    }
    if !rest.is_empty() {
        out.push((rest, false));
    }
    out
}

/// Whether `c` would be invisible, move the cursor or reorder the text around it: C0/C1
/// controls and DEL, bidi embeddings, overrides, isolates and marks, zero-width and other
/// invisible format characters, line/paragraph separators and Unicode tag characters.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{34f}'
                | '\u{61c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

fn show(s: &str, keep_breaks: bool) -> String {
    let hide = |c: char| hidden(c) && !(keep_breaks && (c == '\n' || c == '\t'));
    if !s.chars().any(hide) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c as u32 {
            _ if !hide(c) => out.push(c),
            // Control pictures: U+2400 + code for C0, U+2421 for DEL.
            n @ 0..=0x1f => out.push(char::from_u32(0x2400 + n).unwrap_or('\u{fffd}')),
            0x7f => out.push('\u{2421}'),
            n => {
                let _ = write!(out, "\\u{{{n:x}}}");
            }
        }
    }
    out
}

/// Untrusted text (user agents, paths, names, reasons, previews) for one line of the dashboard:
/// C0 controls and DEL become control pictures (`␀`, `␛`, `␊`), other control, bidi and
/// invisible characters become `\u{202e}`-style escapes. Everything else, markup included, is
/// left as it is: it is rendered as text.
pub(crate) fn visible(s: &str) -> String {
    show(s, false)
}

/// Like [`visible`], but keeps line breaks and tabs (for multi-line payload views).
pub(crate) fn visible_lines(s: &str) -> String {
    show(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_as_utc_dates_and_times() {
        assert_eq!(clock(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(clock(1_764_728_047_000), "2025-12-03 02:14:07 UTC");
        assert_eq!(clock(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn the_record_card_says_size_drops_and_damage_or_off() {
        assert_eq!(recording(None), "off (in memory only)");
        let r = crate::protocol::RecordingView {
            bytes: 3 << 20,
            dropped: 1200,
            damaged: 1,
            ..Default::default()
        };
        assert_eq!(recording(Some(&r)), "3.0 MiB · 1,200 · 1");
    }

    #[test]
    fn a_source_says_when_its_tap_streams() {
        use crate::protocol::CaptureMode;
        assert_eq!(source_capture(None, false), "full");
        assert_eq!(source_capture(Some(CaptureMode::Full), false), "full");
        assert_eq!(
            source_capture(Some(CaptureMode::OnDemand), false),
            "on demand · counting"
        );
        assert_eq!(
            source_capture(Some(CaptureMode::OnDemand), true),
            "on demand · streaming"
        );
    }

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

    #[test]
    fn visible_leaves_ordinary_text_and_markup_alone() {
        for s in [
            "",
            "Mozilla/5.0 (X11; Linux x86_64)",
            "<script>alert(1)</script>",
            "/chat?room=ü&x=\"><img src=x onerror=alert(1)>",
            "emoji 👩\u{1f3fd} and 日本語, combining e\u{301}",
        ] {
            assert_eq!(visible(s), s);
            assert_eq!(visible_lines(s), s);
        }
    }

    #[test]
    fn visible_shows_controls_as_pictures() {
        assert_eq!(visible("a\0b\x1b[31mc\x7f"), "a␀b␛[31mc␡");
        assert_eq!(visible("one\ntwo\tthree\r"), "one␊two␉three␍");
        assert_eq!(visible("\u{85}\u{9f}"), "\\u{85}\\u{9f}");
    }

    #[test]
    fn visible_escapes_bidi_and_invisible_characters() {
        assert_eq!(
            visible("invoice\u{202e}fdp.exe\u{202c}"),
            "invoice\\u{202e}fdp.exe\\u{202c}"
        );
        assert_eq!(
            visible("a\u{200b}b\u{feff}c\u{2060}d\u{2066}e\u{2069}\u{200f}"),
            "a\\u{200b}b\\u{feff}c\\u{2060}d\\u{2066}e\\u{2069}\\u{200f}"
        );
        assert_eq!(visible("x\u{2028}y\u{2029}"), "x\\u{2028}y\\u{2029}");
        assert_eq!(visible("soft\u{ad}hy"), "soft\\u{ad}hy");
        // Tag characters smuggle invisible ASCII.
        assert_eq!(visible("hi\u{e0041}\u{e0042}"), "hi\\u{e0041}\\u{e0042}");
    }

    #[test]
    fn visible_lines_keeps_line_breaks_and_tabs_only() {
        assert_eq!(
            visible_lines("a\nb\tc\r\n\u{202e}\0"),
            "a\nb\tc␍\n\\u{202e}␀"
        );
    }

    #[test]
    fn every_character_is_either_kept_or_shown_with_visible_ones() {
        for c in (0u32..0x11_0000).filter_map(char::from_u32) {
            let shown = visible(c.encode_utf8(&mut [0; 4]));
            if hidden(c) {
                assert_ne!(shown, c.to_string());
                assert!(!shown.chars().any(hidden), "{c:?} → {shown:?}");
            } else {
                assert_eq!(shown, c.to_string());
            }
        }
    }
}
