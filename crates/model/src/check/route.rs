//! Route checks (`apisix/admin/routes.lua:check_conf`) with Portico's rules.
//!
//! Portico refuses, with a 400 that says what to do instead:
//! * `plugins` on a route: routes get plugins only through one plugin template
//!   (`plugin_config_id`);
//! * `service_id`: Portico has no services;
//! * `script`, `script_id`, `filter_func`: Portico runs no Lua code.

use super::{expr::validate_rule, truthy, upstream};
use crate::schema::validate_in_place;
use serde_json::Value;

/// The message for a route that carries `plugins`.
pub const ROUTE_PLUGINS_MESSAGE: &str = "routes do not carry plugins in Portico: put the plugins in a plugin template (/apisix/admin/plugin_configs) and set \"plugin_config_id\" on the route";

const UNSUPPORTED: [(&str, &str); 4] = [
    (
        "service_id",
        "\"service_id\" is not supported: Portico has no services; set \"upstream\" or \"upstream_id\" on the route and share plugins through a plugin template (\"plugin_config_id\")",
    ),
    (
        "script",
        "\"script\" is not supported: Portico does not run Lua code; put plugins in a plugin template (\"plugin_config_id\") instead",
    ),
    (
        "script_id",
        "\"script_id\" is not supported: Portico does not run Lua code; put plugins in a plugin template (\"plugin_config_id\") instead",
    ),
    (
        "filter_func",
        "\"filter_func\" is not supported: Portico does not run Lua code; match on request variables with \"vars\" instead",
    ),
];

/// Validates a route in place.
pub(crate) fn check(conf: &mut Value) -> Result<(), String> {
    if truthy(conf.get("host")).is_some() && truthy(conf.get("hosts")).is_some() {
        return Err("only one of host or hosts is allowed".to_string());
    }
    if truthy(conf.get("remote_addr")).is_some() && truthy(conf.get("remote_addrs")).is_some() {
        return Err("only one of remote_addr or remote_addrs is allowed".to_string());
    }
    if conf.get("plugins").is_some() {
        return Err(ROUTE_PLUGINS_MESSAGE.to_string());
    }
    for (field, message) in UNSUPPORTED {
        if conf.get(field).is_some() {
            return Err(message.to_string());
        }
    }
    validate_in_place(crate::Kind::Route.schema(), conf)
        .map_err(|e| format!("invalid configuration: {e}"))?;
    if let Some(up) = conf.get_mut("upstream") {
        upstream::check(up)?;
    }
    if let Some(vars) = truthy(conf.get("vars")) {
        validate_rule(vars)
            .map_err(|e| format!("failed to validate the 'vars' expression: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        check(&mut v.clone()).expect_err("should fail")
    }

    fn ok(v: Value) {
        assert_eq!(check(&mut v.clone()), Ok(()), "{v}");
    }

    #[test]
    fn valid_routes() {
        ok(json!({"id": "1", "uri": "/hello", "upstream_id": "1"}));
        ok(json!({"id": 1, "uris": ["/a", "/b"], "upstream": {"nodes": {"127.0.0.1:80": 1}}}));
        ok(json!({"id": "1", "uri": "/x", "plugin_config_id": "t1"}));
        ok(
            json!({"id": "1", "uri": "/x", "upstream_id": 1, "methods": ["GET", "POST"], "hosts": ["*.a.com"],
                  "remote_addrs": ["10.0.0.0/8", "::1"], "vars": [["arg_name", "==", "json"]], "priority": 3,
                  "timeout": {"connect": 0.5, "send": 1, "read": 2}, "labels": {"env": "prod"}, "status": 0}),
        );
    }

    #[test]
    fn schema_messages() {
        assert_eq!(
            err(json!({"id": "1", "uri": 1, "upstream_id": "1"})),
            "invalid configuration: property \"uri\" validation failed: wrong type: expected string, got number"
        );
        assert_eq!(
            err(json!({"id": "a b", "uri": "/x", "upstream_id": "1"})),
            "invalid configuration: property \"id\" validation failed: object matches none of the required"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "methods": ["get"]})),
            "invalid configuration: property \"methods\" validation failed: failed to validate item 1: matches none of the enum values"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "uris": ["/y"], "upstream_id": "1"})),
            "invalid configuration: allOf 1 failed: value should match only one schema, but matches both schemas 1 and 2"
        );
        assert_eq!(
            err(json!({"id": "1", "upstream_id": "1"})),
            "invalid configuration: allOf 1 failed: value should match only one schema, but matches none"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "timeout": {"connect": 1, "send": 1}})),
            "invalid configuration: property \"timeout\" validation failed: property \"read\" is required"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "timeout": {"connect": 0, "send": 1, "read": 1}})),
            "invalid configuration: property \"timeout\" validation failed: property \"connect\" validation failed: expected 0 to be greater than 0"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "labels": {"env": "a b"}})),
            "invalid configuration: property \"labels\" validation failed: failed to validate env (matching \".*\"): failed to match pattern \"^\\\\S+$\" with \"a b\""
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "labels": "x"})),
            "invalid configuration: property \"labels\" validation failed: wrong type: expected object, got string"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "remote_addr": "300.1.1.1"})),
            "invalid configuration: property \"remote_addr\" validation failed: object matches none of the required"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "status": 2})),
            "invalid configuration: property \"status\" validation failed: matches none of the enum values"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "foo": 1})),
            "invalid configuration: additional properties forbidden, found foo"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x"})),
            "invalid configuration: object matches none of the required: [\"upstream\",\"uri\"] or [\"upstream_id\",\"uri\"] or [\"plugin_config_id\",\"uri\"] or [\"upstream\",\"uris\"] or [\"upstream_id\",\"uris\"] or [\"plugin_config_id\",\"uris\"]"
        );
    }

    #[test]
    fn more_apisix_vectors() {
        let base = |extra: Value| {
            let mut v = json!({"id": "1", "upstream_id": "1"});
            if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
                o.extend(e);
            }
            err(v)
        };
        assert_eq!(
            base(json!({"uri": "/x", "name": "n".repeat(257)})),
            "invalid configuration: property \"name\" validation failed: string too long, expected at most 256, got 257"
        );
        assert_eq!(
            base(json!({"uri": ""})),
            "invalid configuration: property \"uri\" validation failed: string too short, expected at least 1, got 0"
        );
        assert_eq!(
            base(json!({"uris": ["/a", "/a"]})),
            "invalid configuration: property \"uris\" validation failed: expected unique items but items 1 and 2 are equal"
        );
        assert_eq!(
            base(json!({"uris": "/a"})),
            "invalid configuration: property \"uris\" validation failed: wrong type: expected array, got string"
        );
        assert_eq!(
            base(json!({"uri": "/x", "hosts": ["a b"]})),
            "invalid configuration: property \"hosts\" validation failed: failed to validate item 1: failed to match pattern \"^\\\\*$|^\\\\*?[0-9a-zA-Z-._\\\\[\\\\]:]+$\" with \"a b\""
        );
        assert_eq!(
            base(json!({"uri": "/x", "upstream_id": 0})),
            "invalid configuration: property \"upstream_id\" validation failed: object matches none of the required"
        );
        assert_eq!(
            base(json!({"uri": "/x", "plugin_config_id": "a/b"})),
            "invalid configuration: property \"plugin_config_id\" validation failed: object matches none of the required"
        );
    }

    #[test]
    fn pre_checks_and_portico_rules() {
        assert_eq!(
            err(
                json!({"id": "1", "uri": "/x", "upstream_id": "1", "host": "a.com", "hosts": ["b.com"]})
            ),
            "only one of host or hosts is allowed"
        );
        assert_eq!(
            err(
                json!({"id": "1", "uri": "/x", "upstream_id": "1", "remote_addr": "1.1.1.1", "remote_addrs": ["1.1.1.1"]})
            ),
            "only one of remote_addr or remote_addrs is allowed"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "plugins": {}})),
            ROUTE_PLUGINS_MESSAGE
        );
        assert!(err(json!({"id": "1", "uri": "/x", "service_id": "1"}))
            .contains("Portico has no services"));
        assert!(
            err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "script": "return {}   "}))
                .contains("Lua")
        );
        assert!(err(json!({"id": "1", "uri": "/x", "upstream_id": "1", "filter_func": "function(vars) return true end"}))
            .contains("\"vars\""));
    }

    #[test]
    fn inline_upstream_and_vars() {
        assert_eq!(
            err(
                json!({"id": "1", "uri": "/x", "upstream": {"nodes": [{"host": "::1", "port": 80, "weight": 1}]}})
            ),
            "invalid configuration: IPv6 address must be enclosed with '[' and ']'"
        );
        assert_eq!(
            err(json!({"id": "1", "uri": "/x", "upstream": {"nodes": {"a:1": 1}, "checks": {"passive": {}}}})),
            "invalid configuration: property \"upstream\" validation failed: property \"checks\" validation failed: object matches none of the required: [\"active\"] or [\"active\",\"passive\"]"
        );
        assert_eq!(
            err(
                json!({"id": "1", "uri": "/x", "upstream_id": "1", "vars": [["arg_name", "=", "json"]]})
            ),
            "failed to validate the 'vars' expression: invalid operator '='"
        );
    }
}
