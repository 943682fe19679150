//! The door: every request passes the `Host` check, then the credential its route needs —
//! a session cookie or bearer token for the dashboard and API, a tap token for `/ingest`.

pub(crate) mod config;
pub(crate) mod host;
pub(crate) mod login;

use crate::protocol::{Refusal, Role};
use crate::server::error::{ApiError, ErrorCode};
use crate::server::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use config::{digest, AuthConfig, Digest};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Name of the dashboard session cookie.
pub(crate) const COOKIE: &str = "sockscope_session";
/// The cookie's name over HTTPS: the `__Host-` prefix makes browsers refuse it unless it is
/// `Secure`, host-only and for `/`, so a sibling subdomain cannot plant or shadow it.
pub(crate) const SECURE_COOKIE: &str = "__Host-sockscope_session";
/// The session cookie names a proxy in front of an app strips (if they share a host).
pub const SESSION_COOKIES: [&str; 2] = [COOKIE, SECURE_COOKIE];
/// Sessions one address (IPv6: its /64) may hold: its oldest ends past it, so one client
/// logging in over and over cannot end everybody else's sessions.
pub(crate) const MAX_SESSIONS_PER_ADDRESS: usize = 16;

/// What a tap proved at the door (a fingerprint of its certificate or token; `None` on an
/// open observer): a source is bound to the credential it is online with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TapCredential(pub Option<u64>);

/// Who made a request; handlers of the dashboard and API read it from the extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    pub role: Role,
    /// The observer asks for a login (false when it runs open on loopback).
    pub login: bool,
}

struct Session {
    role: Role,
    created: Instant,
    /// [`limiter_key`] of the address that logged in.
    from: IpAddr,
}

/// Credentials plus the live sessions and the login rate limiter.
/// Password checks (Argon2, ~50 ms of a core each) running at once; more wait their turn
/// briefly, then are refused.
pub(crate) const MAX_CONCURRENT_VERIFY: usize = 2;
/// Wrong bearer tokens one address may present per minute before it is shut out.
pub(crate) const FAILED_TOKENS_PER_MINUTE: u32 = 30;
/// How long an address that presented too many wrong tokens is refused outright.
pub(crate) const TOKEN_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Addresses remembered as locked out (the oldest lockouts go first past it).
const MAX_LOCKOUTS: usize = 10_000;

pub(crate) struct Auth {
    pub cfg: AuthConfig,
    sessions: Mutex<HashMap<Digest, Session>>,
    logins: DefaultKeyedRateLimiter<IpAddr>,
    failed_tokens: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over [`FAILED_TOKENS_PER_MINUTE`], until when.
    locked_out: Mutex<HashMap<IpAddr, Instant>>,
    /// Permits for password checks.
    pub verifying: Arc<tokio::sync::Semaphore>,
}

/// The key rate limits use for an address: IPv6 clients are keyed by their /64 (one host
/// usually holds a whole /64), IPv4 by the address.
pub(crate) fn limiter_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

impl Auth {
    pub(crate) fn new(cfg: AuthConfig) -> Auth {
        let per_minute = NonZeroU32::new(cfg.logins_per_minute.max(1)).expect("at least 1");
        let failures = NonZeroU32::new(FAILED_TOKENS_PER_MINUTE).expect("at least 1");
        Auth {
            logins: RateLimiter::keyed(Quota::per_minute(per_minute)),
            failed_tokens: RateLimiter::keyed(Quota::per_minute(failures)),
            locked_out: Mutex::new(HashMap::new()),
            verifying: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_VERIFY)),
            sessions: Mutex::new(HashMap::new()),
            cfg,
        }
    }

    /// The role of a valid session cookie or `Authorization: Bearer` dashboard token.
    pub(crate) fn principal(&self, headers: &HeaderMap) -> Option<Principal> {
        if self.cfg.dashboard_open() {
            return Some(Principal {
                role: Role::Inspector,
                login: false,
            });
        }
        let role = match bearer(headers) {
            Some(t) => self.cfg.token_role(t),
            None => cookie(headers, self.cookie_name()).and_then(|c| self.session_role(c)),
        }?;
        Some(Principal { role, login: true })
    }

    fn session_role(&self, cookie: &str) -> Option<Role> {
        let mut sessions = self.sessions.lock().expect("session lock");
        let key = digest(cookie);
        let s = sessions.get(&key)?;
        if s.created.elapsed() > self.cfg.session_ttl {
            sessions.remove(&key);
            return None;
        }
        Some(s.role)
    }

    pub(crate) fn ingest_allowed(&self, headers: &HeaderMap) -> bool {
        self.cfg.ingest_open() || bearer(headers).is_some_and(|t| self.cfg.ingest_token_ok(t))
    }

    /// Starts a session; returns the cookie value (only its digest is kept).
    fn cookie_name(&self) -> &'static str {
        if self.cfg.secure_cookie {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }

    pub(crate) fn start_session(&self, role: Role, ip: IpAddr) -> String {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS random source works");
        use base64::Engine as _;
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut sessions = self.sessions.lock().expect("session lock");
        let ttl = self.cfg.session_ttl;
        sessions.retain(|_, s| s.created.elapsed() <= ttl);
        let from = limiter_key(ip);
        let mine: Vec<(Digest, Instant)> = sessions
            .iter()
            .filter(|(_, s)| s.from == from)
            .map(|(k, s)| (*k, s.created))
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_ADDRESS {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, c)| *c) {
                sessions.remove(oldest);
            }
        }
        if sessions.len() >= self.cfg.max_sessions {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            digest(&value),
            Session {
                role,
                created: Instant::now(),
                from,
            },
        );
        value
    }

    pub(crate) fn end_session(&self, headers: &HeaderMap) {
        if let Some(c) = cookie(headers, self.cookie_name()) {
            self.sessions
                .lock()
                .expect("session lock")
                .remove(&digest(c));
        }
    }

    /// Counts a login attempt from `ip`; false when it is over the limit.
    pub(crate) fn login_attempt(&self, ip: IpAddr) -> bool {
        self.logins.retain_recent();
        self.logins.check_key(&limiter_key(ip)).is_ok()
    }

    /// Whether `ip` is shut out for presenting too many wrong tokens.
    pub(crate) fn locked_out(&self, ip: IpAddr) -> bool {
        let mut locked = self.locked_out.lock().expect("lockout lock");
        let key = limiter_key(ip);
        match locked.get(&key) {
            Some(&until) if Instant::now() < until => true,
            Some(_) => {
                locked.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Counts a wrong token from `ip`; past [`FAILED_TOKENS_PER_MINUTE`] the address is shut
    /// out for [`TOKEN_LOCKOUT`], right tokens included, so guessing cannot go on.
    pub(crate) fn token_failed(&self, ip: IpAddr) {
        let key = limiter_key(ip);
        self.failed_tokens.retain_recent();
        if self.failed_tokens.check_key(&key).is_ok() {
            return;
        }
        let mut locked = self.locked_out.lock().expect("lockout lock");
        if locked.len() >= MAX_LOCKOUTS {
            let now = Instant::now();
            locked.retain(|_, until| *until > now);
            if locked.len() >= MAX_LOCKOUTS {
                if let Some(oldest) = locked.iter().min_by_key(|(_, u)| **u).map(|(k, _)| *k) {
                    locked.remove(&oldest);
                }
            }
        }
        locked.insert(key, Instant::now() + TOKEN_LOCKOUT);
        tracing::warn!(%ip, "too many wrong tokens: address shut out for a minute");
    }

    /// `Set-Cookie` for a session value (`None` clears the cookie).
    pub(crate) fn set_cookie(&self, value: Option<&str>) -> String {
        let secure = if self.cfg.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        match value {
            Some(v) => format!(
                "{}={v}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                self.cookie_name(),
                self.cfg.session_ttl.as_secs()
            ),
            None => format!(
                "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}",
                self.cookie_name()
            ),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The client's address: the socket peer (unspecified when the server runs without connect
/// info), or when that is a `--trusted-proxy`, the client its forwarded headers name.
pub(crate) fn client_ip(req: &Request, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    crate::client_ip::client_ip(peer, req.headers(), trusted)
}

/// Which credential a path needs.
#[derive(Debug, PartialEq, Eq)]
enum Door {
    /// Login page, health check and static assets.
    Public,
    /// Taps: a tap token.
    Ingest,
    /// Dashboard, API, export, metrics, `/live`: a session or dashboard token.
    Dashboard,
}

fn door(path: &str) -> Door {
    match path {
        "/healthz" | "/login" | "/auth/login" | "/auth/logout" => Door::Public,
        p if crate::server::assets::PUBLIC_FILES.contains(&p) => Door::Public,
        "/ingest" | "/ingest/apigw" => Door::Ingest,
        p if p.starts_with("/pkg/") => Door::Public,
        _ => Door::Dashboard,
    }
}

fn refuse(code: ErrorCode, message: String) -> Response {
    ApiError::new(code, message).into_response()
}

/// The middleware in front of every route.
pub(crate) async fn guard(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !app.auth.cfg.hosts.allows(host) {
        let _ = app.agg.send_refused(Refusal::Host).await;
        let shown: String = host.chars().take(100).collect();
        return refuse(
            ErrorCode::WrongHost,
            format!(
                "Host {shown:?} is not one of this observer's names; if it is yours, start the \
                 observer with --allowed-host <name> (DNS-rebinding defence)"
            ),
        );
    }
    let ip = client_ip(&req, &app.auth.cfg.trusted);
    let presents_token = bearer(req.headers()).is_some();
    if presents_token && app.auth.locked_out(ip) {
        let _ = app.agg.send_refused(Refusal::TokenLockout).await;
        return refuse(
            ErrorCode::TooManyAttempts,
            format!(
                "too many wrong tokens from this address: token checks are refused for {} s",
                TOKEN_LOCKOUT.as_secs()
            ),
        );
    }
    let mut resp = match door(req.uri().path()) {
        Door::Public => next.run(req).await,
        // Taps are programs, not pages: a browser's request (it always says its Origin) may
        // not feed the observer, so no web page the operator visits can do so cross-site.
        Door::Ingest if req.headers().contains_key(header::ORIGIN) => {
            let _ = app.agg.send_refused(Refusal::Origin).await;
            refuse(
                ErrorCode::Origin,
                "ingest is for taps, not browsers: a request carrying an Origin header is refused"
                    .into(),
            )
        }
        Door::Ingest => {
            let cert = req
                .extensions()
                .get::<crate::server::tls::ClientCert>()
                .and_then(|c| c.fingerprint)
                .filter(|_| app.auth.cfg.tap_certs);
            if cert.is_some() || app.auth.ingest_allowed(req.headers()) {
                // What the tap proved, so its sources are bound to it: the certificate, else
                // the token; nothing on an open observer.
                let token = bearer(req.headers())
                    .filter(|_| !app.auth.cfg.ingest_open())
                    .map(|t| {
                        let d = digest(t);
                        u64::from_be_bytes(d[..8].try_into().expect("32 bytes"))
                    });
                req.extensions_mut().insert(TapCredential(cert.or(token)));
                next.run(req).await
            } else {
                if presents_token {
                    app.auth.token_failed(ip);
                }
                let _ = app.agg.send_refused(Refusal::TapToken).await;
                let mut r = refuse(
                    ErrorCode::Unauthorized,
                    if app.auth.cfg.tap_certs {
                        "this observer needs a tap token or a tap certificate: send \
                         Authorization: Bearer <token> (one of the observer's --ingest-token \
                         values), or present a client certificate signed by its --tls-client-ca"
                            .into()
                    } else {
                        "this observer needs a tap token: send Authorization: Bearer <token>, \
                         one of the observer's --ingest-token values"
                            .into()
                    },
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"sockscope ingest\""),
                );
                r
            }
        }
        Door::Dashboard => match app.auth.principal(req.headers()) {
            Some(p) => {
                req.extensions_mut().insert(p);
                next.run(req).await
            }
            None => {
                if presents_token {
                    app.auth.token_failed(ip);
                }
                let _ = app.agg.send_refused(Refusal::Unauthenticated).await;
                unauthenticated(&req)
            }
        },
    };
    security_headers(resp.headers_mut());
    resp
}

/// A browser navigating to a page goes to the login form; anything else gets a 401.
fn unauthenticated(req: &Request) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if req.method() == Method::GET && wants_html && !req.uri().path().starts_with("/api/") {
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let to = format!("/login?next={}", login::encode_component(next));
        return Redirect::to(&to).into_response();
    }
    let mut r = refuse(
        ErrorCode::Unauthorized,
        "authentication required: log in at /login, or send Authorization: Bearer <viewer or \
         inspector token>"
            .into(),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sockscope\""),
    );
    r
}

/// Headers that keep the dashboard out of frames and stop content sniffing.
fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // The dashboard page sets its own, with its script nonce.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(v) = HeaderValue::from_str(&crate::dashboard::app::csp(None)) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
}

#[cfg(test)]
mod tests;
