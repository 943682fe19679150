//! The WebSocket data path after the handshake: bytes are relayed as they are, both ways, and
//! read in passing ([`FrameReader`]) for the tap. No message is buffered, and an idle
//! connection holds no buffer at all: reads wait for readiness, then go into one scratch
//! buffer per worker thread; only bytes the other side is not ready to take are kept, until it
//! takes them.

use super::deflate::{Deflate, Inflater};
use super::frames::{close_frame, FrameReader, Seen};
use sockscope_tap::wire::{Closer, Direction, Opcode};
use sockscope_tap::ConnTap;
use std::cell::RefCell;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// After one side ended, how long the other gets to finish.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

thread_local! {
    /// The one read buffer of each worker thread.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What the relay needs besides the two sockets.
pub(super) struct Setup {
    /// Bytes each side sent right after the handshake that the HTTP layer already read. Copied
    /// out (usually nothing): the HTTP layer's `Bytes` would keep its whole read buffer alive
    /// for the life of the connection (8 KiB each way, measured).
    pub client_early: Vec<u8>,
    pub upstream_early: Vec<u8>,
    pub deflate: Option<Deflate>,
    /// Bytes read at most per read.
    pub read_size: usize,
    /// Largest message let through; a bigger one ends the connection (1009).
    pub max_message: u64,
}

/// How one direction ended.
#[derive(Debug)]
enum End {
    /// The sender closed its half (after its close frame, or without one).
    Eof,
    Failed(std::io::Error),
    /// A message over `--max-message`.
    TooBig,
}

/// Relays until both sides are done, a limit is broken, or shutdown.
pub(super) async fn run(
    client: TcpStream,
    upstream: TcpStream,
    setup: Setup,
    conn: &ConnTap,
    mut shutdown: watch::Receiver<bool>,
) {
    let cap = conn.payload_mode().cap();
    let half = |dir, no_takeover: fn(&Deflate) -> bool| Half {
        reader: Mutex::new(FrameReader::new(
            cap,
            setup
                .deflate
                .filter(|_| cap > 0)
                .map(|d| Inflater::new(!no_takeover(&d))),
            setup.max_message,
        )),
        dir,
        busy: AtomicBool::new(false),
    };
    let c2u = half(Direction::ClientToServer, |d| d.client_no_context_takeover);
    let u2c = half(Direction::ServerToClient, |d| d.server_no_context_takeover);
    let (n, max) = (setup.read_size, setup.max_message);
    let a = c2u.pump(&client, &upstream, setup.client_early, conn, n);
    let b = u2c.pump(&upstream, &client, setup.upstream_early, conn, n);
    tokio::pin!(a, b);
    let (dir, end) = tokio::select! {
        e = &mut a => (Direction::ClientToServer, e),
        e = &mut b => (Direction::ServerToClient, e),
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            // A close frame to each side whose stream is between frames, then a moment for
            // the replies. Boxed: this state exists only at shutdown, not in every idle
            // connection's task.
            conn.close(Some(1001), Some("proxy shutting down"), Closer::Proxy);
            let (to_client, to_upstream) = (u2c.idle_at_boundary(), c2u.idle_at_boundary());
            Box::pin(async {
                if to_client {
                    let _ = write_all(&client, &close_frame(1001, "proxy shutting down", None)).await;
                }
                if to_upstream {
                    let f = close_frame(1001, "proxy shutting down", Some(rand_mask()));
                    let _ = write_all(&upstream, &f).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    tokio::join!(drained(&client), drained(&upstream))
                })
                .await;
            })
            .await;
            return;
        }
    };
    match end {
        End::Eof => {
            // Pass the end on, and give the other direction time to finish.
            let (src, dst) = match dir {
                Direction::ClientToServer => (&client, &upstream),
                Direction::ServerToClient => (&upstream, &client),
            };
            let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
            let other = async {
                match dir {
                    Direction::ClientToServer => (&mut b).await,
                    Direction::ServerToClient => (&mut a).await,
                }
            };
            if let Ok(End::Failed(e)) = Box::pin(tokio::time::timeout(CLOSE_GRACE, other)).await {
                tracing::debug!(error = %e, "connection failed while closing");
            }
            let _ = socket2::SockRef::from(src).shutdown(std::net::Shutdown::Write);
        }
        End::TooBig => {
            // Tell the sender's side, if its stream is between frames; the other side is
            // mid-frame and can only be cut off.
            let reason = format!("message too long: over the proxy's --max-message ({max} bytes)");
            conn.close(None, Some(&reason), Closer::Abort);
            let (sender, back) = match dir {
                Direction::ClientToServer => (&client, &u2c),
                Direction::ServerToClient => (&upstream, &c2u),
            };
            if back.idle_at_boundary() {
                let mask = (dir == Direction::ServerToClient).then(rand_mask);
                let _ = Box::pin(tokio::time::timeout(
                    Duration::from_secs(1),
                    write_all(sender, &close_frame(1009, "message too big", mask)),
                ))
                .await;
            }
        }
        End::Failed(e) => {
            let why = match dir {
                Direction::ClientToServer => "client connection failed",
                Direction::ServerToClient => "upstream connection failed",
            };
            tracing::debug!(error = %e, "{why}");
            conn.close(None, Some(why), Closer::Abort);
        }
    }
    conn.close(
        None,
        Some("connection ended without a close frame"),
        Closer::Abort,
    );
}

/// One direction: its frame reader, and whether it is writing (so maybe not at a boundary).
/// Both are only touched by the relay's own task (the lock is never contended).
struct Half {
    reader: Mutex<FrameReader>,
    dir: Direction,
    busy: AtomicBool,
}

impl Half {
    fn reader(&self) -> std::sync::MutexGuard<'_, FrameReader> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn idle_at_boundary(&self) -> bool {
        !self.busy.load(Ordering::Relaxed) && self.reader().at_boundary()
    }

    fn busy(&self, on: bool) {
        self.busy.store(on, Ordering::Relaxed);
    }

    /// Relays `src` → `dst` until `src` ends.
    async fn pump(
        &self,
        src: &TcpStream,
        dst: &TcpStream,
        early: Vec<u8>,
        conn: &ConnTap,
        read_size: usize,
    ) -> End {
        let dir = self.dir;
        let by = match dir {
            Direction::ClientToServer => Closer::Client,
            Direction::ServerToClient => Closer::Server,
        };
        let mut on = |seen: Seen| match seen {
            Seen::Message {
                opcode,
                size,
                captured,
                ..
            } => conn.message_seen(dir, opcode, &captured, size),
            Seen::Control { opcode, payload } => {
                conn.message_seen(dir, opcode, &payload, payload.len() as u64)
            }
            Seen::Close { code, reason } => {
                conn.message_seen(dir, Opcode::Close, reason.as_bytes(), reason.len() as u64);
                let reason = (!reason.is_empty()).then_some(reason);
                conn.close(code, reason.as_deref(), by);
            }
            Seen::TooBig => {}
            Seen::Broken(why) => tracing::debug!(?dir, why, "not a valid WebSocket stream"),
        };
        if !early.is_empty() {
            {
                let mut reader = self.reader();
                reader.set_cap(conn.capture_len());
                reader.feed(&early, &mut on);
            }
            self.busy(true);
            let r = Box::pin(write_all(dst, &early)).await;
            self.busy(false);
            drop(early);
            if let Err(e) = r {
                return End::Failed(e);
            }
        }
        loop {
            if let Err(e) = src.readable().await {
                return End::Failed(e);
            }
            let step = SCRATCH.with(|s| {
                let mut buf = s.borrow_mut();
                if buf.len() < read_size {
                    buf.resize(read_size, 0);
                }
                match src.try_read(&mut buf[..read_size]) {
                    Ok(0) => Step::Eof,
                    Ok(n) => {
                        let mut reader = self.reader();
                        // On demand the capture follows what the observer asks for.
                        reader.set_cap(conn.capture_len());
                        reader.feed(&buf[..n], &mut on);
                        if reader.too_big() {
                            return Step::TooBig;
                        }
                        drop(reader);
                        match dst.try_write(&buf[..n]) {
                            Ok(w) if w == n => Step::Sent,
                            Ok(w) => Step::Pending(buf[w..n].to_vec()),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                Step::Pending(buf[..n].to_vec())
                            }
                            Err(e) => Step::Failed(e),
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Step::Again,
                    Err(e) => Step::Failed(e),
                }
            });
            match step {
                Step::Sent | Step::Again => {}
                Step::Eof => return End::Eof,
                Step::TooBig => return End::TooBig,
                Step::Failed(e) => return End::Failed(e),
                Step::Pending(rest) => {
                    // The other side is slow: only now does this connection hold a buffer.
                    self.busy(true);
                    let r = Box::pin(write_all(dst, &rest)).await;
                    self.busy(false);
                    if let Err(e) = r {
                        return End::Failed(e);
                    }
                }
            }
        }
    }
}

enum Step {
    Sent,
    Again,
    Eof,
    TooBig,
    Pending(Vec<u8>),
    Failed(std::io::Error),
}

async fn write_all(dst: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        dst.writable().await?;
        match dst.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads (and drops) what a socket still sends, until its peer closes it.
async fn drained(s: &TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        if s.readable().await.is_err() {
            return;
        }
        match s.try_read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// A masking key for a frame the proxy sends upstream (as a client must).
fn rand_mask() -> [u8; 4] {
    let mut k = [0u8; 4];
    if getrandom::fill(&mut k).is_err() {
        k = (sockscope_tap::wire::now_us() as u32).to_ne_bytes();
    }
    k
}
