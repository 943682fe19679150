//! TLS on both sides of `sockscope proxy` (clients over wss://, an https:// upstream) and its
//! WebSocket idle timeout: real sockets on loopback, certificates made at test time.

mod common;

use common::proxy::{cfg, start_proxy, tap_for};
use common::tls::pki;
use common::upstream;
use common::*;
use futures_util::{SinkExt, StreamExt};
use sockscope::proxy::tls::UpstreamTls;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

async fn next_msg(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("reply in time")
        .expect("open")
        .expect("no error")
}

async fn wss_client(proxy: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Ws {
    let (ws, resp) = tokio_tungstenite::connect_async_tls_with_config(
        format!("wss://127.0.0.1:{}/ws", proxy.port()),
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls)),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

#[tokio::test]
async fn wss_clients_reach_an_https_upstream_and_the_tap_sees_plain_text() {
    let edge = pki("edge");
    let app = pki("app");
    let up = upstream::start_tls(&app.files()).await;
    let obs = start_default().await;
    let mut c = cfg(up, &[]);
    c.tls = Some(edge.files());
    c.upstream_tls =
        Some(UpstreamTls::new(&format!("127.0.0.1:{}", up.port()), Some(&app.ca)).unwrap());
    let proxy = start_proxy(c, tap_for(&obs, "tls-edge")).await;

    let mut ws = wss_client(proxy, edge.client_config()).await;
    ws.send(Message::Text("over tls".into())).await.unwrap();
    assert_eq!(next_msg(&mut ws).await, Message::Text("over tls".into()));
    let big: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(next_msg(&mut ws).await, Message::Binary(big.into()));
    ws.send(Message::Close(Some(CloseFrame {
        code: 4001.into(),
        reason: "done".into(),
    })))
    .await
    .unwrap();
    while let Some(Ok(_)) = ws.next().await {}

    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let conn = &page["items"][0];
    assert_eq!(
        (conn["close_code"].as_u64(), conn["closed_by"].as_str()),
        (Some(4001), Some("client"))
    );
    let d = obs
        .get_ok(&format!("/api/connections/{}", conn["id"]))
        .await;
    assert_eq!(
        (d["msgs_in"].as_u64(), d["msgs_out"].as_u64()),
        (Some(2), Some(2))
    );
    let msgs = d["messages"].as_array().unwrap();
    assert!(msgs.iter().any(|m| m["text"] == "over tls"), "{msgs:?}");

    // Plain requests go over TLS to the upstream too, and it hears that the client used https.
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(edge.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let h: serde_json::Value = http
        .get(format!("https://127.0.0.1:{}/headers", proxy.port()))
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn an_upstream_whose_certificate_is_not_trusted_gets_a_clear_502() {
    let app = pki("app");
    let stranger = pki("stranger");
    let up = upstream::start_tls(&app.files()).await;
    let mut c = cfg(up, &[]);
    c.upstream_tls =
        Some(UpstreamTls::new(&format!("127.0.0.1:{}", up.port()), Some(&stranger.ca)).unwrap());
    let proxy = start_proxy(c, sockscope_tap::Tap::disabled()).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{proxy}/ws"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 502);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string();
            assert!(
                body.contains("TLS handshake with the upstream failed"),
                "{body}"
            );
        }
        other => panic!("expected a 502, got {other:?}"),
    }
}

#[test]
fn tls_flags_are_checked_at_start() {
    use common::process::{run_to_end, sockscope};
    let p = pki("flags");
    let ca = p.ca.to_str().unwrap();
    let (ok, out) = run_to_end(sockscope(&[
        "proxy",
        "--upstream",
        "http://127.0.0.1:9",
        "--upstream-ca",
        ca,
    ]));
    assert!(
        !ok && out.contains("write the upstream as https://127.0.0.1:9"),
        "{out}"
    );
    let (ok, out) = run_to_end(sockscope(&["proxy", "--upstream", "ftp://127.0.0.1:9"]));
    assert!(
        !ok && out.contains("must look like http://host:port or https://host:port"),
        "{out}"
    );
    let (ok, out) = run_to_end(sockscope(&[
        "proxy",
        "--upstream",
        "https://127.0.0.1:9",
        "--upstream-ca",
        "/nonexistent/ca.pem",
    ]));
    assert!(
        !ok && out.contains("--upstream-ca /nonexistent/ca.pem"),
        "{out}"
    );
    let (ok, out) = run_to_end(sockscope(&[
        "proxy",
        "--upstream",
        "http://127.0.0.1:9",
        "--tls-cert",
        p.key.to_str().unwrap(),
        "--tls-key",
        p.key.to_str().unwrap(),
    ]));
    assert!(!ok && out.contains("no certificate in it"), "{out}");
    let (ok, out) = run_to_end(sockscope(&[
        "proxy",
        "--upstream",
        "http://127.0.0.1:9",
        "--ws-idle-timeout",
        "200ms",
    ]));
    assert!(!ok && out.contains("give at least 1s"), "{out}");
}

#[tokio::test]
async fn a_websocket_quiet_past_the_idle_timeout_is_closed_with_1001() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let mut c = cfg(up, &[]);
    c.ws_idle_timeout = Some(Duration::from_millis(1500));
    let proxy = start_proxy(c, tap_for(&obs, "idle")).await;
    let url = format!("ws://{proxy}/ws");
    let (mut quiet, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut chatty, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // The chatty one talks every 300 ms, across more than the timeout.
    for i in 0..8 {
        chatty
            .send(Message::Text(format!("{i}").into()))
            .await
            .unwrap();
        assert_eq!(
            next_msg(&mut chatty).await,
            Message::Text(format!("{i}").into())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    match next_msg(&mut quiet).await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 1001);
            assert!(f.reason.contains("--ws-idle-timeout"), "{}", f.reason);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    chatty
        .send(Message::Text("still here".into()))
        .await
        .unwrap();
    assert_eq!(
        next_msg(&mut chatty).await,
        Message::Text("still here".into())
    );
    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    assert_eq!(
        (
            page["items"][0]["close_code"].as_u64(),
            page["items"][0]["closed_by"].as_str()
        ),
        (Some(1001), Some("proxy"))
    );
}
