//! Client protection: heads over the limits (414, 431), bodies over `max_body_bytes` (413, both
//! declared and growing while chunked), clients too slow to send their head, malformed heads
//! (400), and ambiguous framing — `Content-Length` with `Transfer-Encoding`, repeated or invalid
//! `Content-Length` — refused before anything reaches an upstream.
//!
//! hyper alone would take `Content-Length` + `Transfer-Encoding: chunked` (it drops the length
//! and reads chunks); the gateway judges every head before hyper parses it and answers 400, as
//! nginx does.

mod common;

use std::time::{Duration, Instant};

use common::net::{raw, RawConn, RawResponse};
use common::{upstream, Harness};
use portico_gateway::ClientLimits;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};

async fn gateway() -> (Harness, Upstream) {
    let up = Upstream::start("echo", handlers::echo()).await;
    let limits = ClientLimits {
        max_header_bytes: 4096,
        max_headers: 20,
        max_body_bytes: Some(1024),
        header_timeout: Duration::from_millis(300),
        ..ClientLimits::default()
    };
    let gw = Harness::start_with(
        limits,
        vec![(
            "ws/default/routes/1",
            json!({"uri": "/*", "upstream": upstream(&[(&up.node(), 1)], json!({}))}),
        )],
    )
    .await;
    (gw, up)
}

fn assert_page(reply: &RawResponse, status: u16, title: &str) {
    assert_eq!(reply.status, status, "{}{}", reply.head, reply.text());
    assert!(
        reply
            .text()
            .contains(&format!("<title>{status} {title}</title>")),
        "{}",
        reply.text()
    );
}

/// Sends `bytes`, expects `status` and the connection closed after it.
async fn refused(gw: &Harness, bytes: &[u8], status: u16, title: &str) {
    let mut conn = RawConn::open(gw.addr).await;
    conn.send(bytes).await;
    let reply = conn.response().await;
    assert_page(&reply, status, title);
    assert!(reply.head.contains("connection: close"), "{}", reply.head);
    assert!(reply.head.contains("server: portico/"), "{}", reply.head);
    assert!(conn.closed().await, "the connection stays open");
}

#[tokio::test]
async fn heads_over_the_limits_are_414_or_431() {
    let (gw, up) = gateway().await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(5000));
    refused(&gw, long_uri.as_bytes(), 414, "Request-URI Too Large").await;
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    );
    refused(
        &gw,
        big_header.as_bytes(),
        431,
        "Request Header Fields Too Large",
    )
    .await;
    let many: String = (0..25).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
    refused(&gw, many.as_bytes(), 431, "Request Header Fields Too Large").await;
    assert_eq!(up.hits(), 0);
    // Just under the limits is fine.
    let fits = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(3000));
    assert_eq!(raw(gw.addr, fits.as_bytes()).await.status, 200);
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_before_it_is_sent() {
    let (gw, up) = gateway().await;
    let mut conn = RawConn::open(gw.addr).await;
    // Only the head: the answer must not wait for the body.
    conn.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 2048\r\n\r\n")
        .await;
    assert_page(&conn.response().await, 413, "Request Entity Too Large");
    assert_eq!(up.hits(), 0);
    let fits = format!(
        "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1024\r\n\r\n{}",
        "x".repeat(1024)
    );
    let reply = raw(gw.addr, fits.as_bytes()).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_chunked_body_growing_past_the_limit_is_cut_off_with_413() {
    let (gw, up) = gateway().await;
    let chunk = format!("200\r\n{}\r\n", "y".repeat(512));
    // Within the limit: two chunks of 512 bytes.
    let fits = format!(
        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
    );
    let reply = raw(gw.addr, fits.as_bytes()).await;
    assert_eq!(reply.status, 200);
    let seen: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(seen["body_len"], 1024);

    // Past it: the client keeps sending until it reads the answer.
    let conn = RawConn::open(gw.addr).await;
    let (mut rd, mut wr) = conn.stream.into_split();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    wr.write_all(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..64 {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        wr
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("<title>413 Request Entity Too Large</title>"));
    drop(writer.await);
    // The upstream saw a body that was cut off, never a complete oversized request.
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.aborted_bodies() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.aborted_bodies(), 1);
    assert_eq!(up.hits(), 2);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_disconnected() {
    let (gw, up) = gateway().await;
    for partial in [
        &b""[..],
        b"GET / HTTP/1.1\r\nHost: h\r\n",
        b"PRI * HTTP/2.0\r\n",
    ] {
        let started = Instant::now();
        let mut conn = RawConn::open(gw.addr).await;
        conn.send(partial).await;
        assert!(
            conn.closed().await,
            "still open after {:?}",
            started.elapsed()
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(3),
            "{partial:?}: closed after {took:?}"
        );
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn malformed_heads_are_400() {
    let (gw, up) = gateway().await;
    for head in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        refused(&gw, head, 400, "Bad Request").await;
    }
    refused(
        &gw,
        b"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n",
        405,
        "Not Allowed",
    )
    .await;
    refused(
        &gw,
        b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        405,
        "Not Allowed",
    )
    .await;
    // HTTP/1.0 needs no Host.
    assert_eq!(raw(gw.addr, b"GET / HTTP/1.0\r\n\r\n").await.status, 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn ambiguous_body_framing_is_400_and_never_reaches_the_upstream() {
    let (gw, up) = gateway().await;
    let smuggle = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    for framing in [
        "Content-Length: 46\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 46",
        "Content-Length: 5\r\nContent-Length: 5",
        "Content-Length: 5, 5",
        "Content-Length: -1",
        "Content-Length: abc",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ] {
        let req = format!("POST /p HTTP/1.1\r\nHost: h\r\n{framing}\r\n\r\n{smuggle}");
        refused(&gw, req.as_bytes(), 400, "Bad Request").await;
    }
    let req = format!("POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n{smuggle}");
    refused(&gw, req.as_bytes(), 501, "Not Implemented").await;
    let req = format!("POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{smuggle}");
    refused(&gw, req.as_bytes(), 400, "Bad Request").await;
    assert_eq!(up.hits(), 0);

    // Pipelined behind a good request, the refusal comes in order and ends the connection.
    let mut conn = RawConn::open(gw.addr).await;
    let good = "POST /first HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok";
    let bad = format!("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 46\r\nTransfer-Encoding: chunked\r\n\r\n{smuggle}");
    conn.send(format!("{good}{bad}").as_bytes()).await;
    let first = conn.response().await;
    assert_eq!(first.status, 200);
    let seen: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(seen["uri"], "/first");
    assert_page(&conn.response().await, 400, "Bad Request");
    assert!(conn.closed().await);
    assert_eq!(up.hits(), 1, "only the good request reached the upstream");
}

#[tokio::test]
async fn keep_alive_requests_with_bodies_are_framed_one_after_another() {
    let (gw, up) = gateway().await;
    let mut conn = RawConn::open(gw.addr).await;
    let chunked = "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
                   3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n";
    let sized = "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nwxyz";
    conn.send(format!("{chunked}{sized}GET /d HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
        .await;
    for (uri, body) in [("/b", "abcde"), ("/c", "wxyz"), ("/d", "")] {
        let reply = conn.response().await;
        assert_eq!(reply.status, 200);
        let seen: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            (seen["uri"].as_str(), seen["body"].as_str()),
            (Some(uri), Some(body))
        );
    }
    assert_eq!(up.hits(), 3);
}
