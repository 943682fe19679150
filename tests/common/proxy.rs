//! The one way tests start a tapped `sockscope proxy`: on 127.0.0.1:0, reporting to a test
//! observer.

use super::Observer;
use sockscope::proxy::ProxyConfig;
use sockscope_tap::{Tap, TapConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Settings for a proxy in front of `upstream`, believing `trusted` CIDRs.
#[track_caller]
pub fn cfg(upstream: SocketAddr, trusted: &[&str]) -> ProxyConfig {
    ProxyConfig {
        trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        ..ProxyConfig::new(upstream.to_string())
    }
}

/// A tap reporting to `obs` as `source`, flushing at once, mirroring `origin`/`x-request-id`.
pub fn tap_for(obs: &Observer, source: &str) -> Tap {
    let mut c = TapConfig::new(format!("ws://{}/ingest", obs.addr), source);
    c.flush = Duration::from_millis(1);
    c.mirror_headers = vec!["origin".into(), "x-request-id".into()];
    Tap::start(c).unwrap()
}

/// Serves a proxy on a free loopback port until the test ends; returns its address.
pub async fn start_proxy(cfg: ProxyConfig, tap: Tap) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(sockscope::proxy::serve(l, cfg, tap, std::future::pending()));
    addr
}
