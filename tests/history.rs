//! History queries on the real binary, answered from the record: closes by code in a window
//! with what they sent last, filters, downloads, and one connection's whole life.

mod common;

use common::process::free_port;
use common::record::{get, hello, observer, post, stop};
use serde_json::{json, Value};
use std::time::Duration;

/// `field` of every item of a history answer.
fn each<'a, T>(answer: &'a Value, field: impl Fn(&'a Value) -> T) -> Vec<T> {
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(field)
        .collect()
}

fn conn_ids(answer: &Value) -> Vec<u64> {
    each(answer, |c| c["conn"].as_u64().unwrap())
}

fn kinds(answer: &Value) -> Vec<&str> {
    each(answer, |e| e["kind"].as_str().unwrap())
}

/// The on-call question, from the record: which connections closed with 1006 in a window, and
/// what did they send last; then one of them, its whole life.
#[tokio::test]
async fn history_answers_closes_by_code_in_a_window_and_a_connections_whole_life() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let obs = observer(dir.path(), port, &["--record-sync", "50ms"]).await;
    let ms = |d: u64| json!(d);
    let t0: u64 = 1_700_000_000_000; // ms
    let at = |s: u64| (t0 + s * 1000) * 1000; // µs
    let mut events = vec![hello("edge")];
    for (conn, open_s, close_s, code) in [
        (1u64, 0u64, 100u64, 1006u16),
        (2, 10, 200, 1006),
        (3, 20, 210, 1000),
        (4, 30, 900, 1006),
    ] {
        events.push(json!({"type": "conn_open", "conn": conn, "ts": at(open_s), "ip": format!("192.0.2.{conn}"), "path": format!("/c{conn}?token=s3cr3t")}));
        for k in 0..5 {
            events.push(json!({"type": "message", "conn": conn, "ts": at(open_s + 1 + k), "dir": "c2s", "opcode": "text", "size": format!("m{conn}-{k}").len(), "text": format!("m{conn}-{k}")}));
        }
        events.push(json!({"type": "conn_close", "conn": conn, "ts": at(close_s), "code": code, "by": "abort"}));
    }
    post(port, events).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Closed with 1006 between t0+150 s and t0+300 s: only connection 2.
    let url = format!(
        "/api/history/connections?state=closed&code=1006&from={}&to={}",
        ms(t0 + 150_000),
        ms(t0 + 300_000)
    );
    let h = get(port, &url).await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{h}");
    assert_eq!(
        (items[0]["conn"].as_u64(), items[0]["source"].as_str()),
        (Some(2), Some("edge"))
    );
    let last: Vec<&str> = items[0]["last_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(last, ["m2-2", "m2-3", "m2-4"], "what it sent last");
    assert_eq!(items[0]["msgs_in"], 5);
    // By class, newest first, and bad parameters named.
    let h = get(port, "/api/history/connections?class=abnormal").await;
    let conns = conn_ids(&h);
    assert_eq!(conns, [4, 2, 1], "{h}");
    let bad = reqwest::get(format!(
        "http://127.0.0.1:{port}/api/history/connections?class=weird"
    ))
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("abnormal"));
    // The same answer as a download, for a spreadsheet or a log tool.
    let csv = reqwest::get(format!(
        "http://127.0.0.1:{port}/api/history/connections?class=abnormal&format=csv"
    ))
    .await
    .unwrap();
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with("source,conn,ip"), "{text}");
    let nd = reqwest::get(format!(
        "http://127.0.0.1:{port}/api/history/connections?class=abnormal&format=ndjson"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(nd.lines().count(), 3);
    let first: Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
    assert_eq!(first["conn"], 4);
    // One connection's whole life, in order.
    let life = get(port, "/api/history/events?source=edge&conn=3").await;
    let kinds = kinds(&life);
    assert_eq!(
        kinds,
        ["open", "message", "message", "message", "message", "message", "close"],
        "{life}"
    );
    assert_eq!(life["items"][6]["code"], 1000);
    // By address prefix: 192.0.2.0/30 holds connections 1–3, not 4; a bad prefix is named.
    let h = get(port, "/api/history/connections?ip=192.0.2.0/30").await;
    let mut conns = conn_ids(&h);
    conns.sort();
    assert_eq!(conns, [1, 2, 3], "{h}");
    let h = get(port, "/api/history/connections?ip=192.0.2.4").await;
    assert_eq!(h["items"].as_array().unwrap().len(), 1, "{h}");
    let bad = reqwest::get(format!(
        "http://127.0.0.1:{port}/api/history/connections?ip=192.0.2/99"
    ))
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("CIDR"));
    // A HAR of a history answer: each connection with its messages, as devtools read it.
    let har = get(port, "/api/history/connections?class=abnormal&format=har").await;
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{har}");
    assert_eq!(har["log"]["version"], "1.2");
    for e in entries {
        let msgs = e["_webSocketMessages"].as_array().unwrap();
        assert_eq!(msgs.len(), 5, "{e}");
        assert_eq!(msgs[0]["type"], "send");
    }
    let one = get(port, "/api/history/events?source=edge&conn=2&format=har").await;
    let e = &one["log"]["entries"][0];
    assert_eq!(e["_sockscope"]["close_code"], 1006, "{one}");
    assert_eq!(e["_webSocketMessages"][4]["data"], "m2-4");
    let too_many = reqwest::get(format!(
        "http://127.0.0.1:{port}/api/history/connections?format=har&limit=500"
    ))
    .await
    .unwrap();
    assert_eq!(too_many.status(), 400);
    // After a restart the record still answers.
    stop(obs);
    let _obs = observer(dir.path(), port, &[]).await;
    let h = get(port, "/api/history/connections?state=closed&code=1006").await;
    assert_eq!(h["items"].as_array().unwrap().len(), 3, "{h}");
}

/// The trace of a past window from the record, with the live trace's filters and downloads.
#[tokio::test]
async fn history_trace_answers_a_past_window_with_the_live_filters() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _obs = observer(dir.path(), port, &["--record-sync", "50ms"]).await;
    let t0: u64 = 1_700_000_000_000; // ms
    let at = |s: u64| (t0 + s * 1000) * 1000; // µs
    let mut events = vec![hello("edge")];
    for conn in 1u64..=4 {
        let open_s = conn * 10;
        events.push(json!({"type": "conn_open", "conn": conn, "ts": at(open_s), "ip": format!("192.0.2.{conn}"), "path": format!("/c{conn}")}));
        for k in 0..3 {
            let dir = if k == 1 { "s2c" } else { "c2s" };
            events.push(json!({"type": "message", "conn": conn, "ts": at(open_s + 1 + k), "dir": dir, "opcode": "text", "size": 4, "text": format!("m{conn}-{k}")}));
        }
        events.push(json!({"type": "conn_close", "conn": conn, "ts": at(open_s + 5), "code": 1000, "by": "client"}));
    }
    post(port, events).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let texts = |v: &Value| each(v, |e| e["text"].as_str().unwrap().to_string());
    let window =
        |from_s: u64, to_s: u64| format!("from={}&to={}", t0 + from_s * 1000, t0 + to_s * 1000);
    // Messages between t0+10 s and t0+22 s, newest first: connection 1's three and the first
    // two of connection 2.
    let h = get(
        port,
        &format!("/api/history/trace?{}&kind=message", window(10, 22)),
    )
    .await;
    assert_eq!(texts(&h), ["m2-1", "m2-0", "m1-2", "m1-1", "m1-0"], "{h}");
    assert_eq!(h["truncated"], false);
    // Direction, text, source, kinds together.
    let h = get(
        port,
        &format!("/api/history/trace?{}&dir=out&text=M3", window(0, 100)),
    )
    .await;
    assert_eq!(texts(&h), ["m3-1"], "{h}");
    let h = get(
        port,
        &format!("/api/history/trace?{}&source=nowhere", window(0, 100)),
    )
    .await;
    assert_eq!(texts(&h).len(), 0, "{h}");
    // One connection (the tap's id), opens and closes included; by address, as a CIDR prefix
    // or as the start of the address.
    let h = get(
        port,
        &format!("/api/history/trace?{}&source=edge&conn=4", window(0, 100)),
    )
    .await;
    let kinds = kinds(&h);
    assert_eq!(
        kinds,
        ["close", "message", "message", "message", "open"],
        "{h}"
    );
    assert!(conn_ids(&h).iter().all(|c| *c == 4), "{h}");
    let h = get(
        port,
        &format!(
            "/api/history/trace?{}&kind=open&ip=192.0.2.2/31",
            window(0, 100)
        ),
    )
    .await;
    assert_eq!(texts(&h), ["192.0.2.3 /c3", "192.0.2.2 /c2"], "{h}");
    let h = get(
        port,
        &format!(
            "/api/history/trace?{}&kind=open&ip=192.0.2.1",
            window(0, 100)
        ),
    )
    .await;
    assert_eq!(texts(&h), ["192.0.2.1 /c1"], "{h}");
    // A limit cuts the newest first and says so.
    let h = get(
        port,
        &format!("/api/history/trace?{}&limit=2", window(0, 100)),
    )
    .await;
    assert_eq!(h["items"].as_array().unwrap().len(), 2);
    assert_eq!(h["truncated"], true);
    // Downloads.
    let fetch = |q: String| async move {
        reqwest::get(format!("http://127.0.0.1:{port}/api/history/trace?{q}"))
            .await
            .unwrap()
    };
    let csv = fetch(format!("{}&kind=message&format=csv", window(0, 100))).await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("seq,time_us,kind,connection"), "{text}");
    assert_eq!(text.lines().count(), 1 + 12, "{text}");
    let nd = fetch(format!("{}&kind=close&format=ndjson", window(0, 100))).await;
    let nd = nd.text().await.unwrap();
    assert_eq!(nd.lines().count(), 4, "{nd}");
    let first: Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["conn"].as_u64(), first["code"].as_u64()),
        (Some(4), Some(1000))
    );
    // Bad input is named.
    for (q, says) in [
        (format!("from={}&to={}", t0 + 5000, t0), "after"),
        ("kind=teleport".to_string(), "open, message, close"),
        ("text=(&regex=true".to_string(), "regular expression"),
        ("format=xml".to_string(), "json, ndjson or csv"),
        ("limit=0".to_string(), "limit"),
    ] {
        let r = fetch(q.clone()).await;
        assert_eq!(r.status(), 400, "{q}");
        let body = r.text().await.unwrap();
        assert!(body.contains(says), "{q}: {body}");
    }
}
