//! Ingest is for taps, not web pages: a browser's request (it carries an Origin, or a body type
//! a page may send without asking) cannot feed the observer, even an open loopback one.

mod common;
use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn a_web_page_cannot_feed_the_observer_cross_site() {
    let obs = start_default().await;
    let body = batch(vec![hello("page")]).to_string();
    // A page's fetch carries its Origin: refused, whatever the body.
    let r = obs
        .http
        .post(obs.url("/ingest"))
        .header("origin", "http://evil.test")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "origin", "{v}");
    // A `no-cors` post without a type, or with a type a page may send freely: not JSON.
    for ctype in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = obs.http.post(obs.url("/ingest")).body(body.clone());
        if let Some(t) = ctype {
            req = req.header("content-type", t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 415, "{ctype:?}");
        let r = obs
            .http
            .post(obs.url("/ingest/apigw"))
            .header("content-type", ctype.unwrap_or("text/plain"))
            .body(r#"{"requestContext":{}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "apigw {ctype:?}");
    }
    // The WebSocket too.
    let mut req = format!("ws://{}/ingest", obs.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.test".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!(
            "a browser's ingest socket was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    // Nothing got in; the refusals are counted.
    assert_eq!(obs.get_ok("/api/sources").await, json!([]));
    assert!(obs.overview().await.observer.refused.origin >= 2);
}
