//! Capture on demand through a real proxy, tap and observer on loopback: counters while
//! nobody watches, every message while somebody does, the flight recorder on abnormal closes.

mod common;

use common::proxy::{cfg, start_proxy};
use common::upstream;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sockscope_tap::wire::CaptureMode;
use sockscope_tap::{Tap, TapConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn on_demand_tap(obs: &Observer, flight_messages: usize) -> Tap {
    let mut c = TapConfig::new(format!("ws://{}/ingest", obs.addr), "od");
    c.flush = Duration::from_millis(1);
    c.capture = CaptureMode::OnDemand;
    c.flight_messages = flight_messages;
    Tap::start(c).unwrap()
}

async fn client(proxy: SocketAddr) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{proxy}/ws"))
        .await
        .expect("connects through the proxy")
        .0
}

/// Sends `text` and waits for its echo.
async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("no error");
    assert_eq!(back, Message::Text(text.into()));
}

fn message_texts(trace: &Value) -> Vec<String> {
    trace["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| e["text"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn counts_while_nobody_watches_and_streams_while_somebody_does() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(cfg(up, &[]), on_demand_tap(&obs, 16)).await;
    let mut ws = client(proxy).await;
    for i in 0..5 {
        echo(&mut ws, &format!("quiet-{i}")).await;
    }
    // Nobody watches: the counts arrive (once a second), the messages do not.
    let page = obs
        .wait_for("/api/connections", |v| {
            v["items"][0]["msgs_in"] == 5 && v["items"][0]["msgs_out"] == 5
        })
        .await;
    assert_eq!(page["items"][0]["bytes_in"], 5 * 7);
    let src = &obs.get_ok("/api/sources").await[0];
    assert_eq!(
        (src["capture"].as_str(), &src["streaming"]),
        (Some("on_demand"), &json!(false))
    );
    assert!(message_texts(&obs.get_ok("/api/trace").await).is_empty());

    // A browser opens the live trace: the tap is told and sends every message.
    let mut live = obs.live().await;
    send_json(&mut live, json!({"type":"subscribe","trace":{"limit":50}})).await;
    obs.wait_for("/api/sources", |v| v[0]["streaming"] == true)
        .await;
    echo(&mut ws, "watched").await;
    let trace = obs
        .wait_for("/api/trace", |v| message_texts(v).len() == 2)
        .await;
    assert!(
        message_texts(&trace).iter().all(|t| t == "watched"),
        "{trace}"
    );
    // Sent one by one now, not counted as well: 6 each way, not 7.
    let page = obs
        .wait_for("/api/connections", |v| v["items"][0]["msgs_in"] == 6)
        .await;
    assert_eq!(page["items"][0]["msgs_out"], 6);

    // The browser leaves: back to counting.
    drop(live);
    obs.wait_for("/api/sources", |v| v[0]["streaming"] == false)
        .await;
    echo(&mut ws, "quiet-again").await;
    obs.wait_for("/api/connections", |v| v["items"][0]["msgs_in"] == 7)
        .await;
    assert_eq!(message_texts(&obs.get_ok("/api/trace").await).len(), 2);
}

#[tokio::test]
async fn an_inspected_connection_streams_alone() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(cfg(up, &[]), on_demand_tap(&obs, 16)).await;
    let mut watched = client(proxy).await;
    echo(&mut watched, "a").await;
    let mut other = client(proxy).await;
    echo(&mut other, "b").await;
    let page = obs
        .wait_for("/api/connections?sort=id", |v| v["total"] == 2)
        .await;
    let ids: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    let first = *ids.iter().min().unwrap();

    let mut live = obs.live().await;
    send_json(&mut live, json!({"type":"subscribe","detail":first})).await;
    // Inspecting one connection streams only it; the source as a whole keeps counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo(&mut watched, "seen").await;
    echo(&mut other, "unseen").await;
    let d = obs
        .wait_for(&format!("/api/connections/{first}"), |v| {
            v["messages"].as_array().is_some_and(|m| m.len() == 2)
        })
        .await;
    assert!(
        d["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["text"] == "seen"),
        "{d}"
    );
    let second = ids.iter().copied().find(|&i| i != first).unwrap();
    obs.wait_for(&format!("/api/connections/{second}"), |v| v["msgs_in"] == 2)
        .await;
    let d2 = obs.get_ok(&format!("/api/connections/{second}")).await;
    assert_eq!(d2["messages"].as_array().unwrap().len(), 0, "{d2}");
    assert_eq!(obs.get_ok("/api/sources").await[0]["streaming"], false);
}

#[tokio::test]
async fn the_flight_recorder_tells_what_a_dying_connection_sent_last() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(cfg(up, &[]), on_demand_tap(&obs, 3)).await;

    // Closed normally: the recorder is discarded, nothing is shipped.
    let mut calm = client(proxy).await;
    echo(&mut calm, "fine").await;
    calm.close(None).await.unwrap();
    while let Some(Ok(_)) = calm.next().await {}

    // The server fails with 1011 after five messages: the last three frames (both
    // directions, the close frames included) arrive with the close, marked as flight records.
    let mut dying = client(proxy).await;
    for i in 1..=5 {
        echo(&mut dying, &format!("m{i}")).await;
    }
    dying
        .send(Message::Text("close:1011:boom".into()))
        .await
        .unwrap();
    while let Some(Ok(_)) = dying.next().await {}

    // The client vanishes without a close: an abort, also recorded.
    let mut gone = client(proxy).await;
    echo(&mut gone, "last words").await;
    drop(gone);

    let page = obs
        .wait_for("/api/connections?state=closed&sort=id", |v| v["total"] == 3)
        .await;
    let rows = page["items"].as_array().unwrap();
    let by = |closer: &str| {
        rows.iter()
            .find(|r| r["closed_by"] == closer)
            .unwrap_or_else(|| panic!("no close by {closer} in {page}"))
    };
    let calm_row = by("client");
    let calm = obs
        .get_ok(&format!("/api/connections/{}", calm_row["id"]))
        .await;
    assert_eq!(calm["messages"].as_array().unwrap().len(), 0, "{calm}");
    assert_eq!(calm["msgs_in"], 1);

    let dying_row = by("server");
    assert_eq!(dying_row["close_code"], 1011);
    let d = obs
        .get_ok(&format!("/api/connections/{}", dying_row["id"]))
        .await;
    let msgs = d["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{d}");
    assert!(msgs.iter().all(|m| m["flight"] == true), "{d}");
    let seen: Vec<(&str, &str)> = msgs
        .iter()
        .map(|m| (m["dir"].as_str().unwrap(), m["opcode"].as_str().unwrap()))
        .collect();
    assert!(seen.contains(&("c2s", "text")), "{d}");
    assert!(
        msgs.iter()
            .any(|m| m["text"] == "close:1011:boom" || m["text"] == "m5"),
        "{d}"
    );
    // Counted once: 6 texts in (m1..m5 and the close command), 5 echoes out.
    assert_eq!(
        (d["msgs_in"].as_u64(), d["msgs_out"].as_u64()),
        (Some(6), Some(5))
    );

    let gone_row = by("abort");
    let g = obs
        .get_ok(&format!("/api/connections/{}", gone_row["id"]))
        .await;
    let texts: Vec<&str> = g["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["last words", "last words"], "{g}");

    // The trace shows them too, marked.
    let trace = obs.get_ok("/api/trace").await;
    assert!(trace["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message")
        .all(|e| e["flight"] == true));
}
