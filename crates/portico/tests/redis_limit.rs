//! End to end: limit-count with `policy: redis` / `redis-cluster` on real `portico` processes
//! and real Redis. Two data-plane nodes share one counter; a Redis Cluster spreads counters
//! over its masters; a Redis outage answers 500 or, with `allow_degradation`, lets requests
//! pass.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use portico_testkit::http::{self, Response};
use portico_testkit::portico::Portico;
use portico_testkit::{EtcdServer, RedisCluster, RedisServer};
use serde_json::{json, Value};
use support::{upstream, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_portico");
const KEYRING: (&str, &str) = ("PORTICO_KEYRING", "redis-limit-test-keyring");

fn put(p: &Portico, path: &str, body: Value) {
    let r = p.admin("PUT", path, &body.to_string());
    assert!(
        r.status == 200 || r.status == 201,
        "{path}: {} {}",
        r.status,
        r.text()
    );
}

fn send(proxy: SocketAddr, path: &str) -> Response {
    http::request(proxy, "GET", path, &[], b"").expect("request through the gateway")
}

fn header(r: &Response, name: &str) -> String {
    r.header(name).unwrap_or("").to_string()
}

/// Waits until `proxy` applies the template whose count is `count` on `path`.
fn wait_for_limit(proxy: SocketAddr, path: &str, count: u32) {
    wait_until(&format!("limit {count} on {proxy}{path}"), || {
        http::request(proxy, "GET", path, &[], b"")
            .is_ok_and(|r| r.header("x-ratelimit-limit") == Some(count.to_string().as_str()))
    });
}

fn limit_count(redis: &RedisServer, count: u32, extra: Value) -> Value {
    let mut conf = json!({
        "count": count, "time_window": 60, "policy": "redis",
        "redis_host": "127.0.0.1", "redis_port": redis.port(),
        "redis_password": "gateway-secret", "redis_database": 1
    });
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    json!({"plugins": {"limit-count": conf}})
}

/// Sends `n` requests, alternating between the nodes; the statuses and the remaining quota.
fn alternate(nodes: &[SocketAddr], path: &str, n: usize) -> Vec<(u16, String)> {
    (0..n)
        .map(|i| {
            let r = send(nodes[i % nodes.len()], path);
            (r.status, header(&r, "x-ratelimit-remaining"))
        })
        .collect()
}

#[test]
fn two_data_plane_nodes_share_one_counter() {
    let etcd = EtcdServer::start();
    let redis = RedisServer::start_with_password("gateway-secret");
    let backend = upstream("backend");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let endpoint = etcd.endpoint();
    let cp = Portico::start_role(
        Path::new(BIN),
        &["cp", "--etcd-endpoints", &endpoint],
        dirs[0].path(),
        &[KEYRING],
    );
    let dps: Vec<Portico> = dirs[1..]
        .iter()
        .map(|dir| {
            Portico::start_role(
                Path::new(BIN),
                &["dp", "--etcd-endpoints", &endpoint],
                dir.path(),
                &[KEYRING],
            )
        })
        .collect();
    let nodes: Vec<SocketAddr> = dps.iter().map(|p| p.proxy.expect("proxy")).collect();
    put(
        &cp,
        "/apisix/admin/upstreams/u",
        json!({"nodes": {backend.to_string(): 1}}),
    );
    put(
        &cp,
        "/apisix/admin/plugin_configs/quota",
        limit_count(&redis, 5, json!({})),
    );
    put(
        &cp,
        "/apisix/admin/routes/r",
        json!({"uri": "/api", "upstream_id": "u", "plugin_config_id": "quota"}),
    );
    for node in &nodes {
        wait_for_limit(*node, "/api", 5);
    }
    // The Redis password is stored encrypted.
    let stored = etcd.etcdctl(&["get", "", "--prefix"]);
    let stored = String::from_utf8_lossy(&stored.stdout);
    assert!(stored.contains("redis_password"), "template in etcd");
    assert!(
        !stored.contains("gateway-secret"),
        "password in clear in etcd"
    );

    // Start from an empty window: exactly 5 of 12 requests pass, whichever node they reach.
    redis.cli_text(&["flushall"]);
    let seen = alternate(&nodes, "/api", 12);
    let statuses: Vec<u16> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 503, 503, 503, 503, 503, 503, 503]
    );
    let remaining: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(
        remaining,
        ["4", "3", "2", "1", "0", "0", "0", "0", "0", "0", "0", "0"]
    );
    let rejected = send(nodes[0], "/api");
    assert_eq!(rejected.status, 503);
    assert!(rejected
        .text()
        .contains("503 Service Temporarily Unavailable"));
    assert_eq!(header(&rejected, "x-ratelimit-limit"), "5");
    let reset: f64 = header(&rejected, "x-ratelimit-reset")
        .parse()
        .expect("reset");
    assert!(reset > 50.0 && reset <= 60.0, "{reset}");
    // One counter, in database 1, keyed like APISIX's.
    let keys = redis.cli_text(&["-n", "1", "keys", "*"]);
    assert!(
        keys.starts_with("plugin-limit-countws/default/plugin_configs/quota:")
            && keys.ends_with(":127.0.0.1")
            && !keys.contains('\n'),
        "{keys}"
    );
    assert_eq!(redis.cli_text(&["-n", "1", "get", &keys]), "13");

    // Editing the template while traffic runs: a new counter with the new quota and code.
    put(
        &cp,
        "/apisix/admin/plugin_configs/quota",
        limit_count(
            &redis,
            3,
            json!({"rejected_code": 429, "rejected_msg": "quota exceeded"}),
        ),
    );
    for node in &nodes {
        wait_for_limit(*node, "/api", 3);
    }
    redis.cli_text(&["flushall"]);
    let statuses: Vec<u16> = alternate(&nodes, "/api", 6).iter().map(|s| s.0).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    let r = send(nodes[1], "/api");
    assert_eq!(r.text(), "{\"error_msg\":\"quota exceeded\"}\n");
}

fn up(dir: &Path) -> Portico {
    Portico::up(Path::new(BIN), dir, &[])
}

fn cluster_template(cluster: &RedisCluster) -> Value {
    json!({"plugins": {"limit-count": {
        "count": 2, "time_window": 60, "key": "arg_user",
        "policy": "redis-cluster", "redis_cluster_name": "limits",
        // One seed is enough: the other masters are learnt from it.
        "redis_cluster_nodes": [cluster.addrs()[1]]
    }}})
}

#[test]
fn a_redis_cluster_counts_for_two_gateways() {
    let cluster = RedisCluster::start(3);
    let backend = upstream("backend");
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // Two stand-alone gateways with the same objects count in the same keys.
    let gateways: Vec<Portico> = dirs.iter().map(|d| up(d.path())).collect();
    for g in &gateways {
        put(
            g,
            "/apisix/admin/upstreams/u",
            json!({"nodes": {backend.to_string(): 1}}),
        );
        put(
            g,
            "/apisix/admin/plugin_configs/c",
            cluster_template(&cluster),
        );
        put(
            g,
            "/apisix/admin/routes/r",
            json!({"uri": "/c", "upstream_id": "u", "plugin_config_id": "c"}),
        );
    }
    let nodes: Vec<SocketAddr> = gateways.iter().map(|g| g.proxy.expect("proxy")).collect();
    for node in &nodes {
        wait_for_limit(*node, "/c?user=warmup", 2);
    }
    let mut masters = std::collections::HashSet::new();
    for user in 0..8 {
        let path = format!("/c?user=u{user}");
        let statuses: Vec<u16> = alternate(&nodes, &path, 5).iter().map(|s| s.0).collect();
        assert_eq!(statuses, [200, 200, 503, 503, 503], "user u{user}");
        let holders: Vec<usize> = (0..3)
            .filter(|&i| {
                let pattern = format!("plugin-limit-count*:u{user}");
                !cluster.node(i).cli_text(&["keys", &pattern]).is_empty()
            })
            .collect();
        assert_eq!(holders.len(), 1, "one counter for u{user}");
        masters.insert(holders[0]);
    }
    assert!(masters.len() > 1, "counters spread over the masters");
}

#[test]
fn redis_outage_answers_500_or_degrades() {
    let mut redis = RedisServer::start();
    // Accepts connections but never answers: every call times out.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let backend = upstream("backend");
    let dir = tempfile::tempdir().unwrap();
    let g = up(dir.path());
    put(
        &g,
        "/apisix/admin/upstreams/u",
        json!({"nodes": {backend.to_string(): 1}}),
    );
    let template = |port: u16, degrade: bool| {
        json!({"plugins": {"limit-count": {
            "count": 100, "time_window": 60, "policy": "redis",
            "redis_host": "127.0.0.1", "redis_port": port, "redis_timeout": 300,
            "allow_degradation": degrade
        }}})
    };
    put(
        &g,
        "/apisix/admin/plugin_configs/strict",
        template(redis.port(), false),
    );
    put(
        &g,
        "/apisix/admin/plugin_configs/lenient",
        template(redis.port(), true),
    );
    put(
        &g,
        "/apisix/admin/plugin_configs/silent",
        template(silent_port, false),
    );
    for id in ["strict", "lenient", "silent"] {
        put(
            &g,
            &format!("/apisix/admin/routes/{id}"),
            json!({"uri": format!("/{id}"), "upstream_id": "u", "plugin_config_id": id}),
        );
    }
    let proxy = g.proxy.expect("proxy");
    wait_for_limit(proxy, "/strict", 100);
    wait_for_limit(proxy, "/lenient", 100);

    redis.stop();
    let r = send(proxy, "/strict");
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "{\"error_msg\":\"failed to limit count\"}\n");
    assert_eq!(r.header("x-ratelimit-limit"), None);
    let r = send(proxy, "/lenient");
    assert_eq!(r.status, 200, "allow_degradation passes: {}", r.text());
    assert!(r.text().contains("hello from backend"));
    assert_eq!(r.header("x-ratelimit-limit"), None);

    // A Redis that does not answer: 500 once redis_timeout is over, not later.
    let started = Instant::now();
    let r = send(proxy, "/silent");
    assert_eq!(r.status, 500);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Redis is back: counting goes on (from an empty window).
    redis.restart();
    let r = send(proxy, "/strict");
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "x-ratelimit-remaining"), "99");
    drop(silent);
}

#[test]
fn the_admin_api_accepts_redis_policies_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let g = up(dir.path());
    let write = |conf: Value| {
        let body = json!({"plugins": {"limit-count": conf}}).to_string();
        let r = g.admin("PUT", "/apisix/admin/plugin_configs/p", &body);
        (
            r.status,
            r.json()["error_msg"].as_str().unwrap_or("").to_string(),
        )
    };
    let base = json!({"count": 1, "time_window": 10});
    let with = |extra: Value| {
        let mut conf = base.clone();
        if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        conf
    };
    for ok in [
        with(json!({"policy": "redis", "redis_host": "127.0.0.1"})),
        with(
            json!({"policy": "redis", "redis_host": "redis.internal", "redis_port": 6380,
                    "redis_username": "u", "redis_password": "p", "redis_database": 2,
                    "redis_ssl": true, "redis_ssl_verify": true, "redis_timeout": 50,
                    "redis_keepalive_timeout": 5000, "redis_keepalive_pool": 4}),
        ),
        with(json!({"policy": "redis-cluster", "redis_cluster_name": "c",
                    "redis_cluster_nodes": ["127.0.0.1:7000", "[::1]:7001"],
                    "redis_cluster_ssl": true, "redis_password": "p"})),
        with(json!({"policy": "redis-sentinel", "redis_master_name": "m",
                    "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}],
                    "sentinel_password": "s", "redis_password": "p", "redis_database": 3})),
    ] {
        assert!(matches!(write(ok.clone()).0, 200 | 201), "{ok}");
    }
    let prefix = "failed to check the configuration of plugin limit-count err: ";
    for (conf, msg) in [
        (
            with(json!({"policy": "redis"})),
            "then clause did not match".to_string(),
        ),
        (
            with(json!({"policy": "redis-cluster", "redis_cluster_name": "c",
                        "redis_cluster_nodes": ["127.0.0.1:0"]})),
            "failed to parse address: 127.0.0.1:0 err: invalid port in address 127.0.0.1:0"
                .to_string(),
        ),
        (
            with(
                json!({"policy": "redis-sentinel", "redis_master_name": "m", "redis_role": "slave",
                        "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}]}),
            ),
            "redis_role slave is not supported: replicas are read-only and the counters are \
             written"
                .to_string(),
        ),
        (
            with(json!({"policy": "redis", "redis_host": "127.0.0.1", "window_type": "sliding"})),
            "window_type sliding is not supported yet".to_string(),
        ),
        (
            with(json!({"policy": "redis", "redis_host": "127.0.0.1", "sync_interval": 1})),
            "sync_interval (delayed synchronisation) is not supported yet".to_string(),
        ),
    ] {
        assert_eq!(
            write(conf.clone()),
            (400, format!("{prefix}{msg}")),
            "{conf}"
        );
    }
}
