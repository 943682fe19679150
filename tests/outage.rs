//! The observer dies mid-run: proxied traffic carries on untouched, the tap counts what it
//! could not deliver, reconnects when the observer is back and re-announces open connections.

mod common;

use common::upstream;
use futures_util::{SinkExt, StreamExt};
use sockscope::proxy::ProxyConfig;
use sockscope_tap::{Tap, TapConfig};
use std::process::Child;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn spawn_observer(port: u16) -> Proc {
    let child = common::process::observer(port, "error")
        .spawn()
        .expect("start the observer");
    let proc = Proc(child);
    for _ in 0..200 {
        // The observer's own answer, not whatever else might hold the port.
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if v["status"] == "ok" {
                    return proc;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("observer did not come up");
}

async fn get(port: u16, path: &str) -> serde_json::Value {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait(port: u16, path: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..400 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if ok(&v) {
                    return v;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting on {path}: {}", get(port, path).await);
}

async fn echo_round(ws: &mut common::Ws, from: usize, to: usize) {
    for i in from..to {
        ws.send(Message::Text(format!("m{i}").into()))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            Message::Text(format!("m{i}").into()),
            "lost or reordered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_an_observer_outage_and_the_counts_reach_it_after() {
    let port = common::process::free_port();
    let up = upstream::start().await;
    let first = spawn_observer(port).await;
    let mut cfg = TapConfig::new(format!("ws://127.0.0.1:{port}/ingest"), "outage");
    cfg.flush = Duration::from_millis(1);
    cfg.max_backoff = Duration::from_millis(200);
    let tap = Tap::start(cfg).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = l.local_addr().unwrap();
    let pcfg = ProxyConfig {
        read_buffer: 4096,
        ..ProxyConfig::new(up.to_string())
    };
    tokio::spawn(sockscope::proxy::serve(
        l,
        pcfg,
        tap.clone(),
        std::future::pending(),
    ));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/ws"))
        .await
        .unwrap();

    echo_round(&mut ws, 0, 100).await;
    wait(port, "/api/connections", |v| {
        v["items"][0]["msgs_in"] == 100
    })
    .await;

    drop(first); // killed
    echo_round(&mut ws, 100, 400).await;
    // Give the sender time to notice and account for what it could not send.
    for _ in 0..200 {
        if tap.drops().message > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let dropped = tap.drops().message;
    assert!(
        dropped > 0,
        "messages sent while the observer was down are counted"
    );

    let _second = spawn_observer(port).await;
    // The tap reconnects, re-announces the open connection and reports its drop counters.
    let src = wait(port, "/api/sources", |v| {
        v[0]["drops"]["message"].as_u64().is_some_and(|d| d > 0)
    })
    .await;
    assert_eq!(src[0]["id"], "outage");
    assert_eq!(src[0]["online"], true);
    wait(port, "/api/connections", |v| v["total"] == 1).await;

    echo_round(&mut ws, 400, 450).await;
    ws.send(Message::Close(Some(CloseFrame {
        code: 1000.into(),
        reason: "done".into(),
    })))
    .await
    .unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let page = wait(port, "/api/connections?state=closed", |v| v["total"] == 1).await;
    let c = &page["items"][0];
    assert_eq!(c["close_code"], 1000);
    assert!(
        c["msgs_in"].as_u64().unwrap() >= 50,
        "traffic after the restart is counted: {c}"
    );
    let total = get(port, "/api/sources").await[0]["drops"]["message"]
        .as_u64()
        .unwrap();
    assert_eq!(
        total,
        tap.drops().message,
        "the observer shows the tap's own count"
    );
}
