//! AWS API Gateway (WebSocket APIs) as a source: `POST /ingest/apigw` takes the integration
//! events a gateway route or a forwarding Lambda receives (`$connect`, `$disconnect`,
//! `$default`) and turns them into wire events (`sockscope_wire::apigw`). No tap stands in
//! front of a gateway, so the observer masks their payloads (`--apigw-mask-keys`,
//! `--apigw-mask-regex`) before anything is stored. See docs/apigw.md.

use crate::server::auth::TapCredential;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::ingest::apply_batch;
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use sockscope_payload::redact::Redactor;
use sockscope_wire::apigw::{self, ApiGwEvent};
use sockscope_wire::{Batch, Event, Payload};

#[derive(Deserialize)]
pub(crate) struct Params {
    /// Source id to report under; defaults to `apigw-<apiId>`.
    source: Option<String>,
}

fn bad(code: ErrorCode, message: String) -> Response {
    ApiError::new(code, message).into_response()
}

/// `POST /ingest/apigw[?source=id]`: one gateway event, or an array of them.
pub(crate) async fn ingest_apigw(
    State(app): State<AppState>,
    Query(p): Query<Params>,
    headers: axum::http::HeaderMap,
    Extension(credential): Extension<TapCredential>,
    body: Bytes,
) -> Response {
    // JSON only, and said so: a type a page may send cross-site without asking is refused.
    let ctype = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ctype.starts_with("application/json") {
        return bad(
            ErrorCode::ContentType,
            format!("content type {ctype:?} is not accepted; send Content-Type: application/json"),
        );
    }
    let evs: Vec<ApiGwEvent> = match apigw::parse(&body) {
        Ok(e) => e,
        Err(m) => return bad(ErrorCode::Malformed, m),
    };
    // Whole bodies first: masking comes before the cut to --max-payload.
    let mut events = match apigw::to_events(&evs, p.source.as_deref(), usize::MAX) {
        Ok(e) => e,
        Err(m) => return bad(ErrorCode::InvalidEvent, m),
    };
    mask(
        &app.config.apigw_redactor,
        &mut events,
        app.config.wire.max_payload,
    );
    let batch = Batch::new(events);
    if let Err(e) = sockscope_wire::validate(&batch, &app.config.wire) {
        return ApiError::wire(&e).into_response();
    }
    apply_batch(&app, batch.events, credential).await
}

/// Masks message payloads and close reasons, then cuts payloads to `max_payload`.
fn mask(r: &Redactor, events: &mut [Event], max_payload: usize) {
    for ev in events {
        match ev {
            Event::Message(m) => {
                if let Some(t) = &m.text {
                    let c = r.capture_text(t, max_payload);
                    let (text, truncated, redacted) =
                        (c.payload.into_owned(), c.truncated, c.redacted);
                    m.text = Some(text);
                    m.truncated |= truncated;
                    m.redacted = redacted;
                } else if let Some(d) = &m.data {
                    let c = r.capture_bytes(&d.0, max_payload);
                    let (data, truncated, redacted) =
                        (c.payload.into_owned(), c.truncated, c.redacted);
                    m.data = Some(Payload(data));
                    m.truncated |= truncated;
                    m.redacted = redacted;
                }
            }
            Event::ConnClose(c) => {
                if let Some(reason) = &c.reason {
                    let (masked, n) = r.redact_str(reason);
                    if n > 0 {
                        // "[REDACTED]" can be longer than what it hides: stay within the wire limit.
                        let max = sockscope_wire::Limits::MAX_REASON;
                        c.reason = Some(sockscope_wire::clip(&masked, max).to_string());
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockscope_payload::redact::RedactConfig;
    use sockscope_wire::{Closer, ConnClose};

    #[test]
    fn a_masked_close_reason_stays_within_the_wire_limit() {
        let r = Redactor::new(&RedactConfig {
            mask_keys: vec![],
            mask_regex: vec!["x".into()],
        })
        .unwrap();
        let mut events = vec![Event::ConnClose(ConnClose {
            conn: 1,
            ts: None,
            code: Some(1000),
            reason: Some("x".repeat(100)),
            by: Closer::Client,
        })];
        mask(&r, &mut events, 1024);
        let Event::ConnClose(c) = &events[0] else {
            unreachable!()
        };
        let reason = c.reason.as_deref().unwrap();
        assert!(reason.starts_with("[REDACTED][REDACTED]"), "{reason}");
        assert!(reason.len() <= sockscope_wire::Limits::MAX_REASON);
    }
}
