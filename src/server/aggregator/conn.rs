//! One tracked connection: metadata, counters, a lazily rolled one-second rate and a ring of
//! recent messages.

use crate::protocol::{ConnRow, ConnState, MessageView};
use base64::Engine as _;
use sockscope_wire::{Capture, Closer, Direction, Opcode};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

/// Messages and bytes of the current and the previous whole second, rolled on write.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    sec: u64,
    cur_msgs: u64,
    cur_bytes: u64,
    prev_msgs: u64,
    prev_bytes: u64,
}

impl Rate {
    pub fn add(&mut self, now_s: u64, msgs: u64, bytes: u64) {
        if now_s != self.sec {
            if now_s == self.sec + 1 {
                self.prev_msgs = self.cur_msgs;
                self.prev_bytes = self.cur_bytes;
            } else {
                self.prev_msgs = 0;
                self.prev_bytes = 0;
            }
            self.cur_msgs = 0;
            self.cur_bytes = 0;
            self.sec = now_s;
        }
        self.cur_msgs += msgs;
        self.cur_bytes += bytes;
    }

    /// (messages, bytes) in the last complete second before `now_s`.
    pub fn last_second(&self, now_s: u64) -> (u64, u64) {
        if now_s == self.sec {
            (self.prev_msgs, self.prev_bytes)
        } else if now_s == self.sec + 1 {
            (self.cur_msgs, self.cur_bytes)
        } else {
            (0, 0)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoredPayload {
    None,
    Text(Box<str>),
    Binary(Box<[u8]>),
    /// Captured, then dropped to keep the payload budget.
    Evicted,
}

impl StoredPayload {
    /// Payload bytes held in memory.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            StoredPayload::Text(t) => t.len(),
            StoredPayload::Binary(b) => b.len(),
            _ => 0,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct StoredMessage {
    pub seq: u64,
    pub ts_us: u64,
    pub dir: Direction,
    pub opcode: Opcode,
    pub size: u64,
    pub truncated: bool,
    /// Values the tap masked.
    pub redacted: u32,
    /// From an on-demand tap's flight recorder.
    pub flight: bool,
    pub payload: StoredPayload,
}

impl StoredMessage {
    pub(crate) fn view(&self) -> MessageView {
        let (text, data_b64) = match &self.payload {
            StoredPayload::Text(t) => (Some(t.to_string()), None),
            StoredPayload::Binary(b) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
            _ => (None, None),
        };
        MessageView {
            seq: self.seq,
            ts_us: self.ts_us,
            dir: self.dir,
            opcode: self.opcode,
            size: self.size,
            truncated: self.truncated,
            text,
            data_b64,
            payload_evicted: self.payload == StoredPayload::Evicted,
            redacted: self.redacted,
            flight: self.flight,
        }
    }
}

/// What a tap said about its capture of a connection. Interned: connections of one tap
/// usually share it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TapPolicy {
    pub capture: Option<Capture>,
    pub capture_bytes: Option<u64>,
    pub redacted_headers: Box<[Box<str>]>,
}

#[derive(Clone, Debug)]
pub(crate) struct CloseInfo {
    pub at_us: u64,
    pub code: Option<u16>,
    pub reason: Option<Box<str>>,
    pub by: Closer,
}

#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub id: u64,
    pub source: usize,
    pub tap_conn: u64,
    pub ip: IpAddr,
    pub user_agent: Arc<str>,
    pub path: Box<str>,
    pub headers: Box<[(Box<str>, Box<str>)]>,
    pub subprotocol: Option<Box<str>>,
    /// None for taps that say nothing about capture.
    pub policy: Option<Arc<TapPolicy>>,
    pub opened_us: u64,
    pub closed: Option<CloseInfo>,
    pub msgs_in: u64,
    pub msgs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rate: Rate,
    pub recent: VecDeque<StoredMessage>,
}

impl Conn {
    /// Bytes of metadata this record holds for itself (the user agent is shared).
    pub(crate) fn meta_bytes(&self) -> usize {
        self.path.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.subprotocol.as_ref().map_or(0, |s| s.len())
    }

    pub(crate) fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    /// Counts `msgs` data messages of `bytes` in all in one direction.
    pub(crate) fn count(&mut self, dir: Direction, msgs: u64, bytes: u64, now_s: u64) {
        count_data(self, dir, msgs, bytes);
        self.rate.add(now_s, msgs, bytes);
    }

    /// Case-insensitive match of an already lower-cased needle.
    pub(crate) fn matches(&self, needle_lc: &str, source_name: &str) -> bool {
        let mut ip = [0u8; 64];
        needle_lc.is_empty()
            || contains_ci(ip_text(self.ip, &mut ip), needle_lc)
            || contains_ci(&self.user_agent, needle_lc)
            || contains_ci(&self.path, needle_lc)
            || contains_ci(source_name, needle_lc)
            || needle_lc.parse::<u64>() == Ok(self.id)
    }

    pub(crate) fn row(&self, source_name: &str, now_s: u64) -> ConnRow {
        let (rate_msgs, rate_bytes) = self.rate.last_second(now_s);
        ConnRow {
            id: self.id,
            source: source_name.to_string(),
            ip: self.ip.to_string(),
            user_agent: self.user_agent.to_string(),
            path: self.path.to_string(),
            state: if self.is_open() {
                ConnState::Open
            } else {
                ConnState::Closed
            },
            opened_ms: self.opened_us / 1000,
            closed_ms: self.closed.as_ref().map(|c| c.at_us / 1000),
            close_code: self.closed.as_ref().and_then(|c| c.code),
            close_reason: self
                .closed
                .as_ref()
                .and_then(|c| c.reason.as_ref().map(|r| r.to_string())),
            closed_by: self.closed.as_ref().map(|c| c.by),
            msgs_in: self.msgs_in,
            msgs_out: self.msgs_out,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            rate_msgs,
            rate_bytes,
            unknown_since_ms: None,
        }
    }
}

/// Anything that counts data messages and bytes in each direction.
pub(crate) trait DirCounts {
    /// (messages, bytes) for one direction.
    fn slot(&mut self, dir: Direction) -> (&mut u64, &mut u64);
}

/// Counts one data message of `size` bytes.
pub(crate) fn count_data(c: &mut impl DirCounts, dir: Direction, msgs: u64, bytes: u64) {
    let (m, b) = c.slot(dir);
    *m += msgs;
    *b += bytes;
}

macro_rules! dir_counts {
    ($($t:ty),*) => {$(
        impl DirCounts for $t {
            fn slot(&mut self, dir: Direction) -> (&mut u64, &mut u64) {
                match dir {
                    Direction::ClientToServer => (&mut self.msgs_in, &mut self.bytes_in),
                    Direction::ServerToClient => (&mut self.msgs_out, &mut self.bytes_out),
                }
            }
        }
    )*};
}

dir_counts!(
    Conn,
    crate::protocol::Totals,
    crate::protocol::Point,
    super::source::SourceCounts
);

/// ASCII-case-insensitive substring test without allocating for ASCII haystacks.
pub(crate) fn contains_ci(hay: &str, needle_lc: &str) -> bool {
    if needle_lc.is_empty() {
        return true;
    }
    if hay.is_ascii() && needle_lc.is_ascii() {
        let n = needle_lc.as_bytes();
        return hay
            .as_bytes()
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(n));
    }
    // Without lower-casing a copy of every field (one search visits up to a million rows).
    hay.char_indices().any(|(i, _)| {
        let mut h = hay[i..].chars().flat_map(char::to_lowercase);
        needle_lc.chars().all(|c| h.next() == Some(c))
    })
}

/// An IP address as text, written on the stack.
fn ip_text(ip: IpAddr, buf: &mut [u8; 64]) -> &str {
    use std::io::Write;
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cur, "{ip}");
    let n = cur.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_reports_last_complete_second() {
        let mut r = Rate::default();
        r.add(10, 1, 100);
        r.add(10, 1, 50);
        assert_eq!(r.last_second(10), (0, 0));
        assert_eq!(r.last_second(11), (2, 150));
        r.add(11, 1, 1);
        assert_eq!(r.last_second(11), (2, 150));
        assert_eq!(r.last_second(12), (1, 1));
        assert_eq!(r.last_second(13), (0, 0));
        r.add(20, 5, 5);
        assert_eq!(r.last_second(20), (0, 0));
    }

    #[test]
    fn contains_ci_works_for_ascii_and_unicode() {
        assert!(contains_ci("Mozilla/5.0 Firefox", "firefox"));
        assert!(!contains_ci("curl/8", "firefox"));
        assert!(contains_ci("/chat/ÄÖ", "äö"));
        assert!(contains_ci("Ünïcödé São Paulo", "são"));
        assert!(!contains_ci("/chat/ÄÖ", "öä"));
        let mut b = [0u8; 64];
        let v6: IpAddr = "2001:db8::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(ip_text(v6, &mut b), v6.to_string());
    }
}
