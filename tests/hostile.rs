//! Hostile tap input against a real observer: every batch is either refused with a clear error
//! or stored intact, and the observer keeps serving other taps and the API.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sockscope_wire::Limits;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const JSON: &str = "application/json";
const MSGPACK: &str = "application/vnd.sockscope.v1+msgpack";

/// The observer still answers, counts the rejections, and takes a fresh tap's batch.
async fn still_serving(obs: &Observer, rejected_at_least: u64) {
    let (status, _) = obs.get("/healthz").await;
    assert_eq!(status, 200);
    let source = format!("after-{}", rand_id());
    let (s, v) = obs
        .post(
            batch(vec![
                hello(&source),
                json!({"type":"conn_open","conn":1,"ip":"192.0.2.1","path":"/fine"}),
            ])
            .to_string(),
            JSON,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let q = format!("/api/connections?q={source}");
    obs.wait_for(&q, |v| v["total"] == 1).await;
    let ov = obs.get_ok("/api/overview").await;
    let errors = ov["observer"]["ingest_errors"].as_u64().unwrap();
    assert!(errors >= rejected_at_least, "ingest_errors {errors}");
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The close frame the observer answers with, if any, within 3 s.
async fn close_code(ws: &mut Ws) -> Option<(u16, String)> {
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
        match m {
            Ok(Message::Close(Some(f))) => return Some((u16::from(f.code), f.reason.to_string())),
            Ok(Message::Close(None)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
    None
}

/// The detail of the one connection matching `q`, once it has `messages` stored.
async fn detail_of(obs: &Observer, q: &str, messages: usize) -> Value {
    let page = obs
        .wait_for(&format!("/api/connections?state=all&q={q}"), |v| {
            v["total"] == 1
        })
        .await;
    let id = page["items"][0]["id"].as_u64().unwrap();
    obs.wait_for(&format!("/api/connections/{id}"), |v| {
        v["messages"]
            .as_array()
            .is_some_and(|m| m.len() == messages)
    })
    .await
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007_and_others_continue() {
    let obs = start_default().await;
    let mut good = obs.tap(Some("sockscope.v1.json")).await;
    send_json(&mut good, batch(vec![hello("good")])).await;
    let mut bad = obs.tap(Some("sockscope.v1.json")).await;
    let mut bytes = br#"{"v":1,"events":[{"type":"hello","source":"bad","name":""#.to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    bytes.extend_from_slice(br#"","kind":"app"}]}"#);
    bad.send(Message::Frame(Frame::message(
        bytes,
        OpCode::Data(Data::Text),
        true,
    )))
    .await
    .unwrap();
    let (code, reason) = close_code(&mut bad).await.expect("a close frame");
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("UTF-8"), "{reason}");
    // The other session is unaffected.
    send_json(
        &mut good,
        batch(vec![
            json!({"type":"conn_open","conn":1,"ip":"192.0.2.2","path":"/still"}),
        ]),
    )
    .await;
    obs.wait_for("/api/connections?q=/still", |v| v["total"] == 1)
        .await;
    still_serving(&obs, 1).await;
}

#[tokio::test]
async fn invalid_utf8_and_lone_surrogates_in_posts_are_malformed() {
    let obs = start_default().await;
    let head = r#"{"v":1,"events":[{"type":"hello","source":"s","kind":"app"},{"type":"conn_open","conn":1,"ip":"192.0.2.3","path":"/"#;
    let mut invalid = head.as_bytes().to_vec();
    invalid.extend_from_slice(&[0xed, 0xa0, 0x80, 0xff]); // an encoded surrogate, then junk
    invalid.extend_from_slice(br#""}]}"#);
    let mut bodies = vec![invalid];
    for esc in [r"\ud800", r"\udc00", r"\ud800\u0041", r"\ud800x"] {
        bodies.push(format!(r#"{head}{esc}"}}]}}"#).into_bytes());
    }
    for (i, body) in bodies.into_iter().enumerate() {
        let (s, v) = obs.post(body, JSON).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("malformed")),
            "{i}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains("events[1].path"),
            "{i}: {v}"
        );
    }
    // A proper surrogate pair is fine, and stored as the character it encodes.
    let (s, v) = obs.post(format!(r#"{head}\ud83d\ude00"}}]}}"#), JSON).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(detail_of(&obs, "192.0.2.3", 0).await["path"], "/😀");
    still_serving(&obs, 5).await;
}

#[tokio::test]
async fn nul_control_and_bidi_characters_are_stored_intact() {
    let obs = start_default().await;
    let nasty = "a\0b\x1b[2J\u{202e}c\u{200b}\u{feff}\n\t\r\u{7f}\u{85}<script>alert(1)</script>";
    let (s, v) = obs
        .post(
            batch(vec![
                json!({"type":"hello","source":"ctl","name":nasty,"hostname":nasty,"version":nasty,"kind":"proxy"}),
                json!({"type":"conn_open","conn":1,"ip":"192.0.2.4","user_agent":nasty,"path":format!("/{nasty}"),
                       "headers":[[nasty, nasty]],"subprotocol":nasty}),
                json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":nasty.len(),"text":nasty}),
                json!({"type":"conn_close","conn":1,"code":4000,"reason":nasty,"by":"client"}),
            ])
            .to_string(),
            JSON,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let d = detail_of(&obs, "192.0.2.4", 1).await;
    assert_eq!(d["user_agent"], nasty);
    assert_eq!(d["path"], format!("/{nasty}"));
    assert_eq!(d["source"], nasty);
    assert_eq!(d["headers"], json!([[nasty, nasty]]));
    // Not a protocol name: masked like a token passed as a subprotocol (the rest is intact).
    assert_eq!(d["subprotocol"], "[REDACTED]");
    assert_eq!(d["close_reason"], nasty);
    assert_eq!(d["messages"][0]["text"], nasty);
    let sources = obs.get_ok("/api/sources").await;
    let src = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "ctl");
    assert_eq!(src.unwrap()["hostname"], nasty);
    // The exports carry them escaped, as valid JSON.
    let id = d["id"].as_u64().unwrap();
    let har: Value = obs
        .http
        .get(obs.url(&format!("/api/export?format=har&conn={id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        har["log"]["entries"][0]["_webSocketMessages"][0]["data"],
        nasty
    );
    let ndjson = obs
        .text(&format!("/api/export?format=ndjson&conn={id}"), None)
        .await;
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{ndjson}");
    assert!(lines.iter().any(|e| e["text"] == nasty));
    still_serving(&obs, 0).await;
}

#[tokio::test]
async fn strings_at_the_wire_limits_are_stored_intact_and_one_byte_more_is_refused() {
    // Room for 64 headers of 8 KiB (the default --conn-meta-bytes keeps 16 KiB a connection).
    let obs = start(sockscope::server::config::ObserverConfig {
        agg: sockscope::server::config::AggConfig {
            conn_meta_bytes: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    // Two-byte characters up to the limit: no truncation may split one.
    let at = |n: usize| "é".repeat(n / 2);
    let ua = at(Limits::MAX_USER_AGENT);
    let path = format!("/{}", "p".repeat(Limits::MAX_PATH - 1));
    let headers: Vec<Value> = (0..Limits::MAX_HEADERS)
        .map(|i| {
            json!([
                format!("{i:03}{}", "h".repeat(Limits::MAX_HEADER_NAME - 3)),
                at(Limits::MAX_HEADER_VALUE)
            ])
        })
        .collect();
    let reason = format!("{}x", at(Limits::MAX_REASON - 1));
    let text = at(Limits::DEFAULT_MAX_PAYLOAD);
    let name = at(Limits::MAX_NAME);
    let events = |ua: &str| {
        batch(vec![
            json!({"type":"hello","source":"s".repeat(Limits::MAX_SOURCE_ID),"name":name,"hostname":name,"version":name,"kind":"gateway"}),
            json!({"type":"conn_open","conn":1,"ip":"192.0.2.5","user_agent":ua,"path":path,"headers":headers,"subprotocol":name}),
            json!({"type":"message","conn":1,"dir":"s2c","opcode":"text","size":text.len(),"text":text}),
            json!({"type":"conn_close","conn":1,"code":4999,"reason":reason,"by":"proxy"}),
        ])
    };
    // One byte over the user-agent limit: refused as a whole, naming the field.
    let (s, v) = obs.post(events(&format!("{ua}x")).to_string(), JSON).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_event")), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("events[1].user_agent: 2049 bytes; the limit is 2048"),
        "{v}"
    );
    let (s, v) = obs.post(events(&ua).to_string(), JSON).await;
    assert_eq!(s, 200, "{v}");
    let d = detail_of(&obs, "192.0.2.5", 1).await;
    assert_eq!(d["user_agent"], ua);
    assert_eq!(d["path"], path);
    assert_eq!(d["headers"], json!(headers));
    assert_eq!(d["close_reason"], reason);
    // A 128-character subprotocol is taken for a token and masked.
    assert_eq!(d["subprotocol"], "[REDACTED]");
    assert_eq!(d["source"], name);
    assert_eq!(d["messages"][0]["text"], text);
    assert_eq!(d["messages"][0]["truncated"], false);
    still_serving(&obs, 1).await;
}

#[tokio::test]
async fn a_payload_of_json_nested_10000_deep_is_stored_intact() {
    let obs = start_default().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objs = format!("{}0{}", r#"{"a":"#.repeat(6_000), "}".repeat(6_000));
    let mut tap = obs.tap(Some("sockscope.v1.json")).await;
    send_json(
        &mut tap,
        batch(vec![
            hello("deep"),
            json!({"type":"conn_open","conn":1,"ip":"192.0.2.6","path":"/deep"}),
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":deep.len(),"text":deep}),
            json!({"type":"message","conn":1,"dir":"s2c","opcode":"text","size":objs.len(),"text":objs}),
        ]),
    )
    .await;
    let d = detail_of(&obs, "/deep", 2).await;
    assert_eq!(d["messages"][0]["text"], deep);
    assert_eq!(d["messages"][1]["text"], objs);
    // Text filters run over it without trouble.
    let id = d["id"].as_u64().unwrap();
    let t = obs
        .get_ok(&format!("/api/trace?kind=message&conn={id}"))
        .await;
    assert_eq!(t["items"].as_array().unwrap().len(), 2, "{t}");
    let found = obs
        .get_ok(&format!(
            "/api/trace?kind=message&text=%5B%5B%5D%5D&conn={id}"
        ))
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    still_serving(&obs, 0).await;
}

/// MessagePack: a map of `n` levels of one-element arrays under an event field.
fn msgpack_nested(levels: usize) -> Vec<u8> {
    let mut b = vec![0x82]; // {"v": 1, "events": [ {"type": "hello", "source": [[[…]]]} ]}
    b.extend_from_slice(&[0xa1, b'v', 0x01]);
    b.extend_from_slice(&[0xa6]);
    b.extend_from_slice(b"events");
    b.extend_from_slice(&[0x91, 0x82, 0xa4]);
    b.extend_from_slice(b"type");
    b.extend_from_slice(&[0xa5]);
    b.extend_from_slice(b"hello");
    b.extend_from_slice(&[0xa6]);
    b.extend_from_slice(b"source");
    b.extend(std::iter::repeat_n(0x91, levels));
    b.push(0xc0);
    b
}

#[tokio::test]
async fn deeply_nested_batches_are_refused_without_recursing_into_them() {
    let obs = start_default().await;
    // JSON nesting in the batch itself, and inside an event.
    let outer = format!(
        r#"{{"v":1,"events":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let inner = format!(
        r#"{{"v":1,"events":[{{"type":"hello","source":{}1{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let mut refused = 0;
    for body in [outer, inner] {
        let (s, v) = obs.post(body, JSON).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("malformed")), "{v}");
        refused += 1;
    }
    // MessagePack, over POST and over a session: as deep as its decoder allows, and deeper.
    for levels in [200, 1_000, 100_000] {
        let (s, v) = obs.post(msgpack_nested(levels), MSGPACK).await;
        assert_eq!((s, v["code"].as_str()), (400, Some("malformed")), "{v}");
        refused += 1;
    }
    let mut tap = obs.tap(Some("sockscope.v1.msgpack")).await;
    tap.send(Message::Binary(msgpack_nested(1_000).into()))
        .await
        .unwrap();
    let reply = next_json(&mut tap).await;
    assert_eq!(reply["code"], "malformed", "{reply}");
    still_serving(&obs, refused + 1).await;
}

/// Defence in depth: the dashboard page may run only the scripts its render marked with a fresh
/// nonce (and what they import), so HTML that ever slipped into the page could not execute.
#[tokio::test]
async fn the_page_allows_only_its_own_nonced_scripts() {
    let obs = start_default().await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let r = obs.http.get(obs.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        let html = r.text().await.unwrap();
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .unwrap_or_else(|| panic!("no nonce in {csp}"))
            .to_string();
        assert!(nonce.len() >= 16, "{nonce}");
        assert!(
            csp.contains("'strict-dynamic'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let scripts = html.matches("<script").count();
        assert!(scripts > 0, "{html}");
        assert_eq!(
            html.matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
                .count()
                + html.matches(&format!("<script nonce=\"{nonce}\"")).count(),
            scripts,
            "every script carries this render's nonce: {html}"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a fresh nonce per page");
    // Everything else allows no script at all.
    let r = obs.http.get(obs.url("/api/overview")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("script-src 'none'"), "{csp}");
}
