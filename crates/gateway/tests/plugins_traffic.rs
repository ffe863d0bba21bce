//! The traffic plugins through the real gateway: real-ip, request-id, fault-injection,
//! limit-req, limit-conn and api-breaker — configurations the Admin API accepts or refuses,
//! their answers to real requests, and what changes when their template is edited while
//! requests are in flight.
//!
//! Timing assertions are lower bounds (a sleep never ends early) or bounds far above what the
//! work needs, so that a loaded machine does not fail them.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_error_page, upstream, Harness, Reply};
use http::{Method, StatusCode};
use http_body_util::Full;
use portico_model::Kind;
use portico_testkit::upstream::{handlers, Gate, Handler, Upstream};
use serde_json::{json, Value};

fn route(uri: &str, node: &str, template: &str) -> Value {
    json!({"uri": uri, "upstream": upstream(&[(node, 1)], json!({})), "plugin_config_id": template})
}

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

/// `GET path` with extra headers, in its own task; the reply and how long it took.
fn spawn_get(
    gw: &Harness,
    path: &str,
    headers: &[(&str, &str)],
) -> tokio::task::JoinHandle<(Reply, Duration)> {
    let client = gw.client();
    let mut req = gw.request(Method::GET, path);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(Full::default()).expect("request");
    tokio::spawn(async move {
        let started = Instant::now();
        let resp = client.request(req).await.expect("gateway answers");
        (Reply::read(resp).await, started.elapsed())
    })
}

async fn get_with(gw: &Harness, path: &str, headers: &[(&str, &str)]) -> Reply {
    spawn_get(gw, path, headers).await.expect("task").0
}

/// Polls `GET path` until it answers `status` (within 10 s); returns when it did.
async fn until_status(gw: &Harness, path: &str, status: u16) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.get(path).await;
        if r.status == status {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {} ({})",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn real_ip_sets_the_client_address_for_plugins_and_the_upstream() {
    assert_eq!(
        admin_check(
            "real-ip",
            json!({"source": "http_x_forwarded_for", "trusted_addresses": ["127.0.0.0/8", "::1"], "recursive": true})
        ),
        Ok(())
    );
    assert_eq!(
        admin_check(
            "real-ip",
            json!({"source": "http_x_forwarded_for", "trusted_addresses": ["::1/200"]})
        ),
        Err(
            "failed to check the configuration of plugin real-ip err: invalid ip address: ::1/200"
                .to_string()
        )
    );
    assert!(admin_check("real-ip", json!({"recursive": true})).is_err());

    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/rip",
            json!({"plugins": {
                "real-ip": {"source": "http_x_forwarded_for", "trusted_addresses": ["127.0.0.0/8"]},
                "ip-restriction": {"whitelist": ["1.1.1.1", "2.2.2.2"]}
            }}),
        ),
        ("ws/default/routes/1", route("/rip", &up.node(), "rip")),
    ])
    .await;
    // The address from X-Forwarded-For passes ip-restriction and is what the upstream sees.
    let r = get_with(&gw, "/rip", &[("x-forwarded-for", "9.9.9.9, 1.1.1.1")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echoed("x-real-ip").as_deref(), Some("1.1.1.1"));
    assert_eq!(
        r.echoed("x-forwarded-for").as_deref(),
        Some("9.9.9.9, 1.1.1.1, 1.1.1.1")
    );
    // Without it the peer (127.0.0.1) is the client, and is refused.
    let r = gw.get("/rip").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        "{\"message\":\"Your IP address is not allowed\"}\n"
    );
    // A query argument as the source, with a port.
    gw.put(vec![(
        "ws/default/plugin_configs/rip",
        json!({"plugins": {
            "real-ip": {"source": "arg_realip"},
            "ip-restriction": {"whitelist": ["2.2.2.2"]}
        }}),
    )]);
    let r = gw.get("/rip?realip=2.2.2.2:7000").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.echoed("x-real-ip").as_deref(), Some("2.2.2.2"));
    // Not a trusted peer any more: X-Forwarded-For is ignored.
    gw.put(vec![(
        "ws/default/plugin_configs/rip",
        json!({"plugins": {
            "real-ip": {"source": "http_x_forwarded_for", "trusted_addresses": ["10.0.0.0/8"]},
            "ip-restriction": {"whitelist": ["1.1.1.1"]}
        }}),
    )]);
    let r = get_with(&gw, "/rip", &[("x-forwarded-for", "1.1.1.1")]).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn request_id_reaches_the_upstream_and_the_client() {
    assert_eq!(
        admin_check("request-id", json!({"algorithm": "uuidv7"})),
        Ok(())
    );
    assert!(admin_check("request-id", json!({"algorithm": "snowflake"}))
        .is_err_and(|e| e.contains("property \"algorithm\" validation failed")));
    assert!(admin_check(
        "request-id",
        json!({"algorithm": "range_id", "range_id": {"length": 5}})
    )
    .is_err());

    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/rid",
            json!({"plugins": {"request-id": {}}}),
        ),
        ("ws/default/routes/1", route("/rid", &up.node(), "rid")),
    ])
    .await;
    let r = gw.get("/rid").await;
    assert_eq!(r.status, 200);
    let sent = r.echoed("x-request-id").expect("an id upstream");
    assert_eq!(sent.len(), 36, "{sent}");
    assert_eq!(r.header("x-request-id"), Some(sent.as_str()));
    assert_ne!(
        gw.get("/rid").await.header("x-request-id"),
        Some(sent.as_str())
    );
    // A client's id is kept.
    let r = get_with(&gw, "/rid", &[("x-request-id", "mine-1")]).await;
    assert_eq!(r.echoed("x-request-id").as_deref(), Some("mine-1"));
    assert_eq!(r.header("x-request-id"), Some("mine-1"));
    // Edited: another header, nanoid, not in the response.
    gw.put(vec![(
        "ws/default/plugin_configs/rid",
        json!({"plugins": {"request-id": {
            "header_name": "X-Trace", "algorithm": "nanoid", "include_in_response": false
        }}}),
    )]);
    let r = gw.get("/rid").await;
    let trace = r.echoed("x-trace").expect("an id upstream");
    assert_eq!(trace.len(), 21, "{trace}");
    assert!(r.header("x-trace").is_none());
    assert!(r.echoed("x-request-id").is_none());
}

#[tokio::test]
async fn fault_injection_aborts_and_delays() {
    assert_eq!(
        admin_check(
            "fault-injection",
            json!({"delay": {"duration": 0.5, "percentage": 50}})
        ),
        Ok(())
    );
    assert_eq!(
        admin_check(
            "fault-injection",
            json!({"abort": {"http_status": 403, "vars": [[["arg_a", "=", "1"]]]}})
        ),
        Err(
            "failed to check the configuration of plugin fault-injection err: invalid operator '='"
                .to_string()
        )
    );
    assert!(admin_check("fault-injection", json!({})).is_err());
    assert!(admin_check("fault-injection", json!({"abort": {"http_status": 100}})).is_err());

    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/fi",
            json!({"plugins": {"fault-injection": {"abort": {
                "http_status": 403, "body": "blocked $arg_who on $uri\n",
                "headers": {"X-Fault": "for $arg_who", "X-Count": 3},
                "vars": [[["arg_who", "==", "joe"]], [["http_x_fail", "==", "1"]]]
            }}}}),
        ),
        ("ws/default/routes/1", route("/fi", &up.node(), "fi")),
    ])
    .await;
    let r = gw.get("/fi?who=joe").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "blocked joe on /fi\n");
    assert_eq!(r.header("x-fault"), Some("for joe"));
    assert_eq!(r.header("x-count"), Some("3"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(up.hits(), 0);
    assert_eq!(get_with(&gw, "/fi", &[("x-fail", "1")]).await.status, 403);
    // No rule matches: proxied.
    assert_eq!(gw.get("/fi?who=ann").await.status, 200);
    assert_eq!(up.hits(), 1);

    // A delay: a request in flight keeps the configuration it started with while the template
    // is edited to abort without a body.
    gw.put(vec![(
        "ws/default/plugin_configs/fi",
        json!({"plugins": {"fault-injection": {"delay": {"duration": 2}}}}),
    )]);
    let delayed = spawn_get(&gw, "/fi", &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.put(vec![(
        "ws/default/plugin_configs/fi",
        json!({"plugins": {"fault-injection": {"abort": {"http_status": 503}}}}),
    )]);
    let aborted = gw.get("/fi").await;
    assert_error_page(&aborted, 503, "Service Temporarily Unavailable");
    let (r, took) = delayed.await.expect("task");
    assert_eq!(r.status, 200);
    assert!(took >= Duration::from_millis(1990), "{took:?}");
}

#[tokio::test]
async fn limit_req_delays_within_the_burst_and_rejects_beyond_it() {
    assert_eq!(
        admin_check(
            "limit-req",
            json!({"rate": 0.5, "burst": 0, "key": "remote_addr"})
        ),
        Ok(())
    );
    assert_eq!(
        admin_check(
            "limit-req",
            json!({"rate": 1, "burst": 0, "key": "remote_addr", "policy": "redis", "redis_host": "127.0.0.1"})
        ),
        Ok(())
    );
    assert!(admin_check("limit-req", json!({"rate": 1, "burst": 0})).is_err());
    assert!(admin_check(
        "limit-req",
        json!({"rate": 0, "burst": 0, "key": "remote_addr"})
    )
    .is_err());

    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/lr",
            json!({"plugins": {"limit-req": {"rate": 1, "burst": 2, "key": "remote_addr"}}}),
        ),
        ("ws/default/routes/1", route("/lr", &node, "lr")),
    ])
    .await;
    let started = Instant::now();
    assert_eq!(gw.get("/lr").await.status, 200);
    // A snapshot swap that keeps the configuration keeps the bucket (a fresh bucket would let
    // all three requests below through).
    gw.put(vec![("ws/default/routes/2", route("/other", &node, "lr"))]);
    // Three at once: two wait their turn (1 s and 2 s after the first, at 1 request/s), one is
    // over the burst.
    let tasks: Vec<_> = (0..3).map(|_| spawn_get(&gw, "/lr", &[])).collect();
    // Edited while they wait: the waiting ones keep their configuration; the new one (a new
    // bucket) does not delay, and answers its own rejection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw.put(vec![(
        "ws/default/plugin_configs/lr",
        json!({"plugins": {"limit-req": {"rate": 1, "burst": 1, "key": "remote_addr",
            "nodelay": true, "rejected_code": 429, "rejected_msg": "slow down"}}}),
    )]);
    for _ in 0..2 {
        let sent = Instant::now();
        assert_eq!(gw.get("/lr").await.status, 200);
        assert!(sent.elapsed() < Duration::from_millis(900));
    }
    let r = gw.get("/lr").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "{\"error_msg\":\"slow down\"}\n");

    let mut passed = Vec::new();
    let mut rejected = Vec::new();
    for t in tasks {
        let (r, _) = t.await.expect("task");
        match r.status.as_u16() {
            200 => passed.push(started.elapsed()),
            _ => rejected.push(r),
        }
    }
    assert_eq!((passed.len(), rejected.len()), (2, 1), "{rejected:?}");
    assert_error_page(&rejected[0], 503, "Service Temporarily Unavailable");
    passed.sort();
    assert!(passed[0] >= Duration::from_millis(990), "{passed:?}");
    assert!(passed[1] >= Duration::from_millis(1990), "{passed:?}");
}

#[tokio::test]
async fn limit_conn_counts_requests_until_their_response_ends() {
    assert_eq!(
        admin_check(
            "limit-conn",
            json!({"default_conn_delay": 0.1, "rules": [{"conn": 1, "burst": 0, "key": "$remote_addr"}]})
        ),
        Ok(())
    );
    assert_eq!(
        admin_check(
            "limit-conn",
            json!({"conn": 1, "burst": 0, "default_conn_delay": 0.1, "key": "remote_addr",
                   "policy": "redis", "redis_host": "127.0.0.1"})
        ),
        Ok(())
    );
    assert!(admin_check(
        "limit-conn",
        json!({"conn": 1, "burst": 0, "key": "remote_addr"})
    )
    .is_err());

    let gate = Gate::new();
    let up = Upstream::start("held", gate.hold(handlers::echo())).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/lc",
            json!({"plugins": {"limit-conn": {
                "conn": 1, "burst": 1, "default_conn_delay": 0.3, "key": "remote_addr"
            }}}),
        ),
        ("ws/default/routes/1", route("/lc", &up.node(), "lc")),
    ])
    .await;
    let first = spawn_get(&gw, "/lc", &[]);
    gate.until_waiting(1).await;
    // Over `conn`, within the burst: waits 0.3 s, then reaches the upstream.
    let second = spawn_get(&gw, "/lc", &[]);
    gate.until_waiting(2).await;
    // Over `conn + burst`: rejected at once.
    let r = gw.get("/lc").await;
    assert_error_page(&r, 503, "Service Temporarily Unavailable");
    assert_eq!(up.hits(), 2);

    // Edited while both are held: a new configuration counts afresh.
    gw.put(vec![(
        "ws/default/plugin_configs/lc",
        json!({"plugins": {"limit-conn": {
            "conn": 1, "burst": 0, "default_conn_delay": 0.3, "key": "remote_addr",
            "rejected_code": 429, "rejected_msg": "busy"
        }}}),
    )]);
    let third = spawn_get(&gw, "/lc", &[]);
    gate.until_waiting(3).await;
    let r = gw.get("/lc").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "{\"error_msg\":\"busy\"}\n");

    gate.open();
    let (r1, _) = first.await.expect("task");
    let (r2, took2) = second.await.expect("task");
    let (r3, _) = third.await.expect("task");
    assert_eq!(
        [r1.status, r2.status, r3.status].map(|s| s.as_u16()),
        [200, 200, 200]
    );
    assert!(took2 >= Duration::from_millis(280), "{took2:?}");
    // Their responses ended: the count is back to zero and requests pass again.
    until_status(&gw, "/lc", 200).await;
}

/// An upstream answering the status in `status` with body `upstream`.
fn switchable(status: Arc<AtomicU16>) -> Handler {
    Arc::new(move |_req| {
        let code = StatusCode::from_u16(status.load(Ordering::SeqCst))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Box::pin(async move { handlers::status(code, "upstream") })
    })
}

#[tokio::test]
async fn api_breaker_breaks_the_route_then_recovers() {
    assert_eq!(
        admin_check("api-breaker", json!({"break_response_code": 502})),
        Ok(())
    );
    assert!(admin_check(
        "api-breaker",
        json!({"break_response_code": 502, "max_breaker_sec": 2})
    )
    .is_err_and(|e| e.contains("property \"max_breaker_sec\" validation failed")));
    assert!(admin_check("api-breaker", json!({"max_breaker_sec": 10}))
        .is_err_and(|e| e.contains("break_response_code")));
    assert!(admin_check(
        "api-breaker",
        json!({"break_response_code": 502, "unhealthy": {"http_statuses": [404]}})
    )
    .is_err());

    let status = Arc::new(AtomicU16::new(500));
    let up = Upstream::start("flaky", switchable(status.clone())).await;
    let node = up.node();
    let breaker = json!({
        "break_response_code": 502, "break_response_body": "breaker open\n",
        "break_response_headers": [{"key": "X-Breaker", "value": "open on $uri"}],
        "unhealthy": {"http_statuses": [500, 503], "failures": 2},
        "healthy": {"successes": 1}
    });
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/ab",
            json!({"plugins": {"api-breaker": breaker}}),
        ),
        ("ws/default/routes/1", route("/ab", &node, "ab")),
    ])
    .await;
    assert_eq!(gw.get("/ab").await.status, 500);
    assert_eq!(gw.get("/ab").await.status, 500);
    let tripped = Instant::now();
    // Two failures: broken for 2 s, the upstream is not asked.
    let r = gw.get("/ab").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "breaker open\n");
    assert_eq!(r.header("x-breaker"), Some("open on /ab"));
    assert_eq!(up.hits(), 2);
    // A snapshot swap that keeps the configuration keeps the state.
    gw.put(vec![("ws/default/routes/2", route("/other", &node, "ab"))]);
    assert_eq!(gw.get("/ab").await.status, 502);
    assert_eq!(up.hits(), 2);
    // The upstream recovers; the route answers again once the break is over.
    status.store(200, Ordering::SeqCst);
    let recovered = until_status(&gw, "/ab", 200).await;
    let broken_for = recovered - tripped;
    assert!(
        broken_for >= Duration::from_millis(1900) && broken_for < Duration::from_secs(8),
        "{broken_for:?}"
    );
    // Failing again breaks again.
    status.store(503, Ordering::SeqCst);
    assert_eq!(gw.get("/ab").await.status, 503);
    assert_eq!(gw.get("/ab").await.status, 503);
    assert_eq!(gw.get("/ab").await.status, 502);
    // Edited while broken: a new configuration starts healthy, and answers with the nginx page
    // when it breaks (no body configured).
    let hits = up.hits();
    gw.put(vec![(
        "ws/default/plugin_configs/ab",
        json!({"plugins": {"api-breaker": {"break_response_code": 504,
            "break_response_headers": [{"key": "X-Breaker", "value": "ignored without a body"}],
            "unhealthy": {"http_statuses": [503], "failures": 1}}}}),
    )]);
    assert_eq!(gw.get("/ab").await.status, 503);
    assert_eq!(up.hits(), hits + 1);
    let r = gw.get("/ab").await;
    assert_error_page(&r, 504, "Gateway Time-out");
    assert!(r.header("x-breaker").is_none());
    assert_eq!(up.hits(), hits + 1);
}
