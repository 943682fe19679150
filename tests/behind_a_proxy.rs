//! An observer behind a reverse proxy (`serve --trusted-proxy`): its limits key on the client
//! the proxy names, not on the proxy's own address, which every client shares. Real observer
//! on loopback; the test plays the proxy by sending X-Forwarded-For.

mod common;

use common::{start, Observer};
use sockscope::protocol::Role;
use sockscope::server::config::ObserverConfig;
use sockscope::server::AuthConfig;

const INSPECTOR: &str = "inspector-token-0123456789";

async fn observer(trusted: &[&str]) -> Observer {
    let mut auth = AuthConfig::default().with_token(Role::Inspector, INSPECTOR);
    auth.trusted = trusted.iter().map(|t| t.parse().unwrap()).collect();
    start(ObserverConfig {
        auth,
        ..ObserverConfig::default()
    })
    .await
}

async fn overview_from(obs: &Observer, client: &str, token: &str) -> u16 {
    obs.http
        .get(obs.url("/api/overview"))
        .bearer_auth(token)
        .header("x-forwarded-for", client)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_guessing_client_does_not_shut_out_the_others() {
    let obs = observer(&["127.0.0.1/32"]).await;
    for i in 0..31 {
        let s = overview_from(&obs, "203.0.113.5", &format!("wrong-token-{i:016}")).await;
        assert!(s == 401 || s == 429, "{s}");
    }
    assert_eq!(overview_from(&obs, "203.0.113.5", INSPECTOR).await, 429);
    // Another client behind the same proxy is not shut out.
    assert_eq!(overview_from(&obs, "203.0.113.6", INSPECTOR).await, 200);
}

#[tokio::test]
async fn without_trust_forwarded_headers_are_ignored_and_the_peer_is_the_key() {
    let obs = observer(&[]).await;
    for i in 0..31 {
        // A guesser cannot dodge the limit by making up a new X-Forwarded-For each time.
        let client = format!("198.51.100.{i}");
        let s = overview_from(&obs, &client, &format!("wrong-token-{i:016}")).await;
        assert!(s == 401 || s == 429, "{s}");
    }
    assert_eq!(overview_from(&obs, "203.0.113.6", INSPECTOR).await, 429);
}
