//! `check` across kinds, with a small registry; the real plugins are tested in `portico-plugins`.

use super::*;
use crate::plugin::PluginSpec;
use serde_json::json;

fn not_negative(conf: &Value) -> Result<(), String> {
    match conf.get("count").and_then(Value::as_i64) {
        Some(n) if n > 100 => Err("count too large".to_string()),
        _ => Ok(()),
    }
}

fn registry() -> Registry {
    Registry::new(vec![
        PluginSpec {
            auth: true,
            consumer_schema: Some(
                json!({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}),
            ),
            consumer_encrypt_fields: &["key"],
            consumer_key_field: Some("key"),
            ..PluginSpec::new(
                "key-auth",
                2500,
                json!({"type": "object", "properties": {"header": {"type": "string", "default": "apikey"}}}),
            )
        },
        PluginSpec {
            check: Some(not_negative),
            metadata_schema: Some(
                json!({"type": "object", "properties": {"limit_header": {"type": "string"}}}),
            ),
            ..PluginSpec::new(
                "limit-count",
                1002,
                json!({"type": "object", "properties": {"count": {"type": "integer", "exclusiveMinimum": 0}}, "required": ["count"]}),
            )
        },
        PluginSpec::new("cors", 4000, json!({"type": "object"})),
    ])
}

fn err(kind: Kind, conf: Value) -> String {
    check(kind, &conf, &registry()).expect_err("should fail")
}

fn ok(kind: Kind, conf: Value) {
    assert_eq!(check(kind, &conf, &registry()), Ok(()), "{conf}");
}

#[test]
fn check_does_not_change_the_object() {
    let conf = json!({"id": "1", "uri": "/x", "upstream": {"nodes": {"a:1": 1}}});
    let before = conf.clone();
    assert!(check(Kind::Route, &conf, &registry()).is_ok());
    assert_eq!(conf, before);
}

#[test]
fn plugin_templates_and_groups() {
    ok(
        Kind::PluginConfig,
        json!({"id": "1", "plugins": {"limit-count": {"count": 1}, "cors": {}}}),
    );
    ok(Kind::ConsumerGroup, json!({"id": "g", "plugins": {}}));
    assert_eq!(
        err(Kind::PluginConfig, json!({"id": "1"})),
        "invalid configuration: property \"plugins\" is required"
    );
    assert_eq!(
        err(Kind::GlobalRule, json!({"plugins": {}})),
        "invalid configuration: property \"id\" is required"
    );
    assert_eq!(
        err(
            Kind::GlobalRule,
            json!({"id": "1", "name": "x", "plugins": {}})
        ),
        "invalid configuration: additional properties forbidden, found name"
    );
    assert_eq!(
        err(
            Kind::PluginConfig,
            json!({"id": "1", "plugins": {"foo": {}}})
        ),
        "unknown plugin [foo]"
    );
    assert_eq!(
        err(
            Kind::PluginConfig,
            json!({"id": "1", "plugins": {"cors": 1}})
        ),
        "invalid plugin conf 1 for plugin [cors]"
    );
    assert_eq!(
        err(
            Kind::PluginConfig,
            json!({"id": "1", "plugins": {"cors": "x/y"}})
        ),
        "invalid plugin conf \"x\\/y\" for plugin [cors]"
    );
    assert_eq!(
        err(Kind::ConsumerGroup, json!({"id": "1", "plugins": {"limit-count": {}}})),
        "failed to check the configuration of plugin limit-count err: property \"count\" is required"
    );
    assert_eq!(
        err(
            Kind::ConsumerGroup,
            json!({"id": "1", "plugins": {"limit-count": {"count": 101}}})
        ),
        "failed to check the configuration of plugin limit-count err: count too large"
    );
}

#[test]
fn plugin_meta() {
    ok(
        Kind::PluginConfig,
        json!({"id": "1", "plugins": {"limit-count": {"_meta": {"disable": true}}}}),
    );
    ok(
        Kind::PluginConfig,
        json!({"id": "1", "plugins": {"cors": {"_meta": {"priority": 1, "error_response": {"a": 1}}}}}),
    );
    assert_eq!(
        err(Kind::PluginConfig, json!({"id": "1", "plugins": {"cors": {"_meta": {"priority": "x"}}}})),
        "failed to check the configuration of plugin cors err: property \"_meta\" validation failed: property \"priority\" validation failed: wrong type: expected integer, got string"
    );
    assert_eq!(
        err(Kind::PluginConfig, json!({"id": "1", "plugins": {"cors": {"_meta": {"foo": 1}}}})),
        "failed to check the configuration of plugin cors err: property \"_meta\" validation failed: additional properties forbidden, found foo"
    );
    assert_eq!(
        err(
            Kind::PluginConfig,
            json!({"id": "1", "plugins": {"cors": {"_meta": {"filter": [["arg_a", "=", "1"]]}}}})
        ),
        "failed to validate the 'vars' expression: invalid operator '='"
    );
    ok(
        Kind::PluginConfig,
        json!({"id": "1", "plugins": {"cors": {"_meta": {"filter": [["arg_a", "==", "1"]]}}}}),
    );
    assert!(err(
        Kind::PluginConfig,
        json!({"id": "1", "plugins": {"cors": {"_meta": {"pre_function": "x"}}}})
    )
    .contains("Portico does not run Lua"));
}

#[test]
fn consumers_use_the_consumer_schema() {
    ok(
        Kind::Consumer,
        json!({"username": "jack", "plugins": {"key-auth": {"key": "k"}, "limit-count": {"count": 2}}}),
    );
    assert_eq!(
        err(Kind::Consumer, json!({"plugins": {}})),
        "invalid configuration: property \"username\" is required"
    );
    assert_eq!(
        err(Kind::Consumer, json!({"username": "a b"})),
        "invalid configuration: property \"username\" validation failed: failed to match pattern \"^[a-zA-Z0-9_\\\\-]+$\" with \"a b\""
    );
    assert_eq!(
        err(Kind::Consumer, json!({"username": "jack", "plugins": {"key-auth": {}}})),
        "invalid plugins configuration: failed to check the configuration of plugin key-auth err: property \"key\" is required"
    );
    assert_eq!(
        err(
            Kind::Consumer,
            json!({"username": "jack", "plugins": {"nope": {}}})
        ),
        "invalid plugins configuration: unknown plugin [nope]"
    );
}

#[test]
fn credentials_take_one_auth_plugin() {
    ok(
        Kind::Credential,
        json!({"id": "cred-1", "plugins": {"key-auth": {"key": "k"}}}),
    );
    assert_eq!(
        err(Kind::Credential, json!({"id": "c", "plugins": {"key-auth": {"key": "k"}, "cors": {}}})),
        "invalid configuration: property \"plugins\" validation failed: expect object to have at most 1 properties"
    );
    assert_eq!(
        err(
            Kind::Credential,
            json!({"id": "c", "plugins": {"cors": {}}})
        ),
        "only supports auth type plugins in consumer credential"
    );
    assert_eq!(
        err(Kind::Credential, json!({"id": "c", "plugins": {"key-auth": {"key": 1}}})),
        "invalid plugins configuration: failed to check the configuration of plugin key-auth err: property \"key\" validation failed: wrong type: expected string, got number"
    );
}

#[test]
fn plugin_metadata() {
    ok(
        Kind::PluginMetadata,
        json!({"id": "limit-count", "limit_header": "X-Limit"}),
    );
    ok(Kind::PluginMetadata, json!({"id": "cors", "anything": [1]}));
    assert_eq!(
        err(Kind::PluginMetadata, json!({"limit_header": "x"})),
        "missing plugin name"
    );
    assert_eq!(
        err(Kind::PluginMetadata, json!({"id": "nope"})),
        "invalid plugin name"
    );
    assert_eq!(
        err(Kind::PluginMetadata, json!({"id": "limit-count", "limit_header": 1})),
        "invalid configuration: property \"limit_header\" validation failed: wrong type: expected string, got number"
    );
}

#[test]
fn upstream_tls_material_is_checked() {
    let (cert, key) = (pem::fixtures::cert(), pem::fixtures::key());
    ok(
        Kind::Upstream,
        json!({"id": "1", "nodes": {"a:1": 1}, "tls": {"client_cert": cert, "client_key": key}}),
    );
    assert_eq!(
        err(
            Kind::Upstream,
            json!({"id": "1", "nodes": {"a:1": 1}, "tls": {"client_cert": "c".repeat(128), "client_key": key}})
        ),
        "failed to parse cert: PEM_read_bio_X509_AUX() failed"
    );
}

#[test]
fn forbidden_properties() {
    let path = |v: Value| forbidden_property(&v);
    assert_eq!(
        path(json!({"uri": "/x", "create_time": 1})).as_deref(),
        Some("create_time")
    );
    assert_eq!(
        path(json!({"upstream": {"update_time": 1}})).as_deref(),
        Some("upstream.update_time")
    );
    assert_eq!(
        path(json!({"plugins": {"create_time": {}}})).as_deref(),
        Some("plugins.create_time")
    );
    assert_eq!(path(json!({"create_time": false})), None);
    assert_eq!(path(json!({"uri": "/x"})), None);
    assert_eq!(
        forbidden_property_message("create_time"),
        "the property is forbidden:  create_time"
    );
}

#[test]
fn references_in_apisix_order() {
    let route = json!({"upstream": {"tls": {"client_cert_id": 7}}, "upstream_id": "u1", "plugin_config_id": "t"});
    let refs = references(Kind::Route, &route);
    let expected = [
        (Kind::Ssl, "7"),
        (Kind::Upstream, "u1"),
        (Kind::PluginConfig, "t"),
    ];
    assert_eq!(refs, expected.map(|(k, id)| (k, id.to_string())));
    assert_eq!(
        reference_error(Kind::Upstream, "u1"),
        "failed to fetch upstream info by upstream id [u1], response code: 404"
    );
    assert_eq!(
        reference_error(Kind::PluginConfig, "t"),
        "failed to fetch plugin config info by plugin config id [t], response code: 404"
    );
    assert_eq!(
        reference_error(Kind::ConsumerGroup, "g"),
        "failed to fetch consumer group info by consumer group id [g], response code: 404"
    );

    let split = json!({"traffic-split": {"rules": [{"weighted_upstreams": [{"upstream_id": 2, "weight": 1}, {"weight": 1}]}]}});
    let consumer = json!({"username": "a", "group_id": "g", "plugins": split});
    let refs = references(Kind::Consumer, &consumer);
    assert_eq!(
        refs,
        [
            (Kind::ConsumerGroup, "g".to_string()),
            (Kind::Upstream, "2".to_string())
        ]
    );
    assert_eq!(
        plugin_references(&consumer),
        [(Kind::Upstream, "2".to_string())]
    );
    assert_eq!(
        references(Kind::GlobalRule, &json!({"id": "1", "plugins": split})).len(),
        1
    );
    assert!(
        references(Kind::Route, &json!({"uri": "/", "plugins": split}))
            .iter()
            .all(|(k, _)| *k != Kind::Upstream)
    );
    assert_eq!(
        wrong_ssl_type_error("1"),
        "failed to fetch ssl info by ssl id [1], wrong ssl type"
    );
}

#[test]
fn ids() {
    assert!(validate_id("route-1_a.b"));
    assert!(!validate_id(""));
    assert!(!validate_id("a/b"));
    assert!(!validate_id(&"a".repeat(65)));
}

#[test]
fn global_rule_conflicts() {
    let stored = [
        (
            "1",
            json!({"id": "1", "plugins": {"limit-count": {"count": 1}}}),
        ),
        ("2", json!({"id": "2", "plugins": {}})),
    ];
    let others = stored.iter().map(|(id, v)| (*id, v));
    let mine = json!({"id": "3", "plugins": {"cors": {}, "limit-count": {"count": 2}}});
    assert_eq!(
        global_rule_conflict("3", &mine, others.clone()).as_deref(),
        Some("plugin 'limit-count' already exists in global rule with id '1'")
    );
    assert_eq!(
        global_rule_conflict("1", &json!({"plugins": {"limit-count": {}}}), others),
        None
    );
}

#[test]
fn duplicate_auth_keys() {
    let keys = auth_keys(
        &json!({"plugins": {"key-auth": {"key": "auth-one"}, "cors": {}}}),
        &registry(),
    );
    assert_eq!(
        keys,
        [AuthKey {
            plugin: "key-auth",
            field: "key",
            value: "auth-one".into()
        }]
    );
    assert_eq!(
        duplicate_key_message(&keys[0], KeyOwner::Consumer("bob")),
        "duplicate key of plugin key-auth found with consumer: bob"
    );
    assert_eq!(
        duplicate_key_message(
            &keys[0],
            KeyOwner::Credential {
                id: "cred-alex-a",
                consumer: "alex"
            }
        ),
        "duplicate key of plugin key-auth found with credential: cred-alex-a of consumer: alex"
    );
}
