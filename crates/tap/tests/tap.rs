//! The tap against a minimal real observer (a WebSocket server decoding the batches).

mod common;

use common::{cfg, fake_observer, until};
use futures_util::{SinkExt, StreamExt};
use sockscope_tap::wire::{Closer, Direction, Event, Opcode};
use sockscope_tap::{ConnInfo, Side, Tap, TapConfig, Tapped};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn records_truncates_and_closes_from_drop() {
    let (addr, mut rx) = fake_observer().await;
    let tap = Tap::start(cfg(addr)).unwrap();
    let conn = tap.open(ConnInfo::new("192.0.2.1".parse().unwrap(), "/x"));
    conn.message(Direction::ClientToServer, Opcode::Text, "abcé".as_bytes());
    conn.message(
        Direction::ServerToClient,
        Opcode::Binary,
        &[1, 2, 3, 4, 5, 6],
    );
    conn.message(Direction::ServerToClient, Opcode::Binary, &[9]);
    drop(conn); // no close: the guard records an abort
    let Event::Hello(h) = until(&mut rx, |e| matches!(e, Event::Hello(_))).await else {
        unreachable!()
    };
    assert_eq!((h.source.as_str(), h.instance.is_some()), ("t1", true));
    let Event::ConnOpen(o) = until(&mut rx, |e| matches!(e, Event::ConnOpen(_))).await else {
        unreachable!()
    };
    assert_eq!((o.ip.as_str(), o.path.as_str()), ("192.0.2.1", "/x"));
    let Event::Message(m) = until(&mut rx, |e| matches!(e, Event::Message(_))).await else {
        unreachable!()
    };
    // 4 bytes cut inside "é" keep the valid prefix "abc".
    assert_eq!(
        (m.text.as_deref(), m.size, m.truncated),
        (Some("abc"), 5, true)
    );
    let Event::Message(m) = until(&mut rx, |e| matches!(e, Event::Message(_))).await else {
        unreachable!()
    };
    assert_eq!(
        (m.data.unwrap().0, m.size, m.truncated),
        (vec![1, 2, 3, 4], 6, true)
    );
    let Event::Message(m) = until(&mut rx, |e| matches!(e, Event::Message(_))).await else {
        unreachable!()
    };
    assert!(!m.truncated);
    let Event::ConnClose(c) = until(&mut rx, |e| matches!(e, Event::ConnClose(_))).await else {
        unreachable!()
    };
    assert_eq!((c.conn, c.by, c.code), (o.conn, Closer::Abort, None));
    // Host metrics and drop counters arrive every interval.
    let Event::Host(hst) = until(&mut rx, |e| matches!(e, Event::Host(_))).await else {
        unreachable!()
    };
    assert!(hst.mem_total > 0 && hst.rss > 0);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    // No observer at this address: everything piles up, then is dropped and counted.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = cfg(dead);
    c.queue = 8;
    let tap = Tap::start(c).unwrap();
    let conn = tap.open(ConnInfo::new("192.0.2.1".parse().unwrap(), "/"));
    let t = std::time::Instant::now();
    for _ in 0..10_000 {
        conn.message(Direction::ClientToServer, Opcode::Text, b"x");
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the hot path never waits"
    );
    let d = tap.drops();
    assert!(d.message > 9_000, "{d:?}");
}

#[tokio::test]
async fn tapped_stream_mirrors_both_directions() {
    let (addr, mut rx) = fake_observer().await;
    // An echo server to talk to.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() {
                ws.send(m).await.unwrap();
            }
        }
    });
    let tap = Tap::start(cfg(addr)).unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{echo}/"))
        .await
        .unwrap();
    let conn = tap.open(ConnInfo::new("::1".parse().unwrap(), "/echo"));
    let mut ws = Tapped::new(ws, conn, Side::Upstream);
    ws.send(Message::Text("ab".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("ab".into())
    );
    ws.close().await.unwrap();
    let Event::Message(out) = until(&mut rx, |e| matches!(e, Event::Message(_))).await else {
        unreachable!()
    };
    let Event::Message(back) = until(&mut rx, |e| matches!(e, Event::Message(_))).await else {
        unreachable!()
    };
    assert_eq!(
        (out.dir, back.dir),
        (Direction::ClientToServer, Direction::ServerToClient)
    );
    drop(ws);
    let Event::ConnClose(c) = until(&mut rx, |e| matches!(e, Event::ConnClose(_))).await else {
        unreachable!()
    };
    assert_eq!(c.by, Closer::Abort);
}

#[test]
fn bad_configuration_is_explained() {
    let e = TapConfig::new("http://x", "ok").validate().unwrap_err();
    assert!(e.to_string().contains("ws://"));
    let e = TapConfig::new("ws://x", "bad id").validate().unwrap_err();
    assert!(e.to_string().contains("source id"));
    assert!(
        Tap::start(TapConfig::new("ws://127.0.0.1:1/ingest", "x")).is_err(),
        "no runtime here"
    );
}

#[tokio::test]
async fn the_queue_is_bounded_by_payload_bytes_as_well_as_events() {
    // The sender cannot run until this test yields: everything stays queued meanwhile.
    let mut c = cfg("127.0.0.1:9".parse().unwrap());
    c.payload = sockscope_tap::PayloadMode::Truncated(1024);
    c.queue_bytes = 10 * 1024;
    let tap = Tap::start(c).unwrap();
    let conn = tap.open(ConnInfo::new("192.0.2.1".parse().unwrap(), "/"));
    for _ in 0..100 {
        conn.message(Direction::ClientToServer, Opcode::Text, &[b'x'; 1024]);
    }
    // Ten 1 KiB captures fit the 10 KiB budget; the other 90 are dropped and counted.
    assert_eq!(tap.drops().message, 90);
}
