//! permessage-deflate through `sockscope proxy`: the client's offer reaches the upstream and the
//! upstream's answer the client, compressed frames pass byte for byte both ways, and the
//! observer shows the inflated text (with context takeover, so later messages refer back).

mod common;

use common::proxy::{cfg, start_proxy, tap_for};
use common::*;
use sockscope::proxy::frames::encode_frame;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

const MASK: [u8; 4] = [0x5a, 0xa5, 0x0f, 0xf0];

/// Reads an HTTP head (up to the blank line).
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.expect("an HTTP head");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One frame: (first byte, payload unmasked).
async fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.ok()?;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        len = u64::from(s.read_u16().await.ok()?);
    } else if len == 127 {
        len = s.read_u64().await.ok()?;
    }
    let mut mask = [0u8; 4];
    if h[1] & 0x80 != 0 {
        s.read_exact(&mut mask).await.ok()?;
    }
    let mut p = vec![0u8; len as usize];
    s.read_exact(&mut p).await.ok()?;
    if h[1] & 0x80 != 0 {
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((h[0], p))
}

/// A raw upstream that accepts permessage-deflate and echoes every frame's payload as it came
/// (RSV1 kept, unmasked), reporting each handshake it got.
async fn deflate_echo() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                let key = header(&head, "sec-websocket-key").unwrap().to_string();
                let _ = tx.send(head);
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                    derive_accept_key(key.as_bytes())
                );
                s.write_all(answer.as_bytes()).await.unwrap();
                while let Some((b0, p)) = read_frame(&mut s).await {
                    let (fin, rsv1, op) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x0f);
                    s.write_all(&encode_frame(fin, rsv1, op, &p, None))
                        .await
                        .unwrap();
                    if op == 8 {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Compresses like a permessage-deflate sender with context takeover.
fn deflate(c: &mut flate2::Compress, data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data.as_bytes(), &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    out.truncate(out.len() - 4);
    out
}

#[tokio::test]
async fn compressed_messages_pass_untouched_and_are_shown_inflated() {
    let (up, mut heads) = deflate_echo().await;
    let obs = start_default().await;
    let proxy = start_proxy(cfg(up, &[]), tap_for(&obs, "deflate")).await;

    let mut s = TcpStream::connect(proxy).await.unwrap();
    let offer = "permessage-deflate; client_max_window_bits";
    s.write_all(
        format!(
            "GET /z HTTP/1.1\r\nHost: {proxy}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {offer}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        header(&head, "sec-websocket-extensions"),
        Some("permessage-deflate")
    );
    assert_eq!(
        header(&head, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the upstream's accept, for the client's own key"
    );
    let upstream_saw = heads.recv().await.unwrap();
    assert_eq!(
        header(&upstream_saw, "sec-websocket-extensions"),
        Some(offer)
    );

    let mut z = flate2::Compress::new(flate2::Compression::default(), false);
    let texts = [
        r#"{"type":"order","item":"teapot","note":"hello compressed world"}"#,
        r#"{"type":"order","item":"teacup","note":"hello compressed world"}"#,
    ];
    for text in texts {
        let compressed = deflate(&mut z, text);
        s.write_all(&encode_frame(true, true, 1, &compressed, Some(MASK)))
            .await
            .unwrap();
        let (b0, echoed) = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
            .await
            .expect("an echo")
            .unwrap();
        assert_eq!(b0, 0xC1, "FIN, RSV1 and text kept");
        assert_eq!(echoed, compressed, "the compressed bytes, untouched");
    }
    s.write_all(&encode_frame(true, false, 8, &[0x03, 0xe8], Some(MASK)))
        .await
        .unwrap();
    assert_eq!(read_frame(&mut s).await.unwrap().0, 0x88);

    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let id = page["items"][0]["id"].as_u64().unwrap();
    assert_eq!(page["items"][0]["close_code"], 1000);
    let d = obs.get_ok(&format!("/api/connections/{id}")).await;
    let shown: Vec<(String, String, u64)> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["opcode"] == "text")
        .map(|m| {
            (
                m["dir"].as_str().unwrap().to_string(),
                m["text"].as_str().unwrap().to_string(),
                m["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, u64)> = texts
        .iter()
        .flat_map(|t| ["c2s", "s2c"].map(|dir| (dir.to_string(), t.to_string(), t.len() as u64)))
        .collect();
    assert_eq!(shown, want, "both directions, inflated, in order");
}
