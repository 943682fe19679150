//! Masking secrets before a payload leaves the tap, then cutting it to the capture limit.
//!
//! A [`Redactor`] masks, in this order:
//! 1. **JSON keys** ([`RedactConfig::mask_keys`], compared ASCII case-insensitively): the value
//!    of every matching key, at any depth and whatever its type, becomes `"[REDACTED]"`. This
//!    works on plain JSON, SignalR JSON hub frames (records separated by 0x1E), Socket.IO /
//!    Engine.IO packets (`42["event",{…}]`), JSON held in a string value (`"{\"token\":…}"`),
//!    and documents cut short. A pre-scan (Aho-Corasick) for the key names comes first: a
//!    payload that holds none of them is not parsed at all. Text that is not JSON, and binary
//!    payloads that are not UTF-8, fall back to a byte regex masking `"key": <string, number
//!    or literal>` (fail closed).
//! 2. **Regexes** ([`RedactConfig::mask_regex`]): every match becomes `[REDACTED]`, on text and
//!    binary payloads alike. They run on the payload as sent, so a match is never hidden by
//!    key masking.
//!
//! [`Redactor::capture_text`] / [`Redactor::capture_bytes`] mask first and cut afterwards, so a
//! truncated payload never shows half a secret. Masking looks at the captured length plus
//! [`MASK_LOOKAHEAD`] bytes: enough to see a value that starts in the captured part whole,
//! while a huge message costs no more than that.

use crate::scan::{apply, json_edits, Edit, KeySet, Replacement};
use crate::textpat::TextPatterns;
use regex::bytes::Regex;
use std::borrow::Cow;
use std::cmp::Reverse;

/// JSON keys masked unless configured otherwise. Matching is ASCII case-insensitive, so
/// `accessToken` also masks `AccessToken` and `ACCESSTOKEN`; `_` and `-` are significant.
pub const DEFAULT_MASK_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "accessToken",
    "refresh_token",
    "refreshToken",
    "id_token",
    "idToken",
    "api_key",
    "apiKey",
    "api-key",
    "x-api-key",
    "authorization",
    "cookie",
    "set-cookie",
    "session",
    "session_id",
    "sessionId",
    "private_key",
    "jwt",
    "auth",
    "sig",
    "signature",
    "ticket",
    "passcode",
    "bearer",
];

/// Bytes past the capture limit that masking still reads.
pub const MASK_LOOKAHEAD: usize = 64 * 1024;

/// What to mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedactConfig {
    /// JSON object keys whose values are masked (ASCII case-insensitive). Empty: none.
    pub mask_keys: Vec<String>,
    /// Regular expressions (Rust `regex` syntax) whose matches are masked. Empty: none.
    pub mask_regex: Vec<String>,
}

impl Default for RedactConfig {
    /// [`DEFAULT_MASK_KEYS`], no regex.
    fn default() -> Self {
        RedactConfig {
            mask_keys: DEFAULT_MASK_KEYS.iter().map(|k| k.to_string()).collect(),
            mask_regex: Vec::new(),
        }
    }
}

impl RedactConfig {
    /// Masks nothing.
    pub fn none() -> Self {
        RedactConfig {
            mask_keys: Vec::new(),
            mask_regex: Vec::new(),
        }
    }
}

/// A mask regex that cannot be used, named.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("mask regex {pattern:?} is not a valid regular expression: {message}")]
    BadRegex { pattern: String, message: String },
    #[error("mask regex {pattern:?} matches the empty string, so it would mask between every character; make it match at least one (e.g. `+` instead of `*`)")]
    MatchesEmpty { pattern: String },
}

/// A captured payload: masked, then cut to the limit.
pub struct Capture<'a, T: ?Sized + ToOwned> {
    /// Borrowed when nothing was masked.
    pub payload: Cow<'a, T>,
    /// Shorter than the (masked) payload.
    pub truncated: bool,
    /// Masked values in the captured part.
    pub redacted: u32,
}

impl<T: ?Sized + ToOwned + std::fmt::Debug> std::fmt::Debug for Capture<'_, T>
where
    T::Owned: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("payload", &self.payload)
            .field("truncated", &self.truncated)
            .field("redacted", &self.redacted)
            .finish()
    }
}

/// Masks secrets in payloads; cheap to share (`Sync`), built once per tap.
#[derive(Debug)]
pub struct Redactor {
    keys: Option<KeySet>,
    /// `"key": scalar` for text that is not JSON.
    fallback: Option<Regex>,
    /// Every mask regex as one alternation: one pass per payload.
    user: Option<Regex>,
    /// Secrets in text that is not JSON, found whenever keys are masked: `Authorization:
    /// Bearer …`, header lines (`passcode:…`, STOMP), form fields (`password=…`, names
    /// percent-encoded or not), and JWT-shaped strings anywhere.
    text: Option<TextPatterns>,
}

impl Default for Redactor {
    /// Masks [`DEFAULT_MASK_KEYS`].
    fn default() -> Self {
        Redactor::new(&RedactConfig::default()).expect("the defaults are valid")
    }
}

impl Redactor {
    pub fn new(cfg: &RedactConfig) -> Result<Redactor, RedactError> {
        let keys = KeySet::new(&cfg.mask_keys);
        let fallback = keys.as_ref().map(|k| {
            let alt: Vec<String> = k.keys().map(regex::escape).collect();
            Regex::new(&format!(
                r#"(?is-u)"(?:{})"\s*:\s*("(?:[^"\\]|\\.)*"?|-?[0-9][0-9.eE+\-]*|true|false|null)"#,
                alt.join("|")
            ))
            .expect("escaped literals build")
        });
        let mut parts = Vec::new();
        for p in cfg.mask_regex.iter().filter(|p| !p.is_empty()) {
            let re = Regex::new(p).map_err(|e| RedactError::BadRegex {
                pattern: p.clone(),
                message: e.to_string(),
            })?;
            if re.is_match(b"") {
                return Err(RedactError::MatchesEmpty { pattern: p.clone() });
            }
            parts.push(format!("(?:{p})"));
        }
        let user = (!parts.is_empty()).then(|| {
            Regex::new(&parts.join("|")).expect("an alternation of valid regexes is valid")
        });
        let text = keys.as_ref().map(|k| TextPatterns::new(k.keys()));
        Ok(Redactor {
            keys,
            fallback,
            user,
            text,
        })
    }

    /// True when nothing is ever masked.
    pub fn is_noop(&self) -> bool {
        self.keys.is_none() && self.user.is_none()
    }

    /// Masks a text payload, then keeps at most `cap` bytes (at a character boundary).
    pub fn capture_text<'a>(&self, text: &'a str, cap: usize) -> Capture<'a, str> {
        let end = floor_boundary(text, cap.saturating_add(MASK_LOOKAHEAD));
        let window = &text[..end];
        let (edits, done) = self.edits(window.as_bytes(), Some(window), cap);
        if edits.is_empty() {
            let cut = floor_boundary(text, cap.min(done));
            return Capture {
                payload: Cow::Borrowed(&text[..cut]),
                truncated: cut < text.len(),
                redacted: 0,
            };
        }
        let a = apply(window.as_bytes(), &edits, done);
        // Only a byte-level regex (`(?-u)`) can cut a character; such a cut shows as U+FFFD.
        let mut s = String::from_utf8(a.out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let cut = floor_boundary(&s, cap.min(a.upto));
        let truncated = cut < s.len() || end < text.len();
        s.truncate(cut);
        Capture {
            payload: Cow::Owned(s),
            truncated,
            redacted: counted(&a.marks, cut),
        }
    }

    /// Masks a binary payload (as text when it is UTF-8), then keeps at most `cap` bytes.
    pub fn capture_bytes<'a>(&self, bytes: &'a [u8], cap: usize) -> Capture<'a, [u8]> {
        let end = bytes.len().min(cap.saturating_add(MASK_LOOKAHEAD));
        let window = &bytes[..end];
        let text = match std::str::from_utf8(window) {
            Ok(t) => Some(t),
            // Valid but for a character cut by the window.
            Err(e) if e.error_len().is_none() => {
                std::str::from_utf8(&window[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        let (edits, done) = self.edits(window, text, cap);
        if edits.is_empty() {
            let cut = bytes.len().min(cap).min(done);
            return Capture {
                payload: Cow::Borrowed(&bytes[..cut]),
                truncated: cut < bytes.len(),
                redacted: 0,
            };
        }
        let mut a = apply(window, &edits, done);
        let cut = a.out.len().min(cap).min(a.upto);
        let truncated = cut < a.out.len() || end < bytes.len();
        a.out.truncate(cut);
        Capture {
            payload: Cow::Owned(a.out),
            truncated,
            redacted: counted(&a.marks, cut),
        }
    }

    /// Masks a whole text (no limit); returns it and the number of masked values.
    pub fn redact_str<'a>(&self, text: &'a str) -> (Cow<'a, str>, u32) {
        let (edits, _) = self.edits(text.as_bytes(), Some(text), usize::MAX);
        finish_str(text, &edits)
    }

    /// Masks a whole binary payload (no limit).
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> (Cow<'a, [u8]>, u32) {
        let c = self.capture_bytes(bytes, usize::MAX);
        (c.payload, c.redacted)
    }

    /// Masks a request path: the values of query parameters named like a mask key
    /// (`?access_token=…`, as browsers' WebSocket clients send tokens), then regex matches.
    pub fn redact_path<'a>(&self, path: &'a str) -> (Cow<'a, str>, u32) {
        let mut edits = Vec::new();
        if let (Some(keys), Some(q)) = (&self.keys, path.find('?')) {
            let mut at = q + 1;
            for pair in path[q + 1..].split('&') {
                if let Some((name, value)) = pair.split_once('=') {
                    if !value.is_empty() && keys.is_masked(&percent_decoded(name)) {
                        let start = at + name.len() + 1;
                        edits.push(Edit {
                            range: start..start + value.len(),
                            with: Replacement::Match,
                            keys: 1,
                        });
                    }
                }
                at += pair.len() + 1;
            }
        }
        // The query's own pass covers the built-in form-field pattern.
        let edits = merge(edits, self.regex_edits(path.as_bytes(), None));
        finish_str(path, &edits)
    }

    /// Every edit for `window`, sorted and without overlaps, for a capture of `cap` bytes;
    /// and up to where the window is masked (beyond it nothing can reach the capture).
    /// `text` is the window (or its prefix up to a cut character) when it is UTF-8.
    fn edits(&self, window: &[u8], text: Option<&str>, cap: usize) -> (Vec<Edit>, usize) {
        let matches = self.regex_edits(window, Some(cap));
        // Regex replacements that shorten the payload pull later bytes into the capture.
        let limit = cap.saturating_add(saved(&matches));
        let Some(keys) = &self.keys else {
            return (matches, window.len());
        };
        // A masked value needs its key before it: no key in the first `limit` bytes (and a
        // little more, for a key the limit cuts) means nothing to mask there.
        let scanned = window.len().min(limit.saturating_add(keys.max_len() + 2));
        if !keys.may_hold(&window[..scanned]) {
            return (matches, scanned);
        }
        let (keyed, done) = match text.and_then(|t| json_edits(t, keys, limit)) {
            Some(found) => found,
            None => (self.fallback_edits(window), window.len()),
        };
        (merge(keyed, matches), done)
    }

    fn fallback_edits(&self, window: &[u8]) -> Vec<Edit> {
        let Some(re) = &self.fallback else {
            return Vec::new();
        };
        re.captures_iter(window)
            .filter_map(|c| c.get(1))
            .filter(|m| !m.is_empty())
            .map(|m| Edit {
                range: m.range(),
                with: Replacement::Value,
                keys: 1,
            })
            .collect()
    }

    /// User regex matches, and for a capture of `cap` bytes the built-in text patterns'
    /// values that can reach it.
    fn regex_edits(&self, window: &[u8], cap: Option<usize>) -> Vec<Edit> {
        let user: Vec<Edit> = match &self.user {
            Some(re) => re
                .find_iter(window)
                .filter(|m| !m.is_empty())
                .map(|m| Edit {
                    range: m.range(),
                    with: Replacement::Match,
                    keys: 0,
                })
                .collect(),
            None => Vec::new(),
        };
        let (Some(text), Some(cap)) = (&self.text, cap) else {
            return user;
        };
        // User matches that shorten the payload pull later bytes into the capture.
        let limit = cap.saturating_add(saved(&user));
        merge(text.edits(window, limit), user)
    }
}

/// A query parameter's name with `%XX` escapes decoded (`access%5Ftoken` → `access_token`).
fn percent_decoded(name: &str) -> Cow<'_, str> {
    if !name.contains('%') {
        return Cow::Borrowed(name);
    }
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn finish_str<'a>(text: &'a str, edits: &[Edit]) -> (Cow<'a, str>, u32) {
    if edits.is_empty() {
        return (Cow::Borrowed(text), 0);
    }
    let a = apply(text.as_bytes(), edits, text.len());
    let s = String::from_utf8(a.out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (Cow::Owned(s), counted(&a.marks, usize::MAX))
}

/// Values whose replacement starts before `cut`.
fn counted(marks: &[(usize, u32)], cut: usize) -> u32 {
    marks
        .iter()
        .filter(|(at, _)| *at < cut)
        .map(|(_, n)| n)
        .sum()
}

/// The largest character boundary of `s` at or below `n`.
fn floor_boundary(s: &str, n: usize) -> usize {
    if n >= s.len() {
        return s.len();
    }
    let mut n = n;
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Bytes the replacements of these regex matches save.
fn saved(matches: &[Edit]) -> usize {
    matches
        .iter()
        .map(|e| e.range.len().saturating_sub(crate::REDACTED.len()))
        .sum()
}

/// Key edits and regex edits as one sorted list without overlaps. Overlapping edits become one
/// covering both: it keeps a key edit's replacement when that edit spans the whole, and
/// counts the masked values of the key edits in it (at least one).
fn merge(a: Vec<Edit>, b: Vec<Edit>) -> Vec<Edit> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut all = a;
    all.extend(b);
    all.sort_by_key(|e| (e.range.start, Reverse(e.range.end)));
    let mut out: Vec<Edit> = Vec::with_capacity(all.len());
    for e in all {
        match out.last_mut() {
            Some(last) if e.range.start < last.range.end => {
                if e.range.end > last.range.end {
                    last.range.end = e.range.end;
                    last.with = Replacement::Match;
                }
                last.keys += e.keys;
            }
            _ => out.push(e),
        }
    }
    out
}
