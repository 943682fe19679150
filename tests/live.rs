//! The `/live` dashboard socket: snapshot on subscribe, windowed deltas, origin check.

mod common;
use common::*;
use serde_json::json;

async fn open_conns(obs: &Observer, n: u64) {
    let mut events = vec![hello("p")];
    for i in 1..=n {
        events.push(json!({"type":"conn_open","conn":i,"ip":format!("10.0.0.{i}"),"path":format!("/room/{i}"),"user_agent":"agent"}));
    }
    let (s, v) = obs
        .post(batch(events).to_string(), "application/json")
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn snapshot_then_deltas_carry_only_the_window() {
    let obs = start_default().await;
    open_conns(&obs, 5).await;
    let mut live = obs.live().await;
    send_json(&mut live, json!({"type":"subscribe","table":{"state":"open","q":"","sort":"id","desc":true,"offset":0,"limit":2},"trace":{"kinds":["open"],"limit":3}})).await;
    let snap = next_json(&mut live).await;
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["table"]["total"], 5);
    assert_eq!(snap["table"]["ids"], json!([5, 4]));
    assert_eq!(snap["table"]["rows"].as_array().unwrap().len(), 2);
    assert_eq!(snap["trace"].as_array().unwrap().len(), 3);
    assert_eq!(snap["overview"]["totals"]["open"], 5);

    // New traffic on a connection outside the window: only overview and trace move.
    let (s, _) = obs
        .post(batch(vec![hello("p"), json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":4,"text":"ping"})]).to_string(), "application/json")
        .await;
    assert_eq!(s, 200);
    let mut seq = snap["seq"].as_u64().unwrap();
    let delta = loop {
        let f = next_json(&mut live).await;
        assert_eq!(f["type"], "delta", "{f}");
        assert_eq!(
            f["seq"].as_u64().unwrap(),
            seq + 1,
            "deltas are consecutive"
        );
        seq += 1;
        if f["overview"]["totals"]["msgs_in"] == 1 {
            break f;
        }
    };
    assert!(
        delta["table"].is_null(),
        "window unchanged, no table part: {delta}"
    );
    assert!(
        delta["trace"].as_array().unwrap().is_empty(),
        "message events are filtered out"
    );

    // A change inside the window sends just that row.
    obs.post(
        batch(vec![
            hello("p"),
            json!({"type":"message","conn":5,"dir":"s2c","opcode":"text","size":2,"text":"yo"}),
        ])
        .to_string(),
        "application/json",
    )
    .await;
    let delta = loop {
        let f = next_json(&mut live).await;
        if !f["table"].is_null() {
            break f;
        }
    };
    let rows = delta["table"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["id"].as_u64(), rows[0]["msgs_out"].as_u64()),
        (Some(5), Some(1))
    );

    // Changing the view re-snapshots with the server-side filter applied.
    send_json(
        &mut live,
        json!({"type":"subscribe","table":{"q":"10.0.0.3","limit":10}}),
    )
    .await;
    let snap = loop {
        let f = next_json(&mut live).await;
        if f["type"] == "snapshot" {
            break f;
        }
    };
    assert_eq!(snap["table"]["total"], 1);
    assert_eq!(snap["table"]["ids"], json!([3]));
    assert!(
        snap["trace"].as_array().unwrap().is_empty(),
        "no trace subscribed"
    );

    send_json(&mut live, json!({"type":"nonsense"})).await;
    let err = loop {
        let f = next_json(&mut live).await;
        if f["type"] == "error" {
            break f;
        }
    };
    assert!(
        err["message"].as_str().unwrap().contains("nonsense"),
        "{err}"
    );
}

#[tokio::test]
async fn cross_origin_live_is_refused() {
    let obs = start_default().await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/live", obs.addr),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/live", obs.addr),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", format!("http://{}", obs.addr).parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

#[tokio::test]
async fn sorting_and_paging_run_on_the_server() {
    let obs = start_default().await;
    open_conns(&obs, 6).await;
    let mut events = vec![hello("p")];
    for (conn, n) in [(2u64, 5), (4, 1), (6, 3)] {
        for _ in 0..n {
            events.push(json!({"type":"message","conn":conn,"dir":"c2s","opcode":"text","size":1,"text":"x"}));
        }
    }
    obs.post(batch(events).to_string(), "application/json")
        .await;
    let ids = |v: serde_json::Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(obs.get_ok("/api/connections?sort=msgs_in&limit=3").await),
        vec![2, 6, 4]
    );
    assert_eq!(
        ids(obs
            .get_ok("/api/connections?sort=msgs_in&limit=2&offset=1")
            .await),
        vec![6, 4]
    );
    assert_eq!(
        ids(obs
            .get_ok("/api/connections?sort=id&order=asc&limit=2&offset=2")
            .await),
        vec![3, 4]
    );
    assert_eq!(ids(obs.get_ok("/api/connections?q=room/5").await), vec![5]);
    let (s, v) = obs.get("/api/connections?limit=100000").await;
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().contains("limit"));
    assert_eq!(v["code"], "bad_request");
    let (s, v) = obs.get("/api/connections?sort=bogus").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = obs.get("/api/connections/abc").await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = obs.get("/api/connections/999").await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = obs.get("/api/trace?kind=bogus").await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn the_inspected_connection_is_sent_when_it_changes() {
    let obs = start_default().await;
    open_conns(&obs, 2).await;
    let mut live = obs.live().await;
    send_json(&mut live, json!({"type":"subscribe","detail":2})).await;
    let snap = next_json(&mut live).await;
    assert_eq!(snap["detail"]["id"], 2, "{snap}");
    assert!(snap["table"].is_null());
    obs.post(
        batch(vec![
            hello("p"),
            json!({"type":"message","conn":2,"dir":"c2s","opcode":"text","size":2,"text":"hi"}),
        ])
        .to_string(),
        "application/json",
    )
    .await;
    let d = loop {
        let f = next_json(&mut live).await;
        if !f["detail"].is_null() {
            break f;
        }
    };
    assert_eq!(d["detail"]["messages"][0]["text"], "hi");
    // A connection that does not exist is reported gone.
    send_json(&mut live, json!({"type":"subscribe","detail":999})).await;
    let snap = loop {
        let f = next_json(&mut live).await;
        if f["type"] == "snapshot" {
            break f;
        }
    };
    assert_eq!(snap["detail_gone"], true);
}

#[tokio::test]
async fn scrolling_moves_the_window_without_a_snapshot() {
    let obs = start_default().await;
    open_conns(&obs, 20).await;
    let mut live = obs.live().await;
    send_json(
        &mut live,
        json!({"type":"subscribe","table":{"limit":5},"trace":{"limit":5}}),
    )
    .await;
    let snap = next_json(&mut live).await;
    assert_eq!(snap["table"]["ids"], json!([20, 19, 18, 17, 16]));
    send_json(&mut live, json!({"type":"window","offset":10,"limit":3})).await;
    let f = loop {
        let f = next_json(&mut live).await;
        if !f["table"].is_null() {
            break f;
        }
    };
    assert_eq!(f["type"], "delta", "a window move is not a snapshot");
    assert_eq!(f["table"]["offset"], 10);
    assert_eq!(f["table"]["ids"], json!([10, 9, 8]));
    assert_eq!(
        f["table"]["rows"].as_array().unwrap().len(),
        3,
        "every row of the new window"
    );
    assert!(
        f["trace"].as_array().unwrap().is_empty(),
        "the trace is not resent"
    );
}
