//! limit-conn on real contexts: counting from `access` to `log`, delays, rejections, rules.

use super::*;
use crate::testing::{ctx_for, get, Fixture};
use crate::Conf;

const OWNER: &str = "ws/default/plugin_configs/1";

fn limiter(f: &Fixture, conf: &Value) -> Arc<dyn Plugin> {
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

/// Runs `access`; "pass", "wait" or the answer's status and body, and the context (which holds
/// the request's count until `log` or drop).
fn enter(p: &Arc<dyn Plugin>, uri: &str) -> (String, Ctx) {
    let mut ctx = ctx_for(get(uri));
    let out = match p.access(&mut ctx) {
        Flow::Continue => "pass".to_string(),
        Flow::Wait(_) => "wait".to_string(),
        Flow::Respond(r) => format!("{} {}", r.status.as_u16(), String::from_utf8_lossy(&r.body)),
    };
    (out, ctx)
}

fn key(conf: &Value, value: &str) -> String {
    format!("{OWNER}:{}:{value}", conf_version(&with_defaults(conf)))
}

/// The configuration as the compiler sees it (schema defaults applied).
fn with_defaults(conf: &Value) -> Value {
    let registry = crate::registry();
    let mut conf = conf.clone();
    let schema = registry
        .schema_for(NAME, portico_model::SchemaType::Route)
        .expect("schema");
    portico_model::schema::validate_in_place(schema, &mut conf).expect("valid");
    conf
}

#[test]
fn counts_until_log_then_delays_then_rejects() {
    let f = Fixture::new();
    let conf = json!({"conn": 1, "burst": 1, "default_conn_delay": 0.1, "key": "remote_addr"});
    let p = limiter(&f, &conf);
    let k = key(&conf, "127.0.0.1");
    let (first, ctx1) = enter(&p, "/");
    assert_eq!(first, "pass");
    assert_eq!(f.state.limit_conn.count(&k), 1);
    // Over `conn` but within the burst: counted, and delayed by 0.1 * floor(1 / 1).
    let (second, ctx2) = enter(&p, "/");
    assert_eq!(second, "wait");
    assert_eq!(f.state.limit_conn.count(&k), 2);
    // Over `conn + burst`: the nginx page, not counted.
    let (third, _ctx3) = enter(&p, "/");
    assert!(
        third.starts_with("503 <html>") && third.contains("Service Temporarily Unavailable"),
        "{third}"
    );
    assert_eq!(f.state.limit_conn.count(&k), 2);
    // `log` releases the request's count, once.
    p.log(&ctx1);
    p.log(&ctx1);
    assert_eq!(f.state.limit_conn.count(&k), 1);
    assert_eq!(enter(&p, "/").0, "wait");
    // A request whose context goes away without `log` (the client left) is released too.
    drop(ctx2);
    drop(ctx1);
    assert!(f.state.limit_conn.is_empty());
}

#[test]
fn delay_grows_with_the_count() {
    let f = Fixture::new();
    let conf = json!({"conn": 2, "burst": 4, "default_conn_delay": 0.5, "key": "remote_addr",
                      "rejected_code": 429, "rejected_msg": "busy"});
    let p = limiter(&f, &conf);
    let mut held = Vec::new();
    let mut delays = Vec::new();
    for _ in 0..6 {
        let mut ctx = ctx_for(get("/"));
        let flow = p.access(&mut ctx);
        let count = f.state.limit_conn.count(&key(&conf, "127.0.0.1"));
        delays.push((count, matches!(flow, Flow::Wait(_))));
        held.push(ctx);
    }
    // Counts 1..2 pass; 3..6 wait (floor((count - 1) / 2) units of 0.5 s: 1, 1, 2, 2).
    assert_eq!(
        delays,
        vec![
            (1, false),
            (2, false),
            (3, true),
            (4, true),
            (5, true),
            (6, true)
        ]
    );
    assert_eq!(enter(&p, "/").0, "429 {\"error_msg\":\"busy\"}\n");
}

#[tokio::test]
async fn waiting_requests_resume_and_continue() {
    let f = Fixture::new();
    let conf = json!({"conn": 1, "burst": 1, "default_conn_delay": 0.05, "key": "remote_addr"});
    let p = limiter(&f, &conf);
    let (_, _held) = enter(&p, "/");
    let mut ctx = ctx_for(get("/"));
    let started = std::time::Instant::now();
    let Flow::Wait(pending) = p.access(&mut ctx) else {
        panic!("expected a wait");
    };
    let resume = pending.await;
    assert_eq!(resume(&mut ctx), Flow::Continue);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn keys_and_variable_amounts() {
    let f = Fixture::new();
    let conf = json!({"conn": "$http_conn", "burst": "$arg_burst", "default_conn_delay": 1,
                      "key_type": "var_combination", "key": "$arg_user"});
    let p = limiter(&f, &conf);
    let with_conn = |uri: &str| {
        let mut ctx = ctx_for(get(uri).header("conn", "1"));
        let flow = p.access(&mut ctx);
        (flow, ctx)
    };
    let (a1, _a1) = with_conn("/?user=a&burst=0");
    assert_eq!(a1, Flow::Continue);
    let (b1, _b1) = with_conn("/?user=b&burst=0");
    assert_eq!(b1, Flow::Continue);
    let (a2, _) = with_conn("/?user=a&burst=0");
    assert_eq!(a2.reply().map(|r| r.status.as_u16()), Some(503));
    // A conn that does not resolve to a positive integer: 500, or pass with degradation.
    assert!(enter(&p, "/?user=c&burst=0").0.starts_with("500 "));
    let (bad_burst, _) = {
        let mut ctx = ctx_for(get("/?user=d&burst=-1").header("conn", "1"));
        (p.access(&mut ctx), ctx)
    };
    assert_eq!(bad_burst.reply().map(|r| r.status.as_u16()), Some(500));
    let lenient = limiter(
        &f,
        &json!({"conn": "$http_conn", "burst": 0, "default_conn_delay": 1,
                "key": "remote_addr", "allow_degradation": true}),
    );
    assert_eq!(enter(&lenient, "/").0, "pass");
}

#[test]
fn rules_count_each_resolved_key() {
    let f = Fixture::new();
    let conf = json!({"default_conn_delay": 1, "rules": [
        {"conn": 1, "burst": 0, "key": "user-$arg_user"},
        {"conn": 2, "burst": 0, "key": "$http_team"},
        {"conn": "$arg_nope", "burst": 0, "key": "never"}
    ]});
    let p = limiter(&f, &conf);
    let call = |uri: &str, team: &str| {
        let mut ctx = ctx_for(get(uri).header("team", team));
        let flow = p.access(&mut ctx);
        (flow.reply().map(|r| r.status.as_u16()), ctx)
    };
    let (r1, c1) = call("/?user=a", "t");
    assert_eq!(r1, None);
    let (r2, _c2) = call("/?user=b", "t");
    assert_eq!(r2, None);
    // Team t is full (2): rejected by the second rule, though user c is free.
    let (r3, c3) = call("/?user=c", "t");
    assert_eq!(r3, Some(503));
    // The first rule's count of the rejected request is released by its log.
    let user_c = key(&conf, "user-c");
    assert_eq!(f.state.limit_conn.count(&user_c), 1);
    p.log(&c3);
    assert_eq!(f.state.limit_conn.count(&user_c), 0);
    // User a is at its limit whatever the team.
    assert_eq!(call("/?user=a", "u").0, Some(503));
    p.log(&c1);
    assert_eq!(call("/?user=a", "u").0, None);
    // A rule whose key resolves nothing is skipped (`$http_team` unset); when no rule is left,
    // 500.
    let mut ctx = ctx_for(get("/"));
    let lone = limiter(
        &f,
        &json!({"default_conn_delay": 1, "rules": [{"conn": 1, "burst": 0, "key": "$arg_x"}]}),
    );
    assert_eq!(
        lone.access(&mut ctx).reply().map(|r| r.status.as_u16()),
        Some(500)
    );
}

#[test]
fn counts_survive_rebuilds() {
    let f = Fixture::new();
    let conf = json!({"conn": 1, "burst": 0, "default_conn_delay": 1, "key": "remote_addr"});
    let (_, held) = enter(&limiter(&f, &conf), "/");
    // The same configuration rebuilt (a snapshot swap) sees the request in flight, and the
    // new instance's `log` does not release the old instance's request.
    let rebuilt = limiter(&f, &conf);
    assert!(enter(&rebuilt, "/").0.starts_with("503"));
    rebuilt.log(&held);
    assert!(enter(&rebuilt, "/").0.starts_with("503"));
    drop(held);
    assert_eq!(enter(&rebuilt, "/").0, "pass");
}

#[test]
fn schema_and_policy_checks() {
    let registry = crate::registry();
    let check = |conf: Value| {
        portico_model::check(
            portico_model::Kind::PluginConfig,
            &json!({"id": "1", "plugins": {"limit-conn": conf}}),
            &registry,
        )
    };
    let ok = json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr"});
    assert_eq!(check(ok), Ok(()));
    assert_eq!(
        check(json!({"default_conn_delay": 0.1, "rules": [{"conn": 1, "burst": 0, "key": "k"}]})),
        Ok(())
    );
    for bad in [
        json!({"conn": 0, "burst": 0, "default_conn_delay": 0.1, "key": "k"}),
        json!({"conn": 1, "burst": -1, "default_conn_delay": 0.1, "key": "k"}),
        json!({"conn": 1, "burst": 0, "default_conn_delay": 0, "key": "k"}),
        json!({"conn": 1, "burst": 0, "key": "k"}),
        json!({"conn": 1.5, "burst": 0, "default_conn_delay": 1, "key": "k"}),
        json!({"conn": 1, "burst": 0, "default_conn_delay": 1, "key": "k", "key_type": "constant"}),
    ] {
        assert!(check(bad.clone()).is_err(), "{bad}");
    }
    // The Redis policies: the connection fields of each, `key_ttl`, and the checks beyond the
    // schema.
    let base = json!({"conn": 1, "burst": 0, "default_conn_delay": 1, "key": "k"});
    let with = |extra: Value| {
        let mut conf = base.clone();
        conf.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        conf
    };
    for ok in [
        json!({"policy": "redis", "redis_host": "127.0.0.1", "key_ttl": 60}),
        json!({"policy": "redis-cluster", "redis_cluster_nodes": ["127.0.0.1:7000"],
               "redis_cluster_name": "c"}),
        json!({"policy": "redis-sentinel", "redis_master_name": "m", "key_ttl": 10,
               "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}]}),
    ] {
        assert_eq!(check(with(ok.clone())), Ok(()), "{ok}");
    }
    let prefix = "failed to check the configuration of plugin limit-conn err: ";
    assert_eq!(
        check(with(
            json!({"policy": "redis", "redis_host": "127.0.0.1", "key_ttl": 0})
        )),
        Err(format!(
            "{prefix}invalid key_ttl 0: requests would stop counting at once (at least 1 second)"
        ))
    );
    assert_eq!(
        check(with(
            json!({"policy": "redis-cluster", "redis_cluster_nodes": ["127.0.0.1:0"],
                          "redis_cluster_name": "c"})
        )),
        Err(format!(
            "{prefix}failed to parse address: 127.0.0.1:0 err: invalid port in address 127.0.0.1:0"
        ))
    );
    assert!(
        check(with(json!({"policy": "redis"}))).is_err(),
        "redis_host is required"
    );
    assert!(check(with(
        json!({"policy": "redis-sentinel", "redis_master_name": "m",
                              "redis_role": "slave",
                              "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}]})
    ))
    .is_err_and(|e| e.contains("redis_role slave is not supported")));
    assert!(
        check(with(json!({"policy": "redis", "redis_host": "127.0.0.1",
                              "key_ttl": "1"})))
        .is_err()
    );
}
