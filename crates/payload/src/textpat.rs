//! The built-in patterns for secrets in text that is not JSON (`Authorization: Bearer …`,
//! header lines, form fields, JWTs), behind a pre-scan: a payload where none of them can
//! match costs a few SIMD byte searches instead of a regex search (2 ns a byte here).

use crate::scan::{Edit, Replacement};
use regex::bytes::Regex;

/// What matches the patterns, and the names (lower-cased) they look for.
#[derive(Debug)]
pub(crate) struct TextPatterns {
    re: Regex,
    /// None when a name holds a byte [`TextPatterns::may_match`] splits words at, or a `%`:
    /// then the regex always runs.
    names: Option<Vec<Box<[u8]>>>,
    longest: usize,
    /// The bytes names are spelt with, either case, and those of `%5F` and `%2D`.
    spelt: [bool; 256],
}

/// The regex's `\s` without Unicode: ASCII whitespace and the vertical tab.
fn space(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0x0b
}

/// Bytes that end a name before a `:` or `=` (whitespace, and what may precede a form field).
fn splits(b: u8) -> bool {
    matches!(b, b':' | b'=' | b'?' | b'&' | b';') || space(b)
}

/// A base64url byte (a JWT's alphabet).
fn b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl TextPatterns {
    /// Patterns for these (lower-cased) key names.
    pub fn new<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> TextPatterns {
        let names: Vec<Box<[u8]>> = keys.clone().map(|k| k.as_bytes().into()).collect();
        // A `%` in a name would make its encoded form ambiguous to `is_name`.
        let plain = names.iter().flatten().all(|&b| !splits(b) && b != b'%');
        let mut spelt = [false; 256];
        for &b in names.iter().flat_map(|n| n.iter()).chain(b"%5fF2dD") {
            spelt[b.to_ascii_lowercase() as usize] = true;
            spelt[b.to_ascii_uppercase() as usize] = true;
        }
        TextPatterns {
            spelt,
            re: regex_for(keys),
            longest: names.iter().map(|n| n.len()).max().unwrap_or(0),
            names: plain.then_some(names),
        }
    }

    /// Edits for the values the patterns find in `window` that can reach its first `limit`
    /// bytes (others may come too). The regex runs only when [`Self::may_match`] says so.
    pub fn edits(&self, window: &[u8], limit: usize) -> Vec<Edit> {
        if !self.may_match(window, limit) {
            return Vec::new();
        }
        // The value group that matched (1-3), or the whole match for a JWT.
        self.re
            .captures_iter(window)
            .filter_map(|c| {
                let m = (1..=3).find_map(|i| c.get(i)).or_else(|| c.get(0))?;
                (!m.is_empty()).then(|| Edit {
                    range: m.range(),
                    with: Replacement::Match,
                    keys: 1,
                })
            })
            .collect()
    }

    /// False when no match of the patterns has an edit starting before `limit`, found with
    /// a few SIMD byte searches instead of the regex. Every pattern but the JWT has a `:` or
    /// `=` between its name and its value, so the name ends just before one of those (after
    /// optional whitespace) before `limit`; a JWT holds a `.` after a run that holds `eyJ`.
    fn may_match(&self, window: &[u8], limit: usize) -> bool {
        let Some(names) = &self.names else {
            return true;
        };
        let seps = &window[..window.len().min(limit)];
        for at in memchr::memchr2_iter(b':', b'=', seps) {
            let mut end = at;
            while end > 0 && space(window[end - 1]) {
                end -= 1;
            }
            if end >= 13 && window[end - 13..end].eq_ignore_ascii_case(b"authorization") {
                return true;
            }
            // A name is a whole word: only bytes names are spelt with (a `_` or `-` may be
            // percent-encoded), after a split byte or the start.
            let mut start = end;
            while start > 0
                && end - start <= 3 * self.longest
                && self.spelt[window[start - 1] as usize]
            {
                start -= 1;
            }
            if start < end
                && (start == 0 || splits(window[start - 1]))
                && is_name(names, &window[start..end])
            {
                return true;
            }
        }
        let mut from = 0;
        for dot in memchr::memchr_iter(b'.', window) {
            let mut run = dot;
            while run > from && b64(window[run - 1]) {
                run -= 1;
            }
            if run >= limit {
                break;
            }
            if window[run..dot]
                .windows(3)
                .any(|w| w.eq_ignore_ascii_case(b"eyj"))
            {
                return true;
            }
            from = dot + 1;
        }
        false
    }
}

/// Whether `word`, with `%5F` read as `_` and `%2D` as `-`, is one of `names` (ASCII case
/// aside), as the regex's name alternatives match it.
fn is_name(names: &[Box<[u8]>], word: &[u8]) -> bool {
    if memchr::memchr(b'%', word).is_none() {
        return names.iter().any(|k| k.eq_ignore_ascii_case(word));
    }
    let mut plain = Vec::with_capacity(word.len());
    let mut rest = word;
    while let [b, tail @ ..] = rest {
        let (byte, after) = match (b, tail) {
            (b'%', [b'5', b'f' | b'F', after @ ..]) => (b'_', after),
            (b'%', [b'2', b'd' | b'D', after @ ..]) => (b'-', after),
            _ => (*b, tail),
        };
        plain.push(byte);
        rest = after;
    }
    names.iter().any(|k| k.eq_ignore_ascii_case(&plain))
}

fn regex_for<'a>(keys: impl Iterator<Item = &'a str>) -> Regex {
    // A key as a form-field or header name: `_` and `-` may come percent-encoded.
    let names: Vec<String> = keys
        .map(|k| {
            regex::escape(k)
                .replace('_', "(?:_|%5[Ff])")
                .replace(r"\-", r"(?:\-|%2[Dd])")
        })
        .collect();
    let names = names.join("|");
    Regex::new(&format!(
        concat!(
            r"(?i-u)(?:",
            // Authorization: Bearer <token> (or Basic), in any text.
            r"\b(?:authorization|proxy-authorization)\s*[:=]\s*(?:bearer|basic|token)\s+([^\s,;]+)",
            // A header line `name: value` (STOMP `passcode:…`, HTTP-like text).
            r"|(?m:^[ \t]*(?:{names})[ \t]*:[ \t]*([^\r\n]+))",
            // A form field or query parameter `name=value`.
            r"|(?:^|[?&;\s])(?:{names})=([^&\s;]+)",
            // A JWT anywhere: three base64url parts, the first a JSON header.
            r"|\beyJ[A-Za-z0-9_-]{{4,}}\.[A-Za-z0-9_-]{{4,}}\.[A-Za-z0-9_-]{{4,}}",
            r")"
        ),
        names = names
    ))
    .expect("escaped key names build")
}

#[cfg(test)]
mod tests {
    use super::TextPatterns;
    use crate::redact::DEFAULT_MASK_KEYS;

    fn patterns() -> TextPatterns {
        let keys: Vec<String> = DEFAULT_MASK_KEYS
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        TextPatterns::new(keys.iter().map(|k| k.as_str()))
    }

    /// The pre-scan never hides a match the regex finds before the limit.
    #[test]
    fn pre_scan_lets_every_match_through() {
        let p = patterns();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let texts = [
            "Authorization: Bearer abc.def".to_string(),
            "GET /\r\nproxy-authorization  =  basic Zm9vOmJhcg==".to_string(),
            "CONNECT\npasscode:hunter2\n\n".to_string(),
            "  \tPassWord \t: hunter2".to_string(),
            "a=1&client%5Fsecret=s3cr3t&b=2".to_string(),
            "x-api%2Dkey=k".to_string(),
            "x%2dapi%2dkey=k".to_string(),
            "q?access_token=abc".to_string(),
            "login;pwd=1".to_string(),
            format!("token {jwt} end"),
            format!("-{jwt}"),
            format!("{{\"t\":\"{jwt}\"}}"),
            "EYJAAAAA.BBBBB.CCCCC".to_string(),
        ];
        for t in &texts {
            let b = t.as_bytes();
            assert!(p.re.is_match(b), "the regex finds something in {t:?}");
            assert!(p.may_match(b, b.len()), "pre-scan passes {t:?}");
            assert!(!p.edits(b, b.len()).is_empty(), "{t:?} is masked");
        }
    }

    #[test]
    fn pre_scan_skips_what_cannot_match() {
        let p = patterns();
        let json =
            r#"{"type":1,"target":"SendMessage","arguments":[{"user":"alice","token":"x"}]}"#;
        let prose = "The quick brown fox: jumps over the lazy dog. Hello there = hi. ".repeat(50);
        let binary = vec![b'x'; 4096];
        for b in [json.as_bytes(), prose.as_bytes(), &binary] {
            assert!(
                !p.may_match(b, b.len()),
                "{:?}",
                String::from_utf8_lossy(&b[..40])
            );
        }
        // A name whose separator is past the limit cannot reach the capture.
        let late = format!("{}password=hunter2", "x ".repeat(100));
        assert!(!p.may_match(late.as_bytes(), 100));
        assert!(p.may_match(late.as_bytes(), late.len()));
        // A JWT that starts before the limit is found even when its dot is past it.
        let jwt = format!("{} eyJ{}.abcd.efgh", "x".repeat(10), "A".repeat(500));
        assert!(p.may_match(jwt.as_bytes(), 20));
        assert!(!p.may_match(jwt.as_bytes(), 5));
    }

    /// Differential: on many generated texts, the edits that start before the limit are the
    /// same with the pre-scan as with the regex alone.
    #[test]
    fn pre_scan_changes_no_edit_before_the_limit() {
        let p = patterns();
        let parts = [
            "password",
            "=",
            ":",
            " ",
            "\n",
            "eyJ",
            "abcd",
            ".",
            "%5F",
            "%2d",
            "access",
            "_",
            "token",
            "Authorization",
            "proxy-",
            "Bearer ",
            "x",
            "\"",
            "&",
            "?",
            ";",
            "-",
            "api",
            "key",
            "\t",
            "\u{b}",
            "pWd",
            "é",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let alone = TextPatterns {
            names: None,
            ..patterns()
        };
        let mut found = 0;
        for _ in 0..40_000 {
            let text: String = (0..1 + next(14))
                .map(|_| parts[next(parts.len())])
                .collect();
            let b = text.as_bytes();
            let limit = next(b.len() + 1);
            let before = |edits: Vec<crate::scan::Edit>| -> Vec<_> {
                edits
                    .into_iter()
                    .filter(|e| e.range.start < limit)
                    .map(|e| e.range)
                    .collect()
            };
            let want = before(alone.edits(b, limit));
            found += usize::from(!want.is_empty());
            assert_eq!(before(p.edits(b, limit)), want, "{text:?} limit {limit}");
        }
        assert!(
            found > 250,
            "the texts exercise the patterns ({found} with edits)"
        );
    }
}
