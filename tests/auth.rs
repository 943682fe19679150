//! The door, against a real observer on loopback: unauthenticated requests are refused on
//! every route, viewers never get payloads or headers, logins use HttpOnly SameSite=Strict
//! cookies, bad Host and Origin values are refused, and each refusal is counted.

mod common;

use common::{batch, hello, next_json, send_json, start, Observer};
use serde_json::{json, Value};
use sockscope::protocol::Role;
use sockscope::server::config::ObserverConfig;
use sockscope::server::AuthConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const INSPECTOR: &str = "inspector-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";
const TAP: &str = "tap-token-0123456789abcdef";
const PASSWORD: &str = "correct horse battery staple";

async fn locked() -> Observer {
    let phc = sockscope::server::hash_password(PASSWORD).unwrap();
    let mut auth = AuthConfig::default()
        .with_token(Role::Inspector, INSPECTOR)
        .with_token(Role::Viewer, VIEWER)
        .with_password_hash(Role::Viewer, &phc)
        .with_ingest_token(TAP);
    auth.logins_per_minute = 5;
    start(ObserverConfig {
        auth,
        ..ObserverConfig::default()
    })
    .await
}

async fn post_ingest(obs: &Observer, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = obs.http.post(obs.url("/ingest")).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// A connection with a secret in its payload and headers, reported with the tap token.
async fn seed(obs: &Observer) -> u64 {
    let events = vec![
        hello("edge"),
        json!({"type": "conn_open", "conn": 1, "ip": "10.0.0.9", "path": "/chat", "user_agent": "ua",
               "headers": [["x-request-id", "hdr-secret-42"]]}),
        json!({"type": "message", "conn": 1, "dir": "c2s", "opcode": "text", "size": 24, "text": "{\"pin\":\"payload-secret\"}"}),
    ];
    let (s, v) = post_ingest(obs, Some(TAP), &batch(events)).await;
    assert_eq!(s, 200, "{v}");
    let (_, page) = obs.get_as("/api/connections", INSPECTOR).await;
    page["items"][0]["id"].as_u64().unwrap()
}

#[tokio::test]
async fn unauthenticated_requests_are_refused_everywhere() {
    let obs = locked().await;
    for path in [
        "/api/overview",
        "/api/connections",
        "/api/connections/1",
        "/api/trace",
        "/api/export?format=ndjson",
        "/api/sources",
        "/metrics",
        "/api/me",
    ] {
        let r = obs.http.get(obs.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.headers().contains_key("www-authenticate"), "{path}");
        let r = obs
            .http
            .get(obs.url(path))
            .bearer_auth(TAP)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "a tap token does not open {path}");
        let r = obs
            .http
            .get(obs.url(path))
            .bearer_auth("nope-nope-nope-nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // A browser is sent to the login form, which keeps where it wanted to go.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(obs.url("/?x=1"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/%3Fx%3D1");
    let page = obs.http.get(obs.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Token or password"));
    assert_eq!(obs.get("/healthz").await.0, 200, "health stays open");
    // /live handshake
    assert_eq!(obs.live_as(None).await.err(), Some(401));
    assert_eq!(obs.live_as(Some(TAP)).await.err(), Some(401));
    // Taps need their own token, on every ingest route.
    let body = batch(vec![hello("x")]);
    assert_eq!(post_ingest(&obs, None, &body).await.0, 401);
    assert_eq!(post_ingest(&obs, Some(INSPECTOR), &body).await.0, 401);
    let apigw = obs
        .http
        .post(obs.url("/ingest/apigw"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(apigw.status(), 401);
    let req = format!("ws://{}/ingest", obs.addr)
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("tap without token connected: {:?}", other.map(|_| ())),
    }
    let mut req = format!("ws://{}/ingest", obs.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {TAP}").parse().unwrap());
    let (mut tap, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("tap with token");
    send_json(&mut tap, batch(vec![hello("ws-tap")])).await;
    let v = obs
        .wait_for_as("/api/sources", INSPECTOR, |v| {
            v.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(v[0]["id"], "ws-tap");
    let o = obs.get_as("/api/overview", INSPECTOR).await.1;
    let refused = &o["observer"]["refused"];
    assert!(
        refused["unauthenticated"].as_u64().unwrap() >= 26,
        "{refused}"
    );
    assert!(refused["tap_token"].as_u64().unwrap() >= 4, "{refused}");
}

#[tokio::test]
async fn viewers_see_metadata_but_never_payloads_or_headers() {
    let obs = locked().await;
    let id = seed(&obs).await;
    let path = format!("/api/connections/{id}");
    let (s, d) = obs.get_as(&path, INSPECTOR).await;
    assert_eq!(s, 200);
    assert_eq!(d["messages"][0]["text"], "{\"pin\":\"payload-secret\"}");
    assert_eq!(d["headers"][0][1], "hdr-secret-42");
    let (s, d) = obs.get_as(&path, VIEWER).await;
    assert_eq!(s, 200);
    assert_eq!(d["payloads_hidden"], true);
    assert_eq!(d["path"], "/chat", "metadata stays");
    assert_eq!(d["messages"][0]["size"], 24);
    let text = d.to_string();
    assert!(
        !text.contains("payload-secret") && !text.contains("hdr-secret"),
        "{text}"
    );
    // trace: previews scrubbed, payload search refused
    let (_, t) = obs.get_as("/api/trace", VIEWER).await;
    assert!(!t.to_string().contains("payload-secret"), "{t}");
    assert!(obs
        .get_as("/api/trace", INSPECTOR)
        .await
        .1
        .to_string()
        .contains("payload-secret"));
    let (s, e) = obs.get_as("/api/trace?text=secret", VIEWER).await;
    assert_eq!(s, 403);
    assert!(
        e["message"].as_str().unwrap().contains("inspector role") && e["code"] == "forbidden",
        "{e}"
    );
    // exports in every format
    for fmt in ["har", "ndjson", "csv"] {
        let body = obs
            .text(&format!("/api/export?format={fmt}"), Some(VIEWER))
            .await;
        assert!(
            body.contains("10.0.0.9") || body.contains("/chat"),
            "{fmt}: {body}"
        );
        assert!(
            !body.contains("payload-secret") && !body.contains("hdr-secret"),
            "{fmt}: {body}"
        );
        let full = obs
            .text(&format!("/api/export?format={fmt}"), Some(INSPECTOR))
            .await;
        assert!(
            full.contains("payload-secret"),
            "{fmt}: inspectors export payloads"
        );
    }
    let (s, _) = obs.get_as("/api/export?format=csv&text=pin", VIEWER).await;
    assert_eq!(s, 403);
    // /live: the welcome names the role; the inspector panel and trace are scrubbed
    let mut live = obs.live_as(Some(VIEWER)).await.expect("viewer may watch");
    send_json(
        &mut live,
        json!({"type": "subscribe", "detail": id, "trace": {"limit": 50}, "charts": false}),
    )
    .await;
    let snap = next_json(&mut live).await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["detail"]["payloads_hidden"], true);
    assert!(!snap.to_string().contains("payload-secret"), "{snap}");
    assert!(!snap.to_string().contains("hdr-secret"), "{snap}");
    send_json(
        &mut live,
        json!({"type": "subscribe", "trace": {"text": "secret", "limit": 50}}),
    )
    .await;
    let snap = next_json(&mut live).await;
    assert!(
        snap["trace_error"]
            .as_str()
            .unwrap()
            .contains("inspector role"),
        "{snap}"
    );
    let mut live = obs.live_as(Some(INSPECTOR)).await.unwrap();
    send_json(&mut live, json!({"type": "subscribe", "detail": id})).await;
    let snap = next_json(&mut live).await;
    assert!(snap.to_string().contains("payload-secret"));
    let o = obs.get_as("/api/overview", INSPECTOR).await.1;
    assert!(
        o["observer"]["refused"]["role"].as_u64().unwrap() >= 2,
        "{o}"
    );
}

#[tokio::test]
async fn login_sets_a_strict_httponly_session_and_logout_ends_it() {
    let obs = locked().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |secret: &'static str, origin: Option<String>| {
        let mut r = client
            .post(obs.url("/auth/login"))
            .form(&[("secret", secret), ("next", "/?tab=trace")]);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let bad = login("wrong password here", None).await.unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers().get("set-cookie").is_none());
    assert!(bad.text().await.unwrap().contains("not valid"));
    let cross = login(PASSWORD, Some("http://evil.example".into()))
        .await
        .unwrap();
    assert_eq!(cross.status(), 403, "login CSRF refused");
    let ok = login(PASSWORD, Some(format!("http://{}", obs.addr)))
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/?tab=trace");
    let set = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let me = client
        .get(obs.url("/api/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.json::<Value>().await.unwrap()["role"],
        "viewer",
        "the password is a viewer's"
    );
    // the cookie opens /live too
    let mut req = format!("ws://{}/live", obs.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut live, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("cookie opens /live");
    let welcome = next_json(&mut live).await;
    assert_eq!(
        welcome,
        json!({"type": "welcome", "role": "viewer", "login": true})
    );
    let out = client
        .post(obs.url("/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let me = client
        .get(obs.url("/api/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "the session ended with the logout");
    // login attempts are rate limited per address (5/min here); the observer keeps serving
    let mut limited = false;
    for _ in 0..6 {
        if login("wrong password here", None).await.unwrap().status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the sixth attempt within a minute is refused");
    assert_eq!(obs.get_as("/api/overview", INSPECTOR).await.0, 200);
    let o = obs.get_as("/api/overview", INSPECTOR).await.1;
    let r = &o["observer"]["refused"];
    assert!(r["login_rate_limited"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["bad_login"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["origin"].as_u64().unwrap() >= 1, "{r}");
}

#[tokio::test]
async fn bad_host_and_origin_are_refused() {
    let obs = locked().await;
    for host in ["evil.example", "evil.example:3000", "127.0.0.1.nip.io"] {
        let r = obs
            .http
            .get(obs.url("/api/overview"))
            .bearer_auth(INSPECTOR)
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 421, "{host}");
        let body = r.text().await.unwrap();
        assert!(body.contains("--allowed-host"), "{body}");
    }
    // DNS rebinding against an open loopback observer is refused as well
    let open = common::start_default().await;
    let r = open
        .http
        .get(open.url("/api/overview"))
        .header("host", "rebind.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    assert_eq!(
        open.get("/api/overview").await.0,
        200,
        "its own address works"
    );
    let localhost = format!("http://localhost:{}/api/overview", open.addr.port());
    assert_eq!(open.http.get(localhost).send().await.unwrap().status(), 200);
    // cross-origin /live
    let mut req = format!("ws://{}/live", obs.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {INSPECTOR}").parse().unwrap(),
    );
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("cross-origin /live connected: {:?}", other.map(|_| ())),
    }
    let o = obs.get_as("/api/overview", INSPECTOR).await.1;
    assert!(
        o["observer"]["refused"]["host"].as_u64().unwrap() >= 3,
        "{o}"
    );
    assert!(
        o["observer"]["refused"]["origin"].as_u64().unwrap() >= 1,
        "{o}"
    );
    // security headers on every response
    let r = obs.http.get(obs.url("/login")).send().await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn viewers_see_neither_query_values_nor_close_reasons() {
    let obs = locked().await;
    let body = batch(vec![
        hello("vq"),
        json!({"type":"conn_open","conn":1,"ip":"192.0.2.8","path":"/ws?room=blue&invite=s3cr3t"}),
        json!({"type":"conn_close","conn":1,"code":4001,"reason":"user bob@example.com banned","by":"server"}),
    ]);
    assert_eq!(post_ingest(&obs, Some(TAP), &body).await.0, 200);
    let page = obs
        .wait_for_as("/api/connections?state=closed", VIEWER, |v| v["total"] == 1)
        .await;
    let row = &page["items"][0];
    assert_eq!(row["path"], "/ws?room=[hidden]&invite=[hidden]");
    assert_eq!(row["close_reason"], "[hidden]");
    let (_, d) = obs
        .get_as(&format!("/api/connections/{}", row["id"]), VIEWER)
        .await;
    assert_eq!(d["path"], "/ws?room=[hidden]&invite=[hidden]");
    assert_eq!(d["close_reason"], "[hidden]");
    let (_, t) = obs.get_as("/api/trace", VIEWER).await;
    let text = t.to_string();
    assert!(!text.contains("s3cr3t") && !text.contains("bob@"), "{t}");
    // The inspector sees both.
    let (_, d) = obs
        .get_as(&format!("/api/connections/{}", row["id"]), INSPECTOR)
        .await;
    assert_eq!(d["path"], "/ws?room=blue&invite=s3cr3t");
    assert_eq!(d["close_reason"], "user bob@example.com banned");
}

#[tokio::test]
async fn an_address_guessing_tokens_is_shut_out_right_token_included() {
    let obs = locked().await;
    for i in 0..31 {
        let (s, _) = obs
            .get_as("/api/overview", &format!("wrong-token-{i:016}"))
            .await;
        assert!(s == 401 || s == 429, "{s}");
    }
    // Past 30 wrong tokens a minute the address gets 429 for every token check, so guessing
    // cannot go on; the right token waits out the minute too.
    let (s, v) = obs.get_as("/api/overview", INSPECTOR).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (429, Some("too_many_attempts")),
        "{v}"
    );
    let (s, _) = obs.get_as("/api/overview", TAP).await;
    assert_eq!(s, 429);
    // Wrong tap tokens count the same way (another observer: a fresh address table).
    let obs2 = locked().await;
    for _ in 0..31 {
        post_ingest(
            &obs2,
            Some("not-the-tap-token-000000"),
            &batch(vec![hello("x")]),
        )
        .await;
    }
    let (s, v) = post_ingest(&obs2, Some(TAP), &batch(vec![hello("x")])).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (429, Some("too_many_attempts")),
        "{v}"
    );
    // Counted where the dashboard shows refusals.
    let refused = obs.get_as("/metrics", INSPECTOR).await;
    assert_eq!(refused.0, 429, "metrics needs a token check too");
}
