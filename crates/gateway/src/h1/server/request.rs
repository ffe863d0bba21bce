//! Reading a request head: parsed once, in place, from the connection's read buffer (httparse),
//! judged by nginx's rules ([`crate::head::judge`]); its header values become slices of the
//! head's bytes, put into a header map the connection reuses from request to request.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};

use crate::h1::decode::Span;
use crate::head::{self, HeadLimits, Verdict};

/// Header slots kept on the stack when parsing a head (more only when the limit is higher).
const STACK_HEADERS: usize = 128;

/// A request head read whole.
pub(crate) struct RequestHead {
    pub parts: http::request::Parts,
    pub verdict: Verdict,
    /// Bytes of the head as read: request line, headers and the empty line.
    pub bytes: u64,
}

/// What the bytes read so far hold (once per request: not boxed, which would cost an
/// allocation).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    Head(RequestHead),
    /// A head nginx would refuse, with its status.
    Refused(StatusCode),
}

/// Parses the request heads of one connection.
pub(crate) struct HeadReader {
    limits: HeadLimits,
    /// Bytes of the current head already looked at for its end.
    searched: usize,
    /// Scratch space: where the headers of the current head sit.
    spans: Vec<Span>,
}

impl HeadReader {
    pub fn new(limits: HeadLimits) -> HeadReader {
        HeadReader {
            limits,
            searched: 0,
            spans: Vec::new(),
        }
    }

    /// Looks for a complete head at the start of `buf`, removing it from `buf` when found.
    /// `headers` (an empty map, when there is one) becomes the request's header map.
    pub fn parse(&mut self, buf: &mut BytesMut, headers: &mut Option<HeaderMap>) -> Parsed {
        if buf.is_empty() {
            return Parsed::Partial;
        }
        // A head usually comes whole in one read: parse at once. After a partial one, parse
        // again only once the new bytes may hold its end.
        if self.searched > 0 {
            let from = self.searched.saturating_sub(3);
            let ended = buf[from..].windows(2).any(|w| w == b"\n\n" || w == b"\n\r");
            self.searched = buf.len();
            if !ended {
                return self.partial(buf);
            }
        }
        let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        let mut heap = Vec::new();
        let slots = match self.limits.max_headers {
            n if n <= STACK_HEADERS => &mut stack[..n],
            n => {
                heap.resize_with(n, MaybeUninit::uninit);
                &mut heap[..]
            }
        };
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, slots) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                self.searched = buf.len();
                return self.partial(buf);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Parsed::Refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            }
            Err(_) => return Parsed::Refused(StatusCode::BAD_REQUEST),
        };
        if len > self.limits.max_head {
            return Parsed::Refused(self.too_large(buf));
        }
        let verdict = match head::judge(&req) {
            Ok(v) => v,
            Err(status) => return Parsed::Refused(status),
        };
        let base = buf.as_ptr() as usize;
        let at = |s: &[u8]| s.as_ptr() as usize - base;
        let method = match Method::from_bytes(req.method.unwrap_or("").as_bytes()) {
            Ok(m) => m,
            Err(_) => return Parsed::Refused(StatusCode::BAD_REQUEST),
        };
        let version = match req.version {
            Some(1) => Version::HTTP_11,
            _ => Version::HTTP_10,
        };
        let path = req.path.unwrap_or("/").as_bytes();
        let path = (at(path), path.len());
        self.spans.clear();
        for h in req.headers.iter() {
            self.spans.push([
                at(h.name.as_bytes()) as u32,
                h.name.len() as u32,
                at(h.value) as u32,
                h.value.len() as u32,
            ]);
        }
        let raw = buf.split_to(len).freeze();
        self.searched = 0;
        let Ok(uri) = Uri::from_maybe_shared(raw.slice(path.0..path.0 + path.1)) else {
            return Parsed::Refused(StatusCode::BAD_REQUEST);
        };
        // Kept empty by the connection (the last response's map, cleared).
        let mut map = headers.take().unwrap_or_default();
        map.reserve(self.spans.len());
        for &[name_at, name_len, value_at, value_len] in &self.spans {
            let name = &raw[name_at as usize..(name_at + name_len) as usize];
            let value = raw.slice(value_at as usize..(value_at + value_len) as usize);
            // httparse admits no name or value these would refuse.
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_maybe_shared(value),
            ) else {
                return Parsed::Refused(StatusCode::BAD_REQUEST);
            };
            map.append(name, value);
        }
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.version = version;
        parts.headers = map;
        Parsed::Head(RequestHead {
            parts,
            verdict,
            bytes: len as u64,
        })
    }

    /// An incomplete head: refused once it is over the limit.
    fn partial(&self, buf: &[u8]) -> Parsed {
        if buf.len() > self.limits.max_head {
            return Parsed::Refused(self.too_large(buf));
        }
        Parsed::Partial
    }

    fn too_large(&self, buf: &[u8]) -> StatusCode {
        head::too_large(buf.iter().position(|b| *b == b'\n'), self.limits.max_head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> HeadReader {
        HeadReader::new(HeadLimits {
            max_head: 256,
            max_headers: 8,
        })
    }

    fn parse(text: &[u8]) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(text);
        let parsed = reader().parse(&mut buf, &mut None);
        (parsed, buf)
    }

    #[test]
    fn a_head_becomes_request_parts_and_the_rest_stays() {
        let (parsed, rest) = parse(
            b"POST /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\n\r\nabc",
        );
        let Parsed::Head(head) = parsed else {
            panic!("a head")
        };
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri, "/a?b=c");
        assert_eq!(head.parts.version, Version::HTTP_11);
        assert_eq!(head.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(head.parts.headers["host"], "h");
        assert_eq!(head.verdict.body, head::BodyFraming::Length(3));
        assert!(head.verdict.keep_alive);
        assert_eq!(&rest[..], b"abc");
    }

    #[test]
    fn connection_and_expect_are_read() {
        let (Parsed::Head(head), _) = parse(b"GET / HTTP/1.0\r\n\r\n") else {
            panic!("a head")
        };
        assert!(!head.verdict.keep_alive);
        assert_eq!(head.parts.version, Version::HTTP_10);
        let (Parsed::Head(head), _) = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        else {
            panic!("a head")
        };
        assert!(head.verdict.keep_alive);
        let (Parsed::Head(head), _) = parse(
            b"PUT / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
        ) else {
            panic!("a head")
        };
        assert!(!head.verdict.keep_alive);
        assert!(head.verdict.expect_continue);
        assert_eq!(head.verdict.body, head::BodyFraming::Chunked);
    }

    #[test]
    fn heads_arriving_in_pieces_are_parsed_once_whole() {
        let text = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\nGET";
        let mut r = reader();
        let mut buf = BytesMut::new();
        let mut map = None;
        for (i, b) in text.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            match r.parse(&mut buf, &mut map) {
                Parsed::Partial => assert!(i < 27, "complete at {i}"),
                Parsed::Head(head) => {
                    assert_eq!(i, 27);
                    assert_eq!(head.parts.uri, "/x");
                    break;
                }
                Parsed::Refused(s) => panic!("refused {s}"),
            }
        }
    }

    #[test]
    fn refusals_carry_nginx_statuses() {
        let status = |text: &[u8]| match parse(text).0 {
            Parsed::Refused(s) => s.as_u16(),
            Parsed::Head(_) => 200,
            Parsed::Partial => 0,
        };
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GARBAGE\r\n\r\n"), 400);
        assert_eq!(status(b"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n"), 405);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            400
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(300));
        assert_eq!(status(long.as_bytes()), 414);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "b".repeat(300));
        assert_eq!(status(big.as_bytes()), 431);
        let many: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n").as_bytes()),
            431
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: h\r\n"), 0);
    }
}
