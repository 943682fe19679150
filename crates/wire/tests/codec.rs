//! Round trips of both encodings and the validation rules.

use sockscope_wire::*;

fn sample() -> Batch {
    Batch::new(vec![
        Event::Hello(Hello {
            capture: None,
            source: "edge-1".into(),
            name: "Edge 1".into(),
            kind: SourceKind::Proxy,
            version: "0.1".into(),
            hostname: "h".into(),
            instance: Some(42),
        }),
        Event::ConnOpen(ConnOpen {
            conn: 1,
            ts: Some(1),
            ip: "2001:db8::1".into(),
            user_agent: Some("ua".into()),
            path: "/a?b=c".into(),
            headers: vec![Header("origin".into(), "x".into())],
            subprotocol: Some("p".into()),
            capture: Some(Capture::Truncated),
            capture_bytes: Some(4096),
            redacted_headers: vec!["cookie".into(), "authorization".into()],
        }),
        Event::Message(Message {
            flight: false,
            conn: 1,
            ts: None,
            dir: Direction::ServerToClient,
            opcode: Opcode::Binary,
            size: 300,
            text: None,
            data: Some(Payload(vec![0, 1, 2, 255])),
            truncated: true,
            redacted: 0,
        }),
        Event::Message(Message {
            flight: false,
            conn: 1,
            ts: None,
            dir: Direction::ClientToServer,
            opcode: Opcode::Text,
            size: 3,
            text: Some("hé".to_string()),
            data: None,
            truncated: false,
            redacted: 0,
        }),
        Event::Message(Message {
            flight: false,
            conn: 1,
            ts: None,
            dir: Direction::ClientToServer,
            opcode: Opcode::Text,
            size: 20,
            text: Some(r#"{"token":"[REDACTED]"}"#.to_string()),
            data: None,
            truncated: false,
            redacted: 1,
        }),
        Event::ConnClose(ConnClose {
            conn: 1,
            ts: None,
            code: Some(4000),
            reason: Some("r".into()),
            by: Closer::Proxy,
        }),
        Event::Host(Host {
            ts: None,
            cpu_pct: 3.5,
            mem_used: 1,
            mem_total: 2,
            rss: 3,
        }),
        Event::Dropped(Dropped {
            conn_open: 1,
            message: 2,
            conn_close: 3,
            host: 4,
        }),
    ])
}

#[test]
fn both_encodings_round_trip() {
    let b = sample();
    for enc in [Encoding::Json, Encoding::MsgPack] {
        let bytes = encode_batch(enc, &b);
        assert_eq!(
            decode_batch(enc, &bytes, &Limits::default()).unwrap(),
            b,
            "{enc:?}"
        );
    }
    let json = String::from_utf8(encode_batch(Encoding::Json, &b)).unwrap();
    assert!(json.contains(r#""type":"conn_open""#));
    assert!(
        json.contains(r#""data":"AAEC/w==""#),
        "binary is base64 in JSON: {json}"
    );
    let mp = encode_batch(Encoding::MsgPack, &b);
    assert!(mp.len() < json.len());
}

#[test]
fn msgpack_errors_name_the_field() {
    let bad = serde_json::json!({"v":1,"events":[{"type":"conn_open","conn":"x","ip":"1.1.1.1","path":"/"}]});
    let bytes = rmp_serde::to_vec_named(&bad).unwrap();
    let e = decode_batch(Encoding::MsgPack, &bytes, &Limits::default()).unwrap_err();
    assert_eq!(e.code(), "malformed");
    assert!(e.to_string().contains("events[0].conn"), "{e}");
    let e = decode_batch(Encoding::MsgPack, &[0xc1], &Limits::default()).unwrap_err();
    assert_eq!(e.code(), "malformed");
}

/// A rejected frame past LOCATE_MAX_BYTES is not rebuilt as a JSON tree to find the field:
/// the streaming decoder's error names the event instead (small frames keep the field).
#[test]
fn a_big_rejected_frame_is_reported_without_a_second_tree() {
    let big = "x".repeat(LOCATE_MAX_BYTES);
    let bad = |text: &str| {
        serde_json::json!({"v":1,"events":[
            {"type":"hello","source":"s","kind":"proxy"},
            {"type":"message","conn":1,"dir":"c2s","opcode":"text","size":1,"text":text},
            {"type":"conn_open","conn":"x","ip":"1.1.1.1","path":"/"}
        ]})
        .to_string()
    };
    let limits = Limits {
        max_payload: 2 * LOCATE_MAX_BYTES,
        ..Limits::default()
    };
    let small = decode_batch(Encoding::Json, bad("hi").as_bytes(), &limits).unwrap_err();
    assert!(small.to_string().contains("events[2].conn"), "{small}");
    let e = decode_batch(Encoding::Json, bad(&big).as_bytes(), &limits).unwrap_err();
    assert_eq!(e.code(), "malformed");
    let text = e.to_string();
    assert!(
        text.contains("events[2]") && !text.contains("events[2].conn"),
        "{text}"
    );
}

fn check(ev: serde_json::Value) -> Result<Batch, WireError> {
    let body = serde_json::json!({"v":1,"events":[ev]}).to_string();
    decode_batch(
        Encoding::Json,
        body.as_bytes(),
        &Limits {
            max_events: 10,
            max_payload: 8,
        },
    )
}

#[test]
fn validation_rules() {
    use serde_json::json;
    let field = |r: Result<Batch, WireError>| match r {
        Err(WireError::Invalid { field, .. }) => field,
        other => panic!("expected invalid, got {other:?}"),
    };
    assert_eq!(
        field(check(
            json!({"type":"hello","source":"bad id!","kind":"app"})
        )),
        "source"
    );
    assert_eq!(
        field(check(json!({"type":"hello","source":"","kind":"app"}))),
        "source"
    );
    assert_eq!(
        field(check(
            json!({"type":"conn_open","conn":1,"ip":"999.1.1.1","path":"/"})
        )),
        "ip"
    );
    assert_eq!(
        field(check(
            json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/","user_agent":"u".repeat(3000)})
        )),
        "user_agent"
    );
    assert_eq!(
        field(check(
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":3,"data":"AAA="})
        )),
        "data"
    );
    assert_eq!(
        field(check(
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"binary","size":3,"text":"abc"})
        )),
        "text"
    );
    assert_eq!(
        field(check(
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"ping","size":200})
        )),
        "size"
    );
    assert_eq!(
        field(check(
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":2,"text":"abc"})
        )),
        "size"
    );
    assert_eq!(
        field(check(
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":5,"text":"abc"})
        )),
        "truncated"
    );
    assert_eq!(
        field(check(
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":20,"text":"123456789","truncated":true})
        )),
        "payload"
    );
    assert_eq!(
        field(check(
            json!({"type":"conn_close","conn":1,"code":999,"by":"client"})
        )),
        "code"
    );
    assert_eq!(
        field(check(
            json!({"type":"host","cpu_pct":120.0,"mem_used":1,"mem_total":2,"rss":0})
        )),
        "cpu_pct"
    );
    assert_eq!(
        field(check(
            json!({"type":"host","cpu_pct":1.0,"mem_used":3,"mem_total":2,"rss":0})
        )),
        "mem_used"
    );
    assert!(check(json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":5,"text":"abc","truncated":true})).is_ok());
    assert!(
        check(json!({"type":"message","conn":1,"dir":"c2s","opcode":"binary","size":5000})).is_ok(),
        "metadata only"
    );
    let e = check(json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/","extra":1}))
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `extra`"), "{e}");
    let body = br#"{"v":1,"events":[{"type":"dropped"},{"type":"dropped"}]}"#;
    let e = decode_batch(
        Encoding::Json,
        body,
        &Limits {
            max_events: 1,
            max_payload: 8,
        },
    )
    .unwrap_err();
    assert_eq!(e, WireError::TooManyEvents { count: 2, limit: 1 });
}

#[test]
fn redaction_fields_are_optional_and_checked() {
    use serde_json::json;
    let field = |r: Result<Batch, WireError>| match r {
        Err(WireError::Invalid { field, .. }) => field,
        other => panic!("expected invalid, got {other:?}"),
    };
    // Batches from taps that predate redaction stay valid and read as "not said".
    let b = check(json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/"})).unwrap();
    match &b.events[0] {
        Event::ConnOpen(o) => {
            assert_eq!((o.capture, o.capture_bytes), (None, None));
            assert!(o.redacted_headers.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // Unset fields are not written, so older observers read what new taps send without them.
    let json = String::from_utf8(encode_batch(Encoding::Json, &b)).unwrap();
    assert!(
        !json.contains("capture") && !json.contains("redacted"),
        "{json}"
    );
    assert!(check(
        json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/",
        "capture":"metadata","redacted_headers":["cookie"]})
    )
    .is_ok());
    assert_eq!(
        field(check(
            json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/",
            "capture":"metadata","capture_bytes":10})
        )),
        "capture_bytes"
    );
    assert_eq!(
        field(check(
            json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/",
            "redacted_headers":[""]})
        )),
        "redacted_headers"
    );
    let many: Vec<String> = (0..65).map(|i| format!("h{i}")).collect();
    assert_eq!(
        field(check(
            json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/",
            "redacted_headers":many})
        )),
        "redacted_headers"
    );
    let e = check(json!({"type":"conn_open","conn":1,"ip":"1.1.1.1","path":"/","capture":"some"}))
        .unwrap_err();
    assert_eq!(e.code(), "malformed");
    // A masked payload may be longer than the original; `truncated` is then the tap's word.
    assert!(check(
        json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":3,
        "text":"\"[RED","redacted":1,"truncated":true})
    )
    .is_ok());
    assert_eq!(
        field(check(
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":3,
            "redacted":1})
        )),
        "redacted"
    );
    assert_eq!(
        field(check(
            json!({"type":"message","conn":1,"dir":"c2s","opcode":"text","size":1,
            "text":"[RE","redacted":2})
        )),
        "redacted"
    );
}

#[test]
fn on_demand_counters_and_demand_replies() {
    let ok = check(serde_json::json!({"type":"counters","conns":[
        {"conn":1,"msgs_in":2,"bytes_in":10},{"conn":2,"msgs_out":1,"bytes_out":0}]}))
    .unwrap();
    let Event::Counters(c) = &ok.events[0] else {
        panic!("{ok:?}")
    };
    assert_eq!((c.conns[0].msgs_in, c.conns[1].msgs_out), (2, 1));
    let bad = check(serde_json::json!({"type":"counters","conns":[{"conn":1,"bytes_in":10}]}))
        .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "events[0].conns: [0] counts bytes without messages"
    );
    let hello = check(
        serde_json::json!({"type":"hello","source":"s","kind":"proxy","capture":"on_demand"}),
    );
    assert!(hello.is_ok(), "{hello:?}");
    let d: Reply = serde_json::from_str(r#"{"type":"demand","all":false,"conns":[3,1]}"#).unwrap();
    assert_eq!(
        d,
        Reply::Demand(Demand {
            all: false,
            conns: vec![3, 1]
        })
    );
}

/// Events are decoded by their `"type"` wherever it stands (our taps write it first, and
/// that path does not buffer the event); a missing or unknown type is named.
#[test]
fn the_type_may_come_anywhere_in_an_event() {
    let first = r#"{"v":1,"events":[{"type":"message","conn":7,"dir":"c2s","opcode":"text","size":2,"text":"hi"}]}"#;
    let last = r#"{"v":1,"events":[{"conn":7,"dir":"c2s","opcode":"text","size":2,"text":"hi","type":"message"}]}"#;
    let a = decode_batch(Encoding::Json, first.as_bytes(), &Limits::default()).unwrap();
    let b = decode_batch(Encoding::Json, last.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(a, b);
    assert!(
        matches!(&a.events[0], Event::Message(m) if m.conn == 7 && m.text.as_deref() == Some("hi"))
    );
    // Binary payloads with the type first, in MessagePack, round trip (the fast path).
    let s = sample();
    let enc = encode_batch(Encoding::MsgPack, &s);
    assert_eq!(
        decode_batch(Encoding::MsgPack, &enc, &Limits::default()).unwrap(),
        s
    );
    for (bad, says) in [
        (r#"{"v":1,"events":[{"conn":7}]}"#, "missing field `type`"),
        (r#"{"v":1,"events":[{}]}"#, "missing field `type`"),
        (
            r#"{"v":1,"events":[{"type":"teleport","conn":7}]}"#,
            "unknown variant `teleport`",
        ),
        (
            r#"{"v":1,"events":[{"conn":7,"type":"teleport"}]}"#,
            "unknown variant `teleport`",
        ),
        (
            r#"{"v":1,"events":[{"type":"message","conn":"seven"}]}"#,
            "conn",
        ),
        (
            r#"{"v":1,"events":[{"conn":"seven","type":"message"}]}"#,
            "conn",
        ),
        (r#"{"v":1,"events":[7]}"#, "a map with a \"type\""),
    ] {
        let err = decode_batch(Encoding::Json, bad.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "malformed", "{bad}: {err}");
        assert!(err.to_string().contains(says), "{bad}: {err}");
    }
}
