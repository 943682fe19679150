//! A minimal real observer for tap tests: a WebSocket server on 127.0.0.1:0 that decodes the
//! batches and forwards every event.
#![allow(dead_code)]

use futures_util::StreamExt;
use sockscope_tap::wire::{decode_batch, Encoding, Event, Limits};
use sockscope_tap::{PayloadMode, TapConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// Accepts taps, answers their subprotocol and forwards every decoded event.
pub async fn fake_observer() -> (SocketAddr, mpsc::UnboundedReceiver<Event>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)] // the callback type is tungstenite's
                let cb = |req: &Request, mut resp: Response| {
                    let p = req.headers().get("sec-websocket-protocol").unwrap().clone();
                    resp.headers_mut().insert("sec-websocket-protocol", p);
                    Ok(resp)
                };
                let mut ws = tokio_tungstenite::accept_hdr_async(s, cb).await.unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Binary(b) = m {
                        for ev in decode_batch(Encoding::MsgPack, &b, &Limits::default())
                            .expect("valid batch")
                            .events
                        {
                            let _ = tx.send(ev);
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

pub fn cfg(addr: SocketAddr) -> TapConfig {
    let mut c = TapConfig::new(format!("ws://{addr}/ingest"), "t1");
    c.flush = Duration::from_millis(1);
    c.payload = PayloadMode::Truncated(4);
    c
}

pub async fn until<F: Fn(&Event) -> bool>(rx: &mut mpsc::UnboundedReceiver<Event>, f: F) -> Event {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event in time")
            .unwrap();
        if f(&ev) {
            return ev;
        }
    }
}
