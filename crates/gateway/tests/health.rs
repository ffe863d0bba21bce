//! Health checks through a real node: active probes eject and readmit nodes, passive reports
//! from proxied traffic eject them, and health state follows config swaps. Intervals are the
//! schema's minimum, 1 s, so each test takes a few seconds.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_balancer::health::NodeStatus;
use portico_balancer::{HealthTable, NodeIndex};
use serde_json::{json, Value};
use support::{eventually, node_map, Admin, Backend, Node};

/// The health table of upstream `id` in the snapshot the node serves now.
fn table_of(node: &Node, id: &str) -> Option<Arc<HealthTable>> {
    let snapshot = node.gateway.snapshot();
    let upstream = snapshot
        .upstreams
        .get(&format!("ws/default/upstreams/{id}"))?;
    upstream.balancer.health().cloned()
}

/// The bookkeeping of `backend` as a node of upstream `id`; `None` if it is not a node of it.
fn status_in(node: &Node, id: &str, backend: &Backend) -> Option<NodeStatus> {
    let snapshot = node.gateway.snapshot();
    let upstream = snapshot
        .upstreams
        .get(&format!("ws/default/upstreams/{id}"))?;
    let at =
        (upstream.nodes.iter()).position(|n| format!("{}:{}", n.host, n.port) == backend.node())?;
    upstream.balancer.health()?.status(NodeIndex::new(at)?)
}

/// The health table of upstream 1.
fn table(node: &Node) -> Option<Arc<HealthTable>> {
    table_of(node, "1")
}

/// The bookkeeping of `backend` as a node of upstream 1.
fn status(node: &Node, backend: &Backend) -> Option<NodeStatus> {
    status_in(node, "1", backend)
}

/// Whether `backend` is a healthy node of upstream 1 now; `None` if it is not a node of it.
fn healthy(node: &Node, backend: &Backend) -> Option<bool> {
    status(node, backend).map(|s| s.state.is_healthy())
}

/// A node following an embedded store, the Admin API over it, and upstream 1 on `backends`
/// with `checks`, routed from `/hello`.
async fn setup(backends: &[&Backend], checks: Value) -> (Node, Admin, tempfile::TempDir) {
    let (store, dir) = support::embedded_store();
    let mut admin = Admin::start(store.clone()).await;
    let node = Node::start(store, None).await;
    let upstream = json!({"type": "roundrobin", "nodes": node_map(backends), "checks": checks});
    admin.put("upstreams/1", upstream).await;
    let rev = admin
        .put("routes/1", json!({"uri": "/hello", "upstream_id": "1"}))
        .await;
    node.wait_applied(rev).await;
    (node, admin, dir)
}

/// Sends `n` requests to `/hello`; every one must succeed. Returns the bodies.
async fn bodies(node: &Node, n: usize) -> Vec<String> {
    let mut client = node.client();
    let mut out = Vec::new();
    for _ in 0..n {
        let (status, body) = client.get("/hello").await.expect("request");
        assert_eq!(status, 200, "{body}");
        out.push(body);
    }
    out
}

#[tokio::test]
async fn a_node_failing_its_probe_is_ejected_and_readmitted_within_the_thresholds() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let checks = json!({"active": {
        "http_path": "/status",
        "healthy": {"interval": 1, "successes": 2},
        "unhealthy": {"interval": 1, "http_failures": 2},
    }});
    let (node, _admin, _dir) = setup(&[&a, &b], checks).await;
    eventually("b is probed", || async { b.probes() > 0 }).await;
    assert!(bodies(&node, 10).await.iter().any(|body| body == "b"));

    // Failing probes: out after exactly `http_failures` of them, about one interval each.
    b.set_probe_status(500);
    let (probes_before, failing_since) = (b.probes(), Instant::now());
    eventually("b is ejected", || async {
        healthy(&node, &b) == Some(false)
    })
    .await;
    let failed = b.probes() - probes_before;
    assert!(
        (2..=3).contains(&failed),
        "ejected after {failed} failed probes"
    );
    assert!(failing_since.elapsed() < Duration::from_secs(4));
    let hits = b.hits();
    assert!(bodies(&node, 20).await.iter().all(|body| body == "a"));
    assert_eq!(b.hits(), hits, "no request reaches an ejected node");

    // Recovered: back after `successes` good probes at the unhealthy interval.
    b.set_probe_status(200);
    let probes_before = b.probes();
    eventually("b is readmitted", || async {
        healthy(&node, &b) == Some(true)
    })
    .await;
    assert!(b.probes() - probes_before >= 2, "readmitted too early");
    assert!(bodies(&node, 10).await.iter().any(|body| body == "b"));
}

#[tokio::test]
async fn a_node_refusing_connections_is_ejected_by_tcp_probes_and_readmitted() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let checks = json!({"active": {
        "type": "tcp",
        "healthy": {"interval": 1, "successes": 1},
        "unhealthy": {"interval": 1, "tcp_failures": 2},
    }});
    let (node, _admin, _dir) = setup(&[&a, &b], checks).await;
    b.stop();
    // Requests meanwhile still succeed: a refused connect is retried on the other node.
    eventually("b is ejected", || async {
        bodies(&node, 2).await.iter().all(|body| body == "a") && healthy(&node, &b) == Some(false)
    })
    .await;
    let counted = status(&node, &b);
    assert!(counted.is_some_and(|s| s.tcp_failures >= 2), "{counted:?}");

    b.restart().await;
    eventually("b is readmitted", || async {
        healthy(&node, &b) == Some(true)
    })
    .await;
    eventually("b takes requests again", || async {
        bodies(&node, 4).await.iter().any(|body| body == "b")
    })
    .await;
}

#[tokio::test]
async fn proxied_500s_eject_a_node_after_the_passive_http_failures() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    // Probes answer 204, which counts neither way: only proxied traffic moves health here.
    a.set_probe_status(204);
    b.set_probe_status(204);
    let checks = json!({
        "active": {"http_path": "/status", "healthy": {"interval": 1}, "unhealthy": {"interval": 1}},
        "passive": {"unhealthy": {"http_statuses": [500], "http_failures": 3}},
    });
    let (node, _admin, _dir) = setup(&[&a, &b], checks).await;
    b.set_fail_status(500);
    let mut client = node.client();
    let mut from_b = 0;
    for _ in 0..30 {
        let (status, body) = client.get("/hello").await.expect("request");
        if body == "b" {
            assert_eq!(status, 500, "b's answer is passed on, not retried");
            from_b += 1;
        }
    }
    assert_eq!(from_b, 3, "b is out after exactly 3 proxied 500s");
    assert_eq!(healthy(&node, &b), Some(false));
    assert_eq!(healthy(&node, &a), Some(true));
}

#[tokio::test]
async fn proxied_connect_failures_eject_a_node_after_the_passive_tcp_failures() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    // Probes go to a's port (answering 204, ignored), so a refused b is seen by traffic only.
    a.set_probe_status(204);
    let port: u16 = a
        .node()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let checks = json!({
        "active": {"http_path": "/status", "port": port,
                   "healthy": {"interval": 1}, "unhealthy": {"interval": 1}},
        "passive": {"unhealthy": {"tcp_failures": 2}},
    });
    let (node, _admin, _dir) = setup(&[&a, &b], checks).await;
    b.stop();
    // Each try on b fails to connect and is retried on a: clients see no failure.
    let mut requests = 0;
    while healthy(&node, &b) != Some(false) {
        assert!(requests < 8, "b still healthy after {requests} requests");
        assert!(bodies(&node, 1).await.iter().all(|body| body == "a"));
        requests += 1;
    }
    let counted = status(&node, &b);
    assert!(counted.is_some_and(|s| s.tcp_failures == 2), "{counted:?}");
}

#[tokio::test]
async fn health_follows_config_swaps_and_stops_with_the_upstream() {
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let checks = json!({"active": {
        "http_path": "/status",
        "healthy": {"interval": 1, "successes": 3},
        "unhealthy": {"interval": 1, "http_failures": 1},
    }});
    let (node, mut admin, _dir) = setup(&[&a, &b], checks.clone()).await;
    b.set_probe_status(500);
    eventually("b is ejected", || async {
        healthy(&node, &b) == Some(false)
    })
    .await;
    let before = table(&node).expect("table");

    // Same nodes, new description: the very same table, b still out right after the swap.
    let same = json!({"desc": "edited", "nodes": node_map(&[&a, &b]), "checks": checks});
    node.wait_applied(admin.put("upstreams/1", same).await)
        .await;
    let after = table(&node).expect("table");
    assert!(
        Arc::ptr_eq(&before, &after),
        "health table replaced by a desc edit"
    );
    assert_eq!(healthy(&node, &b), Some(false));
    assert!(bodies(&node, 10).await.iter().all(|body| body == "a"));

    // Another node: a new table, b's state carried over, c healthy and probed from now on.
    let more = json!({"nodes": node_map(&[&a, &b, &c]), "checks": checks});
    node.wait_applied(admin.put("upstreams/1", more).await)
        .await;
    assert!(!Arc::ptr_eq(&before, &table(&node).expect("table")));
    assert_eq!(healthy(&node, &b), Some(false));
    assert_eq!(healthy(&node, &c), Some(true));
    eventually("c is probed", || async { c.probes() > 0 }).await;

    // Gone: nothing probes its nodes any more.
    admin.delete("routes/1").await;
    node.wait_applied(admin.delete("upstreams/1").await).await;
    let probes = a.probes();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        a.probes(),
        probes,
        "the checker of a deleted upstream still probes"
    );
}

#[tokio::test]
async fn https_probes_read_the_status_and_verify_certificates_when_asked() {
    let certs = tokio::task::spawn_blocking(portico_testkit::TestCerts::generate)
        .await
        .expect("certificates");
    let tls = Backend::start_tls("tls", &certs).await;
    let https = |verify: bool| {
        json!({"active": {
            "type": "https", "http_path": "/status", "https_verify_certificate": verify,
            "healthy": {"interval": 1, "successes": 1},
            "unhealthy": {"interval": 1, "http_failures": 1, "tcp_failures": 1},
        }})
    };
    // Upstream 1 accepts the test CA's certificate unverified; upstream 2 verifies it against
    // the system's CAs, which do not know the test CA: the handshake fails.
    let (node, mut admin, _dir) = setup(&[&tls], https(false)).await;
    let verified = json!({"nodes": node_map(&[&tls]), "checks": https(true)});
    node.wait_applied(admin.put("upstreams/2", verified).await)
        .await;
    eventually("the unverifiable node is out", || async {
        status_in(&node, "2", &tls).is_some_and(|s| !s.state.is_healthy() && s.tcp_failures == 1)
    })
    .await;
    assert!(tls.probes() > 0, "the unverified probe got through");
    assert_eq!(healthy(&node, &tls), Some(true));

    // The status line read over TLS counts.
    tls.set_probe_status(503);
    eventually("a 503 over TLS ejects", || async {
        healthy(&node, &tls) == Some(false)
    })
    .await;
    assert_eq!(status(&node, &tls).map(|s| s.http_failures), Some(1));
}
