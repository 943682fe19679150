//! Taps over WebSocket (JSON and MessagePack) and POST, against a real observer.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sockscope_wire::{
    encode_batch, Batch, Closer, ConnClose, ConnOpen, Direction, Encoding, Event, Header, Hello,
    Message as WMsg, Opcode, Payload, SourceKind,
};
use tokio_tungstenite::tungstenite::Message;

#[track_caller]
fn conn_page_item(v: &Value, id: u64) -> Value {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn json_tap_over_websocket_is_aggregated() {
    let obs = start_default().await;
    let mut tap = obs.tap(Some("sockscope.v1.json")).await;
    send_json(
        &mut tap,
        batch(vec![
            hello("edge-1"),
            json!({"type":"conn_open","conn":7,"ip":"10.1.2.3","user_agent":"Mozilla/5.0 test","path":"/chat?room=1",
                   "headers":[["origin","https://app.example"]],"subprotocol":"chat.v2"}),
            json!({"type":"message","conn":7,"dir":"c2s","opcode":"text","size":5,"text":"hello"}),
            json!({"type":"message","conn":7,"dir":"s2c","opcode":"text","size":10,"text":"world","truncated":true}),
            json!({"type":"message","conn":7,"dir":"s2c","opcode":"binary","size":3,"data":"AQID"}),
        ]),
    )
    .await;
    let page = obs
        .wait_for("/api/connections?state=all", |v| {
            v["total"] == 1 && v["items"][0]["msgs_out"] == 2
        })
        .await;
    let c = &page["items"][0];
    assert_eq!(c["ip"], "10.1.2.3");
    assert_eq!(c["user_agent"], "Mozilla/5.0 test");
    assert_eq!(c["path"], "/chat?room=1");
    assert_eq!(c["source"], "edge-1 name");
    assert_eq!(
        (c["msgs_in"].as_u64(), c["bytes_in"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(
        (c["msgs_out"].as_u64(), c["bytes_out"].as_u64()),
        (Some(2), Some(13))
    );
    assert_eq!(c["state"], "open");
    let id = c["id"].as_u64().unwrap();

    let d = obs.get_ok(&format!("/api/connections/{id}")).await;
    assert_eq!(d["subprotocol"], "chat.v2");
    assert_eq!(d["headers"], json!([["origin", "https://app.example"]]));
    let msgs = d["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        (msgs[0]["dir"].as_str(), msgs[0]["text"].as_str()),
        (Some("c2s"), Some("hello"))
    );
    assert_eq!(
        (msgs[1]["truncated"].as_bool(), msgs[1]["size"].as_u64()),
        (Some(true), Some(10))
    );
    assert_eq!(msgs[2]["data_b64"], "AQID");

    send_json(
        &mut tap,
        batch(vec![
            json!({"type":"conn_close","conn":7,"code":4000,"reason":"kicked","by":"server"}),
        ]),
    )
    .await;
    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let c = conn_page_item(&page, id);
    assert_eq!(
        (c["close_code"].as_u64(), c["close_reason"].as_str()),
        (Some(4000), Some("kicked"))
    );
    assert_eq!(c["closed_by"], "server");
    assert_eq!(obs.get_ok("/api/connections?state=open").await["total"], 0);

    let trace = obs.get_ok("/api/trace").await;
    let kinds: Vec<_> = trace["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["close", "message", "message", "message", "open"]);
    let closes = obs
        .get_ok(&format!("/api/trace?kind=close&conn={id}"))
        .await;
    assert_eq!(closes["items"][0]["code"], 4000);

    let sources = obs.get_ok("/api/sources").await;
    assert_eq!(sources[0]["id"], "edge-1");
    assert_eq!(sources[0]["online"], true);
    assert_eq!(sources[0]["hostname"], "testhost");
    tap.close(None).await.unwrap();
    obs.wait_for("/api/sources", |v| v[0]["online"] == false)
        .await;
}

#[tokio::test]
async fn msgpack_tap_over_websocket_round_trips_binary_payloads() {
    let obs = start_default().await;
    let mut tap = obs.tap(Some("sockscope.v1.msgpack")).await;
    let events = vec![
        Event::Hello(Hello {
            capture: None,
            source: "gw".into(),
            name: String::new(),
            kind: SourceKind::Gateway,
            version: "1".into(),
            hostname: "h".into(),
            instance: Some(1),
        }),
        Event::ConnOpen(ConnOpen {
            ts: Some(1_700_000_000_000_000),
            headers: vec![Header("x-a".into(), "b".into())],
            ..ConnOpen::new(1, "::1", "/bin")
        }),
        Event::Message(WMsg {
            flight: false,
            conn: 1,
            ts: None,
            dir: Direction::ClientToServer,
            opcode: Opcode::Binary,
            size: 4,
            text: None,
            data: Some(Payload(vec![0, 159, 255, 10])),
            truncated: false,
            redacted: 0,
        }),
        Event::ConnClose(ConnClose {
            conn: 1,
            ts: None,
            code: Some(1001),
            reason: None,
            by: Closer::Client,
        }),
    ];
    let bytes = encode_batch(Encoding::MsgPack, &Batch::new(events));
    tap.send(Message::Binary(bytes.into())).await.unwrap();
    let page = obs
        .wait_for("/api/connections?state=all", |v| {
            v["total"] == 1 && v["items"][0]["state"] == "closed"
        })
        .await;
    let c = &page["items"][0];
    assert_eq!(c["ip"], "::1");
    assert_eq!(c["close_code"], 1001);
    assert_eq!(c["source"], "gw");
    assert_eq!(c["opened_ms"], 1_700_000_000_000u64);
    let d = obs.get_ok(&format!("/api/connections/{}", c["id"])).await;
    assert_eq!(d["messages"][0]["data_b64"], "AJ//Cg==");
}

#[tokio::test]
async fn post_batch_is_applied_before_the_reply() {
    let obs = start_default().await;
    let body = batch(vec![
        hello("lambda"),
        json!({"type":"conn_open","conn":1,"ip":"192.0.2.1","path":"/"}),
        json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":2,"text":"hi"}),
    ]);
    let (s, v) = obs.post(body.to_string(), "application/json").await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(3)), "{v}");
    let page = obs.get_ok("/api/connections").await;
    assert_eq!(page["items"][0]["msgs_in"], 1);

    // MessagePack over POST too.
    let events = vec![
        Event::Hello(Hello {
            capture: None,
            source: "lambda".into(),
            name: String::new(),
            kind: SourceKind::App,
            version: String::new(),
            hostname: String::new(),
            instance: None,
        }),
        Event::ConnClose(ConnClose {
            conn: 1,
            ts: None,
            code: Some(1000),
            reason: None,
            by: Closer::Client,
        }),
    ];
    let (s, _) = obs
        .post(
            encode_batch(Encoding::MsgPack, &Batch::new(events)),
            sockscope_wire::CONTENT_TYPE_MSGPACK,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        obs.get_ok("/api/connections?state=closed").await["total"],
        1
    );
}

#[tokio::test]
async fn malformed_posts_get_clear_errors_and_are_counted() {
    let obs = start_default().await;
    let cases: Vec<(String, &str, u16, &str, &str)> = vec![
        (
            "{not json".into(),
            "application/json",
            400,
            "malformed",
            "key must be a string",
        ),
        (
            batch(vec![
                hello("a"),
                json!({"type":"conn_open","conn":"seven","ip":"1.2.3.4","path":"/"}),
            ])
            .to_string(),
            "application/json",
            400,
            "malformed",
            "events[1].conn",
        ),
        (
            batch(vec![json!({"type":"teleport"})]).to_string(),
            "application/json",
            400,
            "malformed",
            "unknown variant `teleport`",
        ),
        (
            json!({"v":2,"events":[]}).to_string(),
            "application/json",
            400,
            "unsupported_version",
            "v1",
        ),
        (
            batch(vec![
                hello("a"),
                json!({"type":"conn_open","conn":1,"ip":"not-an-ip","path":"/"}),
            ])
            .to_string(),
            "application/json",
            400,
            "invalid_event",
            "events[1].ip",
        ),
        (
            batch(vec![
                json!({"type":"conn_open","conn":1,"ip":"1.2.3.4","path":"/"}),
            ])
            .to_string(),
            "application/json",
            400,
            "no_hello",
            "hello",
        ),
        (
            "x".into(),
            "text/plain",
            415,
            "content_type",
            "application/json",
        ),
    ];
    for (body, ctype, status, code, needle) in cases {
        let (s, v) = obs.post(body.clone(), ctype).await;
        assert_eq!(s, status, "{body} → {v}");
        assert_eq!(v["code"], code, "{body} → {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    let too_many = batch((0..5000).map(|_| json!({"type":"dropped"})).collect());
    let (s, v) = obs.post(too_many.to_string(), "application/json").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (413, Some("too_many_events")),
        "{v}"
    );

    // Semantic errors: the valid events of the batch are applied, the rest reported.
    let body = batch(vec![
        hello("a"),
        json!({"type":"message","conn":99,"dir":"c2s","opcode":"text","size":1,"text":"x"}),
        json!({"type":"conn_open","conn":1,"ip":"1.2.3.4","path":"/ok"}),
    ]);
    let (s, v) = obs.post(body.to_string(), "application/json").await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["errors"][0]["code"], "unknown_connection");
    assert_eq!(v["errors"][0]["index"], 1);
    assert_eq!(obs.get_ok("/api/connections").await["total"], 1);
    let ov = obs.get_ok("/api/overview").await;
    assert_eq!(ov["observer"]["ingest_errors"], 9);
    obs.get_ok("/healthz").await;
}

#[tokio::test]
async fn websocket_errors_are_replied_and_the_session_survives() {
    let obs = start_default().await;
    let mut tap = obs.tap(Some("sockscope.v1.json")).await;
    // Events before any hello.
    send_json(&mut tap, batch(vec![json!({"type":"dropped"})])).await;
    let r = next_json(&mut tap).await;
    assert_eq!(
        (r["code"].as_str(), r["batch"].as_u64()),
        (Some("no_hello"), Some(1)),
        "{r}"
    );
    // Bad JSON.
    tap.send(Message::Text("[1,2".into())).await.unwrap();
    let r = next_json(&mut tap).await;
    assert_eq!(
        (r["code"].as_str(), r["batch"].as_u64()),
        (Some("malformed"), Some(2)),
        "{r}"
    );
    // Wrong type, with the path in the message.
    send_json(
        &mut tap,
        batch(vec![
            hello("s"),
            json!({"type":"host","cpu_pct":"lots","mem_used":1,"mem_total":2,"rss":1}),
        ]),
    )
    .await;
    let r = next_json(&mut tap).await;
    assert!(
        r["message"].as_str().unwrap().contains("events[1].cpu_pct"),
        "{r}"
    );
    // A valid hello, then a message for a connection never opened.
    send_json(
        &mut tap,
        batch(vec![
            hello("s"),
            json!({"type":"message","conn":5,"dir":"s2c","opcode":"text","size":1,"text":"x"}),
        ]),
    )
    .await;
    let r = next_json(&mut tap).await;
    assert_eq!(
        (r["code"].as_str(), r["index"].as_u64(), r["batch"].as_u64()),
        (Some("unknown_connection"), Some(1), Some(4)),
        "{r}"
    );
    // Another source on the same session.
    send_json(&mut tap, batch(vec![hello("other")])).await;
    let r = next_json(&mut tap).await;
    assert_eq!(r["code"], "source_mismatch");
    // Still alive: a valid batch is applied.
    send_json(
        &mut tap,
        batch(vec![
            json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/"}),
        ]),
    )
    .await;
    obs.wait_for("/api/connections", |v| v["total"] == 1).await;
    let ov = obs.get_ok("/api/overview").await;
    assert_eq!(ov["observer"]["ingest_errors"], 5);
}

#[tokio::test]
async fn oversize_frame_closes_with_1009_and_others_are_unaffected() {
    let obs = start(sockscope::server::config::ObserverConfig {
        max_frame_bytes: 64 * 1024,
        ..Default::default()
    })
    .await;
    let mut good = obs.tap(None).await;
    send_json(
        &mut good,
        batch(vec![
            hello("good"),
            json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/"}),
        ]),
    )
    .await;
    let mut bad = obs.tap(Some("sockscope.v1.json")).await;
    let huge = "x".repeat(100 * 1024);
    let _ = bad.send(Message::Text(huge.into())).await;
    let mut code = None;
    while let Ok(Some(m)) =
        tokio::time::timeout(std::time::Duration::from_secs(3), bad.next()).await
    {
        match m {
            Ok(Message::Close(Some(f))) => {
                code = Some(u16::from(f.code));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(1009));
    send_json(
        &mut good,
        batch(vec![
            json!({"type":"conn_open","conn":2,"ip":"1.1.1.1","path":"/"}),
        ]),
    )
    .await;
    obs.wait_for("/api/connections", |v| v["total"] == 2).await;
}

#[tokio::test]
async fn unknown_subprotocol_is_refused_with_a_message() {
    let obs = start_default().await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/ingest", obs.addr),
    )
    .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "sockscope.v2.json".parse().unwrap(),
    );
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), 400);
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("sockscope.v1.msgpack"), "{body}");
        }
        other => panic!("expected an HTTP 400, got {other}"),
    }
}
