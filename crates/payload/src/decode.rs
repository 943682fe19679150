//! Payload decoders for the inspector: hex + ASCII, JSON, the SignalR JSON hub protocol and
//! the Socket.IO / Engine.IO packet format. Pure functions, used in the browser (and fuzzed);
//! everything they return is rendered as text.

use serde_json::Value;

/// One line of a hex dump: 16 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexLine {
    pub offset: usize,
    pub hex: String,
    pub ascii: String,
}

/// Appends `b` as two lower-case hex digits (no formatting machinery: previews of binary
/// payloads are made per message on the observer's hot path).
pub fn push_hex(out: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(DIGITS[usize::from(b >> 4)] as char);
    out.push(DIGITS[usize::from(b & 0xf)] as char);
}

/// Classic hex + ASCII dump; non-printable bytes show as `.`.
pub fn hexdump(bytes: &[u8]) -> Vec<HexLine> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut hex = String::with_capacity(48);
            for (j, b) in chunk.iter().enumerate() {
                if j > 0 {
                    hex.push(if j == 8 { '\u{2002}' } else { ' ' });
                }
                push_hex(&mut hex, *b);
            }
            let ascii = chunk
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            HexLine {
                offset: i * 16,
                hex,
                ascii,
            }
        })
        .collect()
}

/// The payload as JSON, if it is JSON (objects and arrays only: a bare number is not worth a tree).
pub fn json(text: &str) -> Option<Value> {
    let t = text.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// One SignalR hub protocol message (JSON encoding).
#[derive(Clone, Debug, PartialEq)]
pub struct SignalR {
    /// invocation, stream item, completion, stream invocation, cancel invocation, ping, close,
    /// ack, sequence, handshake request, handshake response.
    pub kind: &'static str,
    pub target: Option<String>,
    pub invocation_id: Option<String>,
    /// Arguments, item, result or error, as sent.
    pub body: Option<Value>,
}

/// Decodes a SignalR JSON hub frame: records separated (and terminated) by 0x1E.
/// None unless every record is a SignalR message.
pub fn signalr(text: &str) -> Option<Vec<SignalR>> {
    if !text.contains('\u{1e}') {
        return None;
    }
    let mut out = Vec::new();
    for rec in text.split('\u{1e}').filter(|r| !r.trim().is_empty()) {
        let v: Value = serde_json::from_str(rec).ok()?;
        let o = v.as_object()?;
        let s = |k: &str| o.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let msg = match o.get("type").and_then(|t| t.as_u64()) {
            Some(1) => SignalR {
                kind: "invocation",
                target: s("target"),
                invocation_id: s("invocationId"),
                body: o.get("arguments").cloned(),
            },
            Some(2) => SignalR {
                kind: "stream item",
                target: None,
                invocation_id: s("invocationId"),
                body: o.get("item").cloned(),
            },
            Some(3) => SignalR {
                kind: "completion",
                target: None,
                invocation_id: s("invocationId"),
                body: o.get("result").or_else(|| o.get("error")).cloned(),
            },
            Some(4) => SignalR {
                kind: "stream invocation",
                target: s("target"),
                invocation_id: s("invocationId"),
                body: o.get("arguments").cloned(),
            },
            Some(5) => SignalR {
                kind: "cancel invocation",
                target: None,
                invocation_id: s("invocationId"),
                body: None,
            },
            Some(6) => SignalR {
                kind: "ping",
                target: None,
                invocation_id: None,
                body: None,
            },
            Some(7) => SignalR {
                kind: "close",
                target: None,
                invocation_id: None,
                body: o.get("error").cloned(),
            },
            Some(8) => SignalR {
                kind: "ack",
                target: None,
                invocation_id: None,
                body: o.get("sequenceId").cloned(),
            },
            Some(9) => SignalR {
                kind: "sequence",
                target: None,
                invocation_id: None,
                body: o.get("sequenceId").cloned(),
            },
            Some(_) => return None,
            None if o.contains_key("protocol") => SignalR {
                kind: "handshake request",
                target: None,
                invocation_id: None,
                body: Some(v.clone()),
            },
            None if o.is_empty() || o.contains_key("error") => SignalR {
                kind: "handshake response",
                target: None,
                invocation_id: None,
                body: o.get("error").cloned(),
            },
            None => return None,
        };
        out.push(msg);
    }
    (!out.is_empty()).then_some(out)
}

/// An Engine.IO packet, with the Socket.IO packet inside a `message`.
#[derive(Clone, Debug, PartialEq)]
pub struct SocketIo {
    /// open, close, ping, pong, message, upgrade, noop.
    pub engine: &'static str,
    /// connect, disconnect, event, ack, connect error, binary event, binary ack.
    pub packet: Option<&'static str>,
    pub namespace: String,
    pub ack_id: Option<u64>,
    /// The event name of an event.
    pub event: Option<String>,
    pub data: Option<Value>,
    /// Binary attachments announced by a binary packet.
    pub attachments: Option<u64>,
}

/// Decodes `4` + `2["chat message","hi"]`-style frames (Engine.IO v4 / Socket.IO v5).
pub fn socketio(text: &str) -> Option<SocketIo> {
    let mut chars = text.chars();
    let engine = match chars.next()? {
        '0' => "open",
        '1' => "close",
        '2' => "ping",
        '3' => "pong",
        '4' => "message",
        '5' => "upgrade",
        '6' => "noop",
        _ => return None,
    };
    let rest = chars.as_str();
    let mut p = SocketIo {
        engine,
        packet: None,
        namespace: "/".into(),
        ack_id: None,
        event: None,
        data: None,
        attachments: None,
    };
    if engine != "message" {
        // open carries the handshake JSON; ping/pong may carry "probe".
        if !rest.is_empty() {
            p.data = Some(
                serde_json::from_str(rest).unwrap_or_else(|_| Value::String(rest.to_string())),
            );
        }
        return Some(p);
    }
    let mut s = rest;
    let kind = s.chars().next()?;
    p.packet = Some(match kind {
        '0' => "connect",
        '1' => "disconnect",
        '2' => "event",
        '3' => "ack",
        '4' => "connect error",
        '5' => "binary event",
        '6' => "binary ack",
        _ => return None,
    });
    s = &s[1..];
    if matches!(kind, '5' | '6') {
        let (n, after) = s.split_once('-')?;
        p.attachments = Some(n.parse().ok()?);
        s = after;
    }
    if s.starts_with('/') {
        let end = s.find(',').unwrap_or(s.len());
        p.namespace = s[..end].to_string();
        s = s.get(end + 1..).unwrap_or("");
    }
    let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 {
        p.ack_id = s[..digits].parse().ok();
        s = &s[digits..];
    }
    if !s.is_empty() {
        let v: Value = serde_json::from_str(s).ok()?;
        if matches!(kind, '2' | '5') {
            if let Some(arr) = v.as_array() {
                p.event = arr.first().and_then(|e| e.as_str()).map(str::to_string);
                p.data = Some(Value::Array(arr.iter().skip(1).cloned().collect()));
            }
        } else {
            p.data = Some(v);
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hexdump_lines() {
        let d = hexdump(b"Hello\x00\x01world, this is 21b");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].offset, 0);
        assert!(d[0].hex.starts_with("48 65 6c 6c 6f 00 01 77"));
        assert_eq!(d[0].ascii, "Hello..world, th");
        assert_eq!(d[1].offset, 16);
        assert!(hexdump(b"").is_empty());
    }

    #[test]
    fn json_only_for_structures() {
        assert_eq!(json(r#" {"a":[1,2]}"#), Some(json!({"a":[1,2]})));
        assert_eq!(json("42"), None);
        assert_eq!(json("{broken"), None);
    }

    #[test]
    fn signalr_frames() {
        let f = "{\"type\":1,\"target\":\"SendMessage\",\"arguments\":[\"bob\",\"hi\"]}\u{1e}{\"type\":6}\u{1e}";
        let m = signalr(f).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].kind, m[0].target.as_deref()),
            ("invocation", Some("SendMessage"))
        );
        assert_eq!(m[0].body, Some(json!(["bob", "hi"])));
        assert_eq!(m[1].kind, "ping");
        let c = signalr("{\"type\":3,\"invocationId\":\"7\",\"error\":\"boom\"}\u{1e}").unwrap();
        assert_eq!(
            (c[0].kind, c[0].invocation_id.as_deref(), c[0].body.clone()),
            ("completion", Some("7"), Some(json!("boom")))
        );
        assert_eq!(
            signalr("{\"protocol\":\"json\",\"version\":1}\u{1e}").unwrap()[0].kind,
            "handshake request"
        );
        assert_eq!(signalr("{}\u{1e}").unwrap()[0].kind, "handshake response");
        assert_eq!(signalr("{\"type\":1}"), None, "no record separator");
        assert_eq!(signalr("not json\u{1e}"), None);
    }

    #[test]
    fn socketio_packets() {
        let p = socketio(r#"42["chat message","hi",{"x":1}]"#).unwrap();
        assert_eq!(
            (p.engine, p.packet, p.event.as_deref()),
            ("message", Some("event"), Some("chat message"))
        );
        assert_eq!(p.data, Some(json!(["hi", {"x": 1}])));
        let p = socketio(r#"42/admin,13["ping"]"#).unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.ack_id, p.event.as_deref()),
            ("/admin", Some(13), Some("ping"))
        );
        let p = socketio(r#"4313[{"ok":true}]"#).unwrap();
        assert_eq!((p.packet, p.ack_id), (Some("ack"), Some(13)));
        let p = socketio(r#"451-["upload",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!((p.packet, p.attachments), (Some("binary event"), Some(1)));
        assert_eq!(socketio("2").unwrap().engine, "ping");
        assert_eq!(socketio("3probe").unwrap().data, Some(json!("probe")));
        let open = socketio(r#"0{"sid":"abc","pingInterval":25000}"#).unwrap();
        assert_eq!(open.data.unwrap()["sid"], "abc");
        assert_eq!(socketio("40").unwrap().packet, Some("connect"));
        assert_eq!(socketio("hello"), None);
        assert_eq!(socketio("49"), None);
    }
}
