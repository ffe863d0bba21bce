//! Shared definitions of `apisix/schema_def.lua`, for resource schemas and plugin schemas.
//! Property order follows the Lua source: it decides which error is reported first.

use serde_json::{json, Value};

/// `id_schema`: a string `^[a-zA-Z0-9-_.]+$` of 1–64 characters, or an integer ≥ 1.
pub fn id_schema() -> Value {
    json!({"anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-zA-Z0-9-_.]+$"},
        {"type": "integer", "minimum": 1}
    ]})
}

/// `host_def_pat`: only a leading `*` wildcard; `*` alone; port and IPv6 characters allowed.
pub const HOST_DEF_PAT: &str = "^\\*$|^\\*?[0-9a-zA-Z-._\\[\\]:]+$";

/// `host_def`.
pub fn host_def() -> Value {
    json!({"type": "string", "pattern": HOST_DEF_PAT})
}

const IPV4_SEG: &str = "([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])";
const IPV6_DEF: &str = "([a-fA-F0-9]{0,4}:){1,8}(:[a-fA-F0-9]{0,4}){0,8}([a-fA-F0-9]{0,4})?";

/// `ip_def`: the four accepted forms of a client address (IPv4, IPv4/CIDR, IPv6, IPv6/CIDR), used
/// as `anyOf`.
pub fn ip_def() -> Value {
    let ipv4 = [IPV4_SEG; 4].join("\\.");
    json!([
        {"title": "IPv4", "type": "string", "format": "ipv4"},
        {"title": "IPv4/CIDR", "type": "string", "pattern": format!("^{ipv4}/([12]?[0-9]|3[0-2])$")},
        {"title": "IPv6", "type": "string", "format": "ipv6"},
        {"title": "IPv6/CIDR", "type": "string", "pattern": format!("^{IPV6_DEF}/[0-9]{{1,3}}$")}
    ])
}

/// `uri_def` (logger and secret URIs).
pub fn uri_def() -> Value {
    json!({"type": "string", "pattern": "^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?"})
}

/// `remote_addr_def`: one client address in any `ip_def` form.
pub fn remote_addr_def() -> Value {
    json!({"description": "client IP", "type": "string", "anyOf": ip_def()})
}

/// `label_value_def`.
pub fn label_value_def() -> Value {
    json!({"description": "value of label", "type": "string", "pattern": "^\\S+$", "maxLength": 256, "minLength": 1})
}

/// `labels_def`.
pub fn labels_def() -> Value {
    json!({
        "description": "key/value pairs to specify attributes",
        "type": "object",
        "patternProperties": {".*": label_value_def()}
    })
}

/// `rule_name_def`.
pub fn rule_name_def() -> Value {
    json!({"type": "string", "maxLength": 256, "minLength": 1})
}

/// `desc_def`.
pub fn desc_def() -> Value {
    json!({"type": "string", "maxLength": 256})
}

/// `timestamp_def` (`create_time`, `update_time`).
pub fn timestamp_def() -> Value {
    json!({"type": "integer"})
}

/// `timeout_def`: connect, send and read, all required, each a number > 0 (seconds).
pub fn timeout_def() -> Value {
    json!({
        "type": "object",
        "properties": {
            "connect": {"type": "number", "exclusiveMinimum": 0},
            "send": {"type": "number", "exclusiveMinimum": 0},
            "read": {"type": "number", "exclusiveMinimum": 0}
        },
        "required": ["connect", "send", "read"]
    })
}

/// The HTTP methods of `method_schema`.
pub const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE",
];

/// `method_schema`.
pub fn method_schema() -> Value {
    json!({"description": "HTTP method", "type": "string", "enum": METHODS})
}

/// `anonymous_consumer_schema` of auth plugins.
pub fn anonymous_consumer_schema() -> Value {
    json!({"type": "string", "minLength": 1})
}

/// `get_realm_schema(default)`: printable ASCII except `"` and `\`, 1–128 characters.
pub fn realm_schema(default: &str) -> Value {
    json!({
        "type": "string",
        "pattern": "^[ -!#-[\\]-~]+$",
        "default": default,
        "minLength": 1,
        "maxLength": 128
    })
}

/// `certificate_scheme`: a PEM certificate, 128–65536 characters.
pub fn certificate_schema() -> Value {
    json!({"type": "string", "minLength": 128, "maxLength": 65536})
}

/// `private_key_schema`: a PEM private key, 64–65536 characters.
pub fn private_key_schema() -> Value {
    json!({"type": "string", "minLength": 64, "maxLength": 65536})
}

/// The mark APISIX puts on every plugin schema it has injected `_meta` into.
pub const INJECTED_MARK: &str = "this is a mark for our injected plugin schema";

/// `plugin_injected_schema._meta`: what every plugin configuration may carry under `_meta`.
pub fn plugin_meta_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "disable": {"type": "boolean"},
            "error_response": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            "priority": {"description": "priority of plugins by customized order", "type": "integer"},
            "filter": {
                "description": "filter determines whether the plugin needs to be executed at runtime",
                "type": "array"
            },
            "pre_function": {
                "description": "function to be executed in each phase before execution of plugins. The pre_function will have access to two arguments: `conf` and `ctx`.",
                "type": "string"
            }
        },
        "additionalProperties": false
    })
}

/// `plugin_injected_schema` as served at `/apisix/admin/schema/plugin_injected_schema`.
pub fn plugin_injected_schema() -> Value {
    json!({"$comment": INJECTED_MARK, "_meta": plugin_meta_schema()})
}
