//! `sockscope proxy` against a real upstream and a real observer, all on loopback.

mod common;

use common::proxy::{cfg, start_proxy, tap_for};
use common::upstream;
use common::*;
use futures_util::{SinkExt, StreamExt};
use sockscope_tap::Tap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

async fn client(proxy: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Ws {
    let mut req = format!("ws://{proxy}{path}").into_client_request().unwrap();
    for (k, v) in extra {
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connects through the proxy")
        .0
}

/// The request headers the upstream received for a GET through `proxy` with `extra`.
async fn upstream_headers(proxy: SocketAddr, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut req = reqwest::Client::new().get(format!("http://{proxy}/headers"));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().json().await.unwrap()
}

async fn next_msg(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("reply in time")
        .expect("open")
        .expect("no error")
}

#[tokio::test]
async fn messages_of_every_kind_pass_both_ways_and_are_tapped() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(cfg(up, &[]), tap_for(&obs, "px")).await;
    let mut ws = client(
        proxy,
        "/ws?room=7",
        &[
            ("sec-websocket-protocol", "chat.v1"),
            ("user-agent", "proxy-test/1"),
            ("origin", "http://app.test"),
        ],
    )
    .await;

    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next_msg(&mut ws).await, Message::Text("hello".into()));
    ws.send(Message::Binary(vec![0u8, 1, 2, 255].into()))
        .await
        .unwrap();
    assert_eq!(
        next_msg(&mut ws).await,
        Message::Binary(vec![0u8, 1, 2, 255].into())
    );
    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(next_msg(&mut ws).await, Message::Binary(big.into()));
    // A text message in three fragments arrives whole.
    ws.send(Message::Frame(Frame::message(
        "frag",
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        "ment",
        OpCode::Data(Data::Continue),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        "ed",
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    assert_eq!(next_msg(&mut ws).await, Message::Text("fragmented".into()));
    ws.send(Message::Ping(b"p1".to_vec().into())).await.unwrap();
    assert_eq!(
        next_msg(&mut ws).await,
        Message::Pong(b"p1".to_vec().into())
    );
    ws.send(Message::Close(Some(CloseFrame {
        code: 4000.into(),
        reason: "bye now".into(),
    })))
    .await
    .unwrap();
    while let Some(Ok(_)) = ws.next().await {}

    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let c = &page["items"][0];
    assert_eq!(c["source"], "px");
    assert_eq!(c["ip"], "127.0.0.1");
    assert_eq!(c["path"], "/ws?room=7");
    assert_eq!(c["user_agent"], "proxy-test/1");
    assert_eq!(
        (
            c["close_code"].as_u64(),
            c["close_reason"].as_str(),
            c["closed_by"].as_str()
        ),
        (Some(4000), Some("bye now"), Some("client"))
    );
    // Data messages in: text, binary, 1 MiB, fragmented; out: their four echoes. Ping, pong
    // and close frames are in the message list but not in the counters.
    let d = obs.get_ok(&format!("/api/connections/{}", c["id"])).await;
    assert_eq!(d["msgs_in"], 4);
    let out = d["msgs_out"].as_u64().unwrap();
    assert_eq!(out, 4);
    let ops: Vec<_> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["opcode"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ops.contains(&"ping".to_string()) && ops.contains(&"close".to_string()),
        "{ops:?}"
    );
    assert_eq!(d["subprotocol"], "chat.v1");
    assert_eq!(
        d["headers"],
        serde_json::json!([["origin", "http://app.test"]])
    );
    let msgs = d["messages"].as_array().unwrap();
    let big_in = msgs.iter().find(|m| m["size"] == 1 << 20).unwrap();
    assert_eq!(big_in["truncated"], true);
    assert!(msgs.iter().any(|m| m["text"] == "fragmented"));
    assert_eq!(obs.get_ok("/api/sources").await[0]["drops"]["message"], 0);
}

#[tokio::test]
async fn header_bytes_that_are_not_utf8_are_kept_lossily_not_lost() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(cfg(up, &[]), tap_for(&obs, "px")).await;
    let mut req = format!("ws://{proxy}/ws").into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert(
        "user-agent",
        axum::http::HeaderValue::from_bytes(b"agent/1 \xff\xfe caf\xc3\xa9").unwrap(),
    );
    h.insert(
        "x-request-id",
        axum::http::HeaderValue::from_bytes("r-\u{e9}".as_bytes()).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let c = &page["items"][0];
    assert_eq!(c["user_agent"], "agent/1 \u{fffd}\u{fffd} caf\u{e9}");
    let d = obs.get_ok(&format!("/api/connections/{}", c["id"])).await;
    assert_eq!(
        d["headers"],
        serde_json::json!([["x-request-id", "r-\u{e9}"]])
    );
}

#[tokio::test]
async fn server_close_codes_and_reasons_reach_the_client_unchanged() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(cfg(up, &[]), tap_for(&obs, "codes")).await;
    for (code, reason) in [
        (1000u16, "done"),
        (1001, "going"),
        (1008, "policy"),
        (4000, "app says no"),
    ] {
        let mut ws = client(proxy, "/ws", &[]).await;
        ws.send(Message::Text(format!("close:{code}:{reason}").into()))
            .await
            .unwrap();
        let m = next_msg(&mut ws).await;
        match m {
            Message::Close(Some(f)) => {
                assert_eq!((u16::from(f.code), f.reason.as_str()), (code, reason))
            }
            other => panic!("expected a close, got {other:?}"),
        }
        while let Some(Ok(_)) = ws.next().await {}
    }
    let page = obs
        .wait_for("/api/connections?state=closed&order=asc", |v| {
            v["total"] == 4
        })
        .await;
    let got: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["close_code"].as_u64().unwrap(),
                c["closed_by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1000, "server".into()),
            (1001, "server".into()),
            (1008, "server".into()),
            (4000, "server".into())
        ]
    );
}

#[tokio::test]
async fn plain_http_is_forwarded_with_x_forwarded_for() {
    let up = upstream::start().await;
    let proxy = start_proxy(cfg(up, &[]), Tap::disabled()).await;
    let http = reqwest::Client::new();
    let h = upstream_headers(
        proxy,
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6;proto=https"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "an untrusted peer's XFF is replaced: {h}"
    );
    assert_eq!(
        h["x-forwarded-proto"], "http",
        "an untrusted peer's scheme is not believed"
    );
    assert_eq!(h["x-forwarded-host"], proxy.to_string());
    assert!(
        h.get("forwarded").is_none() && h.get("x-real-ip").is_none(),
        "{h}"
    );
    let r = http
        .get(format!("http://{proxy}/denied"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn trusted_proxies_decide_the_client_ip() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let trusting = start_proxy(cfg(up, &["127.0.0.0/8"]), tap_for(&obs, "trusting")).await;
    let strict = start_proxy(cfg(up, &["10.0.0.0/8"]), tap_for(&obs, "strict")).await;
    for p in [trusting, strict] {
        let mut ws = client(p, "/ws", &[("x-forwarded-for", "203.0.113.9")]).await;
        ws.send(Message::Text("x".into())).await.unwrap();
        next_msg(&mut ws).await;
        ws.close(None).await.unwrap();
    }
    let page = obs
        .wait_for("/api/connections?state=all", |v| v["total"] == 2)
        .await;
    let ip_of = |src: &str| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["source"] == src)
            .unwrap()["ip"]
            .clone()
    };
    assert_eq!(ip_of("trusting"), "203.0.113.9");
    assert_eq!(ip_of("strict"), "127.0.0.1");
    // The upstream sees the chain from a trusted peer.
    let h = upstream_headers(trusting, &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    // A trusted proxy in front that terminated TLS says so.
    let h = upstream_headers(trusting, &[("x-forwarded-proto", "https")]).await;
    assert_eq!(h["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn upstream_down_or_refusing_gives_a_clear_http_answer() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = start_proxy(cfg(dead, &[]), Tap::disabled()).await;
    let r = reqwest::get(format!("http://{proxy}/anything"))
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("unreachable"));
    let req = format!("ws://{proxy}/ws").into_client_request().unwrap();
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("no hang")
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 502),
        other => panic!("expected 502, got {:?}", other.map(|_| ())),
    }
    // An upstream that refuses the upgrade: its status reaches the client.
    let up = upstream::start().await;
    let proxy = start_proxy(cfg(up, &[]), Tap::disabled()).await;
    let req = format!("ws://{proxy}/denied")
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn graceful_shutdown_closes_websockets_with_1001() {
    let up = upstream::start().await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sockscope::proxy::serve(
        l,
        cfg(up, &[]),
        Tap::disabled(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let mut ws = client(addr, "/ws", &[]).await;
    ws.send(Message::Text("hi".into())).await.unwrap();
    next_msg(&mut ws).await;
    stop_tx.send(()).unwrap();
    match next_msg(&mut ws).await {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn messages_of_16_mib_pass_and_larger_than_the_limit_get_1009() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let mut c = cfg(up, &[]);
    c.max_message = 20 << 20;
    let proxy = start_proxy(c, tap_for(&obs, "big")).await;
    let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{proxy}/ws"), Some(cfg), false)
            .await
            .unwrap();
    let big: Vec<u8> = (0..(16 << 20) + 7).map(|i| (i % 253) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(next_msg(&mut ws).await, Message::Binary(big.into()));
    // Over the proxy's limit: the proxy answers 1009 and drops the connection. The client may
    // still be writing then, so it sees the close frame or a reset, never a hang.
    let _ = ws.send(Message::Binary(vec![0u8; 21 << 20].into())).await;
    match tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("no hang")
    {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1009),
        Some(Err(_)) | None => {}
        other => panic!("expected close 1009 or a reset, got {other:?}"),
    }
    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let c = &page["items"][0];
    assert_eq!(c["bytes_in"], (16 << 20) + 7);
    assert_eq!(c["closed_by"], "abort");
    let reason = c["close_reason"].as_str().unwrap();
    assert!(
        reason.contains("too long"),
        "the dashboard says why: {reason}"
    );
}
