//! Retries through the real gateway (APISIX §4.3, nginx's `proxy_next_upstream error timeout`):
//! refused connections go to the next node, `retries: 0` does not, a request that was sent is
//! retried only when it is idempotent and has no body.

mod common;

use common::{assert_error_page, upstream, Harness};
use http::Method;
use http_body_util::Full;
use portico_testkit::upstream::{handlers, ClosedPort, Upstream};
use serde_json::json;

fn route_to(up: serde_json::Value) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("ws/default/upstreams/1", up),
        (
            "ws/default/routes/1",
            json!({"uri": "/*", "upstream_id": "1"}),
        ),
    ]
}

#[tokio::test]
async fn a_refused_node_is_retried_on_the_live_one() {
    let closed = ClosedPort::new();
    let live = Upstream::start("live", handlers::echo()).await;
    let up = upstream(&[(&closed.node(), 1), (&live.node(), 1)], json!({}));
    let gw = Harness::start(route_to(up)).await;
    for _ in 0..20 {
        let reply = gw.get("/r").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        // `502, 200`: the last try did not fail, so no X-APISIX-Upstream-Status.
        assert_eq!(reply.header("x-apisix-upstream-status"), None);
    }
    assert_eq!(live.hits(), 20);
}

#[tokio::test]
async fn retries_zero_sends_each_request_to_one_node_only() {
    let closed = ClosedPort::new();
    let live = Upstream::start("live", handlers::echo()).await;
    let up = upstream(
        &[(&closed.node(), 1), (&live.node(), 1)],
        json!({"retries": 0}),
    );
    let gw = Harness::start(route_to(up)).await;
    let mut failed = 0;
    for _ in 0..20 {
        let reply = gw.get("/r").await;
        if reply.status == 502 {
            assert_error_page(&reply, 502, "Bad Gateway");
            assert_eq!(reply.header("x-apisix-upstream-status"), Some("502"));
            failed += 1;
        } else {
            assert_eq!(reply.status, 200);
        }
    }
    // Round robin alternates between the two nodes.
    assert_eq!(failed, 10);
    assert_eq!(live.hits(), 10);
}

#[tokio::test]
async fn a_body_survives_a_refused_connect() {
    let closed = ClosedPort::new();
    let live = Upstream::start("live", handlers::echo()).await;
    let up = upstream(&[(&closed.node(), 1), (&live.node(), 1)], json!({}));
    let gw = Harness::start(route_to(up)).await;
    for i in 0..6 {
        let body = format!("payload {i}");
        let req = gw
            .request(Method::POST, "/upload")
            .body(Full::from(body.clone()))
            .unwrap();
        let reply = gw.send(req).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["body"], body.as_str());
    }
}

#[tokio::test]
async fn a_request_that_was_sent_is_retried_only_if_idempotent_without_body() {
    // `closer` reads the request head and hangs up: an error after sending.
    let closer = Upstream::raw("closer", handlers::raw::close_after_head()).await;
    let live = Upstream::start("live", handlers::echo()).await;
    let up = upstream(&[(&closer.node(), 1), (&live.node(), 1)], json!({}));
    let gw = Harness::start(route_to(up)).await;

    for _ in 0..6 {
        assert_eq!(gw.get("/g").await.status, 200);
    }
    assert!(
        closer.hits() > 0,
        "GETs that reached the closing node were retried"
    );

    // Each POST that reaches the closing node fails: it was sent, and POST is not idempotent.
    let before = closer.hits();
    let mut failed = 0;
    for _ in 0..6 {
        let req = gw
            .request(Method::POST, "/p")
            .body(Full::default())
            .unwrap();
        let reply = gw.send(req).await;
        if reply.status == 502 {
            assert_eq!(reply.header("x-apisix-upstream-status"), Some("502"));
            failed += 1;
        } else {
            assert_eq!(reply.status, 200);
        }
    }
    assert_eq!(failed, closer.hits() - before);
    assert!(failed > 0);

    // A PUT with a body cannot be replayed either: the body streamed to the first node.
    let before = closer.hits();
    let mut failed = 0;
    for _ in 0..6 {
        let req = gw
            .request(Method::PUT, "/p")
            .body(Full::from("body"))
            .unwrap();
        if gw.send(req).await.status == 502 {
            failed += 1;
        }
    }
    assert_eq!(failed, closer.hits() - before);
    assert!(failed > 0);
}

#[tokio::test]
async fn when_every_node_refuses_the_client_gets_502_listing_each_try() {
    let (a, b) = (ClosedPort::new(), ClosedPort::new());
    let up = upstream(&[(&a.node(), 1), (&b.node(), 1)], json!({}));
    let gw = Harness::start(route_to(up)).await;
    let reply = gw.get("/x").await;
    assert_error_page(&reply, 502, "Bad Gateway");
    assert_eq!(reply.header("x-apisix-upstream-status"), Some("502, 502"));

    // More retries than nodes: every node is tried once, then "all upstream servers tried".
    let up = upstream(&[(&a.node(), 1), (&b.node(), 1)], json!({"retries": 5}));
    gw.put(vec![("ws/default/upstreams/1", up)]);
    let reply = gw.get("/x").await;
    assert_error_page(&reply, 502, "Bad Gateway");
    assert_eq!(reply.header("x-apisix-upstream-status"), Some("502, 502"));
}
