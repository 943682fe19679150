//! `--config FILE`: flag > environment > file > default; refusals name the file, line and key;
//! secrets come from files; `sockscope config check` prints the effective settings, masked.

mod common;

use common::process::{run_to_end, sockscope, start_until};
use sockscope::cli::{try_parse_from, Cli, Command};
use sockscope::server::config::{ServeArgs, DEFAULT_TRACE_CAPACITY};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TAP_TOKEN: &str = "file-tap-token-5e1f2a9c7b";
const INSPECTOR: &str = "file-inspector-token-77aa01";

#[track_caller]
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[track_caller]
fn parse(args: &[&str]) -> Cli {
    let args = std::iter::once("sockscope").chain(args.iter().copied());
    try_parse_from(args.map(Into::into).collect()).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
fn serve_args(args: &[&str]) -> ServeArgs {
    match parse(args).command {
        Command::Serve(a) => a,
        _ => unreachable!(),
    }
}

#[test]
fn file_values_are_defaults_that_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.toml",
        "[serve]\nmax_connections = 5\ntick = \"300ms\"\nallowed-host = [\"a.example\", \"b.example\"]\nhuge_pages = true\n",
    );
    let f = f.to_str().unwrap();
    let a = serve_args(&["serve", "--config", f]);
    assert_eq!(a.max_connections, 5);
    assert_eq!(a.tick, Duration::from_millis(300));
    assert_eq!(a.auth.allowed_hosts, ["a.example", "b.example"]);
    assert!(a.huge_pages);
    assert_eq!(
        a.trace_capacity, DEFAULT_TRACE_CAPACITY,
        "untouched keys keep defaults"
    );
    let a = serve_args(&["serve", &format!("--config={f}"), "--max-connections", "7"]);
    assert_eq!(a.max_connections, 7, "a flag beats the file");
    assert_eq!(a.tick, Duration::from_millis(300));
    // The demo reads [serve] too.
    match parse(&["demo", "--config", f]).command {
        Command::Demo(d) => assert_eq!(d.serve.max_connections, 5),
        _ => unreachable!(),
    }
    // A required flag may come from the file.
    let p = write(
        dir.path(),
        "p.toml",
        "[proxy]\nupstream = \"http://127.0.0.1:5000\"\n",
    );
    match parse(&["proxy", "--config", p.to_str().unwrap()]).command {
        Command::Proxy(a) => assert_eq!(a.upstream, "http://127.0.0.1:5000"),
        _ => unreachable!(),
    }
}

#[test]
fn the_environment_beats_the_file_and_check_says_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.toml",
        "# observer\n[serve]\nmax_connections = 5\ntick = \"300ms\"\n",
    );
    let mut c = sockscope(&["config", "check", f.to_str().unwrap()]);
    c.env("SOCKSCOPE_MAX_CONNECTIONS", "6");
    let (ok, out) = run_to_end(c);
    assert!(ok, "{out}");
    assert!(
        out.contains("max_connections = 6  # environment SOCKSCOPE_MAX_CONNECTIONS"),
        "{out}"
    );
    assert!(
        out.contains(&format!("tick = \"300ms\"  # {}:4", f.display())),
        "{out}"
    );
    assert!(out.contains("retention = \"1h\"  # default"), "{out}");
    // What it prints is itself a valid config file.
    let printed = write(dir.path(), "printed.toml", &out);
    let (ok, again) = run_to_end(sockscope(&["config", "check", printed.to_str().unwrap()]));
    assert!(ok, "{again}");
}

#[test]
fn a_flag_beats_the_environment_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // The file and the environment both name addresses this machine cannot listen on.
    let f = write(dir.path(), "s.toml", "[serve]\nlisten = \"192.0.2.1:81\"\n");
    let mut c = sockscope(&[
        "serve",
        "--config",
        f.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    c.env("SOCKSCOPE_LISTEN", "192.0.2.1:80");
    let (_observer, line) = start_until(c, "observer on http://127.0.0.1:");
    assert!(!line.contains("192.0.2.1"), "{line}");
}

/// Starts `serve --config` with `text` and returns its refusal.
#[track_caller]
fn refusal(text: &str) -> (PathBuf, String) {
    let dir = tempfile::tempdir().unwrap().keep();
    let f = write(&dir, "bad.toml", text);
    let (ok, out) = run_to_end(sockscope(&["serve", "--config", f.to_str().unwrap()]));
    assert!(!ok, "started with {text:?}: {out}");
    (f, out)
}

#[test]
fn refusals_name_the_file_line_and_key() {
    let (f, out) = refusal("[serve]\ntick = \"250ms\"\nmax_conections = 5\n");
    let at = format!("{}:3: ", f.display());
    assert!(
        out.contains(&format!(
            "{at}unknown key `max_conections` in [serve] (did you mean `max_connections`?)"
        )),
        "{out}"
    );
    let (f, out) = refusal("[serve]\nhuge_pages = \"yes\"\n");
    assert!(
        out.contains(&format!(
            "{}:2: wrong type for `huge_pages` in [serve]: expected true or false, found string",
            f.display()
        )),
        "{out}"
    );
    let (_, out) = refusal("[serve]\nlisten = [\"127.0.0.1:0\"]\n");
    assert!(
        out.contains(":2: wrong type for `listen`") && out.contains("one value, not a list"),
        "{out}"
    );
    let (_, out) = refusal("[serve]\n\nmax_sources = 0\n");
    assert!(
        out.contains(
            ":3: bad value for `max_sources` in [serve]: invalid value '0' for '--max-sources"
        ),
        "{out}"
    );
    let (_, out) = refusal("[serve]\ntick = \"5ms\"\n");
    assert!(
        out.contains(":2: bad value for `tick`") && out.contains("outside 50ms..10s"),
        "{out}"
    );
    let (_, out) = refusal("[server]\ntick = \"1s\"\n");
    assert!(out.contains(":1: unknown table [server]"), "{out}");
    let (_, out) = refusal("[serve]\ntick = \n");
    assert!(out.contains("bad.toml:2: "), "{out}");
    let (_, out) = refusal("listen = \"127.0.0.1:0\"\n");
    assert!(
        out.contains("bad.toml:1: ") && out.contains("[serve] or [proxy]"),
        "{out}"
    );
    let (ok, out) = run_to_end(sockscope(&["serve", "--config", "/nonexistent/s.toml"]));
    assert!(
        !ok && out.contains("/nonexistent/s.toml") && out.contains("cannot read"),
        "{out}"
    );
    // `config check` refuses the same way, and also what only the command would refuse.
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.toml",
        "[proxy]\nupstream = \"http://127.0.0.1:1\"\nmax_mesage = 1\n",
    );
    let (ok, out) = run_to_end(sockscope(&["config", "check", f.to_str().unwrap()]));
    assert!(
        !ok && out.contains("p.toml:3: unknown key `max_mesage` in [proxy]"),
        "{out}"
    );
    let f = write(
        dir.path(),
        "open.toml",
        "[serve]\nlisten = \"0.0.0.0:3000\"\n",
    );
    let (ok, out) = run_to_end(sockscope(&["config", "check", f.to_str().unwrap()]));
    assert!(
        !ok && out.contains("refusing to listen on 0.0.0.0:3000"),
        "{out}"
    );
}

#[tokio::test]
async fn secrets_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = write(
        dir.path(),
        "ingest.tokens",
        &format!("# taps\n\n{TAP_TOKEN}\n"),
    );
    let inspector = write(dir.path(), "inspector.token", INSPECTOR);
    let f = write(
        dir.path(),
        "s.toml",
        &format!(
            "[serve]\ningest_token_file = {:?}\n",
            tokens.to_str().unwrap()
        ),
    );
    let c = sockscope(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        f.to_str().unwrap(),
        "--inspector-token-file",
        inspector.to_str().unwrap(),
    ]);
    let (observer, line) = start_until(c, "observer on http://");
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let http = reqwest::Client::new();
    let body = r#"{"v":1,"events":[{"type":"hello","source":"f","kind":"app"}]}"#;
    let post = |token: Option<&str>| {
        let mut r = http
            .post(format!("http://{addr}/ingest"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some(TAP_TOKEN)).await.unwrap().status(), 200);
    let api = |token: &str| {
        http.get(format!("http://{addr}/api/overview"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(api(INSPECTOR).await.unwrap().status(), 200);
    assert_eq!(api(TAP_TOKEN).await.unwrap().status(), 401);
    drop(observer);

    // A missing or empty secret file refuses to start, naming the flag and the file.
    let (ok, out) = run_to_end(sockscope(&[
        "serve",
        "--ingest-token-file",
        "/nonexistent/tokens",
    ]));
    assert!(
        !ok && out.contains("--ingest-token-file /nonexistent/tokens: cannot read it"),
        "{out}"
    );
    let empty = write(dir.path(), "empty", "# nothing\n");
    let (ok, out) = run_to_end(sockscope(&[
        "proxy",
        "--upstream",
        "http://127.0.0.1:1",
        "--token-file",
        empty.to_str().unwrap(),
    ]));
    assert!(
        !ok && out.contains("--token-file") && out.contains("holds no secret"),
        "{out}"
    );
}

#[test]
fn config_check_masks_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "all.toml",
        &format!(
            "[serve]\ningest_token = [\"{TAP_TOKEN}\"]\ninspector_token = [\"{INSPECTOR}\"]\n\n\
             [proxy]\nupstream = \"http://127.0.0.1:5000\"\nobserver = \"ws://127.0.0.1:3000/ingest\"\ntoken = \"{TAP_TOKEN}\"\n"
        ),
    );
    let mut c = sockscope(&["config", "check", f.to_str().unwrap()]);
    c.env("SOCKSCOPE_VIEWER_TOKENS", "env-viewer-token-0099887766");
    let (ok, out) = run_to_end(c);
    assert!(ok, "{out}");
    for secret in [TAP_TOKEN, INSPECTOR, "env-viewer-token-0099887766"] {
        assert!(!out.contains(secret), "{secret} shown:\n{out}");
    }
    assert!(out.contains("ingest_token = \"***\""), "{out}");
    assert!(
        out.contains("viewer_token = \"***\"  # environment SOCKSCOPE_VIEWER_TOKENS"),
        "{out}"
    );
    assert!(
        out.contains("[proxy]") && out.contains("token = \"***\""),
        "{out}"
    );
    assert!(
        out.contains("upstream = \"http://127.0.0.1:5000\""),
        "{out}"
    );
}

#[test]
fn the_annotated_example_in_docs_is_valid() {
    // The example reads its secrets from files next to it (relative paths are read from the
    // config file's directory): put it in a directory with such files.
    let dir = tempfile::tempdir().unwrap();
    let example = include_str!("../docs/sockscope.example.toml");
    let f = write(dir.path(), "sockscope.toml", example);
    for (name, token) in [
        ("ingest.tokens", TAP_TOKEN),
        ("inspector.tokens", INSPECTOR),
        ("tap.token", TAP_TOKEN),
    ] {
        write(dir.path(), name, token);
    }
    let (ok, out) = run_to_end(sockscope(&["config", "check", f.to_str().unwrap()]));
    assert!(ok, "{out}");
    assert!(out.contains("[serve]") && out.contains("[proxy]"), "{out}");
    assert!(
        !out.contains(TAP_TOKEN) && !out.contains(INSPECTOR),
        "{out}"
    );
}
