//! Resource schemas of `apisix/schema_def.lua`: route (Portico's cut), consumer, credential,
//! consumer group, plugin config, global rule, ssl, and the `plugins` list schema.

use super::defs::{
    certificate_schema, desc_def, host_def, id_schema, labels_def, method_schema,
    private_key_schema, remote_addr_def, rule_name_def, timeout_def, timestamp_def, HOST_DEF_PAT,
};
use super::upstream::upstream;
use serde_json::{json, Value};

fn plugins_schema() -> Value {
    json!({"type": "object"})
}

/// The route schema as Portico accepts it.
///
/// APISIX's `_M.route` minus what Portico does not have: `plugins` (routes get plugins only
/// through a plugin template), `service_id` (no services), `script`, `script_id` and
/// `filter_func` (no Lua). The `anyOf` that asks for something to run accordingly becomes
/// `upstream` | `upstream_id` | `plugin_config_id`, each with `uri` or `uris`.
pub fn route() -> Value {
    let mut any_of = Vec::new();
    for uri in ["uri", "uris"] {
        for target in ["upstream", "upstream_id", "plugin_config_id"] {
            any_of.push(json!({"required": [target, uri]}));
        }
    }
    json!({
        "type": "object",
        "properties": {
            "id": id_schema(),
            "name": rule_name_def(),
            "desc": desc_def(),
            "labels": labels_def(),
            "create_time": timestamp_def(),
            "update_time": timestamp_def(),
            "uri": {"type": "string", "minLength": 1, "maxLength": 4096},
            "uris": {
                "type": "array",
                "items": {"description": "HTTP uri", "type": "string"},
                "minItems": 1,
                "uniqueItems": true
            },
            "priority": {"type": "integer", "default": 0},
            "methods": {"type": "array", "items": method_schema(), "uniqueItems": true},
            "host": host_def(),
            "hosts": {"type": "array", "items": host_def(), "minItems": 1, "uniqueItems": true},
            "remote_addr": remote_addr_def(),
            "remote_addrs": {
                "type": "array",
                "items": remote_addr_def(),
                "minItems": 1,
                "uniqueItems": true
            },
            "timeout": timeout_def(),
            "vars": {"type": "array"},
            "plugin_config_id": id_schema(),
            "upstream": upstream(),
            "upstream_id": id_schema(),
            "enable_websocket": {"description": "enable websocket for request", "type": "boolean"},
            "status": {
                "description": "route status, 1 to enable, 0 to disable",
                "type": "integer",
                "enum": [1, 0],
                "default": 1
            }
        },
        "allOf": [
            {"oneOf": [{"required": ["uri"]}, {"required": ["uris"]}]},
            {"oneOf": [
                {"not": {"anyOf": [{"required": ["host"]}, {"required": ["hosts"]}]}},
                {"required": ["host"]},
                {"required": ["hosts"]}
            ]},
            {"oneOf": [
                {"not": {"anyOf": [{"required": ["remote_addr"]}, {"required": ["remote_addrs"]}]}},
                {"required": ["remote_addr"]},
                {"required": ["remote_addrs"]}
            ]}
        ],
        "anyOf": any_of,
        "additionalProperties": false
    })
}

/// `_M.consumer`: `username` is the key.
pub fn consumer() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": id_schema(),
            "username": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[a-zA-Z0-9_\\-]+$"},
            "desc": desc_def(),
            "labels": labels_def(),
            "create_time": timestamp_def(),
            "update_time": timestamp_def(),
            "group_id": id_schema(),
            "plugins": plugins_schema()
        },
        "required": ["username"],
        "additionalProperties": false
    })
}

/// `_M.credential`: at most one (auth) plugin.
pub fn credential() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"oneOf": [
                id_schema(),
                {
                    "type": "string",
                    "minLength": 15,
                    "maxLength": 128,
                    "pattern": "^[a-zA-Z0-9-_]+/credentials/[a-zA-Z0-9-_.]+$"
                }
            ]},
            "name": rule_name_def(),
            "desc": desc_def(),
            "labels": labels_def(),
            "create_time": timestamp_def(),
            "update_time": timestamp_def(),
            "plugins": {"type": "object", "maxProperties": 1}
        },
        "additionalProperties": false
    })
}

/// `_M.consumer_group`: `id` and `plugins` required.
pub fn consumer_group() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": id_schema(),
            "name": rule_name_def(),
            "desc": desc_def(),
            "labels": labels_def(),
            "create_time": timestamp_def(),
            "update_time": timestamp_def(),
            "plugins": plugins_schema()
        },
        "required": ["id", "plugins"],
        "additionalProperties": false
    })
}

/// `_M.plugin_config` (a plugin template): `id` and `plugins` required; `name` is any string.
pub fn plugin_config() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": id_schema(),
            "name": {"type": "string"},
            "desc": desc_def(),
            "labels": labels_def(),
            "create_time": timestamp_def(),
            "update_time": timestamp_def(),
            "plugins": plugins_schema()
        },
        "required": ["id", "plugins"],
        "additionalProperties": false
    })
}

/// `_M.global_rule`: no name, desc or labels.
pub fn global_rule() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": id_schema(),
            "create_time": timestamp_def(),
            "update_time": timestamp_def(),
            "plugins": plugins_schema()
        },
        "required": ["id", "plugins"],
        "additionalProperties": false
    })
}

/// `_M.ssl`: server certificates need `sni` or `snis` with `cert` and `key`.
pub fn ssl() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": id_schema(),
            "desc": desc_def(),
            "labels": labels_def(),
            "create_time": timestamp_def(),
            "update_time": timestamp_def(),
            "type": {
                "description": "ssl certificate type, server to server certificate, client to client certificate for upstream",
                "type": "string",
                "default": "server",
                "enum": ["server", "client"]
            },
            "cert": certificate_schema(),
            "key": private_key_schema(),
            "sni": {"type": "string", "pattern": HOST_DEF_PAT},
            "snis": {
                "type": "array",
                "items": {"type": "string", "pattern": HOST_DEF_PAT},
                "minItems": 1
            },
            "certs": {"type": "array", "items": certificate_schema()},
            "keys": {"type": "array", "items": private_key_schema()},
            "client": {
                "type": "object",
                "properties": {
                    "ca": certificate_schema(),
                    "depth": {"type": "integer", "minimum": 0, "default": 1},
                    "skip_mtls_uri_regex": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": true,
                        "items": {"description": "uri regular expression to skip mtls", "type": "string"}
                    }
                },
                "required": ["ca"]
            },
            "status": {
                "description": "ssl status, 1 to enable, 0 to disable",
                "type": "integer",
                "enum": [1, 0],
                "default": 1
            },
            "ssl_protocols": {
                "description": "set ssl protocols",
                "type": "array",
                "maxItems": 3,
                "uniqueItems": true,
                "items": {"enum": ["TLSv1.1", "TLSv1.2", "TLSv1.3"]}
            }
        },
        "if": {"properties": {"type": {"enum": ["server"]}}},
        "then": {"oneOf": [
            {"required": ["sni", "key", "cert"]},
            {"required": ["snis", "key", "cert"]}
        ]},
        "else": {"required": ["key", "cert"]},
        "additionalProperties": false
    })
}

/// `_M.plugins`: the body of `PUT /apisix/admin/plugins/reload`-style plugin lists.
pub fn plugins_list() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "stream": {"type": "boolean"},
                "additionalProperties": false
            },
            "required": ["name"]
        }
    })
}

/// Plugin metadata has no core schema in APISIX; the resource itself is any object (the
/// plugin's `metadata_schema` applies).
pub fn plugin_metadata() -> Value {
    json!({"type": "object"})
}
