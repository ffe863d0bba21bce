//! limit-req's Redis policies against real `redis-server` processes.

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
        "rate": 10, "burst": 2, "key": "remote_addr", "policy": "redis",
        "redis_host": "127.0.0.1", "redis_port": redis.port()
    });
    if let (Some(c), Some(e)) = (conf.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    conf
}

/// Runs `access` for a GET of `uri`, waiting as the chain does; the status (200 = passed), how
/// long the waits took, and the reply.
async fn hit(p: &Arc<dyn Plugin>, uri: &str) -> (u16, Duration, Option<Reply>) {
    let mut ctx = ctx_for(get(uri));
    let started = Instant::now();
    let mut flow = p.access(&mut ctx);
    let mut waited = false;
    while let Flow::Wait(pending) = flow {
        waited = true;
        flow = pending.await(&mut ctx);
    }
    assert!(waited, "the redis policy waits for Redis");
    let took = started.elapsed();
    match flow {
        Flow::Respond(r) => (r.status.as_u16(), took, Some(r)),
        _ => (200, took, None),
    }
}

/// The bucket key of `conf` (schema defaults applied) for `value`.
fn bucket_key(conf: &Value, value: &str) -> String {
    let mut checked = conf.clone();
    portico_model::schema::validate_in_place(&schema(), &mut checked).expect("valid");
    format!("limit_req:{OWNER}:{}:{value}", conf_version(&checked))
}

#[tokio::test]
async fn two_nodes_share_one_bucket() {
    let redis = RedisServer::start();
    let conf = redis_conf(&redis, json!({"nodelay": true}));
    // Two nodes: each its own plugin state (pools, local buckets).
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    let (a, b) = (build(&node_a, &conf), build(&node_b, &conf));
    // rate 10/s, burst 2: three fit at once (0, 1 and 2 waiting), the fourth is over the burst
    // wherever it arrives.
    let mut statuses = Vec::new();
    for i in 0..5 {
        let (status, _, reply) = hit(if i % 2 == 0 { &a } else { &b }, "/").await;
        statuses.push(status);
        if status == 503 {
            let body = String::from_utf8_lossy(&reply.expect("reply").body).into_owned();
            assert!(
                body.contains("503 Service Temporarily Unavailable"),
                "{body}"
            );
        }
    }
    // A request is a tenth of a second of the bucket: unless the machine stalled that long,
    // the fourth and fifth are rejected.
    assert_eq!(statuses[..3], [200, 200, 200]);
    assert!(statuses[3..].contains(&503), "{statuses:?}");
    assert!(node_a.state.limit_req.is_empty() && node_b.state.limit_req.is_empty());
    // The bucket: APISIX's key as one hash, expiring once drained.
    let key = bucket_key(&conf, "127.0.0.1");
    assert_eq!(redis.cli_text(&["keys", "limit_req:*"]), key);
    let excess: u64 = redis
        .cli_text(&["hget", &key, "excess"])
        .parse()
        .expect("excess");
    assert!(excess <= 2000, "{excess}");
    let ttl: u64 = redis.cli_text(&["pttl", &key]).parse().expect("pttl");
    // (excess + 1000) / 10 per millisecond, plus one.
    assert!(
        ttl > 0 && ttl <= (excess + 1000) / 10 + 1,
        "{ttl} for {excess}"
    );
    // It drains: a request passes again within a few tenths of a second.
    let started = Instant::now();
    while hit(&a, "/").await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(5), "never drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Drained to nothing, the key is gone.
    while redis.cli_text(&["exists", &key]) != "0" {
        assert!(started.elapsed() < Duration::from_secs(5), "never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn requests_within_the_burst_wait_their_turn_across_nodes() {
    let redis = RedisServer::start();
    let conf = redis_conf(
        &redis,
        json!({"rate": 5, "burst": 1, "key": "arg_user",
               "rejected_code": 429, "rejected_msg": "slow down"}),
    );
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    let (a, b) = (build(&node_a, &conf), build(&node_b, &conf));
    let started = Instant::now();
    assert_eq!(hit(&a, "/?user=x").await.0, 200);
    // Two more at once, one on each node: one waits its turn (a fifth of a second after the
    // first, at 5/s), the other is over the burst.
    let (on_b, on_a) = tokio::join!(hit(&b, "/?user=x"), hit(&a, "/?user=x"));
    let (passed, rejected) = if on_b.0 == 200 {
        (on_b, on_a)
    } else {
        (on_a, on_b)
    };
    assert_eq!(passed.0, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "{passed:?}"
    );
    assert_eq!(rejected.0, 429);
    assert_eq!(
        rejected.2.map(|r| r.body),
        Some(b"{\"error_msg\":\"slow down\"}\n".to_vec())
    );
    // Another user has a bucket of its own, with nothing waiting.
    assert_eq!(hit(&a, "/?user=y").await.0, 200);
    let key = bucket_key(&conf, "y");
    assert_eq!(redis.cli_text(&["hget", &key, "excess"]), "0");
}

#[tokio::test]
async fn a_rebuilt_configuration_shares_the_pool_and_the_bucket() {
    let redis = RedisServer::start();
    let conf = redis_conf(&redis, json!({"rate": 1, "burst": 0}));
    let f = Fixture::new();
    let first = build(&f, &conf);
    assert_eq!(hit(&first, "/").await.0, 200);
    assert_eq!(f.state.redis.len(), 1);
    let again = build(&f, &conf);
    assert_eq!(f.state.redis.len(), 1);
    assert_eq!(hit(&again, "/").await.0, 503);
    drop((first, again));
    assert!(
        f.state.redis.is_empty(),
        "the pool goes with its last instance"
    );
    // An edited configuration is a new bucket.
    let edited = redis_conf(&redis, json!({"rate": 1, "burst": 0, "rejected_code": 429}));
    assert_eq!(hit(&build(&f, &edited), "/").await.0, 200);
    assert_eq!(redis.cli_text(&["dbsize"]), "2");
}

#[tokio::test]
async fn redis_down_fails_or_degrades() {
    let mut redis = RedisServer::start();
    let f = Fixture::new();
    let strict = build(
        &f,
        &redis_conf(&redis, json!({"rate": 1, "burst": 0, "redis_timeout": 200})),
    );
    let lenient = build(
        &f,
        &redis_conf(
            &redis,
            json!({"rate": 1, "burst": 0, "allow_degradation": true}),
        ),
    );
    assert_eq!(hit(&strict, "/").await.0, 200);
    redis.stop();
    let (status, _, reply) = hit(&strict, "/").await;
    assert_eq!(status, 500);
    let body = String::from_utf8_lossy(&reply.expect("reply").body).into_owned();
    assert!(body.contains("500 Internal Server Error"), "{body}");
    for _ in 0..3 {
        assert_eq!(hit(&lenient, "/").await.0, 200, "allow_degradation passes");
    }
    // Back up (empty): limiting starts again.
    redis.restart();
    assert_eq!(hit(&lenient, "/").await.0, 200);
    assert_eq!(hit(&lenient, "/").await.0, 503);
    assert_eq!(hit(&strict, "/").await.0, 200);
}

#[tokio::test]
async fn redis_cluster_shares_the_buckets() {
    let cluster = RedisCluster::start(3);
    let conf = json!({
        "rate": 1, "burst": 0, "key": "arg_k", "nodelay": true, "policy": "redis-cluster",
        "redis_cluster_nodes": cluster.addrs(), "redis_cluster_name": "test-cluster"
    });
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    let (a, b) = (build(&node_a, &conf), build(&node_b, &conf));
    let mut nodes_used = std::collections::HashSet::new();
    for k in 0..6 {
        let uri = format!("/?k={k}");
        assert_eq!(hit(&a, &uri).await.0, 200);
        assert_eq!(hit(&b, &uri).await.0, 503);
        let key = bucket_key(&conf, &k.to_string());
        let holder = cluster.node_of(&key);
        assert_eq!(cluster.node(holder).cli_text(&["exists", &key]), "1");
        nodes_used.insert(holder);
    }
    assert!(nodes_used.len() > 1, "buckets spread over the masters");
}

#[tokio::test]
async fn redis_sentinel_finds_the_master() {
    let group = RedisSentinel::start(Some("pw"), None);
    let conf = json!({
        "rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis-sentinel",
        "redis_sentinels": group.sentinels(), "redis_master_name": SENTINEL_MASTER,
        "redis_password": "pw", "redis_database": 1
    });
    let (node_a, node_b) = (Fixture::new(), Fixture::new());
    assert_eq!(hit(&build(&node_a, &conf), "/").await.0, 200);
    assert_eq!(hit(&build(&node_b, &conf), "/").await.0, 503);
    assert_eq!(group.first.cli_text(&["-n", "1", "dbsize"]), "1");
}
