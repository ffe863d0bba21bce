//! Headers on the way through: what the upstream gets (APISIX's forwarded headers, §4.6) and
//! what the client gets back. Hop-by-hop headers never cross the gateway.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that belong to one connection only (RFC 9110 §7.6.1) plus those nginx does not pass.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers and every header the `Connection` header names.
/// With `keep_upgrade`, `Connection`/`Upgrade` stay (a WebSocket handshake).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    if !keep_upgrade {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        if keep_upgrade && (*name == header::CONNECTION || *name == header::UPGRADE) {
            continue;
        }
        headers.remove(name);
    }
}

/// Facts about the client connection that the forwarded headers carry.
pub struct Client<'a> {
    pub remote: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The port the gateway accepted the connection on.
    pub server_port: u16,
    /// The client's `Host` header (or `:authority`), port included.
    pub host_header: Option<&'a str>,
}

/// Sets `X-Real-IP`, `X-Forwarded-For`, `-Proto`, `-Host`, `-Port` as APISIX does with no
/// trusted addresses configured: the client's own `X-Forwarded-Proto/Host/Port` and `Forwarded`
/// are replaced, `X-Forwarded-For` is extended.
pub fn set_forwarded(headers: &mut HeaderMap, client: &Client<'_>) {
    let ip = client.remote.ip().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.is_empty() => format!("{prev}, {ip}"),
        _ => ip.clone(),
    };
    insert(headers, "x-forwarded-for", &xff);
    insert(headers, "x-real-ip", &ip);
    headers.insert("x-forwarded-proto", HeaderValue::from_static(client.scheme));
    if let Some(host) = client.host_header {
        insert(headers, "x-forwarded-host", host);
    }
    let port = client
        .host_header
        .and_then(host_port)
        .map(str::to_string)
        .unwrap_or_else(|| client.server_port.to_string());
    insert(headers, "x-forwarded-port", &port);
    headers.remove(header::FORWARDED);
}

/// The port part of a `Host` header value, if any (`[::1]:80` → `80`).
pub fn host_port(host: &str) -> Option<&str> {
    let after_bracket = host.rfind(']').map_or(0, |i| i + 1);
    host[after_bracket..]
        .rfind(':')
        .map(|i| &host[after_bracket + i + 1..])
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `$host`: the `Host` value lower-cased and without port.
pub fn host_without_port(host: &str) -> String {
    let end = match host_port(host) {
        Some(port) => host.len() - port.len() - 1,
        None => host.len(),
    };
    host[..end].to_ascii_lowercase()
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_headers_follow_apisix() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("forwarded", HeaderValue::from_static("for=1.2.3.4"));
        let client = Client {
            remote: "10.0.0.9:5555".parse().unwrap(),
            scheme: "http",
            server_port: 9080,
            host_header: Some("example.com:8080"),
        };
        set_forwarded(&mut h, &client);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        assert_eq!(h["x-real-ip"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com:8080");
        assert_eq!(h["x-forwarded-port"], "8080");
        assert!(!h.contains_key("forwarded"));
    }

    #[test]
    fn host_parts() {
        assert_eq!(host_port("a.com:81"), Some("81"));
        assert_eq!(host_port("[::1]:81"), Some("81"));
        assert_eq!(host_port("[::1]"), None);
        assert_eq!(host_without_port("A.Com:81"), "a.com");
        assert_eq!(host_without_port("[::1]:8"), "[::1]");
    }
}
