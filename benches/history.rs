//! The record at scale: writes a record of N message events (default 100,000,000) over the last
//! 24 hours — chat-like 64-byte payloads, a million connection lives, 5 % closed with 1006 — in
//! the segment format of docs/storage.md, then starts the real observer on it and reports:
//! the first start (no index yet: it is built), a restart (indexes saved), and p50/p99 of
//! one connection's events, "closed with 1006 in a 10-minute window", and a scrub of the
//! dashboard to a moment (`/live`, `at`), each against its target. Not a test: it reports.
//!
//! `cargo bench --features ssr --bench history -- [--events N] [--samples S] [--keep DIR]`

mod support;

use futures_util::{SinkExt, StreamExt};
use sockscope::protocol::{ClientMsg, TableQuery, TraceQuery, ViewSpec};
use sockscope_wire::{
    encode_events, ConnClose, ConnOpen, Direction, Encoding, Event, Hello, Message, Opcode,
    SourceKind,
};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{free_port, rss_kib, Proc};

const SOURCE: &str = "edge-1";
const DAY_S: u64 = 86_400;
/// As the observer writes them (src/server/record/mod.rs).
const BLOCK_BYTES: usize = 256 << 10;
const SEGMENT_BYTES: u64 = 16 << 20;

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Segment files as the observer writes them: entries in ~1 MiB zstd blocks with a CRC.
struct Writer<'a> {
    dir: &'a Path,
    file: Option<std::fs::File>,
    size: u64,
    block: Vec<u8>,
    bytes: u64,
}

impl Writer<'_> {
    fn entry(&mut self, arrival_us: u64, source: Option<&str>, frame: &[u8]) {
        if self.file.is_none() || self.size >= SEGMENT_BYTES {
            self.flush();
            let path = self.dir.join(format!("{arrival_us:020}.seg"));
            let mut f = std::fs::File::create(path).unwrap();
            f.write_all(b"SSREC01\n").unwrap();
            self.file = Some(f);
            self.size = 8;
        }
        let b = &mut self.block;
        b.extend_from_slice(&arrival_us.to_le_bytes());
        b.push(1); // MessagePack
        let s = source.unwrap_or("").as_bytes();
        b.push(s.len() as u8);
        b.extend_from_slice(s);
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(frame);
        if b.len() >= BLOCK_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.block.is_empty() {
            return;
        }
        let z = zstd::bulk::compress(&self.block, 1).unwrap();
        let f = self.file.as_mut().unwrap();
        f.write_all(&(z.len() as u32).to_le_bytes()).unwrap();
        f.write_all(&crc32fast::hash(&z).to_le_bytes()).unwrap();
        f.write_all(&z).unwrap();
        self.size += 8 + z.len() as u64;
        self.bytes += 8 + z.len() as u64;
        self.block.clear();
    }
}

/// A connection life the generator made (a sample is queried later).
#[derive(Clone)]
struct Life {
    conn: u64,
    opened_ms: u64,
    left: u32,
    every_s: u64,
    next_s: u64,
    code: u16,
}

/// Writes the record; returns (message events, lives, sample of closed lives, disk bytes,
/// the 24 h's start in ms).
fn generate(dir: &Path, events: u64) -> (u64, u64, Vec<Life>, u64, u64) {
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start_s, end_s) = (now_s - DAY_S - 60, now_s - 60);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // About 100 messages per life, one every 1–10 s: ~events/100 lives over the day.
    let lives_per_s = events as f64 / 100.0 / DAY_S as f64;
    let mut w = Writer {
        dir,
        file: None,
        size: 0,
        block: Vec::with_capacity(BLOCK_BYTES + (1 << 16)),
        bytes: 0,
    };
    let hello = Event::Hello(Hello {
        capture: None,
        source: SOURCE.into(),
        name: String::new(),
        kind: SourceKind::Proxy,
        version: "bench".into(),
        hostname: "bench".into(),
        instance: None,
    });
    w.entry(
        start_s * 1_000_000,
        None,
        &encode_events(Encoding::MsgPack, &[hello]),
    );
    let mut active: Vec<Life> = Vec::new();
    let (mut next_conn, mut msgs, mut owed) = (1u64, 0u64, 0f64);
    let mut sample = Vec::new();
    let mut batch: Vec<Event> = Vec::with_capacity(512);
    for s in start_s..end_s {
        if msgs >= events {
            break;
        }
        let t = |k: u64| s * 1_000_000 + k;
        owed += lives_per_s;
        while owed >= 1.0 {
            owed -= 1.0;
            let conn = next_conn;
            next_conn += 1;
            let every_s = 1 + rng.below(10);
            let life = Life {
                conn,
                opened_ms: s * 1000,
                left: 50 + rng.below(100) as u32,
                every_s,
                next_s: s + 1 + rng.below(every_s),
                code: if rng.below(20) == 0 { 1006 } else { 1000 },
            };
            batch.push(Event::ConnOpen(ConnOpen {
                ts: Some(t(0)),
                user_agent: Some(format!("Mozilla/5.0 bench/{}", conn % 50)),
                ..ConnOpen::new(
                    conn,
                    format!(
                        "10.{}.{}.{}",
                        (conn >> 16) & 255,
                        (conn >> 8) & 255,
                        conn & 255
                    ),
                    format!("/chat/room-{}", conn % 300),
                )
            }));
            active.push(life);
        }
        let mut i = 0;
        while i < active.len() {
            let l = &mut active[i];
            if l.next_s == s {
                l.next_s += l.every_s;
                l.left -= 1;
                msgs += 1;
                let text = format!(
                    "{{\"room\":\"r{}\",\"user\":\"u{}\",\"text\":\"hi #{:05}\"}}",
                    l.conn % 300,
                    l.conn,
                    l.left
                );
                let text = format!("{text:<64}");
                batch.push(Event::Message(Message {
                    conn: l.conn,
                    ts: Some(t(1 + i as u64 % 999_000)),
                    dir: if l.left.is_multiple_of(2) {
                        Direction::ClientToServer
                    } else {
                        Direction::ServerToClient
                    },
                    opcode: Opcode::Text,
                    size: text.len() as u64,
                    truncated: false,
                    text: Some(text),
                    data: None,
                    redacted: 0,
                    flight: false,
                }));
            }
            if l.left == 0 {
                let l = active.swap_remove(i);
                batch.push(Event::ConnClose(ConnClose {
                    conn: l.conn,
                    ts: Some(t(999_500)),
                    code: Some(l.code),
                    reason: None,
                    by: sockscope_wire::Closer::Client,
                }));
                if sample.len() < 20_000 && rng.below(8) == 0 {
                    sample.push(l);
                }
                continue;
            }
            i += 1;
            if batch.len() >= 512 {
                w.entry(
                    t(999_900),
                    Some(SOURCE),
                    &encode_events(Encoding::MsgPack, &batch),
                );
                batch.clear();
            }
        }
        if !batch.is_empty() {
            w.entry(
                t(999_900),
                Some(SOURCE),
                &encode_events(Encoding::MsgPack, &batch),
            );
            batch.clear();
        }
    }
    w.flush();
    (msgs, next_conn - 1, sample, w.bytes, start_s * 1000)
}

fn observer(dir: &Path, port: u16) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_sockscope"))
            .args(["serve", "--site-root", "/nonexistent"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", dir.to_str().unwrap()])
            .args(["--max-connections", "2000000"])
            .env("SOCKSCOPE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the observer"),
    )
}

/// Seconds from start until the observer answers `/api/overview` (through its aggregator).
async fn serving(port: u16, began: Instant) -> f64 {
    let url = format!("http://127.0.0.1:{port}/api/overview");
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() {
                return began.elapsed().as_secs_f64();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(began.elapsed() < Duration::from_secs(3600), "never served");
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn line(what: &str, v: &mut [f64], target_ms: f64) {
    let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
    println!(
        "{what:<44} p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  target p99 ≤ {target_ms:.0} ms  ({:.2}× target)",
        p99 / target_ms
    );
}

#[tokio::main]
async fn main() {
    let (mut events, mut samples, mut keep) = (100_000_000u64, 100usize, None::<String>);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--events" => events = it.next().and_then(|x| x.parse().ok()).expect("a number"),
            "--samples" => samples = it.next().and_then(|x| x.parse().ok()).expect("a number"),
            "--keep" => keep = it.next(),
            "--bench" => {}
            o => panic!("unknown argument {o}; use --events N --samples S --keep DIR"),
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.map_or(tmp.path().to_path_buf(), Into::into);
    std::fs::create_dir_all(&dir).unwrap();
    let t = Instant::now();
    let (msgs, lives, sample, bytes, day_ms) = generate(&dir, events);
    println!(
        "record: {msgs} message events, {lives} connection lives, {:.1} MiB on disk ({:.1} B/event), written in {:.0} s",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / msgs as f64,
        t.elapsed().as_secs_f64()
    );
    let port = free_port();
    let began = Instant::now();
    let first = observer(&dir, port);
    let s1 = serving(port, began).await;
    println!("first start, no index yet (built now):  serving after {s1:.1} s");
    drop(first);
    // Let the indexer finish what the first start did not need.
    let began = Instant::now();
    let p = observer(&dir, port);
    let s2 = serving(port, began).await;
    println!(
        "restart with indexes saved:              serving after {s2:.1} s  (target ≤ 5 s: {:.2}×)",
        s2 / 5.0
    );
    // Queries are measured once every closed segment is indexed (the indexer catches up on
    // the segments the restart replayed, in the background, at the lowest priority).
    let began = Instant::now();
    loop {
        let count = |ext: &str| {
            std::fs::read_dir(&dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == ext))
                })
                .count()
        };
        if count("idx") + 1 >= count("seg") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  every closed segment indexed {:.1} s after serving",
        began.elapsed().as_secs_f64()
    );
    let ov: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/overview"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "  restored: {} tracked, {} closed, observer RSS {:.0} MiB",
        ov["totals"]["tracked"],
        ov["totals"]["closed"],
        rss_kib(p.0.id()) as f64 / 1024.0
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/api/history");
    let mut rng = Rng(42);
    // One connection's whole life.
    let mut v = Vec::new();
    let mut got = 0usize;
    for _ in 0..samples {
        let l = &sample[rng.below(sample.len() as u64) as usize];
        let t = Instant::now();
        let r: serde_json::Value = http
            .get(format!(
                "{base}/events?source={SOURCE}&conn={}&opened_ms={}",
                l.conn, l.opened_ms
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
        got += r["items"].as_array().map_or(0, |a| a.len());
    }
    line("all events of one connection", &mut v, 100.0);
    println!(
        "  ({:.0} events per connection on average)",
        got as f64 / samples as f64
    );
    // Closed with 1006 in a 10-minute window.
    let mut v = Vec::new();
    let mut found = 0usize;
    for _ in 0..samples {
        let from = day_ms + rng.below(DAY_S - 600) * 1000;
        let t = Instant::now();
        let r: serde_json::Value = http
            .get(format!(
                "{base}/connections?state=closed&code=1006&from={from}&to={}&limit=1000",
                from + 600_000
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
        found += r["items"].as_array().map_or(0, |a| a.len());
    }
    line("closed with 1006 in a 10-minute window", &mut v, 200.0);
    println!(
        "  ({:.0} connections per answer on average)",
        found as f64 / samples as f64
    );
    // Scrub the dashboard to a moment: time to the past frame.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/live"))
        .await
        .unwrap();
    let spec = ViewSpec {
        table: Some(TableQuery::default()),
        trace: Some(TraceQuery::default()),
        detail: None,
        charts: true,
    };
    let send = |m: &ClientMsg| {
        tokio_tungstenite::tungstenite::Message::Text(serde_json::to_string(m).unwrap().into())
    };
    ws.send(send(&ClientMsg::Subscribe(spec))).await.unwrap();
    let mut v = Vec::new();
    let mut rows = 0usize;
    for _ in 0..samples {
        let at = day_ms + rng.below(DAY_S) * 1000;
        let t = Instant::now();
        ws.send(send(&ClientMsg::At { at_ms: Some(at) }))
            .await
            .unwrap();
        loop {
            let m = ws.next().await.unwrap().unwrap();
            let text = m.into_text().unwrap_or_default();
            if text.starts_with("{\"type\":\"past\"") {
                let f: serde_json::Value = serde_json::from_str(&text).unwrap();
                if f["at_ms"] == at {
                    rows += f["table"]["rows"].as_array().map_or(0, |a| a.len());
                    break;
                }
            }
        }
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    line("scrub to a moment (past frame on /live)", &mut v, 500.0);
    println!(
        "  ({:.0} table rows per frame on average)",
        rows as f64 / samples as f64
    );
}
