//! What the observer reports besides traffic: tap drop counters, host metrics and series,
//! AWS API Gateway events on `POST /ingest/apigw`, and `/metrics`.

mod common;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn drop_counters_accumulate_across_tap_restarts() {
    let obs = start_default().await;
    let post = |events: Vec<Value>| {
        let obs = &obs;
        async move {
            obs.post(batch(events).to_string(), "application/json")
                .await
        }
    };
    post(vec![
        hello("t"),
        json!({"type":"dropped","message":10,"conn_open":1}),
    ])
    .await;
    post(vec![
        hello("t"),
        json!({"type":"dropped","message":15,"conn_open":1}),
    ])
    .await;
    // The tap restarted: its counter starts from zero again.
    post(vec![hello("t"), json!({"type":"dropped","message":4})]).await;
    let s = obs.get_ok("/api/sources").await;
    assert_eq!(
        s[0]["drops"],
        json!({"conn_open":1,"message":19,"conn_close":0,"host":0})
    );
}

#[tokio::test]
async fn host_metrics_and_series_are_reported() {
    let obs = start_default().await;
    let (s, _) = obs
        .post(
            batch(vec![
                hello("h"),
                json!({"type":"host","cpu_pct":12.5,"mem_used":100,"mem_total":1000,"rss":50}),
                json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/"}),
                json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":3,"text":"abc"}),
                json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":3,"text":"abc"}),
                json!({"type":"message","conn":1,"dir":"s2c","opcode":"ping","size":0}),
            ])
            .to_string(),
            "application/json",
        )
        .await;
    assert_eq!(s, 200);
    let src = obs.get_ok("/api/sources").await;
    assert_eq!(
        src[0]["host"],
        json!({"cpu_pct":12.5,"mem_used":100,"mem_total":1000,"rss":50})
    );
    // Once the second closes, the series holds the counts.
    let series = obs
        .wait_for("/api/series", |v| {
            v["points"].as_array().is_some_and(|a| {
                a.iter()
                    .map(|p| p["msgs_in"].as_u64().unwrap())
                    .sum::<u64>()
                    == 2
            })
        })
        .await;
    let pts = series["points"].as_array().unwrap();
    // The s2c ping is a control frame: traced, not counted.
    assert_eq!(
        pts.iter()
            .map(|p| p["msgs_out"].as_u64().unwrap())
            .sum::<u64>(),
        0
    );
    assert_eq!(
        pts.iter()
            .map(|p| p["bytes_in"].as_u64().unwrap())
            .sum::<u64>(),
        6
    );
    assert_eq!(
        pts.iter()
            .map(|p| p["connects"].as_u64().unwrap())
            .sum::<u64>(),
        1
    );
    let ov = obs.get_ok("/api/overview").await;
    assert_eq!(ov["totals"]["msgs_in"], 2);
    // Per-source and ingest rates come from the last complete second (both from one batch).
    obs.wait_for("/api/overview", |v| {
        v["sources"][0]["rate_msgs"] == 2
            && v["sources"][0]["rate_bytes"] == 6
            && v["observer"]["ingest_rate"] == 6
    })
    .await;
    let hosts = obs
        .wait_for("/api/series", |v| {
            v["hosts"]["h"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(hosts["hosts"]["h"][0]["cpu_pct"], 12.5);
    assert_eq!(hosts["hosts"]["h"][0]["rss"], 50);
}

/// Now in epoch milliseconds: gateway times from the past would close connections already
/// older than the observer's retention, and the next tick would evict them.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `POST /ingest/apigw`: the status and the JSON answer.
async fn post_apigw(obs: &Observer, body: Value) -> (u16, Value) {
    let r = obs
        .http
        .post(obs.url("/ingest/apigw"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
    (status, v)
}

#[tokio::test]
async fn api_gateway_events_become_connections() {
    let obs = start_default().await;
    let t = now_ms();
    let ctx = |ty: &str, extra: Value| {
        let mut rc = json!({"connectionId": "L0SM9cOFvHcCIhw=", "eventType": ty, "apiId": "abc123", "stage": "prod",
            "connectedAt": t - 1000, "requestTimeEpoch": t,
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "Mozilla/5.0 gw"}});
        for (k, v) in extra.as_object().unwrap() {
            rc[k] = v.clone();
        }
        rc
    };
    let post = |body: Value| post_apigw(&obs, body);
    // Only $default wired: the connection is created from connectedAt.
    let (s, v) = post(json!({"requestContext": ctx("MESSAGE", json!({"routeKey": "$default"})), "body": "{\"action\":\"send\"}", "isBase64Encoded": false})).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = post(json!([
        {"requestContext": ctx("MESSAGE", json!({})), "body": "AAEC", "isBase64Encoded": true},
        {"requestContext": ctx("DISCONNECT", json!({"disconnectStatusCode": 1001, "disconnectReason": "Going away"}))}
    ]))
    .await;
    assert_eq!(s, 200);
    let page = obs.get_ok("/api/connections?state=all").await;
    assert_eq!(page["total"], 1, "one connection, not three: {page}");
    let c = &page["items"][0];
    assert_eq!(
        (c["ip"].as_str(), c["source"].as_str(), c["path"].as_str()),
        (
            Some("203.0.113.10"),
            Some("API Gateway abc123"),
            Some("/prod")
        )
    );
    assert_eq!(
        (c["msgs_in"].as_u64(), c["close_code"].as_u64()),
        (Some(2), Some(1001))
    );
    let d = obs.get_ok(&format!("/api/connections/{}", c["id"])).await;
    assert_eq!(d["messages"][0]["text"], "{\"action\":\"send\"}");
    assert_eq!(d["messages"][1]["data_b64"], "AAEC");
    let (s, v) =
        post(json!({"requestContext": {"connectionId": "x", "eventType": "TELEPORT"}})).await;
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().contains("eventType"), "{v}");
    let (s, v) = post(json!({"nope": 1})).await;
    assert_eq!(s, 400);
    assert!(
        v["message"].as_str().unwrap().contains("requestContext"),
        "{v}"
    );
}

#[tokio::test]
async fn api_gateway_payloads_are_masked_before_they_are_stored() {
    let obs = start_default().await;
    let t = now_ms();
    let rc = |ty: &str| {
        json!({"connectionId": "Zm9vYmFy", "eventType": ty, "apiId": "gw1", "stage": "prod",
            "connectedAt": t - 1000, "requestTimeEpoch": t,
            "identity": {"sourceIp": "203.0.113.10"}})
    };
    // A secret at the start of a body over --max-payload: masked first, then cut.
    let long = format!(
        "{{\"password\":\"hunter2\",\"pad\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let mut bye = rc("DISCONNECT");
    bye["disconnectStatusCode"] = json!(4001);
    bye["disconnectReason"] = json!("token=abc expired");
    let body = json!([
        {"requestContext": rc("MESSAGE"), "body": "{\"action\":\"login\",\"access_token\":\"eyJhbGciOi\"}", "isBase64Encoded": false},
        {"requestContext": rc("MESSAGE"), "body": long, "isBase64Encoded": false},
        {"requestContext": bye},
    ]);
    let (status, v) = post_apigw(&obs, body).await;
    assert_eq!(status, 200, "{v}");
    let page = obs
        .wait_for("/api/connections?state=all", |v| v["total"] == 1)
        .await;
    let d = obs
        .get_ok(&format!("/api/connections/{}", page["items"][0]["id"]))
        .await;
    let m = &d["messages"];
    assert_eq!(
        m[0]["text"],
        "{\"action\":\"login\",\"access_token\":\"[REDACTED]\"}"
    );
    assert_eq!(m[0]["redacted"], 1);
    let cut = m[1]["text"].as_str().unwrap();
    assert!(
        cut.starts_with("{\"password\":\"[REDACTED]\",\"pad\":\"xxx"),
        "{}",
        &cut[..40]
    );
    assert_eq!(
        (m[1]["truncated"].as_bool(), m[1]["size"].as_u64()),
        (Some(true), Some(long.len() as u64))
    );
    assert!(cut.len() <= 64 * 1024);
    let everything = obs.text("/api/export?format=ndjson", None).await;
    assert!(!everything.contains("hunter2") && !everything.contains("eyJhbGciOi"));
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_bounded_labels() {
    let obs = start_default().await;
    let (s, _) = obs
        .post(
            batch(vec![
                hello("edge-9"),
                json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/a"}),
                json!({"type":"conn_open","conn":2,"ip":"1.1.1.1","path":"/b"}),
                json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":3,"text":"abc"}),
                json!({"type":"message","conn":1,"dir":"s2c","opcode":"binary","size":10}),
                json!({"type":"message","conn":1,"dir":"s2c","opcode":"ping","size":1}),
                json!({"type":"conn_close","conn":1,"code":4003,"by":"server"}),
                json!({"type":"conn_close","conn":2,"by":"abort"}),
                json!({"type":"dropped","message":7}),
            ])
            .to_string(),
            "application/json",
        )
        .await;
    assert_eq!(s, 200);
    let r = obs.http.get(obs.url("/metrics")).send().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    for line in [
        r#"sockscope_connections_opened_total{source="edge-9"} 2"#,
        r#"sockscope_connections_open{source="edge-9"} 0"#,
        r#"sockscope_connections_closed_total{source="edge-9",class="application"} 1"#,
        r#"sockscope_connections_closed_total{source="edge-9",class="abnormal"} 1"#,
        r#"sockscope_messages_total{source="edge-9",direction="in"} 1"#,
        r#"sockscope_messages_total{source="edge-9",direction="out"} 1"#,
        r#"sockscope_message_bytes_total{source="edge-9",direction="out"} 10"#,
        r#"sockscope_tap_dropped_events_total{source="edge-9",kind="message"} 7"#,
        "sockscope_ingest_events_total 9",
        "# TYPE sockscope_messages_total counter",
        "# TYPE sockscope_connections_open gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample line is `name{labels} value` with a number, and no connection appears as a label.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
        assert!(name.starts_with("sockscope_"), "{l}");
        assert!(!name.contains("conn=") && !name.contains("ip="), "{l}");
    }
}
