//! Which address is the client: the socket peer, or — only when the peer is a trusted proxy —
//! the nearest untrusted hop named in `Forwarded` / `X-Forwarded-For`. Used by the proxy (the
//! address it reports and forwards) and the observer (the address its rate limits key on).

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// Hops from `X-Forwarded-For`, or when there is none from `Forwarded: for=…` (RFC 7239), in
/// order. X-Forwarded-For first: it is what load balancers append to, and a client's own
/// `Forwarded` header, passed through untouched, must not override it.
fn forwarded_hops(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut hops = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        hops.extend(
            v.to_str()
                .unwrap_or("")
                .split(',')
                .filter_map(|h| h.trim().parse::<IpAddr>().ok()),
        );
    }
    if !hops.is_empty() {
        return hops;
    }
    for v in headers.get_all("forwarded") {
        for elem in v.to_str().unwrap_or("").split(',') {
            for pair in elem.split(';') {
                let Some((k, val)) = pair.trim().split_once('=') else {
                    continue;
                };
                if !k.trim().eq_ignore_ascii_case("for") {
                    continue;
                }
                let val = val.trim().trim_matches('"');
                // for="[2001:db8::1]:4711" or for=192.0.2.1:80
                let host = if let Some(rest) = val.strip_prefix('[') {
                    rest.split(']').next().unwrap_or("")
                } else {
                    val.rsplit_once(':')
                        .filter(|(h, _)| !h.contains(':'))
                        .map(|(h, _)| h)
                        .unwrap_or(val)
                };
                if let Ok(ip) = host.parse() {
                    hops.push(ip);
                }
            }
        }
    }
    hops
}

pub(crate) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The client address. Headers are believed only from trusted peers, walking from the right
/// (the hop nearest to us) past further trusted proxies.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    for hop in hops.iter().rev() {
        if !is_trusted(*hop, trusted) {
            return *hop;
        }
    }
    hops.first().copied().unwrap_or(peer)
}

/// The `X-Forwarded-For` to send upstream: the trusted chain plus the peer, or just the peer.
pub(crate) fn forwarded_for(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> String {
    let existing = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    if is_trusted(peer, trusted) && !existing.is_empty() {
        format!("{existing}, {peer}")
    } else {
        peer.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let peer: IpAddr = "198.51.100.9".parse().unwrap();
        let hdr = h(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(peer, &hdr, &nets(&["10.0.0.0/8"])), peer);
        assert_eq!(
            forwarded_for(peer, &hdr, &nets(&["10.0.0.0/8"])),
            "198.51.100.9"
        );
    }

    #[test]
    fn trusted_chain_is_walked_from_the_right() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        // Spoofed left-most entry, real client, then another trusted proxy.
        let hdr = h(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.1.1.1")]);
        assert_eq!(client_ip(peer, &hdr, &trusted).to_string(), "203.0.113.5");
        assert_eq!(
            forwarded_for(peer, &hdr, &trusted),
            "6.6.6.6, 203.0.113.5, 10.1.1.1, 10.0.0.2"
        );
        // All hops trusted: the left-most one is the best we know.
        let hdr = h(&[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(client_ip(peer, &hdr, &trusted).to_string(), "10.9.9.9");
        // No header: the peer.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn forwarded_is_read_only_without_x_forwarded_for_and_handles_ipv6_and_ports() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted = nets(&["127.0.0.0/8"]);
        // A client's own Forwarded header, passed through by a load balancer that appends to
        // X-Forwarded-For, does not override it.
        let hdr = h(&[
            ("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(client_ip(peer, &hdr, &trusted).to_string(), "203.0.113.9");
        let hdr = h(&[(
            "forwarded",
            r#"for="[2001:db8::7]:4711";proto=https, for=127.0.0.5"#,
        )]);
        assert_eq!(client_ip(peer, &hdr, &trusted).to_string(), "2001:db8::7");
        let hdr = h(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(client_ip(peer, &hdr, &trusted).to_string(), "192.0.2.60");
        let hdr = h(&[("x-forwarded-for", "garbage, 192.0.2.1")]);
        assert_eq!(client_ip(peer, &hdr, &trusted).to_string(), "192.0.2.1");
    }
}
