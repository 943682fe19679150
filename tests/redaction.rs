//! Redaction through `sockscope proxy`, end to end on loopback: a password a client sends
//! never reaches the observer's API; credentials headers are withheld and named; the flags
//! refuse bad values with a clear message.

mod common;

use clap::Parser;
use common::upstream;
use common::*;
use futures_util::{SinkExt, StreamExt};
use sockscope::proxy::ProxyArgs;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    proxy: ProxyArgs,
}

fn args(extra: &[&str]) -> Result<ProxyArgs, clap::Error> {
    let mut argv = vec!["proxy", "--upstream", "http://127.0.0.1:9"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).map(|c| c.proxy)
}

/// Starts `sockscope proxy` as its flags configure it.
async fn start_proxy(obs: &Observer, up: SocketAddr, extra: &[&str]) -> SocketAddr {
    let observer = format!("ws://{}/ingest", obs.addr);
    let upstream = format!("http://{up}");
    let mut argv = vec![
        "--upstream",
        &upstream,
        "--observer",
        &observer,
        "--name",
        "px",
    ];
    argv.extend_from_slice(extra);
    let mut full = vec!["proxy"];
    full.extend(argv);
    let (cfg, tap) = Cli::try_parse_from(full)
        .unwrap()
        .proxy
        .into_parts()
        .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(sockscope::proxy::serve(l, cfg, tap, std::future::pending()));
    addr
}

#[tokio::test]
async fn a_password_sent_through_the_proxy_never_reaches_the_observer() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(&obs, up, &["--mask-regex", r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"]).await;
    let mut req = format!("ws://{proxy}/ws?room=1&access_token=qTok3n")
        .into_client_request()
        .unwrap();
    for (k, v) in [
        ("cookie", "sid=c00kie"),
        ("authorization", "Bearer aUth"),
        ("origin", "http://app.test"),
    ] {
        req.headers_mut().insert(k, v.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let login = r#"{"type":1,"target":"Login","arguments":[{"user":"bob","password":"hunter2","card":"4111-1111-1111-1111"}]}"#;
    let sent = format!("{login}\u{1e}");
    ws.send(Message::Text(sent.clone().into())).await.unwrap();
    // The upstream echoes it: the app sees the real payload both ways.
    let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::Text(sent.into()));
    ws.send(Message::Text("hello".into())).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}

    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let id = page["items"][0]["id"].as_u64().unwrap();
    let d = obs
        .wait_for(&format!("/api/connections/{id}"), |v| {
            v["messages"].as_array().is_some_and(|m| m.len() >= 4)
        })
        .await;
    assert_eq!(d["path"], "/ws?room=1&access_token=[REDACTED]");
    assert_eq!(d["capture"], "truncated");
    assert_eq!(d["capture_bytes"], 4096);
    assert_eq!(
        d["headers"],
        serde_json::json!([["origin", "http://app.test"]])
    );
    let withheld: Vec<_> = d["redacted_headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(
        withheld.contains(&"cookie") && withheld.contains(&"authorization"),
        "{withheld:?}"
    );
    let msgs = d["messages"].as_array().unwrap();
    let masked: Vec<_> = msgs.iter().filter(|m| m["redacted"] == 2).collect();
    assert_eq!(masked.len(), 2, "the login and its echo: {msgs:?}");
    let text = masked[0]["text"].as_str().unwrap();
    assert!(text.contains(r#""password":"[REDACTED]""#), "{text}");
    assert!(text.contains(r#""card":"[REDACTED]""#), "{text}");
    assert!(msgs
        .iter()
        .any(|m| m["text"] == "hello" && m.get("redacted").is_none()));

    // Nowhere in what the observer serves.
    for path in [
        format!("/api/connections/{id}"),
        "/api/connections?state=all".into(),
        "/api/trace?limit=100".into(),
        "/api/export?format=ndjson".into(),
        "/api/export?format=har".into(),
    ] {
        let body = obs.text(&path, None).await;
        for secret in ["hunter2", "4111-1111", "qTok3n", "c00kie", "aUth"] {
            assert!(!body.contains(secret), "{secret} leaked in {path}: {body}");
        }
    }
}

#[tokio::test]
async fn route_modes_and_metadata_only_reach_the_observer() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(
        &obs,
        up,
        &[
            "--payload-mode",
            "metadata",
            "--route-payload-mode",
            "/ws=full",
        ],
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/ws"))
        .await
        .unwrap();
    ws.send(Message::Text("x".repeat(10_000).into()))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let d = obs
        .get_ok(&format!("/api/connections/{}", page["items"][0]["id"]))
        .await;
    assert_eq!(d["capture"], "full");
    let m = &d["messages"][0];
    assert_eq!(
        (m["size"].as_u64(), m["truncated"].as_bool()),
        (Some(10_000), Some(false))
    );
    assert_eq!(m["text"].as_str().map(str::len), Some(10_000));

    // Metadata everywhere else.
    let obs = start_default().await;
    let proxy = start_proxy(&obs, up, &["--payload-mode", "metadata"]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}/ws"))
        .await
        .unwrap();
    ws.send(Message::Text(r#"{"password":"x"}"#.into()))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let d = obs
        .get_ok(&format!("/api/connections/{}", page["items"][0]["id"]))
        .await;
    assert_eq!(d["capture"], "metadata");
    let m = &d["messages"][0];
    assert_eq!(m["size"], 16);
    assert!(
        m.get("text").is_none() && m.get("data_b64").is_none(),
        "{m}"
    );
}

#[test]
fn bad_flag_values_name_the_flag_and_what_to_write() {
    let err = |extra: &[&str]| match args(extra).map(|a| a.into_parts()) {
        Ok(Ok(_)) => panic!("{extra:?} was accepted"),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    let e = err(&["--payload-mode", "most"]);
    assert!(
        e.contains("--payload-mode") && e.contains("off, metadata"),
        "{e}"
    );
    let e = err(&["--route-payload-mode", "/admin"]);
    assert!(
        e.contains("--route-payload-mode") && e.contains("PREFIX=MODE"),
        "{e}"
    );
    let e = err(&["--route-payload-mode", "admin=off"]);
    assert!(e.contains("must start with /"), "{e}");
    let e = err(&["--mask-regex", "(oops"]);
    assert!(e.contains("--mask-regex") && e.contains("(oops"), "{e}");
    let e = err(&["--payload-cap", "100000"]);
    assert!(e.contains("--payload-cap") && e.contains("full"), "{e}");
    // Defaults are the tap's documented ones; an empty list disables key masking.
    let a = args(&[]).unwrap();
    assert_eq!(a.mask_keys, sockscope_tap::DEFAULT_MASK_KEYS);
    assert_eq!(a.mirror_headers, sockscope_tap::DEFAULT_MIRROR_HEADERS);
    assert_eq!(a.payload_mode, "truncated");
    let a = args(&["--mask-keys", ""]).unwrap();
    assert!(a.mask_keys.iter().all(|k| k.is_empty()));
    assert!(args(&["--mask-keys", ""]).unwrap().into_parts().is_ok());
}

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";

#[tokio::test]
async fn tokens_passed_as_subprotocols_are_masked_and_protocol_names_kept() {
    let up = upstream::start().await;
    let obs = start_default().await;
    let proxy = start_proxy(&obs, up, &[]).await;
    // `new WebSocket(url, ['access_token', jwt, 'chat.v1'])`: the app negotiates chat.v1.
    let mut req = format!("ws://{proxy}/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("access_token, {JWT}, chat.v1").parse().unwrap(),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat.v1");
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    let page = obs
        .wait_for("/api/connections?state=closed", |v| v["total"] == 1)
        .await;
    let id = page["items"][0]["id"].as_u64().unwrap();
    let d = obs.get_ok(&format!("/api/connections/{id}")).await;
    assert_eq!(d["subprotocol"], "chat.v1");
    let offered = d["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "sec-websocket-protocol")
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(offered[1], "access_token, [REDACTED], chat.v1");
    assert!(!d.to_string().contains("eyJ"), "{d}");
}

#[tokio::test]
async fn the_observer_masks_a_token_subprotocol_from_a_tap_that_did_not() {
    let obs = start_default().await;
    let open = serde_json::json!({"type":"conn_open","conn":1,"ip":"192.0.2.9","path":"/ws",
        "subprotocol": JWT,
        "headers":[["sec-websocket-protocol", format!("base64url.bearer.authorization.k8s.io.{}", &JWT[..40])]]});
    let (status, body) = obs
        .post(
            batch(vec![hello("raw"), open]).to_string(),
            "application/json",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let page = obs.wait_for("/api/connections", |v| v["total"] == 1).await;
    let d = obs
        .get_ok(&format!("/api/connections/{}", page["items"][0]["id"]))
        .await;
    assert_eq!(d["subprotocol"], "[REDACTED]");
    assert_eq!(
        d["headers"][0][1],
        "base64url.bearer.authorization.k8s.io.[REDACTED]"
    );
    assert!(!d.to_string().contains("eyJ"), "{d}");
}
