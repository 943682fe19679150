//! What the tap lets out, against a minimal real observer: masked payloads, withheld headers,
//! masked query strings and close reasons, and each payload mode, globally and per route.

mod common;

use common::{cfg, fake_observer, until};
use sockscope_tap::wire::{Capture, Closer, ConnOpen, Direction, Event, Message, Opcode};
use sockscope_tap::{ConnInfo, PayloadMode, RedactConfig, RoutePayload, Tap, TapConfig};
use tokio::sync::mpsc::UnboundedReceiver;

fn info(path: &str) -> ConnInfo {
    ConnInfo::new("192.0.2.9".parse().unwrap(), path)
}

async fn next_open(rx: &mut UnboundedReceiver<Event>) -> ConnOpen {
    match until(rx, |e| matches!(e, Event::ConnOpen(_))).await {
        Event::ConnOpen(o) => o,
        _ => unreachable!(),
    }
}

async fn next_message(rx: &mut UnboundedReceiver<Event>) -> Message {
    match until(rx, |e| matches!(e, Event::Message(_))).await {
        Event::Message(m) => m,
        _ => unreachable!(),
    }
}

/// The mirrored headers of an open, as (name, value) pairs.
#[track_caller]
fn sent_headers(o: &ConnOpen) -> Vec<(&str, &str)> {
    o.headers
        .iter()
        .map(|h| (h.0.as_str(), h.1.as_str()))
        .collect()
}

fn full(mut c: TapConfig) -> TapConfig {
    c.payload = PayloadMode::Full;
    c
}

#[tokio::test]
async fn masked_keys_never_leave_the_tap() {
    let (addr, mut rx) = fake_observer().await;
    let mut c = full(cfg(addr));
    c.redact.mask_regex = vec![r"\b\d{4}-\d{4}-\d{4}-\d{4}\b".into()];
    let tap = Tap::start(c).unwrap();
    let conn = tap.open(info("/login?user=bob&access_token=eyJ.abc.def"));
    let login = r#"{"type":1,"target":"Login","arguments":[{"user":"bob","Password":"hunter2","card":"4111-1111-1111-1111"}]}"#;
    conn.message(
        Direction::ClientToServer,
        Opcode::Text,
        format!("{login}\u{1e}").as_bytes(),
    );
    conn.message(
        Direction::ServerToClient,
        Opcode::Binary,
        br#"{"access_token":"tok-123","ok":true}"#,
    );
    conn.message(Direction::ClientToServer, Opcode::Text, b"plain chat");
    conn.close(
        Some(4000),
        Some("card 4111-1111-1111-1111 refused"),
        Closer::Server,
    );
    let o = next_open(&mut rx).await;
    assert_eq!(o.path, "/login?user=bob&access_token=[REDACTED]");
    let m = next_message(&mut rx).await;
    let text = m.text.unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("4111"),
        "{text}"
    );
    assert!(text.contains(r#""Password":"[REDACTED]""#), "{text}");
    assert_eq!((m.redacted, m.truncated), (2, false));
    let m = next_message(&mut rx).await;
    assert_eq!(
        m.data.unwrap().0,
        br#"{"access_token":"[REDACTED]","ok":true}"#.to_vec()
    );
    assert_eq!(m.redacted, 1);
    let m = next_message(&mut rx).await;
    assert_eq!((m.text.as_deref(), m.redacted), (Some("plain chat"), 0));
    let Event::ConnClose(cl) = until(&mut rx, |e| matches!(e, Event::ConnClose(_))).await else {
        unreachable!()
    };
    assert_eq!(cl.reason.as_deref(), Some("card [REDACTED] refused"));
}

#[tokio::test]
async fn masking_comes_before_truncation() {
    let (addr, mut rx) = fake_observer().await;
    let mut c = cfg(addr);
    c.payload = PayloadMode::Truncated(24);
    let tap = Tap::start(c).unwrap();
    let conn = tap.open(info("/"));
    // The cap falls inside the secret.
    conn.message(
        Direction::ClientToServer,
        Opcode::Text,
        br#"{"a":1,"secret":"correct horse battery staple"}"#,
    );
    let m = next_message(&mut rx).await;
    assert_eq!(m.text.as_deref(), Some(r#"{"a":1,"secret":"[REDACT"#));
    assert!(m.truncated && m.redacted == 1);
}

#[tokio::test]
async fn credentials_headers_are_withheld_unless_allowed() {
    let (addr, mut rx) = fake_observer().await;
    let headers = || {
        [
            ("Origin", "https://app.test"),
            ("Cookie", "sid=s3cret"),
            ("Authorization", "Bearer s3cret"),
            ("Set-Cookie", "sid=s3cret"),
            ("Proxy-Authorization", "Basic s3cret"),
            ("X-Request-Id", "r1"),
            ("Cookie", "second=1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
    };
    let tap = Tap::start(cfg(addr)).unwrap();
    let mut i = info("/");
    i.headers = headers();
    let _conn = tap.open(i);
    let o = next_open(&mut rx).await;
    let names: Vec<_> = o.headers.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(names, ["origin", "x-request-id"]);
    assert_eq!(
        o.redacted_headers,
        [
            "cookie",
            "authorization",
            "set-cookie",
            "proxy-authorization"
        ]
    );
    let json = serde_json::to_string(&o).unwrap();
    assert!(!json.contains("s3cret"), "{json}");

    // Explicitly allowed: sent.
    let (addr, mut rx) = fake_observer().await;
    let mut c = cfg(addr);
    c.mirror_headers = vec!["Cookie".into(), "authorization".into()];
    let tap = Tap::start(c).unwrap();
    let mut i = info("/");
    i.headers = headers();
    let _conn = tap.open(i);
    let o = next_open(&mut rx).await;
    let sent = sent_headers(&o);
    assert_eq!(
        sent,
        [
            ("cookie", "sid=s3cret"),
            ("authorization", "Bearer s3cret"),
            ("cookie", "second=1")
        ]
    );
    assert_eq!(
        o.redacted_headers,
        [
            "origin",
            "set-cookie",
            "proxy-authorization",
            "x-request-id"
        ]
    );
}

#[tokio::test]
async fn allowed_header_values_are_masked_too() {
    let (addr, mut rx) = fake_observer().await;
    let mut c = cfg(addr);
    c.mirror_headers = vec!["cookie".into(), "x-request-id".into()];
    c.redact.mask_regex = vec!["s3cret".into()];
    let tap = Tap::start(c).unwrap();
    let mut i = info("/");
    i.headers = vec![
        ("Cookie".into(), "sid=s3cret; theme=dark".into()),
        ("X-Request-Id".into(), r#"{"token":"abc","id":7}"#.into()),
    ];
    let _conn = tap.open(i);
    let o = next_open(&mut rx).await;
    let sent = sent_headers(&o);
    assert_eq!(
        sent,
        [
            ("cookie", "sid=[REDACTED]; theme=dark"),
            ("x-request-id", r#"{"token":"[REDACTED]","id":7}"#)
        ]
    );
}

#[tokio::test]
async fn each_payload_mode_globally_and_per_route() {
    let (addr, mut rx) = fake_observer().await;
    let mut c = cfg(addr);
    c.payload = PayloadMode::Metadata;
    c.route_payload = vec![
        RoutePayload::parse("/off=off", 0).unwrap(),
        RoutePayload::parse("/cut=truncated:3", 0).unwrap(),
        RoutePayload::parse("/all=full", 0).unwrap(),
        RoutePayload::parse("/all/but=off", 0).unwrap(),
    ];
    let tap = Tap::start(c).unwrap();
    let big = vec![b'x'; 100_000];
    let paths = ["/off", "/meta", "/cut", "/all", "/all/but/this"];
    let conns: Vec<_> = paths.iter().map(|p| tap.open(info(p))).collect();
    for c in &conns {
        c.message(Direction::ClientToServer, Opcode::Text, b"hello");
        c.message(Direction::ServerToClient, Opcode::Binary, &big);
        c.close(Some(1000), None, Closer::Client);
    }
    let mut opens = Vec::new();
    let mut msgs = Vec::new();
    let mut closes = 0;
    while closes < paths.len() {
        match until(&mut rx, |e| {
            !matches!(e, Event::Host(_) | Event::Dropped(_))
        })
        .await
        {
            Event::ConnOpen(o) => opens.push(o),
            Event::Message(m) => msgs.push(m),
            Event::ConnClose(_) => closes += 1,
            _ => {}
        }
    }
    let mode = |p: &str| {
        let o = opens.iter().find(|o| o.path == p).unwrap();
        (o.capture, o.capture_bytes)
    };
    assert_eq!(mode("/off"), (Some(Capture::Off), None));
    assert_eq!(mode("/meta"), (Some(Capture::Metadata), None));
    assert_eq!(mode("/cut"), (Some(Capture::Truncated), Some(3)));
    assert_eq!(mode("/all"), (Some(Capture::Full), Some(65536)));
    assert_eq!(mode("/all/but/this"), (Some(Capture::Off), None));
    let of = |p: &str| {
        let id = opens.iter().find(|o| o.path == p).unwrap().conn;
        msgs.iter().filter(|m| m.conn == id).collect::<Vec<_>>()
    };
    // Off: no message events, but the open and the close were recorded.
    assert!(of("/off").is_empty() && of("/all/but/this").is_empty());
    let meta = of("/meta");
    assert_eq!(meta.len(), 2);
    assert!(meta.iter().all(|m| m.text.is_none() && m.data.is_none()));
    assert_eq!((meta[1].size, meta[1].opcode), (100_000, Opcode::Binary));
    let cut = of("/cut");
    assert_eq!(
        (cut[0].text.as_deref(), cut[0].truncated),
        (Some("hel"), true)
    );
    assert_eq!(cut[1].data.as_ref().unwrap().0.len(), 3);
    let all = of("/all");
    assert_eq!(
        (all[0].text.as_deref(), all[0].truncated),
        (Some("hello"), false)
    );
    // Full is still bounded by the wire limit.
    assert_eq!(all[1].data.as_ref().unwrap().0.len(), 65536);
    assert!(all[1].truncated);
}

#[test]
fn a_bad_mask_regex_stops_the_tap_with_its_name() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _g = rt.enter();
    let mut c = TapConfig::new("ws://127.0.0.1:1/ingest", "t");
    c.redact = RedactConfig {
        mask_regex: vec!["[a-".into()],
        ..RedactConfig::default()
    };
    let e = Tap::start(c).err().unwrap().to_string();
    assert!(
        e.contains("\"[a-\"") && e.contains("not a valid regular expression"),
        "{e}"
    );
}
