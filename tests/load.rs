//! Each load profile against the sample app, directly and through a tapped proxy: the
//! observer's counts must match what the generator sent and received.

mod common;
use common::*;
use sockscope::cli::load::{run, LoadArgs, Profile};
use std::net::SocketAddr;
use std::time::Duration;

async fn sample_app(interval: Duration) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(sockscope::cli::sample_app::serve(
        l,
        interval,
        std::future::pending(),
    ));
    addr
}

async fn tapped_proxy(app: SocketAddr, obs: &Observer) -> SocketAddr {
    common::proxy::start_proxy(
        common::proxy::cfg(app, &[]),
        common::proxy::tap_for(obs, "load-test"),
    )
    .await
}

fn args(target: SocketAddr, profile: Profile, clients: u64, interval: Duration) -> LoadArgs {
    LoadArgs {
        url: format!("ws://{target}"),
        profile,
        clients,
        ramp: Duration::from_millis(5),
        duration: Duration::from_millis(1500),
        interval,
        rooms: 3,
        payload_size: 80,
        json: true,
        allow_remote: false,
    }
}

/// Runs a profile through the proxy and compares with the observer once all closed.
async fn through_proxy(
    profile: Profile,
    clients: u64,
    interval: Duration,
    app_interval: Duration,
) -> (sockscope::cli::load::stats::Report, serde_json::Value) {
    let app = sample_app(app_interval).await;
    let obs = start_default().await;
    let proxy = tapped_proxy(app, &obs).await;
    let report = run(&args(proxy, profile, clients, interval), false)
        .await
        .unwrap();
    let ov = obs
        .wait_for("/api/overview", |v| {
            v["totals"]["closed"] == clients && v["totals"]["open"] == 0
        })
        .await;
    assert_eq!(ov["totals"]["opened"], clients);
    let drops = &ov["sources"][0]["drops"];
    assert_eq!(drops["message"], 0, "no drops at this load");
    (report, ov)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_counts_match_through_the_tapped_proxy() {
    let (r, ov) = through_proxy(
        Profile::Echo,
        8,
        Duration::from_millis(50),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!((r.connect_failures, r.missed), (0, 0), "{r:?}");
    assert!(r.sent > 8 * 20, "{r:?}");
    assert_eq!(ov["totals"]["msgs_in"], r.sent);
    assert_eq!(ov["totals"]["msgs_out"], r.received_total);
    assert!(r.latency_ms_p99 > 0.0 && r.latency_ms_p50 <= r.latency_ms_p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_counts_match_through_the_tapped_proxy() {
    let clients = 8;
    let (r, ov) = through_proxy(
        Profile::Broadcast,
        clients,
        Duration::from_millis(100),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!((r.connect_failures, r.missed), (0, 0), "{r:?}");
    let avg = r.interval_ms_avg.unwrap();
    assert!((avg - 100.0).abs() < 10.0, "avg interval {avg}");
    assert!(r.expected >= clients * 10);
    // The observer saw every tick a client read, plus at most one in flight per client at close.
    let out = ov["totals"]["msgs_out"].as_u64().unwrap();
    assert!(
        out >= r.received_total && out <= r.received_total + clients,
        "observer {out}, generator {}",
        r.received_total
    );
    assert_eq!(ov["totals"]["msgs_in"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_counts_match_through_the_tapped_proxy() {
    let (r, ov) = through_proxy(
        Profile::Chat,
        30,
        Duration::from_millis(20),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!((r.connect_failures, r.missed), (0, 0), "{r:?}");
    assert!(r.sent > 0 && r.received_total >= r.sent, "{r:?}");
    assert_eq!(ov["totals"]["msgs_in"], r.sent, "posts");
    // Fan-out plus one join confirmation per client.
    assert_eq!(ov["totals"]["msgs_out"], r.received_total + 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_runs_directly_against_the_sample_app() {
    let app = sample_app(Duration::from_millis(100)).await;
    for (profile, interval) in [
        (Profile::Broadcast, 100),
        (Profile::Echo, 50),
        (Profile::Chat, 20),
    ] {
        let r = run(
            &args(app, profile, 6, Duration::from_millis(interval)),
            false,
        )
        .await
        .unwrap();
        assert_eq!(
            (r.connect_failures, r.missed, r.disconnects),
            (0, 0, 0),
            "{profile:?}: {r:?}"
        );
        assert!(r.received > 0, "{profile:?}");
        assert!(!r.generator_saturated, "{profile:?}: {r:?}");
    }
    // A dead target: every client fails to connect, and the report says so.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run(
        &args(dead, Profile::Echo, 3, Duration::from_millis(50)),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.connect_failures, 3);
}
