//! Tap credentials bind sources, on a real observer: a tap with another token may not speak
//! for a source that is online under its own, nor close its connections by announcing a new
//! instance (the security review's low finding 9).

mod common;

use common::{batch, next_json, send_json, start, Ws};
use futures_util::StreamExt;
use serde_json::json;
use sockscope::protocol::Role;
use sockscope::server::config::ObserverConfig;
use sockscope::server::AuthConfig;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const TAP_A: &str = "tap-a-token-0123456789abcdef";
const TAP_B: &str = "tap-b-token-0123456789abcdef";
const INSPECTOR: &str = "inspector-token-0123456789";

async fn tap(addr: std::net::SocketAddr, token: &str) -> Ws {
    let mut req = format!("ws://{addr}/ingest").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

fn hello(instance: u64) -> serde_json::Value {
    json!({"type": "hello", "source": "edge", "kind": "proxy", "instance": instance})
}

#[tokio::test]
async fn another_token_cannot_take_over_or_close_an_online_source() {
    let auth = AuthConfig::default()
        .with_token(Role::Inspector, INSPECTOR)
        .with_ingest_token(TAP_A)
        .with_ingest_token(TAP_B);
    let obs = start(ObserverConfig {
        auth,
        ..ObserverConfig::default()
    })
    .await;
    let mut a = tap(obs.addr, TAP_A).await;
    send_json(
        &mut a,
        batch(vec![
            hello(1),
            json!({"type": "conn_open", "conn": 1, "ip": "192.0.2.1", "path": "/kept"}),
        ]),
    )
    .await;
    obs.wait_for_as("/api/connections", INSPECTOR, |v| v["total"] == 1)
        .await;

    // Tap B claims the source with a new instance id: refused, and its session is closed.
    let mut b = tap(obs.addr, TAP_B).await;
    send_json(
        &mut b,
        batch(vec![
            hello(2),
            json!({"type": "conn_open", "conn": 9, "ip": "192.0.2.9", "path": "/forged"}),
        ]),
    )
    .await;
    let err = next_json(&mut b).await;
    assert_eq!(err["code"], "source_taken", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("another tap token"),
        "{err}"
    );
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), b.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => break f,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1008));

    // Tap A's connection is still open, and nothing of B's was applied.
    let (_, page) = obs.get_as("/api/connections?state=all", INSPECTOR).await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["path"], "/kept");
    assert_eq!(page["items"][0]["state"], "open", "{page}");
    // Tap A goes on as before.
    send_json(
        &mut a,
        batch(vec![
            json!({"type": "conn_close", "conn": 1, "code": 1000, "by": "client"}),
        ]),
    )
    .await;
    obs.wait_for_as("/api/connections?state=closed", INSPECTOR, |v| {
        v["total"] == 1
    })
    .await;
}
