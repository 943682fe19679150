//! Finds the byte ranges of JSON values under masked keys in one pass, so they can be replaced
//! in place: the rest of the payload stays byte for byte as sent (whitespace, key order,
//! number formatting). serde_json cannot report positions, hence this small scanner; strings
//! with escapes are still decoded by serde_json, and the fuzz target `redact` checks the
//! scanner against serde_json on every input it finds.

use memchr::memmem;
use std::ops::Range;

/// Nesting deeper than this is not scanned (the caller falls back to its regex), like
/// serde_json's own recursion limit.
pub(crate) const MAX_DEPTH: usize = 128;
/// Strings that hold JSON (`"{\"token\":…}"`) are looked into up to this many levels.
const MAX_NESTED: u32 = 2;

/// One change to a payload.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Edit {
    pub range: Range<usize>,
    pub with: Replacement,
    /// Values under masked keys this edit covers (0 for a regex match).
    pub keys: u32,
}

impl Edit {
    /// Values this edit counts as redacted.
    pub fn count(&self) -> u32 {
        self.keys.max(1)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Replacement {
    /// A JSON value: becomes the string `"[REDACTED]"`.
    Value,
    /// A regex match or query value: becomes the bare text `[REDACTED]`.
    Match,
    /// A JSON string holding JSON, re-encoded after its own masking.
    Text(String),
}

/// Why a scan stopped before the end.
#[derive(Debug, PartialEq)]
enum Stop {
    /// The text ended inside a value (a cut document). Edits found so far stand, and a masked
    /// value that was cut is masked to the end.
    Eof,
    /// Not JSON, or nested too deep.
    Syntax,
}

/// The masked key names and the pre-scan that looks for them.
#[derive(Debug)]
pub(crate) struct KeySet {
    /// Lower-cased.
    keys: Vec<Box<str>>,
    /// `by_len[n]`: the keys `n` bytes long.
    by_len: Vec<Vec<Box<str>>>,
    /// Some key holds a character JSON may escape other than with `\u`: any backslash
    /// sends a payload to the scanner.
    any_escape: bool,
    unicode_escape: memmem::Finder<'static>,
}

impl KeySet {
    /// None when there is no key to mask.
    pub fn new(keys: &[String]) -> Option<KeySet> {
        let keys: Vec<Box<str>> = keys
            .iter()
            .map(|k| k.trim().to_ascii_lowercase().into_boxed_str())
            .filter(|k| !k.is_empty())
            .collect();
        let max = keys.iter().map(|k| k.len()).max()?;
        let mut by_len = vec![Vec::new(); max + 1];
        for k in &keys {
            by_len[k.len()].push(k.clone());
        }
        let any_escape = keys.iter().any(|k| {
            k.chars()
                .any(|c| matches!(c, '"' | '\\' | '/') || c.is_control())
        });
        Some(KeySet {
            keys,
            by_len,
            any_escape,
            unicode_escape: memmem::Finder::new(b"\\u").into_owned(),
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> + Clone {
        self.keys.iter().map(|k| &**k)
    }

    /// Length of the longest key.
    pub fn max_len(&self) -> usize {
        self.by_len.len() - 1
    }

    /// Might `b` hold a masked key? False means it certainly does not: every place the
    /// scanner or the fallback regex would mask is a key between two quotes (`"key"`, or
    /// `\"key\"` inside a string), unless the key is written with escapes.
    pub fn may_hold(&self, b: &[u8]) -> bool {
        if self.unicode_escape.find(b).is_some()
            || (self.any_escape && memchr::memchr(b'\\', b).is_some())
        {
            return true;
        }
        let mut open: Option<usize> = None;
        for q in memchr::memchr_iter(b'"', b) {
            if let Some(p) = open {
                let mut tok = &b[p + 1..q];
                while let [rest @ .., b'\\'] = tok {
                    tok = rest;
                }
                if self.is_masked_bytes(tok) {
                    return true;
                }
            }
            open = Some(q);
        }
        false
    }

    pub fn is_masked(&self, key: &str) -> bool {
        self.is_masked_bytes(key.as_bytes())
    }

    fn is_masked_bytes(&self, key: &[u8]) -> bool {
        self.by_len
            .get(key.len())
            .is_some_and(|ks| ks.iter().any(|k| k.as_bytes().eq_ignore_ascii_case(key)))
    }
}

/// Edits that mask the value of every masked key, at any depth, in `text`: one or more JSON
/// documents separated by whitespace or 0x1E (SignalR), optionally after a Socket.IO /
/// Engine.IO packet prefix (`42`, `451-`, `42/admin,13`). A document cut short is fine.
/// None when the text is not JSON.
///
/// Scanning stops once it is more than `limit` bytes in, plus what its edits saved: nothing
/// after that can reach a capture of `limit` bytes. Also returns up to where the text is
/// masked (`text.len()` unless it stopped there); a value cut by the stop is masked to the end.
pub(crate) fn json_edits(text: &str, keys: &KeySet, limit: usize) -> Option<(Vec<Edit>, usize)> {
    edits_at(text, keys, 0, limit)
}

fn edits_at(text: &str, keys: &KeySet, nested: u32, limit: usize) -> Option<(Vec<Edit>, usize)> {
    let mut s = Scanner {
        b: text.as_bytes(),
        text,
        i: socketio_prefix(text.as_bytes()),
        keys,
        nested,
        edits: Vec::new(),
        limit,
        saved: 0,
        stopped: None,
    };
    loop {
        while s.i < s.b.len() && matches!(s.b[s.i], b' ' | b'\t' | b'\n' | b'\r' | 0x1e) {
            s.i += 1;
        }
        if s.i >= s.b.len() {
            break;
        }
        match s.value(0) {
            Ok(()) => {}
            Err(Stop::Eof) => break,
            Err(Stop::Syntax) => return None,
        }
    }
    Some((s.edits, s.stopped.unwrap_or(text.len())))
}

/// Length of a Socket.IO / Engine.IO prefix: packet type digits, `N-` attachments, `/ns,`,
/// ack id digits. 0 unless the text starts with a digit.
fn socketio_prefix(b: &[u8]) -> usize {
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return 0;
    }
    let mut i = digits(0);
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    if b.get(i) == Some(&b'/') {
        i = match memchr::memchr(b',', &b[i..]) {
            Some(c) => i + c + 1,
            None => return b.len(),
        };
    }
    digits(i)
}

/// The result of [`apply`].
pub(crate) struct Applied {
    pub out: Vec<u8>,
    /// Where each edit starts in `out`, and the values it counts.
    pub marks: Vec<(usize, u32)>,
    /// Where the source position `upto` landed in `out` (after an edit covering it).
    pub upto: usize,
}

/// Applies sorted, non-overlapping edits.
pub(crate) fn apply(src: &[u8], edits: &[Edit], upto: usize) -> Applied {
    let mut out = Vec::with_capacity(src.len() + edits.len() * 12);
    let mut marks = Vec::with_capacity(edits.len());
    let mut mapped = None;
    let mut at = 0;
    for e in edits {
        if mapped.is_none() && upto <= e.range.start {
            mapped = Some(out.len() + upto.saturating_sub(at));
        }
        out.extend_from_slice(&src[at..e.range.start]);
        marks.push((out.len(), e.count()));
        match &e.with {
            Replacement::Value => {
                out.push(b'"');
                out.extend_from_slice(crate::REDACTED.as_bytes());
                out.push(b'"');
            }
            Replacement::Match => out.extend_from_slice(crate::REDACTED.as_bytes()),
            Replacement::Text(t) => out.extend_from_slice(t.as_bytes()),
        }
        if mapped.is_none() && upto < e.range.end {
            mapped = Some(out.len());
        }
        at = e.range.end;
    }
    let upto = mapped.unwrap_or(out.len() + upto.saturating_sub(at));
    out.extend_from_slice(&src[at..]);
    Applied { out, marks, upto }
}

/// [`apply`] on text edited at character boundaries (scanner edits always are).
fn apply_str(text: &str, edits: &[Edit]) -> String {
    String::from_utf8(apply(text.as_bytes(), edits, 0).out).expect("edits at character boundaries")
}

struct Scanner<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    keys: &'a KeySet,
    nested: u32,
    edits: Vec<Edit>,
    /// Stop after this many bytes plus `saved`.
    limit: usize,
    /// Bytes the edits so far removed.
    saved: usize,
    /// Where scanning stopped early.
    stopped: Option<usize>,
}

impl Scanner<'_> {
    fn ws(&mut self) -> Result<u8, Stop> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                return Ok(c);
            }
            self.i += 1;
        }
        Err(Stop::Eof)
    }

    fn value(&mut self, depth: usize) -> Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(Stop::Syntax);
        }
        if self.i > self.limit.saturating_add(self.saved) {
            self.stopped = Some(self.i);
            self.i = self.b.len();
            return Err(Stop::Eof);
        }
        match self.ws()? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => {
                let start = self.i;
                let escaped = self.string()?;
                if escaped {
                    self.nested_json(start)?;
                }
                Ok(())
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                self.i += 1;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(Stop::Syntax),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Stop> {
        let rest = &self.b[self.i..];
        let n = rest.len().min(word.len());
        if rest[..n] != word[..n] {
            return Err(Stop::Syntax);
        }
        self.i += n;
        if n < word.len() {
            return Err(Stop::Eof);
        }
        Ok(())
    }

    /// Skips a string starting at its opening quote; true when it holds escapes.
    fn string(&mut self) -> Result<bool, Stop> {
        self.i += 1;
        let mut escaped = false;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.b[self.i..]) {
                None => {
                    self.i = self.b.len();
                    return Err(Stop::Eof);
                }
                Some(off) if self.b[self.i + off] == b'"' => {
                    self.i += off + 1;
                    return Ok(escaped);
                }
                Some(off) => {
                    escaped = true;
                    self.i += off + 2;
                    if self.i > self.b.len() {
                        self.i = self.b.len();
                        return Err(Stop::Eof);
                    }
                }
            }
        }
    }

    /// Decodes the string at `start..self.i` (quotes included).
    fn decode(&self, start: usize) -> Result<String, Stop> {
        serde_json::from_str(&self.text[start..self.i]).map_err(|_| Stop::Syntax)
    }

    /// A string value holding JSON with masked keys is masked inside and re-encoded.
    fn nested_json(&mut self, start: usize) -> Result<(), Stop> {
        if self.nested >= MAX_NESTED || !self.keys.may_hold(&self.b[start..self.i]) {
            return Ok(());
        }
        let inner = self.decode(start)?;
        let t = inner.trim_start();
        if !(t.starts_with('{') || t.starts_with('[')) {
            return Ok(());
        }
        if let Some((edits, _)) = edits_at(&inner, self.keys, self.nested + 1, usize::MAX) {
            let keys: u32 = edits.iter().map(|e| e.keys).sum();
            if keys > 0 {
                let masked = apply_str(&inner, &edits);
                let with = serde_json::to_string(&masked).expect("a string encodes");
                self.saved += (self.i - start).saturating_sub(with.len());
                self.edits.push(Edit {
                    range: start..self.i,
                    with: Replacement::Text(with),
                    keys,
                });
            }
        }
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<(), Stop> {
        self.i += 1;
        if self.ws()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.ws()? != b'"' {
                return Err(Stop::Syntax);
            }
            let start = self.i;
            let masked = if self.string()? {
                self.keys.is_masked(&self.decode(start)?)
            } else {
                self.keys.is_masked(&self.text[start + 1..self.i - 1])
            };
            if self.ws()? != b':' {
                return Err(Stop::Syntax);
            }
            self.i += 1;
            if masked {
                self.ws()?;
                let start = self.i;
                let r = self.value(depth + 1);
                if r == Err(Stop::Syntax) {
                    return r;
                }
                // Whatever was found inside is covered by this edit.
                self.edits.retain(|e| e.range.start < start);
                self.saved += (self.i - start).saturating_sub(crate::REDACTED.len() + 2);
                self.edits.push(Edit {
                    range: start..self.i,
                    with: Replacement::Value,
                    keys: 1,
                });
                r?;
            } else {
                self.value(depth + 1)?;
            }
            match self.ws()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Syntax),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), Stop> {
        self.i += 1;
        if self.ws()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            match self.ws()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Syntax),
            }
        }
    }
}

#[cfg(test)]
mod tests;
