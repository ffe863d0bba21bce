//! api-breaker: the breaker's arithmetic on a synthetic clock, and the plugin on real contexts.

use super::*;
use crate::testing::{ctx_for, get, plugin, Fixture};
use crate::Conf;

fn policy(failures: u64, successes: u64, max: u64) -> Policy {
    Policy {
        unhealthy_statuses: vec![500, 503],
        failures,
        healthy_statuses: vec![200],
        successes,
        max_breaker_sec: max,
    }
}

#[test]
fn breaks_for_two_four_eight_seconds_up_to_the_maximum() {
    let b = Breakers::default();
    let p = policy(2, 1, 10);
    let clock = Instant::now();
    let t = 1_000_000;
    b.record("k", &p, 500, t, clock);
    assert!(!b.is_broken("k", &p, t), "one failure of two");
    b.record("k", &p, 503, t, clock);
    // Broken from t through t + 2 (whole seconds, `lasttime + 2 >= now`).
    assert!(b.is_broken("k", &p, t));
    assert!(b.is_broken("k", &p, t + 2));
    assert!(!b.is_broken("k", &p, t + 3));
    // Failures again: the 3rd does not restart the break (floor(3 / 2) = 1 → 2 s from t).
    b.record("k", &p, 500, t + 3, clock);
    assert!(!b.is_broken("k", &p, t + 3));
    // The 4th does: 2^2 = 4 s.
    b.record("k", &p, 500, t + 3, clock);
    assert!(b.is_broken("k", &p, t + 7));
    assert!(!b.is_broken("k", &p, t + 8));
    // 6th failure: 8 s; 8th: 16 s capped at 10.
    b.record("k", &p, 500, t + 8, clock);
    b.record("k", &p, 500, t + 8, clock);
    assert!(b.is_broken("k", &p, t + 16));
    assert!(!b.is_broken("k", &p, t + 17));
    b.record("k", &p, 500, t + 17, clock);
    b.record("k", &p, 500, t + 17, clock);
    assert!(b.is_broken("k", &p, t + 27));
    assert!(!b.is_broken("k", &p, t + 28));
    // Other statuses change nothing; other keys are apart.
    b.record("k", &p, 404, t + 28, clock);
    assert!(!b.is_broken("other", &p, t + 17));
}

#[test]
fn successes_reset_and_failures_forget_successes() {
    let b = Breakers::default();
    let p = policy(1, 2, 300);
    let clock = Instant::now();
    let t = 5_000;
    // A success without failures records nothing.
    b.record("k", &p, 200, t, clock);
    assert!(b.is_empty());
    b.record("k", &p, 500, t, clock);
    assert!(b.is_broken("k", &p, t + 2));
    b.record("k", &p, 200, t + 3, clock);
    // A failure forgets the success: two more successes are needed after it.
    b.record("k", &p, 500, t + 3, clock);
    b.record("k", &p, 200, t + 10, clock);
    assert_eq!(b.len(), 1);
    b.record("k", &p, 200, t + 10, clock);
    assert!(b.is_empty(), "two successes reset the path");
    // Reset: the next failure breaks for 2 s again (count 1, not 3).
    b.record("k", &p, 500, t + 20, clock);
    assert!(b.is_broken("k", &p, t + 22));
    assert!(!b.is_broken("k", &p, t + 23));
}

#[test]
fn breaks_are_capped_at_max_breaker_sec() {
    let b = Breakers::default();
    let p = policy(1, 1, 3);
    let clock = Instant::now();
    for _ in 0..5 {
        b.record("k", &p, 500, 100, clock);
    }
    // 2^5 = 32 s, capped at 3.
    assert!(b.is_broken("k", &p, 103));
    assert!(!b.is_broken("k", &p, 104));
}

fn answer(p: &Arc<dyn Plugin>, ctx: &mut Ctx) -> Option<Reply> {
    match p.access(ctx) {
        Flow::Continue => None,
        Flow::Respond(r) => Some(r),
        Flow::Wait(_) => unreachable!("api-breaker never waits"),
    }
}

/// One request through access and, when it passed, an upstream answering `status`.
fn request(p: &Arc<dyn Plugin>, uri: &str, status: u16) -> Option<Reply> {
    let mut ctx = ctx_for(get(uri).header("host", "api.example"));
    let reply = answer(p, &mut ctx);
    if reply.is_none() {
        ctx.log.upstream_status = Some(status);
    }
    p.header_filter(&mut ctx);
    reply
}

#[test]
fn breaks_with_the_configured_response() {
    let p = plugin(
        NAME,
        json!({"break_response_code": 502, "break_response_body": "broken $uri",
               "break_response_headers": [{"key": "X-Why", "value": "breaker $host"},
                                          {"key": "X-Why", "value": "again"}],
               "unhealthy": {"failures": 2}}),
    );
    assert!(request(&p, "/a", 500).is_none());
    assert!(request(&p, "/a", 500).is_none());
    // Another path of the same configuration is not broken.
    assert!(request(&p, "/b", 200).is_none());
    let mut ctx = ctx_for(get("/a").header("host", "api.example"));
    let reply = answer(&p, &mut ctx).expect("broken");
    assert_eq!(reply.status, 502);
    // The body is sent as configured; only header values resolve variables.
    assert_eq!(reply.body, b"broken $uri");
    let why: Vec<_> = ctx.response_headers.get_all("x-why").iter().collect();
    assert_eq!(why, ["breaker api.example", "again"]);
    // The breaker's own answer has no upstream status and counts nothing.
    p.header_filter(&mut ctx);
}

#[test]
fn without_a_body_the_nginx_page_and_no_headers() {
    let p = plugin(
        NAME,
        json!({"break_response_code": 503,
               "break_response_headers": [{"key": "X-Why", "value": "breaker"}],
               "unhealthy": {"failures": 1}}),
    );
    assert!(request(&p, "/", 500).is_none());
    let mut ctx = ctx_for(get("/").header("host", "api.example"));
    let reply = answer(&p, &mut ctx).expect("broken");
    assert_eq!(reply.status, 503);
    assert!(String::from_utf8_lossy(&reply.body).contains("503 Service Temporarily Unavailable"));
    assert!(ctx.response_headers.is_empty());
}

#[test]
fn state_survives_rebuilds_and_resets_on_edit() {
    let f = Fixture::new();
    let build = |conf: Value| {
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
    };
    let conf = json!({"break_response_code": 502, "unhealthy": {"failures": 1}});
    assert!(request(&build(conf.clone()), "/", 500).is_none());
    assert_eq!(
        request(&build(conf), "/", 200).map(|r| r.status.as_u16()),
        Some(502)
    );
    let edited = json!({"break_response_code": 503, "unhealthy": {"failures": 1}});
    assert!(request(&build(edited), "/", 200).is_none());
}

#[test]
fn schema_checks() {
    let registry = crate::registry();
    let check = |conf: Value| {
        portico_model::check(
            portico_model::Kind::PluginConfig,
            &json!({"id": "1", "plugins": {"api-breaker": conf}}),
            &registry,
        )
    };
    assert_eq!(check(json!({"break_response_code": 502})), Ok(()));
    for bad in [
        json!({}),
        json!({"break_response_code": 199}),
        json!({"break_response_code": 502, "max_breaker_sec": 2}),
        json!({"break_response_code": 502, "unhealthy": {"http_statuses": [404]}}),
        json!({"break_response_code": 502, "healthy": {"http_statuses": [500]}}),
        json!({"break_response_code": 502, "unhealthy": {"failures": 0}}),
        json!({"break_response_code": 502, "break_response_headers": [{"key": "X"}]}),
    ] {
        assert!(check(bad.clone()).is_err(), "{bad}");
    }
}
