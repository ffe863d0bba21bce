//! Routing through the real gateway: a few representative cases of path, priority, host,
//! method, `vars` and address matching (the router crate has the exhaustive unit tests), and
//! the 404 of APISIX. Every route sends to the same echo upstream but rewrites the `Host` to its
//! own name, so the echo tells which route matched.

mod common;

use common::net::RawConn;
use common::Harness;
use http::Method;
use http_body_util::Full;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};

/// Route `id` with match conditions `spec`, answering through `up` as host `id`.
fn route(id: &str, mut spec: Value, up: &Upstream) -> (String, Value) {
    spec["upstream"] = json!({
        "nodes": {up.node(): 1},
        "pass_host": "rewrite",
        "upstream_host": id,
    });
    (format!("ws/default/routes/{id}"), spec)
}

/// Which route answered a request.
async fn winner(gw: &Harness, method: Method, path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = gw.request(method, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let reply = gw.send(req.body(Full::default()).unwrap()).await;
    if reply.status == 404 {
        return "404".into();
    }
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.echoed("host").unwrap_or_default()
}

#[tokio::test]
async fn exact_beats_prefix_and_longer_prefix_beats_priority() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        route("a", json!({"uri": "/api/*", "priority": 10}), &up),
        route("b", json!({"uri": "/api/users/*"}), &up),
        route("c", json!({"uri": "/api/users/me"}), &up),
        route(
            "d",
            json!({"uri": "/api/users/me", "methods": ["POST"], "priority": 5}),
            &up,
        ),
    ])
    .await;
    assert_eq!(winner(&gw, Method::GET, "/api/users/me", &[]).await, "c");
    assert_eq!(winner(&gw, Method::POST, "/api/users/me", &[]).await, "d");
    assert_eq!(winner(&gw, Method::GET, "/api/users/42", &[]).await, "b");
    assert_eq!(winner(&gw, Method::GET, "/api/other", &[]).await, "a");
    // `/api/*` is the prefix `/api/`: `/api` itself is not under it.
    assert_eq!(winner(&gw, Method::GET, "/api", &[]).await, "404");
    // Matching is on the normalised path.
    assert_eq!(
        winner(&gw, Method::GET, "/api/x/../users//me", &[]).await,
        "c"
    );
}

#[tokio::test]
async fn routes_with_a_matching_host_win_over_routes_without() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        route("h", json!({"uri": "/*", "hosts": ["*.example.com"]}), &up),
        route("x", json!({"uri": "/foo", "priority": 100}), &up),
        route(
            "exact",
            json!({"uri": "/*", "host": "exact.example.com"}),
            &up,
        ),
    ])
    .await;
    let host = |h: &'static str| [("host", h)];
    assert_eq!(
        winner(&gw, Method::GET, "/foo", &host("a.example.com")).await,
        "h"
    );
    assert_eq!(
        winner(&gw, Method::GET, "/foo", &host("a.b.example.com")).await,
        "h"
    );
    assert_eq!(
        winner(&gw, Method::GET, "/foo", &host("example.com")).await,
        "x"
    );
    assert_eq!(
        winner(&gw, Method::GET, "/foo", &host("Exact.Example.com:81")).await,
        "exact"
    );
    assert_eq!(
        winner(&gw, Method::GET, "/bar", &host("example.com")).await,
        "404"
    );
}

#[tokio::test]
async fn methods_vars_and_client_addresses_select_routes() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        route("ten", json!({"uri": "/c", "priority": 3, "remote_addrs": ["10.0.0.0/8"]}), &up),
        route("two", json!({"uri": "/c", "priority": 2, "remote_addr": "127.0.0.2"}), &up),
        route(
            "flag",
            json!({"uri": "/c", "priority": 1, "vars": [["http_x_flag", "==", "on"], ["arg_v", ">", 1]]}),
            &up,
        ),
        route("put", json!({"uri": "/c", "methods": ["PUT"]}), &up),
        route("any", json!({"uri": "/c", "priority": -1, "methods": ["GET"]}), &up),
    ])
    .await;
    assert_eq!(winner(&gw, Method::GET, "/c", &[]).await, "any");
    assert_eq!(winner(&gw, Method::PUT, "/c", &[]).await, "put");
    // HEAD is not implied by GET.
    assert_eq!(winner(&gw, Method::HEAD, "/c", &[]).await, "404");
    assert_eq!(
        winner(&gw, Method::GET, "/c?v=2", &[("x-flag", "on")]).await,
        "flag"
    );
    assert_eq!(
        winner(&gw, Method::GET, "/c?v=1", &[("x-flag", "on")]).await,
        "any"
    );
    // APISIX trusts X-Real-IP from 127.0.0.1 (nginx real_ip), so the client is 10.1.2.3.
    assert_eq!(
        winner(&gw, Method::GET, "/c", &[("x-real-ip", "10.1.2.3")]).await,
        "ten"
    );

    // From 127.0.0.2 the address is the peer's own, and its X-Real-IP is not trusted.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket.connect(gw.addr).await.unwrap();
    let mut conn = RawConn { stream };
    conn.send(b"GET /c HTTP/1.1\r\nHost: x\r\nX-Real-IP: 10.1.2.3\r\n\r\n")
        .await;
    let reply = conn.response().await;
    assert_eq!(reply.status, 200);
    let echoed: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(echoed["headers"]["host"], "two");
    assert_eq!(echoed["headers"]["x-real-ip"], "127.0.0.2");
}

#[tokio::test]
async fn disabled_routes_are_not_routed_and_404_is_apisix_s() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let (key, mut spec) = route("r", json!({"uri": "/on", "status": 0}), &up);
    let gw = Harness::start(vec![(key.clone(), spec.clone())]).await;
    let reply = gw.get("/on").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "{\"error_msg\":\"404 Route Not Found\"}\n");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(reply
        .header("server")
        .is_some_and(|s| s.starts_with("Portico/")));
    assert_eq!(up.hits(), 0);

    spec["status"] = json!(1);
    gw.put(vec![(key, spec)]);
    assert_eq!(gw.get("/on").await.status, 200);
    assert_eq!(up.hits(), 1);
}
