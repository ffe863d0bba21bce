//! limit-req and limit-conn with their Redis policies through the real gateway and a real
//! `redis-server`: configurations the Admin API accepts or refuses, two gateways sharing one
//! Redis limited together, requests counted until their response ends (or their client
//! leaves), a template edit moving the limit into Redis while traffic runs, and Redis going
//! down (500, or a pass with `allow_degradation`).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{assert_error_page, upstream, Harness, Reply};
use http::Method;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico_model::Kind;
use portico_testkit::upstream::{handlers, Gate, Upstream};
use portico_testkit::RedisServer;
use serde_json::{json, Value};

/// What the Admin API says to a plugin template holding `plugin` configured as `conf`.
fn admin_check(plugin: &str, conf: Value) -> Result<(), String> {
    let mut plugins = serde_json::Map::new();
    plugins.insert(plugin.to_string(), conf);
    portico_model::check(
        Kind::PluginConfig,
        &json!({"id": "t", "plugins": plugins}),
        &portico_plugins::registry(),
    )
}

/// `conf` with the Redis fields of `redis` merged in.
fn in_redis(redis: &RedisServer, mut conf: Value) -> Value {
    if let Some(o) = conf.as_object_mut() {
        o.insert("policy".into(), json!("redis"));
        o.insert("redis_host".into(), json!("127.0.0.1"));
        o.insert("redis_port".into(), json!(redis.port()));
    }
    conf
}

/// Template `t` holding `plugin` as `conf`, and routes `/<path>` → `node` through it.
fn objects(plugin: &str, conf: Value, routes: &[(&str, &str)]) -> Vec<(String, Value)> {
    let mut out = vec![(
        "ws/default/plugin_configs/t".to_string(),
        json!({"plugins": {plugin: conf}}),
    )];
    for (i, (path, node)) in routes.iter().enumerate() {
        out.push((
            format!("ws/default/routes/{i}"),
            json!({"uri": path, "upstream": upstream(&[(node, 1)], json!({})),
                   "plugin_config_id": "t"}),
        ));
    }
    out
}

/// `GET path` in its own task; the reply and how long it took.
fn spawn_get(gw: &Harness, path: &str) -> tokio::task::JoinHandle<(Reply, Duration)> {
    let client = gw.client();
    let req = gw
        .request(Method::GET, path)
        .body(Full::default())
        .expect("request");
    tokio::spawn(async move {
        let started = Instant::now();
        let resp = client.request(req).await.expect("gateway answers");
        (Reply::read(resp).await, started.elapsed())
    })
}

/// Polls `GET path` until it answers `status` (within 10 s).
async fn until_status(gw: &Harness, path: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.get(path).await;
        if r.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {} ({})",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn limit_req_shares_one_bucket_between_two_gateways() {
    for ok in [
        json!({"rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis",
               "redis_host": "127.0.0.1"}),
        json!({"rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis-cluster",
               "redis_cluster_nodes": ["127.0.0.1:7000"], "redis_cluster_name": "c"}),
        json!({"rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis-sentinel",
               "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}],
               "redis_master_name": "m"}),
    ] {
        assert_eq!(admin_check("limit-req", ok.clone()), Ok(()), "{ok}");
    }
    for bad in [
        json!({"rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis"}),
        json!({"rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis",
               "redis_host": "127.0.0.1", "redis_port": 65536}),
        json!({"rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis-cluster",
               "redis_cluster_nodes": ["127.0.0.1:notaport"], "redis_cluster_name": "c"}),
        json!({"rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis",
               "redis_host": "127.0.0.1", "redis_timeout": 0}),
    ] {
        assert!(admin_check("limit-req", bad.clone()).is_err(), "{bad}");
    }

    let redis = RedisServer::start();
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let local = json!({"rate": 1, "burst": 0, "key": "remote_addr", "nodelay": true});
    let a = Harness::start(objects("limit-req", local.clone(), &[("/r", &node)])).await;
    let b = Harness::start(objects("limit-req", local, &[("/r", &node)])).await;
    // Local buckets: each gateway lets its own request through.
    assert_eq!(a.get("/r").await.status, 200);
    assert_eq!(b.get("/r").await.status, 200);
    // The same edit on both, while traffic runs: one bucket in Redis. At 1/s with a burst of
    // 1, two requests fit at once, wherever they arrive; the next ones are over the burst.
    let shared = in_redis(
        &redis,
        json!({"rate": 1, "burst": 1, "key": "remote_addr", "nodelay": true,
               "rejected_code": 429, "rejected_msg": "slow down"}),
    );
    for gw in [&a, &b] {
        gw.put(objects("limit-req", shared.clone(), &[("/r", &node)]));
    }
    assert_eq!(a.get("/r").await.status, 200);
    assert_eq!(b.get("/r").await.status, 200);
    for gw in [&b, &a] {
        let r = gw.get("/r").await;
        assert_eq!(r.status, 429);
        assert_eq!(r.text(), "{\"error_msg\":\"slow down\"}\n");
    }
    assert_eq!(up.hits(), 4);
    assert_eq!(redis.cli_text(&["keys", "limit_req:*"]).lines().count(), 1);

    // Without nodelay the request within the burst waits its turn, whichever gateway it hits.
    let delayed = in_redis(&redis, json!({"rate": 2, "burst": 1, "key": "remote_addr"}));
    for gw in [&a, &b] {
        gw.put(objects("limit-req", delayed.clone(), &[("/r", &node)]));
    }
    let started = Instant::now();
    assert_eq!(a.get("/r").await.status, 200);
    let r = b.get("/r").await;
    assert_eq!(r.status, 200);
    // Half a second after the first at 2/s.
    assert!(
        started.elapsed() >= Duration::from_millis(490),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn limit_conn_counts_across_two_gateways_until_responses_end() {
    for ok in [
        json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr",
               "policy": "redis", "redis_host": "127.0.0.1", "key_ttl": 60}),
        json!({"default_conn_delay": 0.1, "rules": [{"conn": 1, "burst": 0, "key": "$arg_u"}],
               "policy": "redis-cluster", "redis_cluster_nodes": ["127.0.0.1:7000"],
               "redis_cluster_name": "c"}),
    ] {
        assert_eq!(admin_check("limit-conn", ok.clone()), Ok(()), "{ok}");
    }
    assert_eq!(
        admin_check(
            "limit-conn",
            json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr",
                   "policy": "redis", "redis_host": "127.0.0.1", "key_ttl": 0})
        ),
        Err(
            "failed to check the configuration of plugin limit-conn err: invalid key_ttl 0: \
             requests would stop counting at once (at least 1 second)"
                .to_string()
        )
    );
    assert!(admin_check(
        "limit-conn",
        json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr",
               "policy": "redis-sentinel", "redis_master_name": "m"})
    )
    .is_err());

    let redis = RedisServer::start();
    let gate = Gate::new();
    let held = Upstream::start("held", gate.hold(handlers::echo())).await;
    let free = Upstream::start("free", handlers::echo()).await;
    let routes = [("/held", held.node()), ("/free", free.node())];
    let routes: Vec<(&str, &str)> = routes.iter().map(|(p, n)| (*p, n.as_str())).collect();
    let conf = in_redis(
        &redis,
        json!({"conn": 1, "burst": 1, "default_conn_delay": 0.3, "key": "remote_addr"}),
    );
    let a = Harness::start(objects("limit-conn", conf.clone(), &routes)).await;
    let b = Harness::start(objects("limit-conn", conf, &routes)).await;
    // One request in flight on each gateway: the second is over `conn`, so it waited 0.3 s.
    let first = spawn_get(&a, "/held");
    gate.until_waiting(1).await;
    let second = spawn_get(&b, "/held");
    gate.until_waiting(2).await;
    // Over `conn + burst` on either gateway, even on a route whose upstream is free.
    for gw in [&a, &b] {
        assert_error_page(
            &gw.get("/free").await,
            503,
            "Service Temporarily Unavailable",
        );
    }
    assert_eq!(free.hits(), 0);
    // Their responses end: both are released and requests pass again.
    gate.open();
    let (r1, _) = first.await.expect("task");
    let (r2, took2) = second.await.expect("task");
    assert_eq!([r1.status.as_u16(), r2.status.as_u16()], [200, 200]);
    assert!(took2 >= Duration::from_millis(290), "{took2:?}");
    until_status(&b, "/free", 200).await;
    // The last request out removed the set.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis.cli_text(&["keys", "limit_conn:*"]).is_empty() {
        assert!(Instant::now() < deadline, "requests still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A client that leaves while its request waits upstream is released too.
    let gate = Gate::new();
    let stuck = Upstream::start("stuck", gate.hold(handlers::echo())).await;
    let tight = in_redis(
        &redis,
        json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr",
               "rejected_code": 429, "rejected_msg": "busy"}),
    );
    let routes = [("/held", stuck.node()), ("/free", free.node())];
    let routes: Vec<(&str, &str)> = routes.iter().map(|(p, n)| (*p, n.as_str())).collect();
    for gw in [&a, &b] {
        gw.put(objects("limit-conn", tight.clone(), &routes));
    }
    // An HTTP/2 client sends its request and goes away while the upstream holds it (an h2
    // connection that closes cancels its streams).
    let tcp = tokio::net::TcpStream::connect(a.addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    let driver = tokio::spawn(connection);
    let req = http::Request::get(a.url("/held"))
        .body(Full::<Bytes>::default())
        .expect("request");
    let leaving = tokio::spawn(async move { sender.send_request(req).await.map(|_| ()) });
    gate.until_waiting(1).await;
    let r = b.get("/free").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "{\"error_msg\":\"busy\"}\n");
    leaving.abort();
    driver.abort();
    until_status(&b, "/free", 200).await;
    gate.open();
}

#[tokio::test]
async fn redis_down_answers_500_or_degrades() {
    let mut redis = RedisServer::start();
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let with = |mut conf: Value, extra: Value| {
        conf.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        in_redis(&redis, conf)
    };
    let req = json!({"rate": 100, "burst": 10, "key": "remote_addr", "redis_timeout": 300});
    let conn = json!({"conn": 10, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr",
                      "redis_timeout": 300});
    let req_conf = |extra: Value| with(req.clone(), extra);
    let conn_conf = |extra: Value| with(conn.clone(), extra);
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/req".to_string(),
            json!({"plugins": {"limit-req": req_conf(json!({}))}}),
        ),
        (
            "ws/default/plugin_configs/req-lenient".to_string(),
            json!({"plugins": {"limit-req": req_conf(json!({"allow_degradation": true}))}}),
        ),
        (
            "ws/default/plugin_configs/conn".to_string(),
            json!({"plugins": {"limit-conn": conn_conf(json!({}))}}),
        ),
        (
            "ws/default/plugin_configs/conn-lenient".to_string(),
            json!({"plugins": {"limit-conn": conn_conf(json!({"allow_degradation": true}))}}),
        ),
        route(0, "/req", &node, "req"),
        route(1, "/req-lenient", &node, "req-lenient"),
        route(2, "/conn", &node, "conn"),
        route(3, "/conn-lenient", &node, "conn-lenient"),
    ])
    .await;
    let paths = ["/req", "/req-lenient", "/conn", "/conn-lenient"];
    for path in paths {
        assert_eq!(gw.get(path).await.status, 200, "{path}");
    }
    redis.stop();
    assert_error_page(&gw.get("/req").await, 500, "Internal Server Error");
    assert_error_page(&gw.get("/conn").await, 500, "Internal Server Error");
    assert_eq!(gw.get("/req-lenient").await.status, 200);
    assert_eq!(gw.get("/conn-lenient").await.status, 200);
    assert_eq!(up.hits(), 6);
    // Back up: limiting again.
    redis.restart();
    for path in paths {
        until_status(&gw, path, 200).await;
    }
}

fn route(i: usize, path: &str, node: &str, template: &str) -> (String, Value) {
    (
        format!("ws/default/routes/{i}"),
        json!({"uri": path, "upstream": upstream(&[(node, 1)], json!({})),
               "plugin_config_id": template}),
    )
}
