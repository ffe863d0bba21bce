//! limit-conn's Redis policies against real `redis-server` processes.

use std::time::Instant;

use portico_testkit::redis::SENTINEL_MASTER;
use portico_testkit::{RedisCluster, RedisSentinel, RedisServer};
use serde_json::json;

use super::*;
use crate::testing::{ctx_for, get, Fixture};
use crate::Conf;

const OWNER: &str = "ws/default/plugin_configs/1";

fn build(f: &Fixture, conf: &Value) -> Arc<dyn Plugin> {
    f.compiler()
        .entry(Conf {
            name: NAME,
            conf,
            owner: OWNER,
        })
        .expect("builds")
        .expect("enabled")
        .plugin()
        .clone()
}

fn redis_conf(redis: &RedisServer, extra: Value) -> Value {
    let mut conf = json!({
        "conn": 1, "burst": 1, "default_conn_delay": 0.1, "key": "remote_addr",
        "policy": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port()
    });
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    conf
}

/// Runs `access` for a GET of `uri`, waiting as the chain does: "pass" or the answer's status
/// and body, how long it took, and the context (which holds the request's count until `log`
/// or drop).
async fn enter(p: &Arc<dyn Plugin>, uri: &str) -> (String, Duration, Ctx) {
    let mut ctx = ctx_for(get(uri));
    let started = Instant::now();
    let mut flow = p.access(&mut ctx);
    let mut waited = false;
    while let Flow::Wait(pending) = flow {
        waited = true;
        flow = pending.await(&mut ctx);
    }
    assert!(waited, "the redis policy waits for Redis");
    let out = match flow {
        Flow::Respond(r) => format!("{} {}", r.status.as_u16(), String::from_utf8_lossy(&r.body)),
        _ => "pass".to_string(),
    };
    (out, started.elapsed(), ctx)
}

/// The set of `conf` (schema defaults applied) for `value`.
fn set_key(conf: &Value, value: &str) -> String {
    let mut checked = conf.clone();
    portico_model::schema::validate_in_place(&schema(), &mut checked).expect("valid");
    format!("limit_conn:{OWNER}:{}:{value}", conf_version(&checked))
}

/// Waits (up to 5 s) until `key` counts `n` requests in Redis; a released request leaves from
/// a task of its own.
async fn until_counted(redis: &RedisServer, key: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let count: usize = redis.cli_text(&["zcard", key]).parse().expect("zcard");
        if count == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} still counts {count}, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn two_nodes_count_together_until_log() {
    let redis = RedisServer::start();
    let conf = redis_conf(&redis, json!({}));
    let key = set_key(&conf, "127.0.0.1");
    // Two nodes: each its own plugin state (pools, local counts).
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    let (a, b) = (build(&node_a, &conf), build(&node_b, &conf));
    let (first, _, ctx1) = enter(&a, "/").await;
    assert_eq!(first, "pass");
    // On the other node: over `conn`, within the burst, so counted and delayed 0.1 s.
    let (second, took, ctx2) = enter(&b, "/").await;
    assert_eq!(second, "pass");
    assert!(took >= Duration::from_millis(100), "{took:?}");
    // Over `conn + burst`, on either node: the nginx page, not counted.
    for p in [&a, &b] {
        let (third, _, _) = enter(p, "/").await;
        assert!(
            third.starts_with("503 <html>") && third.contains("Service Temporarily Unavailable"),
            "{third}"
        );
    }
    assert!(node_a.state.limit_conn.is_empty() && node_b.state.limit_conn.is_empty());
    // In Redis: one member per request, each counting until key_ttl (3600 s) from now.
    assert_eq!(redis.cli_text(&["keys", "limit_conn:*"]), key);
    until_counted(&redis, &key, 2).await;
    let ttl: u64 = redis.cli_text(&["ttl", &key]).parse().expect("ttl");
    assert!(ttl > 3500 && ttl <= 3600, "{ttl}");
    let now: u64 = redis
        .cli_text(&["time"])
        .lines()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("time");
    let scores = redis.cli_text(&["zrange", &key, "0", "-1", "withscores"]);
    for score in scores.lines().skip(1).step_by(2) {
        let until: u64 = score.parse().expect("score");
        assert!(
            until > now + 3500 && until <= now + 3601,
            "{until} at {now}"
        );
    }
    // `log` on node a releases its request (once); b's request still counts.
    a.log(&ctx1);
    a.log(&ctx1);
    until_counted(&redis, &key, 1).await;
    // b's instance does not release a's requests, nor a's b's.
    a.log(&ctx2);
    let (again, _, ctx3) = enter(&a, "/").await;
    assert_eq!(again, "pass", "within conn + burst again");
    until_counted(&redis, &key, 2).await;
    // A context dropped without `log` (the client left) is released too.
    drop((ctx1, ctx2, ctx3));
    until_counted(&redis, &key, 0).await;
}

#[tokio::test]
async fn places_stop_counting_after_key_ttl() {
    let redis = RedisServer::start();
    let conf = redis_conf(&redis, json!({"burst": 0, "key_ttl": 1}));
    let key = set_key(&conf, "127.0.0.1");
    let f = Fixture::new();
    let p = build(&f, &conf);
    // A request whose node never releases it (here: its context is kept, unlogged).
    let (first, _, held) = enter(&p, "/").await;
    assert_eq!(first, "pass");
    assert!(enter(&p, "/").await.0.starts_with("503"));
    // After key_ttl (one second, counted in whole seconds) it no longer counts.
    let started = Instant::now();
    loop {
        let (out, _, ctx) = enter(&p, "/").await;
        if out == "pass" {
            drop(ctx);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
    until_counted(&redis, &key, 0).await;
}

#[tokio::test]
async fn rules_are_counted_in_order() {
    let redis = RedisServer::start();
    let conf = json!({
        "default_conn_delay": 0.1, "policy": "redis",
        "redis_host": "127.0.0.1", "redis_port": redis.port(),
        "rules": [
            {"conn": 2, "burst": 0, "key": "$arg_a"},
            {"conn": 1, "burst": 0, "key": "$arg_b"}
        ]
    });
    let f = Fixture::new();
    let p = build(&f, &conf);
    let (out, _, held) = enter(&p, "/?a=1&b=x").await;
    assert_eq!(out, "pass");
    assert_eq!(redis.cli_text(&["dbsize"]), "2");
    // Within the first rule, over the second: rejected; its place in the first rule is
    // released with the request.
    let (out, _, rejected) = enter(&p, "/?a=1&b=x").await;
    assert!(out.starts_with("503"), "{out}");
    let first = set_key(&conf, "1");
    until_counted(&redis, &first, 2).await;
    p.log(&rejected);
    until_counted(&redis, &first, 1).await;
    // A request without `b` is counted by the first rule only.
    let (out, _, _only_a) = enter(&p, "/?a=1").await;
    assert_eq!(out, "pass");
    drop(held);
}

#[tokio::test]
async fn redis_down_fails_or_degrades() {
    let mut redis = RedisServer::start();
    let f = Fixture::new();
    let strict = build(&f, &redis_conf(&redis, json!({"redis_timeout": 200})));
    let lenient = build(
        &f,
        &redis_conf(&redis, json!({"burst": 0, "allow_degradation": true})),
    );
    let (out, _, ctx) = enter(&strict, "/").await;
    assert_eq!(out, "pass");
    redis.stop();
    // The request in flight ends while Redis is down: its release fails (and is logged).
    strict.log(&ctx);
    let (out, _, _) = enter(&strict, "/").await;
    assert!(
        out.starts_with("500 <html>") && out.contains("500 Internal Server Error"),
        "{out}"
    );
    let mut passed = Vec::new();
    for _ in 0..3 {
        let (out, _, ctx) = enter(&lenient, "/").await;
        assert_eq!(out, "pass", "allow_degradation passes");
        passed.push(ctx);
    }
    // Back up (empty): counting starts again; the requests that passed uncounted release
    // nothing.
    redis.restart();
    for ctx in &passed {
        lenient.log(ctx);
    }
    let (out, _, _held) = enter(&lenient, "/").await;
    assert_eq!(out, "pass");
    assert!(enter(&lenient, "/").await.0.starts_with("503"));
}

#[tokio::test]
async fn redis_cluster_counts_across_nodes() {
    let cluster = RedisCluster::start(3);
    let conf = json!({
        "conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "arg_k",
        "policy": "redis-cluster",
        "redis_cluster_nodes": cluster.addrs(), "redis_cluster_name": "test-cluster"
    });
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    let (a, b) = (build(&node_a, &conf), build(&node_b, &conf));
    let mut nodes_used = std::collections::HashSet::new();
    let mut held = Vec::new();
    for k in 0..6 {
        let uri = format!("/?k={k}");
        let (out, _, ctx) = enter(&a, &uri).await;
        assert_eq!(out, "pass");
        held.push(ctx);
        assert!(enter(&b, &uri).await.0.starts_with("503"));
        let key = set_key(&conf, &k.to_string());
        let holder = cluster.node_of(&key);
        assert_eq!(cluster.node(holder).cli_text(&["zcard", &key]), "1");
        nodes_used.insert(holder);
    }
    assert!(nodes_used.len() > 1, "sets spread over the masters");
    // Released: the other node may enter.
    a.log(&held[0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while enter(&b, "/?k=0").await.0 != "pass" {
        assert!(Instant::now() < deadline, "never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn redis_sentinel_finds_the_master() {
    let group = RedisSentinel::start(Some("pw"), None);
    let conf = json!({
        "conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr",
        "policy": "redis-sentinel",
        "redis_sentinels": group.sentinels(), "redis_master_name": SENTINEL_MASTER,
        "redis_password": "pw", "redis_database": 1
    });
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    let (a, b) = (build(&node_a, &conf), build(&node_b, &conf));
    let (out, _, held) = enter(&a, "/").await;
    assert_eq!(out, "pass");
    assert!(enter(&b, "/").await.0.starts_with("503"));
    assert_eq!(group.first.cli_text(&["-n", "1", "dbsize"]), "1");
    a.log(&held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while group.first.cli_text(&["-n", "1", "dbsize"]) != "0" {
        assert!(Instant::now() < deadline, "never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(enter(&b, "/").await.0, "pass");
}
