//! Taps → NATS JetStream → observer, against a real `nats-server -js` on loopback: what the
//! taps sent is what the observer shows, across a restart of the observer (its durable
//! consumer resumes: nothing lost, nothing applied twice) and of nats-server (taps count what
//! they could not publish, and recover).

mod common;

use common::process::{free_port, Running};
use common::record::get;
use serde_json::Value;
use sockscope_tap::wire::{Closer, Direction, Opcode};
use sockscope_tap::{ConnInfo, Tap, TapConfig};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `nats-server -js` on `port`, storing in `dir`; returns once it accepts connections.
fn nats(port: u16, dir: &Path) -> Running {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["-sd", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (./scripts/setup installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not come up");
        std::thread::sleep(Duration::from_millis(25));
    }
    Running(child)
}

/// An observer consuming the bus, recording into `dir`; returns once it answers.
async fn observer(port: u16, bus: u16, dir: &Path) -> Running {
    let url = format!("nats://127.0.0.1:{bus}");
    let obs = common::record::observer(dir, port, &["--bus", &url, "--cluster", "test"]).await;
    // Reading the stream (it exists then, so taps' first batches have somewhere to go).
    until(port, "/api/overview", |v| {
        v["observer"]["bus"]["connected"] == true
    })
    .await;
    obs
}

/// Waits (up to 20 s) until `ok` holds for `path`; panics with the last answer.
async fn until(port: u16, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await {
            if let Ok(v) = r.json::<Value>().await {
                if ok(&v) {
                    return v;
                }
                if Instant::now() > deadline {
                    panic!("timed out waiting on {path}: {v}");
                }
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting on {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tap(bus: u16, source: &str) -> Tap {
    let mut cfg = TapConfig::new(format!("nats://127.0.0.1:{bus}"), source);
    cfg.flush = Duration::from_millis(2);
    cfg.max_backoff = Duration::from_millis(300);
    Tap::start(cfg).unwrap()
}

/// `n` connections on `tap`, each sending `msgs` messages (one byte each), then closing.
fn traffic(tap: &Tap, n: u32, msgs: u32) {
    for i in 0..n {
        let c = tap.open(ConnInfo::new([10, 0, 0, 1].into(), format!("/c{i}")));
        for _ in 0..msgs {
            c.message(Direction::ClientToServer, Opcode::Text, b"x");
        }
        c.close(Some(1000), None, Closer::Client);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_publish_to_jetstream_and_the_observer_applies_each_batch_once() {
    let (nats_dir, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bus = free_port();
    let _nats = nats(bus, nats_dir.path());
    let port = free_port();
    let obs = observer(port, bus, data.path()).await;
    let (a, b) = (tap(bus, "edge-a"), tap(bus, "edge-b"));
    traffic(&a, 20, 50);
    traffic(&b, 10, 30);
    let total = |v: &Value| {
        (
            v["totals"]["closed"].as_u64(),
            v["totals"]["msgs_in"].as_u64(),
        )
    };
    let ov = until(port, "/api/overview", |v| {
        total(v) == (Some(30), Some(1300))
    })
    .await;
    assert_eq!(ov["totals"]["opened"], 30);
    // The consumer's position and lag are shown: caught up, nothing pending.
    let ov = until(port, "/api/overview", |v| {
        v["observer"]["bus"]["pending"] == 0
    })
    .await;
    let link = &ov["observer"]["bus"];
    assert_eq!(
        (link["connected"].as_bool(), link["cluster"].as_str()),
        (Some(true), Some("test")),
        "{link}"
    );
    assert!(link["consumed_seq"].as_u64().unwrap() >= 2, "{link}");
    assert_eq!(
        link["consumed_seq"], link["batches"],
        "every batch read once: {link}"
    );
    let metrics = common::record::metrics(port).await;
    for line in [
        "sockscope_bus_connected{cluster=\"test\"} 1",
        "sockscope_bus_pending_batches{cluster=\"test\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let sources = get(port, "/api/sources").await;
    let mut ids: Vec<&str> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["edge-a", "edge-b"]);

    // The observer is killed (-9) at once, while taps keep publishing: the stream holds the
    // batches, and the restarted observer (its record restored) takes up from its consumer's
    // position — what it acknowledged was on disk.
    drop(obs);
    traffic(&a, 5, 10);
    let obs = observer(port, bus, data.path()).await;
    let ov = until(port, "/api/overview", |v| {
        total(v) == (Some(35), Some(1350))
    })
    .await;
    assert_eq!(ov["totals"]["opened"], 35, "nothing applied twice: {ov}");
    assert_eq!(a.drops().message, 0, "the bus was up: nothing dropped");
    drop(obs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_is_counted_by_the_taps_and_they_recover() {
    let (nats_dir, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bus = free_port();
    let nats_server = nats(bus, nats_dir.path());
    let port = free_port();
    let _obs = observer(port, bus, data.path()).await;
    let a = tap(bus, "edge-r");
    traffic(&a, 5, 10);
    until(port, "/api/overview", |v| v["totals"]["closed"] == 5).await;

    drop(nats_server);
    // The observer shows the outage.
    until(port, "/api/overview", |v| {
        v["observer"]["bus"]["connected"] == false
            && v["observer"]["bus"]["outages"].as_u64() >= Some(1)
    })
    .await;
    // Published while the bus is down: counted, not delivered.
    let c = a.open(ConnInfo::new([10, 0, 0, 2].into(), "/during"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.drops().message == 0 {
        c.message(Direction::ClientToServer, Opcode::Text, b"lost");
        assert!(Instant::now() < deadline, "the tap never counted a drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _nats = nats(bus, nats_dir.path());
    // Back: the tap re-announces the open connection, and what follows arrives.
    c.message(Direction::ClientToServer, Opcode::Text, b"after");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let open = get(port, "/api/connections?state=open").await;
        if open["total"] == 1 {
            assert_eq!(open["items"][0]["path"], "/during");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the open connection never came back: {open}"
        );
        c.message(Direction::ClientToServer, Opcode::Text, b"after");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sources = until(port, "/api/sources", |v| {
        v[0]["drops"]["message"].as_u64().is_some_and(|d| d > 0)
    })
    .await;
    until(port, "/api/overview", |v| {
        v["observer"]["bus"]["connected"] == true
    })
    .await;
    assert_eq!(sources[0]["id"], "edge-r");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_the_servers_message_limit_are_split() {
    let (nats_dir, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bus = free_port();
    let _nats = nats(bus, nats_dir.path());
    let port = free_port();
    let _obs = observer(port, bus, data.path()).await;
    let a = tap(bus, "edge-big");
    // 600 messages of 4 KiB captured: a few MiB in one batch, past NATS's 1 MiB per message.
    let c = a.open(ConnInfo::new([10, 0, 0, 3].into(), "/big"));
    let payload = vec![b'y'; 4096];
    for _ in 0..600 {
        c.message(Direction::ServerToClient, Opcode::Binary, &payload);
    }
    c.close(Some(1000), None, Closer::Server);
    let ov = until(port, "/api/overview", |v| v["totals"]["closed"] == 1).await;
    assert_eq!(ov["totals"]["msgs_out"], 600, "{ov}");
    assert_eq!(a.drops().message, 0);
}
