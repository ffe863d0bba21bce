//! HTTP/2 clients (h2c prior knowledge, h2 over TLS by ALPN) in front of HTTP/1.1 upstreams, and
//! unary gRPC (`scheme: grpc`) end to end with its trailers.
//!
//! The gRPC messages here are raw bytes, not protobuf: no `protoc` in the build, and nothing on
//! the way looks inside a message (see `portico_testkit::upstream::grpc`).

mod common;

use bytes::Bytes;
use common::net::{Cert, TlsClient};
use common::{upstream, Harness, Reply};
use http::{Request, Version};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico_testkit::upstream::{grpc, handlers, Proto, Upstream};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};

/// An HTTP/2 client connection over `io`.
async fn h2<I>(io: I) -> hyper::client::conn::http2::SendRequest<Full<Bytes>>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

fn echo_route(up: &Upstream) -> (&'static str, serde_json::Value) {
    (
        "ws/default/routes/1",
        json!({"uri": "/h2/*", "upstream": upstream(&[(&up.node(), 1)], json!({}))}),
    )
}

#[tokio::test]
async fn an_h2c_client_reaches_an_http1_upstream() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![echo_route(&up)]).await;
    let mut sender = h2(tokio::net::TcpStream::connect(gw.addr).await.unwrap()).await;
    for i in 0..3 {
        let req = Request::post(format!("http://api.example/h2/{i}?q=1"))
            .header("x-kept", "1")
            .body(Full::from(format!("body {i}")))
            .unwrap();
        let reply = Reply::read(sender.send_request(req).await.unwrap()).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.version, Version::HTTP_2);
        let seen = reply.json();
        assert_eq!(seen["version"], "HTTP/1.1");
        assert_eq!(seen["uri"], format!("/h2/{i}?q=1"));
        assert_eq!(seen["headers"]["host"], "api.example");
        assert_eq!(seen["headers"]["x-kept"], "1");
        assert_eq!(seen["body"], format!("body {i}"));
    }
}

#[tokio::test]
async fn an_h2_client_over_tls_is_served_by_alpn() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let cert = Cert::self_signed("h2.test");
    let gw = Harness::start(vec![
        echo_route(&up),
        (
            "ws/default/ssls/1",
            json!({"sni": "h2.test", "cert": cert.cert, "key": cert.key}),
        ),
    ])
    .await;
    let tls = TlsClient::new("h2.test")
        .h2()
        .connect(gw.tls_addr)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut sender = h2(tls).await;
    let req = Request::get("https://h2.test/h2/tls")
        .body(Full::default())
        .unwrap();
    let reply = Reply::read(sender.send_request(req).await.unwrap()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.echoed("x-forwarded-proto").unwrap(), "https");
    assert_eq!(reply.echoed("host").unwrap(), "h2.test");
}

#[tokio::test]
async fn a_unary_grpc_call_goes_through_with_its_trailers() {
    let server = Upstream::with("grpc", Proto::H2, None, grpc::server(grpc::reverse())).await;
    let gw = Harness::start(vec![(
        "ws/default/routes/1",
        json!({
            "uri": "/test.Echo/*",
            "upstream": upstream(&[(&server.node(), 1)], json!({"scheme": "grpc"})),
        }),
    )])
    .await;
    let reply = grpc::call(gw.addr, "grpc.example", "/test.Echo/Reverse", b"hello")
        .await
        .unwrap();
    assert_eq!(reply.http_status, 200);
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "application/grpc"
    );
    assert_eq!(reply.message.as_deref(), Some(&b"olleh"[..]));
    assert_eq!(reply.grpc_status.as_deref(), Some("0"));
    assert!(reply.trailers.contains_key("grpc-status"), "{reply:?}");

    // A failed call: the status and message travel in the trailers.
    let reply = grpc::call(gw.addr, "grpc.example", "/test.Echo/Reverse", b"")
        .await
        .unwrap();
    assert_eq!(reply.message, None);
    assert_eq!(reply.grpc_status.as_deref(), Some("3"));
    assert_eq!(reply.grpc_message.as_deref(), Some("empty message"));
    assert_eq!(reply.trailers.get("grpc-message").unwrap(), "empty message");
    assert_eq!(server.hits(), 2);
}
