//! The gateway's own HTTP/1.x server connection, where it behaves in ways hyper's did not or
//! that no other test looks at: a client that hangs up while the upstream is slow is noticed at
//! once (nginx's 499), a client that only shut its sending side still gets its answer,
//! `Expect: 100-continue`, HTTP/1.0 answers without a length delimited by the close, chunked
//! answers on HTTP/1.1, and the graceful shutdown of idle and busy connections.

mod common;

use std::path::Path;
use std::time::Duration;

use common::net::RawConn;
use common::{upstream, Harness};
use portico_gateway::access_log::{AccessLog, AccessLogConfig, Destination, Format};
use portico_gateway::ClientLimits;
use portico_testkit::upstream::{handlers, Gate, Upstream};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn route_to(up: &Upstream) -> Vec<(&'static str, Value)> {
    vec![(
        "ws/default/routes/1",
        json!({"uri": "/*", "upstream": upstream(&[(&up.node(), 1)], json!({}))}),
    )]
}

/// The log's lines once it has at least `n` (waits up to 5 s).
async fn lines(path: &Path, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} has fewer than {n} lines", path.display());
}

/// Reads until the gateway closes the connection.
async fn read_to_close(conn: &mut RawConn) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.stream.read_to_end(&mut all))
        .await
        .expect("the connection closes")
        .expect("read");
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn a_client_that_hangs_up_while_the_upstream_is_slow_is_logged_499_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = AccessLog::start(AccessLogConfig::new(
        Destination::File(path.clone()),
        Format::Default,
    ))
    .unwrap();
    let gate = Gate::new();
    let slow = Upstream::start("slow", gate.hold(handlers::echo())).await;
    let gw = Harness::start_logged(log, route_to(&slow)).await;
    let mut conn = RawConn::open(gw.addr).await;
    conn.send(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n").await;
    gate.until_waiting(1).await;
    drop(conn);
    // Logged while the upstream still holds the request.
    let line = lines(&path, 1).await.remove(0);
    assert!(line.contains("\"GET /slow HTTP/1.1\" 499 0 "), "{line}");
    assert_eq!(gate.waiting(), 1);
    gate.open();
}

#[tokio::test]
async fn a_client_that_shuts_its_sending_side_still_gets_the_answer() {
    let up = Upstream::start(
        "slow",
        handlers::delayed(Duration::from_millis(200), handlers::echo()),
    )
    .await;
    let gw = Harness::start(route_to(&up)).await;
    for request in [
        &b"GET /half HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"[..],
        b"GET /half HTTP/1.0\r\n\r\n",
    ] {
        let mut conn = RawConn::open(gw.addr).await;
        conn.send(request).await;
        conn.stream.shutdown().await.unwrap();
        let reply = conn.response().await;
        assert_eq!(reply.status, 200, "{}", reply.head);
        let seen: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(seen["uri"], "/half");
        assert!(conn.closed().await);
    }
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_body_is_read() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let limits = ClientLimits {
        max_body_bytes: Some(1024),
        ..ClientLimits::default()
    };
    let gw = Harness::start_with(limits, route_to(&up)).await;
    let mut conn = RawConn::open(gw.addr).await;
    conn.send(b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    let mut interim = [0u8; 25];
    tokio::time::timeout(
        Duration::from_secs(10),
        conn.stream.read_exact(&mut interim),
    )
    .await
    .expect("100 Continue in time")
    .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    conn.send(b"hello").await;
    let reply = conn.response().await;
    assert_eq!(reply.status, 200);
    let seen: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(seen["body"], "hello");

    // A declared body over the limit is refused without inviting it.
    let mut conn = RawConn::open(gw.addr).await;
    conn.send(
        b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4096\r\n\r\n",
    )
    .await;
    let reply = conn.response().await;
    assert_eq!(reply.status, 413, "{}", reply.head);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn answers_of_unknown_length_are_chunked_or_closed_by_version() {
    let up = Upstream::raw(
        "chunked",
        handlers::raw::respond(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        ),
    )
    .await;
    let gw = Harness::start(route_to(&up)).await;

    let mut conn = RawConn::open(gw.addr).await;
    conn.send(b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let reply = conn.response().await;
    assert!(
        reply.head.contains("transfer-encoding: chunked"),
        "{}",
        reply.head
    );
    assert_eq!(reply.text(), "hello world");
    // The connection stays open for the next request.
    conn.send(b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(conn.response().await.text(), "hello world");

    let mut conn = RawConn::open(gw.addr).await;
    conn.send(b"GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let answer = read_to_close(&mut conn).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.0 200 ok"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(!head.contains("content-length") && !head.contains("transfer-encoding"));
    assert_eq!(body, "hello world");
}

#[tokio::test]
async fn http10_keep_alive_and_head_requests() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(route_to(&up)).await;
    let mut conn = RawConn::open(gw.addr).await;
    conn.send(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let reply = conn.response().await;
    assert!(reply.head.starts_with("http/1.0 200"), "{}", reply.head);
    assert!(
        reply.head.contains("connection: keep-alive"),
        "{}",
        reply.head
    );
    assert!(reply.head.contains("date: "), "{}", reply.head);
    // A HEAD answer keeps its length and has no body; the next answer follows at once.
    conn.send(b"HEAD /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /c HTTP/1.0\r\n\r\n")
        .await;
    let mut answer = String::new();
    let all = read_to_close(&mut conn).await;
    answer.push_str(&all);
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase().contains("content-length: "),
        "{head}"
    );
    assert!(rest.starts_with("HTTP/1.0 200 OK\r\n"), "{rest}");
    assert!(rest.contains("\"uri\":\"/c\""), "{rest}");
}

#[tokio::test]
async fn shutting_down_closes_idle_connections_and_lets_busy_ones_finish() {
    let gate = Gate::new();
    let up = Upstream::start("gated", gate.hold(handlers::echo())).await;
    let echo = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/routes/1",
            json!({"uri": "/slow", "upstream": upstream(&[(&up.node(), 1)], json!({}))}),
        ),
        (
            "ws/default/routes/2",
            json!({"uri": "/fast", "upstream": upstream(&[(&echo.node(), 1)], json!({}))}),
        ),
    ])
    .await;
    let mut idle = RawConn::open(gw.addr).await;
    idle.send(b"GET /fast HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(idle.response().await.status, 200);
    let mut busy = RawConn::open(gw.addr).await;
    busy.send(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n").await;
    gate.until_waiting(1).await;

    gw.shut_down();
    assert!(idle.closed().await, "the idle connection closes");
    assert_eq!(gate.waiting(), 1, "while the busy one still waits");
    gate.open();
    let reply = busy.response().await;
    assert_eq!(reply.status, 200);
    assert!(reply.head.contains("connection: close"), "{}", reply.head);
    assert!(busy.closed().await);
}
