//! The `Host` allow-list: a page on a rebinding domain (`evil.example` resolved to 127.0.0.1)
//! reaches the observer with `Host: evil.example` and is refused.

use std::net::{IpAddr, SocketAddr};

/// Which `Host` values the observer answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPolicy {
    /// Extra names (lower case, no port), from `--allowed-host`.
    names: Vec<String>,
    /// `localhost` and loopback addresses.
    loopback: bool,
    /// Any IP literal (listening on 0.0.0.0 / [::]): an address cannot be rebound.
    any_ip: bool,
    /// The address the observer listens on.
    listen_ip: Option<IpAddr>,
    /// `--allowed-host '*'`: no check at all.
    any: bool,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            names: Vec::new(),
            loopback: true,
            any_ip: false,
            listen_ip: None,
            any: false,
        }
    }
}

impl HostPolicy {
    pub fn for_listen(listen: SocketAddr, names: &[String]) -> anyhow::Result<HostPolicy> {
        let ip = listen.ip();
        let mut p = HostPolicy {
            names: Vec::new(),
            loopback: true,
            any_ip: ip.is_unspecified(),
            listen_ip: Some(ip),
            any: false,
        };
        for n in names {
            let n = n.trim().to_ascii_lowercase();
            if n == "*" {
                p.any = true;
                continue;
            }
            anyhow::ensure!(
                !n.is_empty()
                    && n.len() <= 253
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
                "--allowed-host {n:?} is not a host name: write names like dash.example.com, \
                 without scheme or port"
            );
            p.names.push(n);
        }
        Ok(p)
    }

    /// Checks a `Host` header value (with or without port).
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let name = strip_port(host).to_ascii_lowercase();
        let ip = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        match ip {
            Some(ip) => {
                self.any_ip
                    || (self.loopback && ip.is_loopback())
                    || self.listen_ip == Some(ip)
                    || self
                        .names
                        .iter()
                        .any(|n| n.parse::<IpAddr>().ok() == Some(ip))
            }
            None => (self.loopback && name == "localhost") || self.names.contains(&name),
        }
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return match rest.find(']') {
            Some(i) => &host[..i + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(listen: &str, names: &[&str]) -> HostPolicy {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        HostPolicy::for_listen(listen.parse().unwrap(), &names).unwrap()
    }

    #[test]
    fn loopback_observer_refuses_rebinding_names() {
        let p = policy("127.0.0.1:3000", &[]);
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST",
            "[::1]:3000",
            "127.0.0.2",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:3000",
            "evil.example",
            "10.0.0.1:3000",
            "localhost.evil.example",
            "",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn names_and_addresses() {
        let p = policy("0.0.0.0:3000", &["Dash.Example.com"]);
        assert!(p.allows("dash.example.com:3000"));
        assert!(
            p.allows("10.1.2.3:3000"),
            "any address when listening on all"
        );
        assert!(!p.allows("other.example.com"));
        let p = policy("10.0.0.5:3000", &[]);
        assert!(p.allows("10.0.0.5:3000"));
        assert!(!p.allows("10.0.0.6:3000"));
        assert!(policy("10.0.0.5:3000", &["*"]).allows("anything.example"));
        assert!(
            HostPolicy::for_listen("127.0.0.1:1".parse().unwrap(), &["http://x".into()]).is_err()
        );
    }
}
