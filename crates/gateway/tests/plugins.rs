//! Plugins through the real gateway: a route gets them from its plugin template, consumers carry
//! auth keys, global rules apply to their workspace; an edit changes behaviour at once.

mod common;

use common::{upstream, Harness};
use http::Method;
use http_body_util::Full;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::{json, Value};

fn route(uri: &str, node: &str, template: Option<&str>) -> Value {
    let mut r = json!({"uri": uri, "upstream": upstream(&[(node, 1)], json!({}))});
    if let Some(t) = template {
        r["plugin_config_id"] = json!(t);
    }
    r
}

#[tokio::test]
async fn key_auth_admits_consumers_of_the_route_s_workspace_only() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/a/plugin_configs/auth",
            json!({"plugins": {"key-auth": {}}}),
        ),
        ("ws/a/routes/1", route("/a", &node, Some("auth"))),
        (
            "ws/a/consumers/jack",
            json!({"username": "jack", "labels": {"custom_id": "c-1"},
            "plugins": {"key-auth": {"key": "jack-key"}}}),
        ),
        (
            "ws/b/consumers/eve",
            json!({"username": "eve", "plugins": {"key-auth": {"key": "eve-key"}}}),
        ),
    ])
    .await;
    let with_key = |key: &'static str| {
        gw.request(Method::GET, "/a")
            .header("apikey", key)
            .body(Full::default())
            .unwrap()
    };
    let missing = gw.get("/a").await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.text(),
        "{\"message\":\"Missing API key in request\"}\n"
    );
    let ok = gw.send(with_key("jack-key")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.echoed("x-consumer-username").as_deref(), Some("jack"));
    assert_eq!(ok.echoed("x-consumer-custom-id").as_deref(), Some("c-1"));
    // A consumer of another workspace does not authenticate here.
    let foreign = gw.send(with_key("eve-key")).await;
    assert_eq!(foreign.status, 401);
    assert_eq!(
        foreign.text(),
        "{\"message\":\"Invalid API key in request\"}\n"
    );
    // Editing the consumer's key takes effect at once.
    gw.put(vec![(
        "ws/a/consumers/jack",
        json!({"username": "jack", "plugins": {"key-auth": {"key": "new-key"}}}),
    )]);
    assert_eq!(gw.send(with_key("jack-key")).await.status, 401);
    assert_eq!(gw.send(with_key("new-key")).await.status, 200);
}

#[tokio::test]
async fn template_edits_apply_to_every_route_using_it() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/t",
            json!({"plugins": {"ip-restriction": {"whitelist": ["10.0.0.0/8"]}}}),
        ),
        ("ws/default/routes/1", route("/one", &node, Some("t"))),
        ("ws/default/routes/2", route("/two", &node, Some("t"))),
    ])
    .await;
    for path in ["/one", "/two"] {
        let r = gw.get(path).await;
        assert_eq!(r.status, 403);
        assert_eq!(
            r.text(),
            "{\"message\":\"Your IP address is not allowed\"}\n"
        );
    }
    gw.put(vec![(
        "ws/default/plugin_configs/t",
        json!({"plugins": {"ip-restriction": {"whitelist": ["127.0.0.0/8"]}}}),
    )]);
    for path in ["/one", "/two"] {
        assert_eq!(gw.get(path).await.status, 200);
    }
    // A route whose template is gone answers 503.
    gw.put(vec![(
        "ws/default/routes/3",
        route("/three", &node, Some("gone")),
    )]);
    assert_eq!(gw.get("/three").await.status, 503);
}

#[tokio::test]
async fn proxy_rewrite_changes_what_the_upstream_receives() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/rw",
            json!({"plugins": {"proxy-rewrite": {
                "regex_uri": ["^/old/(.*)", "/new/$1"],
                "host": "rewritten.example",
                "headers": {"set": {"X-Added": "yes"}, "remove": ["X-Drop"]}
            }}}),
        ),
        ("ws/default/routes/1", route("/old/*", &node, Some("rw"))),
    ])
    .await;
    let req = gw
        .request(Method::GET, "/old/thing?q=1")
        .header("x-drop", "1")
        .body(Full::default())
        .unwrap();
    let r = gw.send(req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.json();
    assert_eq!(seen["uri"], "/new/thing?q=1", "{seen}");
    assert_eq!(r.echoed("host").as_deref(), Some("rewritten.example"));
    assert_eq!(r.echoed("x-added").as_deref(), Some("yes"));
    assert!(r.echoed("x-drop").is_none());
}

#[tokio::test]
async fn limit_count_counts_per_template_and_answers_with_its_headers() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/l",
            json!({"plugins": {"limit-count": {
                "count": 2, "time_window": 60, "rejected_code": 429, "rejected_msg": "slow down"
            }}}),
        ),
        ("ws/default/routes/1", route("/l", &node, Some("l"))),
    ])
    .await;
    let first = gw.get("/l").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(gw.get("/l").await.status, 200);
    let third = gw.get("/l").await;
    assert_eq!(third.status, 429);
    assert_eq!(third.text(), "{\"error_msg\":\"slow down\"}\n");
    assert_eq!(third.header("x-ratelimit-remaining"), Some("0"));
    // Editing the template resets the counter (a new configuration, a new counter).
    gw.put(vec![(
        "ws/default/plugin_configs/l",
        json!({"plugins": {"limit-count": {
            "count": 3, "time_window": 60, "rejected_code": 429
        }}}),
    )]);
    assert_eq!(gw.get("/l").await.status, 200);
}

/// The quota headers replace an upstream's own, written once; a `header_filter` plugin (here
/// response-rewrite) sees them and may remove them, as APISIX sets them in `access`.
#[tokio::test]
async fn limit_count_quota_headers_replace_the_upstreams_and_reach_header_filters() {
    let own = Upstream::raw(
        "own-quota",
        handlers::raw::respond(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-RateLimit-Limit: 99\r\n\
              X-RateLimit-Remaining: 98\r\nX-Other: 1\r\n\r\nok",
        ),
    )
    .await;
    let limit = json!({"count": 5, "time_window": 60});
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/l",
            json!({"plugins": {"limit-count": limit}}),
        ),
        (
            "ws/default/plugin_configs/lr",
            json!({"plugins": {
                "limit-count": limit,
                "response-rewrite": {"headers": {"remove": ["X-RateLimit-Reset"]}}
            }}),
        ),
        ("ws/default/routes/1", route("/l", &own.node(), Some("l"))),
        ("ws/default/routes/2", route("/lr", &own.node(), Some("lr"))),
    ])
    .await;
    let reply = common::net::raw(gw.addr, b"GET /l HTTP/1.1\r\nHost: h\r\n\r\n").await;
    assert_eq!(reply.status, 200);
    let lines: Vec<&str> = reply.head.lines().collect();
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert!(lines.contains(&"x-ratelimit-limit: 5"), "{lines:?}");
    assert!(lines.contains(&"x-ratelimit-remaining: 4"), "{lines:?}");
    assert_eq!(count("x-ratelimit-limit:"), 1, "{lines:?}");
    assert_eq!(count("x-ratelimit-remaining:"), 1, "{lines:?}");
    assert_eq!(count("x-ratelimit-reset:"), 1, "{lines:?}");
    assert!(lines.contains(&"x-other: 1"), "{lines:?}");
    assert_eq!(reply.body, b"ok");

    let reply = gw.get("/lr").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(reply.header("x-ratelimit-remaining"), Some("4"));
    assert_eq!(reply.header("x-ratelimit-reset"), None);
}

#[tokio::test]
async fn global_rules_apply_to_their_own_workspace_only() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let node = up.node();
    let gw = Harness::start(vec![
        (
            "ws/a/global_rules/1",
            json!({"plugins": {"ip-restriction": {"blacklist": ["127.0.0.0/8"]}}}),
        ),
        ("ws/a/routes/1", route("/in-a", &node, None)),
        ("ws/b/routes/1", route("/in-b", &node, None)),
    ])
    .await;
    assert_eq!(gw.get("/in-a").await.status, 403);
    assert_eq!(gw.get("/in-b").await.status, 200);
}
