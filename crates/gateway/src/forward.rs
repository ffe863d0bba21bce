//! Headers on the way through: what the upstream gets (APISIX's forwarded headers, §4.6) and
//! what the client gets back. Hop-by-hop headers never cross the gateway.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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

/// `$remote_addr` after nginx's real-IP module as APISIX configures it by default
/// (`set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;`, §3.5): a request from 127.0.0.1
/// that carries a valid `X-Real-IP` comes from that address; any other peer is itself.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if peer != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return peer;
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
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
    fn real_ip_is_trusted_from_loopback_only() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("10.1.2.3"));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_ip(local, &h), "10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(other, &h), other);
        h.insert("x-real-ip", HeaderValue::from_static("not-an-ip"));
        assert_eq!(client_ip(local, &h), local);
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
