//! An observer that records, as the record's tests drive it: started on a data directory,
//! fed with `POST /ingest`, asked over the API, stopped gracefully.

use super::process::{sockscope, start_until, Running};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// `sockscope serve` recording into `dir`; returns once it answers.
pub async fn observer(dir: &Path, port: u16, extra: &[&str]) -> Running {
    let mut c = sockscope(&["serve", "--site-root", "/nonexistent"]);
    c.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--data-dir", dir.to_str().unwrap()])
        .args(extra)
        .env_remove("SOCKSCOPE_NO_RECORD")
        .env("SOCKSCOPE_LOG", "info");
    let (p, _) = start_until(c, "sockscope observer on");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(&url)
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the observer did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p
}

pub async fn post(port: u16, events: Vec<Value>) {
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/ingest"))
        .json(&json!({"v": 1, "events": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

pub async fn get(port: u16, path: &str) -> Value {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The observer's `/metrics` text.
pub async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Stops gracefully (SIGTERM) and waits for the exit.
pub fn stop(mut p: Running) {
    let pid = p.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the observer did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A proxy tap's hello for `source`.
pub fn hello(source: &str) -> Value {
    json!({"type": "hello", "source": source, "kind": "proxy"})
}
