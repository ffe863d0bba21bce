//! Judging HTTP/1.x request heads the way nginx does.
//!
//! hyper is lenient where nginx refuses: it takes `Content-Length` together with
//! `Transfer-Encoding` (dropping the length), takes repeated equal `Content-Length`s, and answers
//! over-long heads with a bare 431 whatever the request line's length. The gateway's own
//! HTTP/1.x server ([`crate::h1::server`]) parses each head once and judges it here, refusing
//! such heads with nginx's statuses: 400 (malformed, ambiguous framing, missing or repeated
//! `Host`), 405 (`CONNECT`, `TRACE`), 414 (request line over the head limit), 431 (head over the
//! limit, too many headers), 501 (a transfer coding other than `chunked`).

use http::StatusCode;

/// The HTTP/2 connection preface (h2c prior knowledge, or h2 after ALPN).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Limits of one request head.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Bytes of the request line and headers together.
    pub max_head: usize,
    /// Header lines per request.
    pub max_headers: usize,
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

#[cfg(test)]
mod tests;
