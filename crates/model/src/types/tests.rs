//! Typed parsing with runtime defaults.

use super::*;
use serde_json::json;

#[test]
fn route_defaults_and_accessors() {
    let r: Route = parse(&json!({"id": 1, "uri": "/hello", "upstream_id": "1", "methods": {}}))
        .expect("route");
    assert_eq!(r.id, Some(Id("1".into())));
    assert_eq!((r.priority, r.status), (0, 1));
    assert!(r.methods.is_empty());
    assert_eq!(r.paths(), ["/hello"]);
    assert!(r.host_list().is_empty() && r.is_enabled());
    let r: Route = parse(&json!({"uris": ["/a", "/b"], "hosts": ["a.com"], "plugin_config_id": "t", "priority": 2.0})).expect("route");
    assert_eq!(r.paths(), ["/a", "/b"]);
    assert_eq!(r.priority, 2);
    assert!(parse::<Route>(&json!({"uri": "/", "plugins": {}})).is_err());
}

#[test]
fn upstream_nodes_in_both_forms() {
    let u: Upstream =
        parse(&json!({"nodes": {"127.0.0.1:1980": 1, "example.com": 2, "[::1]:8080": 0}}))
            .expect("upstream");
    assert_eq!(u.nodes.len(), 3);
    assert_eq!(
        (u.nodes[0].host.as_str(), u.nodes[0].port, u.nodes[0].weight),
        ("127.0.0.1", 1980, 1)
    );
    assert_eq!(
        (u.nodes[1].host.as_str(), u.nodes[1].port),
        ("example.com", 80)
    );
    assert_eq!((u.nodes[2].host.as_str(), u.nodes[2].port), ("[::1]", 8080));
    assert_eq!(u.balancer, "roundrobin");
    assert_eq!(
        (u.hash_on, u.pass_host, u.scheme),
        (HashOn::Vars, PassHost::Pass, Scheme::Http)
    );
    assert_eq!(
        u.keepalive_pool,
        KeepalivePool {
            size: 320,
            idle_timeout: 60.0,
            requests: 1000
        }
    );

    let u: Upstream = parse(&json!({
        "scheme": "https",
        "nodes": [{"host": "a.com", "weight": 1, "priority": -1, "metadata": {"zone": "x"}}, {"host": "::1", "port": 81, "weight": 2}]
    }))
    .expect("upstream");
    assert_eq!((u.nodes[0].port, u.nodes[0].priority), (443, -1));
    assert_eq!(u.nodes[1].host, "[::1]");
    assert!(parse::<Upstream>(&json!({"nodes": {}, "foo": 1})).is_err());
}

#[test]
fn health_check_defaults() {
    let u: Upstream = parse(
        &json!({"nodes": {}, "checks": {"active": {"healthy": {"interval": 2}}, "passive": {}}}),
    )
    .expect("upstream");
    let checks = u.checks.expect("checks");
    assert_eq!(checks.active.healthy.interval, 2);
    assert_eq!(checks.active.healthy.http_statuses, [200, 302]);
    assert_eq!(
        checks.active.unhealthy.http_statuses,
        [429, 404, 500, 501, 502, 503, 504, 505]
    );
    assert_eq!(
        (checks.active.timeout, checks.active.http_path.as_str()),
        (1.0, "/")
    );
    let passive = checks.passive.expect("passive");
    assert_eq!(passive.healthy.http_statuses.len(), 19);
    assert_eq!(
        (passive.unhealthy.timeouts, passive.healthy.successes),
        (7, 5)
    );
}

#[test]
fn objects_with_plugins() {
    let c: Consumer =
        parse(&json!({"username": "jack", "plugins": {"key-auth": {"key": "k"}}, "labels": []}))
            .expect("consumer");
    assert!(c.plugins.contains_key("key-auth") && c.labels.is_empty());
    let t: PluginConfig = parse(&json!({"id": "1", "plugins": {}})).expect("template");
    assert_eq!(t.id.as_str(), "1");
    let g: GlobalRule = parse(&json!({"id": 3, "plugins": {"cors": {}}})).expect("global rule");
    assert_eq!(g.id.to_string(), "3");
    assert!(parse::<ConsumerGroup>(&json!({"id": "1"})).is_err());
    let cred: Credential =
        parse(&json!({"id": "c", "plugins": {"key-auth": {"key": "k"}}})).expect("credential");
    assert_eq!(cred.plugins.len(), 1);
}

#[test]
fn ssl_defaults() {
    let s: Ssl = parse(
        &json!({"cert": "c", "key": "k", "snis": ["a.com", "*.b.com"], "client": {"ca": "ca"}}),
    )
    .expect("ssl");
    assert_eq!(s.kind, SslType::Server);
    assert_eq!(s.sni_list(), ["a.com", "*.b.com"]);
    assert_eq!(s.client.map(|c| c.depth), Some(1));
    assert!(s.status == 1 && s.ssl_protocols.is_empty());
}
