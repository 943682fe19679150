//! Limits at the door, on a real observer: each one triggers, is counted where the dashboard
//! shows it, and the observer keeps serving. (Frame and batch size: tests/ingest.rs; tracked
//! connections: tests/retention.rs; the per-browser queue: the hub's unit tests.)

mod common;

use common::{batch, hello, send_json, start};
use serde_json::{json, Value};
use sockscope::server::config::ObserverConfig;

fn messages(conn: u64, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"type": "message", "conn": conn, "dir": "c2s", "opcode": "text", "size": 5, "text": format!("m{i:04}")}))
        .collect()
}

#[tokio::test]
async fn a_tap_over_its_events_per_second_loses_messages_counted_not_connections() {
    let mut cfg = ObserverConfig {
        max_tap_events_per_sec: 100,
        ..ObserverConfig::default()
    };
    cfg.wire.max_events = 60;
    let obs = start(cfg).await;
    let mut tap = obs.tap(Some(sockscope_wire::SUBPROTOCOL_JSON)).await;
    let mut first = vec![
        hello("fast"),
        json!({"type": "conn_open", "conn": 1, "ip": "::1", "path": "/"}),
    ];
    first.extend(messages(1, 40));
    send_json(&mut tap, batch(first)).await;
    for _ in 0..5 {
        send_json(&mut tap, batch(messages(1, 50))).await;
    }
    // A second connection opened while over the limit is still tracked.
    send_json(
        &mut tap,
        batch(vec![
            json!({"type": "conn_open", "conn": 2, "ip": "::1", "path": "/b"}),
        ]),
    )
    .await;
    let reply = common::next_json(&mut tap).await;
    assert_eq!(reply["code"], "rate_limited", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("--max-tap-events-per-sec"),
        "{reply}"
    );
    let s = obs
        .wait_for("/api/sources", |v| {
            v[0]["rate_limited"].as_u64().unwrap_or(0) > 0
        })
        .await;
    let limited = s[0]["rate_limited"].as_u64().unwrap();
    let o = obs
        .wait_for("/api/overview", |v| v["totals"]["opened"] == 2)
        .await;
    let got = o["totals"]["msgs_in"].as_u64().unwrap();
    assert_eq!(
        got + limited,
        290,
        "every message either applied or counted: {o} {s}"
    );
    assert!(limited >= 100, "{limited}");
    let metrics = obs.text("/metrics", None).await;
    assert!(
        metrics.contains(&format!(
            "sockscope_tap_rate_limited_events_total{{source=\"fast\"}} {limited}"
        )),
        "{metrics}"
    );
    // POST is charged to the same source
    let (status, v) = obs
        .post(
            batch([vec![hello("fast")], messages(1, 50)].concat()).to_string(),
            "application/json",
        )
        .await;
    assert!(status == 200 || status == 422, "{status} {v}");
}

#[tokio::test]
async fn browsers_and_taps_over_their_limits_are_refused_and_counted() {
    let obs = start(ObserverConfig {
        max_browsers: 1,
        max_taps: 1,
        ..ObserverConfig::default()
    })
    .await;
    let mut first = obs.live().await;
    assert_eq!(obs.live_as(None).await.err(), Some(503));
    let mut tap = obs.tap(Some(sockscope_wire::SUBPROTOCOL_JSON)).await;
    let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ingest", obs.addr),
    )
    .unwrap();
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("second tap connected: {:?}", other.map(|_| ())),
    }
    // Both holders keep working.
    send_json(&mut tap, batch(vec![hello("one")])).await;
    send_json(&mut first, json!({"type": "subscribe", "charts": false})).await;
    let snap = common::next_json(&mut first).await;
    assert_eq!(snap["type"], "snapshot");
    let refused = obs.overview().await.observer.refused;
    assert_eq!(refused.browsers, 1, "{refused:?}");
    assert_eq!(refused.taps, 1, "{refused:?}");
    // A place frees up when its holder leaves.
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(ws) = obs.live_as(None).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the browser place was released");
}

#[tokio::test]
async fn sources_over_their_limit_replace_a_forgettable_one_or_are_refused() {
    let mut cfg = ObserverConfig::default();
    cfg.agg.max_sources = 2;
    let obs = start(cfg).await;
    // "busy" keeps a connection tracked; "online" stays connected.
    let mut busy = obs.tap(Some(sockscope_wire::SUBPROTOCOL_JSON)).await;
    send_json(
        &mut busy,
        batch(vec![
            hello("busy"),
            json!({"type": "conn_open", "conn": 1, "ip": "::1", "path": "/"}),
        ]),
    )
    .await;
    drop(busy);
    let mut online = obs.tap(Some(sockscope_wire::SUBPROTOCOL_JSON)).await;
    send_json(&mut online, batch(vec![hello("online")])).await;
    obs.wait_for("/api/sources", |v| {
        v.as_array().is_some_and(|a| {
            a.len() == 2 && a.iter().any(|s| s["id"] == "online" && s["online"] == true)
        })
    })
    .await;
    // No source can be forgotten: the third is refused with a reply naming the flag, then closed.
    let mut third = obs.tap(Some(sockscope_wire::SUBPROTOCOL_JSON)).await;
    send_json(&mut third, batch(vec![hello("third")])).await;
    let reply = common::next_json(&mut third).await;
    assert_eq!(reply["code"], "source_limit", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("--max-sources"),
        "{reply}"
    );
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        loop {
            match futures_util::StreamExt::next(&mut third).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(c))) => return c,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 3 s");
    assert_eq!(closed.map(|c| u16::from(c.code)), Some(1008));
    let o = obs.overview().await;
    assert_eq!(o.observer.refused.sources, 1, "{o:?}");
    // POST gets the same answer.
    let (status, v) = obs
        .post(batch(vec![hello("posted")]).to_string(), "application/json")
        .await;
    assert_eq!(
        (status, v["errors"][0]["code"].clone()),
        (422, json!("source_limit")),
        "{v}"
    );
    // Once "online" has left and nothing points at it, a new source takes its place.
    drop(online);
    obs.wait_for("/api/sources", |v| {
        v.as_array()
            .is_some_and(|a| a.iter().all(|s| s["online"] == false))
    })
    .await;
    let mut fourth = obs.tap(Some(sockscope_wire::SUBPROTOCOL_JSON)).await;
    send_json(&mut fourth, batch(vec![hello("fourth")])).await;
    let s = obs
        .wait_for("/api/sources", |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|s| s["id"] == "fourth"))
        })
        .await;
    let mut ids: Vec<&str> = s
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["busy", "fourth"],
        "the source with a tracked connection stays"
    );
    let o = obs.overview().await;
    assert_eq!(o.observer.sources_forgotten, 1, "{o:?}");
    assert_eq!(o.totals.tracked, 1, "{o:?}");
    let metrics = obs.text("/metrics", None).await;
    assert!(
        metrics.contains("sockscope_sources_forgotten_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sockscope_refused_total{reason=\"sources\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_export_stops_at_its_size_limit_and_says_so() {
    let obs = start(ObserverConfig {
        max_export_bytes: 8192,
        ..ObserverConfig::default()
    })
    .await;
    let mut events = vec![hello("big")];
    for c in 1..=60 {
        events.push(json!({"type": "conn_open", "conn": c, "ip": "10.0.0.1", "path": "/p"}));
        events.push(json!({"type": "message", "conn": c, "dir": "s2c", "opcode": "text", "size": 200, "text": "x".repeat(200)}));
    }
    let (s, v) = obs
        .post(batch(events).to_string(), "application/json")
        .await;
    assert_eq!(s, 200, "{v}");
    for fmt in ["ndjson", "csv", "har"] {
        let body = obs.text(&format!("/api/export?format={fmt}"), None).await;
        assert!(body.len() <= 8192, "{fmt}: {} bytes", body.len());
        assert!(
            body.contains("--max-export-bytes"),
            "{fmt} says it was cut: {body}"
        );
        match fmt {
            "ndjson" => {
                let last: Value = serde_json::from_str(body.lines().last().unwrap()).unwrap();
                assert_eq!(last["type"], "truncated");
                assert!(body.lines().count() > 5);
            }
            "har" => {
                let har: Value =
                    serde_json::from_str(&body).expect("a cut HAR is still valid JSON");
                assert!(har["log"]["comment"].as_str().unwrap().contains("stopped"));
                assert!(!har["log"]["entries"].as_array().unwrap().is_empty());
            }
            _ => assert!(body.lines().last().unwrap().starts_with(",,truncated")),
        }
    }
    obs.wait_for("/api/overview", |o| {
        o["observer"]["refused"]["export_truncated"] == 3
    })
    .await;
    // a small export is whole
    let small = obs.text("/api/export?format=ndjson&limit=3", None).await;
    assert_eq!(small.lines().count(), 3);
    assert!(!small.contains("max-export-bytes"), "{small}");
}

/// Reads until the peer closes (or 5 s pass): what came, and whether it closed.
async fn read_until_closed(s: &mut tokio::net::TcpStream) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), false),
        }
    }
}

#[tokio::test]
async fn slow_header_clients_and_idle_keep_alives_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let obs = common::start(sockscope::server::config::ObserverConfig {
        header_timeout: std::time::Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let mut slow = tokio::net::TcpStream::connect(obs.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut slow).await.1,
        "a slow-header client stays connected"
    );
    let mut idle = tokio::net::TcpStream::connect(obs.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut idle).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("aggregator_turned_ms_ago"), "{got}");
    assert!(closed, "an idle keep-alive connection stays open");
}

#[tokio::test]
async fn over_max_clients_a_client_gets_503_with_the_flag_named() {
    let obs = common::start(sockscope::server::config::ObserverConfig {
        max_clients: 2,
        ..Default::default()
    })
    .await;
    let _held: Vec<_> =
        futures_util::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(obs.addr)))
            .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut over = tokio::net::TcpStream::connect(obs.addr).await.unwrap();
    let (got, closed) = read_until_closed(&mut over).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(
        got.contains("\"code\":\"too_many_clients\"") && got.contains("--max-clients"),
        "{got}"
    );
    assert!(closed);
}
