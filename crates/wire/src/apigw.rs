//! AWS API Gateway (WebSocket APIs) integration events → wire events: the pure part of
//! `POST /ingest/apigw` (the observer keeps the HTTP handler). See docs/apigw.md.

use crate::{
    Closer, ConnClose, ConnOpen, Direction, Event, Header, Hello, Message, Opcode, Payload,
    SourceKind,
};
use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGwEvent {
    pub request_context: RequestContext,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub connection_id: String,
    pub event_type: String,
    #[serde(default)]
    pub route_key: Option<String>,
    #[serde(default)]
    pub api_id: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub domain_name: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub request_time_epoch: Option<u64>,
    /// Milliseconds since the epoch at which the connection was opened.
    #[serde(default)]
    pub connected_at: Option<u64>,
    #[serde(default)]
    pub identity: Identity,
    #[serde(default)]
    pub disconnect_status_code: Option<u16>,
    #[serde(default)]
    pub disconnect_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(default)]
    pub source_ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// Parses a request body: one gateway event, or a JSON array of them. Errors say what is
/// wrong, for a `malformed` answer.
pub fn parse(body: &[u8]) -> Result<Vec<ApiGwEvent>, String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Array(_)) => {
            serde_json::from_value(v).map_err(|e| format!("not API Gateway WebSocket events: {e}"))
        }
        Ok(v) => serde_json::from_value(v)
            .map(|e| vec![e])
            .map_err(|e| format!("not an API Gateway WebSocket event: {e}")),
        Err(e) => Err(format!("body is not JSON: {e}")),
    }
}

/// Stable 64-bit id of an API Gateway connection id (FNV-1a), the same across restarts.
pub fn conn_id(connection_id: &str) -> u64 {
    connection_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Milliseconds since the epoch as microseconds; an overflow is named, not wrapped.
fn micros(i: usize, field: &str, ms: Option<u64>) -> Result<Option<u64>, String> {
    ms.map(|ms| {
        ms.checked_mul(1000).ok_or_else(|| {
            format!("events[{i}].requestContext.{field}: {ms} is not a time in milliseconds")
        })
    })
    .transpose()
}

/// Turns gateway events into one wire batch (hello first). Errors name the event.
pub fn to_events(
    evs: &[ApiGwEvent],
    source: Option<&str>,
    max_payload: usize,
) -> Result<Vec<Event>, String> {
    let api = evs
        .iter()
        .find_map(|e| e.request_context.api_id.clone())
        .unwrap_or_else(|| "unknown".into());
    let source = source
        .map(str::to_string)
        .unwrap_or_else(|| format!("apigw-{api}"));
    let mut out = vec![Event::Hello(Hello {
        capture: None,
        source,
        name: format!("API Gateway {api}"),
        kind: SourceKind::Gateway,
        version: String::new(),
        hostname: evs
            .iter()
            .find_map(|e| e.request_context.domain_name.clone())
            .unwrap_or_default(),
        instance: None,
    })];
    for (i, e) in evs.iter().enumerate() {
        let rc = &e.request_context;
        let conn = conn_id(&rc.connection_id);
        let ts = micros(i, "requestTimeEpoch", rc.request_time_epoch)?;
        // Opening again with the original connect time is a no-op for a known connection and
        // creates one the observer missed, so $default and $disconnect alone are enough.
        let open = |ts: Option<u64>| {
            Event::ConnOpen(ConnOpen {
                conn,
                ts,
                ip: rc
                    .identity
                    .source_ip
                    .clone()
                    .unwrap_or_else(|| "0.0.0.0".into()),
                user_agent: rc.identity.user_agent.clone(),
                path: format!("/{}", rc.stage.as_deref().unwrap_or("")),
                headers: rc
                    .route_key
                    .iter()
                    .map(|r| Header("x-apigw-route".into(), r.clone()))
                    .collect(),
                subprotocol: None,
                capture: None,
                capture_bytes: None,
                redacted_headers: Vec::new(),
            })
        };
        let connected = micros(i, "connectedAt", rc.connected_at)?;
        match rc.event_type.as_str() {
            "CONNECT" => out.push(open(connected.or(ts))),
            "MESSAGE" => {
                if connected.is_some() {
                    out.push(open(connected));
                }
                let body = e.body.as_deref().unwrap_or("");
                let (opcode, bytes) = if e.is_base64_encoded {
                    let b = base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .map_err(|err| format!("events[{i}].body: isBase64Encoded is true but the body is not base64 ({err})"))?;
                    (Opcode::Binary, b)
                } else {
                    (Opcode::Text, body.as_bytes().to_vec())
                };
                let size = bytes.len() as u64;
                let (text, data, cut) = if opcode == Opcode::Text {
                    let text = crate::clip(body, max_payload);
                    (Some(text.to_string()), None, text.len())
                } else {
                    let cut = bytes.len().min(max_payload);
                    (None, Some(Payload(bytes[..cut].to_vec())), cut)
                };
                out.push(Event::Message(Message {
                    flight: false,
                    conn,
                    ts,
                    dir: Direction::ClientToServer,
                    opcode,
                    size,
                    truncated: (cut as u64) < size,
                    text,
                    data,
                    redacted: 0,
                }));
            }
            "DISCONNECT" => {
                if connected.is_some() {
                    out.push(open(connected));
                }
                out.push(Event::ConnClose(ConnClose {
                    conn,
                    ts,
                    code: rc.disconnect_status_code.filter(|c| (1000..=4999).contains(c)),
                    reason: rc.disconnect_reason.clone().map(|r| r.chars().take(100).collect()),
                    by: Closer::Client,
                }))
            }
            other => {
                return Err(format!(
                    "events[{i}].requestContext.eventType: {other:?} is not CONNECT, MESSAGE or DISCONNECT"
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_ids_are_stable_and_distinct() {
        assert_eq!(conn_id("abc="), conn_id("abc="));
        assert_ne!(conn_id("abc="), conn_id("abd="));
    }

    #[test]
    fn events_map_to_wire_events() {
        let raw = serde_json::json!([
            {"requestContext": {"connectionId": "c1=", "eventType": "CONNECT", "routeKey": "$connect", "apiId": "a1", "stage": "prod",
              "connectedAt": 1000, "requestTimeEpoch": 1000, "identity": {"sourceIp": "198.51.100.1", "userAgent": "ua"}}},
            {"requestContext": {"connectionId": "c1=", "eventType": "MESSAGE", "routeKey": "$default", "connectedAt": 1000, "requestTimeEpoch": 2000,
              "identity": {"sourceIp": "198.51.100.1"}}, "body": "héllo", "isBase64Encoded": false},
            {"requestContext": {"connectionId": "c1=", "eventType": "DISCONNECT", "connectedAt": 1000, "disconnectStatusCode": 1001, "disconnectReason": "bye",
              "identity": {"sourceIp": "198.51.100.1"}}}
        ]);
        let evs: Vec<ApiGwEvent> = serde_json::from_value(raw).unwrap();
        let out = to_events(&evs, None, 3).unwrap();
        let kinds: Vec<_> = out.iter().map(|e| e.kind()).collect();
        use crate::EventKind::*;
        assert_eq!(
            kinds,
            vec![Hello, ConnOpen, ConnOpen, Message, ConnOpen, ConnClose]
        );
        match &out[0] {
            Event::Hello(h) => assert_eq!(h.source, "apigw-a1"),
            _ => unreachable!(),
        }
        match &out[3] {
            Event::Message(m) => {
                assert_eq!(
                    (m.size, m.truncated, m.text.as_deref()),
                    (6, true, Some("hé"))
                );
                assert_eq!(m.ts, Some(2_000_000));
            }
            _ => unreachable!(),
        }
        assert!(crate::validate(&crate::Batch::new(out), &Default::default()).is_ok());
        let bad: Vec<ApiGwEvent> = serde_json::from_value(
            serde_json::json!([{"requestContext": {"connectionId": "x", "eventType": "TELEPORT"}}]),
        )
        .unwrap();
        assert!(to_events(&bad, None, 10).unwrap_err().contains("eventType"));
    }

    #[test]
    fn times_out_of_range_are_refused_not_wrapped() {
        // Found by the `apigw` fuzz target: `connectedAt * 1000` overflowed (a panic in
        // debug builds, a wrong time in release).
        let body = br#"{"requestContext":{"connectionId":"L0SM9cOFvHcCIhw=","eventType":"CONNECT","apiId":"abc123","connectedAt":34643600160000000,"identity":{"sourceIp":"203.0.113.10"}}}"#;
        let evs = parse(body).unwrap();
        let e = to_events(&evs, None, 10).unwrap_err();
        assert!(e.contains("events[0].requestContext.connectedAt"), "{e}");
        let body = br#"{"requestContext":{"connectionId":"x","eventType":"MESSAGE","requestTimeEpoch":18446744073709551615}}"#;
        let e = to_events(&parse(body).unwrap(), None, 10).unwrap_err();
        assert!(e.contains("requestTimeEpoch"), "{e}");
        assert!(parse(b"[1]")
            .unwrap_err()
            .contains("not API Gateway WebSocket events"));
        assert!(parse(b"{").unwrap_err().contains("not JSON"));
    }
}
