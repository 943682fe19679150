//! The cost of `ConnTap::message` on the caller's task, with and without masking
//! (`cargo bench -p sockscope-tap`). The observer is unreachable, so the sender task drains the
//! queue and counts drops: everything up to the queue is measured, nothing after it.

use sockscope_tap::wire::{Direction, Opcode};
use sockscope_tap::{ConnInfo, PayloadMode, RedactConfig, Tap, TapConfig};
use std::time::Instant;

fn payload(with_secret: bool) -> Vec<u8> {
    let mut s = String::from(r#"{"type":1,"target":"SendMessage","arguments":["#);
    while s.len() < 1000 {
        s.push_str(r#"{"user":"alice","text":"hello there, how are you doing"},"#);
    }
    s.push_str(if with_secret {
        r#"{"user":"bob","password":"hunter2"}]}"#
    } else {
        r#"{"user":"bob"}]}"#
    });
    s.into_bytes()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let quiet = payload(false);
    let secret = payload(true);
    let t4k = PayloadMode::Truncated(4096);
    let cases: [(&str, PayloadMode, bool, &[u8]); 5] = [
        ("metadata only", PayloadMode::Metadata, true, &quiet),
        ("truncated 4 KiB, masking off, 1 KiB", t4k, false, &quiet),
        (
            "truncated 4 KiB, default keys, 1 KiB, no key",
            t4k,
            true,
            &quiet,
        ),
        (
            "truncated 4 KiB, default keys, 1 KiB, a password",
            t4k,
            true,
            &secret,
        ),
        (
            "full, default keys, 1 KiB, a password",
            PayloadMode::Full,
            true,
            &secret,
        ),
    ];
    println!("payloads: {} B, {} B", quiet.len(), secret.len());
    for (label, mode, mask, p) in cases {
        let mut c = TapConfig::new(format!("ws://{dead}/ingest"), "bench");
        c.payload = mode;
        if !mask {
            c.redact = RedactConfig::none();
        }
        let tap = Tap::start(c).unwrap();
        let conn = tap.open(ConnInfo::new("192.0.2.1".parse().unwrap(), "/"));
        let n = 200_000u32;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for i in 0..n {
                conn.message(Direction::ClientToServer, Opcode::Text, p);
                if i % 1024 == 0 {
                    // Let the sender drain, as real traffic would between messages.
                    tokio::task::yield_now().await;
                }
            }
            best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
        }
        println!("{label:<52} {best:>7.0} ns/message (best of 3)");
    }
}
