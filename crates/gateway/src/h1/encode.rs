//! Writing an upstream request: the head straight from the client's headers into the
//! connection's buffer (no header map is copied or changed), the body as `Content-Length` or
//! chunked data. The framing rules are the ones hyper's client applied before: a length the
//! headers declare wins, a body of known size gets `Content-Length`, any other body is chunked,
//! and a request without body carries neither (a declared `Content-Length: 0` stays).

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{StatusCode, Uri};

use crate::error::ProxyError;
use crate::proxy::Outgoing;

/// How the request body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// What is known about the request body before it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodySize {
    Empty,
    Known(u64),
    Unknown,
}

/// Writes the request line and headers of `out` into `dst` (cleared first): `host` as the
/// `Host` header when given and valid (else the client's stays), hop-by-hop framing headers
/// replaced by the body's own framing, which is returned.
pub fn head(
    dst: &mut Vec<u8>,
    out: &Outgoing,
    host: Option<&str>,
    body: BodySize,
) -> Result<Framing, ProxyError> {
    let target = target(&out.path_and_query)?;
    let headers = &out.headers;
    dst.clear();
    dst.reserve(64 + target.len() + headers.len() * 32);
    dst.extend_from_slice(out.method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    let host = host.filter(|h| valid_value(h.as_bytes()));
    if let Some(host) = host {
        dst.extend_from_slice(b"host: ");
        dst.extend_from_slice(host.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    let (framing, own_length) = framing(headers, body);
    match framing {
        Framing::Chunked => dst.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Length(len) if own_length => {
            dst.extend_from_slice(b"content-length: ");
            dst.extend_from_slice(itoa(len, &mut [0; 20]));
            dst.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    for (name, value) in headers {
        let skip = match *name {
            header::HOST => host.is_some(),
            header::TRANSFER_ENCODING => true,
            header::CONTENT_LENGTH => own_length || framing == Framing::Chunked,
            _ => out.hop.contains(name) || out.forwarded.replaces(name),
        };
        if !skip {
            line(dst, name.as_str(), value.as_bytes());
        }
    }
    for (name, value) in out.forwarded.values() {
        line(dst, name.as_str(), value.as_bytes());
    }
    if out.grpc {
        line(dst, "te", b"trailers");
    }
    dst.extend_from_slice(b"\r\n");
    Ok(framing)
}

fn line(dst: &mut Vec<u8>, name: &str, value: &[u8]) {
    dst.extend_from_slice(name.as_bytes());
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value);
    dst.extend_from_slice(b"\r\n");
}

/// The body's framing, and whether the gateway writes the `Content-Length` itself (rather
/// than passing the client's).
fn framing(headers: &HeaderMap, body: BodySize) -> (Framing, bool) {
    if body == BodySize::Empty {
        return (Framing::Empty, false);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return (Framing::Chunked, false);
    }
    match (declared_length(headers), body) {
        (Some(len), _) => (Framing::Length(len), false),
        (None, BodySize::Known(len)) => (Framing::Length(len), true),
        _ => (Framing::Chunked, false),
    }
}

/// The `Content-Length` the headers declare: every value the same valid number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let mut found = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let len = parse_u64(value.as_bytes())?;
        if found.is_some_and(|f| f != len) {
            return None;
        }
        found = Some(len);
    }
    found
}

/// A decimal number of digits only (what `Content-Length` allows).
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}

/// The request target as it goes on the wire. Targets of plain characters go as they are; any
/// other is parsed as hyper's client did (a fragment is dropped; what `http::Uri` refuses is the
/// client's 400).
fn target(path_and_query: &str) -> Result<Cow<'_, str>, ProxyError> {
    if plain_target(path_and_query.as_bytes()) {
        return Ok(Cow::Borrowed(path_and_query));
    }
    let uri: Uri = path_and_query.parse().map_err(|e| {
        ProxyError::Client(StatusCode::BAD_REQUEST, format!("bad request target: {e}"))
    })?;
    Ok(Cow::Owned(uri.to_string()))
}

/// An origin-form target of characters `http::uri::PathAndQuery` takes as they are (no
/// fragment, no non-ASCII).
pub fn plain_target(b: &[u8]) -> bool {
    if b.first() != Some(&b'/') || b.len() > usize::from(u16::MAX - 1) {
        return false;
    }
    let mut query = false;
    b.iter().all(|&c| match c {
        b'?' if !query => {
            query = true;
            true
        }
        _ if query => matches!(c, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E),
        _ => matches!(c, 0x21 | 0x22 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7E),
    })
}

/// What `HeaderValue::from_str` accepts: visible ASCII, spaces and tabs.
fn valid_value(b: &[u8]) -> bool {
    b.iter().all(|&c| (c >= 32 && c != 127) || c == b'\t')
}

/// `n` in decimal, written into the end of `buf`.
pub fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The line that starts a chunk of `len` bytes (`len` in hex, CRLF).
pub fn chunk_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = buf.len() - 2;
    buf[i] = b'\r';
    buf[i + 1] = b'\n';
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The end of a chunked body, with trailers when the body had some.
pub fn last_chunk(dst: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    dst.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Data frames up to this size are copied behind what is queued (one write); larger ones are
/// written from their own buffer.
pub const COPY_LIMIT: usize = 8 * 1024;

/// Whether a frame is small enough to copy.
pub fn copy(data: &Bytes) -> bool {
    data.len() <= COPY_LIMIT
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};

    fn outgoing(target: &str, headers: &[(&'static str, &'static str)]) -> Outgoing {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(*n, HeaderValue::from_static(v));
        }
        let client = crate::forward::Client {
            remote: "10.0.0.9:5000".parse().unwrap(),
            scheme: "http",
            server_port: 9080,
            host_header: None,
        };
        Outgoing::new(Method::POST, target.to_string(), map, &client, false, false)
    }

    fn text(out: &Outgoing, host: Option<&str>, body: BodySize) -> (String, Framing) {
        let mut dst = Vec::new();
        let framing = head(&mut dst, out, host, body).unwrap();
        (String::from_utf8(dst).unwrap(), framing)
    }

    #[test]
    fn the_head_carries_the_host_and_the_client_headers() {
        let out = outgoing(
            "/a?b=1",
            &[("host", "client"), ("x-one", "1"), ("x-one", "2")],
        );
        let (head, framing) = text(&out, Some("node:8080"), BodySize::Empty);
        assert_eq!(
            head,
            "POST /a?b=1 HTTP/1.1\r\nhost: node:8080\r\nx-one: 1\r\nx-one: 2\r\n\
             x-forwarded-for: 10.0.0.9\r\nx-real-ip: 10.0.0.9\r\nx-forwarded-proto: http\r\n\
             x-forwarded-port: 9080\r\n\r\n"
        );
        assert_eq!(framing, Framing::Empty);
        let (head, _) = text(&out, None, BodySize::Empty);
        assert!(head.contains("host: client\r\n"), "{head}");
    }

    #[test]
    fn hop_by_hop_headers_stay_behind_and_forwarded_ones_are_replaced() {
        let out = outgoing(
            "/",
            &[
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-proto", "https"),
                ("forwarded", "for=1.2.3.4"),
                ("x-kept", "yes"),
            ],
        );
        let (head, _) = text(&out, None, BodySize::Empty);
        assert_eq!(
            head,
            "POST / HTTP/1.1\r\nx-kept: yes\r\n\
             x-forwarded-for: 1.2.3.4, 10.0.0.9\r\nx-real-ip: 10.0.0.9\r\n\
             x-forwarded-proto: http\r\nx-forwarded-port: 9080\r\n\r\n"
        );
        // The map itself is left as the client (and the plugins) made it.
        assert_eq!(out.headers.len(), 7);
    }

    #[test]
    fn framing_follows_the_declared_length_else_the_body() {
        let declared = outgoing("/", &[("content-length", "5")]);
        let (head, framing) = text(&declared, None, BodySize::Unknown);
        assert_eq!(framing, Framing::Length(5));
        assert!(head.contains("content-length: 5\r\n"));
        let plain = outgoing("/", &[]);
        let (head, framing) = text(&plain, None, BodySize::Known(7));
        assert_eq!(framing, Framing::Length(7));
        assert!(head.contains("content-length: 7\r\n"));
        let (head, framing) = text(&plain, None, BodySize::Unknown);
        assert_eq!(framing, Framing::Chunked);
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        let both = outgoing("/", &[("content-length", "5"), ("content-length", "6")]);
        let (head, framing) = text(&both, None, BodySize::Unknown);
        assert_eq!(framing, Framing::Chunked);
        assert!(!head.contains("content-length"), "{head}");
        let empty = outgoing("/", &[("content-length", "0")]);
        let (head, framing) = text(&empty, None, BodySize::Empty);
        assert_eq!(framing, Framing::Empty);
        assert!(head.contains("content-length: 0\r\n"));
    }

    #[test]
    fn targets_hyper_would_refuse_are_refused() {
        assert!(plain_target(b"/a/b?c=d&e=%20"));
        assert!(!plain_target(b"/a#frag"));
        assert!(!plain_target(b"/a b"));
        let out = outgoing("/a#frag", &[]);
        assert!(text(&out, None, BodySize::Empty)
            .0
            .starts_with("POST /a HTTP/1.1"));
        let bad = outgoing("/a b", &[]);
        assert!(head(&mut Vec::new(), &bad, None, BodySize::Empty).is_err());
        let invalid_host = outgoing("/", &[("host", "client")]);
        let (head, _) = text(&invalid_host, Some("bad\nhost"), BodySize::Empty);
        assert!(head.contains("host: client\r\n"), "{head}");
    }

    #[test]
    fn numbers() {
        assert_eq!(itoa(0, &mut [0; 20]), b"0");
        assert_eq!(itoa(1024, &mut [0; 20]), b"1024");
        assert_eq!(
            itoa(u64::MAX, &mut [0; 20]),
            u64::MAX.to_string().as_bytes()
        );
        assert_eq!(chunk_line(255, &mut [0; 18]), b"ff\r\n");
        assert_eq!(parse_u64(b"0012"), Some(12));
        assert_eq!(parse_u64(b"1a"), None);
        assert_eq!(parse_u64(b""), None);
    }
}
