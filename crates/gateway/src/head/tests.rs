//! The scanner alone: verdicts on heads, and body framing followed to the next head.

use super::*;

fn scanner() -> Scanner {
    Scanner::new(HeadLimits {
        max_head: 256,
        max_headers: 8,
    })
}

fn judge(head: &str) -> HeadStep {
    scanner().head(head.as_bytes())
}

#[test]
fn accepts_ordinary_heads_whole() {
    let head = "GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n";
    assert_eq!(judge(head), HeadStep::Released(head.len()));
    let lf_only = "GET / HTTP/1.1\nHost: h\n\n";
    assert_eq!(judge(lf_only), HeadStep::Released(lf_only.len()));
    assert_eq!(judge("GET / HTTP/1.0\r\n\r\n"), HeadStep::Released(18));
    let absolute = "GET http://h/x HTTP/1.1\r\n\r\n";
    assert_eq!(judge(absolute), HeadStep::Released(absolute.len()));
}

#[test]
fn waits_for_the_end_of_the_head() {
    let mut s = scanner();
    assert_eq!(s.head(b"GET / HTTP/1.1\r\nHo"), HeadStep::NeedMore);
    assert_eq!(s.head(b"GET / HTTP/1.1\r\nHost: h\r\n"), HeadStep::NeedMore);
    assert_eq!(
        s.head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        HeadStep::Released(27)
    );
    assert_eq!(s.state(), State::Head);
}

#[test]
fn refuses_ambiguous_framing() {
    let bad = HeadStep::Reject(StatusCode::BAD_REQUEST);
    for framing in [
        "Content-Length: 3\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 3",
        "Content-Length: 3\r\nContent-Length: 3",
        "Content-Length: 3, 3",
        "Content-Length: +3",
        "Content-Length: ",
        "Content-Length: 99999999999999999999999",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ] {
        assert_eq!(
            judge(&format!("POST / HTTP/1.1\r\nHost: h\r\n{framing}\r\n\r\n")),
            bad,
            "{framing}"
        );
    }
    assert_eq!(
        judge("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        bad
    );
    assert_eq!(
        judge("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        HeadStep::Reject(StatusCode::NOT_IMPLEMENTED)
    );
}

#[test]
fn refuses_what_nginx_refuses() {
    let bad = HeadStep::Reject(StatusCode::BAD_REQUEST);
    assert_eq!(
        judge("GET / HTTP/1.1\r\n\r\n"),
        bad,
        "HTTP/1.1 without Host"
    );
    assert_eq!(judge("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), bad);
    assert_eq!(
        judge("GET / HTTP/1.1\r\nHost: a\r\nBad Name: b\r\n\r\n"),
        bad
    );
    assert_eq!(judge("NOT HTTP\r\n\r\n"), bad);
    let not_allowed = HeadStep::Reject(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(judge("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n"), not_allowed);
    assert_eq!(
        judge("CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n"),
        not_allowed
    );
}

#[test]
fn over_long_request_lines_are_414_and_big_heads_431() {
    let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(300));
    assert_eq!(
        judge(&long_line),
        HeadStep::Reject(StatusCode::URI_TOO_LONG)
    );
    // Still no line break at all, past the limit.
    assert_eq!(
        judge(&"a".repeat(300)),
        HeadStep::Reject(StatusCode::URI_TOO_LONG)
    );
    let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n", "b".repeat(300));
    let too_large = HeadStep::Reject(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(judge(&big), too_large);
    let many: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        judge(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n")),
        too_large
    );
}

#[test]
fn follows_a_sized_body_to_the_next_head() {
    let mut s = scanner();
    let head = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(s.head(head.as_bytes()), HeadStep::Released(head.len()));
    assert_eq!(s.state(), State::Length(5));
    assert_eq!(s.pass(b"abc"), 3);
    assert_eq!(s.pass(b"deGET"), 2);
    assert_eq!(s.state(), State::Head);
}

#[test]
fn follows_chunked_framing_with_extensions_and_trailers() {
    let mut s = scanner();
    s.head(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    let body = b"3;x=y\r\nabc\r\nA \r\n0123456789\r\n0\r\nT: 1\r\n\r\n";
    // Byte by byte, the end is found at the same place.
    for b in &body[..body.len() - 1] {
        assert_eq!(s.pass(&[*b]), 1);
        assert!(matches!(s.state(), State::Chunked(_)), "{:?}", s.state());
    }
    assert_eq!(s.pass(b"\nG"), 1);
    assert_eq!(s.state(), State::Head);
}

#[test]
fn leaves_broken_chunk_syntax_to_hyper() {
    let mut s = scanner();
    s.head(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(s.pass(b"zz\r\n"), 4);
    assert_eq!(s.state(), State::Passthrough);
}

#[test]
fn lets_http2_through_and_decides_upgrades_by_the_answer() {
    let mut s = scanner();
    assert_eq!(s.head(&H2_PREFACE[..10]), HeadStep::NeedMore);
    assert_eq!(s.head(H2_PREFACE), HeadStep::Released(0));
    assert_eq!(s.state(), State::Passthrough);

    let upgrade = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n";
    let mut s = scanner();
    s.head(upgrade);
    assert_eq!(s.state(), State::AwaitUpgrade);
    assert!(!s.response_started(b"100"));
    assert!(s.response_started(b"101"));
    assert_eq!(s.state(), State::Passthrough);
    let mut s = scanner();
    s.head(upgrade);
    assert!(s.response_started(b"200"));
    assert_eq!(s.state(), State::Head);
}
