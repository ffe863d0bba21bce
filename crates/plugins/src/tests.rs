//! The plugin table through the model's checks, with APISIX's messages.

use super::*;
use portico_model::{
    auth_keys, check, decrypt_secrets, encrypt_secrets, Keyring, Kind, SchemaType,
};
use serde_json::{json, Value};

fn template(plugins: Value) -> Result<(), String> {
    check(
        Kind::PluginConfig,
        &json!({"id": "1", "plugins": plugins}),
        &registry(),
    )
}

fn plugin_err(name: &str, conf: Value) -> String {
    template(json!({ name: conf })).expect_err("should fail")
}

fn plugin_ok(name: &str, conf: Value) {
    assert_eq!(
        template(json!({ name: conf.clone() })),
        Ok(()),
        "{name}: {conf}"
    );
}

#[test]
fn table_is_complete_and_sorted() {
    // The 30 plugins of the catalogue, with APISIX's priorities, in run order.
    let catalogue = [
        ("real-ip", 23000),
        ("request-id", 12015),
        ("fault-injection", 11000),
        ("mocking", 10900),
        ("cors", 4000),
        ("ip-restriction", 3000),
        ("ua-restriction", 2999),
        ("referer-restriction", 2990),
        ("csrf", 2980),
        ("uri-blocker", 2900),
        ("request-validation", 2800),
        ("hmac-auth", 2530),
        ("basic-auth", 2520),
        ("jwt-auth", 2510),
        ("key-auth", 2500),
        ("consumer-restriction", 2400),
        ("proxy-mirror", 1010),
        ("proxy-rewrite", 1008),
        ("api-breaker", 1005),
        ("limit-conn", 1003),
        ("limit-count", 1002),
        ("limit-req", 1001),
        ("gzip", 995),
        ("traffic-split", 966),
        ("redirect", 900),
        ("response-rewrite", 899),
        ("prometheus", 500),
        ("http-logger", 410),
        ("tcp-logger", 405),
        ("file-logger", 399),
    ];
    let r = registry();
    assert_eq!(r.len(), specs().len());
    assert_eq!(r.len(), catalogue.len());
    assert_eq!(
        r.names_by_priority(),
        catalogue.iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );
    for (name, priority) in catalogue {
        let spec = r.get(name).expect(name);
        assert_eq!(spec.priority, priority, "{name}");
        assert!(builder(name).is_some(), "{name} has a runtime");
        let auth = ["hmac-auth", "basic-auth", "jwt-auth", "key-auth"].contains(&name);
        assert_eq!(spec.auth, auth, "{name}");
    }
}

#[test]
fn served_schemas() {
    let r = registry();
    let s = r.injected_schema("key-auth").expect("schema");
    assert_eq!(
        s["$comment"],
        "this is a mark for our injected plugin schema"
    );
    assert_eq!(s["properties"]["header"]["default"], "apikey");
    assert!(s["properties"]["_meta"]["properties"]["filter"].is_object());
    assert_eq!(
        r.consumer_schema("key-auth")
            .map(|c| c["encrypt_fields"].clone()),
        Some(json!(["key"]))
    );
    assert_eq!(
        r.injected_schema("limit-count")
            .map(|c| c["encrypt_fields"].clone()),
        Some(json!(["redis_password", "sentinel_password"]))
    );
    assert!(r.consumer_schema("limit-count").is_none());
    assert!(r.metadata_schema("limit-count").is_some());
}

#[test]
fn unknown_plugin() {
    assert_eq!(plugin_err("foo", json!({})), "unknown plugin [foo]");
}

#[test]
fn key_auth() {
    plugin_ok("key-auth", json!({}));
    plugin_ok(
        "key-auth",
        json!({"header": "X-Key", "hide_credentials": true, "realm": "my realm"}),
    );
    assert_eq!(
        plugin_err("key-auth", json!({"header": 1})),
        "failed to check the configuration of plugin key-auth err: property \"header\" validation failed: wrong type: expected string, got number"
    );
    assert_eq!(
        plugin_err("key-auth", json!({"realm": "a\"b"})),
        "failed to check the configuration of plugin key-auth err: property \"realm\" validation failed: failed to match pattern \"^[ -!#-[\\\\]-~]+$\" with \"a\\\"b\""
    );
    let consumer = |plugins: Value| {
        check(
            Kind::Consumer,
            &json!({"username": "jack", "plugins": plugins}),
            &registry(),
        )
    };
    assert_eq!(consumer(json!({"key-auth": {"key": "auth-one"}})), Ok(()));
    assert_eq!(
        consumer(json!({"key-auth": {}})).expect_err("missing key"),
        "invalid plugins configuration: failed to check the configuration of plugin key-auth err: property \"key\" is required"
    );
}

#[test]
fn basic_auth() {
    plugin_ok("basic-auth", json!({"hide_credentials": true}));
    let consumer = |plugins: Value| {
        check(
            Kind::Consumer,
            &json!({"username": "jack", "plugins": plugins}),
            &registry(),
        )
    };
    assert_eq!(
        consumer(json!({"basic-auth": {"username": "jack", "password": "p"}})),
        Ok(())
    );
    assert_eq!(
        consumer(json!({"basic-auth": {"username": "jack"}})).expect_err("missing password"),
        "invalid plugins configuration: failed to check the configuration of plugin basic-auth err: property \"password\" is required"
    );
}

#[test]
fn credentials() {
    let cred = |plugins: Value| {
        check(
            Kind::Credential,
            &json!({"id": "c1", "plugins": plugins}),
            &registry(),
        )
    };
    assert_eq!(
        cred(json!({"basic-auth": {"username": "a", "password": "b"}})),
        Ok(())
    );
    assert_eq!(
        cred(json!({"limit-count": {"count": 1, "time_window": 60}})).expect_err("not auth"),
        "only supports auth type plugins in consumer credential"
    );
}

#[test]
fn limit_count() {
    plugin_ok("limit-count", json!({"count": 2, "time_window": 60}));
    plugin_ok(
        "limit-count",
        json!({"count": "$http_count", "time_window": 60, "rejected_code": 429}),
    );
    plugin_ok(
        "limit-count",
        json!({"rules": [{"count": 1, "time_window": 1, "key": "a"}, {"count": 2, "time_window": 2, "key": "b"}]}),
    );
    let err = |conf: Value| plugin_err("limit-count", conf);
    assert_eq!(
        err(json!({"count": 2, "time_window": 60, "window_type": "sliding"})),
        "failed to check the configuration of plugin limit-count err: window_type sliding is not supported yet"
    );
    assert_eq!(
        err(json!({})),
        "failed to check the configuration of plugin limit-count err: value should match only one schema, but matches none"
    );
    assert_eq!(
        err(json!({"count": 1, "time_window": 1, "rules": [{"count": 1, "time_window": 1, "key": "a"}]})),
        "failed to check the configuration of plugin limit-count err: count/time_window and rules cannot be specified at the same time"
    );
    assert_eq!(
        err(json!({"count": 0, "time_window": 60})),
        "failed to check the configuration of plugin limit-count err: property \"count\" validation failed: value should match only one schema, but matches none"
    );
    assert_eq!(
        err(json!({"count": 1, "time_window": 60, "rejected_code": 600})),
        "failed to check the configuration of plugin limit-count err: property \"rejected_code\" validation failed: expected 600 to be at most 599"
    );
    assert_eq!(
        err(json!({"count": 1, "time_window": 60, "policy": "redis"})),
        "failed to check the configuration of plugin limit-count err: then clause did not match"
    );
    assert_eq!(
        err(
            json!({"count": 1, "time_window": 60, "policy": "redis-cluster", "redis_cluster_nodes": ["a:1"]})
        ),
        "failed to check the configuration of plugin limit-count err: else clause did not match"
    );
    assert_eq!(
        err(
            json!({"rules": [{"count": 1, "time_window": 1, "key": "a"}, {"count": 2, "time_window": 2, "key": "a"}]})
        ),
        "failed to check the configuration of plugin limit-count err: duplicate key 'a' in rules"
    );
    assert_eq!(
        err(json!({"group": "g", "rules": [{"count": 1, "time_window": 1, "key": "a"}]})),
        "failed to check the configuration of plugin limit-count err: group and rules cannot be specified at the same time"
    );
    assert_eq!(
        err(json!({"count": 1, "time_window": 10, "policy": "redis", "redis_host": "ab", "sync_interval": 10})),
        "failed to check the configuration of plugin limit-count err: sync_interval should be smaller than time_window"
    );
    let meta = |conf: Value| check(Kind::PluginMetadata, &conf, &registry());
    assert_eq!(
        meta(json!({"id": "limit-count", "limit_header": "X-Limit"})),
        Ok(())
    );
    assert_eq!(
        meta(json!({"id": "limit-count", "reset_header": 1})).expect_err("bad metadata"),
        "invalid configuration: property \"reset_header\" validation failed: wrong type: expected string, got number"
    );
}

#[test]
fn proxy_rewrite() {
    plugin_ok("proxy-rewrite", json!({}));
    plugin_ok(
        "proxy-rewrite",
        json!({"uri": "/x", "host": "example.com:8080", "headers": {"set": {"X-A": "1"}, "remove": ["X-B"]}}),
    );
    plugin_ok(
        "proxy-rewrite",
        json!({"regex_uri": ["^/a/(.*)", "/b/$1"], "headers": {"X-Legacy": 1}}),
    );
    let err = |conf: Value| plugin_err("proxy-rewrite", conf);
    assert_eq!(
        err(json!({"uri": "home"})),
        "failed to check the configuration of plugin proxy-rewrite err: property \"uri\" validation failed: failed to match pattern \"^\\\\/.*\" with \"home\""
    );
    assert_eq!(
        err(json!({"method": "get"})),
        "failed to check the configuration of plugin proxy-rewrite err: property \"method\" validation failed: matches none of the enum values"
    );
    assert_eq!(
        err(json!({"regex_uri": ["^/a", "/b", "^/c"]})),
        "failed to check the configuration of plugin proxy-rewrite err: The length of regex_uri should be an even number"
    );
    assert!(err(json!({"regex_uri": ["(", "/b"]})).starts_with(
        "failed to check the configuration of plugin proxy-rewrite err: invalid regex_uri((, /b): "
    ));
    assert_eq!(
        err(json!({"headers": {"X-A": "a\u{1}b"}})),
        "failed to check the configuration of plugin proxy-rewrite err: invalid value character in header"
    );
    assert_eq!(
        err(json!({"headers": {}})),
        "failed to check the configuration of plugin proxy-rewrite err: property \"headers\" validation failed: value should match only one schema, but matches none"
    );
}

#[test]
fn ip_restriction() {
    plugin_ok(
        "ip-restriction",
        json!({"whitelist": ["127.0.0.1", "10.0.0.0/8", "::1", "fe80::/10"]}),
    );
    plugin_ok(
        "ip-restriction",
        json!({"blacklist": ["1.2.3.4"], "message": "no", "response_code": 404}),
    );
    let err = |conf: Value| plugin_err("ip-restriction", conf);
    assert_eq!(
        err(json!({"whitelist": ["1.1.1.1"], "blacklist": ["2.2.2.2"]})),
        "failed to check the configuration of plugin ip-restriction err: value should match only one schema, but matches both schemas 1 and 2"
    );
    assert_eq!(
        err(json!({"whitelist": ["1.1.1.1/33"]})),
        "failed to check the configuration of plugin ip-restriction err: property \"whitelist\" validation failed: failed to validate item 1: object matches none of the required"
    );
    assert_eq!(
        err(json!({"whitelist": ["::1/129"]})),
        "failed to check the configuration of plugin ip-restriction err: invalid ip address: ::1/129"
    );
    assert_eq!(
        err(json!({"whitelist": ["1.1.1.1"], "response_code": 500})),
        "failed to check the configuration of plugin ip-restriction err: property \"response_code\" validation failed: expected 500 to be at most 404"
    );
    assert!(ip_restriction::is_ip_or_cidr("192.168.0.0/16"));
    assert!(!ip_restriction::is_ip_or_cidr(":/8"));
}

#[test]
fn secrets_follow_encrypt_fields() {
    let (r, ring) = (
        registry(),
        Keyring::new(vec!["edd1c9f0985e76a2".into()]).expect("keyring"),
    );
    let mut consumer = json!({"username": "jack", "plugins": {
        "key-auth": {"key": "auth-one"},
        "basic-auth": {"username": "jack", "password": "secret"}
    }});
    encrypt_secrets(Kind::Consumer, &mut consumer, &r, &ring).expect("encrypt");
    assert_ne!(consumer["plugins"]["key-auth"]["key"], "auth-one");
    assert_ne!(consumer["plugins"]["basic-auth"]["password"], "secret");
    assert_eq!(consumer["plugins"]["basic-auth"]["username"], "jack");
    decrypt_secrets(Kind::Consumer, &mut consumer, &r, &ring, true);
    assert_eq!(consumer["plugins"]["key-auth"]["key"], "auth-one");

    let mut tpl = json!({"id": "1", "plugins": {"limit-count": {"count": 1, "time_window": 1, "policy": "redis", "redis_host": "r", "redis_password": "pw"}}});
    encrypt_secrets(Kind::PluginConfig, &mut tpl, &r, &ring).expect("encrypt");
    assert_ne!(tpl["plugins"]["limit-count"]["redis_password"], "pw");
    assert_eq!(
        r.encrypt_fields("key-auth", SchemaType::Route),
        [] as [&str; 0]
    );
}

#[test]
fn unique_auth_keys() {
    let keys = auth_keys(
        &json!({"plugins": {"basic-auth": {"username": "jack", "password": "p"}}}),
        &registry(),
    );
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].plugin, keys[0].field, keys[0].value.as_str()),
        ("basic-auth", "username", "jack")
    );
}

#[test]
fn every_plugin_has_a_runtime() {
    let r = registry();
    for def in TABLE {
        assert_eq!((def.spec)().name, def.name);
        assert!(r.contains(def.name), "{} registered", def.name);
        assert!(builder(def.name).is_some());
    }
    assert!(builder("nope").is_none());
}

#[test]
fn runtime_types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<RoutePlugins>();
    send_sync::<Chain>();
    send_sync::<Ctx>();
    send_sync::<PluginState>();
    // The gateway awaits the access phase inside a spawned (Send) task.
    let plugins = RoutePlugins::none("r");
    let mut ctx = testing::ctx_for(testing::get("/"));
    let phase = plugins.access_phase(&mut ctx);
    send(&phase);
    assert_eq!(testing::block_on(phase), Flow::Continue);
}
