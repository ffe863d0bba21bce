//! WebSocket through the gateway (APISIX §8): with `enable_websocket: true` the upgrade goes
//! through and frames flow both ways; without it the upgrade headers are not forwarded, so the
//! upstream sees a plain request.

mod common;

use common::net::RawConn;
use common::{upstream, Harness};
use portico_testkit::upstream::ws::{self, Frame};
use portico_testkit::upstream::Upstream;
use serde_json::{json, Value};
use tokio::net::TcpStream;

const HANDSHAKE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

async fn gateway(enable_websocket: bool) -> (Harness, Upstream) {
    let up = Upstream::start("ws", ws::echo()).await;
    let gw = Harness::start(vec![(
        "ws/default/routes/1",
        json!({
            "uri": "/ws",
            "enable_websocket": enable_websocket,
            "upstream": upstream(&[(&up.node(), 1)], json!({})),
        }),
    )])
    .await;
    (gw, up)
}

#[tokio::test]
async fn frames_echo_through_a_websocket_route() {
    let (gw, up) = gateway(true).await;
    let mut io = TcpStream::connect(gw.addr).await.unwrap();
    let (status, head) = ws::client_handshake(&mut io, "gw", "/ws").await.unwrap();
    assert_eq!(status, 101, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );

    let mask = Some([1, 2, 3, 4]);
    for text in ["hello", "through the gateway"] {
        ws::write_frame(&mut io, ws::TEXT, text.as_bytes(), mask)
            .await
            .unwrap();
        let frame = ws::read_frame(&mut io).await.unwrap();
        assert_eq!(
            frame,
            Frame {
                opcode: ws::TEXT,
                payload: text.as_bytes().to_vec()
            }
        );
    }
    let big = vec![7u8; 200_000];
    ws::write_frame(&mut io, ws::BINARY, &big, mask)
        .await
        .unwrap();
    assert_eq!(ws::read_frame(&mut io).await.unwrap().payload, big);
    ws::write_frame(&mut io, ws::PING, b"p", mask)
        .await
        .unwrap();
    assert_eq!(ws::read_frame(&mut io).await.unwrap().opcode, ws::PONG);
    ws::write_frame(&mut io, ws::CLOSE, b"", mask)
        .await
        .unwrap();
    assert_eq!(ws::read_frame(&mut io).await.unwrap().opcode, ws::CLOSE);
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn without_enable_websocket_the_upgrade_is_not_forwarded() {
    let (gw, _up) = gateway(false).await;
    let mut conn = RawConn::open(gw.addr).await;
    conn.send(HANDSHAKE).await;
    let reply = conn.response().await;
    assert_eq!(reply.status, 200, "{}", reply.head);
    let seen: Value = serde_json::from_slice(&reply.body).unwrap();
    assert!(seen["headers"].get("upgrade").is_none(), "{seen}");
    assert!(seen["headers"].get("connection").is_none(), "{seen}");
    // The connection stays plain HTTP: the next request is answered normally.
    conn.send(b"GET /ws HTTP/1.1\r\nHost: gw\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 200);
}
