//! limit-count behaviour through real contexts.

use super::*;
use crate::testing::{ctx_for, get, Fixture};
use crate::Conf;
use serde_json::json;
use std::time::Instant;

fn build_in(f: &Fixture, conf: Value, owner: &str) -> Result<Arc<dyn Plugin>, String> {
    f.compiler()
        .entry(Conf {
            name: NAME,
            conf: &conf,
            owner,
        })
        .map(|e| e.map(|e| e.plugin().clone()).expect("enabled"))
}

fn limiter(f: &Fixture, conf: Value) -> Arc<dyn Plugin> {
    build_in(f, conf, "ws/default/plugin_configs/1").expect("builds")
}

/// Runs `access` for a GET of `uri`, then `header_filter` on a response as the gateway does;
/// the answer's status (200 = passed) and the context.
fn hit(p: &Arc<dyn Plugin>, uri: &str) -> (u16, Ctx, Option<Reply>) {
    let mut ctx = ctx_for(get(uri));
    let (status, reply) = match p.access(&mut ctx) {
        Flow::Continue => (200, None),
        Flow::Wait(_) => unreachable!("this plugin never waits"),
        Flow::Respond(r) => (r.status.as_u16(), Some(r)),
    };
    respond(p, &mut ctx);
    (status, ctx, reply)
}

/// The response phase: headers plugins set early, then `header_filter`.
pub(super) fn respond(p: &Arc<dyn Plugin>, ctx: &mut Ctx) {
    let mut headers = std::mem::take(&mut ctx.response_headers);
    // What the `header_filter` phase does first: the quota headers noted in `access`.
    if let Some(note) = ctx.quota.take() {
        note.write(&mut headers);
    }
    ctx.response = Some(crate::ResponseHead {
        status: http::StatusCode::OK,
        headers,
    });
    p.header_filter(ctx);
}

/// The response headers the client gets.
pub(super) fn sent(ctx: &Ctx) -> &http::HeaderMap {
    &ctx.response.as_ref().expect("responded").headers
}

fn header<'a>(ctx: &'a Ctx, name: &str) -> &'a str {
    sent(ctx)
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[test]
fn quota_then_nginx_page() {
    let f = Fixture::new();
    let p = limiter(&f, json!({"count": 2, "time_window": 60}));
    let (s, ctx, _) = hit(&p, "/");
    assert_eq!(s, 200);
    assert_eq!(header(&ctx, "x-ratelimit-limit"), "2");
    assert_eq!(header(&ctx, "x-ratelimit-remaining"), "1");
    assert_eq!(header(&ctx, "x-ratelimit-reset"), "60");
    assert_eq!(hit(&p, "/").0, 200);
    let (s, ctx, reply) = hit(&p, "/");
    assert_eq!(s, 503);
    assert_eq!(header(&ctx, "x-ratelimit-remaining"), "0");
    let body = reply.map(|r| String::from_utf8_lossy(&r.body).into_owned());
    assert!(body.is_some_and(|b| b.contains("503 Service Temporarily Unavailable")));
}

#[test]
fn rejected_message_code_and_no_headers() {
    let f = Fixture::new();
    let p = limiter(
        &f,
        json!({"count": 1, "time_window": 60, "rejected_code": 429, "rejected_msg": "slow down", "show_limit_quota_header": false}),
    );
    let (_, ctx, _) = hit(&p, "/");
    assert!(sent(&ctx).is_empty());
    let (s, _, reply) = hit(&p, "/");
    assert_eq!(s, 429);
    assert_eq!(
        reply.map(|r| r.body),
        Some(b"{\"error_msg\":\"slow down\"}\n".to_vec())
    );
}

#[test]
fn keys_split_counters() {
    let f = Fixture::new();
    let p = limiter(
        &f,
        json!({"count": 1, "time_window": 60, "key": "arg_user"}),
    );
    assert_eq!(hit(&p, "/?user=a").0, 200);
    assert_eq!(hit(&p, "/?user=b").0, 200);
    assert_eq!(hit(&p, "/?user=a").0, 503);
    // No `user`: the client address is the key.
    assert_eq!(hit(&p, "/").0, 200);
    assert_eq!(hit(&p, "/").0, 503);

    let p = limiter(
        &f,
        json!({"count": 1, "time_window": 60, "key_type": "var_combination", "key": "$arg_a-$arg_b"}),
    );
    assert_eq!(hit(&p, "/?a=1&b=2").0, 200);
    assert_eq!(hit(&p, "/?a=1&b=3").0, 200);
    assert_eq!(hit(&p, "/?a=1&b=2").0, 503);

    let p = limiter(
        &f,
        json!({"count": 1, "time_window": 60, "key_type": "constant", "key": "all"}),
    );
    assert_eq!(hit(&p, "/?x=1").0, 200);
    assert_eq!(hit(&p, "/?x=2").0, 503);
}

#[test]
fn counters_survive_rebuilds_and_reset_on_edit() {
    let f = Fixture::new();
    let conf = json!({"count": 1, "time_window": 60});
    assert_eq!(hit(&limiter(&f, conf.clone()), "/").0, 200);
    // The same configuration compiled again (a snapshot swap) keeps counting.
    assert_eq!(hit(&limiter(&f, conf), "/").0, 503);
    // An edited configuration starts over (its checksum changed).
    let edited = json!({"count": 1, "time_window": 61});
    assert_eq!(hit(&limiter(&f, edited), "/").0, 200);
    // Another owner has its own counters.
    let other = build_in(
        &f,
        json!({"count": 1, "time_window": 60}),
        "ws/default/consumers/jack",
    );
    assert_eq!(hit(&other.expect("builds"), "/").0, 200);
    // A group is shared whatever the owner.
    let g1 = build_in(
        &f,
        json!({"count": 1, "time_window": 60, "group": "g"}),
        "ws/a/plugin_configs/1",
    );
    let g2 = build_in(
        &f,
        json!({"count": 1, "time_window": 60, "group": "g"}),
        "ws/a/plugin_configs/2",
    );
    assert_eq!(hit(&g1.expect("builds"), "/").0, 200);
    assert_eq!(hit(&g2.expect("builds"), "/").0, 503);
}

#[test]
fn counts_from_variables() {
    let f = Fixture::new();
    let p = limiter(
        &f,
        json!({"count": "$http_quota", "time_window": 60, "key": "http_quota"}),
    );
    let mut ctx = ctx_for(get("/").header("quota", "2"));
    assert_eq!(p.access(&mut ctx), Flow::Continue);
    respond(&p, &mut ctx);
    assert_eq!(header(&ctx, "x-ratelimit-limit"), "2");
    // Another quota from the next request: its own limit header.
    for quota in ["5", "2"] {
        let mut ctx = ctx_for(get("/").header("quota", quota));
        assert_eq!(p.access(&mut ctx), Flow::Continue);
        respond(&p, &mut ctx);
        assert_eq!(header(&ctx, "x-ratelimit-limit"), quota);
    }
    assert_eq!(hit(&p, "/").0, 500);
    let p = limiter(
        &f,
        json!({"count": "$http_quota", "time_window": 60, "allow_degradation": true}),
    );
    assert_eq!(hit(&p, "/").0, 200);
}

#[test]
fn rules_with_prefixes() {
    let f = Fixture::new();
    let p = limiter(
        &f,
        json!({"rules": [
            {"count": 2, "time_window": 60, "key": "$arg_a", "header_prefix": "A"},
            {"count": 1, "time_window": 60, "key": "$arg_b"}
        ]}),
    );
    let (s, ctx, _) = hit(&p, "/?a=1");
    assert_eq!(s, 200);
    assert_eq!(header(&ctx, "x-a-ratelimit-remaining"), "1");
    assert!(sent(&ctx).get("x-1-ratelimit-limit").is_none());
    let (s, ctx, _) = hit(&p, "/?a=2&b=x");
    assert_eq!(s, 200);
    assert_eq!(header(&ctx, "x-2-ratelimit-limit"), "1");
    assert_eq!(hit(&p, "/?b=x").0, 503);
    // No rule applies: 500.
    assert_eq!(hit(&p, "/").0, 500);
}

#[test]
fn metadata_renames_headers() {
    let mut f = Fixture::new();
    f.metadata
        .insert(NAME.to_string(), json!({"limit_header": "X-Quota"}));
    let p = limiter(&f, json!({"count": 5, "time_window": 60}));
    let (_, ctx, _) = hit(&p, "/");
    assert_eq!(header(&ctx, "x-quota"), "5");
    assert_eq!(header(&ctx, "x-ratelimit-remaining"), "4");
}

#[test]
fn unsupported_options_are_refused() {
    let f = Fixture::new();
    let refused = |conf: Value| build_in(&f, conf, "o").expect_err("refused");
    let err = refused(json!({
        "count": 1, "time_window": 1, "policy": "redis-sentinel", "redis_role": "slave",
        "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}], "redis_master_name": "m"
    }));
    assert_eq!(
        err,
        "failed to check the configuration of plugin limit-count err: redis_role slave is not supported: replicas are read-only and the counters are written"
    );
    let err = refused(json!({"count": 1, "time_window": 1, "window_type": "sliding"}));
    assert!(err.ends_with("window_type sliding is not supported yet"));
    let err = refused(json!({
        "count": 1, "time_window": 10, "policy": "redis", "redis_host": "127.0.0.1",
        "sync_interval": 1
    }));
    assert!(
        err.ends_with("sync_interval (delayed synchronisation) is not supported yet"),
        "{err}"
    );
    // APISIX's own sync_interval checks come first.
    let err = refused(json!({
        "count": 1, "time_window": 10, "policy": "redis", "redis_host": "127.0.0.1",
        "sync_interval": 0.01
    }));
    assert!(
        err.ends_with("sync_interval should not be smaller than 0.1"),
        "{err}"
    );
    let err = refused(json!({
        "count": 1, "time_window": 1, "policy": "redis", "redis_host": "127.0.0.1",
        "redis_port": 70000
    }));
    assert!(
        err.ends_with("invalid redis_port 70000: must be at most 65535"),
        "{err}"
    );
    let err = refused(json!({
        "count": 1, "time_window": 1, "policy": "redis-cluster",
        "redis_cluster_nodes": ["127.0.0.1:7000", "127.0.0.1:http"], "redis_cluster_name": "c"
    }));
    assert!(
        err.ends_with(
            "failed to parse address: 127.0.0.1:http err: invalid port in address 127.0.0.1:http"
        ),
        "{err}"
    );
    // The schema's own requirements (APISIX's `if`/`then` on the policy).
    let err = refused(json!({"count": 1, "time_window": 1, "policy": "redis"}));
    assert!(err.ends_with("err: then clause did not match"), "{err}");
    let err = refused(json!({
        "count": 1, "time_window": 1, "policy": "redis-cluster", "redis_cluster_nodes": ["a:1"]
    }));
    assert!(err.ends_with("err: else clause did not match"), "{err}");
    // Redis policies build (nothing is contacted yet).
    build_in(
        &f,
        json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "127.0.0.1"}),
        "o",
    )
    .expect("redis builds");
    build_in(
        &f,
        json!({"count": 1, "time_window": 1, "policy": "redis-cluster",
               "redis_cluster_nodes": ["127.0.0.1:7000"], "redis_cluster_name": "c"}),
        "o",
    )
    .expect("redis-cluster builds");
    build_in(
        &f,
        json!({"count": 1, "time_window": 1, "policy": "redis-sentinel",
               "redis_sentinels": [{"host": "127.0.0.1", "port": 26379}],
               "redis_master_name": "m"}),
        "o",
    )
    .expect("redis-sentinel builds");
}

#[test]
fn stable_checksum_input() {
    let mut a = String::new();
    stable_json(&json!({"b": 1, "a": [true, {"d": null, "c": "x"}]}), &mut a);
    assert_eq!(a, "{\"a\":[true,{\"c\":\"x\",\"d\":null}],\"b\":1}");
    assert_eq!(reset_text(Duration::from_millis(59_876)), "59.87");
}

#[test]
fn reset_prints_as_lua_prints_floor_of_hundredths() {
    let lua = |d: Duration| {
        portico_model::schema::format_number((d.as_secs_f64() * 100.0).floor() / 100.0)
    };
    let mut nanos: u64 = 1;
    for ms in 0..5_000u64 {
        for d in [
            Duration::from_millis(ms),
            Duration::from_millis(ms * 17),
            Duration::from_nanos(ms * 1_000_003 + nanos % 1_000_000),
        ] {
            assert_eq!(reset_text(d), lua(d), "{d:?}");
        }
        nanos = nanos
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    assert_eq!(
        reset_text(Duration::from_millis(290)),
        "0.28",
        "Lua's float floor"
    );
    assert_eq!(reset_text(Duration::from_secs(86_400)), "86400");
}

#[test]
fn quota_headers_across_a_window_reset() {
    // Counted straight into the store so that the window can end without waiting.
    let counters = Counters::default();
    let t0 = Instant::now();
    let window = Duration::from_secs(2);
    let answer = Arc::new(Answer {
        headers: vec![quota_headers(None, None, &Amount::Fixed(2)).unwrap()],
        rejected_code: StatusCode::SERVICE_UNAVAILABLE,
        rejected_msg: None,
        allow_degradation: false,
        show_headers: true,
    });
    let quota_at = |now: Instant| {
        let mut ctx = ctx_for(get("/"));
        let count = counters.incoming("k", 2, window, 1, now);
        let flow = answer.counted(&mut ctx, 0, 2, count);
        let mut headers = http::HeaderMap::new();
        write_quota_into(&mut ctx, &mut headers);
        let text = |name: &str| headers[name].to_str().unwrap().to_string();
        (
            flow.is_none(),
            text("x-ratelimit-limit"),
            text("x-ratelimit-remaining"),
            text("x-ratelimit-reset"),
        )
    };
    let s = |s: &str| s.to_string();
    assert_eq!(quota_at(t0), (true, s("2"), s("1"), s("2")));
    let later = t0 + Duration::from_millis(1_500);
    assert_eq!(quota_at(later), (true, s("2"), s("0"), s("0.5")));
    assert_eq!(quota_at(later), (false, s("2"), s("0"), s("0.5")));
    // The window ended: a new one, with its full quota and reset time.
    let next = t0 + window;
    assert_eq!(quota_at(next), (true, s("2"), s("1"), s("2")));
    assert_eq!(
        quota_at(next + Duration::from_millis(10)),
        (true, s("2"), s("0"), s("1.99"))
    );
}

/// Writes the note of `ctx` into `headers` (what `header_filter` does into the response head).
fn write_quota_into(ctx: &mut Ctx, headers: &mut http::HeaderMap) {
    if let Some(note) = ctx.quota.take() {
        note.write(headers);
    }
}

#[test]
fn quota_numbers_print_as_decimal() {
    let mut n: u64 = 7;
    let mut cases = vec![
        0,
        1,
        9,
        10,
        11,
        99,
        100,
        101,
        999,
        1000,
        2_000_000_000,
        u64::MAX,
    ];
    for _ in 0..1000 {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        cases.push(n >> (n % 64));
    }
    for n in cases {
        assert_eq!(Digits::default().number(n), n.to_string().as_bytes(), "{n}");
    }
}
