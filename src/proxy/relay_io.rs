//! The relay when TLS is on either side: the same frame reading, limits and closes as
//! [`super::relay`], over `AsyncRead`/`AsyncWrite`. Reads go into the worker thread's scratch
//! buffer too, so an idle connection holds no buffer of ours (rustls keeps its own); what was
//! read is copied out once for the write.

use super::frames::close_frame;
use super::relay::{
    ended_without_close, halves, observe, rand_mask, record_end, End, Half, Setup, Stop,
    CLOSE_GRACE, SCRATCH,
};
use super::tls::Stream;
use sockscope_tap::wire::Direction;
use sockscope_tap::ConnTap;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::{watch, Mutex};

type Writer = Mutex<WriteHalf<Stream>>;

pub(super) async fn run(
    client: Stream,
    upstream: Stream,
    setup: Setup,
    conn: &ConnTap,
    mut shutdown: watch::Receiver<bool>,
) {
    let (c2u, u2c) = halves(&setup, conn);
    let (n, max, idle) = (setup.read_size, setup.max_message, &setup.idle);
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    let (client_w, upstream_w) = (Mutex::new(client_w), Mutex::new(upstream_w));
    let a = c2u.pump_io(client_r, &upstream_w, setup.client_early, conn, n, idle);
    let b = u2c.pump_io(upstream_r, &client_w, setup.upstream_early, conn, n, idle);
    tokio::pin!(a, b);
    let stop = tokio::select! {
        e = &mut a => Err((Direction::ClientToServer, e)),
        e = &mut b => Err((Direction::ServerToClient, e)),
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => Ok(Stop::Shutdown),
        _ = idle.expired() => Ok(Stop::Idle),
    };
    let (dir, end) = match stop {
        Ok(stop) => {
            // A close frame to each side between frames; the pumps go on a moment to pass the
            // replies through.
            let reason = stop.record(conn);
            if u2c.idle_at_boundary() {
                let _ = send(&client_w, &close_frame(1001, reason, None)).await;
            }
            if c2u.idle_at_boundary() {
                let f = close_frame(1001, reason, Some(rand_mask()));
                let _ = send(&upstream_w, &f).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                tokio::join!(&mut a, &mut b)
            })
            .await;
            return;
        }
        Err(end) => end,
    };
    let (to_sender, other) = match dir {
        Direction::ClientToServer => (&client_w, &upstream_w),
        Direction::ServerToClient => (&upstream_w, &client_w),
    };
    match end {
        End::Eof => {
            // Pass the end on, and give the other direction time to finish.
            let _ = other.lock().await.shutdown().await;
            let rest = async {
                match dir {
                    Direction::ClientToServer => (&mut b).await,
                    Direction::ServerToClient => (&mut a).await,
                }
            };
            if let Ok(End::Failed(e)) = tokio::time::timeout(CLOSE_GRACE, rest).await {
                tracing::debug!(error = %e, "connection failed while closing");
            }
            let _ = to_sender.lock().await.shutdown().await;
        }
        end => {
            let back = match dir {
                Direction::ClientToServer => &u2c,
                Direction::ServerToClient => &c2u,
            };
            if let Some(frame) = record_end(&end, dir, max, back, conn) {
                let _ = tokio::time::timeout(Duration::from_secs(1), send(to_sender, &frame)).await;
            }
        }
    }
    ended_without_close(conn);
}

async fn send(w: &Writer, data: &[u8]) -> std::io::Result<()> {
    let mut w = w.lock().await;
    w.write_all(data).await?;
    w.flush().await
}

/// Reads what is there into the thread's scratch buffer and copies it out; nothing is held
/// while waiting.
async fn read_some(src: &mut ReadHalf<Stream>, read_size: usize) -> std::io::Result<Vec<u8>> {
    std::future::poll_fn(|cx| {
        SCRATCH.with(|s| {
            let mut buf = s.borrow_mut();
            if buf.len() < read_size {
                buf.resize(read_size, 0);
            }
            let mut rb = ReadBuf::new(&mut buf[..read_size]);
            match Pin::new(&mut *src).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().to_vec())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

impl Half {
    /// Relays `src` → `dst` until `src` ends.
    async fn pump_io(
        &self,
        mut src: ReadHalf<Stream>,
        dst: &Writer,
        early: Vec<u8>,
        conn: &ConnTap,
        read_size: usize,
        idle: &super::relay::Idle,
    ) -> End {
        let mut on = observe(self.dir, conn);
        let mut data = early;
        loop {
            if !data.is_empty() {
                {
                    let mut reader = self.reader();
                    reader.set_cap(conn.capture_len());
                    reader.feed(&data, &mut on);
                    if reader.too_big() {
                        return End::TooBig;
                    }
                }
                self.busy(true);
                let r = Box::pin(send(dst, &data)).await;
                self.busy(false);
                if let Err(e) = r {
                    return End::Failed(e);
                }
                // Nothing of ours is held while waiting for the next read.
                drop(std::mem::take(&mut data));
            }
            data = match Box::pin(read_some(&mut src, read_size)).await {
                Ok(d) if d.is_empty() => return End::Eof,
                Ok(d) => d,
                Err(e) => return End::Failed(e),
            };
            idle.touch();
        }
    }
}
