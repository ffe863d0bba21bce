use portico_snapshot::runtime::prometheus::{Masks, Observation, Source};
use portico_snapshot::Snapshot;

use super::*;
use crate::{ClientLimits, Gateway};

#[test]
fn node_counters_track_requests_and_connections() {
    let m = Metrics::new();
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    for _ in 0..3 {
        m.request_begun();
    }
    m.request_finished();
    let c = m.connections();
    assert_eq!((c.accepted, c.active, c.writing), (2, 1, 2));
    assert_eq!(m.requests_total(), 3);
}

#[test]
fn the_exposition_has_the_node_s_and_the_plugin_s_families() {
    let gw = Gateway::new(Snapshot::empty(), ClientLimits::default());
    gw.metrics.request_begun();
    gw.snapshot()
        .plugins
        .state
        .prometheus
        .observe(&Observation {
            workspace: "default",
            route: "1",
            matched_uri: "/a",
            matched_host: "",
            consumer: "",
            node: None,
            status: 401,
            source: Source::Apisix,
            masks: Masks::default(),
            total: std::time::Duration::from_millis(1),
            upstream: None,
            ingress: 10,
            egress: 20,
        });
    let store = StoreStatus {
        reachable: Some(true),
        revision: Some(42),
    };
    let text = gw.render_metrics(&store, "host-1");
    for line in [
        "apisix_http_requests_total 1\n",
        "apisix_etcd_reachable 1\n",
        "apisix_etcd_modify_indexes{key=\"x_etcd_index\"} 42\n",
        "apisix_node_info{hostname=\"host-1\",version=\"",
        "apisix_http_status{code=\"401\",route=\"1\",matched_uri=\"/a\"",
        "apisix_bandwidth{type=\"ingress\",route=\"1\"",
        "apisix_nginx_http_current_connections{state=\"writing\"} 1\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    let mut sorted = families.clone();
    sorted.sort();
    assert_eq!(families, sorted, "families in APISIX's order");
    let unreachable = gw.render_metrics(
        &StoreStatus {
            reachable: Some(false),
            revision: None,
        },
        "h",
    );
    assert!(unreachable.contains("apisix_etcd_reachable 0\n"));
    assert!(!unreachable.contains("x_etcd_index"));
}
