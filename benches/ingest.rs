//! Ingest benchmark: a synthetic tap drives a real `sockscope serve` process over loopback.
//! Prints events/s the observer applied (MessagePack and JSON) and its RSS per tracked
//! connection. Not a test: it asserts nothing, it reports.
//!
//! `cargo bench --features ssr --bench ingest -- [--conns N] [--seconds S] [--taps T]`

use futures_util::{SinkExt, StreamExt};
use sockscope_wire::{
    encode_batch, Batch, ConnOpen, Direction, Encoding, Event, Hello, Message, Opcode, SourceKind,
};
use std::process::Stdio;

mod support;
use std::time::{Duration, Instant};
use support::{free_port, rss_kib, Proc};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMsg;

struct Args {
    conns: u64,
    seconds: u64,
    taps: u64,
    /// Another `sockscope` binary to interleave with this one (an A/B against an older build).
    ab: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        conns: 100_000,
        seconds: 5,
        taps: 2,
        ab: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = || {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{k} needs a number"))
        };
        match k.as_str() {
            "--conns" => a.conns = num(),
            "--seconds" => a.seconds = num(),
            "--taps" => a.taps = num(),
            "--ab" => a.ab = it.next(),
            "--bench" => {}
            other => panic!("unknown argument {other}; use --conns N --seconds S --taps T"),
        }
    }
    a
}

fn hello(source: &str) -> Event {
    Event::Hello(Hello {
        capture: None,
        source: source.into(),
        name: String::new(),
        kind: SourceKind::Proxy,
        version: "bench".into(),
        hostname: "localhost".into(),
        instance: None,
    })
}

async fn get_json(port: u16, path: &str) -> serde_json::Value {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn tap(
    port: u16,
    enc: Encoding,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://127.0.0.1:{port}/ingest")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", enc.subprotocol().parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

fn frame(enc: Encoding, b: &Batch) -> WsMsg {
    let bytes = encode_batch(enc, b);
    match enc {
        Encoding::Json => WsMsg::Text(String::from_utf8(bytes).unwrap().into()),
        Encoding::MsgPack => WsMsg::Binary(bytes.into()),
    }
}

async fn ingested(port: u16) -> u64 {
    get_json(port, "/api/overview").await["observer"]["events_ingested"]
        .as_u64()
        .unwrap()
}

/// Opens `n` connections on source "bench-0" and returns once the observer tracks them.
async fn open_connections(port: u16, n: u64) {
    let mut ws = tap(port, Encoding::MsgPack).await;
    ws.send(frame(
        Encoding::MsgPack,
        &Batch::new(vec![hello("bench-0")]),
    ))
    .await
    .unwrap();
    let mut next = 1;
    while next <= n {
        let end = (next + 4095).min(n + 1);
        let events = (next..end)
            .map(|i| {
                Event::ConnOpen(ConnOpen {
                    user_agent: Some(format!("bench-agent/{}", i % 50)),
                    ..ConnOpen::new(
                        i,
                        support::synthetic_ip(i),
                        format!("/ws/room/{}", i % 1000),
                    )
                })
            })
            .collect();
        ws.send(frame(Encoding::MsgPack, &Batch::new(events)))
            .await
            .unwrap();
        next = end;
    }
    loop {
        let open = get_json(port, "/api/overview").await["totals"]["open"]
            .as_u64()
            .unwrap();
        if open >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Keep the session (its source) alive by leaking it into a task that drains replies.
    tokio::spawn(async move { while ws.next().await.is_some() {} });
}

/// Sends message batches from `taps` sessions for `secs`; returns events/s the observer applied.
async fn throughput(port: u16, enc: Encoding, taps: u64, conns: u64, secs: u64) -> (f64, f64) {
    let mut handles = Vec::new();
    let before = ingested(port).await;
    let start = Instant::now();
    let stop = start + Duration::from_secs(secs);
    let mut rng = 0x2545_f491_4f6c_dd1du64 ^ taps;
    for t in 0..taps {
        let src = "bench-0".to_string();
        // Distinct frames of chat-like 64-byte payloads, cycled: what the record compresses
        // is then like real traffic, not one frame repeated.
        let msgs: Vec<WsMsg> = (0..FRAMES_PER_TAP)
            .map(|f| {
                let events: Vec<Event> = std::iter::once(hello(&src))
                    .chain((0..1023u64).map(|i| {
                        let text = chat_payload(&mut rng, f * 1023 + i);
                        Event::Message(Message {
                            flight: false,
                            conn: 1 + (i * 7919 + t + f * 13) % conns,
                            ts: None,
                            dir: if i % 2 == 0 {
                                Direction::ClientToServer
                            } else {
                                Direction::ServerToClient
                            },
                            opcode: Opcode::Text,
                            size: text.len() as u64,
                            text: Some(text),
                            data: None,
                            truncated: false,
                            redacted: 0,
                        })
                    }))
                    .collect();
                frame(enc, &Batch::new(events))
            })
            .collect();
        let bytes = match &msgs[0] {
            WsMsg::Text(t) => t.len(),
            WsMsg::Binary(b) => b.len(),
            _ => 0,
        };
        handles.push(tokio::spawn(async move {
            let mut ws = tap(port, enc).await;
            let mut sent = 0u64;
            while Instant::now() < stop {
                ws.send(msgs[sent as usize % msgs.len()].clone())
                    .await
                    .unwrap();
                sent += 1;
            }
            let _ = ws.close(None).await;
            (sent, bytes)
        }));
    }
    let mut frames = 0;
    let mut frame_bytes = 0;
    for h in handles {
        let (s, b) = h.await.unwrap();
        frames += s;
        frame_bytes = b;
    }
    // Let the observer finish what is queued, then count what it applied.
    let mut applied = ingested(port).await - before;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = ingested(port).await - before;
        if now == applied {
            break;
        }
        applied = now;
    }
    let elapsed = start.elapsed().as_secs_f64() - 0.2;
    let _ = frames;
    (applied as f64 / elapsed, frame_bytes as f64 / 1024.0)
}

const ROUNDS: usize = 3;
/// Distinct frames each synthetic tap cycles through.
const FRAMES_PER_TAP: u64 = 16;

/// A chat message of exactly 64 bytes, e.g.
/// `{"t":"msg","room":"r042","user":"u01234","seq":77,"text":"so lag ok"}`, from a small
/// vocabulary, so it compresses like real traffic.
fn chat_payload(rng: &mut u64, seq: u64) -> String {
    const WORDS: [&str; 32] = [
        "hi", "ok", "lol", "yes", "no", "brb", "gg", "wow", "nice", "lag", "so", "the", "is", "it",
        "on", "up", "go", "win", "play", "team", "map", "ready", "wait", "now", "here", "there",
        "what", "why", "cool", "fine", "thanks", "bye",
    ];
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let head = format!(
        "{{\"t\":\"msg\",\"room\":\"r{:03}\",\"user\":\"u{:05}\",\"seq\":{},\"text\":\"",
        next() % 200,
        next() % 50_000,
        seq % 1000
    );
    let mut text = String::new();
    while head.len() + text.len() + 2 < 64 {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[(next() % 32) as usize]);
    }
    let mut s = format!("{head}{text}");
    s.truncate(62);
    s.push_str("\"}");
    s
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Starts `sockscope serve` (recording into `record` when given; another binary when `bin`
/// is) and waits until it answers.
async fn start_observer(record: Option<&std::path::Path>, bin: Option<&str>) -> (Proc, u16) {
    let port = free_port();
    let mut c = support::process::observer(port, "warn");
    if let Some(bin) = bin {
        let args: Vec<_> = c.get_args().map(|a| a.to_owned()).collect();
        let mut other = std::process::Command::new(bin);
        other
            .args(args)
            .env("SOCKSCOPE_NO_RECORD", "1")
            .stdout(Stdio::null());
        c = other;
    }
    if let Some(dir) = record {
        c.env_remove("SOCKSCOPE_NO_RECORD")
            .args(["--data-dir", dir.to_str().unwrap()]);
    }
    let obs = Proc(
        c.stderr(Stdio::inherit())
            .spawn()
            .expect("start sockscope serve"),
    );
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (obs, port)
}

#[tokio::main]
async fn main() {
    let a = args();
    let (obs, port) = start_observer(None, None).await;
    let pid = obs.0.id();
    let record_dir =
        std::env::temp_dir().join(format!("sockscope-bench-record-{}", std::process::id()));
    let (rec_obs, rec_port) = start_observer(Some(&record_dir), None).await;
    let other = match &a.ab {
        Some(bin) => Some(start_observer(None, Some(bin)).await),
        None => None,
    };
    let rss0 = rss_kib(pid);
    let t = Instant::now();
    open_connections(port, a.conns).await;
    let open_secs = t.elapsed().as_secs_f64();
    let rss1 = rss_kib(pid);
    open_connections(rec_port, a.conns).await;
    if let Some((_, p)) = &other {
        open_connections(*p, a.conns).await;
    }
    println!(
        "sockscope ingest benchmark ({} cores, observer pid {pid})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| tracked connections | {} |", a.conns);
    println!(
        "| conn_open events/s (msgpack, 1 tap) | {:.0} |",
        a.conns as f64 / open_secs
    );
    println!(
        "| observer RSS idle → with connections | {} KiB → {} KiB |",
        rss0, rss1
    );
    println!(
        "| RSS per tracked connection | {:.0} B |",
        (rss1 - rss0) as f64 * 1024.0 / a.conns as f64
    );
    // Interleave the encodings and the record on/off over several rounds and quote medians:
    // the machine is noisy.
    let (mut mps, mut jss, mut recs, mut others) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut mp_kib, mut js_kib) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        let (r, k) = throughput(port, Encoding::MsgPack, a.taps, a.conns, a.seconds).await;
        mps.push(r);
        mp_kib = k;
        let (r, _) = throughput(rec_port, Encoding::MsgPack, a.taps, a.conns, a.seconds).await;
        recs.push(r);
        if let Some((_, p)) = &other {
            let (r, _) = throughput(*p, Encoding::MsgPack, a.taps, a.conns, a.seconds).await;
            others.push(r);
        }
        let (r, k) = throughput(port, Encoding::Json, a.taps, a.conns, a.seconds).await;
        jss.push(r);
        js_kib = k;
    }
    let (mp, js, rec) = (median(&mut mps), median(&mut jss), median(&mut recs));
    println!("| message events/s, MessagePack, median of {ROUNDS} ({} taps, 1024-event frames of {mp_kib:.0} KiB, 64 B payloads) | {mp:.0} (runs: {}) |", a.taps, list(&mps));
    println!("| message events/s, JSON, median of {ROUNDS} ({} taps, frames of {js_kib:.0} KiB) | {js:.0} (runs: {}) |", a.taps, list(&jss));
    println!("| MessagePack / JSON | {:.2}× |", mp / js);
    println!("| message events/s, MessagePack, recording on (--data-dir), median of {ROUNDS} | {rec:.0} (runs: {}) |", list(&recs));
    println!("| **recording on / off** | {:.2}× |", rec / mp);
    if let Some(bin) = &a.ab {
        let o = median(&mut others);
        println!(
            "| message events/s, MessagePack, {bin}, median of {ROUNDS} | {o:.0} (runs: {}) |",
            list(&others)
        );
        println!("| **this build / {bin}** | {:.2}× |", mp / o);
    }
    // Let the writer sync, then read what the record holds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let o = get_json(rec_port, "/api/overview").await;
    let r = &o["observer"]["recording"];
    let (bytes, dropped) = (
        r["bytes"].as_u64().unwrap_or(0),
        r["dropped"].as_u64().unwrap_or(0),
    );
    let events = o["observer"]["events_ingested"]
        .as_u64()
        .unwrap_or(1)
        .max(1);
    println!(
        "| record on disk | {:.1} MiB for {events} events, {dropped} frames dropped |",
        bytes as f64 / 1048576.0
    );
    println!(
        "| **disk bytes per event** (64 B payloads; conn_opens included) | {:.1} B |",
        bytes as f64 / events as f64
    );
    println!("| observer RSS after load | {} KiB |", rss_kib(pid));
    println!();
    println!("Targets: ≥ 1 000 000 events/s; recording on ≥ 0.9× off; ≤ 40 B on disk per 64-byte-payload message event; 1M tracked connections in ≤ 1 GiB (≤ 1074 B each).");
    drop((obs, rec_obs, other));
    let _ = std::fs::remove_dir_all(&record_dir);
}
