//! TLS on the tap → observer link and the observer's port: certificates made at test time,
//! real sockets on loopback, the real binary where the operator reads its log.

mod common;

use clap::Parser;
use common::process::{run_to_end, sockscope, start_until};
use common::tls::pki;
use common::upstream;
use sockscope::server::config::{ObserverConfig, ServeArgs};
use sockscope::server::tls::TlsFiles;
use sockscope_tap::{ConnInfo, Tap, TapConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// An observer serving HTTPS/WSS with `files`; returns its address.
async fn tls_observer(files: TlsFiles) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ObserverConfig {
        tls: Some(files),
        ..ObserverConfig::default()
    };
    tokio::spawn(sockscope::server::serve(
        listener,
        cfg,
        std::future::pending(),
    ));
    addr
}

fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_tap_reaches_a_tls_observer_that_its_ca_signed() {
    let p = pki("a");
    let obs = tls_observer(p.files()).await;
    let mut cfg = TapConfig::new(format!("wss://127.0.0.1:{}/ingest", obs.port()), "secure");
    cfg.flush = Duration::from_millis(1);
    cfg.observer_ca = Some(p.ca.clone());
    let tap = Tap::start(cfg).unwrap();
    let _conn = tap.open(ConnInfo::new("192.0.2.7".parse().unwrap(), "/over-tls"));
    let http = https_client(&p.ca_pem);
    let url = format!("https://127.0.0.1:{}/api/connections", obs.port());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        if page["total"] == 1 {
            assert_eq!(page["items"][0]["path"], "/over-tls");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Plain HTTP to the TLS port is told what to use.
    let plain = reqwest::get(format!("http://127.0.0.1:{}/healthz", obs.port()))
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    assert!(plain.text().await.unwrap().contains("use https://"));
}

/// A proxy reporting to `observer` with extra flags; returns the first log line that
/// contains `needle` (the proxy keeps running until the returned process is dropped).
fn proxy_log(observer: &str, extra: &[&str], needle: &str, up: SocketAddr) -> String {
    let port = common::process::free_port();
    let mut c = sockscope(&["proxy", "--listen", &format!("127.0.0.1:{port}")]);
    c.args([
        "--upstream",
        &format!("http://{up}"),
        "--observer",
        observer,
    ])
    .args(extra);
    let (_p, line) = start_until(c, needle);
    line
}

// Multi-threaded: the in-process observer keeps serving while the test waits on the proxy's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_and_plain_ws_get_clear_errors() {
    let p = pki("right");
    let other = pki("wrong");
    let obs = tls_observer(p.files()).await;
    let up = upstream::start().await;
    let wss = format!("wss://127.0.0.1:{}/ingest", obs.port());
    let line = proxy_log(
        &wss,
        &["--observer-ca", other.ca.to_str().unwrap()],
        "cannot reach the observer",
        up,
    );
    assert!(line.contains("invalid peer certificate"), "{line}");
    assert!(line.contains("--observer-ca"), "{line}");
    let ws = format!("ws://127.0.0.1:{}/ingest", obs.port());
    let line = proxy_log(&ws, &[], "cannot reach the observer", up);
    assert!(line.contains("this port speaks TLS"), "{line}");
    // A CA for a plain observer URL is refused at start.
    let mut c = sockscope(&[
        "proxy",
        "--upstream",
        "http://127.0.0.1:9",
        "--observer",
        &ws,
    ]);
    c.args(["--observer-ca", p.ca.to_str().unwrap()]);
    let (ok, out) = run_to_end(c);
    assert!(!ok && out.contains("must start with wss://"), "{out}");
}

#[test]
fn bad_certificate_files_stop_serve_with_their_name() {
    let p = pki("files");
    let mut c = sockscope(&["serve", "--listen", "127.0.0.1:0"]);
    c.args([
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        p.key.to_str().unwrap(),
    ]);
    let (ok, out) = run_to_end(c);
    assert!(
        !ok && out.contains("--tls-cert /nonexistent/cert.pem: cannot read it"),
        "{out}"
    );
    // The key where the certificate should be.
    let mut c = sockscope(&["serve", "--listen", "127.0.0.1:0"]);
    c.args([
        "--tls-cert",
        p.key.to_str().unwrap(),
        "--tls-key",
        p.key.to_str().unwrap(),
    ]);
    let (ok, out) = run_to_end(c);
    assert!(!ok && out.contains("no certificate in it"), "{out}");
    let mut c = sockscope(&["serve", "--listen", "127.0.0.1:0"]);
    c.args(["--tls-cert", p.cert.to_str().unwrap()]);
    let (ok, out) = run_to_end(c);
    assert!(!ok && out.contains("--tls-key"), "{out}");
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let first = pki("first");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let obs = tls_observer(TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: None,
    })
    .await;
    let url = format!("https://127.0.0.1:{}/healthz", obs.port());
    let old_client = https_client(&first.ca_pem);
    assert!(old_client
        .get(&url)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    // Renewed by another CA: once reloaded, only clients trusting the new CA get in.
    let second = pki("second");
    std::fs::copy(&second.key, &key).unwrap();
    std::fs::copy(&second.cert, &cert).unwrap();
    let new_client = https_client(&second.ca_pem);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while new_client.get(&url).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh_old = https_client(&first.ca_pem);
    assert!(fresh_old.get(&url).send().await.is_err());
}

/// An observer that trusts a CA for tap certificates: a tap presenting one gets in without a
/// token; a tap without one (or with one from another CA) does not.
#[tokio::test]
async fn a_tap_certificate_admits_a_tap_without_a_token() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let p = pki("mutual");
    let other = pki("stranger");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let obs = listener.local_addr().unwrap();
    let args = Cli::parse_from([
        "serve",
        "--listen",
        &obs.to_string(),
        "--tls-cert",
        p.cert.to_str().unwrap(),
        "--tls-key",
        p.key.to_str().unwrap(),
        "--tls-client-ca",
        p.ca.to_str().unwrap(),
    ]);
    let cfg = args.serve.into_config().unwrap();
    tokio::spawn(sockscope::server::serve(
        listener,
        cfg,
        std::future::pending(),
    ));
    let url = format!("wss://127.0.0.1:{}/ingest", obs.port());
    let connect = |tls: std::sync::Arc<rustls::ClientConfig>| {
        let url = url.clone();
        async move {
            tokio_tungstenite::connect_async_tls_with_config(
                url,
                None,
                false,
                Some(tokio_tungstenite::Connector::Rustls(tls)),
            )
            .await
        }
    };
    // No certificate, no token: refused with the way in named.
    match connect(p.client_config()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 401);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("--tls-client-ca"), "{body}");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    // A certificate from another CA fails the handshake.
    let (cert, key) = other.client("intruder");
    let stranger = sockscope_tap::tls::client_config(sockscope_tap::tls::ClientTls {
        ca: Some(&p.ca),
        identity: Some((&cert, &key)),
        ..Default::default()
    })
    .unwrap();
    assert!(connect(stranger).await.is_err());
    // The tap with a certificate from the trusted CA reports.
    let (cert, key) = p.client("gateway-7");
    let mut cfg = TapConfig::new(url.clone(), "certified");
    cfg.flush = Duration::from_millis(1);
    cfg.observer_ca = Some(p.ca.clone());
    cfg.client_cert = Some((cert, key));
    let tap = Tap::start(cfg).unwrap();
    let _conn = tap.open(ConnInfo::new("192.0.2.8".parse().unwrap(), "/mutual"));
    let http = https_client(&p.ca_pem);
    let api = format!("https://127.0.0.1:{}/api/connections", obs.port());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page: serde_json::Value = http.get(&api).send().await.unwrap().json().await.unwrap();
        if page["total"] == 1 {
            assert_eq!(page["items"][0]["path"], "/mutual");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
