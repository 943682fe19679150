//! `sockscope proxy` against clients that would knock it over: slow headers, idle keep-alive,
//! more connections than it may hold, a low open-file limit. Real sockets on loopback.

mod common;

use common::process::{sockscope, start_until};
use common::proxy::{cfg, start_proxy};
use common::upstream;
use sockscope::proxy::ProxyConfig;
use sockscope_tap::Tap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes (or `limit` passes); returns what came and how long it took.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&got).into(), Some(start.elapsed()))
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
        }
    }
}

async fn proxy_with(up: SocketAddr, f: impl FnOnce(&mut ProxyConfig)) -> SocketAddr {
    let mut c = cfg(up, &[]);
    f(&mut c);
    start_proxy(c, Tap::disabled()).await
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let up = upstream::start().await;
    let proxy = proxy_with(up, |c| c.header_timeout = Duration::from_millis(400)).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
    let after = closed.expect("the proxy closes a slow-header client");
    assert!(
        after >= Duration::from_millis(300),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let up = upstream::start().await;
    let proxy = proxy_with(up, |c| c.header_timeout = Duration::from_millis(400)).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, then the connection idles and is closed.
    let (got, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(closed.is_some(), "an idle keep-alive connection stays open");
}

#[tokio::test]
async fn over_the_cap_a_client_gets_503_and_the_rest_keep_working() {
    let up = upstream::start().await;
    let proxy = proxy_with(up, |c| c.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(proxy).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = TcpStream::connect(proxy).await.unwrap();
    let (got, closed) = read_to_close(&mut over, Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("--max-connections"), "{got}");
    assert!(closed.is_some());
    // One leaves: the next client is served.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

#[tokio::test]
async fn a_low_open_file_limit_is_raised_at_start() {
    let up = upstream::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Started with a soft limit of 128 open files (the hard limit stays).
    let bin = sockscope(&[]).get_program().to_owned();
    let mut c = std::process::Command::new("prlimit");
    c.arg("--nofile=128:")
        .arg(bin)
        .args(["proxy", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &format!("http://{up}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (_proxy, _) = start_until(c, "sockscope proxy on http://");
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(TcpStream::connect(proxy).await.unwrap());
    }
    // Past 128 sockets the proxy still accepts and answers.
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_to_close(&mut s, Duration::from_secs(10)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
}
