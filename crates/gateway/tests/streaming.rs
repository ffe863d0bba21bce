//! Bodies stream through the gateway frame by frame — chunked uploads, HTTP/2 downloads — intact;
//! an upstream that stalls in the middle of its body is cut off after the read timeout (nginx's
//! `proxy_read_timeout` applies between reads, not only to the head). The 256 MiB memory test
//! runs against the real binary in `crates/portico/tests/streaming.rs`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::net::RawConn;
use common::{upstream, Harness};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico_testkit::upstream::{handlers, pattern, pattern_crc, Upstream, PERIOD};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SIZE: u64 = 16 << 20;
const CHUNK: usize = 64 << 10;

async fn gateway() -> (Harness, Upstream, Upstream) {
    let sink = Upstream::start("sink", handlers::echo()).await;
    let source = Upstream::start("source", handlers::download(SIZE)).await;
    let gw = Harness::start(vec![
        (
            "ws/default/routes/up",
            json!({"uri": "/up", "upstream": upstream(&[(&sink.node(), 1)], json!({}))}),
        ),
        (
            "ws/default/routes/down",
            json!({"uri": "/down", "upstream": upstream(&[(&source.node(), 1)], json!({}))}),
        ),
    ])
    .await;
    (gw, sink, source)
}

#[tokio::test]
async fn a_chunked_upload_arrives_whole() {
    let (gw, _sink, _source) = gateway().await;
    let cycle = pattern(0, CHUNK + PERIOD);
    let mut conn = RawConn::open(gw.addr).await;
    conn.send(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let mut sent = 0u64;
    while sent < SIZE {
        let at = (sent % PERIOD as u64) as usize;
        conn.send(format!("{CHUNK:x}\r\n").as_bytes()).await;
        conn.send(&cycle[at..at + CHUNK]).await;
        conn.send(b"\r\n").await;
        sent += CHUNK as u64;
    }
    conn.send(b"0\r\n\r\n").await;
    let reply = conn.response().await;
    assert_eq!(reply.status, 200);
    let seen: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(seen["body_len"], SIZE);
    assert_eq!(seen["body_crc"], pattern_crc(0, SIZE));
}

#[tokio::test]
async fn an_h2c_download_arrives_whole() {
    let (gw, _sink, _source) = gateway().await;
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://h/down")
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            assert!(data[..] == pattern(got, data.len())[..], "byte {got}");
            got += data.len() as u64;
        }
    }
    assert_eq!(got, SIZE);
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_after_the_read_timeout() {
    let stalling = Upstream::raw(
        "stalling",
        handlers::raw::respond(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"),
    )
    .await;
    let gw = Harness::start(vec![(
        "ws/default/routes/1",
        json!({
            "uri": "/stall",
            "timeout": {"connect": 1, "send": 1, "read": 0.3},
            "upstream": upstream(&[(&stalling.node(), 1)], json!({})),
        }),
    )])
    .await;
    let mut conn = RawConn::open(gw.addr).await;
    conn.send(b"GET /stall HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let started = Instant::now();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(conn.stream.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.stream.read_to_end(&mut rest));
    let _ = read.await.expect("the gateway ends the connection");
    let took = started.elapsed();
    assert_eq!(
        rest, b"partial",
        "the client got what there was, then the cut"
    );
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The gateway closed its side; writing more is pointless but harmless.
    let _ = conn.stream.write_all(b"x").await;
}
