//! limit-count with `policy: redis` through the real gateway and a real `redis-server`: the
//! access phase waits for Redis, gateways with the same configuration share counters, a
//! template edit switches the policy at once, and concurrent requests are counted exactly.

mod common;

use common::{upstream, Harness};
use http_body_util::Full;
use portico_testkit::upstream::{handlers, Upstream};
use portico_testkit::RedisServer;
use serde_json::{json, Value};

fn objects(node: &str, template: Value) -> Vec<(&'static str, Value)> {
    vec![
        ("ws/default/plugin_configs/l", template),
        (
            "ws/default/routes/1",
            json!({"uri": "/l", "upstream": upstream(&[(node, 1)], json!({})),
                   "plugin_config_id": "l"}),
        ),
    ]
}

fn in_redis(redis: &RedisServer, count: u32) -> Value {
    json!({"plugins": {"limit-count": {
        "count": count, "time_window": 60, "policy": "redis",
        "redis_host": "127.0.0.1", "redis_port": redis.port()
    }}})
}

#[tokio::test]
async fn a_template_edit_moves_the_counter_into_redis_shared_by_two_gateways() {
    let redis = RedisServer::start();
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let local = json!({"plugins": {"limit-count": {"count": 1, "time_window": 60}}});
    let a = Harness::start(objects(&node, local.clone())).await;
    let b = Harness::start(objects(&node, local)).await;
    // Local counters: each gateway counts for itself.
    for gw in [&a, &b] {
        assert_eq!(gw.get("/l").await.status, 200);
        assert_eq!(gw.get("/l").await.status, 503);
    }
    // The same edit on both: one counter in Redis for both.
    for gw in [&a, &b] {
        gw.put(objects(&node, in_redis(&redis, 3)));
    }
    let mut seen = Vec::new();
    for i in 0..5 {
        let r = if i % 2 == 0 { &a } else { &b }.get("/l").await;
        seen.push((
            r.status.as_u16(),
            r.header("x-ratelimit-remaining").map(str::to_string),
        ));
    }
    let expected: Vec<(u16, Option<String>)> =
        [(200, "2"), (200, "1"), (200, "0"), (503, "0"), (503, "0")]
            .iter()
            .map(|(s, r)| (*s, Some(r.to_string())))
            .collect();
    assert_eq!(seen, expected);
    assert_eq!(redis.cli_text(&["dbsize"]), "1");
    // Back to the local policy: Redis is not asked any more.
    for gw in [&a, &b] {
        gw.put(objects(
            &node,
            json!({"plugins": {"limit-count": {"count": 2, "time_window": 60}}}),
        ));
    }
    redis.cli_text(&["flushall"]);
    assert_eq!(a.get("/l").await.status, 200);
    assert_eq!(redis.cli_text(&["dbsize"]), "0");
}

#[tokio::test]
async fn concurrent_requests_are_counted_exactly() {
    let redis = RedisServer::start();
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(objects(&up.node(), in_redis(&redis, 10))).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let client = gw.client();
        let req = http::Request::get(gw.url("/l"))
            .body(Full::default())
            .expect("request");
        calls.spawn(async move { client.request(req).await.map(|r| r.status().as_u16()) });
    }
    let mut passed = 0;
    let mut rejected = 0;
    while let Some(status) = calls.join_next().await {
        match status.expect("task").expect("response") {
            200 => passed += 1,
            503 => rejected += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((passed, rejected), (10, 20));
    let keys = redis.cli_text(&["keys", "*"]);
    assert_eq!(redis.cli_text(&["get", &keys]), "30");
}
