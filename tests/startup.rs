//! The real `sockscope serve` process: it will not listen beyond loopback without
//! credentials, and no token or password ever reaches its logs or its `--help`.

mod common;

use common::process::{output, run_to_end, sockscope};
use std::process::{Command, Stdio};
use std::time::Duration;

const INSPECTOR: &str = "inspector-secret-7f3a9c1e55";
const VIEWER: &str = "viewer-secret-2b8d4e6f11";
const TAP: &str = "tap-secret-9c0e1a2b3d4f";
const WRONG: &str = "guess-secret-000000000000";

fn serve(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = sockscope(&["serve", "--site-root", "/nonexistent"]);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn a_non_loopback_bind_without_credentials_refuses_to_start() {
    let (ok, out) = run_to_end(serve(&["--listen", "0.0.0.0:0"], &[]));
    assert!(!ok, "{out}");
    assert!(out.contains("refusing to listen on 0.0.0.0:0"), "{out}");
    assert!(out.contains("SOCKSCOPE_INSPECTOR_TOKENS"), "{out}");
    assert!(out.contains("SOCKSCOPE_INGEST_TOKENS"), "{out}");
    // A dashboard credential alone is not enough: taps would be anonymous.
    let (ok, out) = run_to_end(serve(
        &["--listen", "0.0.0.0:0"],
        &[("SOCKSCOPE_INSPECTOR_TOKENS", INSPECTOR)],
    ));
    assert!(!ok, "{out}");
    assert!(
        out.contains("a tap token") && !out.contains("dashboard credential"),
        "{out}"
    );
    assert!(!out.contains(INSPECTOR), "{out}");
    // A weak token is refused by name, without echoing it.
    let (ok, out) = run_to_end(serve(&["--viewer-token", "abc123"], &[]));
    assert!(
        !ok && out.contains("--viewer-token") && !out.contains("abc123"),
        "{out}"
    );
}

#[test]
fn bad_limits_and_mask_settings_refuse_to_start_by_flag() {
    let (ok, out) = run_to_end(serve(&["--apigw-mask-regex", "[a-"], &[]));
    assert!(!ok && out.contains("--apigw-mask-regex"), "{out}");
    let (ok, out) = run_to_end(serve(&[], &[("SOCKSCOPE_MAX_SOURCES", "0")]));
    assert!(
        !ok && out.contains("invalid value '0' for '--max-sources"),
        "{out}"
    );
}

#[test]
fn help_never_shows_secret_values() {
    let mut c = serve(
        &["--help"],
        &[
            ("SOCKSCOPE_INSPECTOR_TOKENS", INSPECTOR),
            ("SOCKSCOPE_INGEST_TOKENS", TAP),
        ],
    );
    c.env(
        "SOCKSCOPE_VIEWER_PASSWORD_HASH",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
    );
    let (ok, out) = run_to_end(c);
    assert!(ok, "{out}");
    assert!(
        out.contains("--inspector-token") && out.contains("--allowed-host"),
        "{out}"
    );
    assert!(
        !out.contains(INSPECTOR) && !out.contains(TAP) && !out.contains("argon2id"),
        "{out}"
    );
}

#[tokio::test]
async fn tokens_never_appear_in_logs() {
    let port = common::process::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut c = serve(
        &["--listen", &listen],
        &[
            ("SOCKSCOPE_INSPECTOR_TOKENS", INSPECTOR),
            ("SOCKSCOPE_VIEWER_TOKENS", VIEWER),
            ("SOCKSCOPE_INGEST_TOKENS", TAP),
            ("SOCKSCOPE_LOG", "trace"),
        ],
    );
    let mut child = c.spawn().expect("start the observer");
    let base = format!("http://{listen}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut up = false;
    for _ in 0..400 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "observer did not come up");
    // failed and successful logins, bearer API calls, tap ingest with and without a token
    for secret in [WRONG, INSPECTOR, VIEWER, TAP] {
        let _ = http
            .post(format!("{base}/auth/login"))
            .form(&[("secret", secret)])
            .send()
            .await
            .unwrap();
    }
    for t in [INSPECTOR, VIEWER, TAP, WRONG] {
        let _ = http
            .get(format!("{base}/api/overview"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
    }
    let body =
        serde_json::json!({"v": 1, "events": [{"type": "hello", "source": "t", "kind": "proxy"}]});
    for t in [TAP, INSPECTOR, WRONG] {
        let _ = http
            .post(format!("{base}/ingest"))
            .bearer_auth(t)
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    let v: serde_json::Value = http
        .get(format!("{base}/api/sources"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v[0]["id"], "t", "the tap token worked: {v}");
    child.kill().unwrap();
    let out = output(&mut child);
    let _ = child.wait();
    assert!(
        out.contains("failed dashboard login"),
        "logs say what happened: {out}"
    );
    for secret in [INSPECTOR, VIEWER, TAP, WRONG] {
        assert!(
            !out.contains(secret),
            "{secret} leaked into the log:\n{out}"
        );
    }
}

/// `THP_enabled` of a running process, once it has started (None without THP support).
#[cfg(target_os = "linux")]
#[track_caller]
fn thp_enabled(args: &[&str]) -> Option<bool> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockscope"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Give the restart a moment, then it must still be the same, running process.
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "{args:?} exited");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(shown.contains(&args.join(" ")), "{shown}");
    Some(line.trim_end().ends_with('1'))
}

/// Huge pages are off from the first allocation (steady, smaller RSS) unless `serve
/// --huge-pages` asks to keep them (ingest throughput).
#[cfg(target_os = "linux")]
#[test]
fn transparent_huge_pages_only_on_request() {
    let app = thp_enabled(&["sample-app", "--listen", "127.0.0.1:0"]);
    let Some(app) = app else { return };
    assert!(!app, "sample-app runs without THP");
    // The flag is inherited: serve can only keep what this test process has.
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    if ours
        .lines()
        .any(|l| l.starts_with("THP_enabled:") && l.trim_end().ends_with('1'))
    {
        let serve = thp_enabled(&["serve", "--listen", "127.0.0.1:0", "--site-root", "/x"]);
        assert_eq!(serve, Some(false), "serve runs without THP by default");
        let huge = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--site-root",
            "/x",
            "--huge-pages",
        ];
        assert_eq!(thp_enabled(&huge), Some(true), "--huge-pages keeps THP");
    }
}
