//! The door's unit tests: doors, sessions, cookies, limiter keys.
use super::*;

#[test]
fn limits_key_ipv6_clients_by_their_64() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(limiter_key(a), limiter_key(b));
    assert_ne!(limiter_key(a), limiter_key(other));
    assert_eq!(limiter_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(limiter_key(v4), v4);
}

#[test]
fn doors() {
    assert_eq!(door("/ingest"), Door::Ingest);
    assert_eq!(door("/ingest/apigw"), Door::Ingest);
    assert_eq!(door("/pkg/sockscope.wasm"), Door::Public);
    for p in [
        "/",
        "/api/trace",
        "/api/export",
        "/live",
        "/metrics",
        "/ingestx",
    ] {
        assert_eq!(door(p), Door::Dashboard, "{p}");
    }
}

#[test]
fn over_https_the_cookie_is_host_prefixed_and_one_address_cannot_end_every_session() {
    let mut cfg = AuthConfig::default().with_token(Role::Viewer, "v".repeat(16).as_str());
    cfg.secure_cookie = true;
    let auth = Auth::new(cfg);
    let other = auth.start_session(Role::Inspector, "192.0.2.200".parse().unwrap());
    let set = auth.set_cookie(Some(&other));
    assert!(
        set.starts_with("__Host-sockscope_session=") && set.contains("; Secure"),
        "{set}"
    );
    let with = |name: &str, v: &str| {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("{name}={v}").parse().unwrap());
        h
    };
    assert!(auth.principal(&with(SECURE_COOKIE, &other)).is_some());
    assert!(
        auth.principal(&with(COOKIE, &other)).is_none(),
        "over HTTPS only the prefixed cookie counts"
    );
    // One address logging in again and again ends only its own older sessions.
    let busy: IpAddr = "2001:db8::1".parse().unwrap();
    for _ in 0..100 {
        auth.start_session(Role::Viewer, busy);
    }
    assert!(auth.principal(&with(SECURE_COOKIE, &other)).is_some());
    let held = auth.sessions.lock().unwrap().len();
    assert_eq!(held, MAX_SESSIONS_PER_ADDRESS + 1);
}

#[test]
fn sessions_expire_and_are_bounded() {
    let mut cfg = AuthConfig::default().with_token(Role::Viewer, "v".repeat(16).as_str());
    cfg.max_sessions = 2;
    let auth = Auth::new(cfg);
    let cookie_header = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={v}").parse().unwrap(),
        );
        h
    };
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let a = auth.start_session(Role::Viewer, ip);
    let b = auth.start_session(Role::Inspector, "192.0.2.2".parse().unwrap());
    assert_eq!(
        auth.principal(&cookie_header(&b)).unwrap().role,
        Role::Inspector
    );
    let _c = auth.start_session(Role::Viewer, ip);
    assert!(
        auth.principal(&cookie_header(&a)).is_none(),
        "oldest ended at the limit"
    );
    auth.end_session(&cookie_header(&b));
    assert!(auth.principal(&cookie_header(&b)).is_none(), "logged out");
    assert!(auth.principal(&cookie_header("forged")).is_none());
    let set = auth.set_cookie(Some("x"));
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
}
