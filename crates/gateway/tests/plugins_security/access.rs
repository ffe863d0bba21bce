//! ua-restriction, referer-restriction and uri-blocker: requests refused by who sends them
//! and what they ask for.

use http::Method;
use portico_testkit::upstream::{handlers, Upstream};
use serde_json::json;

use crate::common::{self, Harness};
use crate::{
    accepted, edit_under_traffic, refused, request, route, send, status_and_body, Traffic,
};

#[test]
fn ua_restriction_config_on_write() {
    accepted(
        "ua-restriction",
        json!({"denylist": ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"]}),
    );
    accepted(
        "ua-restriction",
        json!({"allowlist": ["curl"], "bypass_missing": true, "message": "no"}),
    );
    assert_eq!(
        refused("ua-restriction", json!({"allowlist": ["a"], "denylist": ["b"]})),
        "failed to check the configuration of plugin ua-restriction err: value should match only one schema, but matches both schemas 1 and 2"
    );
    assert_eq!(
        refused("ua-restriction", json!({})),
        "failed to check the configuration of plugin ua-restriction err: value should match only one schema, but matches none"
    );
    assert_eq!(
        refused("ua-restriction", json!({"denylist": ["x"], "bypass_missing": "foo"})),
        "failed to check the configuration of plugin ua-restriction err: property \"bypass_missing\" validation failed: wrong type: expected boolean, got string"
    );
    assert_eq!(
        refused("ua-restriction", json!({"denylist": ["x"], "message": ""})),
        "failed to check the configuration of plugin ua-restriction err: property \"message\" validation failed: string too short, expected at least 1, got 0"
    );
    assert_eq!(
        refused("ua-restriction", json!({"denylist": ["ok", "(bad"]})),
        "failed to check the configuration of plugin ua-restriction err: pcre_compile() failed: missing ) in \"(bad\""
    );
    let served = portico_plugins::registry()
        .injected_schema("ua-restriction")
        .expect("schema");
    assert_eq!(served["properties"]["message"]["default"], "Not allowed");
    assert_eq!(
        portico_plugins::registry()
            .get("ua-restriction")
            .map(|s| s.priority),
        Some(2999)
    );
}

#[tokio::test]
async fn ua_restriction_on_requests() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/ua",
            json!({"plugins": {"ua-restriction": {"denylist": ["my-bot1", "(Baiduspider)/(\\d+)\\.(\\d+)"]}}}),
        ),
        ("ws/default/routes/1", route("/hello", &up.node(), "ua")),
    ])
    .await;
    let ua = |agent: &'static str| [("User-Agent", agent)];
    let blocked = send(&gw, Method::GET, "/hello", &ua("Baiduspider/3.0"), "").await;
    assert_eq!(blocked.status, 403);
    assert_eq!(blocked.text(), "{\"message\":\"Not allowed\"}\n");
    assert_eq!(
        send(&gw, Method::GET, "/hello", &ua("my-bot1"), "")
            .await
            .status,
        403
    );
    assert_eq!(
        send(&gw, Method::GET, "/hello", &ua("foo/bar"), "")
            .await
            .status,
        200
    );
    // Several User-Agent headers: refused when one is denied.
    let both = [("User-Agent", "foo/bar"), ("User-Agent", "my-bot1")];
    assert_eq!(
        send(&gw, Method::GET, "/hello", &both, "").await.status,
        403
    );
    // No User-Agent at all (the test client sends none) is refused unless bypassed.
    assert_eq!(gw.get("/hello").await.status, 403);

    let hits = up.hits();
    let traffic = Traffic::start(
        &gw,
        |url| {
            request(
                Method::GET,
                &format!("{url}/hello"),
                &[("User-Agent", "curl/8.0")],
                "",
            )
        },
        status_and_body,
    );
    edit_under_traffic(traffic, "200", "403 {\"message\":\"Do you want to do something bad?\"}", || {
        gw.put(vec![(
            "ws/default/plugin_configs/ua",
            json!({"plugins": {"ua-restriction": {"allowlist": ["^Mozilla/"], "bypass_missing": true,
                "message": "Do you want to do something bad?"}}}),
        )]);
    })
    .await;
    assert!(up.hits() > hits);
    let browser = [("User-Agent", "  Mozilla/5.0 (X11)")];
    assert_eq!(
        send(&gw, Method::GET, "/hello", &browser, "").await.status,
        200
    );
    assert_eq!(gw.get("/hello").await.status, 200);
}

#[test]
fn referer_restriction_config_on_write() {
    accepted(
        "referer-restriction",
        json!({"whitelist": ["*.xx.com", "yy.com", "*"]}),
    );
    assert_eq!(
        refused("referer-restriction", json!({"whitelist": ["a.com"], "blacklist": ["b.com"]})),
        "failed to check the configuration of plugin referer-restriction err: value should match only one schema, but matches both schemas 1 and 2"
    );
    assert_eq!(
        refused("referer-restriction", json!({"whitelist": []})),
        "failed to check the configuration of plugin referer-restriction err: property \"whitelist\" validation failed: expect array to have at least 1 items"
    );
    assert_eq!(
        refused("referer-restriction", json!({"blacklist": ["a b"]})),
        "failed to check the configuration of plugin referer-restriction err: property \"blacklist\" validation failed: failed to validate item 1: failed to match pattern \"^\\\\*$|^\\\\*?[0-9a-zA-Z-._\\\\[\\\\]:]+$\" with \"a b\""
    );
    assert_eq!(
        portico_plugins::registry()
            .get("referer-restriction")
            .map(|s| s.priority),
        Some(2990)
    );
}

#[tokio::test]
async fn referer_restriction_on_requests() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/ref",
            json!({"plugins": {"referer-restriction": {"whitelist": ["*.xx.com", "yy.com"]}}}),
        ),
        ("ws/default/routes/1", route("/hello", &up.node(), "ref")),
    ])
    .await;
    let referer = |r: &'static str| [("Referer", r)];
    let ok = send(
        &gw,
        Method::GET,
        "/hello",
        &referer("http://www.xx.com/page?q=1"),
        "",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.echoed("referer").as_deref(),
        Some("http://www.xx.com/page?q=1")
    );
    assert_eq!(
        send(
            &gw,
            Method::GET,
            "/hello",
            &referer("https://yy.com:8443/"),
            ""
        )
        .await
        .status,
        200
    );
    let no = send(&gw, Method::GET, "/hello", &referer("http://xx.com"), "").await;
    assert_eq!(no.status, 403);
    assert_eq!(
        no.text(),
        "{\"message\":\"Your referer host is not allowed\"}\n"
    );
    assert_eq!(gw.get("/hello").await.status, 403);
    assert_eq!(
        send(&gw, Method::GET, "/hello", &referer("not a uri"), "")
            .await
            .status,
        403
    );

    let traffic = Traffic::start(
        &gw,
        |url| {
            request(
                Method::GET,
                &format!("{url}/hello"),
                &[("Referer", "http://www.xx.com")],
                "",
            )
        },
        status_and_body,
    );
    edit_under_traffic(traffic, "200", "403 {\"message\":\"Your referer host is deny\"}", || {
        gw.put(vec![(
            "ws/default/plugin_configs/ref",
            json!({"plugins": {"referer-restriction": {"blacklist": ["*.xx.com"], "bypass_missing": true,
                "message": "Your referer host is deny"}}}),
        )]);
    })
    .await;
    assert_eq!(gw.get("/hello").await.status, 200);
    assert_eq!(
        send(&gw, Method::GET, "/hello", &referer("http://yy.com"), "")
            .await
            .status,
        200
    );
}

#[test]
fn uri_blocker_config_on_write() {
    accepted(
        "uri-blocker",
        json!({"block_rules": ["select.+(from|limit)", "(?:(union(.*?)select))"]}),
    );
    assert_eq!(
        refused("uri-blocker", json!({"block_rules": [".+("]})),
        "failed to check the configuration of plugin uri-blocker err: pcre_compile() failed: missing ) in \".+(\""
    );
    assert_eq!(
        refused("uri-blocker", json!({"block_rules": ["^a"], "rejected_msg": ""})),
        "failed to check the configuration of plugin uri-blocker err: property \"rejected_msg\" validation failed: string too short, expected at least 1, got 0"
    );
    assert_eq!(
        refused("uri-blocker", json!({"block_rules": ["^a"], "rejected_msg": true})),
        "failed to check the configuration of plugin uri-blocker err: property \"rejected_msg\" validation failed: wrong type: expected string, got boolean"
    );
    assert_eq!(
        refused("uri-blocker", json!({})),
        "failed to check the configuration of plugin uri-blocker err: property \"block_rules\" is required"
    );
    assert_eq!(
        refused("uri-blocker", json!({"block_rules": ["a", "a"]})),
        "failed to check the configuration of plugin uri-blocker err: property \"block_rules\" validation failed: expected unique items but items 1 and 2 are equal"
    );
    assert_eq!(
        portico_plugins::registry()
            .get("uri-blocker")
            .map(|s| s.priority),
        Some(2900)
    );
}

#[tokio::test]
async fn uri_blocker_on_requests() {
    let up = Upstream::start("echo", handlers::echo()).await;
    let gw = Harness::start(vec![
        (
            "ws/default/plugin_configs/ub",
            json!({"plugins": {"uri-blocker": {"block_rules": ["aa", "^/internal/"]}}}),
        ),
        ("ws/default/routes/1", route("/*", &up.node(), "ub")),
    ])
    .await;
    let blocked = gw.get("/hello?aa=1").await;
    common::assert_error_page(&blocked, 403, "Forbidden");
    assert_eq!(gw.get("/hello?bb=2").await.status, 200);
    // The normalised path is matched: a dot segment does not get around an anchored rule.
    assert_eq!(gw.get("/./internal/x?q=1").await.status, 403);
    assert_eq!(gw.get("/public/internal/").await.status, 200);

    let traffic = Traffic::start(
        &gw,
        |url| {
            request(
                Method::GET,
                &format!("{url}/hello?name=;select%20from%20sys"),
                &[],
                "",
            )
        },
        status_and_body,
    );
    edit_under_traffic(traffic, "200", "451 {\"error_msg\":\"access is not allowed\"}", || {
        gw.put(vec![(
            "ws/default/plugin_configs/ub",
            json!({"plugins": {"uri-blocker": {"block_rules": ["SELECT.+(FROM|LIMIT)"],
                "case_insensitive": true, "rejected_code": 451, "rejected_msg": "access is not allowed"}}}),
        )]);
    })
    .await;
    assert_eq!(gw.get("/hello?aa=1").await.status, 200);
}
