//! Reads WebSocket frames (RFC 6455 §5.2) as their bytes pass through the proxy, without
//! holding them: headers are parsed incrementally, only the captured prefix of each message is
//! copied (and unmasked), fragments are joined logically, and close frames give their code and
//! reason. Memory per direction: one header (≤ 14 bytes), the capture prefix while a message is
//! in flight, and a control frame's payload (≤ 125 bytes).

use super::deflate::Inflater;
use sockscope_tap::wire::Opcode;

/// What passed by, reported as soon as it is complete.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A whole data message (all its fragments). `size` is its payload on the wire, or the
    /// inflated size for a compressed message that was inflated; `captured` its first bytes
    /// (unmasked, inflated), at most the reader's capture limit.
    Message {
        opcode: Opcode,
        size: u64,
        captured: Vec<u8>,
        /// Per-message compressed (RSV1 under permessage-deflate).
        compressed: bool,
    },
    /// A ping or pong with its payload.
    Control { opcode: Opcode, payload: Vec<u8> },
    /// A close frame: its code and reason, if it had them.
    Close { code: Option<u16>, reason: String },
    /// The bytes broke the protocol; from here on the reader only counts them (the endpoints
    /// enforce the protocol: the proxy passes what it gets).
    Broken(&'static str),
    /// A data message over the reader's size limit began a frame in the bytes just fed.
    TooBig,
}

#[derive(Debug)]
struct Msg {
    opcode: Opcode,
    /// Bytes captured of this message: the reader's limit when it began.
    cap: usize,
    compressed: bool,
    size: u64,
    captured: Vec<u8>,
}

/// One direction's frame reader.
#[derive(Debug)]
pub struct FrameReader {
    /// Capture limit for the next data message (0: sizes only).
    cap: usize,
    /// Largest data message (payload bytes on the wire).
    max_message: u64,
    head: [u8; 14],
    head_len: u8,
    /// Payload bytes left in the current frame (`None`: reading a header).
    left: Option<u64>,
    mask: Option<[u8; 4]>,
    /// Position within the current frame's payload, for unmasking.
    pos: u64,
    frame_op: u8,
    frame_fin: bool,
    msg: Option<Msg>,
    ctrl: Vec<u8>,
    inflater: Option<Inflater>,
    broken: bool,
    too_big: bool,
    /// Whether the last byte fed ended a frame.
    boundary: bool,
}

impl FrameReader {
    /// `cap`: bytes captured per message; `inflater`: when permessage-deflate was negotiated
    /// and payloads are captured, decompresses compressed messages for the capture;
    /// `max_message`: a data message over it is reported ([`Seen::TooBig`]) and reading stops.
    pub fn new(cap: usize, inflater: Option<Inflater>, max_message: u64) -> Self {
        FrameReader {
            cap,
            max_message,
            head: [0; 14],
            head_len: 0,
            left: None,
            mask: None,
            pos: 0,
            frame_op: 0,
            frame_fin: false,
            msg: None,
            ctrl: Vec::new(),
            inflater,
            broken: false,
            too_big: false,
            boundary: true,
        }
    }

    /// Changes the capture limit from the next data message on (a message already begun keeps
    /// the limit it began with).
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// Whether the stream is between frames, so a frame of the proxy's own (a close) may be
    /// put in without corrupting it.
    pub fn at_boundary(&self) -> bool {
        self.boundary && !self.broken
    }

    /// Whether a message over the size limit was seen.
    pub fn too_big(&self) -> bool {
        self.too_big
    }

    /// Whether a data message is in flight (started, not finished).
    pub fn in_message(&self) -> bool {
        self.msg.is_some()
    }

    /// Reads `chunk`, reporting what completes in it.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut impl FnMut(Seen)) {
        while !chunk.is_empty() && !self.broken {
            match self.left {
                None => {
                    let used = self.read_header(chunk, out);
                    if self.broken {
                        return;
                    }
                    chunk = &chunk[used..];
                }
                Some(left) => {
                    let n = (left as usize).min(chunk.len());
                    self.payload(&chunk[..n]);
                    chunk = &chunk[n..];
                    self.left = Some(left - n as u64);
                }
            }
            if self.left == Some(0) {
                self.end_frame(out);
            }
        }
    }

    /// Takes header bytes; returns how many of `chunk` it used.
    fn read_header(&mut self, chunk: &[u8], out: &mut impl FnMut(Seen)) -> usize {
        self.boundary = false;
        let mut used = 0;
        loop {
            let have = self.head_len as usize;
            let need = header_len(&self.head[..have]);
            if have >= need {
                break;
            }
            let take = (need - have).min(chunk.len() - used);
            if take == 0 {
                return used;
            }
            self.head[have..have + take].copy_from_slice(&chunk[used..used + take]);
            self.head_len += take as u8;
            used += take;
        }
        let h = &self.head[..self.head_len as usize];
        let (fin, rsv1, rsv23, op) = (h[0] & 0x80 != 0, h[0] & 0x40 != 0, h[0] & 0x30, h[0] & 0x0f);
        let masked = h[1] & 0x80 != 0;
        let (len, at) = match h[1] & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => (
                u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
                10,
            ),
            n => (u64::from(n), 2),
        };
        self.mask = masked.then(|| h[at..at + 4].try_into().expect("4 bytes"));
        self.head_len = 0;
        self.pos = 0;
        self.frame_op = op;
        self.frame_fin = fin;
        self.left = Some(len);
        let control = op & 0x8 != 0;
        let bad = if rsv23 != 0 {
            Some("reserved bits set")
        } else if control && (!fin || len > 125) {
            Some("fragmented or oversized control frame")
        } else if rsv1 && (control || op == 0) {
            Some("RSV1 on a control or continuation frame")
        } else {
            match op {
                0 if self.msg.is_none() => Some("continuation without a message"),
                1 | 2 if self.msg.is_some() => Some("new message inside a fragmented one"),
                0 | 1 | 2 | 8 | 9 | 10 => None,
                _ => Some("unknown opcode"),
            }
        };
        if let Some(why) = bad {
            self.broken = true;
            out(Seen::Broken(why));
            return used;
        }
        if !control
            && self.msg.as_ref().map_or(0, |m| m.size).saturating_add(len) > self.max_message
        {
            self.broken = true;
            self.too_big = true;
            out(Seen::TooBig);
            return used;
        }
        if op == 1 || op == 2 {
            let compressed = rsv1 && self.inflater.is_some();
            self.msg = Some(Msg {
                cap: self.cap,
                opcode: if op == 1 {
                    Opcode::Text
                } else {
                    Opcode::Binary
                },
                compressed: rsv1,
                size: 0,
                captured: Vec::new(),
            });
            if compressed {
                if let Some(inf) = &mut self.inflater {
                    inf.start();
                }
            }
        }
        if control {
            self.ctrl.clear();
        }
        used
    }

    fn payload(&mut self, bytes: &[u8]) {
        let control = self.frame_op & 0x8 != 0;
        let start = self.pos;
        self.pos += bytes.len() as u64;
        let unmask = |dst: &mut Vec<u8>, src: &[u8], mask: Option<[u8; 4]>| match mask {
            Some(m) => dst.extend(
                src.iter()
                    .enumerate()
                    .map(|(i, b)| b ^ m[((start as usize) + i) % 4]),
            ),
            None => dst.extend_from_slice(src),
        };
        if control {
            unmask(&mut self.ctrl, bytes, self.mask);
            return;
        }
        let Some(msg) = &mut self.msg else { return };
        let cap = msg.cap;
        msg.size += bytes.len() as u64;
        match (&mut self.inflater, msg.compressed) {
            // With context takeover every compressed message feeds the inflater, captured or
            // not: later ones depend on its history.
            (Some(inf), true) if cap > 0 || inf.takes_over() => match self.mask {
                None => inf.feed(bytes, cap, &mut msg.captured),
                // Unmasked through a stack buffer: no allocation on the relaying task.
                Some(m) => {
                    let mut plain = [0u8; 1024];
                    for (k, part) in bytes.chunks(plain.len()).enumerate() {
                        let at = start as usize + k * plain.len();
                        for (i, b) in part.iter().enumerate() {
                            plain[i] = b ^ m[(at + i) % 4];
                        }
                        inf.feed(&plain[..part.len()], cap, &mut msg.captured);
                    }
                }
            },
            (_, true) => {}
            (_, false) => {
                let room = cap.saturating_sub(msg.captured.len()).min(bytes.len());
                if room > 0 {
                    unmask(&mut msg.captured, &bytes[..room], self.mask);
                }
            }
        }
    }

    fn end_frame(&mut self, out: &mut impl FnMut(Seen)) {
        self.left = None;
        self.boundary = true;
        match self.frame_op {
            8 => {
                let p = std::mem::take(&mut self.ctrl);
                let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                let reason = p
                    .get(2..)
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .unwrap_or_default();
                out(Seen::Close { code, reason });
            }
            9 | 10 => out(Seen::Control {
                opcode: if self.frame_op == 9 {
                    Opcode::Ping
                } else {
                    Opcode::Pong
                },
                payload: std::mem::take(&mut self.ctrl),
            }),
            _ if self.frame_fin => {
                if let Some(mut msg) = self.msg.take() {
                    let mut size = msg.size;
                    if msg.compressed {
                        if let Some(inf) = self
                            .inflater
                            .as_mut()
                            .filter(|i| msg.cap > 0 || i.takes_over())
                        {
                            size = inf.finish(msg.cap, &mut msg.captured).unwrap_or(size);
                        }
                    }
                    out(Seen::Message {
                        opcode: msg.opcode,
                        size,
                        captured: msg.captured,
                        compressed: msg.compressed,
                    });
                }
            }
            _ => {}
        }
    }
}

/// Bytes the header starting with `h` needs (2 until the length byte is known).
fn header_len(h: &[u8]) -> usize {
    if h.len() < 2 {
        return 2;
    }
    let ext = match h[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if h[1] & 0x80 != 0 { 4 } else { 0 }
}

/// A frame as a client sends it (masked) or a server does (unmasked), for the proxy's own
/// close frames and for tests.
pub fn encode_frame(
    fin: bool,
    rsv1: bool,
    op: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(u8::from(fin) << 7 | u8::from(rsv1) << 6 | op);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= u16::MAX as usize => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// A close frame with `code` and `reason` (clipped to fit the 125-byte control limit).
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(sockscope_tap::wire::clip(reason, 123).as_bytes());
    encode_frame(true, false, 8, &p, mask)
}

#[cfg(test)]
#[path = "frames_tests.rs"]
mod tests;
