//! `/api/export`: NDJSON, CSV and HAR of the trace or of one connection's messages.

mod common;
use common::*;
use serde_json::{json, Value};

async fn seed(obs: &Observer) {
    let tricky = "quoted \"text\", with comma\nand newline";
    let (s, v) = obs
        .post(
            batch(vec![
                hello("exp"),
                json!({"type":"conn_open","conn":1,"ip":"192.0.2.7","path":"/hub","user_agent":"ua/1","headers":[["origin","http://o"]]}),
                json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":tricky.len(),"text":tricky}),
                json!({"type":"message","conn":1,"dir":"s2c","opcode":"binary","size":3,"data":"AQID"}),
                json!({"type":"conn_open","conn":2,"ip":"192.0.2.8","path":"/other"}),
                json!({"type":"message","conn":2,"dir":"s2c","opcode":"text","size":2,"text":"hi"}),
                json!({"type":"conn_close","conn":1,"code":1000,"by":"client"}),
            ])
            .to_string(),
            "application/json",
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

async fn get_text(obs: &Observer, path: &str) -> (u16, String, String) {
    let r = obs.http.get(obs.url(path)).send().await.unwrap();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), ctype, r.text().await.unwrap())
}

#[tokio::test]
async fn ndjson_and_csv_follow_the_trace_filters() {
    let obs = start_default().await;
    seed(&obs).await;
    let (s, ctype, body) = get_text(&obs, "/api/export?format=ndjson").await;
    assert_eq!((s, ctype.as_str()), (200, "application/x-ndjson"));
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "two opens, three messages, one close");
    assert_eq!(lines[0]["kind"], "close", "newest first");
    let (_, _, body) = get_text(&obs, "/api/export?format=ndjson&kind=message&conn=1").await;
    assert_eq!(body.lines().count(), 2);

    let (s, ctype, body) = get_text(&obs, "/api/export?format=csv&kind=message").await;
    assert_eq!((s, ctype.starts_with("text/csv")), (200, true));
    let mut rd = csv::Reader::from_reader(body.as_bytes());
    let headers = rd.headers().unwrap().clone();
    assert_eq!(&headers[0], "seq");
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    let tricky = rows.iter().find(|r| r[5] == *"c2s").unwrap();
    assert_eq!(
        &tricky[11], "quoted \"text\", with comma\nand newline",
        "quoting survives"
    );

    let (s, _, body) = get_text(&obs, "/api/export?format=pdf").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("har, ndjson or csv"), "{body}");
    let (s, _, _) = get_text(&obs, "/api/export?format=csv&kind=nope").await;
    assert_eq!(s, 400);
    let (s, _, body) = get_text(&obs, "/api/export?format=ndjson&text=(unclosed&regex=true").await;
    assert_eq!(s, 400);
    assert!(body.contains("invalid regular expression"), "{body}");
    // Regex over the payload, direction and IP filters.
    let (_, _, body) = get_text(
        &obs,
        "/api/export?format=ndjson&text=comma%5Cs*and&regex=true",
    )
    .await;
    assert_eq!(body.lines().count(), 1, "{body}");
    let (_, _, body) = get_text(
        &obs,
        "/api/export?format=ndjson&kind=message&dir=out&ip=192.0.2.8",
    )
    .await;
    assert_eq!(body.lines().count(), 1, "{body}");
}

#[tokio::test]
async fn har_has_websocket_messages_per_connection() {
    let obs = start_default().await;
    seed(&obs).await;
    let (s, _, body) = get_text(&obs, "/api/export?format=har").await;
    assert_eq!(s, 200);
    let har: Value = serde_json::from_str(&body).expect("a HAR file is valid JSON");
    assert_eq!(har["log"]["version"], "1.2");
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "one entry per connection");
    let first = entries
        .iter()
        .find(|e| e["request"]["url"].as_str().unwrap().ends_with("/hub"))
        .unwrap();
    assert_eq!(first["_resourceType"], "websocket");
    assert_eq!(first["response"]["status"], 101);
    let msgs = first["_webSocketMessages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0]["type"].as_str(), msgs[0]["opcode"].as_u64()),
        (Some("send"), Some(1))
    );
    assert_eq!(msgs[0]["data"], "quoted \"text\", with comma\nand newline");
    assert_eq!(
        (
            msgs[1]["type"].as_str(),
            msgs[1]["opcode"].as_u64(),
            msgs[1]["data"].as_str()
        ),
        (Some("receive"), Some(2), Some("AQID"))
    );
    assert!(
        msgs[0]["time"].as_f64().unwrap() > 1.0e9,
        "seconds since the epoch"
    );
    // One connection only.
    let (_, _, body) = get_text(&obs, "/api/export?format=har&conn=2").await;
    let har: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(har["log"]["entries"].as_array().unwrap().len(), 1);
}
