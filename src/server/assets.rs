//! The dashboard's static files (wasm, JS glue, CSS, icons): carried inside the binary by
//! `build.rs` (`scripts/build`), or read from `--site-root` when that is given.

use super::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub(crate) struct Asset {
    /// URL path, e.g. `/pkg/sockscope.wasm`.
    pub path: &'static str,
    pub body: &'static [u8],
    /// A gzip copy, for clients that accept it (compressible types only).
    pub gzip: Option<&'static [u8]>,
    /// Quoted content hash.
    pub etag: &'static str,
}

static EMBEDDED: &[Asset] = include!(concat!(env!("OUT_DIR"), "/site_assets.rs"));

/// Static paths every visitor may fetch without logging in (the login page uses them too).
pub(crate) const PUBLIC_FILES: &[&str] = &["/favicon.ico", "/icon.svg", "/apple-touch-icon.png"];

/// Whether this binary carries a built dashboard.
pub fn embedded() -> bool {
    lookup("/pkg/sockscope.wasm").is_some() && lookup("/pkg/sockscope.js").is_some()
}

fn lookup(path: &str) -> Option<&'static Asset> {
    EMBEDDED.iter().find(|a| a.path == path)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("wasm") => "application/wasm",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// The response for an embedded file, or `None` when the binary has no such file.
fn embedded_response(path: &str, headers: &HeaderMap) -> Option<Response> {
    let asset = lookup(path)?;
    let etag = HeaderValue::from_static(asset.etag);
    let revalidate = HeaderValue::from_static("no-cache");
    if headers.get(header::IF_NONE_MATCH) == Some(&etag) {
        return Some(
            (
                StatusCode::NOT_MODIFIED,
                [(header::ETAG, etag), (header::CACHE_CONTROL, revalidate)],
            )
                .into_response(),
        );
    }
    let (body, gzip) = match asset.gzip {
        Some(gz) if accepts_gzip(headers) => (gz, true),
        _ => (asset.body, false),
    };
    let mut resp = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, revalidate),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
        ],
        Body::from(body),
    )
        .into_response();
    if gzip {
        resp.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Some(resp)
}

/// The router's fallback. With `--site-root`: Leptos's handler (files under the site root,
/// then the 404 page). Without: an embedded file, then the 404 page — never a file from disk.
pub(crate) async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    if state.config.site_root.is_some() {
        let uri = req.uri().clone();
        return leptos_axum::file_and_error_handler::<AppState, _>(crate::dashboard::app::shell)(
            uri,
            State(state),
            req,
        )
        .await;
    }
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        if let Some(resp) = embedded_response(req.uri().path(), req.headers()) {
            return resp;
        }
    }
    let options = state.leptos.clone();
    let mut resp = leptos_axum::render_app_to_stream_with_context(
        move || leptos::prelude::provide_context(state.clone()),
        move || crate::dashboard::app::shell(options.clone()),
    )(req)
    .await;
    if resp.status() == StatusCode::OK {
        *resp.status_mut() = StatusCode::NOT_FOUND;
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate, br"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, GZIP;q=0.5"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&h));
    }

    #[test]
    fn content_types_of_the_dashboard_files() {
        assert_eq!(content_type("/pkg/sockscope.wasm"), "application/wasm");
        assert_eq!(
            content_type("/pkg/sockscope.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/favicon.ico"), "image/x-icon");
        assert_eq!(content_type("/x"), "application/octet-stream");
    }
}
