//! Shared by the benchmarks: child processes that are stopped on drop, RSS, free ports.
#![allow(dead_code)]

#[path = "../../tests/common/process.rs"]
pub mod process;

use std::process::{Child, Command};
use std::time::Duration;

/// A child process, stopped (TERM, then KILL) when dropped. TERM lets nginx's master take its
/// workers down with it.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of a process in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Not every benchmark starts child processes on ports of its own.
#[allow(unused_imports)]
pub use process::free_port;

/// A distinct IPv4 address for synthetic connection `i`.
pub fn synthetic_ip(i: u64) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}
