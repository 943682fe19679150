//! Memory bounds: retention of closed connections and the tracked-connection limit.

mod common;
use common::*;
use serde_json::json;
use sockscope::server::config::ObserverConfig;
use std::time::Duration;

#[tokio::test]
async fn closed_connections_are_evicted_after_retention() {
    let mut cfg = ObserverConfig::default();
    cfg.agg.retention = Duration::from_millis(500);
    let obs = start(cfg).await;
    obs.post(
        batch(vec![
            hello("r"),
            json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/a"}),
            json!({"type":"conn_open","conn":2,"ip":"1.1.1.1","path":"/b"}),
            json!({"type":"conn_close","conn":1,"code":1000,"by":"client"}),
        ])
        .to_string(),
        "application/json",
    )
    .await;
    assert_eq!(obs.get_ok("/api/connections?state=all").await["total"], 2);
    let page = obs
        .wait_for("/api/connections?state=all", |v| v["total"] == 1)
        .await;
    assert_eq!(page["items"][0]["path"], "/b", "the open one stays");
    let ov = obs.overview().await;
    assert_eq!(ov.observer.evicted, 1);
    assert_eq!(ov.totals.closed, 1, "totals keep counting what was evicted");
    let (s, _) = obs.get("/api/connections/1").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn connection_limit_evicts_oldest_closed_then_refuses() {
    let mut cfg = ObserverConfig::default();
    cfg.agg.max_connections = 2;
    let obs = start(cfg).await;
    let post = |events: Vec<serde_json::Value>| {
        let obs = &obs;
        async move {
            let mut all = vec![hello("lim")];
            all.extend(events);
            obs.post(batch(all).to_string(), "application/json").await
        }
    };
    post(vec![
        json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/1"}),
        json!({"type":"conn_open","conn":2,"ip":"1.1.1.1","path":"/2"}),
        json!({"type":"conn_close","conn":1,"by":"abort"}),
        json!({"type":"conn_open","conn":3,"ip":"1.1.1.1","path":"/3"}),
    ])
    .await;
    let page = obs.get_ok("/api/connections?state=all&order=asc").await;
    let paths: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths, ["/2", "/3"]);
    let (s, v) = post(vec![
        json!({"type":"conn_open","conn":4,"ip":"1.1.1.1","path":"/4"}),
    ])
    .await;
    assert_eq!(s, 422);
    assert_eq!(v["errors"][0]["code"], "connection_limit");
    let ov = obs.overview().await;
    assert_eq!((ov.observer.evicted, ov.observer.untracked), (1, 1));
}

#[tokio::test]
async fn per_connection_message_ring_and_payload_budget_are_bounded() {
    let mut cfg = ObserverConfig::default();
    cfg.agg.conn_messages = 3;
    cfg.agg.payload_budget = 10;
    let obs = start(cfg).await;
    let mut events = vec![
        hello("b"),
        json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/"}),
    ];
    for i in 0..5 {
        events.push(json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":4,"text":format!("msg{i}")}));
    }
    obs.post(batch(events).to_string(), "application/json")
        .await;
    let d = obs.get_ok("/api/connections/1").await;
    let msgs = d["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "ring keeps the last 3");
    // 10 bytes of budget hold two 4-byte payloads: the oldest kept message lost its payload.
    assert_eq!(msgs[0]["payload_evicted"], true);
    assert!(msgs[0]["text"].is_null());
    assert_eq!(msgs[1]["text"], "msg3");
    assert_eq!(msgs[2]["text"], "msg4");
    assert_eq!(d["msgs_in"], 5);
}
