//! Dashboard at scale: a synthetic tap reports N tracked connections (default 1,000,000) and a
//! steady message rate (default 50,000/s) while headless Chromium keeps the dashboard open.
//! Reports observer RSS, bytes/s per browser, event→screen latency (p50/p99) and long tasks.
//! Not a test: it reports.
//!
//! `cargo bench --features ssr --bench dashboard -- [--conns N] [--rate R] [--seconds S]`

use futures_util::{SinkExt, StreamExt};
use sockscope_wire::{
    encode_events, ConnOpen, Direction, Encoding, Event, Hello, Message, Opcode, SourceKind,
};
use std::process::{Command, Stdio};

mod support;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{rss_kib, Proc};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMsg;

fn hello() -> Event {
    Event::Hello(Hello {
        capture: None,
        source: "bench-1m".into(),
        name: String::new(),
        kind: SourceKind::Proxy,
        version: "bench".into(),
        hostname: "localhost".into(),
        instance: None,
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn bin(events: &[Event]) -> WsMsg {
    WsMsg::Binary(encode_events(Encoding::MsgPack, events).into())
}

#[tokio::main]
async fn main() {
    let (mut conns, mut rate, mut secs) = (1_000_000u64, 50_000u64, 20u64);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut v = || {
            it.next()
                .and_then(|x| x.parse::<u64>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--conns" => conns = v(),
            "--rate" => rate = v(),
            "--seconds" => secs = v(),
            "--bench" => {}
            o => panic!("unknown argument {o}; use --conns N --rate R --seconds S"),
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = env!("CARGO_MANIFEST_DIR");
    let observer = Proc(
        Command::new(env!("CARGO_BIN_EXE_sockscope"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--site-root",
                // ./scripts/build puts the dashboard there (scripts/env.sh).
                &std::env::var("SOCKSCOPE_SITE").unwrap_or(format!("{root}/target/site")),
                "--max-connections",
                &(conns + 1000).to_string(),
                // What the browser sees is measured here, not the record.
                "--no-record",
            ])
            .env("SOCKSCOPE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the observer"),
    );
    let pid = observer.0.id();
    for _ in 0..200 {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut req = format!("ws://127.0.0.1:{port}/ingest")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "sockscope.v1.msgpack".parse().unwrap(),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    tokio::spawn(async move { while rx.next().await.is_some() {} });
    tx.send(bin(&[hello()])).await.unwrap();
    // Connection 0 carries the markers; 1..=conns are the tracked crowd.
    let mut next = 0u64;
    while next <= conns {
        let end = (next + 4096).min(conns + 1);
        let evs: Vec<Event> = (next..end)
            .map(|i| {
                Event::ConnOpen(ConnOpen {
                    user_agent: Some(format!("agent/{}", i % 40)),
                    ..ConnOpen::new(i, support::synthetic_ip(i), format!("/hub/{}", i % 500))
                })
            })
            .collect();
        tx.send(bin(&evs)).await.unwrap();
        next = end;
    }
    loop {
        let v: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/overview"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["totals"]["open"].as_u64().unwrap_or(0) > conns {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_loaded = rss_kib(pid);
    // Steady traffic: `rate` messages per second in 10 ms batches, plus a marker every 250 ms.
    let stop = Instant::now() + Duration::from_secs(secs + 12);
    let per_tick = (rate / 100).max(1);
    let traffic = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let (mut n, mut sent, mut last_mark) = (0u64, 0u64, Instant::now());
        while Instant::now() < stop {
            tick.tick().await;
            let mut evs: Vec<Event> = (0..per_tick)
                .map(|_| {
                    n += 1;
                    Event::Message(Message {
                        flight: false,
                        conn: 1 + n % conns,
                        ts: None,
                        dir: if n % 2 == 0 {
                            Direction::ClientToServer
                        } else {
                            Direction::ServerToClient
                        },
                        opcode: Opcode::Text,
                        size: 48,
                        text: Some(
                            format!("{{\"n\":{n},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxx\"}}")
                                .chars()
                                .take(48)
                                .collect::<String>(),
                        )
                        .map(|t| format!("{t:<48}")),
                        data: None,
                        truncated: false,
                        redacted: 0,
                    })
                })
                .collect();
            if last_mark.elapsed() >= Duration::from_millis(250) {
                last_mark = Instant::now();
                let text = format!("mark-{}", now_ms());
                evs.push(Event::Message(Message {
                    flight: false,
                    conn: 0,
                    ts: None,
                    dir: Direction::ServerToClient,
                    opcode: Opcode::Text,
                    size: text.len() as u64,
                    text: Some(text),
                    data: None,
                    truncated: false,
                    redacted: 0,
                }));
            }
            sent += evs.len() as u64;
            if tx.send(bin(&evs)).await.is_err() {
                break;
            }
        }
        sent
    });
    let out = Command::new("node")
        .arg(format!("{root}/end2end/bench/measure.js"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg(secs.to_string())
        .env("NODE_PATH", format!("{root}/end2end/node_modules"))
        .output()
        .expect("run node end2end/bench/measure.js");
    let rss_end = rss_kib(pid);
    let sent = traffic.await.unwrap();
    let ov: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/overview"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "measure.js failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!("sockscope dashboard benchmark: {conns} tracked connections, {rate} messages/s, one headless Chromium for {secs} s");
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| observer RSS with the connections loaded | {:.0} MiB | |",
        rss_loaded as f64 / 1024.0
    );
    println!(
        "| observer RSS at the end (traffic and browser on) | {:.0} MiB | ≤ 1024 MiB |",
        rss_end as f64 / 1024.0
    );
    println!(
        "| messages sent / ingested | {sent} / {} | |",
        ov["totals"]["msgs_in"].as_u64().unwrap_or(0)
            + ov["totals"]["msgs_out"].as_u64().unwrap_or(0)
    );
    println!(
        "| bytes/s to the browser, default view (unfiltered trace) | {:.1} KB/s | ≤ 200 KB/s |",
        m["unfiltered_bytes_per_s"].as_f64().unwrap_or(0.0) / 1000.0
    );
    println!(
        "| long tasks (> 50 ms), default view, max | {} , {:.0} ms | 0 |",
        m["unfiltered_long_tasks"],
        m["unfiltered_long_task_max_ms"].as_f64().unwrap_or(0.0)
    );
    println!(
        "| bytes/s to the browser, trace filtered to the markers | {:.1} KB/s | ≤ 200 KB/s |",
        m["bytes_per_s"].as_f64().unwrap_or(0.0) / 1000.0
    );
    println!(
        "| event→screen latency p50 / p99 ({} markers) | {} ms / {} ms | p99 ≤ 250 ms |",
        m["markers"], m["latency_p50_ms"], m["latency_p99_ms"]
    );
    println!(
        "| long tasks (> 50 ms), filtered view, max | {} , {:.0} ms | 0 |",
        m["long_tasks"],
        m["long_task_max_ms"].as_f64().unwrap_or(0.0)
    );
    println!(
        "| table rows in the DOM / range shown | {} / {} | |",
        m["table_rows_in_dom"],
        m["table_range"].as_str().unwrap_or("")
    );
    drop(observer);
}
