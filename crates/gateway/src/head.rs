//! Judging HTTP/1.x request heads the way nginx does, before hyper parses them, and following
//! body framing (`Content-Length`, chunked) to know where the next head starts.
//!
//! hyper is lenient where nginx refuses: it takes `Content-Length` together with
//! `Transfer-Encoding` (dropping the length), takes repeated equal `Content-Length`s, and answers
//! over-long heads with a bare 431 whatever the request line's length. [`Scanner`] sees every
//! byte of a client connection first ([`crate::guard`]) and refuses such heads with nginx's
//! statuses: 400 (malformed, ambiguous framing, missing or repeated `Host`), 405 (`CONNECT`,
//! `TRACE`), 414 (request line over the head limit), 431 (head over the limit, too many
//! headers), 501 (a transfer coding other than `chunked`). Where it is unsure — HTTP/2,
//! upgraded connections, chunk syntax hyper will refuse anyway — it stops judging and lets bytes
//! pass: hyper's own parser stays the last word, so no request is ever framed two ways.

use std::mem::MaybeUninit;

use http::StatusCode;

/// The HTTP/2 connection preface (h2c prior knowledge, or h2 after ALPN).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Header slots kept on the stack when parsing a head (more only when the limit is higher).
const STACK_HEADERS: usize = 128;

/// Limits of one request head.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Bytes of the request line and headers together.
    pub max_head: usize,
    /// Header lines per request.
    pub max_headers: usize,
}

/// Where the scanner is in the client's byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Connection start: an HTTP/2 preface or an HTTP/1.x head.
    Start,
    /// Reading a request head.
    Head,
    /// In a body with this many bytes to go.
    Length(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// An upgrade request went on; its response decides what the next bytes are.
    AwaitUpgrade,
    /// HTTP/2, an upgraded connection, or framing left to hyper: bytes pass unjudged.
    Passthrough,
    /// A head was refused; nothing more is read from the client.
    Rejected,
}

/// Position inside chunked framing (the grammar of hyper's decoder, so both agree on the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    Start,
    Size(u64),
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    EndCr,
    EndLf,
    Trailer,
    TrailerLf,
}

/// What became of the head bytes seen so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadStep {
    /// The head is not complete yet.
    NeedMore,
    /// The first `n` bytes are a complete, acceptable head (0: no head, the state moved on).
    Released(usize),
    /// The head is refused with this status.
    Reject(StatusCode),
}

/// Follows one client connection's HTTP/1.x stream.
#[derive(Debug)]
pub struct Scanner {
    state: State,
    limits: HeadLimits,
    upgrade_pending: bool,
    /// Bytes of the current head already searched for its end / its first line break.
    searched: usize,
    line_end: Option<usize>,
    /// Bytes of chunk extensions and trailers in the current body.
    extra: usize,
}

impl Scanner {
    pub fn new(limits: HeadLimits) -> Scanner {
        Scanner {
            state: State::Start,
            limits,
            upgrade_pending: false,
            searched: 0,
            line_end: None,
            extra: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Stops judging: every later byte is the client's refused request or beyond it.
    pub fn set_rejected(&mut self) {
        self.state = State::Rejected;
    }

    /// Whether an upgrade request went on and its response has not been seen yet.
    pub fn upgrade_pending(&self) -> bool {
        self.upgrade_pending
    }

    /// The gateway started a response with `status` (3 ASCII digits): after a pending upgrade,
    /// 101 turns the connection into a byte stream, any other final status back into HTTP.
    /// Returns whether the state changed.
    pub fn response_started(&mut self, status: &[u8]) -> bool {
        if !self.upgrade_pending || status.first() == Some(&b'1') && status != b"101" {
            return false;
        }
        self.upgrade_pending = false;
        if status == b"101" {
            self.state = State::Passthrough;
        } else if self.state == State::AwaitUpgrade {
            self.state = State::Head;
        }
        true
    }

    /// Looks at the bytes of the head being read (in [`State::Start`] or [`State::Head`]).
    pub fn head(&mut self, input: &[u8]) -> HeadStep {
        if self.state == State::Start {
            let n = input.len().min(H2_PREFACE.len());
            if input[..n] == H2_PREFACE[..n] {
                if n < H2_PREFACE.len() {
                    return HeadStep::NeedMore;
                }
                self.state = State::Passthrough;
                return HeadStep::Released(0);
            }
            self.state = State::Head;
        }
        let from = self.searched.saturating_sub(3);
        if self.line_end.is_none() {
            self.line_end = input[from..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|p| p + from);
        }
        let ended = input[from..]
            .windows(2)
            .any(|w| w == b"\n\n" || w == b"\n\r")
            && input.len() > 2;
        self.searched = input.len();
        if ended {
            // Header slots on the stack for the usual limit (no allocation, no initialisation).
            let mut stack =
                [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
            let mut heap = Vec::new();
            let slots = match self.limits.max_headers {
                n if n <= STACK_HEADERS => &mut stack[..n],
                n => {
                    heap.resize_with(n, MaybeUninit::uninit);
                    &mut heap[..]
                }
            };
            let mut req = httparse::Request::new(&mut []);
            match req.parse_with_uninit_headers(input, slots) {
                Ok(httparse::Status::Complete(len)) => {
                    if len > self.limits.max_head {
                        return HeadStep::Reject(self.too_large());
                    }
                    return match self.judge(&req) {
                        Ok(next) => {
                            self.state = next;
                            self.searched = 0;
                            self.line_end = None;
                            self.extra = 0;
                            HeadStep::Released(len)
                        }
                        Err(status) => HeadStep::Reject(status),
                    };
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return HeadStep::Reject(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
                }
                Err(_) => return HeadStep::Reject(StatusCode::BAD_REQUEST),
            }
        }
        if input.len() > self.limits.max_head {
            return HeadStep::Reject(self.too_large());
        }
        HeadStep::NeedMore
    }

    /// 414 when the request line alone is over the limit, else 431.
    fn too_large(&self) -> StatusCode {
        too_large(self.line_end, self.limits.max_head)
    }

    /// nginx's checks of a complete head; the state its body puts the stream in.
    fn judge(&mut self, req: &httparse::Request<'_, '_>) -> Result<State, StatusCode> {
        let verdict = judge(req)?;
        self.upgrade_pending = verdict.upgrade;
        Ok(match verdict.body {
            BodyFraming::Chunked => State::Chunked(Chunk::Start),
            BodyFraming::Length(length) => State::Length(length),
            BodyFraming::Empty => self.after_body(),
        })
    }

    fn after_body(&self) -> State {
        if self.upgrade_pending {
            State::AwaitUpgrade
        } else {
            State::Head
        }
    }

    /// How many leading bytes of `data` belong to the current body, or pass unjudged; when a
    /// body ends the state moves to the next head and the rest of `data` is left.
    pub fn pass(&mut self, data: &[u8]) -> usize {
        match self.state {
            State::Passthrough => data.len(),
            State::Length(n) => {
                let k = n.min(data.len() as u64);
                self.state = match n - k {
                    0 => self.after_body(),
                    rest => State::Length(rest),
                };
                k as usize
            }
            State::Chunked(c) => self.chunked(c, data),
            _ => 0,
        }
    }

    fn chunked(&mut self, mut chunk: Chunk, data: &[u8]) -> usize {
        let mut i = 0;
        while i < data.len() {
            if let Chunk::Data(n) = chunk {
                let k = n.min((data.len() - i) as u64);
                i += k as usize;
                chunk = if n == k {
                    Chunk::DataCr
                } else {
                    Chunk::Data(n - k)
                };
                continue;
            }
            let b = data[i];
            i += 1;
            let next = match (chunk, b) {
                (Chunk::Start, _) => hex(b).map(|d| Chunk::Size(u64::from(d))),
                (Chunk::Size(s), _) if hex(b).is_some() => s
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(hex(b).unwrap_or(0))))
                    .map(Chunk::Size),
                (Chunk::Size(s) | Chunk::SizeLws(s), b'\t' | b' ') => Some(Chunk::SizeLws(s)),
                (Chunk::Size(s) | Chunk::SizeLws(s), b';') => Some(Chunk::Extension(s)),
                (Chunk::Size(s) | Chunk::SizeLws(s) | Chunk::Extension(s), b'\r') => {
                    Some(Chunk::SizeLf(s))
                }
                (Chunk::Extension(_), b'\n') => None,
                (Chunk::Extension(s), _) => self.count_extra().then_some(Chunk::Extension(s)),
                (Chunk::SizeLf(0), b'\n') => Some(Chunk::EndCr),
                (Chunk::SizeLf(s), b'\n') => Some(Chunk::Data(s)),
                (Chunk::DataCr, b'\r') => Some(Chunk::DataLf),
                (Chunk::DataLf, b'\n') => Some(Chunk::Start),
                (Chunk::EndCr, b'\r') => Some(Chunk::EndLf),
                (Chunk::Trailer, b'\r') => Some(Chunk::TrailerLf),
                (Chunk::EndCr | Chunk::Trailer, _) => self.count_extra().then_some(Chunk::Trailer),
                (Chunk::TrailerLf, b'\n') => Some(Chunk::EndCr),
                (Chunk::EndLf, b'\n') => {
                    self.state = self.after_body();
                    return i;
                }
                _ => None,
            };
            match next {
                Some(c) => chunk = c,
                None => {
                    // hyper refuses this body at the same byte; leave the rest to it.
                    self.state = State::Passthrough;
                    return data.len();
                }
            }
        }
        self.state = State::Chunked(chunk);
        i
    }

    fn count_extra(&mut self) -> bool {
        self.extra += 1;
        self.extra <= self.limits.max_head
    }
}

/// 414 when the request line (ending at `line_end`, the offset of its line feed) alone is over
/// `max_head`, else 431.
pub fn too_large(line_end: Option<usize>, max_head: usize) -> StatusCode {
    match line_end {
        Some(end) if end <= max_head => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => StatusCode::URI_TOO_LONG,
    }
}

/// How a request body is framed, as its head declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    Empty,
    Length(u64),
    Chunked,
}

/// What nginx's checks of a complete head found, with what the connection needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub body: BodyFraming,
    /// An HTTP/1.1 request with `Upgrade`.
    pub upgrade: bool,
    /// The connection may carry another request after this one (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` (HTTP/1.1): the client waits for `100 Continue` before its body.
    pub expect_continue: bool,
}

/// nginx's checks of a complete head: 405 for `CONNECT` and `TRACE`; 400 for a missing (HTTP/1.1
/// without an absolute-form target) or repeated `Host`, a bad or repeated `Content-Length`, a
/// `Transfer-Encoding` with a length, repeated, or on HTTP/1.0; 501 for a transfer coding other
/// than `chunked`.
pub fn judge(req: &httparse::Request<'_, '_>) -> Result<Verdict, StatusCode> {
    let bad = StatusCode::BAD_REQUEST;
    let http11 = req.version == Some(1);
    let method = req.method.unwrap_or("");
    if method == "CONNECT" || method == "TRACE" {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    let target = req.path.unwrap_or("");
    // An origin-form target of plain characters needs no parsing (it has no authority).
    let absolute = match crate::h1::encode::plain_target(target.as_bytes()) {
        true => false,
        false => http::Uri::try_from(target)
            .map_err(|_| bad)?
            .authority()
            .is_some(),
    };
    let (mut hosts, mut lengths, mut codings) = (0, 0, 0);
    let (mut length, mut chunked, mut upgrade) = (0u64, false, false);
    let (mut close, mut keep, mut expect_continue) = (false, false, false);
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
                .ok_or(bad)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings += 1;
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = http11;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = http11 && h.value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    // An absolute-form target names the host itself.
    let needs_host = http11 && !absolute;
    if hosts > 1 || (needs_host && hosts == 0) || lengths > 1 || codings > 1 {
        return Err(bad);
    }
    if codings == 1 && (lengths > 0 || !http11) {
        return Err(bad);
    }
    if codings == 1 && !chunked {
        return Err(StatusCode::NOT_IMPLEMENTED);
    }
    let body = if chunked {
        BodyFraming::Chunked
    } else if length > 0 {
        BodyFraming::Length(length)
    } else {
        BodyFraming::Empty
    };
    Ok(Verdict {
        body,
        upgrade,
        keep_alive: !close && (http11 || keep),
        expect_continue: expect_continue && body != BodyFraming::Empty,
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
