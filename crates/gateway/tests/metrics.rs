//! The node's metrics through the real gateway, read as a Prometheus server would read them
//! (`common/prometheus.rs` refuses anything a Prometheus server would): node-wide counters for
//! every request, and the prometheus plugin's per-route labels (matched host, consumer) and
//! counters across snapshot swaps.

mod common;

use std::time::Duration;

use common::prometheus::{self, Exposition};
use common::{upstream, Harness};
use http::Method;
use http_body_util::Full;
use portico_gateway::metrics::StoreStatus;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};

fn route(uri: &str, node: &str, template: Option<&str>) -> Value {
    let mut r = json!({"uri": uri, "upstream": upstream(&[(node, 1)], json!({}))});
    if let Some(t) = template {
        r["plugin_config_id"] = json!(t);
    }
    r
}

fn render(gw: &Harness) -> Exposition {
    let store = StoreStatus {
        reachable: Some(true),
        revision: Some(7),
    };
    prometheus::parse(&gw.gateway.render_metrics(&store, "node-1"))
}

/// The exposition once `n` requests counted by the plugin have ended.
async fn scrape(gw: &Harness, n: u64) -> Exposition {
    for _ in 0..500 {
        let exposition = render(gw);
        if exposition.sum("apisix_http_status", &[]) as u64 >= n {
            return exposition;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} requests counted");
}

#[tokio::test]
async fn node_counters_count_every_request() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![(
        "ws/default/routes/1",
        route("/one", &echo.node(), None),
    )])
    .await;
    for _ in 0..3 {
        assert_eq!(gw.get("/one").await.status, 200);
    }
    assert_eq!(gw.get("/nope").await.status, 404);
    for _ in 0..500 {
        if gw.gateway.metrics().connections().writing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let m = render(&gw);
    assert_eq!(m.sum("apisix_http_requests_total", &[]), 4.0);
    assert_eq!(
        m.sum("apisix_http_status", &[]),
        0.0,
        "no route has the plugin"
    );
    assert!(
        m.sum(
            "apisix_nginx_http_current_connections",
            &[("state", "accepted")]
        ) >= 1.0
    );
    assert_eq!(
        m.sum(
            "apisix_nginx_http_current_connections",
            &[("state", "writing")]
        ),
        0.0
    );
    assert_eq!(m.sum("apisix_etcd_reachable", &[]), 1.0);
    assert_eq!(
        m.sum("apisix_etcd_modify_indexes", &[("key", "x_etcd_index")]),
        7.0
    );
    assert_eq!(
        m.sum("apisix_etcd_modify_indexes", &[("key", "routes")]),
        1.0
    );
    assert_eq!(m.sum("apisix_node_info", &[("hostname", "node-1")]), 1.0);
    assert_eq!(m.types["apisix_http_latency"], "histogram");
}

#[tokio::test]
async fn matched_host_and_consumer_are_labels() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/a/plugin_configs/auth",
            json!({"plugins": {"key-auth": {}, "prometheus": {}}}),
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
    let labels = |code, consumer, source| {
        [
            ("code", code),
            ("route", "h"),
            ("matched_uri", "/h/*"),
            ("matched_host", "api.test"),
            ("consumer", consumer),
            ("response_source", source),
            ("workspace", "a"),
        ]
    };
    assert_eq!(
        m.sum("apisix_http_status", &labels("200", "jack", "upstream")),
        1.0
    );
    assert_eq!(
        m.sum("apisix_http_status", &labels("401", "", "apisix")),
        1.0
    );
    // The rejected request never reached an upstream: no node, no upstream latency.
    assert_eq!(
        m.sum(
            "apisix_http_latency_count",
            &[("type", "upstream"), ("consumer", "")]
        ),
        0.0
    );
}

#[tokio::test]
async fn counters_survive_a_snapshot_swap() {
    let echo = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/m",
            json!({"plugins": {"prometheus": {}}}),
        ),
        (
            "ws/default/routes/1",
            route("/one", &echo.node(), Some("m")),
        ),
    ])
    .await;
    for _ in 0..2 {
        assert_eq!(gw.get("/one").await.status, 200);
    }
    scrape(&gw, 2).await;
    let mut changed = route("/one", &echo.node(), Some("m"));
    changed["desc"] = json!("edited");
    gw.put(vec![
        ("ws/default/routes/1", changed),
        (
            "ws/default/plugin_configs/m",
            json!({"desc": "edited", "plugins": {"prometheus": {}}}),
        ),
    ]);
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
