//! The real `sockscope` binary as a child process: run to the end, or until a line appears.
//! Shared by the integration tests and the benchmarks (`benches/support`).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `sockscope <args…>` with its output piped, no credentials inherited from the shell, and no
/// record (`SOCKSCOPE_NO_RECORD`: observers started side by side would share one data
/// directory; tests of the record give theirs and lift this).
pub fn sockscope(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sockscope"));
    c.args(args)
        .env("SOCKSCOPE_NO_RECORD", "1")
        .env_remove("SOCKSCOPE_INSPECTOR_TOKENS")
        .env_remove("SOCKSCOPE_VIEWER_TOKENS")
        .env_remove("SOCKSCOPE_INGEST_TOKENS")
        .env_remove("SOCKSCOPE_CONFIG")
        .env_remove("LEPTOS_SITE_ROOT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// `sockscope serve` on `127.0.0.1:port` with no dashboard files and quiet logs (`level`),
/// output discarded: the observer tests and benchmarks run against.
pub fn observer(port: u16, level: &str) -> Command {
    let mut c = sockscope(&["serve", "--site-root", "/nonexistent"]);
    c.args(["--listen", &format!("127.0.0.1:{port}")])
        .env("SOCKSCOPE_LOG", level)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Everything the process wrote, stdout then stderr.
pub fn output(child: &mut Child) -> String {
    let mut out = String::new();
    for r in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut r = r;
        r.read_to_string(&mut out).unwrap();
    }
    out
}

/// Runs a command that should exit by itself; returns (success, stdout + stderr).
#[track_caller]
pub fn run_to_end(mut c: Command) -> (bool, String) {
    let mut child = c.spawn().expect("start sockscope");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.success(), output(&mut child));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sockscope did not exit: it started when it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process that is killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `c` and waits (up to 20 s) for a stdout line containing `needle`; returns the process
/// and that line. Panics with everything it printed if it exits first.
#[track_caller]
pub fn start_until(c: Command, needle: &str) -> (Running, String) {
    let (p, line, _) = start_watching(c, needle);
    (p, line)
}

/// [`start_until`], and the lines printed after that one, for as long as the receiver lives.
#[track_caller]
pub fn start_watching(
    mut c: Command,
    needle: &str,
) -> (Running, String, std::sync::mpsc::Receiver<String>) {
    let mut child = c.spawn().expect("start sockscope");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains(needle) => return (Running(child), line, rx),
            Ok(line) => seen.push_str(&(line + "\n")),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    panic!(
        "no line with {needle:?}; the process printed:\n{seen}{}",
        output(&mut child)
    );
}

/// A free port for a child process to listen on, chosen below the kernel's ephemeral range
/// (`ip_local_port_range`), so no `bind(":0")` or outgoing connection in this or any other
/// process can be handed the same port between our check and the child's bind, or while the
/// child is restarted on it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    if low > 12_000 {
        let span = low - 10_000;
        let seed = std::process::id().wrapping_mul(2_654_435_761)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
        for _ in 0..200 {
            let n = NEXT.fetch_add(7919, Ordering::Relaxed);
            let port = (10_000 + seed.wrapping_add(n) % span) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}
