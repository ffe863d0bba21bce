//! Reading an upstream response: the head parsed in place from the connection's read buffer
//! (header values are slices of it, not copies), then the body by its framing — the rules of
//! RFC 9112 §6.3 as hyper's client applied them.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

/// Headers per response head (hyper's default too).
pub const MAX_HEADERS: usize = 100;

/// Largest response head; a larger one is the upstream's fault (502).
pub const MAX_HEAD: usize = 64 * 1024;

/// Room left in a response's header map beyond its headers: once the response is written, hyper
/// keeps the map for the connection's next request head, which then takes the forwarded headers
/// without growing.
const SPARE_HEADERS: usize = 8;

/// Largest chunk-size line or trailer section.
const MAX_CHUNK_META: usize = 16 * 1024;

/// A parsed response head. Its headers stay in the head's bytes until [`Head::headers_into`]
/// puts them into a header map (one the caller reuses).
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    /// The reason phrase, when it is not the status's usual one.
    pub reason: Option<Bytes>,
    /// The head as received; header values are slices of it.
    raw: Bytes,
    pub body: Decoder,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
    /// Its `Connection` header names other headers as hop-by-hop: those (and that `Connection`
    /// header) are still among its headers; the other hop-by-hop headers are left out, unless
    /// it is a 101.
    pub names_hop_headers: bool,
}

/// Why a response (head or body) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid response head: {0}")]
    Head(httparse::Error),
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid status code")]
    Status,
    #[error("invalid Content-Length in the response")]
    Length,
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    CodingOn10,
    #[error("invalid chunked body")]
    Chunk,
    #[error("upstream closed the connection before the body ended")]
    Truncated,
}

/// Where a header's name and value sit in the head: name offset, name length, value offset,
/// value length.
pub type Span = [u32; 4];

/// Parses a response head at the start of `buf`, removing it from `buf`. `Ok(None)`: the head
/// is not complete yet. Informational heads (1xx but 101) come back too; the caller skips them.
/// `spans` is scratch space kept by the connection.
pub fn head(
    buf: &mut BytesMut,
    spans: &mut Vec<Span>,
    head_request: bool,
) -> Result<Option<Head>, DecodeError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(DecodeError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(DecodeError::Head(e)),
    };
    if len > MAX_HEAD {
        return Err(DecodeError::HeadTooLarge);
    }
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(DecodeError::Status)?;
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    // Offsets into the head (at most MAX_HEAD bytes), so that the values can become slices of
    // it once it is frozen. The headers that decide the framing are read on the way.
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
    let reason = parsed
        .reason
        .filter(|r| Some(*r) != status.canonical_reason())
        .map(|r| (at(r.as_bytes()), r.len() as u32));
    let mut framing = Framing::default();
    spans.clear();
    // A switch of protocols keeps `Connection`/`Upgrade` for the client's handshake.
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    for h in parsed.headers.iter() {
        if framing.note(h.name.as_bytes(), h.value) && !switching {
            continue;
        }
        spans.push([
            at(h.name.as_bytes()),
            h.name.len() as u32,
            at(h.value),
            h.value.len() as u32,
        ]);
    }
    let body = framing.decoder(status, version, head_request)?;
    let keep_alive = body != Decoder::Close && framing.keep_alive(version);
    let names_hop_headers = framing.names_others;
    let raw = buf.split_to(len).freeze();
    let reason = reason.map(|(at, n)| raw.slice(at as usize..(at + n) as usize));
    Ok(Some(Head {
        status,
        version,
        reason,
        raw,
        body,
        keep_alive,
        names_hop_headers,
    }))
}

impl Head {
    /// Appends the headers of this head to `map`; `spans` are those [`head`] left.
    pub fn headers_into(&self, spans: &[Span], map: &mut HeaderMap) {
        map.reserve(spans.len() + SPARE_HEADERS);
        for &[name_at, name_len, value_at, value_len] in spans {
            let name = &self.raw[name_at as usize..(name_at + name_len) as usize];
            let value = self
                .raw
                .slice(value_at as usize..(value_at + value_len) as usize);
            // httparse admits no name or value these would refuse.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_maybe_shared(value),
            ) {
                map.append(name, value);
            }
        }
    }
}

/// What the headers of a response head say about its framing and its connection.
#[derive(Default)]
struct Framing<'h> {
    /// The last `Transfer-Encoding` value.
    coding: Option<&'h [u8]>,
    length: Option<u64>,
    /// A `Content-Length` that is not one number (an error unless the body is empty anyway).
    bad_length: bool,
    /// `Connection: close` / `Connection: keep-alive` seen.
    close: bool,
    keep: bool,
    /// `Connection` lists other names.
    names_others: bool,
}

impl<'h> Framing<'h> {
    /// Notes what header `name: value` says; whether it is hop-by-hop (one of
    /// [`forward::HOP_BY_HOP`](crate::forward)).
    fn note(&mut self, name: &[u8], value: &'h [u8]) -> bool {
        if name.eq_ignore_ascii_case(b"connection") {
            let mut names_others = false;
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep = true;
                } else if !token.is_empty() && !crate::forward::is_hop_by_hop(token) {
                    names_others = true;
                }
            }
            self.names_others |= names_others;
            // Kept while it names others: the names are removed once the headers are in a map.
            return !names_others;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.coding = Some(value);
            return true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            for part in value.split(|b| *b == b',') {
                match super::encode::parse_u64(part.trim_ascii()) {
                    Some(n) if self.length.is_none_or(|l| l == n) => self.length = Some(n),
                    _ => self.bad_length = true,
                }
            }
            return false;
        }
        crate::forward::is_hop_by_hop(name)
    }

    /// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told to keep.
    fn keep_alive(&self, version: Version) -> bool {
        !self.close && (version == Version::HTTP_11 || self.keep)
    }

    /// The body's framing (RFC 9112 §6.3).
    fn decoder(
        &self,
        status: StatusCode,
        version: Version,
        head_request: bool,
    ) -> Result<Decoder, DecodeError> {
        match status.as_u16() {
            101 | 100..=199 | 204 | 304 => return Ok(Decoder::Length(0)),
            _ if head_request => return Ok(Decoder::Length(0)),
            _ => {}
        }
        if let Some(coding) = self.coding {
            if version == Version::HTTP_10 {
                return Err(DecodeError::CodingOn10);
            }
            let chunked = coding
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            return Ok(if chunked {
                Decoder::Chunked(Chunked::Size)
            } else {
                Decoder::Close
            });
        }
        if self.bad_length {
            return Err(DecodeError::Length);
        }
        Ok(self.length.map_or(Decoder::Close, Decoder::Length))
    }
}

/// Where a response body stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// This many bytes to go (0: the body is complete).
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes the connection.
    Close,
    /// Ended (the chunked or close-delimited body is complete).
    Done,
}

/// Position in a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes of the current chunk to go.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailers, or the final CRLF.
    Trailers,
}

/// One step of decoding a body from the bytes read so far.
#[derive(Debug)]
pub enum Step {
    /// More bytes are needed.
    More,
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body is complete.
    End,
}

impl Decoder {
    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        matches!(self, Decoder::Length(0) | Decoder::Done)
    }

    /// Bytes still to come, when the framing says.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }

    /// Takes what it can from `buf`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, DecodeError> {
        loop {
            match self {
                Decoder::Length(0) | Decoder::Done => return Ok(Step::End),
                Decoder::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let k = (*n).min(buf.len() as u64);
                    *n -= k;
                    return Ok(Step::Data(buf.split_to(k as usize).freeze()));
                }
                Decoder::Close => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                Decoder::Chunked(state) => match state {
                    Chunked::Size => match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            buf.advance(used);
                            *state = if size == 0 {
                                Chunked::Trailers
                            } else {
                                Chunked::Data(size)
                            };
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_META => {
                            return Err(DecodeError::Chunk)
                        }
                        Ok(httparse::Status::Partial) => return Ok(Step::More),
                        Err(_) => return Err(DecodeError::Chunk),
                    },
                    Chunked::Data(n) => {
                        if buf.is_empty() {
                            return Ok(Step::More);
                        }
                        let k = (*n).min(buf.len() as u64);
                        *n -= k;
                        let data = buf.split_to(k as usize).freeze();
                        if *n == 0 {
                            *state = Chunked::DataEnd;
                        }
                        return Ok(Step::Data(data));
                    }
                    Chunked::DataEnd => {
                        if buf.len() < 2 {
                            return Ok(Step::More);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(DecodeError::Chunk);
                        }
                        buf.advance(2);
                        *state = Chunked::Size;
                    }
                    Chunked::Trailers => {
                        if buf.len() < 2 {
                            return Ok(Step::More);
                        }
                        if &buf[..2] == b"\r\n" {
                            buf.advance(2);
                            *self = Decoder::Done;
                            return Ok(Step::End);
                        }
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            if buf.len() > MAX_CHUNK_META {
                                return Err(DecodeError::Chunk);
                            }
                            return Ok(Step::More);
                        };
                        let trailers = trailers(&buf[..end + 4])?;
                        buf.advance(end + 4);
                        *self = Decoder::Done;
                        return Ok(Step::Trailers(trailers));
                    }
                },
            }
        }
    }

    /// The upstream closed the connection: the end of a close-delimited body, an error for
    /// any other that is not complete.
    pub fn eof(&mut self) -> Result<Step, DecodeError> {
        match self {
            Decoder::Close | Decoder::Done | Decoder::Length(0) => {
                *self = Decoder::Done;
                Ok(Step::End)
            }
            _ => Err(DecodeError::Truncated),
        }
    }
}

fn trailers(section: &[u8]) -> Result<HeaderMap, DecodeError> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let (_, parsed) = match httparse::parse_headers(section, &mut slots) {
        Ok(httparse::Status::Complete(done)) => done,
        _ => return Err(DecodeError::Chunk),
    };
    let mut map = HeaderMap::with_capacity(parsed.len());
    for h in parsed {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| DecodeError::Chunk)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| DecodeError::Chunk)?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8], head_request: bool) -> (Head, HeaderMap, BytesMut) {
        let mut buf = BytesMut::from(text);
        let mut spans = Vec::new();
        let head = head(&mut buf, &mut spans, head_request).unwrap().unwrap();
        let mut headers = HeaderMap::new();
        head.headers_into(&spans, &mut headers);
        (head, headers, buf)
    }

    fn body(decoder: &mut Decoder, buf: &mut BytesMut) -> Result<(Vec<u8>, bool), DecodeError> {
        let mut out = Vec::new();
        loop {
            match decoder.step(buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::Trailers(_) => {}
                Step::End => return Ok((out, true)),
                Step::More => return Ok((out, false)),
            }
        }
    }

    #[test]
    fn a_length_delimited_response() {
        let (mut head, headers, mut rest) = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
            false,
        );
        assert_eq!(head.status, 200);
        assert!(head.keep_alive);
        assert!(head.reason.is_none());
        assert_eq!(headers.get_all("x-a").iter().count(), 2);
        assert_eq!(headers["content-length"], "5");
        assert_eq!(
            body(&mut head.body, &mut rest).unwrap(),
            (b"hello".to_vec(), true)
        );
    }

    #[test]
    fn hop_by_hop_headers_are_left_out_as_the_head_is_read() {
        let (head, headers, _) = parse(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
              Transfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\n\
              Proxy-Connection: close\r\nX-Kept: 1\r\n\r\n0\r\n\r\n",
            false,
        );
        assert!(head.keep_alive && !head.names_hop_headers);
        assert!(matches!(head.body, Decoder::Chunked(_)));
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert_eq!(headers["x-kept"], "1");
        // A `Connection` that names other headers stays, for them to be removed by name.
        let (head, headers, _) = parse(
            b"HTTP/1.1 200 OK\r\nConnection: close, X-Private\r\nX-Private: 1\r\n\
              Content-Length: 0\r\n\r\n",
            false,
        );
        assert!(!head.keep_alive && head.names_hop_headers);
        assert!(headers.contains_key("connection") && headers.contains_key("x-private"));
        // A switch of protocols keeps them all.
        let (_, headers, _) = parse(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            false,
        );
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "Upgrade");
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let (head, _, _) = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        assert!(!head.keep_alive);
        let (head, _, _) = parse(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(head.keep_alive);
        let (head, _, _) = parse(
            b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(!head.keep_alive);
        let (head, _, _) = parse(b"HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(head.body, Decoder::Close);
        assert!(!head.keep_alive);
    }

    #[test]
    fn bodiless_responses() {
        let (head, _, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert!(head.body.is_done());
        let (head, _, _) = parse(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            false,
        );
        assert!(head.body.is_done());
        let (head, _, _) = parse(
            b"HTTP/1.1 299 Fine Indeed\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert_eq!(head.reason.as_deref(), Some(&b"Fine Indeed"[..]));
    }

    #[test]
    fn chunked_bodies_with_trailers() {
        let (mut head, _, mut rest) = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nx-sum: 7\r\n\r\nNEXT",
            false,
        );
        let mut trailers = None;
        let mut data = Vec::new();
        loop {
            match head.body.step(&mut rest).unwrap() {
                Step::Data(d) => data.extend_from_slice(&d),
                Step::Trailers(t) => trailers = Some(t),
                Step::End => break,
                Step::More => panic!("complete body"),
            }
        }
        assert_eq!(data, b"hello!");
        assert_eq!(trailers.unwrap()["x-sum"], "7");
        assert_eq!(&rest[..], b"NEXT");
    }

    #[test]
    fn chunked_bodies_arrive_in_pieces() {
        let text = b"6\r\nstream\r\n0\r\n\r\n";
        let mut decoder = Decoder::Chunked(Chunked::Size);
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        for (i, b) in text.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let (d, done) = body(&mut decoder, &mut buf).unwrap();
            data.extend(d);
            assert_eq!(done, i == text.len() - 1);
        }
        assert_eq!(data, b"stream");
    }

    #[test]
    fn bad_framing_is_refused() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..],
        );
        assert!(head(&mut buf, &mut Vec::new(), false).is_err());
        let mut buf = BytesMut::from(&b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
        assert!(head(&mut buf, &mut Vec::new(), false).is_err());
        let mut decoder = Decoder::Chunked(Chunked::Size);
        assert!(decoder.step(&mut BytesMut::from(&b"zz\r\n"[..])).is_err());
        let mut decoder = Decoder::Length(3);
        assert!(decoder.eof().is_err());
        let mut decoder = Decoder::Close;
        assert!(matches!(decoder.eof(), Ok(Step::End)));
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        assert!(head(&mut buf, &mut Vec::new(), false).unwrap().is_none());
    }
}
