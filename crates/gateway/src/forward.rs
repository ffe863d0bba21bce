//! Headers on the way through: what the upstream gets (APISIX's forwarded headers, §4.6) and
//! what the client gets back. Hop-by-hop headers never cross the gateway.
//!
//! Both run once per request, so they avoid work where it is common to have none: a request
//! without hop-by-hop headers is looked at once, and the forwarded values (the client's address,
//! the port) come from a small per-thread cache of ready header values instead of being
//! formatted and allocated every time.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that belong to one connection only (RFC 9110 §7.6.1) plus those nginx does not pass.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether the header named `name` (any case) is one of [`HOP_BY_HOP`].
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    match name.len() {
        2 => name.eq_ignore_ascii_case(b"te"),
        7 => name.eq_ignore_ascii_case(b"upgrade") || name.eq_ignore_ascii_case(b"trailer"),
        10 => name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive"),
        16 => name.eq_ignore_ascii_case(b"proxy-connection"),
        17 => name.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    }
}

/// The position of `name` in [`HOP_BY_HOP`].
fn hop_index(name: &HeaderName) -> Option<usize> {
    Some(match *name {
        header::CONNECTION => 0,
        header::TE => 3,
        header::TRAILER => 4,
        header::TRANSFER_ENCODING => 5,
        header::UPGRADE => 6,
        _ => match name.as_str() {
            "keep-alive" => 1,
            "proxy-connection" => 2,
            _ => return None,
        },
    })
}

/// The hop-by-hop headers of a request: those of [`HOP_BY_HOP`] and every header its
/// `Connection` header names. Found once, they are left out where the request is written
/// ([`crate::h1::encode`]) or removed from a copy ([`HopByHop::strip`]).
#[derive(Clone, Debug, Default)]
pub struct HopByHop {
    /// Bit `i`: `HOP_BY_HOP[i]` is present.
    present: u8,
    /// Other names the `Connection` header lists.
    named: Vec<HeaderName>,
    /// `Connection`/`Upgrade` stay (a WebSocket handshake).
    keep_upgrade: bool,
}

impl HopByHop {
    /// Looks at `headers` once; with `keep_upgrade`, `Connection`/`Upgrade` are not hop-by-hop
    /// (and the names `Connection` lists stay).
    pub fn find(headers: &HeaderMap, keep_upgrade: bool) -> HopByHop {
        let mut present = 0u8;
        for name in headers.keys() {
            if let Some(i) = hop_index(name) {
                present |= 1 << i;
            }
        }
        let mut named = Vec::new();
        if !keep_upgrade && present & 1 != 0 {
            // Names the hop-by-hop list removes anyway (and `close`) need no parsing.
            named = headers
                .get_all(header::CONNECTION)
                .iter()
                .flat_map(|v| v.as_bytes().split(|b| *b == b','))
                .map(<[u8]>::trim_ascii)
                .filter(|t| {
                    !t.is_empty()
                        && !t.eq_ignore_ascii_case(b"close")
                        && !HOP_BY_HOP
                            .iter()
                            .any(|h| t.eq_ignore_ascii_case(h.as_str().as_bytes()))
                })
                .filter_map(|t| HeaderName::from_bytes(t).ok())
                .collect();
        }
        HopByHop {
            present,
            named,
            keep_upgrade,
        }
    }

    /// Whether `name` is hop-by-hop here.
    pub fn contains(&self, name: &HeaderName) -> bool {
        if self.present != 0 && hop_index(name).is_some() {
            return !(self.keep_upgrade
                && (*name == header::CONNECTION || *name == header::UPGRADE));
        }
        !self.named.is_empty() && self.named.contains(name)
    }

    /// Removes the hop-by-hop headers from `headers`.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if self.present == 0 {
            return;
        }
        for name in &self.named {
            headers.remove(name);
        }
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            let kept =
                self.keep_upgrade && (*name == header::CONNECTION || *name == header::UPGRADE);
            if self.present & (1 << i) != 0 && !kept {
                headers.remove(name);
            }
        }
    }
}

/// Removes hop-by-hop headers and every header the `Connection` header names.
/// With `keep_upgrade`, `Connection`/`Upgrade` stay (a WebSocket handshake).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    HopByHop::find(headers, keep_upgrade).strip(headers);
}

/// `$remote_addr` after nginx's real-IP module as APISIX configures it by default
/// (`set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP;`, §3.5): a request from 127.0.0.1
/// that carries a valid `X-Real-IP` comes from that address; any other peer is itself.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if peer != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return peer;
    }
    headers
        .get(X_REAL_IP)
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

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// The forwarded headers of one request: `X-Real-IP`, `X-Forwarded-For`, `-Proto`, `-Host`,
/// `-Port` as APISIX sets them with no trusted addresses configured: the client's own
/// `X-Forwarded-Proto/Host/Port` and `Forwarded` are replaced, `X-Forwarded-For` is extended.
/// A value that cannot be made (`None`) leaves the client's header as it was.
#[derive(Clone, Debug)]
pub struct Forwarded {
    for_: Option<HeaderValue>,
    real_ip: HeaderValue,
    proto: HeaderValue,
    host: Option<HeaderValue>,
    port: Option<HeaderValue>,
}

impl Forwarded {
    /// The values for a request with `headers` from `client`.
    pub fn new(headers: &HeaderMap, client: &Client<'_>) -> Forwarded {
        let ip = cached(|c| c.ip(client.remote.ip()));
        let for_ = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.is_empty() => {
                let mut v = Vec::with_capacity(prev.len() + 2 + ip.len());
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(ip.as_bytes());
                HeaderValue::from_bytes(&v).ok()
            }
            _ => Some(ip.clone()),
        };
        let (host, port) = match client.host_header {
            Some(host) => {
                // The client's own `Host` value when that is where the host came from (no copy).
                let value = match headers.get(header::HOST) {
                    Some(v) if v.as_bytes() == host.as_bytes() => Some(v.clone()),
                    _ => HeaderValue::from_str(host).ok(),
                };
                (value, host_port(host))
            }
            None => (None, None),
        };
        let port = match port {
            Some(port) => cached(|c| c.port(port)),
            None => cached(|c| c.port_number(client.server_port)),
        };
        Forwarded {
            for_,
            real_ip: ip,
            proto: HeaderValue::from_static(client.scheme),
            host,
            port,
        }
    }

    /// The headers as they go upstream, in the order they are written.
    pub fn values(&self) -> impl Iterator<Item = (HeaderName, &HeaderValue)> {
        [
            (X_FORWARDED_FOR, self.for_.as_ref()),
            (X_REAL_IP, Some(&self.real_ip)),
            (X_FORWARDED_PROTO, Some(&self.proto)),
            (X_FORWARDED_HOST, self.host.as_ref()),
            (X_FORWARDED_PORT, self.port.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    }

    /// Whether the client's header `name` is left out: replaced by one of these, or `Forwarded`.
    pub fn replaces(&self, name: &HeaderName) -> bool {
        let n = name.as_str();
        if !n.starts_with('x') {
            return *name == header::FORWARDED;
        }
        match n {
            "x-forwarded-for" => self.for_.is_some(),
            "x-real-ip" | "x-forwarded-proto" => true,
            "x-forwarded-host" => self.host.is_some(),
            "x-forwarded-port" => self.port.is_some(),
            _ => false,
        }
    }

    /// Sets the values in `headers` (for a request written from a header map).
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.reserve(5);
        for (name, value) in self.values() {
            headers.insert(name, value.clone());
        }
        headers.remove(header::FORWARDED);
    }
}

/// Ready header values for what most requests repeat: the last client addresses and ports seen
/// on this thread. A value is made once; each use is a reference-count increment.
#[derive(Default)]
struct ValueCache {
    ips: Vec<(IpAddr, HeaderValue)>,
    ports: Vec<(u16, HeaderValue)>,
}

/// Entries kept per kind; the oldest makes room.
const CACHED: usize = 8;

thread_local! {
    static VALUES: RefCell<ValueCache> = RefCell::default();
}

fn cached<T>(f: impl FnOnce(&mut ValueCache) -> T) -> T {
    VALUES.with(|c| f(&mut c.borrow_mut()))
}

impl ValueCache {
    fn ip(&mut self, ip: IpAddr) -> HeaderValue {
        if let Some((_, v)) = self.ips.iter().find(|(k, _)| *k == ip) {
            return v.clone();
        }
        let mut text = [0u8; 45];
        let len = portico_snapshot::runtime::ip_text::write_ip(ip, &mut text);
        let value = HeaderValue::from_bytes(&text[..len]).unwrap_or(HeaderValue::from_static(""));
        remember(&mut self.ips, ip, value)
    }

    /// The port text of a `Host` header: cached when it is the plain rendering of a port
    /// number (as almost all are), otherwise made as it is.
    fn port(&mut self, port: &str) -> Option<HeaderValue> {
        match port.parse::<u16>() {
            Ok(n) if !port.starts_with('0') || port == "0" => self.port_number(n),
            _ => HeaderValue::from_str(port).ok(),
        }
    }

    fn port_number(&mut self, port: u16) -> Option<HeaderValue> {
        if let Some((_, v)) = self.ports.iter().find(|(k, _)| *k == port) {
            return Some(v.clone());
        }
        let value = HeaderValue::from(port);
        Some(remember(&mut self.ports, port, value))
    }
}

fn remember<K>(list: &mut Vec<(K, HeaderValue)>, key: K, value: HeaderValue) -> HeaderValue {
    if list.len() == CACHED {
        list.remove(0);
    }
    // Cloned once here so that the value is shared from now on (later clones allocate nothing).
    list.push((key, value.clone()));
    value
}

/// The port part of a `Host` header value, if any (`[::1]:80` → `80`).
pub fn host_port(host: &str) -> Option<&str> {
    // Byte loops: a host is short, and `rfind`'s search costs more to set up than this.
    let bytes = host.as_bytes();
    let after_bracket = bytes.iter().rposition(|b| *b == b']').map_or(0, |i| i + 1);
    bytes[after_bracket..]
        .iter()
        .rposition(|b| *b == b':')
        .map(|i| &host[after_bracket + i + 1..])
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `$host`: the `Host` value lower-cased and without port.
pub fn host_without_port(host: &str) -> String {
    // One pass (as `host_port`): the last `:` after any `]` of an IPv6 literal, and whether
    // there is anything to lower-case.
    let bytes = host.as_bytes();
    let mut colon = None;
    let mut upper = false;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b':' => colon = Some(i),
            b']' => colon = None,
            b'A'..=b'Z' => upper = true,
            _ => {}
        }
    }
    let end = match colon {
        Some(i) if i + 1 < bytes.len() && bytes[i + 1..].iter().all(u8::is_ascii_digit) => i,
        _ => bytes.len(),
    };
    let mut out = host[..end].to_string();
    if upper {
        out.make_ascii_lowercase();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forwarded headers as a header-map request gets them.
    fn set_forwarded(headers: &mut HeaderMap, client: &Client<'_>) {
        Forwarded::new(headers, client).apply(headers);
    }

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
    fn forwarded_values_come_from_the_cache_alike() {
        for _ in 0..2 {
            for (ip, text) in [
                ("10.0.0.9", "10.0.0.9"),
                ("192.168.100.255", "192.168.100.255"),
                ("::1", "::1"),
                ("2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334"),
            ] {
                let mut h = HeaderMap::new();
                h.insert("host", HeaderValue::from_static("example.com"));
                let client = Client {
                    remote: SocketAddr::new(ip.parse().unwrap(), 1),
                    scheme: "https",
                    server_port: 9443,
                    host_header: Some("example.com"),
                };
                set_forwarded(&mut h, &client);
                assert_eq!(h["x-real-ip"], text);
                assert_eq!(h["x-forwarded-for"], text);
                assert_eq!(h["x-forwarded-port"], "9443");
                assert_eq!(h["x-forwarded-host"], "example.com");
            }
        }
        let mut h = HeaderMap::new();
        let client = Client {
            remote: "10.0.0.9:1".parse().unwrap(),
            scheme: "http",
            server_port: 80,
            host_header: Some("a.com:0080"),
        };
        set_forwarded(&mut h, &client);
        assert_eq!(h["x-forwarded-port"], "0080");
    }

    #[test]
    fn connection_named_headers_go_and_upgrades_can_stay() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("Upgrade, Keep-Alive"),
        );
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        strip_hop_by_hop(&mut h, true);
        assert!(h.contains_key("connection") && h.contains_key("upgrade"));
        assert!(!h.contains_key("keep-alive"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
    }

    #[test]
    fn hop_by_hop_names_in_any_case() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name.as_str().as_bytes()), "{name}");
            assert!(is_hop_by_hop(name.as_str().to_ascii_uppercase().as_bytes()));
        }
        for name in ["tea", "upgrades", "content-length", "x-connection", ""] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn host_parts() {
        assert_eq!(host_port("a.com:81"), Some("81"));
        assert_eq!(host_port("[::1]:81"), Some("81"));
        assert_eq!(host_port("[::1]"), None);
        assert_eq!(host_without_port("A.Com:81"), "a.com");
        assert_eq!(host_without_port("[::1]:8"), "[::1]");
        // The same cut as `host_port` makes, for every shape of host.
        for host in [
            "a.com",
            "a.com:",
            "a.com:8x",
            "a.com:80",
            "A.COM",
            "[::1]",
            "[::1]:",
            "[::1]:443",
            "[::1]x",
            "::1",
            "1.2.3.4:5",
            ":",
            "",
            "a:b:80",
            "a]:80",
        ] {
            let expected = match host_port(host) {
                Some(port) => &host[..host.len() - port.len() - 1],
                None => host,
            };
            assert_eq!(
                host_without_port(host),
                expected.to_ascii_lowercase(),
                "{host}"
            );
        }
    }
}
