//! The login form, `POST /auth/login`, `POST /auth/logout` and `sockscope hash-password`.

use super::{client_ip, Principal};
use crate::protocol::{Refusal, Role};
use crate::server::live::same_origin;
use crate::server::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// Longest token or password accepted at the form.
const MAX_SECRET: usize = 1024;

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    secret: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub(crate) struct NextParam {
    next: Option<String>,
}

/// Only same-site paths: never an open redirect.
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 512
        && !next.starts_with("/auth/")
        && next.bytes().all(|b| (0x21..0x7f).contains(&b));
    if ok {
        next
    } else {
        "/"
    }
}

/// Percent-encodes a query component.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(message: Option<&str>, next: &str) -> String {
    let message = message
        .map(|m| format!("<p class=\"login-error\" role=\"alert\">{}</p>", escape(m)))
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sockscope — log in</title><link rel="stylesheet" href="/pkg/sockscope.css">
<link rel="icon" href="/favicon.ico" sizes="any"><link rel="icon" href="/icon.svg" type="image/svg+xml"></head>
<body><main class="login"><h1>sockscope</h1>
<form method="post" action="/auth/login">
<label for="secret">Token or password</label>
<input id="secret" name="secret" type="password" autocomplete="current-password" autofocus required maxlength="{MAX_SECRET}">
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>
</form>{message}
<p class="login-hint">Viewers see connections and counters; inspectors also see payloads and headers.</p>
</main></body></html>"#,
        next = escape(safe_next(next)),
    )
}

/// `GET /login`.
pub(crate) async fn login_page(State(app): State<AppState>, q: Query<NextParam>) -> Response {
    let next = q.0.next.unwrap_or_default();
    if app.auth.cfg.dashboard_open() {
        return Redirect::to(safe_next(&next)).into_response();
    }
    Html(page(None, &next)).into_response()
}

/// Every password-check permit was taken for this long: the login is refused, not queued.
const VERIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks a secret against the dashboard tokens, then the password hashes (Argon2, off the
/// async workers, at most [`super::MAX_CONCURRENT_VERIFY`] at once). `Err` when the checks
/// are all busy.
async fn verify(app: &AppState, secret: String) -> Result<Option<Role>, ()> {
    if let Some(role) = app.auth.cfg.token_role(&secret) {
        return Ok(Some(role));
    }
    let hashes = app.auth.cfg.passwords().to_vec();
    if hashes.is_empty() {
        return Ok(None);
    }
    let permit = tokio::time::timeout(VERIFY_WAIT, app.auth.verifying.clone().acquire_owned())
        .await
        .map_err(|_| ())?
        .map_err(|_| ())?;
    let found = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        hashes.into_iter().find_map(|(h, role)| {
            let parsed = PasswordHash::new(h.expose()).ok()?;
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .ok()
                .map(|()| role)
        })
    })
    .await
    .ok()
    .flatten();
    Ok(found)
}

/// `POST /auth/login`.
pub(crate) async fn login(State(app): State<AppState>, req: Request) -> Response {
    if !same_origin(req.headers()) {
        let _ = app.agg.send_refused(Refusal::Origin).await;
        return (StatusCode::FORBIDDEN, "cross-origin login refused").into_response();
    }
    let ip = client_ip(&req, &app.auth.cfg.trusted);
    if !app.auth.login_attempt(ip) {
        let _ = app.agg.send_refused(Refusal::LoginRateLimited).await;
        let body = page(
            Some("Too many login attempts from your address: wait a minute and try again."),
            "/",
        );
        return (StatusCode::TOO_MANY_REQUESTS, Html(body)).into_response();
    }
    let Form(form) = match Form::<LoginForm>::from_request(req, &app).await {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(page(Some(&format!("The form could not be read: {e}")), "/")),
            )
                .into_response()
        }
    };
    if app.auth.cfg.dashboard_open() {
        return Redirect::to(safe_next(&form.next)).into_response();
    }
    let role = if form.secret.len() > MAX_SECRET {
        None
    } else {
        match verify(&app, form.secret).await {
            Ok(role) => role,
            Err(()) => {
                let body = page(
                    Some("The observer is checking many logins right now: try again in a moment."),
                    &form.next,
                );
                return (StatusCode::SERVICE_UNAVAILABLE, Html(body)).into_response();
            }
        }
    };
    let Some(role) = role else {
        let _ = app.agg.send_refused(Refusal::BadLogin).await;
        tracing::warn!(%ip, "failed dashboard login");
        let body = page(Some("That token or password is not valid."), &form.next);
        return (StatusCode::UNAUTHORIZED, Html(body)).into_response();
    };
    tracing::info!(%ip, role = role.label(), "dashboard login");
    let value = app.auth.start_session(role, ip);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, app.auth.set_cookie(Some(&value))),
            (header::LOCATION, safe_next(&form.next).to_string()),
        ],
    )
        .into_response()
}

/// `POST /auth/logout`: ends the session and clears the cookie.
pub(crate) async fn logout(State(app): State<AppState>, req: Request) -> Response {
    if !same_origin(req.headers()) {
        let _ = app.agg.send_refused(Refusal::Origin).await;
        return (StatusCode::FORBIDDEN, "cross-origin logout refused").into_response();
    }
    app.auth.end_session(req.headers());
    let to = if app.auth.cfg.dashboard_open() {
        "/"
    } else {
        "/login"
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, app.auth.set_cookie(None)),
            (header::LOCATION, to.to_string()),
        ],
    )
        .into_response()
}

/// `GET /api/me`: the caller's role (the dashboard shows it).
pub(crate) async fn me(axum::Extension(p): axum::Extension<Principal>) -> Response {
    axum::Json(serde_json::json!({ "role": p.role, "login": p.login })).into_response()
}

/// Argon2id PHC string for a password (`sockscope hash-password`).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        password.chars().count() >= 12,
        "use a password of at least 12 characters"
    );
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_site() {
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/auth/logout",
            "javascript:x",
            "/a b",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
        assert_eq!(safe_next("/?tab=trace"), "/?tab=trace");
        let p = page(Some("<b>x</b>"), "/\"><script>");
        assert!(p.contains("value=\"/&quot;&gt;&lt;script&gt;\""), "{p}");
        assert!(!p.contains("<script>") && p.contains("&lt;b&gt;x"), "{p}");
    }

    #[test]
    fn password_hashes_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
        assert!(hash_password("short").is_err());
    }
}
