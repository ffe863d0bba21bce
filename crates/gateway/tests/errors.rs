//! Gateway-made answers when the upstream side fails (APISIX §3.10, §4.1, §4.3): 503 without
//! nodes or upstream, 502 for a missing `upstream_id`, 504 on read timeouts (route `timeout`
//! over the upstream's), `retry_timeout`, and which upstream wins when a route names two.

mod common;

use std::time::{Duration, Instant};

use common::{assert_error_page, upstream, Harness};
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::json;

fn timeout(read: f64) -> serde_json::Value {
    json!({"connect": 1, "send": 1, "read": read})
}

#[tokio::test]
async fn no_nodes_or_no_upstream_is_503_and_a_missing_upstream_id_is_502() {
    let gw = Harness::start(vec![
        ("ws/default/upstreams/empty", json!({"nodes": {}})),
        (
            "ws/default/routes/1",
            json!({"uri": "/empty", "upstream_id": "empty"}),
        ),
        (
            "ws/default/routes/2",
            json!({"uri": "/none", "plugin_config_id": "p"}),
        ),
        (
            "ws/default/routes/3",
            json!({"uri": "/missing", "upstream_id": "nope"}),
        ),
    ])
    .await;
    for path in ["/empty", "/none"] {
        let reply = gw.get(path).await;
        assert_error_page(&reply, 503, "Service Temporarily Unavailable");
        assert_eq!(reply.header("x-apisix-upstream-status"), None);
    }
    let reply = gw.get("/missing").await;
    assert_error_page(&reply, 502, "Bad Gateway");
    assert_eq!(reply.header("x-apisix-upstream-status"), None);
}

#[tokio::test]
async fn upstream_id_wins_over_an_inline_upstream() {
    let named = Upstream::start("named", handlers::echo()).await;
    let inline = Upstream::start("inline", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/upstreams/1",
            upstream(&[(&named.node(), 1)], json!({})),
        ),
        (
            "ws/default/routes/1",
            json!({"uri": "/both", "upstream_id": "1", "upstream": upstream(&[(&inline.node(), 1)], json!({}))}),
        ),
    ])
    .await;
    assert_eq!(gw.get("/both").await.server(), "named");
    assert_eq!(inline.hits(), 0);
}

#[tokio::test]
async fn a_read_timeout_is_504_with_the_upstream_status() {
    let silent = Upstream::raw("silent", handlers::raw::silent()).await;
    let up = upstream(&[(&silent.node(), 1)], json!({"timeout": timeout(0.2)}));
    let gw = Harness::start(vec![(
        "ws/default/routes/1",
        json!({"uri": "/slow", "upstream": up}),
    )])
    .await;
    let started = Instant::now();
    let reply = gw.get("/slow").await;
    let took = started.elapsed();
    assert_error_page(&reply, 504, "Gateway Time-out");
    assert_eq!(reply.header("x-apisix-upstream-status"), Some("504"));
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_route_timeout_overrides_the_upstream_s() {
    let slow = Upstream::start(
        "slow",
        handlers::delayed(Duration::from_millis(300), handlers::echo()),
    )
    .await;
    let node = slow.node();
    let gw = Harness::start(vec![
        (
            "ws/default/upstreams/short",
            upstream(&[(&node, 1)], json!({"timeout": timeout(0.1)})),
        ),
        (
            "ws/default/upstreams/long",
            upstream(&[(&node, 1)], json!({"timeout": timeout(5.0)})),
        ),
        (
            "ws/default/routes/1",
            json!({"uri": "/short", "upstream_id": "short"}),
        ),
        (
            "ws/default/routes/2",
            json!({"uri": "/lengthened", "upstream_id": "short", "timeout": timeout(5.0)}),
        ),
        (
            "ws/default/routes/3",
            json!({"uri": "/shortened", "upstream_id": "long", "timeout": timeout(0.1)}),
        ),
        (
            "ws/default/routes/4",
            json!({"uri": "/long", "upstream_id": "long"}),
        ),
    ])
    .await;
    assert_eq!(gw.get("/short").await.status, 504);
    assert_eq!(gw.get("/lengthened").await.status, 200);
    assert_eq!(gw.get("/shortened").await.status, 504);
    assert_eq!(gw.get("/long").await.status, 200);
}

#[tokio::test]
async fn retry_timeout_ends_the_retries_with_502() {
    let silent = [
        Upstream::raw("s1", handlers::raw::silent()).await,
        Upstream::raw("s2", handlers::raw::silent()).await,
        Upstream::raw("s3", handlers::raw::silent()).await,
    ];
    let nodes: Vec<String> = silent.iter().map(Upstream::node).collect();
    let nodes: Vec<(&str, u32)> = nodes.iter().map(|n| (n.as_str(), 1)).collect();
    let bounded = upstream(
        &nodes,
        json!({"timeout": timeout(0.2), "retries": 2, "retry_timeout": 0.3}),
    );
    let unbounded = upstream(&nodes, json!({"timeout": timeout(0.2), "retries": 2}));
    let gw = Harness::start(vec![
        (
            "ws/default/routes/1",
            json!({"uri": "/bounded", "upstream": bounded}),
        ),
        (
            "ws/default/routes/2",
            json!({"uri": "/unbounded", "upstream": unbounded}),
        ),
    ])
    .await;
    // Tries at 0 s and 0.2 s time out; at 0.4 s the 0.3 s retry budget is spent: 502.
    let reply = gw.get("/bounded").await;
    assert_error_page(&reply, 502, "Bad Gateway");
    assert_eq!(reply.header("x-apisix-upstream-status"), Some("504, 504"));
    // Without it all three nodes are tried and the last timeout decides: 504.
    let reply = gw.get("/unbounded").await;
    assert_error_page(&reply, 504, "Gateway Time-out");
    assert_eq!(
        reply.header("x-apisix-upstream-status"),
        Some("504, 504, 504")
    );
}

#[tokio::test]
async fn an_upstream_5xx_passes_through_with_its_status_listed() {
    let broken = Upstream::start("broken", handlers::fixed(503, "upstream says no")).await;
    let gw = Harness::start(vec![(
        "ws/default/routes/1",
        json!({"uri": "/b", "upstream": upstream(&[(&broken.node(), 1)], json!({}))}),
    )])
    .await;
    let reply = gw.get("/b").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.text(), "upstream says no");
    assert_eq!(reply.header("x-apisix-upstream-status"), Some("503"));
    // 5xx answers are not retried (only errors and timeouts are).
    assert_eq!(broken.hits(), 1);
}
