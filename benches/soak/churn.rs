//! The soak's traffic: `sockscope load` runs cycling through the profiles (some killed mid-run,
//! dropping all their clients at once), short-lived clients that end in every way (close codes,
//! FIN without a close frame, RST), and a dashboard subscriber on `/live`.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// What the traffic did, for the report.
#[derive(Default)]
pub struct Counts {
    pub load_runs: AtomicU64,
    pub load_killed: AtomicU64,
    pub load_failed: AtomicU64,
    pub churn_clients: AtomicU64,
    pub churn_failed: AtomicU64,
    /// By ending: close frame, FIN without close, RST.
    pub endings: [AtomicU64; 3],
    pub live_frames: AtomicU64,
}

/// A small xorshift: varied but repeatable per lane, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One lane of `sockscope load` runs through `proxy`, one after the other, cycling the
/// profiles from `first`, starting after `delay` (lanes starting together would open all
/// their clients in one burst that steady churn never repeats). Every fourth run is killed (SIGKILL) at a random moment, so each
/// profile in turn loses all its clients at once.
pub fn load_lane(
    bin: String,
    proxy: SocketAddr,
    clients: u64,
    first: usize,
    delay: Duration,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let start = Instant::now() + delay;
        while Instant::now() < start && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let profiles = [("broadcast", "1s"), ("echo", "500ms"), ("chat", "200ms")];
        let mut rng = Rng::new(proxy.port() as u64 * 7919 + first as u64);
        let mut n = first;
        while !stop.load(Ordering::Relaxed) {
            let (profile, interval) = profiles[n % profiles.len()];
            let secs = 30 + rng.below(30);
            let child = Command::new(&bin)
                .args([
                    "load",
                    "--url",
                    &format!("ws://{proxy}"),
                    "--profile",
                    profile,
                ])
                .args(["--clients", &clients.to_string(), "--ramp", "40ms"])
                .args(["--duration", &format!("{secs}s"), "--interval", interval])
                .args(["--rooms", "10", "--payload-size", "128"])
                .env("SOCKSCOPE_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let Ok(mut child) = child else {
                counts.load_failed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            let kill_at = (n % 4 == 3).then(|| Duration::from_secs(5 + rng.below(secs)));
            let started = Instant::now();
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let c = if status.success() {
                        &counts.load_runs
                    } else {
                        &counts.load_failed
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                let end = stop.load(Ordering::Relaxed);
                if end || kill_at.is_some_and(|k| started.elapsed() >= k) {
                    // Our own child, not yet reaped: its pid cannot have been reused.
                    let _ = child.kill();
                    let _ = child.wait();
                    if end {
                        return;
                    }
                    counts.load_killed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            n += 1;
        }
    })
}

/// A new short-lived client every `every` through the proxies in turn: a few echoes, then a
/// close frame with a varied code, a FIN without a close frame, or an RST.
pub async fn churn(proxies: Vec<SocketAddr>, every: Duration, counts: Arc<Counts>) {
    let mut tick = tokio::time::interval(every);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        n += 1;
        let proxy = proxies[n as usize % proxies.len()];
        let counts = counts.clone();
        tokio::spawn(async move {
            counts.churn_clients.fetch_add(1, Ordering::Relaxed);
            if one_client(proxy, n, &counts).await.is_none() {
                counts.churn_failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

async fn one_client(proxy: SocketAddr, n: u64, counts: &Counts) -> Option<()> {
    let tcp = tokio::net::TcpStream::connect(proxy).await.ok()?;
    // A path and user agent of varied length, some markup in them: the observer keeps each.
    let path = format!(
        "/echo?visitor={n}&pad={}",
        "x".repeat((n % 40 * 50) as usize)
    );
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{proxy}{path}"),
    )
    .ok()?;
    let ua = format!("soak/{} <script>alert({n})</script>", n % 97);
    req.headers_mut().insert("user-agent", ua.parse().ok()?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.ok()?;
    for i in 0..(n % 6 + 1) {
        let body = format!("{{\"visitor\":{n},\"i\":{i},\"note\":\"<b>churn</b>\"}}");
        ws.send(Message::Text(body.into())).await.ok()?;
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
    }
    tokio::time::sleep(Duration::from_millis(200 + n % 10 * 150)).await;
    match n % 5 {
        0..=2 => {
            let (code, reason) =
                [(1000, "done"), (1001, "going away"), (4000, "kicked")][(n % 3) as usize];
            let _ = ws
                .close(Some(CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                }))
                .await;
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
            counts.endings[0].fetch_add(1, Ordering::Relaxed);
        }
        3 => {
            drop(ws); // FIN, no close frame
            counts.endings[1].fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            let _ = ws.get_ref().set_zero_linger();
            drop(ws); // RST
            counts.endings[2].fetch_add(1, Ordering::Relaxed);
        }
    }
    Some(())
}

/// A dashboard on `/live` for the whole run (table, trace and charts), reconnecting if dropped.
pub async fn live_subscriber(observer: SocketAddr, counts: Arc<Counts>) {
    use sockscope::protocol::{ClientMsg, TableQuery, TraceQuery, ViewSpec};
    let subscribe = ClientMsg::Subscribe(ViewSpec {
        table: Some(TableQuery::default()),
        trace: Some(TraceQuery {
            limit: 200,
            ..TraceQuery::default()
        }),
        detail: None,
        charts: true,
    });
    let subscribe = serde_json::to_string(&subscribe).expect("subscribe serializes");
    loop {
        if let Ok((mut ws, _)) =
            tokio_tungstenite::connect_async(format!("ws://{observer}/live")).await
        {
            if ws
                .send(Message::Text(subscribe.clone().into()))
                .await
                .is_ok()
            {
                while let Some(Ok(_)) = ws.next().await {
                    counts.live_frames.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
