//! limit-req: the leaky bucket's arithmetic on a synthetic clock, and the plugin on real
//! contexts.

use super::*;
use crate::testing::{ctx_for, get, Fixture};
use crate::Conf;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn bucket_delays_within_burst_and_rejects_beyond() {
    let b = Buckets::default();
    let t0 = Instant::now();
    // rate 2/s, burst 2: the first passes at once, the next two wait 0.5 s and 1 s.
    assert_eq!(b.incoming("k", 2.0, 2.0, t0), Some(Duration::ZERO));
    assert_eq!(b.incoming("k", 2.0, 2.0, t0), Some(ms(500)));
    assert_eq!(b.incoming("k", 2.0, 2.0, t0), Some(ms(1000)));
    // Over the burst: rejected, and the bucket is unchanged.
    assert_eq!(b.incoming("k", 2.0, 2.0, t0), None);
    assert_eq!(b.incoming("k", 2.0, 2.0, t0), None);
    // 250 ms later half a request drained: 2000 - 500 + 1000 = 2500 > 2000, still rejected.
    assert_eq!(b.incoming("k", 2.0, 2.0, t0 + ms(250)), None);
    // 500 ms later one drained: 2000 - 1000 + 1000 = 2000, waits 1 s.
    assert_eq!(b.incoming("k", 2.0, 2.0, t0 + ms(500)), Some(ms(1000)));
    // Other keys have their own buckets.
    assert_eq!(b.incoming("other", 2.0, 2.0, t0), Some(Duration::ZERO));
}

#[test]
fn burst_zero_rejects_faster_than_rate() {
    let b = Buckets::default();
    let t0 = Instant::now();
    assert_eq!(b.incoming("k", 1.0, 0.0, t0), Some(Duration::ZERO));
    // 999 ms drained 999 thousandths: 0 - 999 + 1000 = 1 waiting, over a burst of 0.
    assert_eq!(b.incoming("k", 1.0, 0.0, t0 + ms(999)), None);
    // A full second: 0 - 1000 + 1000 = 0 waiting.
    assert_eq!(
        b.incoming("k", 1.0, 0.0, t0 + ms(1000)),
        Some(Duration::ZERO)
    );
}

#[test]
fn fractional_rates_and_excess_floor() {
    let b = Buckets::default();
    let t0 = Instant::now();
    assert_eq!(b.incoming("k", 0.5, 1.0, t0), Some(Duration::ZERO));
    // 1000 waiting at 500 thousandths a second: 2 s.
    assert_eq!(b.incoming("k", 0.5, 1.0, t0), Some(ms(2000)));
    // A long pause empties the bucket.
    assert_eq!(
        b.incoming("k", 0.5, 1.0, t0 + Duration::from_secs(60)),
        Some(Duration::ZERO)
    );
}

#[test]
fn drained_buckets_are_swept() {
    let b = Buckets::default();
    let t0 = Instant::now();
    for i in 0..40 {
        b.incoming(&format!("k{i}"), 10.0, 1.0, t0);
    }
    assert_eq!(b.len(), 40);
    // 10/s: after 200 ms every bucket is as good as new; the next use of a shard sweeps it.
    let later = t0 + Duration::from_secs(2);
    for i in 0..200 {
        b.incoming(&format!("n{i}"), 10.0, 1.0, later);
    }
    assert_eq!(b.len(), 200);
}

fn limiter(f: &Fixture, conf: Value) -> Arc<dyn Plugin> {
    f.compiler()
        .entry(Conf {
            name: NAME,
            conf: &conf,
            owner: "ws/default/plugin_configs/1",
        })
        .expect("builds")
        .expect("enabled")
        .plugin()
        .clone()
}

/// What `access` decides for a GET of `uri`: "pass", "wait" or the rejection status and body.
fn decide(p: &Arc<dyn Plugin>, uri: &str) -> String {
    let mut ctx = ctx_for(get(uri));
    match p.access(&mut ctx) {
        Flow::Continue => "pass".to_string(),
        Flow::Wait(_) => "wait".to_string(),
        Flow::Respond(r) => format!("{} {}", r.status.as_u16(), String::from_utf8_lossy(&r.body)),
    }
}

#[test]
fn delays_then_rejects_with_the_nginx_page() {
    let f = Fixture::new();
    let p = limiter(&f, json!({"rate": 1, "burst": 1, "key": "remote_addr"}));
    assert_eq!(decide(&p, "/"), "pass");
    assert_eq!(decide(&p, "/"), "wait");
    let third = decide(&p, "/");
    assert!(
        third.starts_with("503 <html>") && third.contains("503 Service Temporarily Unavailable"),
        "{third}"
    );
}

#[test]
fn nodelay_message_code_and_keys() {
    let f = Fixture::new();
    let p = limiter(
        &f,
        json!({"rate": 1, "burst": 1, "key": "arg_user", "nodelay": true,
               "rejected_code": 429, "rejected_msg": "slow down"}),
    );
    assert_eq!(decide(&p, "/?user=a"), "pass");
    assert_eq!(decide(&p, "/?user=a"), "pass");
    assert_eq!(
        decide(&p, "/?user=a"),
        "429 {\"error_msg\":\"slow down\"}\n"
    );
    assert_eq!(decide(&p, "/?user=b"), "pass");
    // No `user` argument: the client address is the key.
    assert_eq!(decide(&p, "/"), "pass");

    let p = limiter(
        &f,
        json!({"rate": 1, "burst": 0, "key_type": "var_combination", "key": "$arg_a-$arg_b"}),
    );
    assert_eq!(decide(&p, "/?a=1&b=2"), "pass");
    assert_eq!(decide(&p, "/?a=1&b=3"), "pass");
    assert!(decide(&p, "/?a=1&b=2").starts_with("503"));
    // Nothing resolved: the client address.
    assert_eq!(decide(&p, "/"), "pass");
    assert!(decide(&p, "/?c=1").starts_with("503"));
}

#[test]
fn buckets_survive_rebuilds_and_reset_on_edit() {
    let f = Fixture::new();
    let conf = json!({"rate": 1, "burst": 0, "key": "remote_addr"});
    assert_eq!(decide(&limiter(&f, conf.clone()), "/"), "pass");
    // The same configuration compiled again (a snapshot swap) shares the bucket.
    assert!(decide(&limiter(&f, conf), "/").starts_with("503"));
    // An edited configuration has a new bucket.
    let edited = json!({"rate": 1, "burst": 0, "key": "remote_addr", "rejected_code": 429});
    assert_eq!(decide(&limiter(&f, edited), "/"), "pass");
    // Key order does not change the configuration's identity.
    let reordered = json!({"key": "remote_addr", "burst": 0, "rate": 1});
    assert!(decide(&limiter(&f, reordered), "/").starts_with("503"));
}

#[test]
fn schema_and_policy_checks() {
    let registry = crate::registry();
    let check = |conf: Value| {
        portico_model::check(
            portico_model::Kind::PluginConfig,
            &json!({"id": "1", "plugins": {"limit-req": conf}}),
            &registry,
        )
    };
    assert_eq!(
        check(json!({"rate": 1, "burst": 0, "key": "remote_addr"})),
        Ok(())
    );
    assert!(check(json!({"rate": 0, "burst": 0, "key": "remote_addr"})).is_err());
    assert!(check(json!({"rate": 1, "burst": -1, "key": "remote_addr"})).is_err());
    assert!(check(json!({"rate": 1, "burst": 0})).is_err());
    assert!(check(json!({"rate": 1, "burst": 0, "key": "k", "key_type": "constant"})).is_err());
    // The Redis policies: the connection fields of each, and the checks beyond the schema.
    for ok in [
        json!({"policy": "redis", "redis_host": "127.0.0.1"}),
        json!({"policy": "redis-cluster", "redis_cluster_nodes": ["127.0.0.1:7000"],
               "redis_cluster_name": "c"}),
        json!({"policy": "redis-sentinel", "redis_master_name": "m",
               "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}]}),
    ] {
        let mut conf = json!({"rate": 1, "burst": 0, "key": "k"});
        conf.as_object_mut()
            .expect("object")
            .extend(ok.as_object().expect("object").clone());
        assert_eq!(check(conf.clone()), Ok(()), "{conf}");
    }
    let prefix = "failed to check the configuration of plugin limit-req err: ";
    assert_eq!(
        check(json!({"rate": 1, "burst": 0, "key": "k", "policy": "redis",
                     "redis_host": "127.0.0.1", "redis_port": 70000})),
        Err(format!(
            "{prefix}invalid redis_port 70000: must be at most 65535"
        ))
    );
    assert_eq!(
        check(
            json!({"rate": 1, "burst": 0, "key": "k", "policy": "redis-cluster",
                     "redis_cluster_nodes": ["127.0.0.1:0"], "redis_cluster_name": "c"})
        ),
        Err(format!(
            "{prefix}failed to parse address: 127.0.0.1:0 err: invalid port in address 127.0.0.1:0"
        ))
    );
    assert!(check(
        json!({"rate": 1, "burst": 0, "key": "k", "policy": "redis-sentinel",
                         "redis_master_name": "m", "redis_role": "slave",
                         "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}]})
    )
    .is_err_and(|e| e.contains("redis_role slave is not supported")));
    assert!(check(json!({"rate": 1, "burst": 0, "key": "k", "policy": "etcd"})).is_err());
    // The Redis fields are still checked first (the schema's `then` clause).
    let missing_host = check(json!({"rate": 1, "burst": 0, "key": "k", "policy": "redis"}));
    assert_eq!(
        missing_host,
        Err(
            "failed to check the configuration of plugin limit-req err: then clause did not match"
                .to_string()
        )
    );
}
