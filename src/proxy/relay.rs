//! The WebSocket data path after the handshake: bytes are relayed as they are, both ways, and
//! read in passing ([`FrameReader`]) for the tap. No message is buffered, and an idle
//! connection holds no buffer at all: reads wait for readiness, then go into one scratch
//! buffer per worker thread; only bytes the other side is not ready to take are kept, until it
//! takes them.

use super::deflate::{Deflate, Inflater};
use super::frames::{close_frame, FrameReader, Seen};
use super::tls::Stream;
use sockscope_tap::wire::{Closer, Direction, Opcode};
use sockscope_tap::ConnTap;
use std::cell::RefCell;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// After one side ended, how long the other gets to finish.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

thread_local! {
    /// The one read buffer of each worker thread.
    pub(super) static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
    /// `--ws-idle-timeout`.
    pub idle: Idle,
}

/// How one direction ended.
#[derive(Debug)]
pub(super) enum End {
    /// The sender closed its half (after its close frame, or without one).
    Eof,
    Failed(std::io::Error),
    /// A message over `--max-message`.
    TooBig,
}

/// Relays until both sides are done, a limit is broken, the connection idles past
/// `--ws-idle-timeout`, or shutdown. Two plain sockets take the readiness path below; TLS on
/// either side takes [`super::relay_io`].
pub(super) async fn run(
    client: Stream,
    upstream: Stream,
    setup: Setup,
    conn: &ConnTap,
    shutdown: watch::Receiver<bool>,
) {
    match (client, upstream) {
        (Stream::Tcp(c), Stream::Tcp(u)) => run_tcp(c, u, setup, conn, shutdown).await,
        (c, u) => super::relay_io::run(c, u, setup, conn, shutdown).await,
    }
}

/// Why the proxy itself ends a connection.
#[derive(Clone, Copy, Debug)]
pub(super) enum Stop {
    Shutdown,
    Idle,
}

impl Stop {
    /// Records the close (1001 both ways) and returns its reason.
    pub(super) fn record(self, conn: &ConnTap) -> &'static str {
        let reason = match self {
            Stop::Shutdown => "proxy shutting down",
            Stop::Idle => "idle for longer than the proxy's --ws-idle-timeout",
        };
        conn.close(Some(1001), Some(reason), Closer::Proxy);
        reason
    }
}

/// The two directions of one connection.
pub(super) fn halves(setup: &Setup, conn: &ConnTap) -> (Half, Half) {
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
    (
        half(Direction::ClientToServer, |d| d.client_no_context_takeover),
        half(Direction::ServerToClient, |d| d.server_no_context_takeover),
    )
}

async fn run_tcp(
    client: TcpStream,
    upstream: TcpStream,
    setup: Setup,
    conn: &ConnTap,
    mut shutdown: watch::Receiver<bool>,
) {
    let (c2u, u2c) = halves(&setup, conn);
    let (n, max, idle) = (setup.read_size, setup.max_message, &setup.idle);
    let a = c2u.pump(&client, &upstream, setup.client_early, conn, n, idle);
    let b = u2c.pump(&upstream, &client, setup.upstream_early, conn, n, idle);
    tokio::pin!(a, b);
    let stop = |s: Stop| {
        // A close frame to each side whose stream is between frames, then a moment for the
        // replies. Boxed: this state exists only then, not in every idle connection's task.
        let reason = s.record(conn);
        let (to_client, to_upstream) = (u2c.idle_at_boundary(), c2u.idle_at_boundary());
        let (client, upstream) = (&client, &upstream);
        Box::pin(async move {
            if to_client {
                let _ = write_all(client, &close_frame(1001, reason, None)).await;
            }
            if to_upstream {
                let _ = write_all(upstream, &close_frame(1001, reason, Some(rand_mask()))).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                tokio::join!(drained(client), drained(upstream))
            })
            .await;
        })
    };
    let (dir, end) = tokio::select! {
        e = &mut a => (Direction::ClientToServer, e),
        e = &mut b => (Direction::ServerToClient, e),
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return stop(Stop::Shutdown).await,
        _ = idle.expired() => return stop(Stop::Idle).await,
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
        end => {
            let (sender, back) = match dir {
                Direction::ClientToServer => (&client, &u2c),
                Direction::ServerToClient => (&upstream, &c2u),
            };
            if let Some(frame) = record_end(&end, dir, max, back, conn) {
                let _ = Box::pin(tokio::time::timeout(
                    Duration::from_secs(1),
                    write_all(sender, &frame),
                ))
                .await;
            }
        }
    }
    ended_without_close(conn);
}

/// Records an end that is not a clean one: a message over `--max-message`, or a failed socket.
/// Returns the 1009 close frame owed to the sender of a too-big message when the direction
/// back to it (`back`) is between frames; the other side is mid-frame and can only be cut off.
pub(super) fn record_end(
    end: &End,
    dir: Direction,
    max: u64,
    back: &Half,
    conn: &ConnTap,
) -> Option<Vec<u8>> {
    match end {
        End::Eof => None,
        End::TooBig => {
            let reason = format!("message too long: over the proxy's --max-message ({max} bytes)");
            conn.close(None, Some(&reason), Closer::Abort);
            let mask = (dir == Direction::ServerToClient).then(rand_mask);
            back.idle_at_boundary()
                .then(|| close_frame(1009, "message too big", mask))
        }
        End::Failed(e) => {
            let why = match dir {
                Direction::ClientToServer => "client connection failed",
                Direction::ServerToClient => "upstream connection failed",
            };
            tracing::debug!(error = %e, "{why}");
            conn.close(None, Some(why), Closer::Abort);
            None
        }
    }
}

/// The last word on a connection: if no close was recorded yet, it ended without one.
pub(super) fn ended_without_close(conn: &ConnTap) {
    conn.close(
        None,
        Some("connection ended without a close frame"),
        Closer::Abort,
    );
}

/// One direction: its frame reader, and whether it is writing (so maybe not at a boundary).
/// Both are only touched by the relay's own task (the lock is never contended).
pub(super) struct Half {
    reader: Mutex<FrameReader>,
    pub(super) dir: Direction,
    busy: AtomicBool,
}

impl Half {
    pub(super) fn reader(&self) -> std::sync::MutexGuard<'_, FrameReader> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn idle_at_boundary(&self) -> bool {
        !self.busy.load(Ordering::Relaxed) && self.reader().at_boundary()
    }

    pub(super) fn busy(&self, on: bool) {
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
        idle: &Idle,
    ) -> End {
        let mut on = observe(self.dir, conn);
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
                        idle.touch();
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

/// What the frame reader sees, passed on to the tap.
pub(super) fn observe(dir: Direction, conn: &ConnTap) -> impl FnMut(Seen) + '_ {
    let by = match dir {
        Direction::ClientToServer => Closer::Client,
        Direction::ServerToClient => Closer::Server,
    };
    move |seen: Seen| match seen {
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
    }
}

/// `--ws-idle-timeout`: when either side last sent anything.
pub(super) struct Idle {
    limit: Option<Duration>,
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Idle {
    pub(super) fn new(limit: Option<Duration>) -> Self {
        Idle {
            limit,
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Bytes arrived (a clock read only when there is a limit).
    pub(super) fn touch(&self) {
        if self.limit.is_some() {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last.store(ms, Ordering::Relaxed);
        }
    }

    /// Resolves once nothing has arrived for the limit; never without one.
    pub(super) async fn expired(&self) {
        let Some(limit) = self.limit else {
            return std::future::pending().await;
        };
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let due = last + limit;
            if Instant::now() >= due {
                return;
            }
            Box::pin(tokio::time::sleep_until(due.into())).await;
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
pub(super) fn rand_mask() -> [u8; 4] {
    let mut k = [0u8; 4];
    if getrandom::fill(&mut k).is_err() {
        k = (sockscope_tap::wire::now_us() as u32).to_ne_bytes();
    }
    k
}
