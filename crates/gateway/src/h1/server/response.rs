//! Writing a response: the status line and headers straight into the connection's write buffer,
//! the body framed as the request and the response allow (RFC 9112 §6) — none for `HEAD`, 1xx,
//! 204 and 304 (a `HEAD` answer keeps its `Content-Length`), `Content-Length` when the length is
//! declared or known, chunked when it is not (HTTP/1.1), delimited by closing the connection for
//! HTTP/1.0. Trailers are not sent on HTTP/1.x.

use std::time::Instant;

use http::header::{self, HeaderName};
use http::{StatusCode, Version};
use hyper::body::SizeHint;

use super::date;

/// How a response body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body, whatever the response's body holds.
    None,
    /// Exactly this many bytes.
    Length(u64),
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a length).
    Close,
}

/// What the request decided about its response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asked {
    /// The request's version; the status line uses it.
    pub version: Version,
    /// A `HEAD` request.
    pub head_request: bool,
    /// The client and the connection allow another request after this one.
    pub keep_alive: bool,
}

/// Headers written after those of the response's map, replacing any of the same name there:
/// limit-count's quota headers.
pub(crate) type Late = portico_snapshot::runtime::limit_count::QuotaNote;

/// Writes the head of a response (`parts`, whose body is sized as `hint`, and `late` headers)
/// into `dst`, with `server` as its `Server` header in place of any in `parts`. Returns the
/// body's framing and whether the connection stays open after it.
pub(crate) fn head(
    dst: &mut Vec<u8>,
    parts: &http::response::Parts,
    hint: &SizeHint,
    asked: Asked,
    now: Instant,
    late: Option<&Late>,
    server: &http::HeaderValue,
) -> (Framing, bool) {
    let status = parts.status;
    dst.reserve(128 + parts.headers.len() * 48);
    dst.extend_from_slice(match asked.version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    match parts.extensions.get::<hyper::ext::ReasonPhrase>() {
        Some(reason) => dst.extend_from_slice(reason.as_bytes()),
        None => dst.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes()),
    }
    dst.extend_from_slice(b"\r\n");

    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // 204 and 1xx carry no framing headers at all; 304 and HEAD keep a declared length.
    let drop_length = status.is_informational() || status == StatusCode::NO_CONTENT;
    let mut declared = None;
    let mut close = false;
    let mut has_connection = false;
    let mut has_date = false;
    for (name, value) in &parts.headers {
        if *name == header::TRANSFER_ENCODING
            || *name == header::SERVER
            || late.is_some_and(|l| l.has(name))
        {
            continue;
        }
        if *name == header::CONTENT_LENGTH {
            match super::super::encode::parse_u64(value.as_bytes()) {
                Some(n) if !drop_length && declared.is_none() => declared = Some(n),
                _ => continue,
            }
        } else if *name == header::CONNECTION {
            has_connection = true;
            close |= value
                .as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if *name == header::DATE {
            has_date = true;
        }
        put(dst, name, value.as_bytes());
    }
    put(dst, &header::SERVER, server.as_bytes());
    if let Some(late) = late {
        late.each(|name, value| put(dst, name, value));
    }
    let framing = if bodiless || asked.head_request {
        Framing::None
    } else if let Some(n) = declared {
        Framing::Length(n)
    } else if let Some(n) = hint.exact() {
        put(dst, &header::CONTENT_LENGTH, itoa(n, &mut [0; 20]));
        Framing::Length(n)
    } else if asked.version == Version::HTTP_11 {
        put(dst, &header::TRANSFER_ENCODING, b"chunked");
        Framing::Chunked
    } else {
        Framing::Close
    };
    let keep_alive = asked.keep_alive && !close && framing != Framing::Close;
    if !has_connection {
        if !keep_alive {
            put(dst, &header::CONNECTION, b"close");
        } else if asked.version == Version::HTTP_10 {
            put(dst, &header::CONNECTION, b"keep-alive");
        }
    }
    if !has_date {
        dst.extend_from_slice(b"date: ");
        date::append(dst, now);
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
    (framing, keep_alive)
}

fn put(dst: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    dst.extend_from_slice(name.as_str().as_bytes());
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value);
    dst.extend_from_slice(b"\r\n");
}

/// The decimal digits of `n`, written at the end of `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
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

/// Appends the size line of a chunk of `len` bytes.
pub(crate) fn chunk_size(dst: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&buf[i..]);
    dst.extend_from_slice(b"\r\n");
}

/// What ends a chunked body (no trailers on HTTP/1.x).
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Response};

    const HTTP11: Asked = Asked {
        version: Version::HTTP_11,
        head_request: false,
        keep_alive: true,
    };

    fn encode(resp: Response<()>, hint: SizeHint, asked: Asked) -> (String, Framing, bool) {
        let (parts, ()) = resp.into_parts();
        let mut dst = Vec::new();
        let (framing, keep) = head(
            &mut dst,
            &parts,
            &hint,
            asked,
            Instant::now(),
            None,
            &http::HeaderValue::from_static("Portico"),
        );
        let text = String::from_utf8(dst).unwrap();
        // Every head has the gateway's `Server` (see `the_server_header_replaces_the_responses`).
        assert_eq!(text.matches("server: Portico\r\n").count(), 1, "{text}");
        let text = text.replacen("server: Portico\r\n", "", 1);
        // The date is the only part that changes.
        let at = text.find("date: ").expect("a date header");
        let text = format!("{}{}", &text[..at + 6], &text[at + 6 + date::LEN..]);
        (text, framing, keep)
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut resp = Response::new(());
        *resp.status_mut() = StatusCode::from_u16(status).unwrap();
        for (n, v) in headers {
            resp.headers_mut().append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        resp
    }

    #[test]
    fn the_server_header_replaces_the_responses() {
        let resp = response(
            200,
            &[("server", "nginx/1.22.1"), ("x-a", "1"), ("Server", "b")],
        );
        let (parts, ()) = resp.into_parts();
        let mut dst = Vec::new();
        let server = HeaderValue::from_static("APISIX/3.11.0");
        head(
            &mut dst,
            &parts,
            &SizeHint::with_exact(0),
            HTTP11,
            Instant::now(),
            None,
            &server,
        );
        let text = String::from_utf8(dst).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\nserver: APISIX/3.11.0\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("server").count(), 1, "{text}");
    }

    #[test]
    fn a_declared_length_is_kept() {
        let (text, framing, keep) = encode(
            response(200, &[("content-length", "5"), ("x-a", "1")]),
            SizeHint::default(),
            HTTP11,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\ndate: \r\n\r\n"
        );
        assert_eq!((framing, keep), (Framing::Length(5), true));
    }

    #[test]
    fn a_known_size_becomes_the_length() {
        let (text, framing, _) = encode(response(404, &[]), SizeHint::with_exact(12), HTTP11);
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\ndate: \r\n\r\n"
        );
        assert_eq!(framing, Framing::Length(12));
    }

    #[test]
    fn an_unknown_size_is_chunked_on_http11_and_closes_on_http10() {
        let (text, framing, keep) = encode(
            response(200, &[("transfer-encoding", "gzip, chunked")]),
            SizeHint::default(),
            HTTP11,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: \r\n\r\n"
        );
        assert_eq!((framing, keep), (Framing::Chunked, true));
        let http10 = Asked {
            version: Version::HTTP_10,
            ..HTTP11
        };
        let (text, framing, keep) = encode(response(200, &[]), SizeHint::default(), http10);
        assert_eq!(
            text,
            "HTTP/1.0 200 OK\r\nconnection: close\r\ndate: \r\n\r\n"
        );
        assert_eq!((framing, keep), (Framing::Close, false));
        let (text, framing, keep) = encode(response(200, &[]), SizeHint::with_exact(0), http10);
        assert_eq!(
            text,
            "HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\ndate: \r\n\r\n"
        );
        assert_eq!((framing, keep), (Framing::Length(0), true));
    }

    #[test]
    fn bodiless_answers() {
        let head_request = Asked {
            head_request: true,
            ..HTTP11
        };
        let (text, framing, _) = encode(
            response(200, &[("content-length", "99")]),
            SizeHint::default(),
            head_request,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ncontent-length: 99\r\ndate: \r\n\r\n"
        );
        assert_eq!(framing, Framing::None);
        let (text, framing, _) = encode(
            response(204, &[("content-length", "0")]),
            SizeHint::with_exact(0),
            HTTP11,
        );
        assert_eq!(text, "HTTP/1.1 204 No Content\r\ndate: \r\n\r\n");
        assert_eq!(framing, Framing::None);
        let (text, framing, _) = encode(
            response(304, &[("content-length", "7")]),
            SizeHint::default(),
            HTTP11,
        );
        assert_eq!(
            text,
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\ndate: \r\n\r\n"
        );
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn closing_and_the_upstream_date() {
        let asked = Asked {
            keep_alive: false,
            ..HTTP11
        };
        let (text, _, keep) = encode(
            response(200, &[("date", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            SizeHint::with_exact(0),
            asked,
        );
        assert!(!keep);
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert_eq!(text.matches("date: ").count(), 1, "{text}");
        let (_, _, keep) = encode(
            response(400, &[("connection", "close")]),
            SizeHint::with_exact(0),
            HTTP11,
        );
        assert!(!keep);
    }

    #[test]
    fn chunk_sizes_are_hex() {
        let mut dst = Vec::new();
        chunk_size(&mut dst, 0x1a2f);
        chunk_size(&mut dst, 1);
        assert_eq!(dst, b"1a2f\r\n1\r\n");
    }
}
