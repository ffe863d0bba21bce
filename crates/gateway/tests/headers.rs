//! What crosses the gateway in each direction (APISIX §4.5, §4.6): `pass_host`, the forwarded
//! headers, hop-by-hop headers (never forwarded), and the client's request target, which
//! reaches the upstream exactly as sent while routing uses the normalised path.

mod common;

use common::net::{raw, RawConn};
use common::{assert_error_page, upstream, Harness};
use http::Method;
use http_body_util::Full;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};

#[tokio::test]
async fn pass_host_passes_the_client_s_or_uses_the_node_s_or_rewrites() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let route =
        |uri: &str, extra: Value| json!({"uri": uri, "upstream": upstream(&[(&node, 1)], extra)});
    let gw = Harness::start(vec![
        ("ws/default/routes/pass", route("/pass", json!({}))),
        (
            "ws/default/routes/node",
            route("/node", json!({"pass_host": "node"})),
        ),
        (
            "ws/default/routes/rewrite",
            route(
                "/rewrite",
                json!({"pass_host": "rewrite", "upstream_host": "rewritten.example"}),
            ),
        ),
    ])
    .await;
    let host_seen = |path: &'static str| {
        let req = gw
            .request(Method::GET, path)
            .header("host", "client.example:8080")
            .body(Full::default())
            .unwrap();
        async { gw.send(req).await.echoed("host").unwrap_or_default() }
    };
    assert_eq!(host_seen("/pass").await, "client.example:8080");
    // The node's port is not its scheme's default, so it is kept.
    assert_eq!(host_seen("/node").await, node);
    assert_eq!(host_seen("/rewrite").await, "rewritten.example");
}

#[tokio::test]
async fn forwarded_headers_are_set_as_apisix_sets_them() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![(
        "ws/default/routes/1",
        json!({"uri": "/f", "upstream": upstream(&[(&up.node(), 1)], json!({}))}),
    )])
    .await;
    let req = gw
        .request(Method::GET, "/f")
        .header("host", "api.example:8443")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "spoofed.example")
        .header("x-forwarded-port", "1")
        .header("forwarded", "for=5.6.7.8")
        .body(Full::default())
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(
        reply.echoed("x-forwarded-for").unwrap(),
        "1.2.3.4, 127.0.0.1"
    );
    assert_eq!(reply.echoed("x-real-ip").unwrap(), "127.0.0.1");
    assert_eq!(reply.echoed("x-forwarded-proto").unwrap(), "http");
    assert_eq!(
        reply.echoed("x-forwarded-host").unwrap(),
        "api.example:8443"
    );
    assert_eq!(reply.echoed("x-forwarded-port").unwrap(), "8443");
    assert_eq!(reply.echoed("forwarded"), None);

    // Without a port in Host, the port is the listener's.
    let req = gw
        .request(Method::GET, "/f")
        .header("host", "api.example")
        .body(Full::default())
        .unwrap();
    let reply = gw.send(req).await;
    assert_eq!(reply.echoed("x-forwarded-for").unwrap(), "127.0.0.1");
    assert_eq!(
        reply.echoed("x-forwarded-port").unwrap(),
        gw.addr.port().to_string()
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let chatty = Upstream::raw(
        "chatty",
        handlers::raw::respond(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Private\r\n\
              X-Private: 1\r\nKeep-Alive: timeout=9\r\nProxy-Connection: keep-alive\r\n\
              Trailer: X-Sum\r\nX-Public: 1\r\n\r\nok",
        ),
    )
    .await;
    let gw = Harness::start(vec![
        (
            "ws/default/routes/1",
            json!({"uri": "/in", "upstream": upstream(&[(&echo.node(), 1)], json!({}))}),
        ),
        (
            "ws/default/routes/2",
            json!({"uri": "/out", "upstream": upstream(&[(&chatty.node(), 1)], json!({}))}),
        ),
    ])
    .await;
    let reply = raw(
        gw.addr,
        b"GET /in HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
          Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n\
          Upgrade: h2c\r\nX-Kept: 1\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen: Value = serde_json::from_slice(&reply.body).unwrap();
    let headers = seen["headers"].as_object().unwrap();
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            !headers.contains_key(gone),
            "{gone} reached the upstream: {headers:?}"
        );
    }
    assert_eq!(headers["x-kept"], "1");

    let reply = raw(gw.addr, b"GET /out HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok");
    assert!(reply.head.contains("\r\nx-public: 1\r\n"), "{}", reply.head);
    for gone in ["x-private:", "keep-alive:", "proxy-connection:", "trailer:"] {
        assert!(
            !reply.head.contains(gone),
            "{gone} reached the client: {}",
            reply.head
        );
    }
}

#[tokio::test]
async fn the_upstream_gets_the_request_target_as_sent_while_routing_normalises_it() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![(
        "ws/default/routes/1",
        json!({"uri": "/orig/a/b/d", "upstream": upstream(&[(&up.node(), 1)], json!({}))}),
    )])
    .await;
    for target in [
        "/orig/a//b/./c/../d?q=1&x=%20y",
        "/orig/a/%62/d",
        "/x/../orig/a/b/d?",
    ] {
        let mut conn = RawConn::open(gw.addr).await;
        conn.send(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .await;
        let reply = conn.response().await;
        assert_eq!(reply.status, 200, "{target}: {}", reply.text());
        let seen: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(seen["uri"], target);
    }
    // A path that climbs above the root is refused.
    let reply = raw(gw.addr, b"GET /orig/../../etc HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(reply.status, 400);
    let reply = gw.get("/orig/../../etc").await;
    assert_error_page(&reply, 400, "Bad Request");
}
