//! `Tapped<S>`: wraps a WebSocket stream+sink so every message read or written is mirrored.

use crate::handle::ConnTap;
use futures_util::{Sink, Stream};
use sockscope_wire::{Closer, Direction, Opcode};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Which end of the connection the wrapped socket faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The socket to the client (a server-side socket): reads are client→server.
    Client,
    /// The socket to the upstream server (a client-side socket): reads are server→client.
    Upstream,
}

impl Side {
    fn read_dir(self) -> Direction {
        match self {
            Side::Client => Direction::ClientToServer,
            Side::Upstream => Direction::ServerToClient,
        }
    }
    fn write_dir(self) -> Direction {
        match self {
            Side::Client => Direction::ServerToClient,
            Side::Upstream => Direction::ClientToServer,
        }
    }
}

/// A WebSocket message type the tap can look into.
pub trait Mirror {
    /// Opcode and payload bytes, or None for raw frames.
    fn parts(&self) -> Option<(Opcode, &[u8])>;
    /// Close code and reason of a close message.
    fn close_info(&self) -> Option<(Option<u16>, String)>;
}

impl Mirror for tokio_tungstenite::tungstenite::Message {
    fn parts(&self) -> Option<(Opcode, &[u8])> {
        use tokio_tungstenite::tungstenite::Message as M;
        Some(match self {
            M::Text(t) => (Opcode::Text, t.as_bytes()),
            M::Binary(b) => (Opcode::Binary, b),
            M::Ping(b) => (Opcode::Ping, b),
            M::Pong(b) => (Opcode::Pong, b),
            M::Close(Some(f)) => (Opcode::Close, f.reason.as_bytes()),
            M::Close(None) => (Opcode::Close, &[]),
            M::Frame(_) => return None,
        })
    }
    fn close_info(&self) -> Option<(Option<u16>, String)> {
        match self {
            tokio_tungstenite::tungstenite::Message::Close(f) => Some((
                f.as_ref().map(|f| u16::from(f.code)),
                f.as_ref().map(|f| f.reason.to_string()).unwrap_or_default(),
            )),
            _ => None,
        }
    }
}

#[cfg(feature = "axum")]
impl Mirror for axum::extract::ws::Message {
    fn parts(&self) -> Option<(Opcode, &[u8])> {
        use axum::extract::ws::Message as M;
        Some(match self {
            M::Text(t) => (Opcode::Text, t.as_str().as_bytes()),
            M::Binary(b) => (Opcode::Binary, b),
            M::Ping(b) => (Opcode::Ping, b),
            M::Pong(b) => (Opcode::Pong, b),
            M::Close(Some(f)) => (Opcode::Close, f.reason.as_str().as_bytes()),
            M::Close(None) => (Opcode::Close, &[]),
        })
    }
    fn close_info(&self) -> Option<(Option<u16>, String)> {
        match self {
            axum::extract::ws::Message::Close(f) => Some((
                f.as_ref().map(|f| f.code),
                f.as_ref().map(|f| f.reason.to_string()).unwrap_or_default(),
            )),
            _ => None,
        }
    }
}

/// A stream+sink that mirrors every message to its [`ConnTap`]. The first close seen (read or
/// written) records the connection's close; the end of the stream or dropping the wrapper
/// records an abort if no close was seen.
pub struct Tapped<S> {
    inner: S,
    tap: ConnTap,
    side: Side,
}

impl<S> Tapped<S> {
    pub fn new(inner: S, tap: ConnTap, side: Side) -> Self {
        Tapped { inner, tap, side }
    }

    pub fn tap(&self) -> &ConnTap {
        &self.tap
    }

    pub fn into_inner(self) -> (S, ConnTap) {
        (self.inner, self.tap)
    }

    fn mirror<M: Mirror>(&mut self, m: &M, dir: Direction) {
        if let Some((op, bytes)) = m.parts() {
            self.tap.message(dir, op, bytes);
        }
        if let Some((code, reason)) = m.close_info() {
            let by = match dir {
                Direction::ClientToServer => Closer::Client,
                Direction::ServerToClient => Closer::Server,
            };
            self.tap.close(
                code,
                Some(&reason).filter(|r| !r.is_empty()).map(|r| r.as_str()),
                by,
            );
        }
    }
}

impl<S, M, E> Stream for Tapped<S>
where
    S: Stream<Item = Result<M, E>> + Unpin,
    M: Mirror,
{
    type Item = Result<M, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_next(cx);
        match &r {
            Poll::Ready(Some(Ok(m))) => {
                let dir = this.side.read_dir();
                this.mirror(m, dir);
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => this.tap.close(
                None,
                Some("connection ended without a close frame"),
                Closer::Abort,
            ),
            Poll::Pending => {}
        }
        r
    }
}

impl<S, M> Sink<M> for Tapped<S>
where
    S: Sink<M> + Unpin,
    M: Mirror,
{
    type Error = S::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: M) -> Result<(), Self::Error> {
        let dir = self.side.write_dir();
        self.mirror(&item, dir);
        Pin::new(&mut self.inner).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
