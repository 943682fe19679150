//! `sockscope sample-app`: a WebSocket server with the three classic load profiles.
//! - `/broadcast`: one server timer sends `{"seq","ts"}` to every client each interval;
//! - `/echo`: every text/binary message is sent back as is;
//! - `/chat?room=<name>`: a client joins a room (answered with `{"joined","members"}`) and each
//!   post fans out to every member of the room, the poster included.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc};

/// Default broadcast interval.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;
/// Read buffer per client socket.
const READ_BUFFER: usize = 4096;
/// Messages queued per chat member before it is considered too slow and dropped from the room.
const MEMBER_QUEUE: usize = 1024;

#[derive(Clone, Debug, clap::Args)]
pub struct SampleAppArgs {
    /// Address to serve on.
    #[arg(
        long,
        env = "SOCKSCOPE_SAMPLE_LISTEN",
        default_value = "127.0.0.1:5000"
    )]
    pub listen: std::net::SocketAddr,
    /// Broadcast interval in milliseconds.
    #[arg(long, default_value_t = DEFAULT_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub interval: u64,
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

type Room = Vec<(u64, mpsc::Sender<Message>)>;

#[derive(Clone)]
struct AppState {
    ticks: broadcast::Sender<Message>,
    rooms: Arc<Mutex<HashMap<String, Room>>>,
    next_member: Arc<std::sync::atomic::AtomicU64>,
}

/// The sample app's router; its broadcast timer runs until the runtime stops.
pub fn router(interval: Duration) -> Router {
    let (ticks, _) = broadcast::channel(16);
    let tx = ticks.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seq = 0u64;
        loop {
            t.tick().await;
            seq += 1;
            let msg = format!("{{\"seq\":{seq},\"ts\":{:.3}}}", now_ms());
            let _ = tx.send(Message::Text(msg.into()));
        }
    });
    let state = AppState {
        ticks,
        rooms: Arc::new(Mutex::new(HashMap::new())),
        next_member: Arc::new(std::sync::atomic::AtomicU64::new(1)),
    };
    Router::new()
        .route("/broadcast", get(broadcast_ws))
        .route("/echo", get(echo_ws))
        .route("/chat", get(chat_ws))
        .route(
            "/",
            get(|| async { "sockscope sample app: /broadcast, /echo, /chat?room=<name>\n" }),
        )
        .with_state(state)
}

async fn broadcast_ws(ws: WebSocketUpgrade, State(s): State<AppState>) -> Response {
    let rx = s.ticks.subscribe();
    ws.read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| broadcast_client(socket, rx))
}

async fn broadcast_client(socket: WebSocket, mut rx: broadcast::Receiver<Message>) {
    let (mut tx, mut incoming) = socket.split();
    loop {
        tokio::select! {
            tick = rx.recv() => match tick {
                Ok(m) => if tx.send(m).await.is_err() { return },
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            m = incoming.next() => if !matches!(m, Some(Ok(_))) { return },
        }
    }
}

async fn echo_ws(ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(READ_BUFFER)
        .on_upgrade(|mut socket| async move {
            while let Some(Ok(m)) = socket.recv().await {
                let echo = matches!(m, Message::Text(_) | Message::Binary(_));
                if echo && socket.send(m).await.is_err() {
                    return;
                }
            }
        })
}

#[derive(Deserialize)]
struct ChatParams {
    room: Option<String>,
}

async fn chat_ws(
    ws: WebSocketUpgrade,
    State(s): State<AppState>,
    Query(p): Query<ChatParams>,
) -> Response {
    let room: String = p
        .room
        .unwrap_or_else(|| "lobby".into())
        .chars()
        .take(64)
        .collect();
    ws.read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| chat_client(socket, s, room))
}

async fn chat_client(socket: WebSocket, s: AppState, room: String) {
    let id = s
        .next_member
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Message>(MEMBER_QUEUE);
    let members = {
        let mut rooms = s.rooms.lock().expect("rooms lock");
        let r = rooms.entry(room.clone()).or_default();
        r.push((id, tx));
        r.len()
    };
    let (mut out, mut incoming) = socket.split();
    let joined = format!(
        "{{\"joined\":{},\"members\":{members}}}",
        serde_json::to_string(&room).unwrap_or_default()
    );
    if out.send(Message::Text(joined.into())).await.is_ok() {
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => if out.send(m).await.is_err() { break },
                    None => break,
                },
                m = incoming.next() => match m {
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        let targets: Vec<mpsc::Sender<Message>> = s.rooms.lock().expect("rooms lock")
                            .get(&room).map(|r| r.iter().map(|(_, t)| t.clone()).collect()).unwrap_or_default();
                        for t in targets {
                            // A member that cannot keep up misses messages; it never stalls the room.
                            let _ = t.try_send(m.clone());
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
    }
    let mut rooms = s.rooms.lock().expect("rooms lock");
    if let Some(r) = rooms.get_mut(&room) {
        r.retain(|(m, _)| *m != id);
        if r.is_empty() {
            rooms.remove(&room);
        }
    }
}

/// Serves the sample app until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(interval))
        .with_graceful_shutdown(shutdown)
        .await
}
