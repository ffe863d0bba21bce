//! limit-count's Redis policies against real `redis-server` processes.

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
        "count": 3, "time_window": 60, "policy": "redis",
        "redis_host": "127.0.0.1", "redis_port": redis.port()
    });
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    conf
}

/// Runs `access` for a GET of `uri`, waiting as the chain does; the status (200 = passed),
/// the context and the reply.
async fn hit(p: &Arc<dyn Plugin>, uri: &str) -> (u16, Ctx, Option<Reply>) {
    let mut ctx = ctx_for(get(uri));
    let mut flow = p.access(&mut ctx);
    let mut waited = false;
    while let Flow::Wait(pending) = flow {
        waited = true;
        flow = pending.await(&mut ctx);
    }
    assert!(waited, "the redis policy waits for Redis");
    let (status, reply) = match flow {
        Flow::Respond(r) => (r.status.as_u16(), Some(r)),
        _ => (200, None),
    };
    super::tests::respond(p, &mut ctx);
    (status, ctx, reply)
}

fn header(ctx: &Ctx, name: &str) -> String {
    super::tests::sent(ctx)
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn two_nodes_share_one_window() {
    let redis = RedisServer::start();
    let conf = redis_conf(&redis, json!({}));
    // Two nodes: each its own plugin state (pools, local counters).
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    let (a, b) = (build(&node_a, &conf), build(&node_b, &conf));
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (status, ctx, reply) = hit(if i % 2 == 0 { &a } else { &b }, "/").await;
        statuses.push(status);
        assert_eq!(header(&ctx, "x-ratelimit-limit"), "3");
        let remaining = if i < 3 { 2 - i } else { 0 };
        assert_eq!(header(&ctx, "x-ratelimit-remaining"), remaining.to_string());
        let reset: f64 = header(&ctx, "x-ratelimit-reset").parse().expect("reset");
        assert!(reset > 55.0 && reset <= 60.0, "{reset}");
        if status == 503 {
            let body = String::from_utf8_lossy(&reply.expect("reply").body).into_owned();
            assert!(
                body.contains("503 Service Temporarily Unavailable"),
                "{body}"
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 503, 503, 503]);
    // The counter is APISIX's key, with the window as expiry.
    let keys = redis.cli_text(&["keys", "plugin-limit-count*"]);
    let crc = {
        let mut text = String::new();
        let mut checked = conf.clone();
        portico_model::schema::validate_in_place(&schema(), &mut checked).expect("valid");
        stable_json(&checked, &mut text);
        crc32fast::hash(text.as_bytes())
    };
    let key = format!("plugin-limit-count{OWNER}:{crc}:127.0.0.1");
    assert_eq!(keys, key);
    assert_eq!(redis.cli_text(&["get", &key]), "6");
    let ttl: i64 = redis.cli_text(&["pttl", &key]).parse().expect("pttl");
    assert!(ttl > 55_000 && ttl <= 60_000, "{ttl}");
    // A swap rebuilds the same configuration: the same pool, the same counter.
    assert_eq!(node_a.state.redis.len(), 1);
    let again = build(&node_a, &conf);
    assert_eq!(node_a.state.redis.len(), 1);
    assert_eq!(hit(&again, "/").await.0, 503);
}

#[tokio::test]
async fn windows_end_and_keys_split_counters() {
    let redis = RedisServer::start();
    let f = Fixture::new();
    let p = build(
        &f,
        &redis_conf(
            &redis,
            json!({"count": 1, "time_window": 1, "key": "arg_user",
                   "rejected_code": 429, "rejected_msg": "slow down"}),
        ),
    );
    let started = Instant::now();
    assert_eq!(hit(&p, "/?user=a").await.0, 200);
    assert_eq!(hit(&p, "/?user=b").await.0, 200);
    let (status, _, reply) = hit(&p, "/?user=a").await;
    assert_eq!(status, 429);
    assert_eq!(
        reply.map(|r| r.body),
        Some(b"{\"error_msg\":\"slow down\"}\n".to_vec())
    );
    // The window ends after a second: a new one starts.
    loop {
        let (status, ctx, _) = hit(&p, "/?user=a").await;
        if status == 200 {
            assert_eq!(header(&ctx, "x-ratelimit-remaining"), "0");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "window never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn rules_are_counted_in_order() {
    let redis = RedisServer::start();
    let f = Fixture::new();
    let p = build(
        &f,
        &json!({
            "policy": "redis", "redis_host": "127.0.0.1", "redis_port": redis.port(),
            "rules": [
                {"count": 2, "time_window": 60, "key": "$arg_a", "header_prefix": "A"},
                {"count": 1, "time_window": 60, "key": "$arg_b"}
            ]
        }),
    );
    let (status, ctx, _) = hit(&p, "/?a=1&b=x").await;
    assert_eq!(status, 200);
    assert_eq!(header(&ctx, "x-a-ratelimit-remaining"), "1");
    assert_eq!(header(&ctx, "x-2-ratelimit-remaining"), "0");
    let (status, ctx, _) = hit(&p, "/?a=1&b=x").await;
    assert_eq!(status, 503);
    assert_eq!(header(&ctx, "x-a-ratelimit-remaining"), "0");
    assert_eq!(header(&ctx, "x-2-ratelimit-remaining"), "0");
    // Over the first rule: the second is not counted.
    let (status, ctx, _) = hit(&p, "/?a=1&b=y").await;
    assert_eq!(status, 503);
    assert_eq!(header(&ctx, "x-2-ratelimit-limit"), "");
    assert_eq!(hit(&p, "/?a=2&b=y").await.0, 200);
}

#[tokio::test]
async fn password_and_database() {
    let redis = RedisServer::start_with_password("pw");
    let f = Fixture::new();
    let p = build(
        &f,
        &redis_conf(&redis, json!({"redis_password": "pw", "redis_database": 2})),
    );
    assert_eq!(hit(&p, "/").await.0, 200);
    assert_eq!(redis.cli_text(&["-n", "2", "dbsize"]), "1");
    assert_eq!(redis.cli_text(&["-n", "0", "dbsize"]), "0");
    // A wrong password is a Redis failure: 500.
    let wrong = build(&f, &redis_conf(&redis, json!({"redis_password": "nope"})));
    assert_eq!(hit(&wrong, "/").await.0, 500);
}

#[tokio::test]
async fn redis_down_fails_or_degrades() {
    let mut redis = RedisServer::start();
    let f = Fixture::new();
    let strict = build(&f, &redis_conf(&redis, json!({"redis_timeout": 200})));
    let lenient = build(
        &f,
        &redis_conf(&redis, json!({"allow_degradation": true, "count": 1})),
    );
    assert_eq!(hit(&strict, "/").await.0, 200);
    redis.stop();
    let (status, ctx, reply) = hit(&strict, "/").await;
    assert_eq!(status, 500);
    assert_eq!(
        reply.map(|r| r.body),
        Some(b"{\"error_msg\":\"failed to limit count\"}\n".to_vec())
    );
    assert!(super::tests::sent(&ctx).is_empty());
    let (status, ctx, _) = hit(&lenient, "/").await;
    assert_eq!(status, 200, "allow_degradation lets it pass");
    assert!(super::tests::sent(&ctx).is_empty());
    // Back up (empty): counting starts again.
    redis.restart();
    let (status, ctx, _) = hit(&strict, "/").await;
    assert_eq!(status, 200);
    assert_eq!(header(&ctx, "x-ratelimit-remaining"), "2");
    assert_eq!(hit(&lenient, "/").await.0, 200);
    assert_eq!(hit(&lenient, "/").await.0, 503);
}

#[tokio::test]
async fn redis_cluster_shares_the_window() {
    let cluster = RedisCluster::start(3);
    let conf = json!({
        "count": 2, "time_window": 60, "policy": "redis-cluster",
        "key": "arg_k",
        "redis_cluster_nodes": cluster.addrs(), "redis_cluster_name": "test-cluster"
    });
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    let (a, b) = (build(&node_a, &conf), build(&node_b, &conf));
    let mut nodes_used = std::collections::HashSet::new();
    for k in 0..6 {
        let uri = format!("/?k={k}");
        assert_eq!(hit(&a, &uri).await.0, 200);
        let (status, ctx, _) = hit(&b, &uri).await;
        assert_eq!(status, 200);
        assert_eq!(header(&ctx, "x-ratelimit-remaining"), "0");
        assert_eq!(hit(&a, &uri).await.0, 503);
        assert_eq!(hit(&b, &uri).await.0, 503);
        // The counter sits on the master serving its slot.
        let keys: Vec<String> = (0..3)
            .flat_map(|i| {
                let pattern = format!("plugin-limit-count*:{k}");
                let out = cluster.node(i).cli_text(&["keys", &pattern]);
                out.lines().map(str::to_string).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        nodes_used.insert(cluster.node_of(&keys[0]));
    }
    assert!(nodes_used.len() > 1, "counters spread over the masters");
}

#[tokio::test]
async fn redis_sentinel_keeps_counting_across_a_failover() {
    let group = RedisSentinel::start(Some("pw"), None);
    let f = Fixture::new();
    let p = build(
        &f,
        &json!({
            "count": 3, "time_window": 60, "policy": "redis-sentinel",
            "redis_sentinels": group.sentinels(), "redis_master_name": SENTINEL_MASTER,
            "redis_password": "pw", "redis_database": 1
        }),
    );
    assert_eq!(hit(&p, "/").await.0, 200);
    assert_eq!(hit(&p, "/").await.0, 200);
    assert_eq!(group.first.cli_text(&["-n", "1", "dbsize"]), "1");
    group.failover();
    // The counter was replicated: the new master goes on from 2.
    let (status, ctx, _) = hit(&p, "/").await;
    assert_eq!(status, 200);
    assert_eq!(header(&ctx, "x-ratelimit-remaining"), "0");
    assert_eq!(hit(&p, "/").await.0, 503);
    assert_eq!(group.second.cli_text(&["-n", "1", "dbsize"]), "1");
}
