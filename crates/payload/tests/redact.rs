//! The Redactor through its public API: keys at depth, framings, the fail-closed fallback,
//! regexes, truncation after masking, and the no-hit fast path.

use sockscope_payload::redact::{RedactConfig, RedactError, Redactor, DEFAULT_MASK_KEYS};
use sockscope_payload::REDACTED;
use std::borrow::Cow;

fn default() -> Redactor {
    Redactor::default()
}

fn with(keys: &[&str], regex: &[&str]) -> Redactor {
    Redactor::new(&RedactConfig {
        mask_keys: keys.iter().map(|k| k.to_string()).collect(),
        mask_regex: regex.iter().map(|r| r.to_string()).collect(),
    })
    .unwrap()
}

#[track_caller]
fn text(r: &Redactor, t: &str) -> (String, u32) {
    let (s, n) = r.redact_str(t);
    (s.into_owned(), n)
}

#[test]
fn keys_are_masked_at_any_depth_and_type() {
    let r = default();
    let (out, n) = text(
        &r,
        r#"{"user":"bob","Password":"hunter2","nested":{"deeper":[{"access_token":{"a":[1,2]}},{"ok":1}]},"apiKey":12345,"session":null}"#,
    );
    assert_eq!(
        out,
        r#"{"user":"bob","Password":"[REDACTED]","nested":{"deeper":[{"access_token":"[REDACTED]"},{"ok":1}]},"apiKey":"[REDACTED]","session":"[REDACTED]"}"#
    );
    assert_eq!(n, 4);
    let v: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
    assert_eq!(v["user"], "bob");
}

#[test]
fn keys_in_arrays_and_formatting_are_kept() {
    let r = default();
    let (out, n) = text(
        &r,
        "[ {\"token\" :\n \"a\\\"b\" } , {\"TOKEN\": true}, \"password\" ]",
    );
    assert_eq!(
        out,
        "[ {\"token\" :\n \"[REDACTED]\" } , {\"TOKEN\": \"[REDACTED]\"}, \"password\" ]"
    );
    assert_eq!(n, 2, "a string that merely says password is not a key");
}

#[test]
fn signalr_records_are_masked_one_by_one() {
    let r = default();
    let frame = "{\"protocol\":\"json\",\"version\":1}\u{1e}{\"type\":1,\"target\":\"Login\",\"arguments\":[{\"user\":\"bob\",\"password\":\"pw1\"}]}\u{1e}{\"type\":1,\"target\":\"Send\",\"arguments\":[\"hi\"],\"headers\":{\"Authorization\":\"Bearer x\"}}\u{1e}";
    let (out, n) = text(&r, frame);
    assert_eq!(n, 2);
    assert!(!out.contains("pw1") && !out.contains("Bearer"), "{out}");
    let recs = sockscope_payload::decode::signalr(&out).expect("still SignalR");
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs[1].body,
        Some(serde_json::json!([{"user": "bob", "password": REDACTED}]))
    );
}

#[test]
fn socketio_packets_are_masked_after_their_prefix() {
    let r = default();
    for (pkt, prefix) in [
        (r#"42["login",{"token":"abc","room":"r"}]"#, "42"),
        (r#"42/admin,13["login",{"token":"abc"}]"#, "42/admin,13"),
        (r#"451-["up",{"token":"abc"}]"#, "451-"),
        (r#"0{"sid":"x","token":"abc"}"#, "0"),
    ] {
        let (out, n) = text(&r, pkt);
        assert_eq!(n, 1, "{pkt}");
        assert!(out.starts_with(prefix) && !out.contains("abc"), "{out}");
        assert!(sockscope_payload::decode::socketio(&out).is_some(), "{out}");
    }
}

#[test]
fn json_inside_a_string_is_masked_and_reencoded() {
    let r = default();
    let (out, n) = text(
        &r,
        r#"{"type":1,"arguments":["{\"token\":\"abc\",\"x\":1}"]}"#,
    );
    assert_eq!(n, 1);
    assert_eq!(
        out,
        r#"{"type":1,"arguments":["{\"token\":\"[REDACTED]\",\"x\":1}"]}"#
    );
}

#[test]
fn escaped_key_names_are_found() {
    let (out, n) = text(&default(), r#"{"pass\u0077ord":"s3cret"}"#);
    assert_eq!((out.as_str(), n), (r#"{"pass\u0077ord":"[REDACTED]"}"#, 1));
}

#[test]
fn invalid_json_falls_back_to_the_byte_regex() {
    let r = default();
    // Not JSON at all (a log line quoting JSON), broken JSON, and binary that is not UTF-8.
    let (out, n) = text(
        &r,
        r#"login ok {"password": "pw 1", "token":-12.5e3, "secret" : true, "session":"unterminated"#,
    );
    assert_eq!(
        out,
        r#"login ok {"password": "[REDACTED]", "token":"[REDACTED]", "secret" : "[REDACTED]", "session":"[REDACTED]""#
    );
    assert_eq!(n, 4);
    let (out, n) = text(&r, r#"{"token":"abc",,}"#);
    assert_eq!((out.as_str(), n), (r#"{"token":"[REDACTED]",,}"#, 1));
    let mut bin = b"\xff\x00{\"token\":\"abc\"}\xfe".to_vec();
    let (out, n) = r.redact_bytes(&bin);
    assert_eq!(n, 1);
    assert_eq!(&out[..], b"\xff\x00{\"token\":\"[REDACTED]\"}\xfe");
    bin.truncate(2);
    assert!(matches!(r.redact_bytes(&bin), (Cow::Borrowed(_), 0)));
}

#[test]
fn too_deep_json_falls_back_too() {
    let deep = format!(
        "{}{{\"token\":\"abc\"}}{}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let (out, n) = text(&default(), &deep);
    assert_eq!(n, 1);
    assert!(!out.contains("abc"));
}

#[test]
fn regexes_mask_text_and_binary() {
    let r = with(
        &[],
        &[r"\b\d{4}-\d{4}-\d{4}-\d{4}\b", r"(?i)bearer [a-z0-9._-]+"],
    );
    let (out, n) = text(
        &r,
        "card 4111-1111-1111-1111 and Bearer abc.def and 4111-1111",
    );
    assert_eq!(
        out,
        "card [REDACTED] and [REDACTED] and 4111-1111".to_string()
    );
    assert_eq!(n, 2);
    let (out, n) = r.redact_bytes(b"\x00\xffBEARER tok\x00");
    assert_eq!((&out[..], n), (&b"\x00\xff[REDACTED]\x00"[..], 1));
}

#[test]
fn a_regex_inside_a_masked_value_counts_once() {
    let r = with(&["token"], &["abc"]);
    let (out, n) = text(&r, r#"{"token":"xabcx","b":"abc"}"#);
    assert_eq!(out, r#"{"token":"[REDACTED]","b":"[REDACTED]"}"#);
    assert_eq!(n, 2);
}

#[test]
fn bad_regexes_are_named() {
    let e = Redactor::new(&RedactConfig {
        mask_keys: vec![],
        mask_regex: vec!["ok".into(), "(unclosed".into()],
    })
    .unwrap_err();
    assert!(matches!(&e, RedactError::BadRegex { pattern, .. } if pattern == "(unclosed"));
    assert!(e.to_string().contains("(unclosed"), "{e}");
    let e = Redactor::new(&RedactConfig {
        mask_keys: vec![],
        mask_regex: vec!["x*".into()],
    })
    .unwrap_err();
    assert!(e.to_string().contains("empty string"), "{e}");
}

#[test]
fn truncation_comes_after_masking() {
    let r = default();
    let msg = r#"{"a":"xxxxxxxx","password":"correct horse battery staple","b":1}"#;
    // The cap falls inside the password: what is captured shows no part of it.
    let cut = msg.find("horse").unwrap();
    let c = r.capture_text(msg, cut);
    assert!(c.truncated);
    assert_eq!(
        c.payload,
        r#"{"a":"xxxxxxxx","password":"[REDACTED]""#[..cut]
    );
    assert!(!c.payload.contains("correct"));
    assert_eq!(c.redacted, 1);
    // A cap before the masked value: nothing redacted in what was captured.
    let c = r.capture_text(msg, 6);
    assert_eq!(
        (&*c.payload, c.truncated, c.redacted),
        ("{\"a\":\"", true, 0)
    );
    // Regex matches cut by the cap are not half shown either.
    let r = with(&[], &[r"\d{16}"]);
    let c = r.capture_text("id 1234567812345678 end", 8);
    assert_eq!(
        (&*c.payload, c.truncated, c.redacted),
        ("id [REDA", true, 1)
    );
    // Binary captures mask first too.
    let c = with(&["token"], &[]).capture_bytes(br#"{"token":"abcdefgh"}"#, 14);
    assert_eq!(&c.payload[..], br#"{"token":"[RED"#);
}

#[test]
fn a_document_longer_than_the_lookahead_is_masked_as_a_cut_document() {
    let r = default();
    let filler = "y".repeat(sockscope_payload::redact::MASK_LOOKAHEAD);
    let msg = format!(r#"{{"token":"abc","pad":"{filler}","secret":"zzz"}}"#);
    let c = r.capture_text(&msg, 100);
    assert!(c.truncated);
    assert!(c.payload.starts_with(r#"{"token":"[REDACTED]","pad":"yyy"#));
    assert_eq!(c.redacted, 1);
}

#[test]
fn no_key_means_no_parse_and_a_borrowed_payload() {
    let r = default();
    let msg = r#"{"type":1,"target":"Send","arguments":["just chatting"]}"#;
    assert!(matches!(r.redact_str(msg), (Cow::Borrowed(_), 0)));
    let c = r.capture_text(msg, 10);
    assert!(matches!(c.payload, Cow::Borrowed("{\"type\":1,")));
    assert!(c.truncated && c.redacted == 0);
    // A key name that is only a value is parsed, but nothing changes.
    assert!(matches!(
        r.redact_str(r#"{"word":"token"}"#),
        (Cow::Owned(_), _) | (Cow::Borrowed(_), 0)
    ));
    assert_eq!(r.redact_str(r#"{"word":"token"}"#).1, 0);
    // Multi-byte text is cut at a character boundary.
    let c = r.capture_text("héllo", 2);
    assert_eq!((&*c.payload, c.truncated), ("h", true));
    assert!(Redactor::new(&RedactConfig::none()).unwrap().is_noop());
}

#[test]
fn query_parameters_named_like_keys_are_masked() {
    let r = default();
    let (p, n) = r.redact_path("/hub?id=7&access_token=eyJhbGci.x.y&Token=&x=token");
    assert_eq!(p, "/hub?id=7&access_token=[REDACTED]&Token=&x=token");
    assert_eq!(n, 1);
    assert!(matches!(
        r.redact_path("/chat?room=1"),
        (Cow::Borrowed(_), 0)
    ));
}

#[test]
fn every_default_key_is_masked() {
    let r = default();
    for k in DEFAULT_MASK_KEYS {
        let (out, n) = text(&r, &format!(r#"{{"{k}":"v4lue"}}"#));
        assert_eq!(n, 1, "{k}");
        assert!(!out.contains("v4lue"), "{k}");
    }
}

#[test]
fn non_ascii_keys_work() {
    let r = with(&["Passwört"], &[]);
    let (out, n) = text(&r, r#"{"passwört":"x","b":"Passwört: 1"}"#);
    assert_eq!(
        (out.as_str(), n),
        (r#"{"passwört":"[REDACTED]","b":"Passwört: 1"}"#, 1)
    );
    let (out, n) = text(&r, r#"oops {"PASSWöRT":"x""#);
    assert_eq!(n, 1, "{out}");
}

#[test]
fn secrets_in_text_that_is_not_json_are_masked() {
    let r = Redactor::default();
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLXBhcnQ";
    for (text, want) in [
        // STOMP CONNECT frame.
        (
            "CONNECT\naccept-version:1.2\nlogin:bob\npasscode:hunter2\n\n\0",
            "CONNECT\naccept-version:1.2\nlogin:bob\npasscode:[REDACTED]\n\n\0",
        ),
        // A form-encoded body, a percent-encoded name among them.
        (
            "user=bob&password=hunter2&access%5Ftoken=abc123&x=1",
            "user=bob&password=[REDACTED]&access%5Ftoken=[REDACTED]&x=1",
        ),
        // An Authorization line inside a text frame.
        (
            "GET / HTTP/1.1\r\nAuthorization: Bearer s3cr3t-t0ken\r\n",
            "GET / HTTP/1.1\r\nAuthorization: Bearer [REDACTED]\r\n",
        ),
        // New keys.
        (
            "ticket=T-123&sig=abcdef",
            "ticket=[REDACTED]&sig=[REDACTED]",
        ),
    ] {
        assert_eq!(r.redact_str(text).0, want, "{text:?}");
    }
    // A JWT anywhere, even in prose.
    let said = format!("my token is {jwt} ok");
    assert_eq!(r.redact_str(&said).0, "my token is [REDACTED] ok");
    // Query names percent-encoded in paths.
    assert_eq!(
        r.redact_path("/ws?access%5Ftoken=abc&room=1").0,
        "/ws?access%5Ftoken=[REDACTED]&room=1"
    );
    // Ordinary text is left alone.
    let plain = "hello: world, the signature move is a bearer of good news";
    assert_eq!(r.redact_str(plain).0, plain);
}
