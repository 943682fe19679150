//! The record, on the real binary: what an observer accepted is there after a restart, after
//! `kill -9` (all but the last sync interval), after damage to its files, and within its
//! retention limits.

mod common;

use common::process::{free_port, sockscope, start_until};
use common::record::{get, hello, observer, post, stop};
use serde_json::json;
use std::time::{Duration, Instant};

/// Text that does not compress (xorshift over printable ASCII), `n` characters per call.
fn noise(mut seed: u64) -> impl FnMut(usize) -> String {
    move |n| {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'!' + (seed % 90) as u8)
            })
            .collect()
    }
}

#[tokio::test]
async fn after_a_restart_closed_connections_trace_and_series_are_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let obs = observer(dir.path(), port, &["--record-sync", "100ms"]).await;
    post(
        port,
        vec![
            hello("edge"),
            json!({"type": "conn_open", "conn": 1, "ip": "192.0.2.1", "path": "/a"}),
            json!({"type": "conn_open", "conn": 2, "ip": "192.0.2.2", "path": "/b"}),
            json!({"type": "conn_open", "conn": 3, "ip": "192.0.2.3", "path": "/still-open"}),
            json!({"type": "message", "conn": 1, "dir": "c2s", "opcode": "text", "size": 14, "text": "before restart"}),
            json!({"type": "conn_close", "conn": 1, "code": 1000, "by": "client"}),
            json!({"type": "conn_close", "conn": 2, "code": 1006, "reason": "gone", "by": "abort"}),
        ],
    )
    .await;
    let before = get(port, "/api/connections?state=all").await;
    assert_eq!(before["total"], 3);
    stop(obs);

    let obs = observer(dir.path(), port, &[]).await;
    let closed = get(port, "/api/connections?state=closed").await;
    assert_eq!(closed["total"], 2, "{closed}");
    let mut codes: Vec<u64> = closed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["close_code"].as_u64().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, [1000, 1006]);
    // The one that was open: state unknown since the restart, until its tap speaks of it.
    let open = get(port, "/api/connections?state=open").await;
    assert_eq!(open["items"][0]["path"], "/still-open");
    assert!(
        open["items"][0]["unknown_since_ms"].as_u64().is_some(),
        "{open}"
    );
    let trace = get(port, "/api/trace").await;
    let text = trace.to_string();
    assert!(text.contains("before restart"), "{text}");
    // The second with the message is back in the series (it closes at the next tick).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let series = get(port, "/api/series").await;
        if series.to_string().contains("\"msgs_in\":1") {
            break;
        }
        assert!(Instant::now() < deadline, "{series}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let o = get(port, "/api/overview").await;
    let rec = &o["observer"]["recording"];
    assert_eq!(rec["restored_events"], 7, "{rec}");
    assert_eq!(rec["damaged"], 0, "{rec}");
    // The tap speaks of connection 3: known again.
    post(
        port,
        vec![
            hello("edge"),
            json!({"type": "message", "conn": 3, "dir": "s2c", "opcode": "text", "size": 2, "text": "hi"}),
        ],
    )
    .await;
    let open = get(port, "/api/connections?state=open").await;
    assert!(open["items"][0].get("unknown_since_ms").is_none(), "{open}");
    let metrics = common::record::metrics(port).await;
    assert!(metrics.contains("sockscope_record_bytes "), "{metrics}");
    stop(obs);
    // A second observer on the same directory is refused with what to do.
    let _first = observer(dir.path(), port, &[]).await;
    let mut c = sockscope(&["serve", "--site-root", "/nonexistent"]);
    c.args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .env_remove("SOCKSCOPE_NO_RECORD");
    let (ok, out) = common::process::run_to_end(c);
    assert!(
        !ok && out.contains("is in use by another sockscope observer"),
        "{out}"
    );
}

#[tokio::test]
async fn kill_9_loses_at_most_the_last_sync_interval() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sync = Duration::from_millis(200);
    let mut obs = observer(dir.path(), port, &["--record-sync", "200ms"]).await;
    // Acknowledged batches (POST answers once applied), each opening one connection.
    let mut acked: Vec<Instant> = Vec::new();
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < Duration::from_millis(1500) {
        let events = std::iter::once(hello("load"))
            .chain((0..50).map(|k| {
                let id = i * 50 + k + 1;
                json!({"type": "conn_open", "conn": id, "ip": "198.51.100.1", "path": format!("/c{id}")})
            }))
            .collect();
        post(port, events).await;
        acked.push(Instant::now());
        i += 1;
    }
    let killed = Instant::now();
    obs.0.kill().unwrap();
    obs.0.wait().unwrap();
    let obs = observer(dir.path(), port, &[]).await;
    let safe = acked.iter().filter(|t| **t + 2 * sync < killed).count() as u64;
    let total = get(port, "/api/connections?state=all&limit=1").await["total"]
        .as_u64()
        .unwrap();
    assert!(
        total >= safe * 50,
        "{total} connections restored; {} were acknowledged more than two sync intervals before kill -9",
        safe * 50
    );
    assert!(safe > 0);
    drop(obs);
}

#[tokio::test]
async fn torn_and_corrupt_segments_are_survived_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let obs = observer(dir.path(), port, &["--record-sync", "100ms"]).await;
    post(
        port,
        vec![
            hello("edge"),
            json!({"type": "conn_open", "conn": 1, "ip": "192.0.2.1", "path": "/kept"}),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    post(
        port,
        vec![
            hello("edge"),
            json!({"type": "conn_close", "conn": 1, "code": 1000, "by": "client"}),
        ],
    )
    .await;
    stop(obs);
    let segs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    // A write cut off mid-block, and a file that is not a segment at all.
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&segs[0], &bytes).unwrap();
    std::fs::write(
        dir.path().join("00000000000000000001.seg"),
        b"not a segment",
    )
    .unwrap();

    let obs = observer(dir.path(), port, &[]).await;
    let rec = get(port, "/api/overview").await["observer"]["recording"].clone();
    assert_eq!(rec["damaged"], 2, "{rec}");
    let closed = get(port, "/api/connections?state=closed").await;
    assert_eq!(closed["items"][0]["path"], "/kept", "{closed}");
    // The torn tail was cut off: the file ends where the good data ends.
    assert!(std::fs::metadata(&segs[0]).unwrap().len() < bytes.len() as u64);
    drop(obs);
}

#[tokio::test]
async fn retention_deletes_the_oldest_data_past_the_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let obs = observer(
        dir.path(),
        port,
        &["--record-sync", "50ms", "--record-max-bytes", "1048576"],
    )
    .await;
    // Payloads that do not compress: about 4 MB recorded in all.
    let mut noise = noise(0x2545_f491_4f6c_dd1du64);
    post(
        port,
        vec![
            hello("bulk"),
            json!({"type": "conn_open", "conn": 1, "ip": "192.0.2.1", "path": "/bulk"}),
        ],
    )
    .await;
    let mut oldest = Vec::new();
    for round in 0..40 {
        let events = std::iter::once(hello("bulk"))
            .chain((0..20).map(|_| {
                let text = noise(5000);
                json!({"type": "message", "conn": 1, "dir": "c2s", "opcode": "text", "size": text.len(), "text": text})
            }))
            .collect();
        post(port, events).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        if round % 10 == 9 {
            let rec = get(port, "/api/overview").await["observer"]["recording"].clone();
            oldest.push(rec["oldest_ms"].as_u64().unwrap());
            let bytes = rec["bytes"].as_u64().unwrap();
            // At most the limit plus the segment being written (an eighth of it).
            assert!(bytes <= (1 << 20) + (1 << 17) + (64 << 10), "{rec}");
        }
    }
    assert!(
        oldest.last() > oldest.first(),
        "the oldest data moved on: {oldest:?}"
    );
    drop(obs);
}

/// A disk that refuses writes (here a file-size limit, as a full disk would): live ingest goes
/// on, and what the record could not keep is counted.
#[tokio::test]
async fn a_disk_that_refuses_writes_keeps_live_ingest_and_counts_drops() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bin = sockscope(&[]).get_program().to_owned();
    let mut c = std::process::Command::new("prlimit");
    c.arg("--fsize=200000")
        .arg(bin)
        .args(["serve", "--site-root", "/nonexistent"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--record-sync",
            "50ms",
        ])
        .env("SOCKSCOPE_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (_obs, _) = start_until(c, "sockscope observer on");
    let mut noise = noise(0x9e37_79b9_7f4a_7c15u64);
    post(
        port,
        vec![
            hello("full"),
            json!({"type": "conn_open", "conn": 1, "ip": "192.0.2.1", "path": "/full"}),
        ],
    )
    .await;
    for _ in 0..20 {
        let events = std::iter::once(hello("full"))
            .chain((0..10).map(|_| {
                let text = noise(4000);
                json!({"type": "message", "conn": 1, "dir": "c2s", "opcode": "text", "size": text.len(), "text": text})
            }))
            .collect();
        post(port, events).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let o = get(port, "/api/overview").await;
    assert_eq!(
        o["totals"]["msgs_in"], 200,
        "every message was applied live: {o}"
    );
    let rec = &o["observer"]["recording"];
    assert!(rec["dropped"].as_u64().unwrap() > 0, "{rec}");
    assert!(rec["write_errors"].as_u64().unwrap() > 0, "{rec}");
}
