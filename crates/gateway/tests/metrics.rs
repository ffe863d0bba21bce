//! The request counters through the real gateway, read as a Prometheus server would read them:
//! `Metrics::render_prometheus` must parse as text exposition format (checked by the small
//! parser in `common/prometheus.rs`) and count what was sent, by route, status, matched host
//! and consumer, with APISIX's latency buckets, across snapshot swaps.

mod common;

use std::time::Duration;

use common::prometheus::{self, Exposition};
use common::{upstream, Harness};
use http::Method;
use http_body_util::Full;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};

fn route(uri: &str, node: &str) -> Value {
    json!({"uri": uri, "upstream": upstream(&[(node, 1)], json!({}))})
}

/// The exposition once `n` requests have ended (counters are updated when a body ends, a
/// moment after the client has read it).
async fn scrape(gw: &Harness, n: u64) -> Exposition {
    for _ in 0..500 {
        let text = gw.gateway.metrics().render_prometheus();
        let exposition = prometheus::parse(&text);
        if exposition.sum("apisix_http_status", &[]) as u64 >= n {
            return exposition;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} requests counted");
}

#[tokio::test]
async fn requests_are_counted_by_status_and_route() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let down = Upstream::start("down", handlers::fixed(503, "down")).await;
    let gw = Harness::start(vec![
        ("ws/default/routes/1", route("/one", &echo.node())),
        ("ws/default/routes/2", route("/two", &down.node())),
    ])
    .await;
    let mut body_bytes = 0;
    for _ in 0..5 {
        let reply = gw.get("/one").await;
        assert_eq!(reply.status, 200);
        body_bytes += reply.body.len();
    }
    for _ in 0..3 {
        assert_eq!(gw.get("/two").await.status, 503);
    }
    for _ in 0..2 {
        assert_eq!(gw.get("/nope").await.status, 404);
    }
    let m = scrape(&gw, 10).await;
    let node = "127.0.0.1";
    let status = |code: &str, route: &str, uri: &str, node: &str| {
        let labels = [
            ("code", code),
            ("route", route),
            ("matched_uri", uri),
            ("matched_host", ""),
            ("service", ""),
            ("consumer", ""),
            ("node", node),
            ("workspace", if route.is_empty() { "" } else { "default" }),
        ];
        m.exact("apisix_http_status", &labels)
    };
    assert_eq!(status("200", "1", "/one", node), Some(5.0));
    assert_eq!(status("503", "2", "/two", node), Some(3.0));
    assert_eq!(status("404", "", "", ""), Some(2.0));
    assert_eq!(m.sum("apisix_http_status", &[]), 10.0);
    assert_eq!(m.sum("apisix_http_requests_total", &[]), 10.0);
    for kind in ["request", "upstream", "apisix"] {
        let labels = [("type", kind), ("route", "1")];
        assert_eq!(m.sum("apisix_http_latency_count", &labels), 5.0, "{kind}");
    }
    // No upstream for the 404s: request and apisix latency only.
    assert_eq!(
        m.sum(
            "apisix_http_latency_count",
            &[("type", "upstream"), ("route", "")]
        ),
        0.0
    );
    assert_eq!(
        m.sum(
            "apisix_http_latency_count",
            &[("type", "request"), ("route", "")]
        ),
        2.0
    );
    let egress = m.sum("apisix_bandwidth", &[("type", "egress"), ("route", "1")]);
    assert!(
        egress > body_bytes as f64,
        "egress {egress}, bodies {body_bytes}"
    );
    assert!(m.sum("apisix_bandwidth", &[("type", "ingress"), ("route", "1")]) > 5.0 * 16.0);
    assert!(
        m.sum(
            "apisix_nginx_http_current_connections",
            &[("state", "accepted")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn latency_histograms_use_apisix_buckets() {
    let slow = Upstream::start(
        "slow",
        handlers::delayed(Duration::from_millis(30), handlers::echo()),
    )
    .await;
    let gw = Harness::start(vec![("ws/default/routes/1", route("/slow", &slow.node()))]).await;
    for _ in 0..4 {
        assert_eq!(gw.get("/slow").await.status, 200);
    }
    let m = scrape(&gw, 4).await;
    let bucket = |kind: &str, le: &str| {
        m.sum(
            "apisix_http_latency_bucket",
            &[("type", kind), ("route", "1"), ("le", le)],
        )
    };
    for kind in ["request", "upstream"] {
        assert_eq!(bucket(kind, "00020.0"), 0.0, "{kind}: nothing under 20 ms");
        assert_eq!(bucket(kind, "60000.0"), 4.0, "{kind}");
        assert_eq!(bucket(kind, "+Inf"), 4.0, "{kind}");
        let sum = m.sum("apisix_http_latency_sum", &[("type", kind), ("route", "1")]);
        assert!(sum >= 4.0 * 30.0, "{kind}: {sum} ms");
    }
    // The gateway's own share is well under 20 ms.
    assert_eq!(bucket("apisix", "00020.0"), 4.0);
    let les: Vec<String> = m
        .samples
        .iter()
        .filter(|s| s.name == "apisix_http_latency_bucket" && s.labels["type"] == "request")
        .map(|s| s.labels["le"].clone())
        .collect();
    assert_eq!(
        les,
        [
            "00001.0", "00002.0", "00005.0", "00010.0", "00020.0", "00050.0", "00100.0", "00200.0",
            "00500.0", "01000.0", "02000.0", "05000.0", "10000.0", "30000.0", "60000.0", "+Inf"
        ]
    );
}

#[tokio::test]
async fn matched_host_and_consumer_are_labels() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/a/plugin_configs/auth",
            json!({"plugins": {"key-auth": {}}}),
        ),
        (
            "ws/a/routes/h",
            json!({"uri": "/h/*", "hosts": ["API.test"], "plugin_config_id": "auth",
                   "upstream": upstream(&[(&echo.node(), 1)], json!({}))}),
        ),
        (
            "ws/a/consumers/jack",
            json!({"username": "jack", "plugins": {"key-auth": {"key": "jack-key"}}}),
        ),
    ])
    .await;
    let request = |key: Option<&str>| {
        let mut b = gw.request(Method::GET, "/h/x").header("host", "api.test");
        if let Some(key) = key {
            b = b.header("apikey", key);
        }
        b.body(Full::default()).unwrap()
    };
    assert_eq!(gw.send(request(Some("jack-key"))).await.status, 200);
    assert_eq!(gw.send(request(None)).await.status, 401);
    let m = scrape(&gw, 2).await;
    let labels = |code, consumer| {
        [
            ("code", code),
            ("route", "h"),
            ("matched_uri", "/h/*"),
            ("matched_host", "api.test"),
            ("consumer", consumer),
            ("workspace", "a"),
        ]
    };
    assert_eq!(m.sum("apisix_http_status", &labels("200", "jack")), 1.0);
    assert_eq!(m.sum("apisix_http_status", &labels("401", "")), 1.0);
}

#[tokio::test]
async fn counters_survive_a_snapshot_swap() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![("ws/default/routes/1", route("/one", &echo.node()))]).await;
    for _ in 0..2 {
        assert_eq!(gw.get("/one").await.status, 200);
    }
    scrape(&gw, 2).await;
    let mut changed = route("/one", &echo.node());
    changed["desc"] = json!("edited");
    gw.put(vec![("ws/default/routes/1", changed)]);
    for _ in 0..3 {
        assert_eq!(gw.get("/one").await.status, 200);
    }
    let m = scrape(&gw, 5).await;
    assert_eq!(
        m.sum("apisix_http_status", &[("code", "200"), ("route", "1")]),
        5.0
    );
    let series = m
        .samples
        .iter()
        .filter(|s| s.name == "apisix_http_status")
        .count();
    assert_eq!(series, 1);
}
