//! `POST /ingest` (and API Gateway's batches): one self-contained batch, answered once applied.

use super::{charge, rate_message, Session};
use crate::server::aggregator::{BatchReply, Input};
use crate::server::auth::TapCredential;
use crate::server::error::{ApiError, ErrorCode};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde_json::json;
use sockscope_wire::{decode_batch, Encoding, Event};
use tokio::sync::oneshot;

/// `POST /ingest`: one batch, which must start with a hello. Answers once it is applied.
pub(crate) async fn ingest_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    Extension(credential): Extension<TapCredential>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let _ = app.agg.send(Input::Rejected).await;
            return ApiError::new(
                ErrorCode::Body,
                format!(
                    "{}; bodies are limited to {} bytes",
                    e.body_text(),
                    app.config.max_frame_bytes
                ),
            )
            .with_status(e.status())
            .into_response();
        }
    };
    // No default: a body without a type (what a page can send cross-site) is not taken as JSON.
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let enc = if ctype.starts_with("application/json") {
        Encoding::Json
    } else if ctype.starts_with(sockscope_wire::CONTENT_TYPE_MSGPACK)
        || ctype.starts_with("application/msgpack")
    {
        Encoding::MsgPack
    } else {
        let _ = app.agg.send(Input::Rejected).await;
        return ApiError::new(
            ErrorCode::ContentType,
            format!(
                "content type {ctype:?} is not accepted; send Content-Type: application/json or {}",
                sockscope_wire::CONTENT_TYPE_MSGPACK
            ),
        )
        .into_response();
    };
    let events = match decode_batch(enc, &body, &app.config.wire) {
        Ok(b) => b.events,
        Err(e) => {
            let _ = app.agg.send(Input::Rejected).await;
            return ApiError::wire(&e).into_response();
        }
    };
    apply_batch(&app, events, credential).await
}

/// Applies one self-contained batch (it must start with a hello) and answers once applied:
/// 200 with the count, or 422 listing the events that could not be applied (and those the
/// per-tap rate limit dropped).
pub(crate) async fn apply_batch(
    app: &AppState,
    mut events: Vec<Event>,
    credential: TapCredential,
) -> Response {
    let mut session = Session::new(1);
    if let Err((code, message)) = session.bind(&events) {
        let _ = app.agg.send(Input::Rejected).await;
        return ApiError::new(code, message).into_response();
    }
    let mut rate_limited = 0;
    if let Some(source) = &session.source {
        rate_limited = charge(&app.agg, &app.tap_rate, source, &mut events).await;
    }
    super::record(&app.recorder, session.source.clone(), None, &events, None);
    let total = events.len();
    let (tx, rx) = oneshot::channel();
    let input = Input::Batch {
        source: session.source,
        events,
        batch: 1,
        opens_session: false,
        credential: credential.0,
        reply: BatchReply::Wait(tx),
    };
    let errs = match app.agg.send(input).await {
        Ok(()) => rx.await.unwrap_or_default(),
        Err(_) => return ApiError::stopped().into_response(),
    };
    let status = if errs.is_empty() && rate_limited == 0 {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut errors: Vec<_> = errs
        .iter()
        .map(|e| json!({ "code": e.code, "index": e.index, "message": e.message }))
        .collect();
    if rate_limited > 0 {
        errors.push(json!({
            "code": ErrorCode::RateLimited,
            "message": rate_message(rate_limited, app.config.max_tap_events_per_sec),
        }));
    }
    (
        status,
        Json(json!({ "accepted": total - errs.len(), "errors": errors })),
    )
        .into_response()
}
