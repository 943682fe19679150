//! AWS API Gateway (WebSocket APIs) as a source: `POST /ingest/apigw` takes the integration
//! events a gateway route or a forwarding Lambda receives (`$connect`, `$disconnect`,
//! `$default`) and turns them into wire events (`sockscope_wire::apigw`). See docs/apigw.md.

use crate::server::ingest::apply_batch;
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use sockscope_wire::apigw::{self, ApiGwEvent};
use sockscope_wire::Batch;

#[derive(Deserialize)]
pub struct Params {
    /// Source id to report under; defaults to `apigw-<apiId>`.
    source: Option<String>,
}

fn bad(code: &str, message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"type": "error", "code": code, "message": message})),
    )
        .into_response()
}

/// `POST /ingest/apigw[?source=id]`: one gateway event, or an array of them.
pub async fn ingest_apigw(
    State(app): State<AppState>,
    Query(p): Query<Params>,
    body: Bytes,
) -> Response {
    let evs: Vec<ApiGwEvent> = match apigw::parse(&body) {
        Ok(e) => e,
        Err(m) => return bad("malformed", m),
    };
    let events = match apigw::to_events(&evs, p.source.as_deref(), app.config.wire.max_payload) {
        Ok(e) => e,
        Err(m) => return bad("invalid_event", m),
    };
    let batch = Batch::new(events);
    if let Err(e) = sockscope_wire::validate(&batch, &app.config.wire) {
        return bad(e.code(), e.to_string());
    }
    apply_batch(&app, batch.events).await
}
