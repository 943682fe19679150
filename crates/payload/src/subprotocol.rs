//! `Sec-WebSocket-Protocol` as a secret carrier: browser apps pass tokens there
//! (`new WebSocket(url, [jwt])`, `['access_token', jwt]`,
//! `base64url.bearer.authorization.k8s.io.<token>`). Values that look like protocol names
//! (`graphql-ws`, `v12.stomp`, `mqtt`, `json.webpubsub.azure.v1`) are kept; token-like ones
//! (long, high-entropy, JWT-shaped, or following an auth marker) become [`crate::REDACTED`].

use crate::REDACTED;
use std::borrow::Cow;

/// Items after which the next item is a credential whatever it looks like.
const AUTH_MARKERS: &[&str] = &[
    "access_token",
    "access-token",
    "accesstoken",
    "auth",
    "auth_token",
    "authorization",
    "bearer",
    "id_token",
    "jwt",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "x-auth-token",
];

/// Kubernetes' bearer-token subprotocol: the token follows this prefix.
const K8S_BEARER: &str = "base64url.bearer.authorization.k8s.io.";

/// A protocol segment longer than this is taken for a token.
const MAX_NAME_SEGMENT: usize = 16;
/// A whole item longer than this is taken for a token.
const MAX_NAME: usize = 64;

/// Whether one comma-separated item looks like a credential rather than a protocol name.
pub fn token_like(item: &str) -> bool {
    let item = item.trim();
    if item.is_empty() {
        return false;
    }
    if item.len() > MAX_NAME || item.starts_with("eyJ") {
        return true;
    }
    item.split(['.', '-', '_', '+']).any(|seg| {
        let digits = seg.bytes().filter(u8::is_ascii_digit).count();
        let upper = seg.bytes().any(|b| b.is_ascii_uppercase());
        let lower = seg.bytes().any(|b| b.is_ascii_lowercase());
        seg.len() > MAX_NAME_SEGMENT
            // Random text of some length mixes classes: `a1B2…`, hex ids, long numbers.
            || (seg.len() >= 8 && digits >= 3)
            || (seg.len() >= 8 && upper && lower && digits > 0)
    })
}

/// Masks the credentials in a `Sec-WebSocket-Protocol` value (comma-separated) and returns
/// how many items were masked. Protocol names pass unchanged.
pub fn mask(value: &str) -> (Cow<'_, str>, u32) {
    let mut masked = 0;
    let mut after_marker = false;
    let items: Vec<Cow<'_, str>> = value
        .split(',')
        .map(|raw| {
            let item = raw.trim();
            let out = if let Some(token) = item.strip_prefix(K8S_BEARER) {
                if token.is_empty() {
                    Cow::Borrowed(item)
                } else {
                    masked += 1;
                    Cow::Owned(format!("{K8S_BEARER}{REDACTED}"))
                }
            } else if after_marker || token_like(item) {
                masked += 1;
                Cow::Borrowed(REDACTED)
            } else {
                Cow::Borrowed(item)
            };
            after_marker = AUTH_MARKERS.contains(&item.to_ascii_lowercase().as_str());
            out
        })
        .collect();
    if masked == 0 {
        return (Cow::Borrowed(value), 0);
    }
    (Cow::Owned(items.join(", ")), masked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

    #[test]
    fn protocol_names_are_kept() {
        for p in [
            "graphql-ws",
            "graphql-transport-ws",
            "v12.stomp",
            "v10.stomp, v11.stomp, v12.stomp",
            "mqtt",
            "mqttv3.1",
            "json.webpubsub.azure.v1",
            "protobuf.webpubsub.azure.v1",
            "actioncable-v1-json",
            "wamp.2.json",
            "ocpp1.6, ocpp2.0.1",
            "chat.v1",
            "soap",
            "xmpp",
            "Hybi-10",
            "sip",
        ] {
            assert_eq!(mask(p), (Cow::Borrowed(p), 0), "{p}");
        }
    }

    #[test]
    fn tokens_are_masked() {
        assert_eq!(mask(JWT).0, REDACTED);
        assert_eq!(
            mask(&format!("access_token, {JWT}")),
            (Cow::Owned(format!("access_token, {REDACTED}")), 1)
        );
        // A short opaque token after a marker is masked too.
        assert_eq!(mask("Bearer, abc").0, format!("Bearer, {REDACTED}"));
        assert_eq!(
            mask(&format!(
                "graphql-ws, {K8S_BEARER}ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNklr"
            ))
            .0,
            format!("graphql-ws, {K8S_BEARER}{REDACTED}")
        );
        for t in [
            "550e8400-e29b-41d4-a716-446655440000",
            "sk_live_51HqLyjWDarjtT1zdp7dc",
            "AbCdEf12GhIjKl34",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(mask(t).1, 1, "{t}");
        }
    }
}
