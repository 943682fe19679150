//! Test harness: a real observer on 127.0.0.1:0 and real WebSocket / HTTP clients.
#![allow(dead_code)]

pub mod process;
pub mod proxy;
pub mod record;
pub mod tls;
pub mod upstream;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sockscope::server::config::ObserverConfig;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Observer {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

pub async fn start(cfg: ObserverConfig) -> Observer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sockscope::server::serve(
        listener,
        cfg,
        std::future::pending(),
    ));
    Observer {
        addr,
        http: reqwest::Client::new(),
    }
}

pub async fn start_default() -> Observer {
    start(ObserverConfig::default()).await
}

impl Observer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_ok(&self, path: &str) -> Value {
        let (s, v) = self.get(path).await;
        assert_eq!(s, 200, "GET {path} → {s} {v}");
        v
    }

    /// `GET path`, expected 200, read as `T` (for tests that are not about the JSON itself).
    pub async fn get_as_type<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let v = self.get_ok(path).await;
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("GET {path}: {e} in {v}"))
    }

    pub async fn overview(&self) -> sockscope::protocol::Overview {
        self.get_as_type("/api/overview").await
    }

    pub async fn post(&self, body: impl Into<reqwest::Body>, ctype: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/ingest"))
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Opens a tap session with the given subprotocol (None sends no header).
    pub async fn tap(&self, subprotocol: Option<&str>) -> Ws {
        let mut req = format!("ws://{}/ingest", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(p) = subprotocol {
            req.headers_mut()
                .insert("sec-websocket-protocol", p.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
            .await
            .expect("tap connects")
            .0
    }

    /// A `/live` socket on an open observer, past its welcome message.
    pub async fn live(&self) -> Ws {
        self.live_as(None).await.expect("live connects")
    }

    /// A `/live` socket sending `Authorization: Bearer <token>`; its first message (the welcome)
    /// is checked and consumed. Err carries the refused handshake's status.
    pub async fn live_as(&self, token: Option<&str>) -> Result<Ws, u16> {
        let mut req = format!("ws://{}/live", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let mut ws = match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => return Err(r.status().as_u16()),
            Err(e) => panic!("live handshake failed: {e}"),
        };
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        Ok(ws)
    }

    /// Like [`Observer::wait_for`], with a bearer token.
    pub async fn wait_for_as(
        &self,
        path: &str,
        token: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.poll(path, Some(token), check).await
    }

    /// GET as text (an export body), with a bearer token when given.
    pub async fn text(&self, path: &str, token: Option<&str>) -> String {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap().text().await.unwrap()
    }

    /// GET with `Authorization: Bearer <token>`: status and JSON (Null when not JSON).
    pub async fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` until `check` accepts the JSON or 5 s pass.
    pub async fn wait_for(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.poll(path, None, check).await
    }

    async fn poll(&self, path: &str, token: Option<&str>, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (_, v) = match token {
                Some(t) => self.get_as(path, t).await,
                None => self.get(path).await,
            };
            if check(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting on {path}; last: {v}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Next text frame as JSON, within 3 s.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(3), ws.next())
            .await
            .expect("a frame within 3 s")
            .expect("socket open")
            .expect("no socket error");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

pub fn hello(source: &str) -> Value {
    serde_json::json!({"type": "hello", "source": source, "name": format!("{source} name"), "kind": "proxy", "version": "0.1.0", "hostname": "testhost"})
}

pub fn batch(events: Vec<Value>) -> Value {
    serde_json::json!({"v": 1, "events": events})
}
