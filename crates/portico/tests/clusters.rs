//! End to end: one control plane runs three clusters on two real etcd servers; data-plane nodes
//! of each cluster serve only their cluster's config, register, heartbeat, can be drained, and
//! ride out an etcd outage.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use portico_testkit::http;
use portico_testkit::portico::Portico;
use portico_testkit::EtcdServer;
use serde_json::{json, Value};
use support::{upstream, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const KEYRING: (&str, &str) = ("PORTICO_KEYRING", "cluster-test-keyring");

fn v1(cp: &Portico, method: &str, path: &str, body: Value) -> (u16, Value) {
    let r = cp.admin(method, path, &body.to_string());
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn ok(cp: &Portico, method: &str, path: &str, body: Value) -> Value {
    let (status, v) = v1(cp, method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    v
}

fn dp(etcd: &EtcdServer, prefix: &str, dir: &Path) -> Portico {
    Portico::start_role(
        Path::new(BIN),
        &[
            "dp",
            "--etcd-endpoints",
            &etcd.endpoint(),
            "--cluster-prefix",
            prefix,
        ],
        dir,
        &[KEYRING, ("PORTICO_HEARTBEAT", "1")],
    )
}

fn get(p: &Portico, path: &str) -> (u16, String) {
    match http::request(p.proxy.unwrap(), "GET", path, &[], b"") {
        Ok(r) => (r.status, r.text()),
        Err(e) => (0, e.to_string()),
    }
}

fn ready(p: &Portico) -> u16 {
    http::request(p.status.unwrap(), "GET", "/status/ready", &[], b"")
        .map(|r| r.status)
        .unwrap_or(0)
}

fn nodes(cp: &Portico, cluster: &str) -> Vec<Value> {
    let v = ok(
        cp,
        "GET",
        &format!("/api/v1/clusters/{cluster}/nodes"),
        Value::Null,
    );
    v["list"].as_array().cloned().unwrap_or_default()
}

#[test]
fn clusters_on_two_etcds_stay_isolated_and_their_nodes_are_managed() {
    let etcd1 = EtcdServer::start();
    let mut etcd2 = EtcdServer::start();
    let backend = upstream("backend");
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let cp = Portico::start_role(
        Path::new(BIN),
        &["cp", "--etcd-endpoints", &etcd1.endpoint()],
        dirs[0].path(),
        &[KEYRING, ("PORTICO_NODE_LOST_AFTER", "3")],
    );
    ok(
        &cp,
        "PUT",
        "/api/v1/etcd_resources/e1",
        json!({"name": "first", "endpoints": [etcd1.endpoint()]}),
    );
    ok(
        &cp,
        "PUT",
        "/api/v1/etcd_resources/e2",
        json!({"name": "second", "endpoints": [etcd2.endpoint()]}),
    );
    for (id, res) in [("a", "e1"), ("b", "e1"), ("c", "e2")] {
        let c = ok(
            &cp,
            "PUT",
            &format!("/api/v1/clusters/{id}"),
            json!({"name": id, "etcd_resource": res}),
        );
        assert!(c["add_node_command"]
            .as_str()
            .unwrap()
            .contains(&format!("--cluster-prefix /portico/clusters/{id}")));
    }
    let a1 = dp(&etcd1, "/portico/clusters/a", dirs[1].path());
    let mut a2 = dp(&etcd1, "/portico/clusters/a", dirs[2].path());
    let b1 = dp(&etcd1, "/portico/clusters/b", dirs[3].path());
    let c1 = dp(&etcd2, "/portico/clusters/c", dirs[4].path());

    // A route written to A serves on both A nodes and on no node of B or C.
    let up = json!({"nodes": {backend.to_string(): 1}});
    ok(
        &cp,
        "PUT",
        "/api/v1/clusters/a/workspaces/default/upstreams/u",
        up.clone(),
    );
    ok(
        &cp,
        "PUT",
        "/api/v1/clusters/a/workspaces/default/routes/r",
        json!({"uri": "/only-a", "upstream_id": "u"}),
    );
    ok(
        &cp,
        "PUT",
        "/api/v1/clusters/c/workspaces/default/upstreams/u",
        up.clone(),
    );
    ok(
        &cp,
        "PUT",
        "/api/v1/clusters/c/workspaces/default/routes/r",
        json!({"uri": "/only-c", "upstream_id": "u"}),
    );
    for node in [&a1, &a2] {
        wait_until("route on A", || get(node, "/only-a").0 == 200);
    }
    wait_until("route on C", || get(&c1, "/only-c").0 == 200);
    assert_eq!(get(&b1, "/only-a").0, 404);
    assert_eq!(get(&c1, "/only-a").0, 404);
    assert_eq!(get(&a1, "/only-c").0, 404);

    // Four nodes, each healthy and up to date.
    wait_until("nodes healthy and current", || {
        let a = nodes(&cp, "a");
        a.len() == 2
            && a.iter().all(|n| {
                n["state"] == "healthy"
                    && n["applied_revision"].as_i64() >= n["latest_revision"].as_i64()
                    && n["latest_revision"].as_i64() > Some(0)
            })
            && nodes(&cp, "b").len() == 1
            && nodes(&cp, "c")
                .iter()
                .filter(|n| n["state"] == "healthy")
                .count()
                == 1
    });
    let summary = ok(&cp, "GET", "/api/v1/clusters/a", Value::Null);
    assert_eq!(summary["status"]["nodes"]["healthy"], 2, "{summary}");

    // Drain and undrain show on the readiness endpoint; traffic still flows while drained.
    assert_eq!(ready(&a1), 200);
    let a1_id = a1.node_id.clone().unwrap();
    ok(
        &cp,
        "POST",
        &format!("/api/v1/clusters/a/nodes/{a1_id}/drain"),
        Value::Null,
    );
    wait_until("drained node not ready", || ready(&a1) == 503);
    assert_eq!(get(&a1, "/only-a").0, 200);
    ok(
        &cp,
        "POST",
        &format!("/api/v1/clusters/a/nodes/{a1_id}/undrain"),
        Value::Null,
    );
    wait_until("undrained node ready", || ready(&a1) == 200);

    // A killed node becomes lost after the threshold.
    let a2_id = a2.node_id.clone().unwrap();
    a2.kill9();
    wait_until("killed node lost", || {
        nodes(&cp, "a")
            .iter()
            .any(|n| n["id"] == a2_id.as_str() && n["state"] == "lost")
    });

    // etcd of C stops: C's node keeps serving, writes to C fail with 503, and after etcd
    // returns both work again without restarting anything.
    etcd2.kill();
    for _ in 0..20 {
        assert_eq!(get(&c1, "/only-c").0, 200);
    }
    let (status, body) = v1(
        &cp,
        "PUT",
        "/api/v1/clusters/c/workspaces/default/routes/r2",
        json!({"uri": "/c2", "upstream_id": "u"}),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap_or("")
            .contains("unavailable")
            || body["error_msg"]
                .as_str()
                .unwrap_or("")
                .contains("unreachable"),
        "{body}"
    );
    etcd2.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = v1(
            &cp,
            "PUT",
            "/api/v1/clusters/c/workspaces/default/routes/r2",
            json!({"uri": "/c2", "upstream_id": "u"}),
        );
        if status == 201 || status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "writes to C never recovered");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until("watch resumed on C", || get(&c1, "/c2").0 == 200);

    // A second control plane against the same etcd sees every write at once.
    let cp2 = Portico::start_role(
        Path::new(BIN),
        &["cp", "--etcd-endpoints", &etcd1.endpoint()],
        dirs[5].path(),
        &[KEYRING, ("PORTICO_ADMIN_KEY", &cp.admin_key)],
    );
    ok(
        &cp,
        "PUT",
        "/api/v1/clusters/b/workspaces/default/upstreams/x",
        up,
    );
    let seen = ok(
        &cp2,
        "GET",
        "/api/v1/clusters/b/workspaces/default/upstreams/x",
        Value::Null,
    );
    assert_eq!(seen["value"]["id"], "x");
    let planes = ok(&cp2, "GET", "/api/v1/control_planes", Value::Null);
    assert!(planes["total"].as_u64().unwrap() >= 2, "{planes}");

    // Deleting cluster B wipes its keys; its running node keeps serving its last config.
    ok(
        &cp,
        "PUT",
        "/api/v1/clusters/b/workspaces/default/routes/rb",
        json!({"uri": "/only-b", "upstream_id": "x"}),
    );
    wait_until("route on B", || get(&b1, "/only-b").0 == 200);
    let listed = ok(&cp, "GET", "/api/v1/clusters/b/nodes", Value::Null);
    assert!(listed["add_node_command"]
        .as_str()
        .unwrap()
        .contains("/portico/clusters/b"));
    let (status, _) = v1(&cp, "DELETE", "/api/v1/clusters/b", Value::Null);
    assert_eq!(status, 400, "deletion needs confirmation");
    ok(&cp, "DELETE", "/api/v1/clusters/b?confirm=b", Value::Null);
    let (status, _) = v1(&cp, "GET", "/api/v1/clusters/b", Value::Null);
    assert_eq!(status, 404);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        get(&b1, "/only-b").0,
        200,
        "a node of a deleted cluster keeps its config"
    );
}

#[test]
fn a_three_member_etcd_losing_one_member_keeps_writes_and_watches_going() {
    let mut etcd = portico_testkit::EtcdCluster::start(3);
    let endpoints = etcd.endpoints().join(",");
    let backend = upstream("three");
    let (cp_dir, dp_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cp = Portico::start_role(
        Path::new(BIN),
        &["cp", "--etcd-endpoints", &endpoints],
        cp_dir.path(),
        &[KEYRING],
    );
    let node = Portico::start_role(
        Path::new(BIN),
        &["dp", "--etcd-endpoints", &endpoints],
        dp_dir.path(),
        &[KEYRING],
    );
    let r = cp.admin(
        "PUT",
        "/apisix/admin/upstreams/u",
        &json!({"nodes": {backend.to_string(): 1}}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = cp.admin(
        "PUT",
        "/apisix/admin/routes/1",
        r#"{"uri":"/before","upstream_id":"u"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    wait_until("route before the failure", || {
        get(&node, "/before").0 == 200
    });

    // Kill one member (the leader, the hardest case).
    let victim = etcd.leader().unwrap_or(0);
    etcd.member_mut(victim).kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = cp.admin(
            "PUT",
            "/apisix/admin/routes/2",
            r#"{"uri":"/after","upstream_id":"u"}"#,
        );
        if r.status == 201 || r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never resumed: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_until("watch delivers the write made after the failure", || {
        get(&node, "/after").0 == 200
    });
    assert_eq!(get(&node, "/before").0, 200);
}
