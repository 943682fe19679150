//! Downloads of history answers: NDJSON and CSV rows, and HAR (the format browsers' devtools
//! read) with each connection's messages from the record.

use crate::protocol::HistoryConn;
use axum::response::{IntoResponse, Response};

/// A HAR 1.2 log of `entries`.
pub(crate) fn har_log(entries: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({"log": {
        "version": "1.2",
        "creator": {"name": "sockscope", "version": env!("CARGO_PKG_VERSION")},
        "pages": [],
        "entries": entries,
    }})
}

/// One item per line.
pub(crate) fn ndjson<T: serde::Serialize>(items: &[T], name: &str) -> Response {
    let mut body = String::new();
    for c in items {
        body.push_str(&serde_json::to_string(c).expect("serializes"));
        body.push('\n');
    }
    download(body, "application/x-ndjson", name)
}

/// A spreadsheet's view: one row per connection, formula-looking text neutralised.
pub(crate) fn csv(items: &[HistoryConn]) -> Response {
    use crate::server::export::csv_field as f;
    let mut body = String::from(
        "source,conn,ip,user_agent,path,opened_ms,closed_ms,close_code,close_reason,closed_by,msgs_in,msgs_out,bytes_in,bytes_out\n",
    );
    for c in items {
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        let row = [
            f(&c.source),
            c.conn.to_string(),
            f(&c.ip),
            f(&c.user_agent),
            f(&c.path),
            c.opened_ms.to_string(),
            opt(c.closed_ms),
            opt(c.close_code.map(u64::from)),
            f(c.close_reason.as_deref().unwrap_or("")),
            c.closed_by
                .map(|b| b.as_str().to_string())
                .unwrap_or_default(),
            c.msgs_in.to_string(),
            c.msgs_out.to_string(),
            c.bytes_in.to_string(),
            c.bytes_out.to_string(),
        ];
        body.push_str(&row.join(","));
        body.push('\n');
    }
    download(body, "text/csv; charset=utf-8", "history.csv")
}

pub(crate) fn download(body: String, content_type: &'static str, name: &str) -> Response {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}
