//! Proxy benchmark: echo round trips through nothing, `sockscope proxy` with the tap off and
//! on, and a tuned nginx, side by side in one run, plain and with TLS on the client side (both
//! proxies terminating it with the same certificate); then RSS per idle proxied connection.
//! Not a test: it reports.
//!
//! `cargo bench --features ssr --bench proxy -- [--conns N] [--seconds S] [--idle N]`

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

mod support;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, Proc};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the ")".
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// CPU ticks of a process and its children (nginx master + workers).
fn tree_ticks(pid: u32) -> u64 {
    let mut total = cpu_ticks(pid);
    if let Ok(kids) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        total += kids
            .split_whitespace()
            .filter_map(|k| k.parse().ok())
            .map(tree_ticks)
            .sum::<u64>();
    }
    total
}

fn tree_rss_kib(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let kids: u64 = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|k| {
            k.split_whitespace()
                .filter_map(|k| k.parse().ok())
                .map(tree_rss_kib)
                .sum()
        })
        .unwrap_or(0);
    own + kids
}

async fn wait_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("port {port} did not open");
}

/// The upstream: a minimal tokio-tungstenite echo server with small buffers.
async fn echo_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let cfg = WebSocketConfig::default().read_buffer_size(4096);
                let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(s, Some(cfg)).await
                else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn sockscope(args: &[String]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_sockscope"))
            .args(args)
            .env("SOCKSCOPE_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sockscope"),
    )
}

/// nginx in front of `upstream` on `port`, and with TLS on `tls_port` when given (the
/// certificate `sockscope dev-cert` wrote into `dir`).
fn nginx(
    port: u16,
    upstream: SocketAddr,
    dir: &std::path::Path,
    tls_port: Option<u16>,
) -> Option<Proc> {
    let location = format!(
        "  location / {{\n   proxy_pass http://{upstream};\n\
           proxy_http_version 1.1;\n   proxy_set_header Upgrade $http_upgrade;\n   proxy_set_header Connection \"upgrade\";\n\
           proxy_buffer_size 64k;\n   proxy_buffers 4 64k;\n   proxy_read_timeout 3600s;\n   tcp_nodelay on;\n  }}\n"
    );
    let tls_server = tls_port.map_or(String::new(), |p| {
        format!(
            " server {{\n  listen 127.0.0.1:{p} ssl;\n  ssl_certificate {d}/tls/cert.pem;\n  ssl_certificate_key {d}/tls/key.pem;\n{location} }}\n",
            d = dir.display()
        )
    });
    let conf = format!(
        "worker_processes 2;\nerror_log stderr error;\npid {dir}/nginx.pid;\nworker_rlimit_nofile 20000;\n\
         events {{ worker_connections 10000; }}\n\
         http {{\n access_log off;\n client_body_temp_path {dir};\n proxy_temp_path {dir};\n\
          server {{\n  listen 127.0.0.1:{port};\n{location} }}\n{tls_server}}}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("nginx")
        .args([
            "-c",
            path.to_str().unwrap(),
            "-p",
            dir.to_str().unwrap(),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    Some(Proc(child))
}

/// `conns` clients each send a `size`-byte message and wait for its echo, for `secs`; over
/// wss:// when `tls` is given. Returns round trips per second.
async fn load(
    target: SocketAddr,
    conns: usize,
    size: usize,
    secs: f64,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let payload: bytes::Bytes = vec![b'x'; size].into();
    for _ in 0..conns {
        let (stop, count, payload) = (stop.clone(), count.clone(), payload.clone());
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let cfg = WebSocketConfig::default().read_buffer_size(4096);
            let scheme = if tls.is_some() { "wss" } else { "ws" };
            let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
                format!("{scheme}://{target}/echo"),
                Some(cfg),
                true,
                tls.map(tokio_tungstenite::Connector::Rustls),
            )
            .await
            .expect("bench client connects");
            while !stop.load(Ordering::Relaxed) {
                ws.send(Message::Binary(payload.clone())).await.unwrap();
                match ws.next().await {
                    Some(Ok(_)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => panic!("echo lost"),
                }
            }
            let _ = ws.close(None).await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // connect and warm up
    let c0 = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let n = count.load(Ordering::Relaxed) - c0;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut conns = 100;
    let mut secs = 3.0;
    let mut idle = 3000;
    let mut read_buffer = sockscope::proxy::DEFAULT_READ_BUFFER;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut v = || {
            it.next()
                .and_then(|x| x.parse::<f64>().ok())
                .expect("a number")
        };
        match a.as_str() {
            "--conns" => conns = v() as usize,
            "--seconds" => secs = v(),
            "--idle" => idle = v() as usize,
            "--read-buffer" => read_buffer = v() as usize,
            "--bench" => {}
            o => panic!("unknown argument {o}; use --conns N --seconds S --idle N"),
        }
    }
    let echo = echo_server().await;
    let dir = std::env::temp_dir().join(format!("sockscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (obs_port, off_port, on_port, od_port, ngx_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let (tls_port, ngx_tls_port) = (free_port(), free_port());
    let made = Command::new(env!("CARGO_BIN_EXE_sockscope"))
        .args(["dev-cert", "--dir"])
        .arg(dir.join("tls"))
        .output()
        .expect("sockscope dev-cert");
    assert!(made.status.success(), "{made:?}");
    let client_tls = sockscope_tap::tls::client_config(sockscope_tap::tls::ClientTls {
        ca: Some(&dir.join("tls/ca.pem")),
        ca_flag: "bench CA",
        ..Default::default()
    })
    .unwrap();
    let observer = sockscope(&[
        "serve".into(),
        "--listen".into(),
        format!("127.0.0.1:{obs_port}"),
        "--site-root".into(),
        "/nonexistent".into(),
        // The proxy is measured; the observer's record would compete for the same cores.
        "--no-record".into(),
    ]);
    let proxy = |port: u16, observer: Option<u16>, extra: &[&str]| {
        let mut a = vec![
            "proxy".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--upstream".into(),
            format!("http://{echo}"),
            "--name".into(),
            format!("bench-{port}"),
        ];
        if let Some(o) = observer {
            a.extend(["--observer".into(), format!("ws://127.0.0.1:{o}/ingest")]);
        }
        a.extend(extra.iter().map(|x| x.to_string()));
        sockscope(&a)
    };
    let off = proxy(off_port, None, &[]);
    let on = proxy(on_port, Some(obs_port), &[]);
    let od = proxy(od_port, Some(obs_port), &["--capture", "on-demand"]);
    let (cert, key) = (dir.join("tls/cert.pem"), dir.join("tls/key.pem"));
    let tls_flags = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let tls = proxy(tls_port, None, &tls_flags);
    let ngx = nginx(ngx_port, echo, &dir, Some(ngx_tls_port));
    for p in [obs_port, off_port, on_port, od_port, tls_port] {
        wait_port(p).await;
    }
    if ngx.is_some() {
        wait_port(ngx_port).await;
        wait_port(ngx_tls_port).await;
    }
    let addr = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().unwrap() };
    // (name, address, process, over TLS)
    let mut targets: Vec<(&str, SocketAddr, Option<u32>, bool)> = vec![
        ("direct", echo, None, false),
        (
            "sockscope, tap off",
            addr(off_port),
            Some(off.0.id()),
            false,
        ),
        ("sockscope, tap on", addr(on_port), Some(on.0.id()), false),
        (
            "sockscope, tap on-demand (nobody watching)",
            addr(od_port),
            Some(od.0.id()),
            false,
        ),
        (
            "sockscope, tap off, TLS",
            addr(tls_port),
            Some(tls.0.id()),
            true,
        ),
    ];
    // Indices of the tapped targets, whose observer CPU is measured, and of the TLS one.
    let (off_i, on_i, od_i, tls_i) = (1, 2, 3, 4);
    // nginx, plain and TLS: what each row is compared with.
    let mut ngx_i = None;
    if let Some(n) = &ngx {
        ngx_i = Some((targets.len(), targets.len() + 1));
        targets.push(("nginx 1.22 (tuned)", addr(ngx_port), Some(n.0.id()), false));
        targets.push((
            "nginx 1.22 (tuned), TLS",
            addr(ngx_tls_port),
            Some(n.0.id()),
            true,
        ));
    }
    let tick = 100.0; // USER_HZ
    let obs_pid = observer.0.id();
    println!("sockscope proxy benchmark: {conns} connections, echo round trips, {secs} s per run, median of 3 rounds, read buffer {read_buffer} B");
    println!("(load generator, echo server, proxies and observer share this machine's cores)");
    println!();
    println!("| size | target | round trips/s | vs nginx | proxy CPU µs per round trip | observer CPU µs per round trip |");
    println!("|---|---|---|---|---|---|");
    for size in [20usize, 1024, 16 * 1024] {
        let mut results: Vec<(f64, f64)> = Vec::new();
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        let mut obs_cpu: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        for _round in 0..3 {
            for (i, (_, target, pid, over_tls)) in targets.iter().enumerate() {
                let c0 = pid.map(tree_ticks).unwrap_or(0);
                let o0 = cpu_ticks(obs_pid);
                let client = over_tls.then(|| client_tls.clone());
                let r = load(*target, conns, size, secs, client).await;
                let c1 = pid.map(tree_ticks).unwrap_or(0);
                let o1 = cpu_ticks(obs_pid);
                rates[i].push(r);
                cpus[i].push((c1 - c0) as f64 / tick * 1e6 / (r * (secs + 0.3)));
                obs_cpu[i].push((o1 - o0) as f64 / tick * 1e6 / (r * (secs + 0.3)));
            }
        }
        for i in 0..targets.len() {
            results.push((median(rates[i].clone()), median(cpus[i].clone())));
        }
        for (i, (name, _, pid, over_tls)) in targets.iter().enumerate() {
            let (r, cpu) = results[i];
            let vs = ngx_i
                .map(|(plain, with_tls)| results[if *over_tls { with_tls } else { plain }].0)
                .map(|n| format!("{:.2}×", r / n))
                .unwrap_or_else(|| "–".into());
            let cpu = if pid.is_some() {
                format!("{cpu:.1}")
            } else {
                "–".into()
            };
            let obs = if i == on_i || i == od_i {
                format!("{:.1}", median(obs_cpu[i].clone()))
            } else {
                "–".into()
            };
            println!("| {size} B | {name} | {r:.0} | {vs} | {cpu} | {obs} |");
        }
        // A round trip is two messages through the proxy: two tap events.
        for (name, i) in [("tap on", on_i), ("on-demand", od_i)] {
            println!(
                "| {size} B | **{name} / tap off** | {:.3}× | | {:.2}× proxy CPU, {:.0} ns per event | |",
                results[i].0 / results[off_i].0,
                results[i].1 / results[off_i].1,
                (results[i].1 - results[off_i].1) * 1000.0 / 2.0
            );
        }
        // What TLS on the client side costs each proxy.
        let mut tls_rows = vec![("sockscope", off_i, tls_i)];
        if let Some((plain, with_tls)) = ngx_i {
            tls_rows.push(("nginx", plain, with_tls));
        }
        for (name, plain, with_tls) in tls_rows {
            println!(
                "| {size} B | **{name} TLS / plain** | {:.3}× | | {:.2}× proxy CPU, +{:.1} µs per round trip | |",
                results[with_tls].0 / results[plain].0,
                results[with_tls].1 / results[plain].1,
                results[with_tls].1 - results[plain].1
            );
        }
    }

    // Idle connections: RSS per proxied connection.
    println!();
    println!("| idle connections held open | target | RSS before | RSS after | per connection |");
    println!("|---|---|---|---|---|");
    // Fresh processes, so memory the load runs left in the allocators does not hide the cost.
    drop((off, on, od, tls, ngx));
    let (fresh_port, fresh_off_port, fresh_ngx_port) = (free_port(), free_port(), free_port());
    let fresh = proxy(fresh_port, Some(obs_port), &[]);
    let fresh_off = proxy(fresh_off_port, None, &[]);
    let fresh_ngx = nginx(fresh_ngx_port, echo, &dir, None);
    wait_port(fresh_port).await;
    wait_port(fresh_off_port).await;
    let mut idle_targets = vec![
        ("sockscope, tap off", fresh_off_port, fresh_off.0.id()),
        ("sockscope, tap on", fresh_port, fresh.0.id()),
    ];
    if let Some(n) = &fresh_ngx {
        wait_port(fresh_ngx_port).await;
        idle_targets.push(("nginx 1.22 (tuned)", fresh_ngx_port, n.0.id()));
    }
    for (name, port, pid) in idle_targets {
        let before = tree_rss_kib(pid);
        let mut held = Vec::with_capacity(idle);
        for _ in 0..idle {
            let cfg = WebSocketConfig::default().read_buffer_size(1024);
            match tokio_tungstenite::connect_async_with_config(
                format!("ws://127.0.0.1:{port}/idle"),
                Some(cfg),
                true,
            )
            .await
            {
                Ok((ws, _)) => held.push(ws),
                Err(e) => {
                    println!("(stopped at {} connections: {e})", held.len());
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = tree_rss_kib(pid);
        println!(
            "| {} | {name} | {before} KiB | {after} KiB | {:.1} KiB |",
            held.len(),
            (after.saturating_sub(before)) as f64 / held.len().max(1) as f64
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!();
    println!("Goals: tap on ≥ 1.0× nginx with proxy CPU ≤ nginx's; on-demand proxy CPU ≤ 1.05× tap off; idle ≤ 4.4 KiB per connection (HAProxy's figure).");
    let _ = std::fs::remove_dir_all(&dir);
}
