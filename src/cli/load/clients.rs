//! One simulated client per profile. Each returns what it measured; nothing here is shared
//! but the per-room member counts of the chat profile and the run's progress counters.

use super::stats::{expected_ticks, latency_histogram, record_ms, Spread};
use super::Shared;
use crate::cli::sample_app::now_ms;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Time allowed after the end for messages already in flight.
pub(super) const GRACE: Duration = Duration::from_millis(500);

/// What one client measured.
pub(super) struct Outcome {
    pub connected: bool,
    /// The connection dropped before the end.
    pub dropped: bool,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub intervals: Spread,
    pub latency: Histogram<u64>,
}

impl Outcome {
    fn sent(&mut self, shared: &Shared) {
        self.sent += 1;
        shared.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// One message arrived, `latency_ms` after it was stamped.
    fn received(&mut self, shared: &Shared, latency_ms: f64) {
        record_ms(&mut self.latency, latency_ms);
        self.received += 1;
        shared.received.fetch_add(1, Ordering::Relaxed);
    }

    fn new() -> Self {
        Outcome {
            connected: false,
            dropped: false,
            sent: 0,
            expected: 0,
            received: 0,
            intervals: Spread::default(),
            latency: latency_histogram(),
        }
    }
}

#[derive(Deserialize)]
struct Stamped {
    #[serde(default)]
    seq: u64,
    ts: f64,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Option<Ws> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let cfg = WebSocketConfig::default().read_buffer_size(4096);
    let mut req = url.into_client_request().ok()?;
    req.headers_mut().insert(
        "user-agent",
        concat!("sockscope-load/", env!("CARGO_PKG_VERSION"))
            .parse()
            .expect("valid header"),
    );
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_with_config(req, Some(cfg), true),
    )
    .await
    {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

fn padded(seq: u64, from: usize, size: usize) -> String {
    let head = format!(
        "{{\"seq\":{seq},\"from\":{from},\"ts\":{:.3},\"pad\":\"",
        now_ms()
    );
    let pad = size.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

/// Broadcast: receive the server's ticks until `end`; missed is counted against the schedule.
pub(super) async fn broadcast(
    url: String,
    end: Instant,
    interval_ms: f64,
    shared: &Shared,
) -> Outcome {
    let mut o = Outcome::new();
    let Some(mut ws) = connect(&url).await else {
        return o;
    };
    o.connected = true;
    let mut first_ts = None;
    let mut first_seq = None;
    let mut seqs = Vec::new();
    let mut last_arrival: Option<f64> = None;
    let mut last_seq = 0;
    loop {
        let m = tokio::select! {
            m = ws.next() => m,
            _ = tokio::time::sleep_until(end) => break,
        };
        let text = match m {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            _ => {
                o.dropped = true;
                break;
            }
        };
        let Ok(s) = serde_json::from_str::<Stamped>(text.as_str()) else {
            continue;
        };
        let now = now_ms();
        if s.seq <= last_seq {
            continue; // duplicate
        }
        last_seq = s.seq;
        first_ts.get_or_insert(s.ts);
        first_seq.get_or_insert(s.seq);
        seqs.push(s.seq);
        if let Some(prev) = last_arrival {
            o.intervals.add(now - prev);
        }
        last_arrival = Some(now);
        // Counted here for progress; `received` is recomputed for the window below.
        o.received(shared, now - s.ts);
    }
    // The end of the run in the server's clock (same host, or clocks in sync). Ticks sent in
    // the last moments may still be in flight: those after `end - grace` are neither expected
    // nor counted.
    let end_ms = now_ms();
    let grace = (interval_ms / 2.0).min(GRACE.as_millis() as f64);
    match (first_ts, first_seq) {
        (Some(ts), Some(seq0)) => {
            o.expected = expected_ticks(ts, end_ms, interval_ms, grace);
            let cutoff = seq0 + o.expected - 1;
            o.received = seqs.iter().filter(|s| **s <= cutoff).count() as u64;
        }
        // Connected but never received anything: everything it should have seen is missed.
        _ => {
            o.expected = ((end_ms - grace - shared.started_ms) / interval_ms)
                .floor()
                .max(0.0) as u64
        }
    }
    let _ = ws.close(None).await;
    o
}

/// Echo: send every `interval` until `end`, measure round trips; unanswered sends are missed.
pub(super) async fn echo(
    url: String,
    end: Instant,
    interval: Duration,
    size: usize,
    idx: usize,
    shared: &Shared,
) -> Outcome {
    let mut o = Outcome::new();
    let Some(mut ws) = connect(&url).await else {
        return o;
    };
    o.connected = true;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop_at = end + GRACE;
    loop {
        let sending = Instant::now() < end;
        tokio::select! {
            _ = tick.tick(), if sending => {
                o.sent(shared);
                if ws.send(Message::Text(padded(o.sent, idx, size).into())).await.is_err() {
                    o.dropped = true;
                    break;
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(s) = serde_json::from_str::<Stamped>(t.as_str()) {
                        o.received(shared, now_ms() - s.ts);
                        if !sending && o.received >= o.sent {
                            break;
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => { o.dropped = true; break; }
            },
            _ = tokio::time::sleep_until(stop_at) => break,
        }
    }
    o.expected = o.sent;
    let _ = ws.close(None).await;
    o
}

#[derive(Deserialize)]
struct Post {
    ts: f64,
    #[allow(dead_code)]
    from: usize,
}

/// The classic chat mix: 10 % post every 11 intervals, 20 % every 59, 70 % only read.
pub(super) fn chat_period(idx: usize) -> Option<u64> {
    match idx % 10 {
        0 => Some(11),
        1 | 2 => Some(59),
        _ => None,
    }
}

/// Chat: join the room, post on the client's schedule; every post is expected once by each
/// member the room had when it was sent (members count themselves once the server confirms).
pub(super) async fn chat(
    url: String,
    room: usize,
    end: Instant,
    interval: Duration,
    size: usize,
    idx: usize,
    shared: &Shared,
) -> Outcome {
    let mut o = Outcome::new();
    let Some(mut ws) = connect(&url).await else {
        return o;
    };
    o.connected = true;
    let mut joined = false;
    let period = chat_period(idx).map(|p| interval * p as u32);
    // Spread the first posts over the period so the clients do not post in lockstep.
    let mut next_post = period.map(|p| Instant::now() + p.mul_f64((idx % 97) as f64 / 97.0));
    let stop_at = end + GRACE;
    loop {
        let post_at = next_post.filter(|t| joined && *t < end);
        tokio::select! {
            _ = async { tokio::time::sleep_until(post_at.unwrap()).await }, if post_at.is_some() => {
                o.sent(shared);
                shared.chat_expected.fetch_add(shared.room_members[room].load(Ordering::SeqCst), Ordering::Relaxed);
                if ws.send(Message::Text(padded(o.sent, idx, size).into())).await.is_err() {
                    o.dropped = true;
                    break;
                }
                next_post = Some(post_at.unwrap() + period.unwrap());
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if !joined && t.as_str().starts_with("{\"joined\"") {
                        joined = true;
                        shared.room_members[room].fetch_add(1, Ordering::SeqCst);
                    } else if let Ok(p) = serde_json::from_str::<Post>(t.as_str()) {
                        o.received(shared, now_ms() - p.ts);
                    }
                }
                Some(Ok(_)) => {}
                _ => { o.dropped = true; break; }
            },
            _ = tokio::time::sleep_until(stop_at) => break,
        }
    }
    if joined {
        shared.room_members[room].fetch_sub(1, Ordering::SeqCst);
    }
    let _ = ws.close(None).await;
    o
}
