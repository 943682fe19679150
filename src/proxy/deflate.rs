//! permessage-deflate (RFC 7692) as the proxy sees it: what client and upstream negotiated, and
//! an inflater per direction that decompresses a *copy* of each compressed message for the
//! capture. The relayed bytes are never touched.

use flate2::{Decompress, FlushDecompress, Status};

/// Most bytes one message may inflate to before the copy is given up (a small compressed
/// message can stand for gigabytes). With context takeover the inflater then stops for good:
/// later messages depend on the skipped history.
pub(super) const MAX_INFLATE: u64 = 1 << 20;

/// The negotiated parameters that matter to a reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Deflate {
    /// Client→server messages are compressed afresh each time.
    pub client_no_context_takeover: bool,
    /// Server→client messages are compressed afresh each time.
    pub server_no_context_takeover: bool,
}

/// permessage-deflate as accepted in the upstream's `Sec-WebSocket-Extensions`, if it was.
pub(super) fn negotiated(accepted: Option<&str>) -> Option<Deflate> {
    accepted?.split(',').find_map(|ext| {
        let mut params = ext.split(';').map(str::trim);
        (params.next()? == "permessage-deflate").then(|| {
            let mut d = Deflate {
                client_no_context_takeover: false,
                server_no_context_takeover: false,
            };
            for p in params {
                match p.split('=').next().unwrap_or("").trim() {
                    "client_no_context_takeover" => d.client_no_context_takeover = true,
                    "server_no_context_takeover" => d.server_no_context_takeover = true,
                    _ => {}
                }
            }
            d
        })
    })
}

/// Inflates one direction's compressed messages (raw DEFLATE, 32 KiB window). The inflate
/// state (about 43 KiB with its window) exists only once a compressed message arrives, and
/// without context takeover only while one is in flight.
#[derive(Debug)]
pub struct Inflater {
    z: Option<Box<Decompress>>,
    takeover: bool,
    /// Inflated bytes of the current message.
    out: u64,
    /// The current message went over [`MAX_INFLATE`].
    skipped: bool,
    /// History lost (takeover and a skipped message): no more copies on this connection.
    dead: bool,
}

impl Inflater {
    pub fn new(context_takeover: bool) -> Self {
        Inflater {
            z: None,
            takeover: context_takeover,
            out: 0,
            skipped: false,
            dead: false,
        }
    }

    /// Later messages depend on this one's history (context takeover, still in sync).
    pub fn takes_over(&self) -> bool {
        self.takeover && !self.dead
    }

    /// A compressed message begins.
    pub fn start(&mut self) {
        if !self.takeover || self.z.is_none() {
            self.z = Some(Box::new(Decompress::new(false)));
        }
        self.out = 0;
        self.skipped = false;
    }

    /// Inflates more of the message, keeping its first `cap` bytes in `captured`.
    pub fn feed(&mut self, compressed: &[u8], cap: usize, captured: &mut Vec<u8>) {
        if self.dead || self.skipped {
            return;
        }
        let Some(z) = self.z.as_deref_mut() else {
            return;
        };
        let mut input = compressed;
        let mut buf = [0u8; 8192];
        loop {
            let (before_in, before_out) = (z.total_in(), z.total_out());
            let status = z.decompress(input, &mut buf, FlushDecompress::Sync);
            let used = (z.total_in() - before_in) as usize;
            let made = (z.total_out() - before_out) as usize;
            input = &input[used..];
            let room = cap.saturating_sub(captured.len()).min(made);
            captured.extend_from_slice(&buf[..room]);
            self.out += made as u64;
            if self.out > MAX_INFLATE {
                self.skipped = true;
                self.dead = self.takeover;
                return;
            }
            match status {
                Ok(Status::Ok) if used > 0 || made > 0 => continue,
                Ok(Status::StreamEnd) => {
                    // A final block: the peer reset its compressor.
                    z.reset(false);
                    if input.is_empty() {
                        return;
                    }
                }
                Ok(_) => return,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }

    /// The message ended: inflates the implied `00 00 ff ff` tail. Returns the inflated size,
    /// or `None` when no copy could be made (over the limit, or history lost).
    pub fn finish(&mut self, cap: usize, captured: &mut Vec<u8>) -> Option<u64> {
        self.feed(&[0x00, 0x00, 0xff, 0xff], cap, captured);
        if !self.takeover || self.dead {
            self.z = None;
        }
        (!self.dead && !self.skipped).then_some(self.out)
    }
}
