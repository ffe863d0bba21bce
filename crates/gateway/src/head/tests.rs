//! The judging of complete heads (their parsing is [`crate::h1::server`]'s, tested there).

use super::*;

fn judge_text(head: &str) -> Result<Verdict, StatusCode> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head.as_bytes()) {
        Ok(httparse::Status::Complete(_)) => judge(&req),
        other => panic!("{head:?} does not parse: {other:?}"),
    }
}

fn body(head: &str) -> BodyFraming {
    judge_text(head).expect("accepted").body
}

#[test]
fn accepts_ordinary_heads() {
    assert_eq!(
        body("GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"),
        BodyFraming::Empty
    );
    assert_eq!(body("GET / HTTP/1.1\nHost: h\n\n"), BodyFraming::Empty);
    assert_eq!(body("GET / HTTP/1.0\r\n\r\n"), BodyFraming::Empty);
    // An absolute-form target names the host itself.
    assert_eq!(body("GET http://h/x HTTP/1.1\r\n\r\n"), BodyFraming::Empty);
    assert_eq!(
        body("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"),
        BodyFraming::Length(5)
    );
    assert_eq!(
        body("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
        BodyFraming::Empty
    );
    assert_eq!(
        body("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"),
        BodyFraming::Chunked
    );
}

#[test]
fn refuses_ambiguous_framing() {
    let bad = Err(StatusCode::BAD_REQUEST);
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
            judge_text(&format!("POST / HTTP/1.1\r\nHost: h\r\n{framing}\r\n\r\n")),
            bad,
            "{framing}"
        );
    }
    assert_eq!(
        judge_text("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        bad
    );
    assert_eq!(
        judge_text("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        Err(StatusCode::NOT_IMPLEMENTED)
    );
}

#[test]
fn refuses_what_nginx_refuses() {
    let bad = Err(StatusCode::BAD_REQUEST);
    assert_eq!(
        judge_text("GET / HTTP/1.1\r\n\r\n"),
        bad,
        "HTTP/1.1 without Host"
    );
    assert_eq!(
        judge_text("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
        bad
    );
    let not_allowed = Err(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        judge_text("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n"),
        not_allowed
    );
    assert_eq!(
        judge_text("CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n"),
        not_allowed
    );
}

#[test]
fn over_long_request_lines_are_414_and_big_heads_431() {
    assert_eq!(too_large(None, 256), StatusCode::URI_TOO_LONG);
    assert_eq!(too_large(Some(300), 256), StatusCode::URI_TOO_LONG);
    assert_eq!(
        too_large(Some(20), 256),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}

#[test]
fn keep_alive_upgrade_and_expect_are_noted() {
    let v = judge_text("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    assert!(v.keep_alive && !v.upgrade && !v.expect_continue);
    let v = judge_text("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
    assert!(!v.keep_alive);
    let v = judge_text("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    assert!(v.keep_alive);
    let v = judge_text("GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n").unwrap();
    assert!(!v.keep_alive && !v.upgrade, "no upgrade on HTTP/1.0");
    let v = judge_text("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").unwrap();
    assert!(v.upgrade);
    let expect = "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    assert!(judge_text(expect).unwrap().expect_continue);
    let bodiless = "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n";
    assert!(!judge_text(bodiless).unwrap().expect_continue);
}
